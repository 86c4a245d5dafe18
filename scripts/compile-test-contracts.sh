#!/usr/bin/env bash
# Recompiles the Solidity test contracts (ERC-1271 wallet, ERC-20 token) with solc-js from npm
# and rewrites fixtures/contracts/compiled.json, which the tests deploy on anvil.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${WAIAAS_CACHE:-$HOME/.cache/waiaas}/solc-0.8.28"
if [ ! -d "$CACHE/node_modules/solc" ]; then
  mkdir -p "$CACHE"
  (cd "$CACHE" && npm install --silent --no-audit --no-fund --prefix . solc@0.8.28 >/dev/null)
fi
node scripts/contracts/compile.cjs "$CACHE/node_modules" fixtures/contracts
