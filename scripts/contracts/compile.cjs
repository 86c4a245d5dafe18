// Compiles the test contracts in fixtures/contracts with solc-js (npm `solc`, no compiler
// download) and writes fixtures/contracts/compiled.json: {name: {abi, bytecode}}.
const fs = require("fs");
const path = require("path");
const [modules, dir] = process.argv.slice(2);
const solc = require(path.join(modules, "solc"));
const sources = {};
for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".sol"))) {
  sources[f] = { content: fs.readFileSync(path.join(dir, f), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: "cancun", outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join("\n"));
  process.exit(1);
}
const result = { compiler: solc.version() };
for (const file of Object.keys(out.contracts)) {
  for (const [name, c] of Object.entries(out.contracts[file])) {
    result[name] = { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
  }
}
fs.writeFileSync(path.join(dir, "compiled.json"), JSON.stringify(result, null, 2) + "\n");
console.log(`compiled ${Object.keys(result).length - 1} contracts with solc ${solc.version()}`);
