#!/usr/bin/env bash
# bench/failover: our cluster and upstream pg_auto_failover 2.0 side by side
# (host loss and switchover timings), written to bench/failover/REPORT.md.
#
#   bench/failover/run.sh                # 5 runs of each measure (~10 min)
#   bench/failover/run.sh --runs 9       # more runs; --help for the options
#
# Installs what is missing (scripts/setup.sh), installs our extension into
# the system PostgreSQL, unpacks upstream privately (scripts/upstream.sh),
# builds our pg_autoctl and the benchmark in release mode, then runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."

scripts/setup.sh
monitor-ext/install.sh
scripts/upstream.sh >/dev/null
cargo build --release -p pgaf-keeper --bin pg_autoctl
cargo build --release -p pgaf-bench --features failover --bin failover
PGAF_AUTOCTL="$PWD/target/release/pg_autoctl" exec target/release/failover "$@"
