#!/usr/bin/env bash
# Benchmarks: speed and memory of the viewer against the bundled emulator (medians with a
# baseline from the same run), and the stripped size of libkvs_viewer.so for x86_64 and aarch64.
#
#   scripts/bench.sh                 # everything
#   KVS_BENCH_SKIP_CROSS=1 scripts/bench.sh   # host only (no aarch64 build)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KVS_ROOT"
kvs_cargo_path
kvs_apt_ensure pkg-config libssl-dev gcc libc6-dev make perl binutils

work="$KVS_ROOT/build/bench"
mkdir -p "$work"
target="${CARGO_TARGET_DIR:-$KVS_ROOT/target}"

emulator=$(kvs_build_emulator)
KVS_EMULATOR_MAX_SECONDS=600 kvs_start_emulator "$emulator" "$work/emulator.env" "$work/emulator.log"
trap 'kvs_stop_pid "$KVS_EMU_PID"' EXIT
(
  set -a
  # shellcheck disable=SC1091
  . "$work/emulator.env"
  set +a
  cargo bench -p kvs-viewer --bench viewer
)

so_size() { # ARCH STRIP SO
  local stripped="$work/libkvs_viewer.$1.stripped.so"
  "$2" --strip-unneeded -o "$stripped" "$3"
  printf '%-8s libkvs_viewer.so stripped: %7d bytes  (text+data+bss %s)  %s\n' "$1" \
    "$(stat -c %s "$stripped")" "$(size "$stripped" | awk 'NR==2 {print $4}')" "$4"
}

echo
cargo build --release -p kvs-viewer --lib >&2
so_size x86_64 strip "$target/release/libkvs_viewer.so" "(OpenSSL linked dynamically)"

if [ "${KVS_BENCH_SKIP_CROSS:-0}" != 1 ]; then
  kvs_apt_ensure gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  kvs_rust_target_ensure aarch64-unknown-linux-gnu
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    cargo build --release -p kvs-viewer --lib --target aarch64-unknown-linux-gnu \
      --features vendored-openssl >&2
  so_size aarch64 aarch64-linux-gnu-strip \
    "$target/aarch64-unknown-linux-gnu/release/libkvs_viewer.so" "(OpenSSL built in, static)"
fi
