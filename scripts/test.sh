#!/usr/bin/env bash
# Run every test of the repository: setup, the unit tests and the model
# check of the workspace, the monitor extension's own checks, then the
# integration tests against real Postgres processes.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
monitor-ext/install.sh

echo "== workspace tests (no Postgres needed)"
cargo nextest run --workspace --no-fail-fast

echo "== monitor extension: sans-I/O health-check tests"
(cd monitor-ext && cargo test --quiet -p pgaf-healthcheck)

echo "== integration tests against real Postgres"
# The scenario tests run the binaries (pg_autoctl, pg_autoproxy).
cargo build --bins
cargo nextest run -p pgaf-tests --features integration --no-fail-fast --test-threads 2 \
    -E 'not binary(fault_campaign)'

echo "== a short seeded fault campaign (tests/tests/fault_campaign.rs)"
# Alone: its faults are timed. The long campaign is bench/faults/run.sh.
cargo nextest run -p pgaf-tests --features integration --no-fail-fast --test fault_campaign
