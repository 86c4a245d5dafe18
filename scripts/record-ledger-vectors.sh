#!/usr/bin/env bash
# Regenerates fixtures/ledger/golden.json: the APDUs Ledger's official JS clients emit for fixed
# inputs. Inputs come from independent tools too: the unsigned EIP-1559 transaction from
# `cast mktx --raw-unsigned`, the EIP-712 hashes from Python eth-account. The Rust tests compare
# our encoders with these bytes (ledger::golden in tests/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-infra.sh >/dev/null
# shellcheck disable=SC1091
source "${WAIAAS_CACHE:-$HOME/.cache/waiaas}/env.sh"

# A multi-chunk ERC-20-style call: 4-byte selector, two words, 300 bytes of padding data.
DATA="a9059cbb$(printf '0%.0s' {1..24})$(printf '11%.0s' {1..20})$(printf '%064x' 1000)$(printf 'ee%.0s' {1..300})"
TX=$("$WAIAAS_TOOL_CAST" mktx --raw-unsigned --nonce 7 --gas-limit 250000 --gas-price 30000000000 \
  --priority-gas-price 2000000000 --chain 31337 --from 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 \
  --value 12345 0x5FbDB2315678afecb367f032d93F642f64180aa3 "0x$DATA")
EIP712=$("$WAIAAS_TOOL_PYTHON" scripts/ledger/eip712_hashes.py fixtures/ledger/eip712.json)
# A Solana message long enough to need three APDUs, and an off-chain envelope (03-keys.md §3.3)
# built here byte by byte: "\xffsolana offchain", version 0, 32-byte zero domain, format 0,
# one signer, the signer key, u16 LE length, text.
SOL_MSG=$(python3 -c "print(bytes((i * 7) % 256 for i in range(600)).hex())")
SOL_OFFCHAIN=$(python3 -c "
import hashlib
text = b'WAIaaS owner message: approve tx:0190b5a0-0000-7000-8000-000000000000'
signer = hashlib.sha256(b'signer').digest()
env = b'\xffsolana offchain' + b'\x00' + bytes(32) + b'\x00' + b'\x01' + signer + len(text).to_bytes(2, 'little') + text
print(env.hex())")

python3 - "$TX" "$EIP712" "$SOL_MSG" "$SOL_OFFCHAIN" >fixtures/ledger/inputs.json <<'PY'
import json, sys
tx, eip712, sol_msg, sol_off = sys.argv[1:5]
print(json.dumps({
    "ethTxUnsigned": tx,
    "personalMessage": "waiaas golden vector: sign this personal message",
    "eip712": json.loads(eip712),
    "solMessage": sol_msg,
    "solOffchainEnvelope": sol_off,
}, indent=2))
PY
node scripts/ledger/record.cjs "$WAIAAS_TOOL_LEDGER_JS" fixtures/ledger/inputs.json fixtures/ledger/golden.json
