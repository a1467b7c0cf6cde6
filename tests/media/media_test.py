#!/usr/bin/python3
"""Media test: emulator (relay mode) + media master + gst-viewer, live VP8 video on loopback.

  media_test.py --emulator BIN --viewer BIN --work DIR

Run it through tests/media/run.sh, which puts it in a network namespace of its own (nothing can
leave it). Scenarios, each with a fresh emulator, master and viewer:
  basic                     the viewer decodes >= 30 frames
  candidates-before-answer  the master trickles its candidates before its answer: the viewer
                            must hold them until the answer is applied
  go-away                   GO_AWAY mid-session: signaling reconnects, frames keep coming
  tcp-drop                  the viewer's signaling TCP connection is reset mid-session: it
                            reconnects, and frames keep increasing after the drop
  no-master                 nobody answers: the viewer exits 2 at its timeout
Prints the time from viewer start to its first decoded frame for each. Every wait is bounded.
Uses only the standard library.
"""
import argparse
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
MASTER = os.path.join(HERE, "media_master.py")


class Failed(Exception):
    pass


class Proc:
    """A child process whose output lines are collected (with arrival times) by a thread."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.start = time.monotonic()
        self.log = open(log_path, "w")
        self.lines = []  # (seconds since start, line)
        self.q = queue.Queue()
        self.p = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, text=True, errors="replace",
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            line = line.rstrip("\n")
            t = time.monotonic() - self.start
            self.log.write(f"[{t * 1000:7.0f} ms] {line}\n")
            self.log.flush()
            self.lines.append((t, line))
            self.q.put(line)
        self.q.put(None)

    def wait_line(self, pattern, timeout):
        """The first new line matching `pattern` (a regex), within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"{self.name}: no line matching {pattern!r} within {timeout:g} s")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.q.put(None)  # stay at EOF for later waits
                raise Failed(f"{self.name}: exited ({self.p.wait()}) before a line matching {pattern!r}")
            m = rx.search(line)
            if m:
                return m

    def wait_frames(self, n, timeout):
        """Waits (bounded) until the viewer has printed frames=N or more."""
        deadline = time.monotonic() + timeout
        while last_frames(self) < n:
            self.wait_line(r"^frames=\d+$", max(0.001, deadline - time.monotonic()))

    def wait_exit(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"{self.name}: still running after {timeout:g} s")

    def first(self, pattern):
        rx = re.compile(pattern)
        return next(((t, ln) for t, ln in self.lines if rx.search(ln)), None)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.reader.join(timeout=5)
        self.log.close()


def read_env_file(path, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            env = dict(
                line.split("=", 1) for line in open(path).read().splitlines() if "=" in line
            )
            if "KVS_WSS_ENDPOINT" in env and "KVS_CLIENT_ID" in env:
                return env
        if proc.p.poll() is not None:
            raise Failed(f"emulator exited ({proc.p.returncode}) before writing {path}")
        time.sleep(0.05)
    raise Failed(f"emulator wrote no {path} within {timeout} s")


def admin(env, path, body=None):
    req = urllib.request.Request(env["KVS_EMULATOR_ADMIN_URL"] + path, method="POST" if body else "GET",
                                 data=json.dumps(body).encode() if body else None)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read() or b"null")


def last_frames(viewer):
    for _, ln in reversed(viewer.lines):
        m = re.fullmatch(r"frames=(\d+)", ln)
        if m:
            return int(m.group(1))
    return 0


def run_scenario(args, name, master_flags=(), fault=None, expect=None, frames=30, master=True):
    work = os.path.join(args.work, name)
    os.makedirs(work, exist_ok=True)
    procs = []
    try:
        env_file = os.path.join(work, "emulator.env")
        if os.path.exists(env_file):
            os.remove(env_file)
        emu = Proc("emulator", [args.emulator, "--env-file", env_file, "--max-seconds", "120",
                                "--no-auto-answer"], os.path.join(work, "emulator.log"))
        procs.append(emu)
        emu_env = read_env_file(env_file, emu)
        env = dict(os.environ, **emu_env)

        if not master:
            # Nobody answers: the viewer must give up at its timeout with exit code 2.
            viewer = Proc("viewer", [args.viewer, str(frames)], os.path.join(work, "viewer.log"),
                          env=dict(env, KVS_GST_TIMEOUT_S="3"))
            procs.append(viewer)
            rc = viewer.wait_exit(20)
            if rc != 2 or not viewer.first(r"^timeout: frames=0 of \d+$"):
                raise Failed(f"viewer without a master exited {rc}, wanted 2 and a timeout line")
            print(f"media: ok: {name}: no master, the viewer gave up after 3 s (exit 2)", flush=True)
            return
        master = Proc("master", [sys.executable, MASTER, "--max-seconds", "90", *master_flags],
                      os.path.join(work, "master.log"), env=env)
        procs.append(master)
        master.wait_line(r"^master: connected as master", 30)

        viewer = Proc("viewer", [args.viewer, str(frames)], os.path.join(work, "viewer.log"),
                      env=dict(env, KVS_GST_TIMEOUT_S="45"))
        procs.append(viewer)
        viewer.wait_line(r"^frames=1$", 30)
        first = viewer.first(r"^frames=1$")
        first_ms = first[0] * 1000

        if fault:
            viewer.wait_frames(15, 20)
            at_fault = last_frames(viewer)
            admin(emu_env, "/v1/fault", fault)
            viewer.wait_line(rf"^signaling: {expect}$", 20)
            state = admin(emu_env, "/v1/state")
            if emu_env["KVS_CLIENT_ID"] not in json.dumps(state):
                raise Failed(f"the viewer is not connected after the reconnect: /state = {state}")
            viewer.wait_frames(at_fault + 30, 20)

        rc = viewer.wait_exit(45)
        if rc != 0:
            raise Failed(f"viewer exited {rc}")
        got = last_frames(viewer)
        if got < frames:
            raise Failed(f"viewer decoded {got} frames, wanted {frames}")

        detail = ""
        if "--candidates-before-answer" in master_flags:
            held = viewer.first(r"^applying (\d+) candidate\(s\) held until the answer")
            if not viewer.first(r"^recv ICE_CANDIDATE before the answer: held") or not held:
                raise Failed("the viewer held no candidate that came before the answer")
            detail = f", {held[1].split()[1]} candidates held until the answer"
        if fault:
            line = viewer.first(rf"^signaling: {expect}$")
            drop_t = line[0]
            after = [int(ln[7:]) for t, ln in viewer.lines if t > drop_t and ln.startswith("frames=")]
            if not after or max(after) < at_fault + 30:
                raise Failed(f"frames did not keep increasing after the fault (at {at_fault})")
            detail = (f", fault at frame {at_fault}, '{line[1]}', then {max(after) - at_fault} "
                      f"more frames")
        viewer_own = viewer.first(r"^first_frame_ms=\d+")
        print(f"media: ok: {name}: {got} frames; viewer start -> first frame {first_ms:.0f} ms "
              f"({viewer_own[1] if viewer_own else '?'} in-process){detail}", flush=True)
    finally:
        for p in reversed(procs):
            p.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--emulator", required=True)
    ap.add_argument("--viewer", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("scenarios", nargs="*")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    scenarios = {
        "basic": {},
        "candidates-before-answer": {"master_flags": ["--candidates-before-answer"]},
        "go-away": {"fault": {"GoAway": {"client_id": None, "grace_ms": 1000}},
                    "expect": "reconnected automatically", "frames": 90},
        "tcp-drop": {"fault": {"DropConnection": {"client_id": None}},
                     "expect": "reconnected automatically",
                     "frames": 90},
        "no-master": {"master": False},
    }
    chosen = args.scenarios or list(scenarios)
    failed = []
    for name in chosen:
        try:
            run_scenario(args, name, **scenarios[name])
        except (Failed, OSError) as e:
            failed.append(name)
            print(f"media: FAIL: {name}: {e}", flush=True)
            for log in ("viewer", "master", "emulator"):
                path = os.path.join(args.work, name, f"{log}.log")
                if os.path.exists(path):
                    lines = [ln for ln in open(path) if "frames=" not in ln][-25:]
                    print(f"---- last lines of {path}:\n{''.join(lines)}", end="", flush=True)
    print(f"media: {len(chosen) - len(failed)} of {len(chosen)} scenarios passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
