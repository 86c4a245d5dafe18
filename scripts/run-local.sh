#!/usr/bin/env bash
# Runs waiaas on an embedded local default: installs and starts a local EVM node (anvil) — and
# with --solana the local Solana node (surfnet-local) too —, initialises a dev-mode data
# directory pointed at them, starts the daemon in the foreground and prints how to talk to it.
# Ctrl-C stops everything.
#
# It then shows the product's oversight on the EVM node: an INSTANT send, and an APPROVAL-tier
# send that waits for the owner, who approves it with `waiaas owner approve` — signed by a local
# key standing in for the human (anvil's account #1), or on a Ledger with --ledger (the device's
# first Ethereum address becomes the owner). Notifications go to a local webhook printed to
# .webhook.log, so the tiers above INSTANT are reachable.
#
#   scripts/run-local.sh            data in ./.local-run (recreated each time)
#   scripts/run-local.sh --solana   also build and start the local Solana node (surfnet-local;
#                                   a third more to compile on the first run), also
#                                   WAIAAS_RUN_SOLANA=1
#   scripts/run-local.sh --exit-after-demo
#                                   stop everything and exit 0 once the demo has finished
#                                   (also WAIAAS_EXIT_AFTER_DEMO=1); how the test suite runs it
#   OWNER=0x… scripts/run-local.sh --ledger
#                                   the owner approves on a connected Ledger (Ethereum app);
#                                   OWNER is the device's address at 44'/60'/0'/0/0
#
# Environment: WAIAAS_PORT (daemon port, default 3100); WAIAAS_RUN_DIR (where the data directory
# and the logs go, default the checkout); WAIAAS_BIN (an already built `waiaas`: no cargo build,
# surfnet-local is taken from the same directory); WAIAAS_EVM_RPC (use this EVM node, chain id
# 31337, instead of starting anvil).
#
# Every step checks what the daemon answered: a refusal is printed as the daemon's error code,
# message and hint, and the script stops with exit code 1.
set -euo pipefail
LEDGER=0
EXIT_AFTER_DEMO="${WAIAAS_EXIT_AFTER_DEMO:-0}"
SOLANA="${WAIAAS_RUN_SOLANA:-0}"
for arg in "$@"; do
  case "$arg" in
    --ledger) LEDGER=1 ;;
    --exit-after-demo) EXIT_AFTER_DEMO=1 ;;
    --solana) SOLANA=1 ;;
    *) echo "run-local.sh: unknown option $arg (known: --ledger, --exit-after-demo, --solana)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
RUN="${WAIAAS_RUN_DIR:-$ROOT}"
DATA="$RUN/.local-run"
PORT="${WAIAAS_PORT:-3100}"
PASSWORD=waiaas-dev
mkdir -p "$RUN"

fail() { printf '\nrun-local.sh: %s\n' "$*" >&2; exit 1; }
trap 'fail "stopped at line $LINENO: $BASH_COMMAND (exit $?)"' ERR

# Only what running needs (anvil and cast); the test-only components are the test command's.
scripts/install-test-infra.sh --run-only
# shellcheck disable=SC1091
source "${WAIAAS_CACHE:-$HOME/.cache/waiaas}/env-run.sh"
# The demo needs only the daemon; the Solana node (surfpool) is a third of the workspace's
# dependency tree, so it is built only when asked for.
if [ -n "${WAIAAS_BIN:-}" ]; then
  BIN="$WAIAAS_BIN"
elif [ "$SOLANA" = 1 ]; then
  cargo build --workspace --bins --locked
  BIN="$ROOT/target/debug/waiaas"
else
  cargo build --locked --bin waiaas
  BIN="$ROOT/target/debug/waiaas"
fi
SURFNET="$(dirname "$BIN")/surfnet-local"
[ -x "$BIN" ] || fail "$BIN is missing"
[ "$SOLANA" = 0 ] || [ -x "$SURFNET" ] || fail "$SURFNET is missing"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SOL_PORT=$(free_port)
SOL_WS=$(free_port)

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -n "${WAIAAS_EVM_RPC:-}" ]; then
  RPC="$WAIAAS_EVM_RPC"
else
  EVM_PORT=$(free_port)
  RPC="http://127.0.0.1:$EVM_PORT"
  "$WAIAAS_TOOL_ANVIL" --host 127.0.0.1 --port "$EVM_PORT" --chain-id 31337 >"$RUN/.anvil.log" 2>&1 &
  pids+=($!)
fi
if [ "$SOLANA" = 1 ]; then
  "$SURFNET" --port "$SOL_PORT" --ws-port "$SOL_WS" >"$RUN/.surfnet.log" 2>&1 &
  pids+=($!)
fi
for _ in $(seq 1 100); do
  { [ -n "${WAIAAS_EVM_RPC:-}" ] || grep -q "Listening on" "$RUN/.anvil.log" 2>/dev/null; } \
    && { [ "$SOLANA" = 0 ] || grep -q "ready on" "$RUN/.surfnet.log" 2>/dev/null; } && break
  sleep 0.1
done

rm -rf "$DATA"
"$BIN" --data-dir "$DATA" init --non-interactive --master-password "$PASSWORD" >/dev/null
# The password as a file, for the commands the banner prints (they run in any shell, no prompt).
PASSWORD_FILE="$RUN/.local-run-password"
( umask 077 && printf '%s\n' "$PASSWORD" >"$PASSWORD_FILE" )
cat >>"$DATA/config.toml" <<CFG

# --- scripts/run-local.sh: local nodes ---
CFG
SOL_RPC_LINE=""
if [ "$SOLANA" = 1 ]; then SOL_RPC_LINE="solana_devnet = \"http://127.0.0.1:$SOL_PORT\"\n"; fi
sed -i "s|^\[rpc\]$|[rpc]\n${SOL_RPC_LINE}ethereum_testnet = \"$RPC\"\nethereum_testnet_chain_id = 31337|" "$DATA/config.toml"
sed -i "s|^\[daemon\]$|[daemon]\nport = $PORT|" "$DATA/config.toml"
sed -i "s|^\[notifications\]$|[notifications]\nenabled = true\nmin_channels = 1|" "$DATA/config.toml"

# A local webhook receiver: every notification is appended to .webhook.log.
WEBHOOK_PORT=$(free_port)
python3 - "$WEBHOOK_PORT" >"$RUN/.webhook.log" 2>/dev/null <<'PY' &
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            m = json.loads(body)
            print(f"{m.get('event')}: {m.get('title')} - {m.get('body')}", flush=True)
        except ValueError:
            pass
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
pids+=($!)
# The channel is health-checked when it is created: the receiver must be listening by then.
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$WEBHOOK_PORT") 2>/dev/null && break
  sleep 0.1
done

export WAIAAS_DAEMON_PORT="$PORT" WAIAAS_MASTER_PASSWORD="$PASSWORD"
"$BIN" --data-dir "$DATA" start --dev >"$RUN/.daemon.log" 2>&1 &
pids+=($!)
DAEMON_PID=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$RUN/.daemon.log"; fail "the daemon exited during start-up"; }
  sleep 0.1
done

# --- talking to the daemon: every answer is checked -------------------------------------------
MASTER="X-Master-Password: $PASSWORD"

# `field NAME`: prints the JSON field NAME of the document on stdin (dots for nesting), or stops
# the script naming what was missing.
field() {
  python3 -c '
import json, sys
doc = sys.stdin.read()
try:
    v = json.loads(doc)
    for k in sys.argv[1].split("."):
        v = v[k]
except (ValueError, KeyError, TypeError):
    sys.exit("no field %s in: %s" % (sys.argv[1], doc[:300]))
print(v)' "$1"
}

# `api METHOD PATH HEADER [BODY]`: the response body on stdout. Any answer but 2xx stops the
# script with the daemon's error envelope in words (code, message, hint).
api() {
  local method="$1" path="$2" header="$3" body="${4:-}" out status
  out=$(mktemp)
  local args=(-s -o "$out" -w '%{http_code}' -X "$method" -H "$header")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
  status=$(curl "${args[@]}" "http://127.0.0.1:$PORT$path") || status=000
  if [ "${status:0:1}" != 2 ]; then
    local why
    why=$(python3 -c '
import json, sys
doc = sys.stdin.read()
try:
    e = json.loads(doc)
    hint = " Hint: %s" % e["hint"] if e.get("hint") else ""
    print("%s: %s.%s" % (e["code"], e["message"], hint))
except (ValueError, KeyError, TypeError, AttributeError):
    print(doc[:300] or "no answer")' <"$out")
    rm -f "$out"
    fail "$method $path answered HTTP $status — $why"
  fi
  cat "$out"
  rm -f "$out"
}

# `tx_outcome AGENT TX`: waits (20 s at most) for TX to end and prints CONFIRMED or FAILED. It
# reads the audit log with the master password: the demo's session can be revoked by what the
# demo itself does (AutoStop), the operator's password cannot.
tx_outcome() {
  local agent="$1" tx="$2" status=""
  for _ in $(seq 1 100); do
    status=$(api GET "/v1/admin/audit-log?agentId=$agent&order=desc&limit=100" "$MASTER" | python3 -c '
import json, sys
for e in json.load(sys.stdin)["entries"]:
    if e.get("txId") == sys.argv[1] and e["eventType"] in ("TX_CONFIRMED", "TX_FAILED"):
        print(e["eventType"][3:]); break' "$tx")
    [ -n "$status" ] && break
    sleep 0.2
  done
  echo "${status:-NOT FINISHED after 20 s}"
}

KEY0=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
# The owner: anvil's account #1 (a local key standing in for the human), or the Ledger.
OWNER_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
[ "$LEDGER" = 1 ] || OWNER=0x70997970C51812dc3A010C7d01b50e0d17dc79C8
api POST /v1/owner/notification-channels "$MASTER" \
  "{\"type\": \"WEBHOOK\", \"name\": \"local\", \"config\": {\"url\": \"http://127.0.0.1:$WEBHOOK_PORT/hook\", \"secret\": \"run-local-webhook-secret\"}}" \
  >/dev/null
W() { "$BIN" --data-dir "$DATA" "$@"; }
if [ "$LEDGER" = 1 ]; then
  OWNER="${OWNER:?set OWNER to the Ledger's Ethereum address (44'/60'/0'/0/0)}"
fi

# A funded EVM agent with a verified owner.
AGENT=$(W agent create --name demo-evm --chain ethereum --owner "$OWNER" --output json)
ADDRESS=$(field address <<<"$AGENT")
AGENT_ID=$(field id <<<"$AGENT")
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
  api POST /v1/transactions/send "Authorization: Bearer $TOKEN" "{\"to\": \"$RECIPIENT\", \"amount\": \"$1\"}"
}
START_BALANCE=$("$WAIAAS_TOOL_CAST" balance "$RECIPIENT" --rpc-url "$RPC")

echo "Agent demo-evm ($ADDRESS) holds 10 ETH; its owner is $OWNER."
echo
echo "1. 0.01 ETH: INSTANT, signed and sent at once:"
SENT=$(send 10000000000000000); echo "$SENT"
INSTANT_TX=$(field transactionId <<<"$SENT")
[ "$(field status <<<"$SENT")" = CONFIRMED ] || fail "the INSTANT transfer did not confirm: $SENT"
echo
echo "2. 6 ETH: above the default delay_max (5 ETH), so it waits for the owner:"
QUEUED=$(send 6000000000000000000); echo "$QUEUED"
TX=$(field transactionId <<<"$QUEUED")
[ "$(field tier <<<"$QUEUED")" = APPROVAL ] || fail "6 ETH was expected to wait for the owner: $QUEUED"
W owner pending
BEFORE=$("$WAIAAS_TOOL_CAST" balance "$RECIPIENT" --rpc-url "$RPC")
echo
echo "3. The owner approves (the message shows what executes):"
if [ "$LEDGER" = 1 ]; then
  W owner approve "$TX" --ledger
else
  PREPARED=$(W owner approve "$TX" --prepare-only --message-out "$DATA/approve.txt" 2>&1 >/dev/null) \
    || fail "could not prepare the approval message: $PREPARED"
  sed 's/^/     | /' "$DATA/approve.txt"; echo
  SIG=$("$WAIAAS_TOOL_CAST" wallet sign --private-key "$OWNER_KEY" "$(cat "$DATA/approve.txt")")
  W owner approve "$TX" --message-file "$DATA/approve.txt" --signature "$SIG"
fi
STATUS=$(tx_outcome "$AGENT_ID" "$TX")
AFTER=$("$WAIAAS_TOOL_CAST" balance "$RECIPIENT" --rpc-url "$RPC")
echo "   $TX is $STATUS; recipient balance on anvil: $BEFORE -> $AFTER wei"
[ "$STATUS" = CONFIRMED ] || fail "the approved transfer is $STATUS; see $RUN/.daemon.log"
AGENT_STATUS=$(api GET "/v1/agents/$AGENT_ID" "$MASTER" | field status)
echo "   demo-evm is $AGENT_STATUS: a transfer its owner approved never counts against it."
echo
echo "Notifications the owner received (.webhook.log):"
sed 's/^/   /' "$RUN/.webhook.log"

if [ "$EXIT_AFTER_DEMO" = 1 ]; then
  echo
  echo "Demo complete: $INSTANT_TX and $TX CONFIRMED; recipient $START_BALANCE -> $AFTER wei; agent $AGENT_STATUS."
  exit 0
fi

if [ "$SOLANA" = 1 ]; then
  SOL_LINE="http://127.0.0.1:$SOL_PORT"
else
  SOL_LINE="not started (scripts/run-local.sh --solana builds and starts one)"
fi
cat <<MSG

  Daemon:                     http://127.0.0.1:$PORT  (dev mode, password "$PASSWORD"; log: $RUN/.daemon.log)
  Owner console:              http://127.0.0.1:$PORT/owner/  (sign in with the owner's browser wallet)
  Local EVM node:             $RPC  (chain id 31337)
  Local Solana node:          $SOL_LINE
  Data directory:             $DATA
  Notifications:              $RUN/.webhook.log

  Try, in another terminal (each command runs as printed, no prompt):
    export WAIAAS_SESSION_TOKEN="$TOKEN"
    curl -sS --fail-with-body -H "Authorization: Bearer \$WAIAAS_SESSION_TOKEN" http://127.0.0.1:$PORT/v1/wallet/balance
    curl -sS --fail-with-body -H "Authorization: Bearer \$WAIAAS_SESSION_TOKEN" http://127.0.0.1:$PORT/v1/transactions
    curl -sS --fail-with-body -H 'X-Master-Password: $PASSWORD' http://127.0.0.1:$PORT/v1/admin/status
    curl -sS --fail-with-body http://127.0.0.1:$PORT/doc
    WAIAAS_DAEMON_PORT=$PORT WAIAAS_MASTER_PASSWORD_FILE=$PASSWORD_FILE $BIN --data-dir $DATA agent list
    WAIAAS_DAEMON_PORT=$PORT WAIAAS_MASTER_PASSWORD_FILE=$PASSWORD_FILE $BIN --data-dir $DATA status

  Ctrl-C stops the daemon and the nodes.
MSG
trap - ERR
wait "$DAEMON_PID"
