#!/usr/bin/env bash
# Build the pgautofailover extension in release mode and install it into the
# Postgres found by PG_CONFIG (default: the system PostgreSQL 15). Idempotent:
# files are only copied when they changed, so a second run takes seconds.
#
#   monitor-ext/install.sh                      # build + install (pg15)
#   PG_CONFIG=/usr/lib/postgresql/16/bin/pg_config PGVER=pg16 monitor-ext/install.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
PGVER="${PGVER:-pg15}"

if [ ! -x "$PG_CONFIG" ]; then
    echo "install.sh: $PG_CONFIG not found (set PG_CONFIG)" >&2
    exit 1
fi

# pgrx-pg-sys finds Postgres through ~/.pgrx/config.toml. (Not through
# PGRX_PG_CONFIG_PATH: a variable that differs between builds makes cargo
# rebuild pgrx-pg-sys.)
if ! grep -qs "^$PGVER *=" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    cargo pgrx init "--$PGVER" "$PG_CONFIG" >/dev/null
fi

features=()
if [ "$PGVER" != pg15 ]; then # pg15 is the default feature
    features=(--no-default-features --features "$PGVER")
fi
cargo build --manifest-path "$here/Cargo.toml" --release --lib "${features[@]}"

libdir="$("$PG_CONFIG" --pkglibdir)"
extdir="$("$PG_CONFIG" --sharedir)/extension"

copy() { # copy SRC DEST only when it differs
    if ! cmp -s "$1" "$2"; then
        install -m 0644 "$1" "$2.tmp.$$"
        mv -f "$2.tmp.$$" "$2"
        echo "installed $2"
    fi
}

copy "$here/target/release/libpgautofailover.so" "$libdir/pgautofailover.so"
copy "$here/pgautofailover.control" "$extdir/pgautofailover.control"
for f in "$here"/sql/pgautofailover--*.sql; do
    copy "$f" "$extdir/$(basename "$f")"
done
echo "pgautofailover is installed in $libdir and $extdir"
