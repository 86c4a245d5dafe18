#!/usr/bin/env bash
# Runs waiaas on an embedded local default: installs and starts local chain nodes (anvil for
# EVM, surfnet-local for Solana), initialises a dev-mode data directory pointed at them, starts
# the daemon in the foreground and prints how to talk to it. Ctrl-C stops everything.
#
#   scripts/run-local.sh            data in ./.local-run (recreated each time)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
DATA="$ROOT/.local-run"
PORT="${WAIAAS_PORT:-3100}"

scripts/install-test-infra.sh
# shellcheck disable=SC1091
source "${WAIAAS_CACHE:-$HOME/.cache/waiaas}/env.sh"
cargo build --workspace --bins --locked
BIN="$ROOT/target/debug/waiaas"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EVM_PORT=$(free_port)
SOL_PORT=$(free_port)
SOL_WS=$(free_port)

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$WAIAAS_TOOL_ANVIL" --host 127.0.0.1 --port "$EVM_PORT" --chain-id 31337 >"$ROOT/.anvil.log" 2>&1 &
pids+=($!)
"$ROOT/target/debug/surfnet-local" --port "$SOL_PORT" --ws-port "$SOL_WS" >"$ROOT/.surfnet.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q "Listening on" "$ROOT/.anvil.log" 2>/dev/null && grep -q "ready on" "$ROOT/.surfnet.log" 2>/dev/null && break
  sleep 0.1
done

rm -rf "$DATA"
"$BIN" --data-dir "$DATA" init --non-interactive --master-password waiaas-dev >/dev/null
cat >>"$DATA/config.toml" <<CFG

# --- scripts/run-local.sh: local nodes ---
CFG
sed -i "s|^\[rpc\]$|[rpc]\nsolana_devnet = \"http://127.0.0.1:$SOL_PORT\"\nethereum_testnet = \"http://127.0.0.1:$EVM_PORT\"\nethereum_testnet_chain_id = 31337|" "$DATA/config.toml"
sed -i "s|^\[daemon\]$|[daemon]\nport = $PORT|" "$DATA/config.toml"

cat <<MSG

  Local EVM node (anvil):     http://127.0.0.1:$EVM_PORT  (chain id 31337)
  Local Solana node:          http://127.0.0.1:$SOL_PORT
  Data directory:             $DATA   (dev mode, password "waiaas-dev")

  Try, in another terminal:
    curl -s http://127.0.0.1:$PORT/health
    curl -s -H 'X-Master-Password: waiaas-dev' http://127.0.0.1:$PORT/v1/admin/status
    curl -s http://127.0.0.1:$PORT/doc            # OpenAPI document
    WAIAAS_DATA_DIR=$DATA $BIN status

MSG
"$BIN" --data-dir "$DATA" start --dev
