#!/usr/bin/env bash
# The second command in the README (and all CI runs: .ci/run calls exactly this).
#
#   scripts/test-all.sh            # every stage
#   scripts/test-all.sh host cross-aarch64   # only the named stages (setup always runs)
#
# Installs what is missing (apt-get update once, then cmake pkg-config libssl-dev valgrind
# gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user ..., rustup targets, botocore, the JS SDK
# for the emulator's fidelity test), then runs
# the stages below, printing each one's duration, and ends with "N passed, N failed".
# Stages: fmt clippy cargo-test emulator host consumer cross-aarch64 cross-armv7 demo
#
# Environment: KVS_TEST_DIR (default build/test), KVS_SKIP_ARMV7=1 to skip the armv7 stage.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KVS_ROOT"

test_dir="${KVS_TEST_DIR:-$KVS_ROOT/build/test}"
mkdir -p "$test_dir"
emulator="${CARGO_TARGET_DIR:-$KVS_ROOT/target}/release/kvs-signaling-emulator"

all_stages=(fmt clippy cargo-test emulator host consumer cross-aarch64 cross-armv7 demo)
if [ $# -gt 0 ]; then
  selected=("$@")
  for s in "${selected[@]}"; do
    case " ${all_stages[*]} " in
      *" $s "*) ;;
      *) kvs_die "unknown stage '$s' (stages: ${all_stages[*]})" ;;
    esac
  done
else
  selected=("${all_stages[@]}")
fi

passed=0
failed=0
report=()

# run_stage NAME FUNCTION: runs FUNCTION in a subshell with `set -e`, records the result.
run_stage() {
  local name="$1" fn="$2" start=$SECONDS rc
  printf '\n======== stage %s ========\n' "$name"
  (set -euo pipefail; "$fn")
  rc=$?
  local took=$((SECONDS - start))
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
    report+=("$(printf '  %-14s PASS  %s' "$name" "$(kvs_fmt_secs $took)")")
    printf -- '-------- stage %s: PASS in %s\n' "$name" "$(kvs_fmt_secs $took)"
  else
    failed=$((failed + 1))
    report+=("$(printf '  %-14s FAIL  %s (exit %d)' "$name" "$(kvs_fmt_secs $took)" $rc)")
    printf -- '-------- stage %s: FAIL (exit %d) in %s\n' "$name" $rc "$(kvs_fmt_secs $took)"
  fi
}

want() {
  local s
  for s in "${selected[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

# ---------------------------------------------------------------------------------------------

stage_setup() {
  kvs_cargo_path
  local pkgs=(cmake pkg-config libssl-dev gcc g++ libc6-dev make perl valgrind
              gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
  if [ "${KVS_SKIP_ARMV7:-0}" != 1 ]; then
    pkgs+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
  fi
  kvs_apt_ensure "${pkgs[@]}"
  kvs_rust_target_ensure aarch64-unknown-linux-gnu
  if [ "${KVS_SKIP_ARMV7:-0}" != 1 ]; then
    kvs_rust_target_ensure armv7-unknown-linux-gnueabihf
  fi
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
  if ! python3 -c 'import botocore' 2>/dev/null; then
    kvs_log "pip install botocore"
    python3 -m pip install --quiet botocore ||
      python3 -m pip install --quiet --break-system-packages botocore ||
      kvs_apt_ensure python3-botocore
  fi
  # The official JS SDK for the emulator's fidelity test, pinned by its package-lock.json, into
  # emulator/tests/js/node_modules (project-local; optional react-native deps left out).
  command -v npm >/dev/null 2>&1 || kvs_apt_ensure nodejs npm
  if ! (cd emulator/tests/js && npm ls --omit=optional >/dev/null 2>&1); then
    kvs_log "npm ci (emulator/tests/js)"
    (cd emulator/tests/js && npm ci --omit=optional --no-audit --no-fund --loglevel=error)
  fi
  cmake --version | head -n1
  cargo --version
  qemu-aarch64 --version | head -n1
}

stage_fmt() { cargo fmt --all -- --check; }

stage_clippy() { cargo clippy --workspace --all-targets -- -D warnings; }

stage_cargo_test() { cargo test --workspace; }

# The emulator as a product: cargo install, the installed binary, its admin API.
stage_emulator() { bash emulator/tests/product.sh "$test_dir/emulator"; }

# Host: library (release profile, system OpenSSL) + C tests under valgrind, shared and static.
stage_host() {
  kvs_build_emulator >/dev/null
  rm -rf "$test_dir/host" # a fresh configure is seconds; compiled Rust stays in target/
  cmake -S . -B "$test_dir/host" -DCMAKE_BUILD_TYPE=Release "-DKVS_EMULATOR=$emulator"
  cmake --build "$test_dir/host"
  ctest --test-dir "$test_dir/host" --output-on-failure --timeout 600
  local so="$test_dir/host/kvs/lib/libkvs_viewer.so.0.1.0"
  strip --strip-unneeded -o "$test_dir/host/libkvs_viewer.stripped.so" "$so"
  printf 'x86_64 libkvs_viewer.so: %s bytes, stripped %s bytes\n' \
    "$(stat -c %s "$so")" "$(stat -c %s "$test_dir/host/libkvs_viewer.stripped.so")"
}

# The installed package from the outside: find_package, pkg-config, relocation, examples.
stage_consumer() {
  [ -f "$test_dir/host/CMakeCache.txt" ] || stage_host
  bash tests/consumer/run.sh "$test_dir/host" "$emulator" "$test_dir/consumer"
}

# cross_stage ARCH TOOLCHAIN CC_PREFIX QEMU_RUNNER...: library (vendored OpenSSL) + C tests run
# under qemu-user against the emulator running natively, then examples-c cross-built against
# the installed package and the viewer run under qemu too. Every emulated run is under timeout.
cross_stage() {
  local arch="$1" toolchain="$2" prefix_triple="$3"
  shift 3
  local runner=("$@")
  local bdir="$test_dir/$arch"
  kvs_build_emulator >/dev/null
  local emu_list
  emu_list="timeout;300;$(IFS=';'; echo "${runner[*]}")"
  rm -rf "$bdir"
  cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_TOOLCHAIN_FILE=$KVS_ROOT/cmake/toolchains/$toolchain" \
    "-DCMAKE_CROSSCOMPILING_EMULATOR=$emu_list" "-DKVS_EMULATOR=$emulator"
  cmake --build "$bdir"
  ctest --test-dir "$bdir" --output-on-failure --timeout 600

  cmake --install "$bdir" --prefix "$bdir/prefix" >/dev/null
  cmake -S examples-c -B "$bdir/examples" -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_TOOLCHAIN_FILE=$KVS_ROOT/cmake/toolchains/$toolchain" \
    "-DKvsViewer_DIR=$bdir/prefix/lib/cmake/KvsViewer" -DKVS_EXAMPLES_WERROR=ON >/dev/null
  cmake --build "$bdir/examples" >/dev/null
  file "$bdir/examples/viewer" 2>/dev/null || true

  local pid="" rc=0
  KVS_EMULATOR_MAX_SECONDS=300 kvs_start_emulator "$emulator" "$bdir/emulator.env" "$bdir/emulator.log"
  pid=$KVS_EMU_PID
  (
    set -a
    # shellcheck disable=SC1091
    . "$bdir/emulator.env"
    set +a
    export KVS_RECV_SECONDS=20
    exec timeout 120 "${runner[@]}" "$bdir/examples/viewer"
  ) >"$bdir/viewer.out" 2>&1 || rc=$?
  kvs_stop_pid "$pid"
  cut -c1-160 "$bdir/viewer.out"
  [ $rc -eq 0 ] || { echo "emulated viewer exited $rc"; return 1; }
  grep -q '^recv SDP_ANSWER sender=- ' "$bdir/viewer.out" || { echo "no answer received"; return 1; }

  local so="$bdir/kvs/lib/libkvs_viewer.so.0.1.0"
  "${prefix_triple}-strip" --strip-unneeded -o "$bdir/libkvs_viewer.stripped.so" "$so"
  printf '%s libkvs_viewer.so: %s bytes, stripped %s bytes (text+data+bss: %s)\n' "$arch" \
    "$(stat -c %s "$so")" "$(stat -c %s "$bdir/libkvs_viewer.stripped.so")" \
    "$(size "$bdir/libkvs_viewer.stripped.so" | awk 'NR==2 {print $4}')"
}

qemu_runner() { # ARCH_QEMU LOADER SYSROOT -> the runner words for this machine
  if [ -e "$2" ]; then echo "$1"; else echo "$1 -L $3"; fi
}

stage_cross_aarch64() {
  # shellcheck disable=SC2046
  cross_stage aarch64 aarch64-linux-gnu.cmake aarch64-linux-gnu \
    $(qemu_runner qemu-aarch64 /lib/ld-linux-aarch64.so.1 /usr/aarch64-linux-gnu)
}

stage_cross_armv7() {
  # shellcheck disable=SC2046
  cross_stage armv7 armv7-linux-gnueabihf.cmake arm-linux-gnueabihf \
    $(qemu_runner qemu-arm /lib/ld-linux-armhf.so.3 /usr/arm-linux-gnueabihf)
}

stage_demo() { bash scripts/demo.sh; }

# ---------------------------------------------------------------------------------------------

total_start=$SECONDS
run_stage setup stage_setup
kvs_cargo_path
for stage in "${all_stages[@]}"; do
  want "$stage" || continue
  if [ "$stage" = cross-armv7 ] && [ "${KVS_SKIP_ARMV7:-0}" = 1 ]; then
    echo "stage cross-armv7 skipped (KVS_SKIP_ARMV7=1)"
    continue
  fi
  run_stage "$stage" "stage_${stage//-/_}"
done

printf '\n======== summary (total %s) ========\n' "$(kvs_fmt_secs $((SECONDS - total_start)))"
printf '%s\n' "${report[@]}"
printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
