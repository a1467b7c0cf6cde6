#!/usr/bin/env bash
# ctest fixture: starts / stops the host signaling emulator for the live C tests.
#   emulator-fixture.sh start EMULATOR_BINARY DIR   -> DIR/emulator.env, DIR/emulator.pid
#   emulator-fixture.sh stop  EMULATOR_BINARY DIR
# The emulator bounds its own life (--max-seconds), so a crashed ctest leaves nothing behind
# for long. --max-viewers 3 keeps the client-limit test cheap; --iot runs the IoT credentials
# provider for test_credentials.c.
set -euo pipefail
# shellcheck source=../../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

cmd="${1:?start|stop}"
bin="${2:?emulator binary}"
dir="${3:?fixture dir}"
mkdir -p "$dir"

case "$cmd" in
  start)
    if [ -f "$dir/emulator.pid" ]; then
      kvs_stop_pid "$(cat "$dir/emulator.pid")"
      rm -f "$dir/emulator.pid"
    fi
    KVS_EMULATOR_MAX_SECONDS="${KVS_EMULATOR_MAX_SECONDS:-1200}" \
      kvs_start_emulator "$bin" "$dir/emulator.env" "$dir/emulator.log" \
      --max-viewers 3 --iot --state-dir "$dir/state"
    echo "$KVS_EMU_PID" >"$dir/emulator.pid"
    echo "emulator pid $KVS_EMU_PID ready: $dir/emulator.env"
    ;;
  stop)
    if [ -f "$dir/emulator.pid" ]; then
      kvs_stop_pid "$(cat "$dir/emulator.pid")"
      rm -f "$dir/emulator.pid"
      echo "emulator stopped"
    fi
    ;;
  *)
    echo "usage: $0 start|stop EMULATOR_BINARY DIR" >&2
    exit 2
    ;;
esac
