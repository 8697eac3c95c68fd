#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server on 127.0.0.1, its URL exported as
# GO_STORE_TEST_POSTGRES_URL, and the server stopped and deleted afterwards. Without a
# PostgreSQL install the command runs alone (ledger tests then use SQLite only), except
# under CI=true, where that is an error. As root the server runs as the system user
# go_store_pg (PostgreSQL refuses to run as root).
set -euo pipefail
initdb=$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$initdb" ]; then
  if [ "${CI:-}" = true ]; then
    echo 'with_postgres: PostgreSQL is not installed (Debian package postgresql)' >&2
    exit 1
  fi
  echo 'with_postgres: PostgreSQL not installed; ledger tests run on SQLite only' >&2
  exec "$@"
fi
bindir=$(dirname "$initdb")
work=$(mktemp -d /tmp/go_store_pg.XXXXXX)
run_as=()
if [ "$(id -u)" -eq 0 ]; then
  id go_store_pg >/dev/null 2>&1 || useradd --system --no-create-home go_store_pg
  chown go_store_pg "$work"
  run_as=(runuser -u go_store_pg --)
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${run_as[@]}" "$bindir/initdb" -D "$work/db" -U postgres -A trust >"$work/initdb.log" 2>&1 \
  || { cat "$work/initdb.log" >&2; exit 1; }
"${run_as[@]}" "$bindir/pg_ctl" -D "$work/db" -l "$work/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $work -c fsync=on" start >/dev/null \
  || { cat "$work/server.log" >&2; exit 1; }
stop() {
  "${run_as[@]}" "$bindir/pg_ctl" -D "$work/db" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap stop EXIT
export GO_STORE_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
echo "with_postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
"$@"
