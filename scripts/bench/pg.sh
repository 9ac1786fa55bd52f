# A scratch PostgreSQL server for benchmarks, as the tests' TestPostgres starts one: Debian's binaries, initdb as the
# unprivileged user coderunner-pgtest (PostgreSQL refuses root) into a temporary directory, loopback only, trust
# authentication, its socket in that directory. Durable settings (fsync on): the figures are a real server's.
# track_commit_timestamp is on, so that a bench can time from a transaction's COMMIT (pg_xact_commit_timestamp).
#   bench_postgres_start   sets BENCH_PG_URL (postgres://postgres@127.0.0.1:PORT/coderunner?sslmode=disable) and BENCH_PG_DIR
#   bench_postgres_stop    stops it and removes the directory (call it from the script's EXIT trap)
BENCH_PG_BIN=${CODERUNNER_PG_BIN:-/usr/lib/postgresql/15/bin}
BENCH_PG_USER=coderunner-pgtest

bench_postgres_start() {
    [[ -x "$BENCH_PG_BIN/initdb" ]] || { echo "PostgreSQL is missing: apt-get install postgresql" >&2; return 1; }
    id "$BENCH_PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$BENCH_PG_USER"
    BENCH_PG_DIR="$(mktemp -d /tmp/coderunner-bench-pg.XXXXXX)"
    chown "$BENCH_PG_USER" "$BENCH_PG_DIR"
    local port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    runuser -u "$BENCH_PG_USER" -- "$BENCH_PG_BIN/initdb" -D "$BENCH_PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C \
        --no-instructions >/dev/null
    runuser -u "$BENCH_PG_USER" -- "$BENCH_PG_BIN/pg_ctl" -D "$BENCH_PG_DIR/data" -l "$BENCH_PG_DIR/server.log" -w -t 60 \
        -o "-p $port -k $BENCH_PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c track_commit_timestamp=on" start >/dev/null
    runuser -u "$BENCH_PG_USER" -- "$BENCH_PG_BIN/psql" -h "$BENCH_PG_DIR" -p "$port" -U postgres -d postgres -q \
        -c "CREATE DATABASE coderunner" >/dev/null
    BENCH_PG_URL="postgres://postgres@127.0.0.1:$port/coderunner?sslmode=disable"
    # psql on the database, as a JSON list (for a Python client): add -c SQL.
    BENCH_PG_PSQL="[\"runuser\", \"-u\", \"$BENCH_PG_USER\", \"--\", \"$BENCH_PG_BIN/psql\", \"-h\", \"$BENCH_PG_DIR\", \"-p\", \"$port\", \"-U\", \"postgres\", \"-d\", \"coderunner\", \"-qAt\"]"
    export BENCH_PG_URL BENCH_PG_DIR BENCH_PG_PSQL
}

bench_postgres_stop() {
    [[ -n "${BENCH_PG_DIR:-}" && -d "$BENCH_PG_DIR" ]] || return 0
    runuser -u "$BENCH_PG_USER" -- "$BENCH_PG_BIN/pg_ctl" -D "$BENCH_PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    rm -rf "$BENCH_PG_DIR"
}
