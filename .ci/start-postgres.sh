#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the store tests and print its URL on stdout.
#
#   url=$(bash .ci/start-postgres.sh) && export INVARBENCH_TEST_PG_URL=$url
#
# Installs Debian's postgresql when no server binaries are present (as root, with apt-get),
# creates a cluster in $INVARBENCH_PG_DIR (default /tmp/invarbench-pg) that trusts local
# connections, listens on 127.0.0.1:$INVARBENCH_PG_PORT (default 54329) only, and creates the
# database 'invarbench'. Running it again reuses a running server. Progress goes to stderr; on
# any failure it exits non-zero and prints nothing on stdout. The tests create and drop their
# own databases on this server: never point INVARBENCH_TEST_PG_URL at a server you care about.
set -euo pipefail

port=${INVARBENCH_PG_PORT:-54329}
data=${INVARBENCH_PG_DIR:-/tmp/invarbench-pg}
db=invarbench
url="postgresql://postgres@127.0.0.1:${port}/${db}"

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

bin=$(find_bin)
if [ -z "$bin" ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "start-postgres: no PostgreSQL server installed and cannot apt-get install one (not root)" >&2
        exit 1
    fi
    echo "start-postgres: installing Debian's postgresql ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 < /dev/null
    apt-get install -y -qq --no-install-recommends postgresql >&2 < /dev/null
    bin=$(find_bin)
    [ -n "$bin" ] || { echo "start-postgres: postgresql installed but no server binaries found" >&2; exit 1; }
fi

# The server refuses to run as root: run it as the 'postgres' user the package creates.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    echo "start-postgres: reusing the server on port $port" >&2
else
    if [ ! -f "$data/PG_VERSION" ]; then
        rm -rf "$data"
        mkdir -p "$data"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
        chmod 700 "$data"
        as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >&2
    fi
    as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c max_connections=200" start >&2 \
        || { echo "start-postgres: the server did not start; its log:" >&2; tail -n 20 "$data/server.log" >&2; exit 1; }
fi

if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db" >&2
fi
echo "$url"
