// Records the APDUs Ledger's official JS clients emit, as golden vectors for our encoders.
//
// A Transport subclass records every APDU and answers with canned responses; the inputs (an
// unsigned EIP-1559 transaction from `cast mktx --raw-unsigned`, EIP-712 hashes from Python
// eth-account, Solana message bytes) come from fixtures/ledger/inputs.json.
//
// Usage: node scripts/ledger/record.cjs <node_modules dir> <inputs.json> <out.json>
const path = require("path");
const fs = require("fs");
const [modules, inputsPath, outPath] = process.argv.slice(2);
const req = (m) => require(path.join(modules, m));
const Transport = req("@ledgerhq/hw-transport").default;
const Eth = req("@ledgerhq/hw-app-eth").default;
const Solana = req("@ledgerhq/hw-app-solana").default;
const hidFraming = req("ledger-hid-framing/lib/hid-framing").default;

class Recorder extends Transport {
  constructor(answer) {
    super();
    this.apdus = [];
    this.answer = answer;
  }
  async exchange(apdu) {
    this.apdus.push(apdu.toString("hex"));
    return Buffer.concat([this.answer(apdu, this.apdus.length), Buffer.from([0x90, 0x00])]);
  }
}

const ethPubkeyResponse = () =>
  Buffer.concat([Buffer.from([65, 4]), Buffer.alloc(64, 7), Buffer.from([40]), Buffer.from("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")]);
const ethSig = Buffer.concat([Buffer.from([0x1b]), Buffer.alloc(32, 1), Buffer.alloc(32, 2)]);

async function main() {
  const inputs = JSON.parse(fs.readFileSync(inputsPath, "utf8"));
  const out = {};
  const record = async (name, answer, run, input) => {
    const t = new Recorder(answer);
    await run(t);
    out[name] = { input, apdus: t.apdus };
  };

  await record("eth_get_address", ethPubkeyResponse, (t) => new Eth(t).getAddress("44'/60'/0'/0/0", false, false), { path: "44'/60'/0'/0/0" });
  // Every chunk but the last is answered with an empty success; the last with v ‖ r ‖ s.
  const txHex = inputs.ethTxUnsigned.replace(/^0x/, "");
  await record(
    "eth_sign_transaction",
    () => ethSig,
    (t) => new Eth(t).signTransaction("44'/60'/0'/0/0", txHex, null),
    { path: "44'/60'/0'/0/0", unsignedTx: inputs.ethTxUnsigned },
  );
  const msgHex = Buffer.from(inputs.personalMessage, "utf8").toString("hex");
  await record("eth_sign_personal_message", () => ethSig, (t) => new Eth(t).signPersonalMessage("44'/60'/0'/0/0", msgHex), {
    path: "44'/60'/0'/0/0",
    message: inputs.personalMessage,
  });
  await record(
    "eth_sign_eip712_hashed",
    () => ethSig,
    (t) => new Eth(t).signEIP712HashedMessage("44'/60'/0'/0/0", inputs.eip712.domainSeparator.replace(/^0x/, ""), inputs.eip712.structHash.replace(/^0x/, "")),
    { path: "44'/60'/0'/0/0", domainSeparator: inputs.eip712.domainSeparator, structHash: inputs.eip712.structHash },
  );

  const solSig = Buffer.alloc(64, 3);
  await record("sol_get_pubkey", () => Buffer.alloc(32, 9), (t) => new Solana(t).getAddress("44'/501'/0'/0'", false), { path: "44'/501'/0'/0'" });
  await record("sol_sign_message", () => solSig, (t) => new Solana(t).signTransaction("44'/501'/0'/0'", Buffer.from(inputs.solMessage, "hex")), {
    path: "44'/501'/0'/0'",
    message: inputs.solMessage,
  });
  await record(
    "sol_sign_offchain_message",
    () => solSig,
    (t) => new Solana(t).signOffchainMessage("44'/501'/0'/0'", Buffer.from(inputs.solOffchainEnvelope, "hex")),
    { path: "44'/501'/0'/0'", envelope: inputs.solOffchainEnvelope },
  );

  // HID framing of a 300-byte APDU on channel 0x0101, 64-byte packets.
  const apdu300 = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
  out.hid_framing_300 = { input: { apdu: apdu300.toString("hex") }, packets: hidFraming(0x0101, 64).makeBlocks(apdu300).map((b) => b.toString("hex")) };

  fs.writeFileSync(outPath, JSON.stringify(out, null, 2) + "\n");
  console.log(`wrote ${outPath}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
