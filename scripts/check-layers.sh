#!/usr/bin/env bash
# The architecture of package `waiaas`, checked on the source text (scripts/test.sh runs it, so
# CI does). Each folder of src/ is a layer and may name only the layers listed on its line
# (`crate::<folder>`); docs/architecture.md explains the picture.
#
#   folder     may use
LAYERS='
base       -
rules      base
runtime    base
adapters   base rules runtime
domain     base rules runtime adapters
app        base rules runtime adapters domain
http       base rules runtime adapters domain app
daemon     base rules runtime adapters domain app http::server
cli        base rules runtime adapters domain app daemon
fuzz       base rules runtime adapters domain
'
# (`http::server` on the daemon's line: the daemon starts the server through that one entry and
# names nothing else of `http`.) Three more rules:
#   purity    src/rules is pure: no async, no I/O, no clock reads.
#   http      only src/http names warp or hyper (the server's HTTP stack).
#   ops       storage/src/ops/*.rs never name each other (nor any other module of ops/); what they
#             share lives beside ops/, in the private storage/src/in_tx.rs (in-transaction steps).
#   audit     audit event names are written only in storage/src/audit_events.rs: no
#             `AuditEvent::new("…")` string literal anywhere else.
#
# Usage: scripts/check-layers.sh              check this checkout
#        scripts/check-layers.sh --self-test  plant one violation per rule in a scratch copy and
#                                             assert that the check refuses each of them
set -uo pipefail
cd "$(dirname "$0")/.."

# grep -rnE over the code of .rs files, ignoring comments (`//` to the end of the line).
code_grep() { # pattern, path...
  local pattern="$1"; shift
  grep -rnHE "$pattern" "$@" --include='*.rs' 2>/dev/null \
    | perl -ne 'my ($loc, $code) = /^([^:]+:\d+:)(.*)$/ or next; $code =~ s{//.*$}{}; print if $code =~ /'"$pattern"'/'
}

check() { # root of a copy of the workspace
  local root="$1" src="$1/src" bad=0 hits folder allowed
  # The layer table: every `crate::<top>` a folder names must be on its line (or itself).
  while read -r folder allowed; do
    [ -n "$folder" ] || continue
    hits=$(code_grep 'crate::[a-z_]+(::[a-z_]+)?' "$src/$folder" | perl -ne '
      BEGIN { %ok = map { $_ => 1 } (split(/ /, $ARGV[0]), $ARGV[1]); shift @ARGV; shift @ARGV; }
      my ($loc, $code) = /^([^:]+:\d+:)(.*)$/ or next; $code =~ s{//.*$}{};
      while ($code =~ /crate::([a-z_]+)(?:::([a-z_]+))?/g) {
        next if $ok{$1} || (defined $2 && $ok{"$1::$2"});
        print; last;
      }' "$allowed" "$folder")
    if [ -n "$hits" ]; then
      echo "layers: src/$folder may use only: $allowed"; echo "$hits"; bad=1
    fi
  done <<<"$LAYERS"
  # Top-level entries other than the layer folders: only the crate root files.
  hits=$(find "$src" -mindepth 1 -maxdepth 1 | sed "s|^$src/||" | sort | while read -r e; do
    case " $(echo "$LAYERS" | awk '{print $1}' | tr '\n' ' ') lib.rs main.rs " in *" $e "*) ;; *) echo "src/$e";; esac
  done)
  if [ -n "$hits" ]; then
    echo "layers: src/ holds only the layer folders, lib.rs and main.rs:"; echo "$hits"; bad=1
  fi
  # purity
  hits=$(code_grep '\basync\b|\.await|\btokio\b|std::(fs|net|thread|process)|reqwest|SystemTime::now|Instant::now|Utc::now|Clock\b' \
    "$src/rules")
  if [ -n "$hits" ]; then
    echo "purity: src/rules is not pure:"; echo "$hits"; bad=1
  fi
  # http
  hits=$(code_grep '\bwarp::|\bhyper(_util)?::|use (warp|hyper)' "$src" | grep -vE "^$src/http/")
  if [ -n "$hits" ]; then
    echo "http: warp/hyper outside src/http:"; echo "$hits"; bad=1
  fi
  # ops
  local ops="$root/storage/src/ops" f
  for f in "$ops"/*.rs; do
    [ "$(basename "$f")" = mod.rs ] && continue
    hits=$(code_grep '\b(ops|super)::[a-z_]+' "$f")
    if [ -n "$hits" ]; then
      echo "ops: storage/src/ops/$(basename "$f") names a module of ops/ (share through storage/src/in_tx.rs):"
      echo "$hits"; bad=1
    fi
  done
  # audit
  hits=$(code_grep 'AuditEvent::new\(\s*"' "$src" "$root/storage/src" "$root/backends/src")
  if [ -n "$hits" ]; then
    echo "audit: an audit event name written as a string literal (use waiaas_storage::AuditEventType):"; echo "$hits"; bad=1
  fi
  return $bad
}

if [ "${1:-}" = "--self-test" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  fresh() { rm -rf "$tmp/w"; mkdir -p "$tmp/w/storage"; cp -r src "$tmp/w/src"; cp -r storage/src "$tmp/w/storage/src"; cp -r backends "$tmp/w/backends"; }
  plant() { # what, file (under the copy), line to append
    fresh
    printf '%s\n' "$3" >> "$tmp/w/$2"
    if check "$tmp/w" >/dev/null; then
      echo "check-layers self-test FAILED: a planted $1 was not caught"; exit 1
    fi
    echo "check-layers self-test: planted $1 in $2 -> refused"
  }
  # One violation per line of the layer table: each folder reaching one layer it may not.
  plant "base using rules"           src/base/clock.rs              'use crate::rules::policy::Policy;'
  plant "rules using runtime"        src/rules/summary.rs           'use crate::runtime::Db;'
  plant "runtime using adapters"     src/runtime/db.rs              'use crate::adapters::chains::Registry;'
  plant "adapters using domain"      src/adapters/oracle.rs         'use crate::domain::pipeline::Pipeline;'
  plant "domain using app"           src/domain/sessions.rs         'use crate::app::App;'
  plant "app using http"             src/app/workers.rs             'use crate::http::handlers::dispatch;'
  plant "http using daemon"          src/http/routes.rs             'use crate::daemon::StartOptions;'
  plant "daemon using http handlers" src/daemon/start.rs            'use crate::http::handlers;'
  plant "cli using http"             src/cli/remote/client.rs       'use crate::http::ApiError;'
  plant "new top-level entry"        src/stray.rs                   '//! a module outside the layers'
  plant "async code in rules"        src/rules/policy/mod.rs        'async fn fetch() {}'
  plant "clock read in rules"        src/rules/policy/scope.rs      'fn t() -> std::time::SystemTime { std::time::SystemTime::now() }'
  plant "warp in the domain"         src/domain/agents.rs           'use warp::Filter;'
  plant "ops file naming another"    storage/src/ops/sessions.rs    'use crate::ops::agents::revoke_agent_sessions;'
  plant "ops file naming a sibling"  storage/src/ops/agents.rs      'use super::tx_lifecycle::Broadcast;'
  plant "audit literal"              src/domain/sessions.rs         'fn e() -> waiaas_storage::AuditEvent { waiaas_storage::AuditEvent::new("X", "y") }'
  fresh
  check "$tmp/w" >/dev/null || { echo "check-layers self-test FAILED: the clean copy was refused"; check "$tmp/w"; exit 1; }
  echo "check-layers self-test: passed"
  exit 0
fi

if check "."; then
  echo "check-layers: src/ and storage/src/ops follow the layer rules"
else
  exit 1
fi
