#!/usr/bin/env bash
# The first command in the README: builds the signaling emulator, the library and the C
# example, starts the emulator on 127.0.0.1, runs examples-c/viewer against it (you see the
# offer/answer/candidate exchange), stops the emulator. Exit code = the viewer's.
#
# Needs only the Rust toolchain on a Debian machine: cmake, pkg-config, a C compiler and the
# OpenSSL headers are installed with apt-get when missing.
#
# Environment: KVS_DEMO_DIR (default build/demo), KVS_RECV_SECONDS (passed to the viewer).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

kvs_cargo_path
kvs_apt_ensure cmake pkg-config libssl-dev gcc libc6-dev make

demo_dir="${KVS_DEMO_DIR:-$KVS_ROOT/build/demo}"
mkdir -p "$demo_dir"
log="$demo_dir/build.log"
: >"$log"

run_logged() {
  if ! "$@" >>"$log" 2>&1; then
    printf 'error: %s failed; last lines of %s:\n' "$*" "$log" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}

kvs_log "building the emulator, the library and examples-c (log: $log)"
emulator="$(kvs_build_emulator 2>>"$log")" || { tail -n 40 "$log" >&2; kvs_die "emulator build failed"; }
run_logged cmake -S "$KVS_ROOT" -B "$demo_dir/lib" -DCMAKE_BUILD_TYPE=Release -DKVS_BUILD_TESTS=OFF
run_logged cmake --build "$demo_dir/lib"
run_logged cmake --install "$demo_dir/lib" --prefix "$demo_dir/prefix"
run_logged cmake -S "$KVS_ROOT/examples-c" -B "$demo_dir/examples" -DCMAKE_BUILD_TYPE=Release \
  "-DCMAKE_PREFIX_PATH=$demo_dir/prefix"
run_logged cmake --build "$demo_dir/examples"

env_file="$demo_dir/emulator.env"
KVS_EMU_PID=""
cleanup() { kvs_stop_pid "$KVS_EMU_PID"; }
trap cleanup EXIT
kvs_log "starting kvs-signaling-emulator on 127.0.0.1 (env file: $env_file)"
KVS_EMULATOR_MAX_SECONDS=300 kvs_start_emulator "$emulator" "$env_file" "$demo_dir/emulator.log" ||
  kvs_die "the emulator did not start"

kvs_log "running examples-c/viewer against it"
set +e
(
  set -a
  # shellcheck disable=SC1090
  . "$env_file"
  set +a
  exec "$demo_dir/examples/viewer"
)
rc=$?
set -e
kvs_log "viewer exited with $rc"
exit "$rc"
