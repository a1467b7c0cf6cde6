#!/usr/bin/env bash
# Runs the README's snippets, so they cannot rot (the `readme` stage of scripts/test-all.sh).
#
#   scripts/readme-test.sh [WORK_DIR]      # default build/test/readme
#
# Every ```sh, ```bash and ```c block in README.md must follow a marker line (blank lines
# between are allowed):
#   <!-- test: sh -->              run, from the repository's root
#   <!-- test: sh dir=work -->     run from WORK_DIR (where the C files are saved), in a subshell:
#                                  what it sets (PKG_CONFIG_PATH, ...) does not reach later
#                                  blocks, so cargo there sees the environment it was built with
#   <!-- test: sh dir=work files=examples-c/viewer.c -->   the same, with those repository
#                                  files copied into WORK_DIR first
#   <!-- test: c NAME.c -->        saved as WORK_DIR/NAME.c and compiled alone with
#                                  -std=c99 -Wall -Wextra -Werror -pedantic (later sh blocks use it)
#   <!-- test: skip: REASON -->    not run here; REASON says what runs it instead
# A block without a marker fails the test. The sh blocks run in README order in ONE bash
# (set -euo pipefail, so every command must succeed; variables carry over), under a timeout,
# with the README's paths moved into WORK_DIR: /opt/kvs-viewer* -> WORK_DIR/opt/kvs-viewer*,
# /tmp/ -> WORK_DIR/tmp/, and relative build/ -> WORK_DIR/build/. Emulators the snippets start
# are stopped at the end whatever happens.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KVS_ROOT"

work="${1:-$KVS_ROOT/build/test/readme}"
rm -rf "$work"
mkdir -p "$work/tmp" "$work/opt"
work="$(cd "$work" && pwd)"

# Extract: the marked blocks into $work/blocks/NNN.{sh,c} plus an index of "NNN kind arg line".
python3 - "$KVS_ROOT/README.md" "$work" <<'PY'
import os, re, sys
readme, work = sys.argv[1], sys.argv[2]
lines = open(readme, encoding="utf-8").read().split("\n")
os.makedirs(os.path.join(work, "blocks"))
index, errors, marker, i, n = [], [], None, 0, 0
fence = re.compile(r"^```([A-Za-z0-9_+-]*)\s*$")
mark = re.compile(r"^<!--\s*test:\s*(.*?)\s*-->\s*$")
while i < len(lines):
    line = lines[i]
    m = mark.match(line)
    if m:
        marker = (m.group(1), i + 1)
        i += 1
        continue
    f = fence.match(line.lstrip()) if line.lstrip().startswith("```") else None
    if f:
        lang, start = f.group(1), i + 1
        indent = len(line) - len(line.lstrip())
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        if lang in ("sh", "bash", "c"):
            if marker is None:
                errors.append(f"README.md:{start}: ```{lang} block without a <!-- test: ... --> marker")
            else:
                spec = marker[0].split()
                kind = spec[0].rstrip(":") if spec else ""
                if kind == "skip":
                    if len(spec) < 2:
                        errors.append(f"README.md:{marker[1]}: skip without a reason")
                    index.append(f"{n:03d} skip - {start}")
                elif kind == "sh" and lang in ("sh", "bash"):
                    where, files = "repo", "-"
                    for opt in spec[1:]:
                        if opt == "dir=work":
                            where = "work"
                        elif opt.startswith("files=") and len(opt) > 6:
                            files = opt[6:]
                        else:
                            errors.append(f"README.md:{marker[1]}: unknown sh option '{opt}'")
                    if files != "-" and where != "work":
                        errors.append(f"README.md:{marker[1]}: files= needs dir=work")
                    open(os.path.join(work, "blocks", f"{n:03d}.sh"), "w").write("\n".join(body) + "\n")
                    index.append(f"{n:03d} sh {where}:{files} {start}")
                elif kind == "c" and lang == "c" and len(spec) == 2:
                    open(os.path.join(work, "blocks", f"{n:03d}.c"), "w").write("\n".join(body) + "\n")
                    index.append(f"{n:03d} c {spec[1]} {start}")
                else:
                    errors.append(f"README.md:{marker[1]}: marker '{marker[0]}' does not fit a ```{lang} block")
                n += 1
        marker = None
        continue
    if line.strip():
        marker = None  # a marker applies to the block right after it only
    i += 1
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
open(os.path.join(work, "index"), "w").write("\n".join(index) + "\n")
PY

ran=0 compiled=0 skipped=0
script="$work/run.sh"
{
  echo 'set -euo pipefail'
  echo "cd $(printf %q "$KVS_ROOT")"
} >"$script"
while read -r id kind arg line; do
  case "$kind" in
    skip) skipped=$((skipped + 1)) ;;
    c)
      cp "$work/blocks/$id.c" "$work/$arg"
      cc -std=c99 -Wall -Wextra -Werror -pedantic -I "$KVS_ROOT/include" -c "$work/$arg" \
        -o "$work/blocks/$id.o" || kvs_die "README.md:$line: the C snippet does not compile"
      kvs_log "README.md:$line: C snippet compiles ($arg)"
      compiled=$((compiled + 1))
      ;;
    sh)
      where="${arg%%:*}" files="${arg#*:}"
      if [ "$files" != - ]; then
        for f in ${files//,/ }; do cp "$KVS_ROOT/$f" "$work/"; done
      fi
      sed -E -e "s#/opt/kvs-viewer#$work/opt/kvs-viewer#g" -e "s#/tmp/#$work/tmp/#g" \
        -e "s#(^|[[:space:]=(\"'])build/#\\1$work/build/#g" "$work/blocks/$id.sh" >"$work/blocks/$id.run"
      {
        printf 'printf "\\n==> README.md:%s\\n" >&2\n' "$line"
        if [ "$where" = work ]; then
          printf '(cd %q; . %q)\n' "$work" "$work/blocks/$id.run"
        else
          printf 'cd %q\n. %q\n' "$KVS_ROOT" "$work/blocks/$id.run"
        fi
      } >>"$script"
      ran=$((ran + 1))
      ;;
  esac
done <"$work/index"

# Whatever happens, stop the emulators the snippets started (their pids are in the env files).
stop_emulators() {
  local f pid
  for f in "$work"/tmp/*.env; do
    [ -f "$f" ] || continue
    pid="$(sed -n 's/^KVS_EMULATOR_PID=//p' "$f")"
    [ -z "$pid" ] || kvs_stop_pid "$pid"
  done
}
trap stop_emulators EXIT

kvs_log "running $ran shell blocks (script: $script)"
# A fresh shell environment: nothing leaks in from the caller but PATH, HOME and the toolchain.
timeout 1500 env -i PATH="$PATH" HOME="$HOME" TERM=dumb \
  ${CARGO_HOME:+CARGO_HOME="$CARGO_HOME"} ${RUSTUP_HOME:+RUSTUP_HOME="$RUSTUP_HOME"} \
  ${CARGO_TARGET_DIR:+CARGO_TARGET_DIR="$CARGO_TARGET_DIR"} \
  bash "$script" </dev/null
echo "readme: $ran shell blocks ran, $compiled C snippets compiled, $skipped blocks skipped (marked with the stage that runs them)"
