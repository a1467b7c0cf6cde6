#!/usr/bin/env bash
# The emulator as a user gets it: `cargo install --path emulator` into a scratch root, then the
# installed binary started the way the README says and asked over its versioned admin API.
#   emulator/tests/product.sh WORK_DIR
# Called by the `emulator` stage of scripts/test-all.sh.
set -euo pipefail
# shellcheck source=../../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$KVS_ROOT"

work="${1:?work dir}"
rm -rf "$work"
mkdir -p "$work"
root="$work/root"

kvs_log "cargo install --path emulator --root $root"
cargo install --quiet --locked --path emulator --root "$root"
bin="$root/bin/kvs-signaling-emulator"
want="kvs-signaling-emulator $(sed -n 's/^version = "\(.*\)"$/\1/p' emulator/Cargo.toml | head -n1)"
got="$("$bin" --version)"
[ "$got" = "$want" ] || kvs_die "installed binary says '$got', expected '$want'"
echo "installed: $got"

pid=""
trap 'kvs_stop_pid "$pid"' EXIT
KVS_EMULATOR_MAX_SECONDS=120 kvs_start_emulator "$bin" "$work/emu.env" "$work/emu.log"
pid=$KVS_EMU_PID
# shellcheck disable=SC1091
. "$work/emu.env"
health="$(curl -sS --max-time 10 "$KVS_EMULATOR_ADMIN_URL/v1/health")"
[ "$health" = '{"ok":true}' ] || kvs_die "health: $health"
curl -sS --max-time 10 "$KVS_EMULATOR_ADMIN_URL/v1/schema" >"$work/schema.json"
python3 - "$work/schema.json" emulator/admin-api.schema.json <<'PY' || kvs_die "served schema differs from emulator/admin-api.schema.json"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
sys.exit(0 if a == b else 1)
PY
echo "installed binary serves /v1/health and the committed schema"
