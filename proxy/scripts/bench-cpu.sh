#!/bin/sh
# Proxy CPU per transaction with pgbench, against a running pg_autoproxy.
#   bench-cpu.sh <proxy-pid> <port> [pgbench args...]
# Prints TPS and the proxy's CPU time (user+system, from /proc) per
# transaction in microseconds.
set -eu
pid=$1; port=$2; shift 2
PGBENCH=${PGBENCH:-/usr/lib/postgresql/15/bin/pgbench}
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' /proc/"$pid"/stat; }
before=$(cpu)
out=$("$PGBENCH" -h 127.0.0.1 -p "$port" -U postgres -n "$@" postgres 2>&1)
after=$(cpu)
tx=$(echo "$out" | awk '/number of transactions actually processed/ {split($NF, a, "/"); print a[1]}')
tps=$(echo "$out" | awk '/^tps/ {print $3; exit}')
lat=$(echo "$out" | awk '/latency average/ {print $4}')
echo "$out" | grep -E "failed|error" || true
awk -v b="$before" -v a="$after" -v t="$ticks" -v n="$tx" -v tps="$tps" -v lat="$lat" 'BEGIN {
  us = (a - b) / t * 1e6 / n;
  printf "tps=%s latency_ms=%s tx=%d proxy_cpu_us_per_tx=%.2f\n", tps, lat, n, us }'
