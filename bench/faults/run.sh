#!/usr/bin/env bash
# bench/faults: the fault campaign on our cluster and on upstream
# pg_auto_failover 2.0, same seeded schedule, then bench/faults/REPORT.md.
#
#   bench/faults/run.sh SEED COUNT [UPSTREAM_COUNT]
#
# COUNT faults on ours; the schedule's first UPSTREAM_COUNT (default COUNT)
# on upstream, whose failovers take a minute each. Outcomes go to
# bench/faults/results/{ours,upstream}-SEED.jsonl; a second run with a
# larger COUNT resumes, running only the faults not in them yet (remove
# them to start over). Exits non-zero when a goal of the campaign is not met (the
# report says which). Needs root (network namespaces) and takes hours.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ $# -lt 2 ]; then
    echo "usage: $0 SEED COUNT [UPSTREAM_COUNT]" >&2
    exit 2
fi
seed=$1
count=$2
upstream_count=${3:-$count}

scripts/setup.sh
monitor-ext/install.sh
scripts/upstream.sh >/dev/null
cargo build --release --bins
cargo build --release -p pgaf-bench --features faults --bin faults

results=bench/faults/results
mkdir -p "$results"
target/release/faults run --seed "$seed" --count "$count" --flavor ours \
    --out "$results/ours-$seed.jsonl"
if [ "$upstream_count" -gt 0 ]; then
    target/release/faults run --seed "$seed" --count "$upstream_count" --flavor upstream \
        --out "$results/upstream-$seed.jsonl"
fi
files=("$results/ours-$seed.jsonl")
[ -f "$results/upstream-$seed.jsonl" ] && files+=("$results/upstream-$seed.jsonl")
target/release/faults report --out bench/faults/REPORT.md \
    --command "bench/faults/run.sh $seed $count $upstream_count" "${files[@]}"
