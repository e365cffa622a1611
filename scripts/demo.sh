#!/usr/bin/env bash
# The main job: set the machine up, build everything, and show a failover.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
monitor-ext/install.sh
cargo build --release --workspace --quiet

echo "== a failover replayed through the state machine"
cargo run --release --quiet -p pgaf-fsm --example failover
