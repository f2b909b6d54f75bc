"""Detached processes with pid files and logs, free ports, and bounded waits: the plumbing of devenv."""

from __future__ import annotations

import contextlib
import os
import random
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


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return low, high


def bindable(host: str, port: int) -> bool:
    """Nothing listens on `port` and nothing else holds it (an outgoing connection's local port does)."""
    if not 0 < port <= 65535 or port_open(host, port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As servers bind: connections of a previous run lingering in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", count: int = 1) -> int:
    """The first of `count` consecutive TCP ports free now, outside the kernel's ephemeral range:
    a port from that range can be taken as some outgoing connection's local port before our server
    binds it."""
    low, high = _ephemeral_range()
    ranges = [r for r in ((10000, low - count), (high + 1, 65536 - count)) if r[1] > r[0]] or [(10000, 65536 - count)]
    for _ in range(200):
        lo, hi = random.choice(ranges)
        first = random.randrange(lo, hi)
        if all(bindable(host, p) for p in range(first, first + count)):
            return first
    raise DevenvError(f"found no {count} consecutive free ports on {host}")


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
    """Start `argv` as a daemon: its own session and process group, output appended to the
    component's log, parented to init (so nothing of ours has to reap it); return its pid."""
    state.ensure()
    log = state.log(component)
    pidfile = state.pidfile(component)
    pidfile.unlink(missing_ok=True)
    with open(log, "ab") as out:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        out.write(f"\n--- {stamp} starting {component}: {' '.join(argv)}\n".encode())
        out.flush()
        # sh backgrounds `setsid argv` and exits at once; the daemon is a group leader (stop() signals
        # the whole group) whose pid $! is written to the pid file.
        subprocess.run(
            ["sh", "-c", 'f=$1; shift; setsid "$@" </dev/null & echo $! >"$f"', "sh", str(pidfile), *argv],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=dict(os.environ if env is None else env), cwd=cwd, check=True,
        )
    try:
        return int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError) as e:
        raise DevenvError(f"{component}: could not start ({e}); log {log}") from e


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
