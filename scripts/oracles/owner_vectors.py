"""Writes fixtures/owner/vectors.json: SIWE and SIWS messages for the owner actions of
04-auth.md §7 and 11-owner-console.md §3.1, built here from the spec's template, and their
signatures by eth-account (EIP-191) and solders/PyNaCl (raw Ed25519 and the Ledger off-chain
envelope). The daemon's unit tests parse each message, rebuild it byte for byte, check the
statement for its action and verify each signature; nothing here shares code with waiaas.

    scripts/oracles/owner_vectors.py > fixtures/owner/vectors.json   (py-oracles venv)
"""
import json
import sys

from eth_account import Account
from eth_account.messages import encode_defunct
from nacl.signing import SigningKey, VerifyKey

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from owner_sign import envelope  # noqa: E402  (the oracle's own envelope builder)

EVM_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
SOL_SEED = bytes([0x5C] * 32)
TX = "0190b5a0-0000-7000-8000-000000000000"
NONCE = "0123456789abcdef0123456789abcdef"
ISSUED, EXPIRES = "2026-12-07T12:00:00Z", "2026-12-07T12:05:00Z"


def b58(data: bytes) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = alphabet[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def message(domain, uri, account, address, action, target, summary, chain_id):
    statement = f"WAIaaS Owner Action: {action} {target}" + (f" ({summary})" if summary else "")
    return "\n".join([
        f"{domain} wants you to sign in with your {account} account:", address, "", statement, "",
        f"URI: {uri}", "Version: 1", f"Chain ID: {chain_id}", f"Nonce: {NONCE}",
        f"Issued At: {ISSUED}", f"Expiration Time: {EXPIRES}", f"Request ID: {target}",
    ])


def main():
    evm = Account.from_key(EVM_KEY)
    sk = SigningKey(SOL_SEED)
    sol_pk = bytes(sk.verify_key)
    sol_addr = b58(sol_pk)
    actions = [
        ("console_login", None, "read-only sign-in for 15 minutes"),
        ("reject_tx", f"tx:{TX}", "send 10 ETH to 0x0000...bEEF on ethereum testnet"),
        ("kill_switch", "system", "stop all agents"),
        ("approve_tx", f"tx:{TX}", "send 10 ETH to 0x0000...bEEF on ethereum testnet"),
    ]
    out = []
    for domain, uri in [("127.0.0.1:3100", "http://127.0.0.1:3100"), ("wallet.example.test", "https://wallet.example.test")]:
        for action, target, summary in actions:
            t = target or f"owner:{evm.address}"
            text = message(domain, uri, "Ethereum", evm.address, action, t, summary, "31337")
            sig = Account.sign_message(encode_defunct(text=text), private_key=EVM_KEY).signature
            out.append({"chain": "ethereum", "address": evm.address, "action": action, "target": t,
                        "summary": summary, "domain": domain, "message": text, "mode": "eip191",
                        "signature": "0x" + bytes(sig).hex()})
            t = target or f"owner:{sol_addr}"
            sol_summary = summary.replace("10 ETH to 0x0000...bEEF on ethereum testnet", "2.5 SOL to 11157t...XXQs on solana devnet")
            text = message(domain, uri, "Solana", sol_addr, action, t, sol_summary, "devnet")
            for mode in ["raw", "ledger0"]:
                signed = envelope(mode, sol_pk, text.encode())
                sig = sk.sign(signed).signature
                VerifyKey(sol_pk).verify(signed, sig)
                out.append({"chain": "solana", "address": sol_addr, "action": action, "target": t,
                            "summary": sol_summary, "domain": domain, "message": text, "mode": mode,
                            "signature": b58(sig)})
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
