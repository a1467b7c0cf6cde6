#!/usr/bin/env bash
# Consumer test: the installed package works from the outside.
#
#   tests/consumer/run.sh LIB_BUILD_DIR EMULATOR_BINARY WORK_DIR
#
# 1. `cmake --install` the configured+built LIB_BUILD_DIR into WORK_DIR, then MOVE the prefix
#    (the package must be relocatable);
# 2. check the layout: .so.X.Y.Z + .so.X + .so links, SONAME, .a, header, CMake config, .pc;
# 3. find_package version rules (0.1 found, 0.2 and 1.0 refused: SameMinorVersion);
# 4. build examples-c with find_package(KvsViewer 0.1 REQUIRED), shared and static;
# 5. build examples-c/viewer.c with a plain `cc` line from pkg-config;
# 6. run every built viewer (and viewer_threads) against the emulator, plus two failures that
#    must print the contract's error line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../scripts/lib.sh
. "$here/../../scripts/lib.sh"

lib_build="${1:?LIB_BUILD_DIR}"
emulator="${2:?EMULATOR_BINARY}"
work="${3:?WORK_DIR}"
rm -rf "$work"
mkdir -p "$work"

fail() { printf 'consumer: FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf 'consumer: ok: %s\n' "$*"; }

# ---- 1. install, then relocate ----
cmake --install "$lib_build" --prefix "$work/first-prefix" >/dev/null
mv "$work/first-prefix" "$work/prefix"
prefix="$work/prefix"
ok "installed and moved to $prefix"

# ---- 2. layout ----
version="$(sed -n 's/^version = "\([0-9.]*\)"$/\1/p' "$KVS_ROOT/Cargo.toml" | head -n1)"
major="${version%%.*}"
libdir="$prefix/lib"
[ -f "$libdir/libkvs_viewer.so.$version" ] && [ ! -L "$libdir/libkvs_viewer.so.$version" ] ||
  fail "libkvs_viewer.so.$version missing"
[ "$(readlink "$libdir/libkvs_viewer.so.$major")" = "libkvs_viewer.so.$version" ] ||
  fail "libkvs_viewer.so.$major is not a link to libkvs_viewer.so.$version"
[ "$(readlink "$libdir/libkvs_viewer.so")" = "libkvs_viewer.so.$major" ] ||
  fail "libkvs_viewer.so is not a link to libkvs_viewer.so.$major"
[ -f "$libdir/libkvs_viewer.a" ] || fail "libkvs_viewer.a missing"
[ -f "$prefix/include/kvs_viewer.h" ] || fail "header missing"
[ -f "$libdir/cmake/KvsViewer/KvsViewerConfig.cmake" ] || fail "KvsViewerConfig.cmake missing"
[ -f "$libdir/cmake/KvsViewer/KvsViewerConfigVersion.cmake" ] || fail "KvsViewerConfigVersion.cmake missing"
[ -f "$libdir/pkgconfig/kvs_viewer.pc" ] || fail "kvs_viewer.pc missing"
soname="$(readelf -d "$libdir/libkvs_viewer.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
[ "$soname" = "libkvs_viewer.so.$major" ] || fail "SONAME is '$soname'"
if grep -R -q -F "$work/first-prefix" "$libdir/cmake" "$libdir/pkgconfig"; then
  fail "package files contain the original install path (not relocatable)"
fi
ok "layout, links, SONAME $soname"

# `cmake --install --strip` strips the libraries (install(FILES) needs our own install code).
cmake --install "$lib_build" --prefix "$work/stripped" --strip >/dev/null
if readelf -S "$work/stripped/lib/libkvs_viewer.so.$version" | grep -q '\.symtab'; then
  fail "--strip left the symbol table in libkvs_viewer.so.$version"
fi
if readelf -S "$work/stripped/lib/libkvs_viewer.a" 2>/dev/null | grep -q '\.debug_info'; then
  fail "--strip left debug info in libkvs_viewer.a"
fi
ok "cmake --install --strip: $(stat -c %s "$work/stripped/lib/libkvs_viewer.so.$version") bytes"

# ---- 3. version rules ----
version_probe() {
  local want="$1" dir="$work/version-$1"
  mkdir -p "$dir"
  cat >"$dir/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(probe NONE)
find_package(KvsViewer $want QUIET)
if(KvsViewer_FOUND)
  message(STATUS "PROBE found \${KvsViewer_VERSION}")
else()
  message(STATUS "PROBE not-found")
endif()
EOF
  cmake -S "$dir" -B "$dir/build" "-DCMAKE_PREFIX_PATH=$prefix" 2>&1 | sed -n 's/^-- PROBE //p'
}
[ "$(version_probe 0.1)" = "found $version" ] || fail "find_package(KvsViewer 0.1) did not find $version"
[ "$(version_probe "$version")" = "found $version" ] || fail "find_package(KvsViewer $version) failed"
[ "$(version_probe 0.2)" = "not-found" ] || fail "find_package(KvsViewer 0.2) accepted $version"
[ "$(version_probe 1.0)" = "not-found" ] || fail "find_package(KvsViewer 1.0) accepted $version"
ok "find_package version rules (SameMinorVersion)"

# ---- 4. examples-c through find_package, shared and static ----
for kind in shared static; do
  static=OFF
  [ "$kind" = static ] && static=ON
  cmake -S "$KVS_ROOT/examples-c" -B "$work/examples-$kind" -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_PREFIX_PATH=$prefix" -DKVS_EXAMPLES_STATIC=$static -DKVS_EXAMPLES_WERROR=ON >/dev/null
  cmake --build "$work/examples-$kind" >/dev/null
done
readelf -d "$work/examples-shared/viewer" | grep -q "NEEDED.*\[libkvs_viewer.so.$major\]" ||
  fail "shared viewer does not need libkvs_viewer.so.$major"
if readelf -d "$work/examples-static/viewer" | grep -q 'NEEDED.*libkvs_viewer'; then
  fail "static viewer still needs libkvs_viewer.so"
fi
ok "examples-c built via find_package (shared: NEEDED libkvs_viewer.so.$major; static: no .so)"
# The static target links small by default: --gc-sections travels with it (and with the .pc).
grep -q -- '-Wl,--gc-sections' "$libdir/cmake/KvsViewer/KvsViewerConfig.cmake" ||
  fail "KvsViewerConfig.cmake does not carry -Wl,--gc-sections"
grep -q '^Libs.private: -Wl,--gc-sections ' "$libdir/pkgconfig/kvs_viewer.pc" ||
  fail "kvs_viewer.pc Libs.private does not start with -Wl,--gc-sections"
strip -o "$work/viewer-static.stripped" "$work/examples-static/viewer"
ok "static viewer (find_package, --gc-sections): $(stat -c %s "$work/examples-static/viewer") bytes, stripped $(stat -c %s "$work/viewer-static.stripped"), needs: $(readelf -d "$work/examples-static/viewer" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"

# ---- 5. pkg-config + plain cc ----
export PKG_CONFIG_PATH="$libdir/pkgconfig"
[ "$(pkg-config --modversion kvs_viewer)" = "$version" ] || fail "pkg-config --modversion"
private="$(sed -n 's/^Libs.private: //p' "$libdir/pkgconfig/kvs_viewer.pc")"
[ -n "$private" ] || fail "kvs_viewer.pc has no Libs.private"
pkg-config --static --libs kvs_viewer | grep -q -- "-lpthread" || fail "pkg-config --static lacks Libs.private"
# The README's two lines (plus -Werror, and an rpath since the prefix is not a system one).
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "$KVS_ROOT/examples-c/viewer.c" \
  $(pkg-config --cflags --libs kvs_viewer) -o "$work/viewer-pkgconfig" "-Wl,-rpath,$libdir"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "$KVS_ROOT/examples-c/viewer.c" \
  $(pkg-config --cflags kvs_viewer) "$(pkg-config --variable=libdir kvs_viewer)/libkvs_viewer.a" \
  $(pkg-config --static --libs kvs_viewer | sed 's/-lkvs_viewer //') -o "$work/viewer-pkgconfig-static"
if readelf -d "$work/viewer-pkgconfig-static" | grep -q 'NEEDED.*libkvs_viewer'; then
  fail "pkg-config static viewer still needs libkvs_viewer.so"
fi
# The README's quick start compiles as shown (it would connect to AWS, so it is not run).
awk '/^```c$/ {on=1; next} on && /^```$/ {exit} on {print}' "$KVS_ROOT/README.md" >"$work/quickstart.c"
[ -s "$work/quickstart.c" ] || fail "no C quick start in README.md"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "$work/quickstart.c" $(pkg-config --cflags --libs kvs_viewer) \
  -o "$work/quickstart" || fail "README quick start does not compile"
ok "plain cc with pkg-config (shared, and static with Libs.private: $private)"

# ---- 6. run them against the emulator ----
KVS_EMU_PID=""
trap 'kvs_stop_pid "$KVS_EMU_PID"' EXIT
KVS_EMULATOR_MAX_SECONDS=300 kvs_start_emulator "$emulator" "$work/emulator.env" "$work/emulator.log" \
  --iot

run_viewer() { # NAME BINARY [VAR=VALUE...]: runs with the emulator's environment
  local name="$1" bin="$2"
  shift 2
  (
    set -a
    # shellcheck disable=SC1091
    . "$work/emulator.env"
    set +a
    exec timeout 60 env KVS_RECV_SECONDS=10 "$@" "$bin"
  ) >"$work/$name.out" 2>"$work/$name.err"
}

check_exchange() { # NAME: the output shows the whole exchange in the contract's format
  local out="$work/$1.out"
  grep -q '^connected' "$out" || fail "$1: no 'connected' line"
  grep -q '^send SDP_OFFER payload={"type":"offer"' "$out" || fail "$1: no 'send SDP_OFFER' line"
  grep -q '^send ICE_CANDIDATE payload={"candidate":' "$out" || fail "$1: no 'send ICE_CANDIDATE' line"
  grep -q '^recv SDP_ANSWER sender=- payload={.*"answer"' "$out" || fail "$1: no 'recv SDP_ANSWER sender=- payload=' line"
  grep -q '^recv ICE_CANDIDATE sender=- payload={.*candidate' "$out" || fail "$1: no 'recv ICE_CANDIDATE' line"
  grep -q '^closed$' "$out" || fail "$1: no 'closed' line"
  grep -q '^ice stun:stun\.kinesisvideo\.[a-z0-9-]*\.amazonaws\.com:443 ttl=0$' "$out" || fail "$1: no 'ice stun:... ttl=0' line"
  grep -q '^ice turns\?:[^ ]* ttl=[0-9][0-9]*$' "$out" || fail "$1: no 'ice turn:... ttl=<s>' line"
  if grep -v -E '^(connected|ice [^ ]+ ttl=[0-9]+$|send (SDP_OFFER|ICE_CANDIDATE) payload=|recv [A-Z_]+ sender=[^ ]+ payload=|closed$)' "$out"; then
    fail "$1: lines outside the contract's format (above)"
  fi
}

for v in examples-shared/viewer examples-static/viewer viewer-pkgconfig viewer-pkgconfig-static; do
  name="$(echo "$v" | tr '/' '-')"
  run_viewer "$name" "$work/$v" || { cat "$work/$name.out" "$work/$name.err"; fail "$v exited non-zero"; }
  check_exchange "$name"
  ok "$v: connect, offer, answer, candidates, close ($(grep -c '^recv ' "$work/$name.out") messages)"
done
sed 's/^/    /' "$work/examples-shared-viewer.out" | cut -c1-160

# Region + channel name + control plane only: the viewer discovers ARN, endpoints, ICE servers.
run_viewer discovery "$work/examples-shared/viewer" KVS_WSS_ENDPOINT= KVS_CHANNEL_ARN= ||
  { cat "$work/discovery.out" "$work/discovery.err"; fail "discovering viewer exited non-zero"; }
check_exchange discovery
ok "viewer discovers from KVS_CHANNEL_NAME + KVS_CONTROL_PLANE_URL, prints its ICE servers"

# Without AWS_ACCESS_KEY_ID the viewer trades the emulator's device certificate for credentials
# at its IoT credentials provider (KVS_IOT_*, mutual TLS). The private key shows nowhere.
run_viewer iot "$work/examples-shared/viewer" AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= \
  AWS_SESSION_TOKEN= || { cat "$work/iot.out" "$work/iot.err"; fail "viewer on KVS_IOT_* exited non-zero"; }
check_exchange iot
key_line="$(set -a; . "$work/emulator.env"; sed -n 2p "$KVS_IOT_KEY_FILE")"
[ -n "$key_line" ] || fail "no device key line to look for"
if grep -F -q -- "$key_line" "$work"/*.out "$work"/*.err "$work/emulator.log"; then
  fail "device key material in an output"
fi
ok "viewer on KVS_IOT_* (AWS IoT credentials provider, device certificate); no key material in any output"

for v in examples-shared/viewer_threads examples-static/viewer_threads; do
  name="$(echo "$v" | tr '/' '-')"
  run_viewer "$name" "$work/$v" || { cat "$work/$name.out" "$work/$name.err"; fail "$v exited non-zero"; }
  grep -q '^\[recv\] SDP_ANSWER' "$work/$name.out" || fail "$v: no answer received"
  grep -q '^\[main\] done' "$work/$name.out" || fail "$v: not done"
  ok "$v: send from main while the receive thread blocks"
done

# Failures print exactly one contract error line and exit non-zero.
if run_viewer denied "$work/examples-shared/viewer" AWS_SECRET_ACCESS_KEY=not-the-secret; then
  fail "viewer with a wrong secret exited 0"
fi
grep -q -E '^error KVS_ERR_ACCESS_DENIED \(-2\): .+' "$work/denied.out" ||
  { cat "$work/denied.out"; fail "wrong secret: no 'error KVS_ERR_ACCESS_DENIED (-2): ...' line"; }
if run_viewer noarn "$work/examples-shared/viewer" KVS_CHANNEL_ARN= KVS_CHANNEL_NAME=; then
  fail "viewer without KVS_CHANNEL_ARN exited 0"
fi
grep -q -E '^error KVS_ERR_INVALID_ARGUMENT \(-1\): .*KVS_CHANNEL_ARN' "$work/noarn.out" ||
  { cat "$work/noarn.out"; fail "missing KVS_CHANNEL_ARN: no error line naming it"; }
ok "failures print 'error <NAME> (<code>): <detail>' and exit non-zero"

echo "consumer: all checks passed"
