"""Parses an EIP-4361 message with the reference PyPI `siwe` package (its ABNF grammar) and prints
the fields as JSON, or exits 1 with the parser's error. Independent of waiaas's own parser.

Usage: siwe_parse.py <message-file>
"""
import json
import sys

from siwe import SiweMessage


def main() -> None:
    text = open(sys.argv[1], "rb").read().decode("utf-8")
    try:
        m = SiweMessage.from_message(message=text, abnf=True)
    except Exception as e:  # the parser's own error, reported as is
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({
        "domain": m.domain, "address": m.address, "statement": m.statement, "uri": str(m.uri),
        "version": str(m.version), "chainId": m.chain_id, "nonce": m.nonce, "issuedAt": str(m.issued_at),
        "expirationTime": str(m.expiration_time), "requestId": m.request_id,
    }))


if __name__ == "__main__":
    main()
