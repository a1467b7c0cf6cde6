#!/usr/bin/env bash
# What each crate costs in the release libkvs_viewer.so: `cargo bloat --crates` over the C
# library as it ships (LTO, opt-level z). Prints cargo bloat's table, then the file's sections.
#
#   scripts/size-by-crate.sh            # the README's table comes from this
#   scripts/size-by-crate.sh -n 3000    # extra arguments go to cargo bloat (per function)
#
# cargo bloat reads crate types from the manifest and takes only cdylib-like ones, so the
# working tree is copied to a scratch directory with the library as a cdylib alone (the
# emulator, a dev-dependency, left out of the workspace); cargo's target directory is shared.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KVS_ROOT"
kvs_cargo_path
if ! cargo bloat --version >/dev/null 2>&1; then
  kvs_log "cargo install cargo-bloat"
  cargo install cargo-bloat --locked >&2
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
git ls-files -z --cached --others --exclude-standard -- .cargo Cargo.toml Cargo.lock build.rs src emulator benches |
  tar --null -T - -cf - | tar -xf - -C "$scratch"
sed -i -e 's/^crate-type = .*/crate-type = ["cdylib"]/' \
  -e 's/^members = .*/members = ["."]/' -e 's/^default-members = .*/default-members = ["."]/' \
  "$scratch/Cargo.toml"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--crates --split-std -n 40)
(cd "$scratch" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KVS_ROOT/target}/size-by-crate" \
  cargo bloat --release -p kvs-viewer --lib "${args[@]}")
so="${CARGO_TARGET_DIR:-$KVS_ROOT/target}/size-by-crate/release/libkvs_viewer.so"
strip --strip-unneeded -o "$scratch/stripped.so" "$so"
printf '\nstripped: %s bytes; sections over 1 KB:\n' "$(stat -c %s "$scratch/stripped.so")"
size -A "$scratch/stripped.so" | awk 'NR > 2 && $2 > 1024 { printf "  %-20s %8d\n", $1, $2 }'
