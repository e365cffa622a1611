#!/bin/sh
# End-to-end check of pg_autoproxy with real Postgres and libpq, without
# keepers: two Postgres instances play the nodes, a third plays the monitor
# (scripts/fake_monitor.sql), and a scripted failover is checked from the
# clients' side. Everything lives in a temporary directory and is stopped
# at the end (by PID / pg_ctl).
#
#   proxy/scripts/manual-failover.sh [path/to/pg_autoproxy]
#
# Needs PostgreSQL binaries (PGBIN, default /usr/lib/postgresql/15/bin).
# When run as root the servers run as the `postgres` user.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PROXY=${1:-$HERE/../../target/release/pg_autoproxy}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
BASE=${BASE_PORT:-25430}
DIR=$(mktemp -d /tmp/pg_autoproxy-e2e.XXXXXX)
chmod 755 "$DIR"
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else sh -c "$*"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
PSQL="$PGBIN/psql -X -q -At -h 127.0.0.1 -U postgres"
proxy_pid=
cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
  for n in node1 node2 monitor; do
    [ -d "$DIR/$n" ] && as_pg "$PGBIN/pg_ctl -D $DIR/$n -m immediate stop" >/dev/null 2>&1 || true
  done
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; echo "--- proxy log"; tail -20 "$DIR/proxy.log"; exit 1; }

port() { case $1 in node1) echo $((BASE + 1));; node2) echo $((BASE + 2));; monitor) echo $((BASE + 3));; esac; }
for n in node1 node2 monitor; do
  as_pg "$PGBIN/initdb -D $DIR/$n -A trust -U postgres" >/dev/null
  printf "port=%s\nlisten_addresses='127.0.0.1'\nunix_socket_directories='%s'\nfsync=off\n" "$(port $n)" "$DIR" >> "$DIR/$n/postgresql.conf"
  as_pg "$PGBIN/pg_ctl -D $DIR/$n -l $DIR/$n.log -w start" >/dev/null
done
MON="$PSQL -p $(port monitor)"
$MON -f "$HERE/fake_monitor.sql" 2>/dev/null
$MON -c "INSERT INTO pgautofailover.node (nodeid, nodename, nodehost, nodeport, reportedstate, goalstate, health)
         VALUES (1, 'node1', '127.0.0.1', $(port node1), 'primary', 'primary', 1),
                (2, 'node2', '127.0.0.1', $(port node2), 'secondary', 'secondary', 1)"
set_state() { $MON -c "UPDATE pgautofailover.node SET reportedstate = '$2', goalstate = '$3' WHERE nodeid = $1"; }

RW=$((BASE + 4)); RO=$((BASE + 5)); ADMIN=$((BASE + 6))
cat > "$DIR/proxy.toml" <<TOML
[monitor]
uri = "postgres://postgres@127.0.0.1:$(port monitor)/postgres?sslmode=disable"
grace_period = "3s"
[proxy]
hold_timeout = "8s"
drain_timeout = "2s"
[admin]
listen = "127.0.0.1:$ADMIN"
[[listener]]
name = "rw"
listen = "127.0.0.1:$RW"
[[listener]]
name = "ro"
listen = "127.0.0.1:$RO"
role = "read-only"
TOML
"$PROXY" --config "$DIR/proxy.toml" --check >/dev/null || fail "--check"
"$PROXY" --config "$DIR/proxy.toml" > "$DIR/proxy.log" 2>&1 &
proxy_pid=$!
sleep 1
q() { $PSQL -p "$1" -c "$2" 2>&1; }

[ "$(q $RW 'select inet_server_port()')" = "$(port node1)" ] || fail "read-write port does not reach node1"
[ "$(q $RO 'select inet_server_port()')" = "$(port node2)" ] || fail "read-only port does not reach node2"
echo "ok: routing (rw -> node1, ro -> node2)"

# An idle session on the primary, fenced when the failover starts.
printf 'select 1;\n\\! sleep 2\nselect 2;\n' | $PSQL -p $RW > "$DIR/fenced.out" 2>&1 &
sleep 0.5
set_state 1 primary draining
set_state 2 secondary prepare_promotion
# A new connection is held while there is no primary...
( q $RW 'select inet_server_port()' > "$DIR/held.out" ) &
held=$!
sleep 1
set_state 1 demoted demoted
set_state 2 wait_primary wait_primary
wait $held
[ "$(cat "$DIR/held.out")" = "$(port node2)" ] || fail "held connection: $(cat "$DIR/held.out")"
echo "ok: held connection reached the new primary"
sleep 2
grep -q '57P01\|no longer the primary' "$DIR/fenced.out" || fail "fenced session: $(cat "$DIR/fenced.out")"
echo "ok: the old primary's session ended with: $(grep FATAL "$DIR/fenced.out")"

# No primary for longer than the hold time: 57P03 with the reason.
set_state 2 wait_primary draining
out=$(q $RW 'select 1') && fail "expected a refusal, got $out"
echo "$out" | grep -q 'no primary is available' || fail "refusal: $out"
echo "ok: refused after the hold time: $(echo "$out" | grep DETAIL)"
set_state 2 primary primary

# Monitor outage: grace, refusal, recovery.
as_pg "$PGBIN/pg_ctl -D $DIR/monitor -m fast stop" >/dev/null
[ "$(q $RW 'select inet_server_port()')" = "$(port node2)" ] || fail "grace period"
sleep 4
curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null && fail "still ready without the monitor"
as_pg "$PGBIN/pg_ctl -D $DIR/monitor -l $DIR/monitor.log -w start" >/dev/null
sleep 3
curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null || fail "not ready after the monitor came back"
[ "$(q $RW 'select inet_server_port()')" = "$(port node2)" ] || fail "after recovery"
echo "ok: monitor outage (grace, not ready, recovered)"

# Drain.
kill -TERM "$proxy_pid"
wait "$proxy_pid" || fail "exit status after SIGTERM"
proxy_pid=
echo "ok: drained and exited"
echo "PASS"
