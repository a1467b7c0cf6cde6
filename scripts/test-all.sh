#!/usr/bin/env bash
# The second command in the README (and all CI runs: .ci/run calls exactly this).
#
#   scripts/test-all.sh            # every stage
#   scripts/test-all.sh host cross-aarch64   # only the named stages (setup always runs)
#
# Installs what is missing (apt-get update once, then cmake pkg-config libssl-dev valgrind
# gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user ..., GStreamer for the media stage,
# rustup targets, botocore, the JS SDK for the emulator's fidelity test), then runs
# the stages below, printing each one's duration, and ends with "N passed, N failed".
# Stages: fmt clippy cargo-test fuzz emulator host consumer cross-aarch64 cross-armv7 cross-vendored
# readme demo media sanitize (cross-aarch64 and cross-armv7 build against sysroots that scripts/sysroot.sh assembles from
# Debian's target packages, cached in build/sysroot; cross-vendored is the no-sysroot route,
# armv7 with OpenSSL built from source; readme runs the README's marked snippets).
#
# Environment: KVS_TEST_DIR (default build/test), KVS_SKIP_ARMV7=1 to skip the armv7 stage,
# KVS_FUZZ_SECONDS (default 20) per fuzz target, KVS_SANITIZERS (default "address") for sanitize.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KVS_ROOT"

test_dir="${KVS_TEST_DIR:-$KVS_ROOT/build/test}"
mkdir -p "$test_dir"
emulator="${CARGO_TARGET_DIR:-$KVS_ROOT/target}/release/kvs-signaling-emulator"

kvs_version="$(sed -n 's/^version = "\([0-9.]*\)"$/\1/p' "$KVS_ROOT/Cargo.toml" | head -n1)"

all_stages=(fmt clippy cargo-test fuzz emulator host consumer cross-aarch64 cross-armv7 cross-vendored min-size readme demo media sanitize)
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
  if want media; then
    pkgs+=("${media_pkgs[@]}")
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
  if want sanitize || want min-size; then
    rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
    rustup component list --toolchain nightly --installed | grep -q '^rust-src' ||
      rustup component add rust-src --toolchain nightly
  fi
  if want fuzz; then
    rustup run nightly cargo --version >/dev/null 2>&1 ||
      rustup toolchain install nightly --profile minimal
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
      local start=$SECONDS
      kvs_log "cargo install cargo-fuzz"
      cargo install cargo-fuzz --locked
      printf 'cargo-fuzz installed in %s\n' "$(kvs_fmt_secs $((SECONDS - start)))"
    fi
    cargo +nightly fuzz --version
  fi
  cmake --version | head -n1
  cargo --version
  qemu-aarch64 --version | head -n1
}

stage_fmt() { cargo fmt --all -- --check; }

stage_clippy() { cargo clippy --workspace --all-targets -- -D warnings; }

stage_cargo_test() { cargo test --workspace; }

# Every fuzz target (fuzz/, libFuzzer + ASan, nightly) for KVS_FUZZ_SECONDS, starting from the
# committed seeds in fuzz/corpus/<target>; what the fuzzer finds goes to a scratch corpus. Any
# crash fails the stage and leaves the input in fuzz/artifacts/<target>/.
stage_fuzz() {
  local secs="${KVS_FUZZ_SECONDS:-20}" dir="$test_dir/fuzz" start=$SECONDS t log
  cargo +nightly fuzz build
  printf 'fuzz targets built in %s\n' "$(kvs_fmt_secs $((SECONDS - start)))"
  for t in $(cargo +nightly fuzz list); do
    mkdir -p "$dir/corpus/$t"
    log="$dir/$t.log"
    if ! cargo +nightly fuzz run "$t" "$dir/corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
      tail -n 60 "$log"
      printf 'fuzz %s FAILED; reproduce: cargo +nightly fuzz run %s fuzz/artifacts/%s/<file>\n' \
        "$t" "$t" "$t"
      return 1
    fi
    printf 'fuzz %-18s %s\n' "$t" "$(grep -m1 '^Done ' "$log")"
  done
}

# The emulator as a product: cargo install, the installed binary, its admin API.
stage_emulator() { bash emulator/tests/product.sh "$test_dir/emulator"; }

# Host: library (release profile, system OpenSSL) + C tests under valgrind, shared and static.
stage_host() {
  kvs_build_emulator >/dev/null
  rm -rf "$test_dir/host" # a fresh configure is seconds; compiled Rust stays in target/
  cmake -S . -B "$test_dir/host" -DCMAKE_BUILD_TYPE=Release "-DKVS_EMULATOR=$emulator"
  cmake --build "$test_dir/host"
  ctest --test-dir "$test_dir/host" --output-on-failure --timeout 600
  local so="$test_dir/host/kvs/lib/libkvs_viewer.so.$kvs_version"
  strip --strip-unneeded -o "$test_dir/host/libkvs_viewer.stripped.so" "$so"
  printf 'x86_64 libkvs_viewer.so: %s bytes, stripped %s bytes\n' \
    "$(stat -c %s "$so")" "$(stat -c %s "$test_dir/host/libkvs_viewer.stripped.so")"
}

# The installed package from the outside: find_package, pkg-config, relocation, examples.
stage_consumer() {
  [ -f "$test_dir/host/CMakeCache.txt" ] || stage_host
  bash tests/consumer/run.sh "$test_dir/host" "$emulator" "$test_dir/consumer"
}

# cross_stage ARCH TOOLCHAIN CC_PREFIX SYSROOT QEMU_RUNNER...: library + C tests run under
# qemu-user against the emulator running natively, then examples-c cross-built against the
# installed package (shared and static) and the viewers run under qemu too; prints the sizes and
# what each artefact needs at run time. SYSROOT empty = no sysroot (vendored OpenSSL). Every
# emulated run is under timeout.
cross_stage() {
  local arch="$1" toolchain="$2" prefix_triple="$3" sysroot="$4"
  shift 4
  local runner=("$@")
  local bdir="$test_dir/$arch"
  kvs_build_emulator >/dev/null
  local emu_list sysroot_args=()
  emu_list="timeout;300;$(IFS=';'; echo "${runner[*]}")"
  [ -z "$sysroot" ] || sysroot_args=("-DCMAKE_SYSROOT=$sysroot")
  rm -rf "$bdir"
  cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_TOOLCHAIN_FILE=$KVS_ROOT/cmake/toolchains/$toolchain" "${sysroot_args[@]}" \
    "-DCMAKE_CROSSCOMPILING_EMULATOR=$emu_list" "-DKVS_EMULATOR=$emulator"
  # No hand-set variables: with a sysroot, its OpenSSL is found; without one, OpenSSL is vendored.
  local want_vendored=ON
  [ -z "$sysroot" ] || want_vendored=OFF
  grep -qx "KVS_VENDORED_OPENSSL:BOOL=$want_vendored" "$bdir/CMakeCache.txt" ||
    { echo "expected KVS_VENDORED_OPENSSL=$want_vendored by default"; return 1; }
  cmake --build "$bdir"
  ctest --test-dir "$bdir" --output-on-failure --timeout 600

  cmake --install "$bdir" --prefix "$bdir/prefix" >/dev/null
  local kind
  for kind in shared static; do
    local static=OFF
    [ "$kind" = static ] && static=ON
    cmake -S examples-c -B "$bdir/examples-$kind" -DCMAKE_BUILD_TYPE=Release \
      "-DCMAKE_TOOLCHAIN_FILE=$KVS_ROOT/cmake/toolchains/$toolchain" "${sysroot_args[@]}" \
      "-DKvsViewer_DIR=$bdir/prefix/lib/cmake/KvsViewer" -DKVS_EXAMPLES_WERROR=ON \
      -DKVS_EXAMPLES_STATIC=$static >/dev/null
    cmake --build "$bdir/examples-$kind" >/dev/null
  done
  file "$bdir/examples-shared/viewer" 2>/dev/null || true

  local pid="" rc=0
  KVS_EMULATOR_MAX_SECONDS=300 kvs_start_emulator "$emulator" "$bdir/emulator.env" "$bdir/emulator.log"
  pid=$KVS_EMU_PID
  for kind in shared static; do
    (
      set -a
      # shellcheck disable=SC1091
      . "$bdir/emulator.env"
      set +a
      export KVS_RECV_SECONDS=20
      exec timeout 120 "${runner[@]}" "$bdir/examples-$kind/viewer"
    ) >"$bdir/viewer-$kind.out" 2>&1 || rc=$?
    [ $rc -eq 0 ] || break
    grep -q '^recv SDP_ANSWER sender=- ' "$bdir/viewer-$kind.out" || { rc=1; echo "$kind: no answer received"; break; }
  done
  kvs_stop_pid "$pid"
  cut -c1-160 "$bdir/viewer-shared.out"
  [ $rc -eq 0 ] || { echo "emulated viewer ($kind) exited $rc"; cat "$bdir/viewer-$kind.out"; return 1; }

  local so="$bdir/kvs/lib/libkvs_viewer.so.$kvs_version" stripped="$bdir/libkvs_viewer.stripped.so"
  "${prefix_triple}-strip" --strip-unneeded -o "$stripped" "$so"
  printf '%s libkvs_viewer.so: %s bytes, stripped %s bytes (text+data+bss: %s)\n' "$arch" \
    "$(stat -c %s "$so")" "$(stat -c %s "$stripped")" "$(size "$stripped" | awk 'NR==2 {print $4}')"
  printf '%s libkvs_viewer.so needs: %s\n' "$arch" "$(needed_libs "$so")"
  local app="$bdir/examples-static/viewer"
  "${prefix_triple}-strip" -o "$bdir/viewer-static.stripped" "$app"
  printf '%s static viewer (-Wl,--gc-sections): %s bytes, stripped %s bytes, needs: %s\n' "$arch" \
    "$(stat -c %s "$app")" "$(stat -c %s "$bdir/viewer-static.stripped")" "$(needed_libs "$app")"
  if [ -n "$sysroot" ]; then
    needed_libs "$so" | grep -qw libssl.so.3 || { echo "the .so does not link libssl.so.3"; return 1; }
    [ "$(stat -c %s "$stripped")" -lt 1300000 ] || { echo "stripped .so is not under 1.3 MB"; return 1; }
  else
    if needed_libs "$so" "$app" | grep -q 'libssl\|libcrypto'; then
      echo "vendored build still needs a shared OpenSSL"; return 1
    fi
  fi
}

needed_libs() { # FILE...: the NEEDED entries, space separated
  readelf -d "$@" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u | tr '\n' ' ' | sed 's/ $//'
}

# The sysroot route for plain cargo users, with exactly the variables the README documents.
# They get the same values CMake passes (compiler and ar by full path, the sysroot's existing
# pkg-config directories), so cargo reuses the CMake build's dependencies and only the library
# crate itself is rebuilt.
plain_cargo_sysroot_build() { # RUST_TARGET CC_PREFIX SYSROOT
  local t="$1" cc ar s="$3" T t_ ma d pc=""
  cc="$(command -v "$2-gcc")"
  ar="$(command -v "$2-ar")"
  T="$(echo "$t" | tr 'a-z-' 'A-Z_')"
  t_="${t//-/_}"
  ma="$("$cc" -dumpmachine)"
  for d in "usr/lib/$ma/pkgconfig" usr/lib/pkgconfig usr/lib64/pkgconfig usr/share/pkgconfig; do
    [ -d "$s/$d" ] && pc="${pc:+$pc:}$s/$d"
  done
  env "CARGO_TARGET_${T}_LINKER=$cc" \
    "CARGO_TARGET_${T}_RUSTFLAGS=-C link-arg=--sysroot=$s" \
    "CC_${t_}=$cc" "AR_${t_}=$ar" \
    "CFLAGS_${t_}=--sysroot=$s -isystem $s/usr/include/$ma" \
    "PKG_CONFIG_ALLOW_CROSS_${t_}=1" "PKG_CONFIG_SYSROOT_DIR_${t_}=$s" \
    "PKG_CONFIG_LIBDIR_${t_}=$pc" "PKG_CONFIG_PATH_${t_}=$pc" \
    cargo rustc --release -p kvs-viewer --lib --crate-type cdylib --crate-type staticlib --target "$t"
  local so="${CARGO_TARGET_DIR:-$KVS_ROOT/target}/$t/release/libkvs_viewer.so"
  printf 'plain cargo (%s): libkvs_viewer.so needs: %s\n' "$t" "$(needed_libs "$so")"
  needed_libs "$so" | grep -qw libssl.so.3 || { echo "plain cargo build does not link libssl.so.3"; return 1; }
}

# aarch64 and armv7 against sysroots assembled from Debian's target packages (scripts/sysroot.sh,
# cached in build/sysroot), OpenSSL from the sysroot, qemu -L <sysroot>.
stage_cross_aarch64() {
  local sysroot
  sysroot="$(bash scripts/sysroot.sh arm64 "$KVS_ROOT/build/sysroot")"
  cross_stage aarch64 aarch64-linux-gnu.cmake aarch64-linux-gnu "$sysroot" qemu-aarch64 -L "$sysroot"
  plain_cargo_sysroot_build aarch64-unknown-linux-gnu aarch64-linux-gnu "$sysroot"
}

stage_cross_armv7() {
  local sysroot
  sysroot="$(bash scripts/sysroot.sh armhf "$KVS_ROOT/build/sysroot")"
  cross_stage armv7 armv7-linux-gnueabihf.cmake arm-linux-gnueabihf "$sysroot" qemu-arm -L "$sysroot"
}

qemu_runner() { # ARCH_QEMU LOADER SYSROOT -> the runner words for this machine
  if [ -e "$2" ]; then echo "$1"; else echo "$1 -L $3"; fi
}

# The fallback route for hosts without a target sysroot: Debian's cross gcc alone, OpenSSL built
# from source and linked in (the "fully static OpenSSL" variant for boards without one).
stage_cross_vendored() {
  # shellcheck disable=SC2046
  cross_stage armv7-vendored armv7-linux-gnueabihf.cmake arm-linux-gnueabihf "" \
    $(qemu_runner qemu-arm /lib/ld-linux-armhf.so.3 /usr/arm-linux-gnueabihf)
}

# The minimum-size build (scripts/build-min-size.sh): within its size goal, and the C example
# viewer linked against it does the whole exchange with the emulator.
min_size_limit=560000
stage_min_size() {
  kvs_build_emulator >/dev/null
  local dir="$test_dir/min-size" so stripped
  rm -rf "$dir" && mkdir -p "$dir"
  so=$(bash scripts/build-min-size.sh | tail -n 1)
  strip --strip-unneeded -o "$dir/libkvs_viewer.so" "$so"
  printf 'minimum-size libkvs_viewer.so: stripped %s bytes (goal <= %s)\n' \
    "$(stat -c %s "$dir/libkvs_viewer.so")" "$min_size_limit"
  [ "$(stat -c %s "$dir/libkvs_viewer.so")" -le "$min_size_limit" ]
  ln -s libkvs_viewer.so "$dir/libkvs_viewer.so.${kvs_version%%.*}"
  cc -std=c11 -Wall -Wextra -Werror -Iinclude -o "$dir/viewer" examples-c/viewer.c \
    -L"$dir" -lkvs_viewer -Wl,-rpath,"$dir"
  KVS_EMULATOR_MAX_SECONDS=120 kvs_start_emulator "$emulator" "$dir/emulator.env" "$dir/emulator.log"
  local rc=0
  ( set -a; . "$dir/emulator.env"; set +a; timeout 120 "$dir/viewer" ) >"$dir/viewer.out" 2>&1 || rc=$?
  kvs_stop_pid "$KVS_EMU_PID"
  cat "$dir/viewer.out"
  [ "$rc" = 0 ] && grep -q '^recv SDP_ANSWER' "$dir/viewer.out"
}

# Every marked snippet of README.md: C compiled, shell blocks run against the emulator.
stage_readme() { bash scripts/readme-test.sh "$test_dir/readme"; }

stage_demo() { bash scripts/demo.sh; }

# GStreamer for examples-c/gst-viewer and the media master (Debian's python3 runs the master: it
# needs PyGObject, websockets and botocore from the same distribution). iproute2 for the test's
# network namespace.
media_pkgs=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
            gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
            gstreamer1.0-nice python3 python3-gi gir1.2-gstreamer-1.0
            gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 python3-websockets
            python3-botocore iproute2 util-linux)

# Live video: the installed library + examples-c/gst-viewer, the emulator relaying to the media
# master (tests/media), in a network namespace of their own; five scenarios (tests/media/media_test.py).
stage_media() {
  kvs_build_emulator >/dev/null
  local dir="$test_dir/media"
  rm -rf "$dir"
  cmake -S . -B "$dir/lib" -DCMAKE_BUILD_TYPE=Release -DKVS_BUILD_TESTS=OFF >/dev/null
  cmake --build "$dir/lib" >/dev/null
  cmake --install "$dir/lib" --prefix "$dir/prefix" >/dev/null
  cmake -S examples-c/gst-viewer -B "$dir/gst-viewer" -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_PREFIX_PATH=$dir/prefix" -DKVS_EXAMPLES_WERROR=ON >/dev/null
  cmake --build "$dir/gst-viewer" >/dev/null
  timeout 600 bash tests/media/run.sh "$dir/gst-viewer/gst-viewer" "$emulator" "$dir/run"
  # The reconnect paths again with AddressSanitizer + UBSan on the example (its receive thread
  # and hand-over to the main loop); GStreamer's own allocations are not leak-checked.
  cmake -S examples-c/gst-viewer -B "$dir/gst-viewer-asan" -DCMAKE_BUILD_TYPE=Debug \
    "-DCMAKE_PREFIX_PATH=$dir/prefix" -DKVS_EXAMPLES_WERROR=ON \
    "-DCMAKE_C_FLAGS=-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
    >/dev/null
  cmake --build "$dir/gst-viewer-asan" >/dev/null
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 timeout 300 bash tests/media/run.sh \
    "$dir/gst-viewer-asan/gst-viewer" "$emulator" "$dir/run-asan" go-away tcp-drop
}

# Close, shutdown and reconnect racing blocked and busy calls on one handle
# (src/ffi/handle_stress_tests.rs), 200 iterations each, under AddressSanitizer (and
# ThreadSanitizer with KVS_SANITIZERS="address thread"): nightly with std rebuilt
# instrumented, one target dir per sanitizer (the first build takes minutes, later ones seconds).
stage_sanitize() {
  local host san
  host="$(rustc -vV | sed -n 's/^host: //p')"
  for san in ${KVS_SANITIZERS:-address}; do
    kvs_log "sanitizer: $san"
    RUSTFLAGS="-Zsanitizer=$san" KVS_STRESS_ITERATIONS=200 \
      ASAN_OPTIONS=detect_leaks=1 TSAN_OPTIONS=halt_on_error=1 \
      timeout 1200 cargo +nightly test -Zbuild-std --target "$host" \
      --target-dir "${CARGO_TARGET_DIR:-$KVS_ROOT/target}/sanitize-$san" \
      -p kvs-viewer --lib ffi::handle::stress_tests -- --nocapture
  done
}

# ---------------------------------------------------------------------------------------------

total_start=$SECONDS
run_stage setup stage_setup
kvs_cargo_path
for stage in "${all_stages[@]}"; do
  want "$stage" || continue
  if [[ "$stage" = cross-armv7 || "$stage" = cross-vendored ]] && [ "${KVS_SKIP_ARMV7:-0}" = 1 ]; then
    echo "stage $stage skipped (KVS_SKIP_ARMV7=1)"
    continue
  fi
  run_stage "$stage" "stage_${stage//-/_}"
done

printf '\n======== summary (total %s) ========\n' "$(kvs_fmt_secs $((SECONDS - total_start)))"
printf '%s\n' "${report[@]}"
printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
