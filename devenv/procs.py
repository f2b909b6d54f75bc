"""Detached processes with pid files and logs, free ports, and bounded waits: the plumbing of devenv."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from devenv.paths import State


class DevenvError(RuntimeError):
    """A devenv component failed; the message names the component and its log file."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def read_pid(state: State, component: str) -> int | None:
    try:
        return int(state.pidfile(component).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def running(state: State, component: str) -> bool:
    return alive(read_pid(state, component))


def start(
    state: State,
    component: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start `argv` detached in its own session, output to the component's log; return its pid."""
    state.ensure()
    log = state.log(component)
    with open(log, "ab") as out:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        out.write(f"\n--- {stamp} starting {component}: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ if env is None else env),
            cwd=cwd,
            start_new_session=True,
        )
    state.pidfile(component).write_text(str(proc.pid))
    return proc.pid


def stop(state: State, component: str, timeout: float = 20.0) -> bool:
    """Stop a component by its pid file (its whole process group); True when something was stopped."""
    pid = read_pid(state, component)
    state.pidfile(component).unlink(missing_ok=True)
    if not alive(pid):
        return False
    assert pid is not None
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        _reap(pid)
        time.sleep(0.1)
    if alive(pid):
        _signal_group(pid, signal.SIGKILL)
        time.sleep(0.2)
        _reap(pid)
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_for(
    state: State,
    component: str,
    check: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.5,
) -> None:
    """Wait until `check()` holds; fail with the component's log tail if it dies or time runs out."""
    deadline = time.monotonic() + timeout
    last_note = time.monotonic()
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - a check that raises is a check not yet passed
            pass
        if not running(state, component):
            raise DevenvError(
                f"{component} exited before {what}; log {state.log(component)}:\n{tail(state.log(component))}"
            )
        now = time.monotonic()
        if now > deadline:
            raise DevenvError(
                f"{component}: not {what} after {timeout:.0f}s; log {state.log(component)}:\n"
                f"{tail(state.log(component))}"
            )
        if now - last_note > 10:
            say(f"  ... waiting for {component} ({what}), {now - deadline + timeout:.0f}s")
            last_note = now
        time.sleep(interval)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
