#!/usr/bin/env bash
# The whole test suite, from nothing: installs the external components (cached outside the
# checkout), builds every workspace target, runs every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

# The layer rule (src/http and src/cli are the only HTTP-aware modules, the policy engine is
# pure, …) and a self-test that shows the check refuses each kind of planted violation.
scripts/check-layers.sh
scripts/check-layers.sh --self-test

scripts/install-test-infra.sh
# shellcheck disable=SC1091
source "${WAIAAS_CACHE:-$HOME/.cache/waiaas}/env.sh"

# In CI keep the (large) target directory in the cache too, so a rerun on the same machine
# does not rebuild the agave/alloy dependency tree. Locally the usual ./target is used.
if [ "${CI:-}" = "true" ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="${WAIAAS_CACHE:-$HOME/.cache/waiaas}/target"
fi

# A throwaway PostgreSQL cluster for the storage tests that need one (spec 13-postgres-ha.md §9);
# stopped and deleted on exit, pass or fail.
pg_dir="$(mktemp -d -t waiaas-pg.XXXXXX)"
rmdir "$pg_dir"
trap 'scripts/pg-cluster.sh stop "$pg_dir"' EXIT
WAIAAS_TEST_PG_URL="$(scripts/pg-cluster.sh start "$pg_dir")"
export WAIAAS_TEST_PG_URL

# One workspace-wide build: building a single package (-p) would resolve features differently
# and rebuild the shared dependency tree. This also builds tools/surfnet-local, which the
# integration tests start as the local Solana node.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked "$@"

echo "scripts/test.sh: passed in $(( $(date +%s) - start ))s"
echo "scripts/test.sh: owner-console screenshots and axe reports in target/test-artifacts/console/ (CI keeps them)"
