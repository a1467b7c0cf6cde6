#!/usr/bin/env bash
# Media test: emulator (relay) + media master + gst-viewer, live video, in a network namespace.
#
#   tests/media/run.sh GST_VIEWER_BINARY EMULATOR_BINARY WORK_DIR [SCENARIO...]
#
# Re-runs itself in a new network namespace (unshare -n; -rn when not root) so that no packet
# can leave the machine: libnice gathers no candidate on a loopback interface, so a veth pair
# inside the namespace carries 127.0.0.2/32 — every ICE candidate is a loopback address. The
# STUN/TURN servers the emulator hands out cannot be reached from in there either.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ "${KVS_MEDIA_NETNS:-}" != 1 ]; then
  userns=()
  [ "$(id -u)" = 0 ] || userns=(--map-root-user)
  exec unshare --net "${userns[@]}" env KVS_MEDIA_NETNS=1 bash "${BASH_SOURCE[0]}" "$@"
fi

viewer="${1:?GST_VIEWER_BINARY}"
emulator="${2:?EMULATOR_BINARY}"
work="${3:?WORK_DIR}"
shift 3
ip link set lo up
ip link add kvs-media0 type veth peer name kvs-media1
ip addr add 127.0.0.2/32 dev kvs-media0
ip link set kvs-media0 up
ip link set kvs-media1 up
# Media on its own: no UPnP/SSDP multicast, no GStreamer registry rescan per process.
export GST_REGISTRY_UPDATE=no
exec /usr/bin/python3 "$here/media_test.py" --emulator "$emulator" --viewer "$viewer" --work "$work" "$@"
