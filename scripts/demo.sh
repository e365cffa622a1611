#!/usr/bin/env bash
# The main job: set the machine up, build everything, then on this machine
# bring up a monitor, two Postgres nodes and pg_autoproxy (127.0.0.1, free
# ports, a temporary directory, Postgres running as an unprivileged user),
# show the cluster, and lose the primary's host while a client writes
# through the proxy. Everything started here is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
monitor-ext/install.sh
echo "== building pg_autoctl and pg_autoproxy"
cargo build --quiet --bins

BIN="$PWD/target/debug"
PG_BIN=/usr/lib/postgresql/15/bin
DEMO="$(mktemp -d /tmp/pgaf-demo.XXXXXX)"
export XDG_CONFIG_HOME="$DEMO/xdg/config" XDG_DATA_HOME="$DEMO/xdg/data" XDG_RUNTIME_DIR="$DEMO/xdg/run"
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
if [ "$(id -u)" = 0 ]; then
    # pg_autoctl becomes the owner of PGDATA (here: postgres) by itself.
    chown -R postgres: "$DEMO"
fi

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -z "${PGAF_DEMO_KEEP:-}" ]; then rm -rf "$DEMO"; else echo "kept $DEMO"; fi
}
trap cleanup EXIT

free_port() {
    local p
    while :; do
        p=$(( 20000 + RANDOM % 30000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND every 0.2 s.
wait_for() {
    local what=$1 limit=$2; shift 2
    local deadline=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "timed out after ${limit}s waiting for $what; logs are in $DEMO" >&2
            PGAF_DEMO_KEEP=1
            exit 1
        fi
        sleep 0.2
    done
}

MON_PORT=$(free_port); N1_PORT=$(free_port); N2_PORT=$(free_port); PROXY_PORT=$(free_port); ADMIN_PORT=$(free_port)
MONITOR="postgres://autoctl_node@127.0.0.1:$MON_PORT/pg_auto_failover?sslmode=prefer"
COMMON=(--hostname 127.0.0.1 --listen 127.0.0.1 --auth trust --no-ssl)

states() {
    "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$MON_PORT" -U autoctl_node pg_auto_failover -c \
        "SELECT string_agg(nodename || '=' || current_group_state || '/' || assigned_group_state, ' ' ORDER BY nodename)
           FROM pgautofailover.current_state('default')"
}
has_states() { [ "$(states)" = "$1" ]; }

echo "== monitor on port $MON_PORT, nodes on $N1_PORT and $N2_PORT, proxy on $PROXY_PORT (in $DEMO)"
"$BIN/pg_autoctl" create monitor --pgdata "$DEMO/monitor" --pgport "$MON_PORT" "${COMMON[@]}" --run \
    >"$DEMO/monitor.log" 2>&1 &
PIDS+=($!)
wait_for "the monitor" 60 "$PG_BIN/psql" -X -h 127.0.0.1 -p "$MON_PORT" -U autoctl_node pg_auto_failover -c "SELECT 1 FROM pgautofailover.formation"

start_node() { # name port [create]
    if [ "${3:-}" = create ]; then
        "$BIN/pg_autoctl" create postgres --pgdata "$DEMO/$1" --pgport "$2" --name "$1" --monitor "$MONITOR" \
            "${COMMON[@]}" --run >>"$DEMO/$1.log" 2>&1 &
    else
        "$BIN/pg_autoctl" run --pgdata "$DEMO/$1" >>"$DEMO/$1.log" 2>&1 &
    fi
    PIDS+=($!)
    eval "PID_$1=$!"
}
start_node node1 "$N1_PORT" create
wait_for "node1 to be single" 60 has_states "node1=single/single"
start_node node2 "$N2_PORT" create
wait_for "primary and secondary" 120 has_states "node1=primary/primary node2=secondary/secondary"

echo
echo "\$ pg_autoctl show state --pgdata $DEMO/node1"
"$BIN/pg_autoctl" show state --pgdata "$DEMO/node1"
echo "\$ pg_autoctl show uri --monitor ..."
"$BIN/pg_autoctl" show uri --monitor "$MONITOR"

"$BIN/pg_autoproxy" --monitor "$MONITOR" --listen "127.0.0.1:$PROXY_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    >"$DEMO/proxy.log" 2>&1 &
PIDS+=($!)
proxy_ready() { "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$PROXY_PORT" -U postgres postgres -c "SELECT 1"; }
wait_for "the proxy" 30 proxy_ready
"$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PROXY_PORT" -U postgres postgres \
    -c "CREATE TABLE demo (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp(), port int DEFAULT inet_server_port())"

# A client that writes through the proxy 5 times a second and says where
# each write landed.
client() {
    local n=0
    while [ -f "$DEMO/client.run" ]; do
        n=$((n + 1))
        local out
        if out=$(PGOPTIONS="-c statement_timeout=3s" "$PG_BIN/psql" -X -At -q -h 127.0.0.1 -p "$PROXY_PORT" \
            -U postgres postgres -c "INSERT INTO demo DEFAULT VALUES RETURNING id, inet_server_port()" 2>&1); then
            echo "$(date +%T.%3N) write $n: row ${out%%|*} on port ${out##*|}"
        else
            echo "$(date +%T.%3N) write $n: failed: $(echo "$out" | tail -1)"
        fi
        sleep 0.2
    done
}
touch "$DEMO/client.run"
client >"$DEMO/client.log" 2>&1 &
PIDS+=($!)
sleep 2

echo
echo "== $(date +%T.%3N) losing node1's host: kill -9 of its pg_autoctl and of its postmaster"
PM1=$(head -1 "$DEMO/node1/postmaster.pid")
kill -KILL "$PID_node1" "$PM1"
wait_for "node2 to take over" 60 has_states "node1=primary/demoted node2=wait_primary/wait_primary"
sleep 2
rm -f "$DEMO/client.run"
sleep 1
echo "== what the client saw through the proxy (port $PROXY_PORT):"
cat "$DEMO/client.log"
echo
"$BIN/pg_autoctl" show state --pgdata "$DEMO/node2"

echo "== node1 comes back and rejoins as a standby (pg_rewind)"
start_node node1 "$N1_PORT"
wait_for "node1 to rejoin" 120 has_states "node1=secondary/secondary node2=primary/primary"
"$BIN/pg_autoctl" show state --pgdata "$DEMO/node2"
echo "== done: every process is stopped now"
