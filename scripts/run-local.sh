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

export WAIAAS_DAEMON_PORT="$PORT" WAIAAS_MASTER_PASSWORD=waiaas-dev
"$BIN" --data-dir "$DATA" start --dev >"$ROOT/.daemon.log" 2>&1 &
pids+=($!)
DAEMON_PID=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$ROOT/.daemon.log"; exit 1; }
  sleep 0.1
done

# A funded EVM agent sends a real transaction on the local anvil node.
AGENT=$("$BIN" --data-dir "$DATA" agent create --name demo-evm --chain ethereum --output json)
ADDRESS=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["address"])' <<<"$AGENT")
"$WAIAAS_TOOL_CAST" send --rpc-url "http://127.0.0.1:$EVM_PORT" \
  --private-key 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 \
  "$ADDRESS" --value 1ether >/dev/null
TOKEN=$("$BIN" --data-dir "$DATA" session create --agent demo-evm)
RECIPIENT=0x70997970C51812dc3A010C7d01b50e0d17dc79C8
BEFORE=$("$WAIAAS_TOOL_CAST" balance "$RECIPIENT" --rpc-url "http://127.0.0.1:$EVM_PORT")
echo "Agent demo-evm ($ADDRESS) funded with 1 ETH; sending 0.01 ETH to $RECIPIENT:"
curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"to\": \"$RECIPIENT\", \"amount\": \"10000000000000000\"}" \
  "http://127.0.0.1:$PORT/v1/transactions/send"
echo
AFTER=$("$WAIAAS_TOOL_CAST" balance "$RECIPIENT" --rpc-url "http://127.0.0.1:$EVM_PORT")
echo "Recipient balance on anvil: $BEFORE -> $AFTER wei"

cat <<MSG

  Daemon:                     http://127.0.0.1:$PORT  (dev mode, password "waiaas-dev"; log: .daemon.log)
  Local EVM node (anvil):     http://127.0.0.1:$EVM_PORT  (chain id 31337)
  Local Solana node:          http://127.0.0.1:$SOL_PORT
  Data directory:             $DATA

  Try, in another terminal:
    export WAIAAS_SESSION_TOKEN="$TOKEN"
    curl -s -H "Authorization: Bearer \$WAIAAS_SESSION_TOKEN" http://127.0.0.1:$PORT/v1/wallet/balance
    curl -s -H "Authorization: Bearer \$WAIAAS_SESSION_TOKEN" http://127.0.0.1:$PORT/v1/transactions
    curl -s -H 'X-Master-Password: waiaas-dev' http://127.0.0.1:$PORT/v1/admin/status
    curl -s http://127.0.0.1:$PORT/doc            # OpenAPI document
    WAIAAS_DAEMON_PORT=$PORT $BIN --data-dir $DATA agent list

  Ctrl-C stops the daemon and the nodes.
MSG
wait "$DAEMON_PID"
