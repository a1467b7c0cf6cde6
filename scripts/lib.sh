# Shared helpers for scripts/demo.sh, scripts/test-all.sh and the ctest emulator fixture.
# Source it; it defines functions and KVS_ROOT only.

KVS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

kvs_log() { printf '==> %s\n' "$*" >&2; }
kvs_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root (directly, or through sudo when not root).
kvs_as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    kvs_die "need root (or sudo) to run: $*"
  fi
}

# Makes cargo reachable when rustup installed it but the shell profile was not sourced.
kvs_cargo_path() {
  if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  fi
  command -v cargo >/dev/null 2>&1 || kvs_die "cargo not found: install the Rust toolchain (rustup) first"
}

# kvs_apt_ensure PKG... : installs the Debian packages that are not installed yet
# (apt-get update at most once per script run). Fast when everything is present.
KVS_APT_UPDATED=0
kvs_apt_ensure() {
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || kvs_die "missing ${missing[*]} and no apt-get: install them by hand"
  kvs_log "installing: ${missing[*]}"
  if [ "$KVS_APT_UPDATED" = 0 ]; then
    kvs_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
    KVS_APT_UPDATED=1
  fi
  kvs_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" </dev/null
}

# kvs_rust_target_ensure TRIPLE : rustup target add, unless installed.
kvs_rust_target_ensure() {
  if ! rustup target list --installed 2>/dev/null | grep -qx "$1"; then
    kvs_log "rustup target add $1"
    rustup target add "$1"
  fi
}

# Builds the host emulator (release profile, as issue 2's contract says) and prints its path.
kvs_build_emulator() {
  (cd "$KVS_ROOT" && cargo build --release -p kvs-signaling-emulator --bin kvs-signaling-emulator) >&2 ||
    return 1
  printf '%s\n' "${CARGO_TARGET_DIR:-$KVS_ROOT/target}/release/kvs-signaling-emulator"
}

# kvs_start_emulator BINARY ENV_FILE LOG_FILE [EXTRA ARGS...]
# Starts the emulator in its own session, output to LOG_FILE, and waits (bounded) until it has
# written ENV_FILE. Sets KVS_EMU_PID. Returns non-zero if it died or was not ready in time.
kvs_start_emulator() {
  local bin="$1" env_file="$2" log_file="$3"
  shift 3
  [ -x "$bin" ] || { printf 'emulator binary %s not found\n' "$bin" >&2; return 1; }
  rm -f "$env_file"
  setsid "$bin" --env-file "$env_file" --max-seconds "${KVS_EMULATOR_MAX_SECONDS:-900}" "$@" \
    >"$log_file" 2>&1 </dev/null &
  KVS_EMU_PID=$!
  kvs_wait_env_file "$env_file" "$KVS_EMU_PID" "${KVS_EMULATOR_READY_TIMEOUT:-60}" || {
    printf 'emulator not ready; its log:\n' >&2
    tail -n 40 "$log_file" >&2 || true
    kvs_stop_pid "$KVS_EMU_PID"
    return 1
  }
}

# kvs_wait_env_file FILE PID SECONDS: bounded wait for the emulator's ready signal (the env
# file, complete with KVS_WSS_ENDPOINT), failing at once if the process exits.
kvs_wait_env_file() {
  local file="$1" pid="$2" deadline=$((SECONDS + $3))
  while [ $SECONDS -lt $deadline ]; do
    if [ -s "$file" ] && grep -q '^KVS_WSS_ENDPOINT=' "$file" && grep -q '^KVS_CLIENT_ID=' "$file"; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { printf 'emulator (pid %s) exited early\n' "$pid" >&2; return 1; }
    sleep 0.05
  done
  printf 'emulator not ready after %ss\n' "$3" >&2
  return 1
}

# kvs_stop_pid PID: SIGTERM, bounded wait, then SIGKILL. Only ever the pid we started.
kvs_stop_pid() {
  local pid="$1" i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# Human-readable seconds.
kvs_fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
