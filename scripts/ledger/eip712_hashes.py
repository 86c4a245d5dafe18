"""Domain separator and struct hash of fixtures/ledger/eip712.json, computed by eth-account
(an implementation nobody here wrote), for the Ledger SIGN_EIP712 golden vector."""
import json
import sys

from eth_account.messages import encode_typed_data

typed = json.load(open(sys.argv[1]))
msg = encode_typed_data(full_message=typed)
print(json.dumps({"domainSeparator": "0x" + msg.header.hex(), "structHash": "0x" + msg.body.hex()}))
