#!/usr/bin/env bash
# Runs the fuzz targets of src/fuzz/ under libFuzzer (docs/fuzzing.md). Not part of the test
# command, which replays the seeds, the regression inputs and mutations of them on every run.
#
# Usage: scripts/fuzz.sh [--runs N] [--jobs J] [--targets a,b,...]
#            run each target for N executions (default 1,000,000), J at a time (default: cores),
#            then print executions, time, corpus size, coverage growth and crashes per target
#        scripts/fuzz.sh --replay TARGET FILE...
#            run TARGET once on each FILE (a crash or a regression input)
#        scripts/fuzz.sh --list
#
# The harness is fuzz/ (libfuzzer-sys). It is built on the stable toolchain: the coverage
# instrumentation libFuzzer needs comes from LLVM's SanitizerCoverage pass, which stable rustc
# runs through -Cpasses and -Cllvm-args; no sanitizer runtime (which would need nightly) is
# linked, so memory errors are caught by Rust's own checks (debug assertions and overflow checks
# are on). The build and the growing corpora live outside the checkout, in ~/.cache/waiaas.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache="${WAIAAS_CACHE:-$HOME/.cache/waiaas}"
export CARGO_TARGET_DIR="$cache/fuzz-target"
corpora="$cache/fuzz-corpus"
artifacts="$root/target/fuzz-artifacts"
triple=$(rustc -vV | sed -n 's/^host: //p')
bin="$CARGO_TARGET_DIR/$triple/release/waiaas-fuzz"

runs=1000000 jobs=$(nproc) targets="" mode=run
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --targets) targets="$2"; shift 2 ;;
    --replay) mode=replay; shift; break ;;
    --list) mode=list; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

all_targets() { perl -ne 'print "$1\n" if /^\s+\("([a-z_]+)", [a-z_]+\),$/' src/fuzz/mod.rs; }
if [ "$mode" = list ]; then all_targets; exit 0; fi

echo "building the instrumented harness (target dir $CARGO_TARGET_DIR)" >&2
(
  cd fuzz
  RUSTFLAGS="-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    -Cdebug-assertions -Coverflow-checks" \
    cargo build --release --target "$triple" --quiet
)

if [ "$mode" = replay ]; then
  target="$1"; shift
  WAIAAS_FUZZ_TARGET="$target" "$bin" -runs=1 "$@"
  exit $?
fi

[ -n "$targets" ] || targets=$(all_targets | paste -sd, -)
IFS=, read -r -a list <<<"$targets"
logs="$root/target/fuzz-logs"
mkdir -p "$logs" "$artifacts"

run_one() { # target
  local t="$1" corpus="$corpora/$1" start end
  mkdir -p "$corpus" "$artifacts/$t" "$root/fuzz/regressions/$t"
  start=$(date +%s.%N)
  # Regression inputs are read too (a second corpus folder: read, never written).
  WAIAAS_FUZZ_TARGET="$t" WAIAAS_FUZZ_SEEDS_INTO="$corpus" "$bin" \
    -runs="$runs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$t/" "$corpus" "$root/fuzz/regressions/$t" >"$logs/$t.log" 2>&1 || true
  end=$(date +%s.%N)
  echo "$start $end" >"$logs/$t.time"
}

running=0
for t in "${list[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait

printf '%-18s %12s %9s %10s %8s %14s %7s\n' target executions seconds execs/s corpus "coverage" crashes
total=0 bad=0
for t in "${list[@]}"; do
  log="$logs/$t.log"
  read -r s e <"$logs/$t.time"
  execs=$(sed -n 's/^stat::number_of_executed_units: //p' "$log" | tail -1)
  execs=${execs:-0}
  secs=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.0f", e - s }')
  rate=$(awk -v n="$execs" -v s="$s" -v e="$e" 'BEGIN { printf "%.0f", n / (e - s) }')
  cov0=$(grep -m1 -oE 'INITED cov: [0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  cov1=$(grep -oE '(DONE|pulse|NEW|REDUCE) +cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || echo 0)
  corp=$(find "$corpora/$t" -type f | wc -l)
  crashes=$(find "$artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'slow-unit-*' \) | wc -l)
  total=$((total + execs))
  [ "$crashes" -eq 0 ] || bad=1
  printf '%-18s %12s %9s %10s %8s %14s %7s\n' "$t" "$execs" "$secs" "$rate" "$corp" "$cov0 -> $cov1" "$crashes"
done
echo "total executions: $total"
if [ "$bad" -ne 0 ]; then
  echo "crashes: see $artifacts and the logs in $logs; reproduce with scripts/fuzz.sh --replay TARGET FILE" >&2
  exit 1
fi
