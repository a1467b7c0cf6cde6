#!/usr/bin/env bash
# Benchmarks (issue 14): prints ONE Markdown table on stdout, every figure of the library next
# to a floor measured in the same run; each stage's progress goes to stderr.
#
#   scripts/bench.sh                                      # everything
#   KVS_BENCH_SKIP_CROSS=1 scripts/bench.sh               # no aarch64 build
#   KVS_BENCH_IDLE_SECONDS=5 scripts/bench.sh             # a quick run (idle 5 s instead of 60)
#
# Environment: KVS_BENCH_RUNS (rounds of every timed figure, default 50, at least 30 for
# figures worth quoting), KVS_BENCH_IDLE_SECONDS (default 60), KVS_BENCH_SKIP_CROSS=1,
# KVS_BENCH_STEP_TIMEOUT_S (bound of each program start, command and exit, default 60),
# CARGO_BUILD_JOBS (default 2). Work files (programs, logs, raw results) in build/bench/.
#
# The library side is C using the C API (bench/cold.c, one session per process; bench/viewers.c,
# one long-lived process). The floor (bench/floor.c) does the same work with plain OpenSSL and
# nothing else: SigV4 presign, TCP, TLS 1.2+ with SNI and host-name verification against the
# emulator's CA, the WebSocket upgrade and 101, the offer as one masked text frame, the answer
# frame decoded; discovery as the same three signed POSTs on one kept-alive connection.
# bench/spawn.c runs both interleaved (floor, library, floor, library ...): cold figures as a new
# process per run (timed from just before posix_spawn to the SDP answer, peak RSS from wait4),
# warm figures in lockstep over pipes. Against the bundled emulator on 127.0.0.1, whose built-in
# master answers each offer (--answer-candidates 0: the answer only, so a round trip ends at it).
#
# The programs run without SSL_CERT_FILE and SSL_CERT_DIR (unset here when the caller's
# environment has them): the library then finds the system roots its default way, and the
# floor trusts the same set (its hashed directory, read lazily). What parsing a whole bundle
# up front costs is its own row (the floor with SSL_CTX_set_default_verify_paths).
#
# The library is built with `cargo rustc --crate-type cdylib --crate-type staticlib`, never
# `cargo build`: with rlib among the crate types cargo silently drops -C lto (a 25 % bigger .so).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KVS_ROOT"

case "${1:-}" in
  "") ;;
  -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) kvs_die "bench.sh takes no arguments (got '$1'); settings are environment variables, see --help" ;;
esac

positive_int() { # NAME VALUE
  [[ "$2" =~ ^[1-9][0-9]{0,5}$ ]] || kvs_die "$1 must be a positive integer, got '$2'"
}
runs="${KVS_BENCH_RUNS:-50}"
idle_s="${KVS_BENCH_IDLE_SECONDS:-60}"
positive_int KVS_BENCH_RUNS "$runs"
positive_int KVS_BENCH_IDLE_SECONDS "$idle_s"
[ -z "${KVS_BENCH_STEP_TIMEOUT_S:-}" ] ||
  positive_int KVS_BENCH_STEP_TIMEOUT_S "$KVS_BENCH_STEP_TIMEOUT_S"
[ "$runs" -ge 30 ] || kvs_log "note: KVS_BENCH_RUNS=$runs is below 30; medians and p90 are rough"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

# kvs_apt_ensure with apt's output on stderr (stdout is the table's), waiting (bounded) while
# another apt-get or dpkg holds the package lock.
apt_ensure() {
  local pids p
  for _ in 1 2 3; do
    (kvs_apt_ensure "$@") >&2 && return 0
    pids="$( (pgrep -x apt-get; pgrep -x apt; pgrep -x dpkg) | tr '\n' ' ' || true)"
    [ -n "${pids// /}" ] || return 1
    kvs_log "another package manager is running (pid $pids); waiting for it (at most 10 min)"
    for p in $pids; do timeout 600 tail --pid="$p" -f /dev/null || true; done
  done
  return 1
}

kvs_cargo_path
apt_ensure pkg-config libssl-dev gcc libc6-dev binutils || kvs_die "could not install the build tools"

work="$KVS_ROOT/build/bench"
target="${CARGO_TARGET_DIR:-$KVS_ROOT/target}"
mkdir -p "$work/lib"
results="$work/results.txt"
: >"$results"
started=$SECONDS
failures=()

KVS_EMU_PID=""
bg_pids=()
cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kvs_stop_pid "$p"; done
  kvs_stop_pid "$KVS_EMU_PID"
}
trap cleanup EXIT

# The release library, as shipped (see the header). Prints nothing; the log keeps rustc's
# native-static-libs line. Extra arguments go to cargo (e.g. --target).
build_library() { # LOG [CARGO ARGS...]
  local log="$1"
  shift
  if ! cargo rustc --release -p kvs-viewer --lib --crate-type cdylib --crate-type staticlib "$@" \
    -- --print native-static-libs >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    return 1
  fi
}

# The offer both sides send is the demo's own (examples-c/viewer.c's BUILTIN_OFFER), cut out
# into a header so there is one copy of it.
sed -n '/^static const char BUILTIN_OFFER\[\] =/,/";$/p' examples-c/viewer.c |
  sed '1s/.*/__attribute__((unused)) static const char BENCH_OFFER[] =/' >"$work/bench_offer.h"
grep -q 'max-message-size' "$work/bench_offer.h" || kvs_die "no BUILTIN_OFFER found in examples-c/viewer.c"
cc_flags=(-std=c11 -O2 -Wall -Wextra -Werror -I"$work")
# For the size figures: what a firmware build would use.
# shellcheck disable=SC2054 # -Wl,--gc-sections is one flag
size_flags=(-std=c11 -Os -Wall -Wextra -Werror -I"$work" -ffunction-sections -fdata-sections -Wl,--gc-sections)

# ---- build ---------------------------------------------------------------------------------
kvs_log "build: emulator, library (cargo rustc --release, cdylib + staticlib, -j$CARGO_BUILD_JOBS)"
emulator="$(kvs_build_emulator 2>"$work/emulator-build.log")" ||
  { tail -n 40 "$work/emulator-build.log" >&2; kvs_die "the emulator did not build"; }
build_library "$work/cargo-host.log" || kvs_die "the library did not build (log: $work/cargo-host.log)"
so="$target/release/libkvs_viewer.so"
archive="$target/release/libkvs_viewer.a"
if [ ! -f "$so" ] || [ ! -f "$archive" ]; then kvs_die "cargo produced no $so / $archive"; fi
# The program's loader looks for the SONAME (libkvs_viewer.so.0): a private copy under that name.
cp "$so" "$work/lib/libkvs_viewer.so.0"
ln -sf libkvs_viewer.so.0 "$work/lib/libkvs_viewer.so"

kvs_log "build: bench/ programs"
gcc "${cc_flags[@]}" -o "$work/spawn" bench/spawn.c
gcc "${cc_flags[@]}" -o "$work/floor" bench/floor.c -lssl -lcrypto
for p in cold viewers; do
  gcc "${cc_flags[@]}" -Iinclude -o "$work/$p" "bench/$p.c" -L"$work/lib" -Wl,-rpath,"$work/lib" \
    -lkvs_viewer
done

# ---- emulator --------------------------------------------------------------------------------
# 1000 viewers per channel: the 100-viewer figure plus the warm and cold runs' connections.
kvs_log "emulator: starting on 127.0.0.1"
KVS_EMULATOR_MAX_SECONDS=900 kvs_start_emulator "$emulator" "$work/emulator.env" \
  "$work/emulator.log" --bind 127.0.0.1 --max-viewers 1000 --answer-candidates 0 ||
  kvs_die "the emulator did not start (log: $work/emulator.log)"
set -a
# shellcheck disable=SC1091
. "$work/emulator.env"
set +a
for v in AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY KVS_CHANNEL_ARN KVS_CHANNEL_NAME \
  KVS_WSS_ENDPOINT KVS_CONTROL_PLANE_URL KVS_CA_FILE; do
  [ -n "${!v:-}" ] || kvs_die "the emulator's env file $work/emulator.env has no $v"
done

# ---- measurements ------------------------------------------------------------------------------
ssl_env_note="SSL_CERT_FILE/SSL_CERT_DIR not set"
if [ -n "${SSL_CERT_FILE:-}${SSL_CERT_DIR:-}" ]; then
  kvs_log "note: unsetting SSL_CERT_FILE and SSL_CERT_DIR for the measurements (see --help)"
  ssl_env_note="SSL_CERT_FILE/SSL_CERT_DIR unset for the run"
fi
unset SSL_CERT_FILE SSL_CERT_DIR
kvs_log "cold start: $runs rounds, each a new process per program (floor and library interleaved)"
"$work/spawn" cold "$runs" \
  floor.cold "$work/floor" cold ::: lib.cold "$work/cold" ::: \
  floor.cold_d "$work/floor" cold --discover ::: lib.cold_d "$work/cold" --discover ::: \
  floor.cold_eager "$work/floor" cold --eager-roots >>"$results"

kvs_log "warm: connect, discovery + connect, offer -> answer; $runs rounds each, in lockstep"
"$work/spawn" lockstep "$runs" connect,discover,rtt \
  floor.warm "$work/floor" serve ::: lib.warm "$work/viewers" serve >>"$results"

kvs_log "memory and threads with 1, 10 and 100 connections in one process"
timeout 300 "$work/floor" multi 1,10,100 >>"$results"
timeout 300 "$work/viewers" multi 1,10,100 >>"$results"

kvs_log "idle: one connected session for ${idle_s} s (floor and library side by side)"
timeout $((idle_s + 120)) "$work/floor" idle "$idle_s" >"$work/idle-floor.txt" &
bg_pids+=($!)
timeout $((idle_s + 120)) "$work/viewers" idle "$idle_s" >"$work/idle-lib.txt" &
bg_pids+=($!)
for p in "${bg_pids[@]}"; do wait "$p" || kvs_die "an idle run failed (exit $?)"; done
bg_pids=()
cat "$work/idle-floor.txt" "$work/idle-lib.txt" >>"$results"

kvs_stop_pid "$KVS_EMU_PID"
KVS_EMU_PID=""

# ---- sizes -------------------------------------------------------------------------------------
kvs_log "sizes: stripped library, static driver, floor"
strip_to() { # STRIP ARGS... -- IN OUT ; prints the stripped size in bytes
  local tool=("$1") in out
  shift
  while [ "$1" != -- ]; do tool+=("$1"); shift; done
  in="$2" out="$3"
  "${tool[@]}" -o "$out" "$in"
  stat -c %s "$out"
}
native_libs="$(sed -n 's/.*native-static-libs: //p' "$work/cargo-host.log" | tail -n 1)"
if [ -z "$native_libs" ]; then
  native_libs="-lssl -lcrypto -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
  kvs_log "note: no native-static-libs line in the cargo log; using the documented $native_libs"
fi
# shellcheck disable=SC2086 # the list is rustc's, one word per flag
gcc "${size_flags[@]}" -Iinclude -o "$work/cold-static" bench/cold.c "$archive" $native_libs
gcc "${size_flags[@]}" -o "$work/floor-size" bench/floor.c -lssl -lcrypto
{
  echo "size.x86_64.so $(strip_to strip --strip-unneeded -- "$so" "$work/libkvs_viewer.x86_64.stripped.so")"
  echo "size.x86_64.static_driver $(strip_to strip -- "$work/cold-static" "$work/cold-static.stripped")"
  echo "size.x86_64.floor $(strip_to strip -- "$work/floor-size" "$work/floor-size.stripped")"
  echo "size.x86_64.so_text_data_bss $(size "$work/libkvs_viewer.x86_64.stripped.so" | awk 'NR==2 {print $4}')"
} >>"$results"

min_size_note=""
if [ -x scripts/build-min-size.sh ] || [ -f scripts/build-min-size.sh ]; then
  kvs_log "sizes: scripts/build-min-size.sh"
  if timeout 1200 bash scripts/build-min-size.sh >"$work/min-size.out" 2>"$work/min-size.log"; then
    min_so="$(tail -n 1 "$work/min-size.out")"
    if [ -f "$min_so" ]; then
      echo "size.x86_64.min_so $(strip_to strip --strip-unneeded -- "$min_so" "$work/libkvs_viewer.min.stripped.so")" >>"$results"
      min_size_note="$min_so"
    else
      min_size_note="its last line is no file: '$min_so'"
      failures+=("build-min-size.sh printed no .so path")
    fi
  else
    tail -n 20 "$work/min-size.log" >&2
    min_size_note="failed (log: build/bench/min-size.log)"
    failures+=("build-min-size.sh failed")
  fi
else
  min_size_note="skipped: no scripts/build-min-size.sh in this tree"
fi

# aarch64 against a sysroot assembled from Debian's arm64 packages, with the variables the
# README documents for plain cargo. Appends its sizes to the results; non-zero on a failure.
cross_sizes() {
  local sysroot t=aarch64-unknown-linux-gnu pc aso
  apt_ensure gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu ||
    { kvs_log "could not install the aarch64 cross compiler"; return 1; }
  kvs_rust_target_ensure "$t" >&2
  sysroot="$(bash scripts/sysroot.sh arm64 "$KVS_ROOT/build/sysroot")" ||
    { kvs_log "scripts/sysroot.sh arm64 failed"; return 1; }
  pc="$sysroot/usr/lib/aarch64-linux-gnu/pkgconfig"
  [ ! -d "$sysroot/usr/lib/pkgconfig" ] || pc="$pc:$sysroot/usr/lib/pkgconfig"
  [ ! -d "$sysroot/usr/share/pkgconfig" ] || pc="$pc:$sysroot/usr/share/pkgconfig"
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="$(command -v aarch64-linux-gnu-gcc)" \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=--sysroot=$sysroot" \
    CC_aarch64_unknown_linux_gnu="$(command -v aarch64-linux-gnu-gcc)" \
    AR_aarch64_unknown_linux_gnu="$(command -v aarch64-linux-gnu-ar)" \
    CFLAGS_aarch64_unknown_linux_gnu="--sysroot=$sysroot -isystem $sysroot/usr/include/aarch64-linux-gnu" \
    PKG_CONFIG_ALLOW_CROSS_aarch64_unknown_linux_gnu=1 \
    PKG_CONFIG_SYSROOT_DIR_aarch64_unknown_linux_gnu="$sysroot" \
    PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu="$pc" \
    PKG_CONFIG_PATH_aarch64_unknown_linux_gnu="$pc" \
    build_library "$work/cargo-aarch64.log" --target "$t" ||
    { kvs_log "the aarch64 library did not build (log: $work/cargo-aarch64.log)"; return 1; }
  aso="$target/$t/release/libkvs_viewer.so"
  aarch64-linux-gnu-gcc "${size_flags[@]}" --sysroot="$sysroot" \
    -isystem "$sysroot/usr/include/aarch64-linux-gnu" -o "$work/floor-size.aarch64" \
    bench/floor.c -lssl -lcrypto
  {
    echo "size.aarch64.so $(strip_to aarch64-linux-gnu-strip --strip-unneeded -- "$aso" "$work/libkvs_viewer.aarch64.stripped.so")"
    echo "size.aarch64.floor $(strip_to aarch64-linux-gnu-strip -- "$work/floor-size.aarch64" "$work/floor-size.aarch64.stripped")"
    echo "size.aarch64.so_text_data_bss $(size "$work/libkvs_viewer.aarch64.stripped.so" | awk 'NR==2 {print $4}')"
    echo "size.aarch64.floor_text_data_bss $(size "$work/floor-size.aarch64.stripped" | awk 'NR==2 {print $4}')"
  } >>"$results"
}

cross_note=""
if [ "${KVS_BENCH_SKIP_CROSS:-0}" = 1 ]; then
  cross_note="skipped (KVS_BENCH_SKIP_CROSS=1)"
else
  kvs_log "sizes: aarch64 against a Debian arm64 sysroot (scripts/sysroot.sh)"
  # In a subshell with errexit of its own: a failure here still leaves the table.
  set +e
  (
    set -e
    cross_sizes
  )
  rc=$?
  set -e
  if [ "$rc" != 0 ]; then
    cross_note="failed (exit $rc; see the messages above on stderr)"
    failures+=("aarch64 sizes")
  fi
fi

# ---- the table ---------------------------------------------------------------------------------
val() { # KEY -> value, or die naming the missing figure
  local v
  v="$(awk -v k="$1" '$1 == k {print $2; exit}' "$results")"
  [ -n "$v" ] || kvs_die "no figure '$1' in $results"
  printf '%s' "$v"
}
has() { awk -v k="$1" '$1 == k {f = 1} END {exit !f}' "$results"; }
calc() { awk "BEGIN { printf $1 }"; }               # calc '"%.2f", 1/3'
ms() { calc "\"%.2f ms\", $1 / 1e6"; }              # ns -> ms
ratio() { calc "($2 > 0) ? \"%.2f\" : \"—\", $1 / ($2 > 0 ? $2 : 1)"; }
mib() { calc "\"%.2f MiB\", $1 / 1024"; }           # KiB -> MiB
kib_b() { calc "\"%.1f KiB\", $1 / 1024"; }         # bytes -> KiB
row() { printf '| %s | %s | %s | %s | %s |\n' "$@"; }
timed_rows() { # FIGURE LIB_KEY FLOOR_KEY NOTE
  local l f
  l="$(val "$2.median_ns")" f="$(val "$3.median_ns")"
  row "$1, median" "$(ms "$l")" "$(ms "$f")" "$(ratio "$l" "$f")" "$4"
  l="$(val "$2.p90_ns")" f="$(val "$3.p90_ns")"
  row "$1, p90" "$(ms "$l")" "$(ms "$f")" "$(ratio "$l" "$f")" "$(val "$2.runs") runs each"
}

rss1="$(val lib.multi.1.rss_kib)" rss10="$(val lib.multi.10.rss_kib)" rss100="$(val lib.multi.100.rss_kib)"
frss1="$(val floor.multi.1.rss_kib)" frss10="$(val floor.multi.10.rss_kib)" frss100="$(val floor.multi.100.rss_kib)"
thr1="$(val lib.multi.1.threads)" thr100="$(val lib.multi.100.threads)"
fthr1="$(val floor.multi.1.threads)" fthr100="$(val floor.multi.100.threads)"
per10="$(calc "\"%.1f\", ($rss10 - $rss1) / 9")" fper10="$(calc "\"%.1f\", ($frss10 - $frss1) / 9")"
per100="$(calc "\"%.1f\", ($rss100 - $rss1) / 99")" fper100="$(calc "\"%.1f\", ($frss100 - $frss1) / 99")"
tpv="$(calc "\"%.2f\", ($thr100 - $thr1) / 99")" ftpv="$(calc "\"%.2f\", ($fthr100 - $fthr1) / 99")"
rss_lib="$(val lib.cold.maxrss_kib)" rss_floor="$(val floor.cold.maxrss_kib)"
icpu="$(val lib.idle.cpu_us)" ficpu="$(val floor.idle.cpu_us)"
isecs="$(val lib.idle.seconds)"
ivcs="$(val lib.idle.nvcsw)" fivcs="$(val floor.idle.nvcsw)"
so_b="$(val size.x86_64.so)" floor_b="$(val size.x86_64.floor)" static_b="$(val size.x86_64.static_driver)"

{
  printf 'kvs-viewer %s, %s, %s cores, %s rounds per timed figure, idle %s s, %s, bench run %s\n\n' \
    "$(git describe --always --dirty 2>/dev/null || echo '?')" "$(date -u +%Y-%m-%dT%H:%MZ)" \
    "$(nproc)" "$runs" "$idle_s" "$ssl_env_note" "$(kvs_fmt_secs $((SECONDS - started)))"
  row figure kvs-viewer floor ratio notes
  row --- ---: ---: ---: ---
  timed_rows "Cold start → first answer, known endpoint" lib.cold floor.cold \
    "new process per run, from just before posix_spawn: exec, loading, init, connect, offer, answer"
  timed_rows "Cold start → first answer, full discovery" lib.cold_d floor.cold_d \
    "Describe + GetEndpoint + GetIceServerConfig, then the WebSocket"
  l="$(val lib.cold.median_ns)" f="$(val floor.cold_eager.median_ns)"
  row "Cold start, known endpoint, median: floor that also parses the system CA bundle" \
    "$(ms "$l")" "$(ms "$f")" "$(ratio "$l" "$f")" \
    "floor + SSL_CTX_set_default_verify_paths: the system CA bundle parsed up front, as the openssl crate's SslConnector::builder does; peak RSS $(mib "$(val floor.cold_eager.maxrss_kib)")"
  row "Peak RSS, one session (ru_maxrss, median of the cold runs)" "$(mib "$rss_lib")" \
    "$(mib "$rss_floor")" "$(ratio "$rss_lib" "$rss_floor")" \
    "difference $(calc "\"%+.2f MiB\", ($rss_lib - $rss_floor) / 1024")"
  timed_rows "Warm connect (2nd and later in one process)" lib.warm.connect floor.warm.connect \
    "kvs_viewer_connect vs presign + TCP + TLS + upgrade, TLS context reused; close untimed"
  timed_rows "Offer → answer round trip, connected" lib.warm.rtt floor.warm.rtt \
    "kvs_viewer_send + kvs_viewer_recv vs one bare WebSocket text frame out, answer frame in"
  timed_rows "Discovery + connect, warm" lib.warm.discover floor.warm.discover \
    "three signed POSTs on one kept-alive connection, then the WebSocket"
  row "RSS with 1 / 10 / 100 sessions (VmRSS)" \
    "$(mib "$rss1") / $(mib "$rss10") / $(mib "$rss100")" \
    "$(mib "$frss1") / $(mib "$frss10") / $(mib "$frss100")" "$(ratio "$rss100" "$frss100")" \
    "one process, distinct client ids; ratio at 100"
  row "RSS per extra session, N = 10" "$per10 KiB" "$fper10 KiB" "$(ratio "$per10" "$fper10")" \
    "(RSS(10) − RSS(1)) / 9"
  row "RSS per extra session, N = 100" "$per100 KiB" "$fper100 KiB" "$(ratio "$per100" "$fper100")" \
    "(RSS(100) − RSS(1)) / 99"
  row "Threads per extra session" "$tpv" "$ftpv" "—" \
    "(threads(100) − threads(1)) / 99; with 1 session: $thr1 vs $fthr1 threads"
  row "CPU while idle, ${isecs} s, one session" "$(calc "\"%.2f ms\", $icpu / 1000")" \
    "$(calc "\"%.2f ms\", $ficpu / 1000")" "$(ratio "$icpu" "$ficpu")" \
    "getrusage user + system, all threads; library pings after 10 s of silence, the floor never"
  row "Voluntary context switches while idle (≈ wakeups)" "$ivcs" "$fivcs" "$(ratio "$ivcs" "$fivcs")" \
    "involuntary: $(val lib.idle.nivcsw) vs $(val floor.idle.nivcsw)"
  row "Stripped libkvs_viewer.so, x86_64" "$(kib_b "$so_b")" "$(kib_b "$floor_b")" \
    "$(ratio "$so_b" "$floor_b")" \
    "floor: bench/floor.c -Os, gc-sections, stripped; both link OpenSSL dynamically; .so text+data+bss $(val size.x86_64.so_text_data_bss) B"
  row "Stripped static C driver (bench/cold.c + libkvs_viewer.a), x86_64" "$(kib_b "$static_b")" \
    "$(kib_b "$floor_b")" "$(ratio "$static_b" "$floor_b")" \
    "-Os -Wl,--gc-sections, stripped; OpenSSL dynamic in both"
  if has size.x86_64.min_so; then
    m="$(val size.x86_64.min_so)"
    row "Stripped libkvs_viewer.so, x86_64, scripts/build-min-size.sh" "$(kib_b "$m")" \
      "$(kib_b "$floor_b")" "$(ratio "$m" "$floor_b")" "$min_size_note"
  else
    row "Stripped libkvs_viewer.so, x86_64, scripts/build-min-size.sh" "—" "—" "—" "$min_size_note"
  fi
  if has size.aarch64.so; then
    a="$(val size.aarch64.so)" af="$(val size.aarch64.floor)"
    row "Stripped libkvs_viewer.so, aarch64 (Debian arm64 sysroot)" "$(kib_b "$a")" "$(kib_b "$af")" \
      "$(ratio "$a" "$af")" \
      "OpenSSL from the sysroot, dynamic; files are padded to 64 KiB steps: text+data+bss $(val size.aarch64.so_text_data_bss) B vs $(val size.aarch64.floor_text_data_bss) B, ratio $(ratio "$(val size.aarch64.so_text_data_bss)" "$(val size.aarch64.floor_text_data_bss)")"
  else
    row "Stripped libkvs_viewer.so, aarch64 (Debian arm64 sysroot)" "—" "—" "—" "$cross_note"
  fi
} | tee "$work/table.md"

if [ ${#failures[@]} -gt 0 ]; then
  kvs_log "failed: ${failures[*]}"
  exit 1
fi
kvs_log "done in $(kvs_fmt_secs $((SECONDS - started))); table also in build/bench/table.md"
