#!/usr/bin/env bash
# The README recipe "A client that insists on port 443": in a fresh network namespace (loopback
# only) and mount namespace (a private /etc/hosts), the emulator listens on 443 and advertises
# host names; then CLIENT... runs with the emulator's variables in its environment.
#   unshare -n -m emulator/tests/port443.sh EMULATOR_BINARY WORK_DIR CLIENT...
# Run it as root (binding 443, `ip link`, `mount --bind`).
set -euo pipefail
bin="${1:?emulator binary}"
work="${2:?work dir}"
shift 2
mkdir -p "$work"

ip link set lo up
printf '127.0.0.1 localhost\n' >"$work/hosts"
mount --bind "$work/hosts" /etc/hosts       # private to this mount namespace

"$bin" --port 443 --advertise-host kvs.test --no-auto-answer --max-seconds 120 \
  --env-file "$work/emu.env" --state-dir "$work/state" 2>"$work/emu.log" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  [ -s "$work/emu.env" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/emu.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/emu.env" ] || { echo "emulator not ready" >&2; exit 1; }
set -a
# shellcheck disable=SC1091
. "$work/emu.env"
set +a
printf '127.0.0.1 %s\n' "$KVS_EMULATOR_HOSTS" >>/etc/hosts
echo "endpoints: $KVS_CONTROL_PLANE_URL $KVS_WSS_ENDPOINT $KVS_MASTER_WSS_ENDPOINT $KVS_HTTPS_ENDPOINT"
"$@"
