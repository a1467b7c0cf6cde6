#!/usr/bin/env bash
# Assembles a target sysroot from Debian's own packages for that architecture, the way a board
# vendor's SDK (Yocto, Buildroot) ships one: downloaded and unpacked, never installed on this
# machine (apt runs with its own package lists and an empty dpkg status, so the host's package
# database, architectures and OpenSSL stay untouched).
#
#   scripts/sysroot.sh arm64|armhf [CACHE_DIR]     # prints the sysroot's path on stdout
#
# CACHE_DIR defaults to build/sysroot. The sysroot is cached there under a key made of the
# package versions (CACHE_DIR/<arch>-<key>/); a new Debian point release makes a new one. The
# package lists are refreshed when older than a day.
#
# Packages: libc6 libc6-dev libgcc-s1 libssl3 libssl-dev linux-libc-dev libcrypt1 libcrypt-dev
# (everything a C program or the Rust library needs to compile and link against OpenSSL; the
# host-side tools libc6-dev depends on are not needed). Absolute symlinks inside (libssl.so ->
# /usr/lib/..., lib/ld-linux-*.so -> /lib/...) are rewritten as relative ones so the linker and
# qemu -L resolve them inside the sysroot.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

arch="${1:?usage: sysroot.sh arm64|armhf [CACHE_DIR]}"
cache="${2:-$KVS_ROOT/build/sysroot}"
case "$arch" in
  arm64 | armhf) ;;
  *) kvs_die "unsupported architecture '$arch' (arm64, armhf)" ;;
esac
packages=(libc6 libc6-dev libgcc-s1 libssl3 libssl-dev linux-libc-dev libcrypt1 libcrypt-dev)

apt_dir="$cache/apt-$arch"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
apt_opts=(-q -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
          -o "Dir::State::status=/dev/null" -o "Debug::NoLocking=1")

stamp="$apt_dir/updated"
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]; then
  kvs_log "sysroot $arch: refreshing the $arch package lists"
  timeout 600 apt-get "${apt_opts[@]}" update >"$apt_dir/update.log" 2>&1 ||
    { cat "$apt_dir/update.log" >&2; kvs_die "apt-get update for $arch failed"; }
  touch "$stamp"
fi

# The candidate version of each package, e.g. libssl3=3.0.17-1~deb12u2.
pins=()
for p in "${packages[@]}"; do
  v="$(apt-cache "${apt_opts[@]}" show --no-all-versions "$p:$arch" 2>/dev/null |
    sed -n 's/^Version: //p' | head -n1)"
  [ -n "$v" ] || kvs_die "no $arch package '$p' in the package lists"
  pins+=("$p=$v")
done
key="$(printf '%s\n' "${pins[@]}" | sha256sum | cut -c1-12)"
root="$cache/$arch-$key"
if [ -f "$root/.kvs-sysroot" ]; then
  printf '%s\n' "$root"
  exit 0
fi

kvs_log "sysroot $arch: downloading ${pins[*]}"
work="$cache/.work-$arch-$$"
rm -rf "$work"
mkdir -p "$work/debs" "$work/root"
trap 'rm -rf "$work"' EXIT
dl=()
for pin in "${pins[@]}"; do dl+=("${pin%%=*}:$arch=${pin#*=}"); done
(cd "$work/debs" && timeout 600 apt-get "${apt_opts[@]}" download "${dl[@]}" >"$work/download.log" 2>&1) ||
  { cat "$work/download.log" >&2; kvs_die "apt-get download for $arch failed"; }
for deb in "$work/debs"/*.deb; do
  dpkg-deb -x "$deb" "$work/root"
done

# Absolute symlinks point into the host's / : make them relative to their place in the sysroot.
while IFS= read -r -d '' link; do
  target="$(readlink "$link")"
  case "$target" in
    /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$work/root$target")" "$link" ;;
  esac
done < <(find "$work/root" -type l -print0)
# An empty ld.so.cache: qemu -L redirects the loader's /etc/ld.so.cache here, so it never reads
# the host's (which may list another glibc's libraries for this architecture).
mkdir -p "$work/root/etc"
: >"$work/root/etc/ld.so.cache"

printf '%s\n' "${pins[@]}" >"$work/root/.kvs-sysroot"
rm -rf "$root"
mv "$work/root" "$root"
kvs_log "sysroot $arch ready: $root ($(du -sh "$root" | cut -f1))"
printf '%s\n' "$root"
