#!/usr/bin/env bash
# The layer rule of package `waiaas`, checked on the source text (run by scripts/test.sh, so CI
# runs it). Layers point one way:
#
#   cli, daemon  ──▶  http  ──▶  app (composition)  ──▶  domain  ──▶  runtime, storage, backends
#
# 1. Only src/http/ and src/cli/ know HTTP: no other file names `crate::http`, warp or hyper.
#    The one allowed exception is the daemon starting the server: src/daemon/start.rs may use
#    `http::server::` (bind / spawn / Server) and nothing else of `crate::http`.
# 2. Workers call domain code, never handlers: src/daemon/workers.rs names no `handlers`.
# 3. The domain never reaches back up: outside src/http, src/cli, src/daemon, src/app.rs and
#    src/lib.rs nothing names `crate::app`, `crate::daemon` or `crate::cli`.
# 4. src/policy/ is pure: no async, no I/O, no clock reads, no runtime or chain access.
#
# Usage: scripts/check-layers.sh [SRC_DIR]    (default: src of this checkout)
#        scripts/check-layers.sh --self-test  (plants each kind of violation in a copy of src
#                                              and asserts the check fails on it)
set -uo pipefail
cd "$(dirname "$0")/.."

# grep -rnE over the code of .rs files, ignoring comments (`//` to the end of the line).
code_grep() { # pattern, path...
  local pattern="$1"; shift
  grep -rnE "$pattern" "$@" --include='*.rs' 2>/dev/null \
    | perl -ne 'my ($loc, $code) = /^([^:]+:\d+:)(.*)$/ or next; $code =~ s{//.*$}{}; print if $code =~ /'"$pattern"'/'
}

check() {
  local src="$1" bad=0 hits
  # 1. HTTP below the HTTP layer.
  hits=$(code_grep 'crate::http|\bwarp::|\bhyper(_util)?::|use (warp|hyper)' "$src" \
    | grep -vE "^$src/(http|cli)/" \
    | grep -vE "^$src/daemon/start\.rs:[0-9]+:(use crate::http;|.*\bhttp::server::)")
  if [ -n "$hits" ]; then
    echo "layer rule 1: HTTP types outside src/http and src/cli:"; echo "$hits"; bad=1
  fi
  # 2. Workers calling handlers.
  hits=$(code_grep 'handlers' "$src/daemon/workers.rs")
  if [ -n "$hits" ]; then
    echo "layer rule 2: src/daemon/workers.rs calls into HTTP handlers:"; echo "$hits"; bad=1
  fi
  # 3. Domain code reaching the composition root.
  hits=$(code_grep 'crate::(app|daemon|cli)\b' "$src" \
    | grep -vE "^$src/(http|cli|daemon)/|^$src/(app|lib|main)\.rs:")
  if [ -n "$hits" ]; then
    echo "layer rule 3: domain modules reach app/daemon/cli:"; echo "$hits"; bad=1
  fi
  # 4. The policy engine is pure.
  if [ -d "$src/policy" ]; then
    hits=$(code_grep '\basync\b|\.await|\btokio\b|std::(fs|net|thread|process)|reqwest|SystemTime::now|Instant::now|Utc::now|crate::(runtime|chains|app|pipeline|http|notify|oracle)\b' \
      "$src/policy")
    if [ -n "$hits" ]; then
      echo "layer rule 4: src/policy is not pure:"; echo "$hits"; bad=1
    fi
  fi
  return $bad
}

if [ "${1:-}" = "--self-test" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  plant() { # name, file, line
    rm -rf "$tmp/src"; cp -r src "$tmp/src"
    printf '%s\n' "$3" >> "$tmp/src/$2"
    if check "$tmp/src" >/dev/null; then
      echo "check-layers self-test FAILED: a planted $1 was not caught"; exit 1
    fi
    echo "check-layers self-test: planted $1 in src/$2 -> refused"
  }
  plant "HTTP import in the pipeline" pipeline/mod.rs 'use crate::http::ApiError;'
  plant "warp import in the agents service" agents.rs 'use warp::Filter;'
  plant "handler call in the workers" daemon/workers.rs 'use crate::http::handlers::dispatch;'
  plant "second http entry in the daemon" daemon/start.rs 'use crate::http::handlers;'
  plant "composition-root import in the domain" sessions.rs 'use crate::app::App;'
  plant "async code in the policy engine" policy/mod.rs 'async fn fetch() {}'
  plant "clock read in the policy engine" policy/scope.rs 'fn t() -> std::time::SystemTime { std::time::SystemTime::now() }'
  rm -rf "$tmp/src"; cp -r src "$tmp/src"
  check "$tmp/src" >/dev/null || { echo "check-layers self-test FAILED: the clean copy was refused"; exit 1; }
  echo "check-layers self-test: passed"
  exit 0
fi

src="${1:-src}"
if check "$src"; then
  echo "check-layers: $src passes the layer rule"
else
  exit 1
fi
