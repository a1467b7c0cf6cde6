#!/usr/bin/env bash
# The minimum-size build of the C library: libkvs_viewer.so and libkvs_viewer.a with the
# standard library rebuilt for size, panics as immediate aborts, no panic locations.
#
#   scripts/build-min-size.sh                 # host target
#   scripts/build-min-size.sh --target aarch64-unknown-linux-gnu   # with the usual cross env
#
# The trade-off, exactly: a bug that would panic (an internal error the default build turns into
# KVS_ERR_INTERNAL with a message, the process going on) instead ends the process at once with
# SIGABRT and no message. Everything else — the API, the ABI, behaviour, errors, logs — is the
# same. It needs the nightly toolchain and its rust-src component (-Zbuild-std), which this
# script adds with rustup when missing. The default build stays on stable.
#
# Prints progress on stderr; the last line on stdout is the path of the .so it built.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KVS_ROOT"
kvs_cargo_path

target=""
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="${2:?--target needs a triple}"; shift 2 ;;
    --target=*) target="${1#--target=}"; shift ;;
    *) kvs_die "unknown argument: $1 (usage: $0 [--target TRIPLE])" ;;
  esac
done
[ -n "$target" ] || target=$(rustc -vV | sed -n 's/^host: //p')

command -v rustup >/dev/null 2>&1 || kvs_die "rustup not found: the minimum-size build needs the nightly toolchain"
rustup run nightly rustc --version >/dev/null 2>&1 ||
  kvs_die "no nightly toolchain: rustup toolchain install nightly --profile minimal"
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  kvs_log "rustup component add rust-src --toolchain nightly"
  rustup component add rust-src --toolchain nightly >&2
fi
if [ "$target" != "$(rustc +nightly -vV | sed -n 's/^host: //p')" ]; then
  rustup target list --toolchain nightly --installed 2>/dev/null | grep -qx "$target" ||
    rustup target add --toolchain nightly "$target" >&2
fi

# Its own target directory: nightly and stable artifacts never mix.
out="${KVS_MIN_SIZE_TARGET_DIR:-$KVS_ROOT/target/min-size-nightly}"
triple_upper=$(printf '%s' "$target" | tr 'a-z-' 'A-Z_')
flags_var="CARGO_TARGET_${triple_upper}_RUSTFLAGS"
# Appended to the target's own rustflags (a cross build's --sysroot link argument stays).
extra="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none"
kvs_log "cargo +nightly rustc --profile min-size --target $target (std rebuilt: a few minutes)"
env "$flags_var=${!flags_var:-} $extra" \
  cargo +nightly rustc -Zbuild-std=std,panic_abort --target "$target" \
    --target-dir "$out" --profile min-size -p kvs-viewer --lib \
    --crate-type cdylib --crate-type staticlib >&2

so="$out/$target/min-size/libkvs_viewer.so"
[ -f "$so" ] || kvs_die "cargo did not produce $so"
echo "$so"
