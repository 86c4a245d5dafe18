#!/usr/bin/env bash
# Runs waiaas on an embedded local default: installs and starts local chain nodes (anvil for
# EVM, surfnet-local for Solana), initialises a dev-mode data directory pointed at them, starts
# the daemon in the foreground and prints how to talk to it. Ctrl-C stops everything.
#
# It then shows the product's oversight on the EVM node: an INSTANT send, and an APPROVAL-tier
# send that waits for the owner, who approves it with `waiaas owner approve` — signed by a local
# key standing in for the human (anvil's account #1), or on a Ledger with --ledger (the device's
# first Ethereum address becomes the owner). Notifications go to a local webhook printed to
# .webhook.log, so the tiers above INSTANT are reachable.
#
#   scripts/run-local.sh            data in ./.local-run (recreated each time)
#   OWNER=0x… scripts/run-local.sh --ledger
#                                   the owner approves on a connected Ledger (Ethereum app);
#                                   OWNER is the device's address at 44'/60'/0'/0/0
set -euo pipefail
LEDGER=0
[ "${1:-}" = "--ledger" ] && LEDGER=1
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
sed -i "s|^\[notifications\]$|[notifications]\nenabled = true\nmin_channels = 1|" "$DATA/config.toml"

# A local webhook receiver: every notification is appended to .webhook.log.
WEBHOOK_PORT=$(free_port)
python3 - "$WEBHOOK_PORT" >"$ROOT/.webhook.log" 2>/dev/null <<'PY' &
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            m = json.loads(body)
            print(f"{m.get('event')}: {m.get('title')} - {m.get('body')}", flush=True)
        except Exception:
            pass
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
pids+=($!)

export WAIAAS_DAEMON_PORT="$PORT" WAIAAS_MASTER_PASSWORD=waiaas-dev
"$BIN" --data-dir "$DATA" start --dev >"$ROOT/.daemon.log" 2>&1 &
pids+=($!)
DAEMON_PID=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$ROOT/.daemon.log"; exit 1; }
  sleep 0.1
done

RPC="http://127.0.0.1:$EVM_PORT"
KEY0=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
# The owner: anvil's account #1 (a local key standing in for the human), or the Ledger.
OWNER_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
[ "$LEDGER" = 1 ] || OWNER=0x70997970C51812dc3A010C7d01b50e0d17dc79C8
sleep 0.3
curl -sf -H 'X-Master-Password: waiaas-dev' -H 'Content-Type: application/json' \
  -d "{\"type\": \"WEBHOOK\", \"name\": \"local\", \"config\": {\"url\": \"http://127.0.0.1:$WEBHOOK_PORT/hook\", \"secret\": \"run-local-webhook-secret\"}}" \
  "http://127.0.0.1:$PORT/v1/owner/notification-channels" >/dev/null
W() { "$BIN" --data-dir "$DATA" "$@"; }
if [ "$LEDGER" = 1 ]; then
  OWNER="${OWNER:?set OWNER to the Ledger's Ethereum address (44'/60'/0'/0/0)}"
fi

# A funded EVM agent with a verified owner.
AGENT=$(W agent create --name demo-evm --chain ethereum --owner "$OWNER" --output json)
ADDRESS=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["address"])' <<<"$AGENT")
"$WAIAAS_TOOL_CAST" send --rpc-url "$RPC" --private-key "$KEY0" "$ADDRESS" --value 10ether >/dev/null
if [ "$LEDGER" = 1 ]; then
  W agent verify-owner demo-evm --ledger
else
  W agent verify-owner demo-evm --prepare-only --message-out "$DATA/verify.txt" >/dev/null
  SIG=$("$WAIAAS_TOOL_CAST" wallet sign --private-key "$OWNER_KEY" "$(cat "$DATA/verify.txt")")
  W agent verify-owner demo-evm --message-file "$DATA/verify.txt" --signature "$SIG"
fi
TOKEN=$(W session create --agent demo-evm)
RECIPIENT=0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC
send() {
  curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"to\": \"$RECIPIENT\", \"amount\": \"$1\"}" "http://127.0.0.1:$PORT/v1/transactions/send"
}

echo "Agent demo-evm ($ADDRESS) holds 10 ETH; its owner is $OWNER."
echo
echo "1. 0.01 ETH: INSTANT, signed and sent at once:"
send 10000000000000000; echo
echo
echo "2. 6 ETH: above the default delay_max (5 ETH), so it waits for the owner:"
QUEUED=$(send 6000000000000000000); echo "$QUEUED"
TX=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["transactionId"])' <<<"$QUEUED")
W owner pending
BEFORE=$("$WAIAAS_TOOL_CAST" balance "$RECIPIENT" --rpc-url "$RPC")
echo
echo "3. The owner approves (the message shows what executes):"
if [ "$LEDGER" = 1 ]; then
  W owner approve "$TX" --ledger
else
  W owner approve "$TX" --prepare-only --message-out "$DATA/approve.txt" >/dev/null 2>&1
  sed 's/^/     | /' "$DATA/approve.txt"; echo
  SIG=$("$WAIAAS_TOOL_CAST" wallet sign --private-key "$OWNER_KEY" "$(cat "$DATA/approve.txt")")
  W owner approve "$TX" --message-file "$DATA/approve.txt" --signature "$SIG"
fi
for _ in $(seq 1 100); do
  STATUS=$(curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/transactions/$TX" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$STATUS" = CONFIRMED ] || [ "$STATUS" = FAILED ] && break
  sleep 0.2
done
AFTER=$("$WAIAAS_TOOL_CAST" balance "$RECIPIENT" --rpc-url "$RPC")
echo "   $TX is $STATUS; recipient balance on anvil: $BEFORE -> $AFTER wei"
echo
echo "Notifications the owner received (.webhook.log):"
sed 's/^/   /' "$ROOT/.webhook.log"

cat <<MSG

  Daemon:                     http://127.0.0.1:$PORT  (dev mode, password "waiaas-dev"; log: .daemon.log)
  Local EVM node (anvil):     http://127.0.0.1:$EVM_PORT  (chain id 31337)
  Local Solana node:          http://127.0.0.1:$SOL_PORT
  Data directory:             $DATA
  Notifications:              .webhook.log

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
