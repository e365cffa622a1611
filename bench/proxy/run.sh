#!/usr/bin/env bash
# bench/proxy/run.sh: pg_autoproxy against Postgres directly, HAProxy (TCP
# mode) and PgBouncer (session mode), interleaved, in one run.
#
#   bench/proxy/run.sh                       # 8 rounds, 5 s per pgbench run (~27 min)
#   ROUNDS=1 DURATION=3 bench/proxy/run.sh   # a quick look
#
# What it starts (all on 127.0.0.1, all stopped by PID when it ends):
#   * a real monitor: `pg_autoctl create monitor` (our extension in the
#     system PostgreSQL 15), and one node registered with it by
#     `pg_autoctl create postgres`, adopting a data directory initialised
#     with the reference harness's settings (fsync, synchronous_commit and
#     full_page_writes off, 256 MB shared buffers, 300 connections, no
#     preloaded libraries); its keeper runs for the whole benchmark;
#   * pg_autoproxy (release build, default settings) following that monitor;
#   * HAProxy in TCP mode and PgBouncer in session mode (Debian packages,
#     installed when missing) with the reference harness's configurations.
#
# Each round runs every workload, and within a workload the targets back to
# back (direct first, then the proxies in an order rotated every round):
# each proxy is compared with a direct run taken seconds earlier.
# Workloads: pgbench -S (select only, scale 10) with 1, 16 and 64 clients
# in simple and prepared mode, -C (a new connection per transaction,
# 8 clients), and a 2 GB
# `COPY (SELECT repeat('x', 1000) FROM generate_series(1, 2000000)) TO STDOUT`
# through psql. The CPU time (utime + stime of all threads) of each proxy
# process is read from /proc before and after each run.
#
# Output: $OUT/raw.tsv (one line per run), $OUT/logs/, $OUT/machine.txt and
# $OUT/summary.md (medians over rounds of the ratios to direct, made by
# `cargo run -p pgaf-bench --bin proxy-report`). Copy summary.md into
# bench/proxy/REPORT.md by hand, with the load it shows.
#
# Env: ROUNDS (8), DURATION (5), CLIENTS (1,16,64), CHURN_CLIENTS (8),
#      COPY_ROWS (2000000), COPY_WIDTH (1000), PORT_BASE (5531: six ports
#      from there), BENCH_DIR (/tmp/pgaf-proxy-bench), OUT
#      ($BENCH_DIR/results/<time>), PG_BIN (/usr/lib/postgresql/15/bin),
#      TARGETS (direct,pg_autoproxy,haproxy,pgbouncer), WORKLOADS
#      (simple,prepared,churn,copy), PROXY_SETTINGS (TOML lines for
#      pg_autoproxy's [proxy] section; none: the defaults), SETTLE (1 s between runs),
#      PGAF_AUTOCTL (a pg_autoctl to use instead of building one; the keeper
#      is off the measured path).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-5}
CLIENTS=${CLIENTS:-1,16,64}
CHURN_CLIENTS=${CHURN_CLIENTS:-8}
COPY_ROWS=${COPY_ROWS:-2000000}
COPY_WIDTH=${COPY_WIDTH:-1000}
PORT_BASE=${PORT_BASE:-5531}
BENCH_DIR=${BENCH_DIR:-/tmp/pgaf-proxy-bench}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
TARGETS=${TARGETS:-direct,pg_autoproxy,haproxy,pgbouncer}
WORKLOADS=${WORKLOADS:-simple,prepared,churn,copy}
PROXY_SETTINGS=${PROXY_SETTINGS:-}
SETTLE=${SETTLE:-1}
OUT=${OUT:-$BENCH_DIR/results/$(date +%Y%m%d-%H%M%S)}
HOST=127.0.0.1
DB=bench

MONITOR_PORT=$PORT_BASE
NODE_PORT=$((PORT_BASE + 1))
PROXY_PORT=$((PORT_BASE + 2))
HAPROXY_PORT=$((PORT_BASE + 3))
PGBOUNCER_PORT=$((PORT_BASE + 4))
ADMIN_PORT=$((PORT_BASE + 5))

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (Postgres and PgBouncer then run as the postgres user)"
id postgres >/dev/null 2>&1 || die "no postgres user: run scripts/setup.sh first"
as_pg() { runuser -u postgres -- "$@"; }

# ------------------------------------------------------------ prerequisites
"$root/scripts/setup.sh" >/dev/null
missing=()
for p in haproxy pgbouncer; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    # The packages' own services are not started (policy-rc.d or no init):
    # the benchmark starts its own instances.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
packages=(-p pgaf-proxy -p pgaf-bench)
[[ -n ${PGAF_AUTOCTL:-} ]] || packages+=(-p pgaf-keeper)
log "building (release): ${packages[*]}; installing the monitor extension"
(cd "$root" && cargo build -q --release "${packages[@]}" --bins)
"$root/monitor-ext/install.sh" >/dev/null
PROXY_BIN=$root/target/release/pg_autoproxy
AUTOCTL_BIN=${PGAF_AUTOCTL:-$root/target/release/pg_autoctl}
REPORT_BIN=$root/target/release/proxy-report

for p in $(seq "$PORT_BASE" $((PORT_BASE + 5))); do
    if ss -Hltn "sport = :$p" | grep -q .; then die "port $p is in use (set PORT_BASE)"; fi
done

# ------------------------------------------------------------ processes
PIDS=()      # everything started here, stopped in reverse order
stop_pid() { # pid label
    local pid=$1 label=$2 deadline
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$label (pid $pid) ignored SIGTERM for 30 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
}
cleanup() {
    local i entry
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        entry=${PIDS[$i]}
        stop_pid "${entry%%:*}" "${entry#*:}"
    done
    # A postmaster left behind by a killed keeper.
    for d in "$BENCH_DIR/node" "$BENCH_DIR/monitor"; do
        if [[ -s $d/postmaster.pid ]]; then
            local pm
            pm=$(head -n1 "$d/postmaster.pid")
            [[ -n $pm ]] && kill -0 "$pm" 2>/dev/null && stop_pid "$pm" "postmaster of $d"
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() { # what port seconds
    local deadline=$((SECONDS + $3))
    until "$PG_BIN/pg_isready" -q -h "$HOST" -p "$2" -t 1; do
        ((SECONDS < deadline)) || die "$1 on port $2 not ready after $3 s"
        sleep 0.2
    done
}

rm -rf "$BENCH_DIR/node" "$BENCH_DIR/monitor" "$BENCH_DIR/xdg" "$BENCH_DIR/conf"
mkdir -p "$BENCH_DIR"/{xdg/config,xdg/data,xdg/run,conf} "$OUT/logs"
chown postgres "$BENCH_DIR" "$BENCH_DIR"/{xdg,xdg/config,xdg/data,xdg/run,conf}
chmod 755 "$BENCH_DIR"
export XDG_CONFIG_HOME=$BENCH_DIR/xdg/config XDG_DATA_HOME=$BENCH_DIR/xdg/data XDG_RUNTIME_DIR=$BENCH_DIR/xdg/run
unset PGDATA PG_AUTOCTL_MONITOR

# The monitor.
log "starting the monitor on $MONITOR_PORT"
setsid "$AUTOCTL_BIN" create monitor --pgdata "$BENCH_DIR/monitor" --pgport "$MONITOR_PORT" \
    --hostname "$HOST" --listen "$HOST" --auth trust --no-ssl --run \
    >"$OUT/logs/monitor.log" 2>&1 </dev/null &
PIDS+=("$!:monitor")
MONITOR_URI="postgres://autoctl_node@$HOST:$MONITOR_PORT/pg_auto_failover?sslmode=disable"
deadline=$((SECONDS + 60))
until "$PG_BIN/psql" -X -q -At "$MONITOR_URI" -c "select count(*) from pgautofailover.formation" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "the monitor is not ready after 60 s (see $OUT/logs/monitor.log)"
    sleep 0.2
done

# The node: a data directory with the reference harness's settings, adopted
# by pg_autoctl (its keeper starts Postgres and registers it as `single`).
log "initialising the node on $NODE_PORT"
as_pg "$PG_BIN/initdb" -D "$BENCH_DIR/node" -A trust -U postgres -E UTF8 --no-locale >"$OUT/logs/initdb.log" 2>&1
cat >>"$BENCH_DIR/node/postgresql.conf" <<EOF

# --- bench/proxy (the reference harness's settings; these lines come after
# pg_autoctl's include, so they win) ---
max_connections = 300
shared_buffers = '256MB'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_preload_libraries = ''
log_min_messages = warning
EOF
setsid "$AUTOCTL_BIN" create postgres --pgdata "$BENCH_DIR/node" --pgport "$NODE_PORT" \
    --hostname "$HOST" --listen "$HOST" --auth trust --no-ssl --monitor "$MONITOR_URI" \
    --name bench --run >"$OUT/logs/node.log" 2>&1 </dev/null &
PIDS+=("$!:keeper")
deadline=$((SECONDS + 90))
until [[ $("$PG_BIN/psql" -X -q -At "$MONITOR_URI" -c \
    "select current_group_state || '/' || assigned_group_state from pgautofailover.current_state('default')" 2>/dev/null) == single/single ]]; do
    ((SECONDS < deadline)) || die "the node did not reach single within 90 s (see $OUT/logs/node.log)"
    sleep 0.2
done
wait_ready postgres "$NODE_PORT" 30
PSQL=("$PG_BIN/psql" -X -q -h "$HOST" -U postgres)
"${PSQL[@]}" -p "$NODE_PORT" -d postgres -c "CREATE DATABASE $DB" >/dev/null
log "pgbench -i -s 10"
"$PG_BIN/pgbench" -i -q -s 10 -h "$HOST" -p "$NODE_PORT" -U postgres "$DB" >"$OUT/logs/pgbench-init.log" 2>&1
"${PSQL[@]}" -p "$NODE_PORT" -d "$DB" -c "VACUUM ANALYZE" >/dev/null

# pg_autoproxy, default settings, following the monitor.
cat >"$BENCH_DIR/conf/pg_autoproxy.toml" <<EOF
[monitor]
uri = "$MONITOR_URI"
[proxy]
$PROXY_SETTINGS
[admin]
listen = "$HOST:$ADMIN_PORT"
[[listener]]
name = "bench"
listen = "$HOST:$PROXY_PORT"
EOF
"$PROXY_BIN" --config "$BENCH_DIR/conf/pg_autoproxy.toml" --check >/dev/null
setsid "$PROXY_BIN" --config "$BENCH_DIR/conf/pg_autoproxy.toml" >"$OUT/logs/pg_autoproxy.log" 2>&1 </dev/null &
PROXY_PID=$!
PIDS+=("$PROXY_PID:pg_autoproxy")

# HAProxy, TCP mode (the reference harness's configuration).
cat >"$BENCH_DIR/conf/haproxy.cfg" <<EOF
global
    maxconn 4000
    log stdout format raw local0 warning

defaults
    mode tcp
    log global
    option dontlognull
    timeout connect 5s
    timeout client  1h
    timeout server  1h

frontend pg_front
    bind $HOST:$HAPROXY_PORT
    default_backend pg_back

backend pg_back
    server pg1 $HOST:$NODE_PORT
EOF
haproxy -c -q -f "$BENCH_DIR/conf/haproxy.cfg"
setsid haproxy -db -f "$BENCH_DIR/conf/haproxy.cfg" >"$OUT/logs/haproxy.log" 2>&1 </dev/null &
HAPROXY_PID=$!
PIDS+=("$HAPROXY_PID:haproxy")

# PgBouncer, session mode (the reference harness's configuration).
printf '"postgres" ""\n' >"$BENCH_DIR/conf/userlist.txt"
cat >"$BENCH_DIR/conf/pgbouncer.ini" <<EOF
[databases]
* = host=$HOST port=$NODE_PORT

[pgbouncer]
listen_addr = $HOST
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $BENCH_DIR/conf/userlist.txt
admin_users = postgres
pool_mode = session
default_pool_size = 100
max_client_conn = 1000
max_db_connections = 0
ignore_startup_parameters = extra_float_digits
logfile = $BENCH_DIR/conf/pgbouncer.log
pidfile = $BENCH_DIR/conf/pgbouncer.pid
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
EOF
chown postgres "$BENCH_DIR"/conf/*
rm -f "$BENCH_DIR/conf/pgbouncer.pid"
as_pg pgbouncer -d -q "$BENCH_DIR/conf/pgbouncer.ini"
deadline=$((SECONDS + 10))
until [[ -s $BENCH_DIR/conf/pgbouncer.pid ]]; do
    ((SECONDS < deadline)) || die "pgbouncer wrote no pid file"
    sleep 0.1
done
PGBOUNCER_PID=$(cat "$BENCH_DIR/conf/pgbouncer.pid")
PIDS+=("$PGBOUNCER_PID:pgbouncer")

for p in "$PROXY_PORT" "$HAPROXY_PORT" "$PGBOUNCER_PORT"; do wait_ready proxy "$p" 30; done
curl -fsS "http://$HOST:$ADMIN_PORT/readyz" >/dev/null || die "pg_autoproxy is not ready"
[[ $("${PSQL[@]}" -p "$PROXY_PORT" -d "$DB" -At -c "select inet_server_port()") == "$NODE_PORT" ]] ||
    die "pg_autoproxy does not reach the node"

# ------------------------------------------------------------ the runs
declare -A PORT_OF=([direct]=$NODE_PORT [pg_autoproxy]=$PROXY_PORT [haproxy]=$HAPROXY_PORT [pgbouncer]=$PGBOUNCER_PORT)
declare -A PID_OF=([direct]="" [pg_autoproxy]=$PROXY_PID [haproxy]=$HAPROXY_PID [pgbouncer]=$PGBOUNCER_PID)
IFS=, read -r -a TLIST <<<"$TARGETS"
IFS=, read -r -a CLIST <<<"$CLIENTS"
IFS=, read -r -a WLIST <<<"$WORKLOADS"
RUNS=()
for w in "${WLIST[@]}"; do
    case $w in
        simple | prepared) for c in "${CLIST[@]}"; do RUNS+=("$w-c$c"); done ;;
        churn) RUNS+=("churn-c$CHURN_CLIENTS") ;;
        copy) RUNS+=(copy) ;;
        *) die "unknown workload $w" ;;
    esac
done

TCK=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of a process (all threads)
    [[ -n $1 ]] || return 0
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
machine_ticks() { awk '/^cpu /{ t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $5 + $6 }' /proc/stat; }

{
    echo "date: $(date -Is)"
    echo "commit: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet -- proxy || echo ' (proxy/ modified)')"
    echo "cpus: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "kernel: $(uname -r)"
    echo "uptime at start: $(uptime)"
    echo "postgres: $("$PG_BIN/postgres" --version)"
    echo "haproxy: $(haproxy -v | head -n1)"
    echo "pgbouncer: $(pgbouncer --version | head -n1)"
    echo "rounds: $ROUNDS, pgbench duration: ${DURATION}s, targets: $TARGETS"
    echo "pg_autoproxy settings: ${PROXY_SETTINGS:-defaults}"
} | tee "$OUT/machine.txt" >&2

printf 'round\tworkload\ttarget\tstatus\ttps\tlat_ms\txacts\tmbps\tbytes\twall_s\tproxy_cpu_s\tload1\tbusy_pct\tpause_busy_pct\n' >"$OUT/raw.tsv"

one_run() { # round workload target
    local rnd=$1 w=$2 t=$3 port=${PORT_OF[$3]} pid=${PID_OF[$3]}
    local logf="$OUT/logs/r$1-$2-$3.log" status=ok rc tps="" lat="" xacts="" mbps="" bytes=""
    local load1 c0 c1 m0 m1 t0 t1 wall cpu busy
    load1=$(cut -d' ' -f1 /proc/loadavg)
    c0=$(cpu_ticks "$pid"); m0=$(machine_ticks); t0=$(date +%s.%N)
    case $w in
        copy)
            bytes=$((COPY_ROWS * (COPY_WIDTH + 1)))
            timeout $((DURATION * 3 + 120)) "${PSQL[@]}" -p "$port" -d "$DB" -v ON_ERROR_STOP=1 \
                -c "COPY (SELECT repeat('x', $COPY_WIDTH) FROM generate_series(1, $COPY_ROWS)) TO STDOUT" \
                >/dev/null 2>"$logf" && rc=0 || rc=$?
            ;;
        *)
            local c=${w##*-c} mode=simple extra=()
            [[ $w == prepared-* ]] && mode=prepared
            [[ $w == churn-* ]] && extra=(-C)
            timeout $((DURATION * 3 + 60)) "$PG_BIN/pgbench" -n -S -M "$mode" "${extra[@]}" -c "$c" \
                -j $((c < 2 ? c : 2)) -T "$DURATION" -h "$HOST" -p "$port" -U postgres "$DB" \
                >"$logf" 2>&1 && rc=0 || rc=$?
            ;;
    esac
    t1=$(date +%s.%N); c1=$(cpu_ticks "$pid"); m1=$(machine_ticks)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    cpu=""
    [[ -n $pid ]] && cpu=$(awk -v a="$c0" -v b="$c1" -v k="$TCK" 'BEGIN { printf "%.2f", (b - a) / k }')
    busy=$(awk -v a="$m0" -v b="$m1" 'BEGIN { split(a, x, " "); split(b, y, " "); dt = y[1] - x[1];
        if (dt > 0) printf "%.0f", 100 * (dt - (y[2] - x[2])) / dt }')
    if [[ $w == copy ]]; then
        ((rc == 0)) && mbps=$(awk -v b="$bytes" -v s="$wall" 'BEGIN { printf "%.1f", b / 1e6 / s }')
    else
        tps=$(awk '/^tps = /{ print $3; exit }' "$logf")
        lat=$(awk '/^latency average = /{ print $4; exit }' "$logf")
        xacts=$(awk -F': ' '/^number of transactions actually processed/{ split($2, a, "/"); print a[1]; exit }' "$logf")
        grep -q -E 'aborted' "$logf" && status=aborted
        [[ -z $tps ]] && status=noparse
    fi
    ((rc == 124)) && status=timeout
    [[ $status == ok ]] && ((rc != 0)) && status=rc$rc
    # The machine's CPU use during the pause after the run, when nothing of
    # the benchmark runs: what other users of the machine take.
    local p0 p1 pause
    p0=$(machine_ticks)
    sleep "$SETTLE"
    p1=$(machine_ticks)
    pause=$(awk -v a="$p0" -v b="$p1" 'BEGIN { split(a, x, " "); split(b, y, " "); dt = y[1] - x[1];
        if (dt > 0) printf "%.0f", 100 * (dt - (y[2] - x[2])) / dt }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rnd" "$w" "$t" "$status" "$tps" "$lat" \
        "$xacts" "$mbps" "$bytes" "$wall" "$cpu" "$load1" "$busy" "$pause" >>"$OUT/raw.tsv"
    printf '  r%s %-14s %-13s %-7s tps=%-9s lat=%-6s MB/s=%-7s cpu=%-6s load1=%s pause_busy=%s%%\n' "$rnd" "$w" "$t" \
        "$status" "${tps:--}" "${lat:--}" "${mbps:--}" "${cpu:--}" "$load1" "$pause" >&2
}

for ((rnd = 1; rnd <= ROUNDS; rnd++)); do
    log "round $rnd/$ROUNDS (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    # Direct first, then the proxies in an order rotated every round, so
    # that no proxy always runs right after direct (whose churn leaves the
    # postmaster reaping hundreds of backends, for example).
    order=("${TLIST[0]}")
    others=("${TLIST[@]:1}")
    for ((k = 0; k < ${#others[@]}; k++)); do
        order+=("${others[$(((k + rnd - 1) % ${#others[@]}))]}")
    done
    for w in "${RUNS[@]}"; do
        for t in "${order[@]}"; do one_run "$rnd" "$w" "$t"; done
    done
done
echo "uptime at end: $(uptime)" | tee -a "$OUT/machine.txt" >&2

"$REPORT_BIN" "$OUT/raw.tsv" "$OUT/machine.txt" | tee "$OUT/summary.md"
log "results in $OUT"
