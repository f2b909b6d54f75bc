"""Building devenv's Go programs from modules pinned in this repository (go.mod and go.sum beside them),
fetched through the Go module proxy into the default module and build caches."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from devenv import procs
from devenv.paths import State


@contextlib.contextmanager
def build_lock(state: State) -> Iterator[None]:
    """One build at a time in `state.bin`: devenvs that share it (a test worker's links to the first
    one's) build in turn, and the later one finds the binaries fresh. Not reentrant: take it once, around
    the freshness check and the build."""
    state.bin.mkdir(parents=True, exist_ok=True)
    with open(state.bin / ".build.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def fresh(out: Path, sources: list[Path]) -> bool:
    """`out` exists and is newer than every source: no need to build it again."""
    return out.exists() and out.stat().st_mtime >= max(p.stat().st_mtime for p in sources)


def go_build(state: State, what: str, log_name: str, module: Path, out: Path, flags: list[str],
             package: str = ".") -> None:
    """`go build -v -trimpath` of `package` (default: the module itself) in `module` into `out` (CGO off),
    with a progress line every 15 s."""
    state.ensure()
    log = state.log(log_name)
    procs.say(f"building {what}; log {log}")
    env = dict(os.environ, CGO_ENABLED="0")
    cmd = ["go", "build", "-v", "-trimpath", *flags, "-o", str(out) + ".tmp", package]
    started = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=module, env=env, stdout=f, stderr=subprocess.STDOUT)
        done = threading.Event()

        def progress() -> None:
            while not done.wait(15):
                n = len(log.read_text(errors="replace").splitlines())
                procs.say(f"  ... compiling {what}, {n} packages so far, {time.monotonic() - started:.0f}s")

        t = threading.Thread(target=progress, daemon=True)
        t.start()
        rc = proc.wait()
        done.set()
    if rc != 0:
        raise procs.DevenvError(f"{what}: build failed (go build exit {rc}); log {log}:\n{procs.tail(log)}")
    os.replace(str(out) + ".tmp", out)
    procs.say(f"built {out} in {time.monotonic() - started:.0f}s")


def main(name: str, build: Callable[[State], Path]) -> int:
    """A tool's `python -m devenv.<name>`: build it into the default state's bin/ if needed, say where."""
    try:
        procs.say(f"{name}: {build(State.default())}")
    except procs.DevenvError as e:
        procs.say(f"devenv: {e}")
        return 1
    return 0
