#!/usr/bin/env bash
# Debian's upstream pg_auto_failover 2.0, unpacked privately for the interop
# tests and bench/failover. Nothing is installed in the system: upstream's
# pg_autoctl and extension would replace ours.
#
#   scripts/upstream.sh        # prints the directory (last line of stdout)
#
# The directory ($PGAF_UPSTREAM_DIR, default target/upstream, or
# /var/tmp/pgaf-upstream when the postgres user cannot enter target/) holds:
#   bin/pg_autoctl     upstream's keeper (package pg-auto-failover-cli)
#   pg/                a private copy of the system PostgreSQL 15 tree, same
#                      relative layout (PostgreSQL is relocatable):
#                      pg/lib/postgresql/15/{bin,lib}, pg/share/postgresql/15,
#                      with upstream's extension (postgresql-15-auto-failover)
#                      in place of ours; pg/lib/postgresql/15/bin/pg_ctl runs
#                      an upstream monitor while ours stays in the system tree
#   debs/              the two .debs as downloaded
#   stamp              what it was made from
#
# Everything in it can be rebuilt from apt and the system tree; it is
# rebuilt when the system PostgreSQL, the packages' versions or this script
# change, and otherwise this script returns in well under a second. Runs as
# root or as a user (apt-get update and missing libraries then go through
# sudo). Concurrent runs (parallel tests) serialise on a lock.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
# Upstream's pg_autoctl and Postgres run as the postgres user when we are
# root: a checkout that user cannot enter (below /root) gets the directory
# in /var/tmp instead of target/.
default="$repo/target/upstream"
mkdir -p "$repo/target"
if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 &&
    ! runuser -u postgres -- test -x "$repo/target" 2>/dev/null; then
    default=/var/tmp/pgaf-upstream
fi
dir="${PGAF_UPSTREAM_DIR:-$default}"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
PACKAGES=(pg-auto-failover-cli postgresql-15-auto-failover)

log() { echo "upstream.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[ -x "$PG_CONFIG" ] || die "$PG_CONFIG not found: run scripts/setup.sh (PostgreSQL 15)"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9

# What the private tree is made from: this script, the system PostgreSQL.
pg_version="$("$PG_CONFIG" --version)"
script_sum="$(sha256sum "$0" | cut -d' ' -f1)"
want="script $script_sum
system $pg_version"

ready() {
    [ -f "$dir/stamp" ] && [ "$(head -n 2 "$dir/stamp")" = "$want" ] &&
        [ -x "$dir/bin/pg_autoctl" ] &&
        [ -f "$dir/pg/lib/postgresql/15/lib/pgautofailover.so" ] &&
        [ -f "$dir/pg/share/postgresql/15/extension/pgautofailover.control" ]
}

if ready; then
    echo "$dir"
    exit 0
fi

log "unpacking ${PACKAGES[*]} and a private PostgreSQL 15 tree into $dir"
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/debs" "$tmp/unpack"
# apt downloads as its sandbox user when it can write the directory.
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$tmp/debs"; fi
trap 'rm -rf "$tmp"' EXIT

# apt-get download needs the package lists (empty on a fresh container).
download() { (cd "$tmp/debs" && apt-get download -q "${PACKAGES[@]}" 2>&1) >&2; }
if ! download; then
    log "apt-get download failed; refreshing the package lists"
    $sudo apt-get update -qq >&2
    download || die "cannot download ${PACKAGES[*]} with apt-get"
fi

versions=""
for deb in "$tmp"/debs/*.deb; do
    dpkg-deb -x "$deb" "$tmp/unpack"
    versions+="$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"$'\n'
done

# The shared libraries upstream's binaries need (libncurses6 is not in a
# minimal Debian): install the packages the .debs depend on, except
# PostgreSQL itself and the packages being unpacked.
missing=()
for deb in "$tmp"/debs/*.deb; do
    for p in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -e 's/([^)]*)//g' -e 's/|.*//' -e 's/ //g'); do
        case "$p" in pg-auto-failover-cli | postgresql-15) continue ;; esac
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing the libraries upstream's binaries need: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

mkdir -p "$tmp/bin"
cp "$tmp/unpack/usr/bin/pg_autoctl" "$tmp/bin/pg_autoctl"
if ldd "$tmp/bin/pg_autoctl" | grep -q "not found"; then
    ldd "$tmp/bin/pg_autoctl" | grep "not found" >&2
    die "upstream's pg_autoctl misses shared libraries"
fi

# The private PostgreSQL tree: the system's bin and lib below
# lib/postgresql/15, its share below share/postgresql/15, so that the copied
# binaries find the copied share and lib directories.
bindir="$("$PG_CONFIG" --bindir)"
pkglibdir="$("$PG_CONFIG" --pkglibdir)"
sharedir="$("$PG_CONFIG" --sharedir)"
pg="$tmp/pg"
mkdir -p "$pg/lib/postgresql/15" "$pg/share/postgresql"
cp -a "$bindir" "$pg/lib/postgresql/15/bin"
cp -a "$pkglibdir" "$pg/lib/postgresql/15/lib"
cp -a "$sharedir" "$pg/share/postgresql/15"
got="$("$pg/lib/postgresql/15/bin/pg_config" --sharedir)"
[ "$got" = "$pg/share/postgresql/15" ] ||
    die "the copied PostgreSQL is not relocatable: its pg_config --sharedir says $got"

# Our extension (installed by monitor-ext/install.sh) out, upstream's in.
rm -rf "$pg"/lib/postgresql/15/lib/pgautofailover.so \
    "$pg"/lib/postgresql/15/lib/bitcode/pgautofailover* \
    "$pg"/share/postgresql/15/extension/pgautofailover*
cp -a "$tmp"/unpack/usr/lib/postgresql/15/lib/. "$pg/lib/postgresql/15/lib/"
cp -a "$tmp"/unpack/usr/share/postgresql/15/extension/. "$pg/share/postgresql/15/extension/"
rm -rf "$tmp/unpack"

# Postgres runs as the unprivileged postgres user: it must read everything.
chmod -R a+rX "$tmp"
printf '%s\n%s' "$want" "$versions" >"$tmp/stamp"

rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
log "ready: $(tr '\n' ' ' <"$dir/stamp" | sed 's/script [0-9a-f]* //')"
echo "$dir"
