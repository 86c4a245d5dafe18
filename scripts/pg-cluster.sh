#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (../shared/TEST-INFRA.md, spec 13-postgres-ha.md
# §9): Debian's server binaries, `initdb` into a fresh folder, loopback only, fsync off (test
# speed only; no test depends on it), one database `waiaas`.
#
# Usage: scripts/pg-cluster.sh start DIR   initialise and start a cluster in DIR (created, empty);
#                                          prints its URL, also written to DIR/url
#        scripts/pg-cluster.sh stop DIR    stop it (immediate) and delete DIR
#        scripts/pg-cluster.sh down DIR    stop it the way an operator does (`-m fast`), keep DIR
#        scripts/pg-cluster.sh up DIR      start a stopped cluster again, on the same port
#
# initdb refuses to run as root, so as root every server command runs as the `postgres` user,
# who owns DIR.
set -euo pipefail
cmd="${1:?start or stop}" dir="${2:?a folder}"
bin="${WAIAAS_TOOL_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
[ -x "$bin/initdb" ] || { echo "pg-cluster: no initdb (run scripts/install-test-infra.sh)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

server_start() {
  as_pg "$bin/pg_ctl" -D "$dir/db" -l "$dir/server.log" -w \
    -o "-k $dir -p $(cat "$dir/port") -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start \
    >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" -ne 0 ] || chown postgres "$dir"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$bin/initdb" -D "$dir/db" -A trust --no-sync -U postgres >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    server_start
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres waiaas
    url="postgres://postgres@127.0.0.1:$port/waiaas"
    echo "$url" >"$dir/url"
    echo "$url"
    ;;
  stop)
    if [ -d "$dir/db" ]; then as_pg "$bin/pg_ctl" -D "$dir/db" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    ;;
  down) as_pg "$bin/pg_ctl" -D "$dir/db" -m fast -w stop >/dev/null ;;
  up) server_start ;;
  *) echo "pg-cluster: start, stop, down or up" >&2; exit 2 ;;
esac
