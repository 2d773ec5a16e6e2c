#!/usr/bin/env bash
# clusters.sh start|stop|env -- throwaway PostgreSQL clusters for the
# integration tests and the demo: a SOURCE, a TARGET (with pgclone preloaded)
# and a TLS-only source (self-signed certificate made here, hostssl only).
# Everything lives under $PGCLONE_IT_DIR (default /tmp/pgclone-it); the
# clusters run as the OS user postgres and listen on 127.0.0.1 and a socket
# directory of their own. "env" prints the variables the tests read.
set -euo pipefail

BASE=${PGCLONE_IT_DIR:-/tmp/pgclone-it}
PGBIN=${PGBIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
[[ -x $PGBIN/initdb ]] || PGBIN=/usr/lib/postgresql/15/bin
SOCK=$BASE/sock
PG_OS_USER=${PG_OS_USER:-postgres}

as_pg() { if [[ $(id -un) == "$PG_OS_USER" ]]; then "$@"; else runuser -u "$PG_OS_USER" -- "$@"; fi; }

free_port() {
    python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

port_of() { cat "$BASE/$1/port" 2>/dev/null; }

init_one() {   # init_one NAME [tls]
    local name=$1 tls=${2:-} data=$BASE/$1/data port
    [[ -f $data/PG_VERSION ]] && return 0
    mkdir -p "$data"
    chown -R "$PG_OS_USER:" "$BASE/$name"
    chmod 700 "$data"
    as_pg "$PGBIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$BASE/$name/initdb.log"
    port=$(free_port)
    echo "$port" >"$BASE/$name/port"
    {
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$SOCK'"
        echo "max_connections = 50"
        echo "shared_buffers = '256MB'"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "timezone = 'UTC'"
        echo "lc_messages = 'C'"
        echo "log_min_messages = warning"
    } >>"$data/postgresql.conf"
    if [[ $name == tgt ]]; then
        echo "shared_preload_libraries = 'pgclone'" >>"$data/postgresql.conf"
    fi
    # Passwords over TCP, so the tests can check that a wrong one is refused;
    # one database trusts TCP logins, for the test that pgclone does not
    # lend such a server's identity to an operator.
    {
        echo "local all all trust"
        echo "host pgclone_trust all 127.0.0.1/32 trust"
        if [[ $tls == tls ]]; then
            echo "hostssl all all 127.0.0.1/32 scram-sha-256"
        else
            echo "host all all 127.0.0.1/32 scram-sha-256"
        fi
    } >"$data/pg_hba.conf"
    if [[ $tls == tls ]]; then
        local d=$BASE/$name/tls
        mkdir -p "$d"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pgclone-test-ca" \
            -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$data/server.key" -out "$d/server.csr" 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/san.ext"
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
            -days 2 -extfile "$d/san.ext" -out "$data/server.crt" 2>/dev/null
        chmod 600 "$data/server.key"
        chown -R "$PG_OS_USER:" "$d" "$data"
        chmod 644 "$d/ca.crt"
        { echo "ssl = on"; echo "ssl_cert_file = 'server.crt'"; echo "ssl_key_file = 'server.key'"; } \
            >>"$data/postgresql.conf"
    fi
}

start_one() {
    local name=$1 data=$BASE/$1/data
    if as_pg "$PGBIN/pg_ctl" status -D "$data" >/dev/null 2>&1; then return 0; fi
    # A backtrace setting inherited from a cargo shell would flood every ERROR DETAIL.
    as_pg env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$PGBIN/pg_ctl" start -w -t 60 -D "$data" -l "$BASE/$name/server.log" >/dev/null
    as_pg "$PGBIN/psql" -X -q -h "$SOCK" -p "$(port_of "$name")" -U postgres -d postgres \
        -c "ALTER ROLE postgres PASSWORD 'pgclone-test-pw'"
}

stop_one() {
    local data=$BASE/$1/data
    if [[ -f $data/PG_VERSION ]] && as_pg "$PGBIN/pg_ctl" status -D "$data" >/dev/null 2>&1; then
        as_pg "$PGBIN/pg_ctl" stop -w -t 60 -m fast -D "$data" >/dev/null
    fi
}

case "${1:-}" in
    start)
        mkdir -p "$SOCK"
        chown "$PG_OS_USER:" "$BASE" "$SOCK"
        chmod 755 "$BASE" "$SOCK"
        init_one src; init_one tgt; init_one tls tls
        start_one src; start_one tgt; start_one tls
        ;;
    stop)
        stop_one src; stop_one tgt; stop_one tls
        ;;
    reset)
        "$0" stop || true
        rm -rf "$BASE"
        "$0" start
        ;;
    env)
        echo "PGCLONE_IT_SOCK=$SOCK"
        echo "PGCLONE_IT_PGBIN=$PGBIN"
        echo "PGCLONE_IT_SRC_PORT=$(port_of src)"
        echo "PGCLONE_IT_TGT_PORT=$(port_of tgt)"
        echo "PGCLONE_IT_TLS_PORT=$(port_of tls)"
        echo "PGCLONE_IT_TLS_CA=$BASE/tls/tls/ca.crt"
        echo "PGCLONE_IT_PASSWORD=pgclone-test-pw"
        echo "PGCLONE_IT_TGT_DATA=$BASE/tgt/data"
        echo "PGCLONE_IT_TGT_LOG=$BASE/tgt/server.log"
        ;;
    *)
        echo "usage: $0 start|stop|reset|env" >&2
        exit 2
        ;;
esac
