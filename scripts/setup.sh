#!/usr/bin/env bash
# Make a fresh Debian 12 ready to build and test this repository:
# PostgreSQL 15 (server and headers), clang/libclang for pgrx, the tools the
# tests and benchmarks drive, cargo-pgrx 0.18.1 and its PG 15 configuration.
# Idempotent: a second run checks and returns in seconds.
set -euo pipefail

PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
PGRX_VERSION=0.18.1

packages=(
    postgresql-15 postgresql-server-dev-15 postgresql-contrib
    # pg_createcluster, for the Debian-cluster adoption test
    postgresql-common
    clang libclang-dev pkg-config
    # the slow-disk test compiles a small preload library (tests/src/slowdisk.rs)
    gcc libc6-dev
    tmux procps iproute2 systemd
    # the fault tests: packet filters inside each host's network namespace
    nftables util-linux
    # promtool, which the metrics test runs on every scrape (the Prometheus
    # server of the package is not used)
    prometheus
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Only promtool is used: stop the server the package just started, if any.
    if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null \
        && systemctl is-active --quiet prometheus 2>/dev/null; then
        $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi

# Debian starts a default cluster on port 5432: the tests do not need it.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 *main .* online'; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo pg_ctlcluster 15 main stop || true
fi

if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION\$"; then
    echo "setup: installing cargo-pgrx $PGRX_VERSION"
    cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked --quiet
fi

if ! grep -qs "^pg15 *=" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi

command -v cargo-nextest >/dev/null || {
    echo "setup: installing cargo-nextest"
    cargo install cargo-nextest --locked --quiet
}
echo "setup: ready"
