"""Independent owner-signature oracle for the tests (04-auth.md §7.4).

Signs a message file with implementations waiaas does not share code with:
  evm <private-key-hex> <message-file>              EIP-191 personal_sign by eth-account
  evm-many <private-key-hex>                        the same for each JSON-string line on stdin
                                                    (one signature per line; many in one process)
  sol-pub <seed-hex>                                base58 public key (solders)
  sol <seed-hex> <mode> <message-file>              Ed25519 (PyNaCl) over:
      raw       the UTF-8 message
      ledger0   the Ledger-layout off-chain envelope, format byte 0
      ledger1   the same with format byte 1
      compact0  "\\xffsolana offchain" 0x00 0x00 len(u16 LE) text
      compact1  the same with format byte 1
The envelopes are built here from the spec text, not from waiaas code.
"""
import struct
import sys


from eth_account import Account
from eth_account.messages import encode_defunct
from nacl.signing import SigningKey
from solders.keypair import Keypair
from solders.signature import Signature

PREFIX = b"\xffsolana offchain"


def envelope(mode: str, pubkey: bytes, text: bytes) -> bytes:
    if mode == "raw":
        return text
    length = struct.pack("<H", len(text))
    if mode in ("ledger0", "ledger1"):
        fmt = bytes([int(mode[-1])])
        return PREFIX + b"\x00" + bytes(32) + fmt + b"\x01" + pubkey + length + text
    if mode in ("compact0", "compact1"):
        fmt = bytes([int(mode[-1])])
        return PREFIX + b"\x00" + fmt + length + text
    raise SystemExit(f"unknown mode {mode}")


def main() -> None:
    cmd = sys.argv[1]
    if cmd == "evm":
        key, path = sys.argv[2], sys.argv[3]
        text = open(path, "rb").read().decode("utf-8")
        signed = Account.sign_message(encode_defunct(text=text), private_key=key)
        print("0x" + signed.signature.hex().removeprefix("0x"))
    elif cmd == "evm-many":
        import json
        key = sys.argv[2]
        for line in sys.stdin:
            if line.strip():
                text = json.loads(line)
                signed = Account.sign_message(encode_defunct(text=text), private_key=key)
                print("0x" + signed.signature.hex().removeprefix("0x"), flush=True)
    elif cmd == "sol-pub":
        seed = bytes.fromhex(sys.argv[2])
        print(Keypair.from_seed(seed).pubkey())
    elif cmd == "sol":
        seed, mode, path = bytes.fromhex(sys.argv[2]), sys.argv[3], sys.argv[4]
        text = open(path, "rb").read()
        sk = SigningKey(seed)
        pub = bytes(sk.verify_key)
        assert pub == bytes(Keypair.from_seed(seed).pubkey()), "PyNaCl and solders disagree"
        sig = sk.sign(envelope(mode, pub, text)).signature
        print(str(Signature.from_bytes(sig)))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
