"""The node agent's "container runtime": pod processes in their own sessions with their output in
`.devenv/pods/`, pid files that survive the agent (so that a later agent can clean up), stopping a
process group with a grace period, and running probes against a pod's address."""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from devenv.nodeagent.rules import Json, ProbeSpec, resolve_port

log = logging.getLogger("nodeagent.runtime")

STOP_GRACE_CAP = 5.0  # seconds: a pod's terminationGracePeriodSeconds is capped here


def start_time_of(pid: int) -> str | None:
    """The process' start time in clock ticks since boot (field 22 of /proc/<pid>/stat): with the pid it
    identifies a process, so a recycled pid is never killed by mistake."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields and fields[0] == "Z":
        return None
    return fields[19] if len(fields) > 19 else None


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    pidfile: Path
    log_path: Path
    log_offset: int  # where this run's output begins in the log file

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exit_code(self) -> int | None:
        code = self.popen.poll()
        if code is None:
            return None
        # Like a container's exit: killed by signal N reads as 128 + N.
        return 128 - code if code < 0 else code


def start_process(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path, pidfile: Path, owner: str,
) -> Process:
    """Start `argv` in a new session (its own process group) with output appended to `log_path`.
    Raises OSError when it cannot be executed."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {owner}: {' '.join(argv)}\n".encode())
        out.flush()
        offset = out.tell()
        popen = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=dict(env), cwd=cwd, start_new_session=True,
        )
    pidfile.write_text(f"{popen.pid} {start_time_of(popen.pid) or '-'} {owner}\n")
    return Process(popen=popen, pidfile=pidfile, log_path=log_path, log_offset=offset)


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class Remote(Protocol):
    """A container some other process runs for the agent (the simulator's shared mode): it stops on
    request instead of by signal."""

    log_path: Path
    log_offset: int

    @property
    def pid(self) -> int: ...

    def exit_code(self) -> int | None: ...

    def signal_stop(self) -> None: ...

    def finish_stop(self, deadline: float) -> None: ...

    def cleanup(self) -> None: ...


Handle = Process | Remote  # what runs a container: a process of its own, or a remote container


def signal_stop(proc: Handle) -> None:
    """First step of stopping: SIGTERM to the process group."""
    if not isinstance(proc, Process):
        proc.signal_stop()
        return
    if proc.popen.poll() is None:
        _killpg(proc.pid, signal.SIGTERM)


def finish_stop(proc: Handle, deadline: float) -> None:
    """Second step: wait until `deadline` (monotonic), then SIGKILL whatever is left of the group."""
    if not isinstance(proc, Process):
        proc.finish_stop(deadline)
        proc.cleanup()
        return
    while proc.popen.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    cleanup(proc)


def stop_process(proc: Handle, grace: float) -> None:
    signal_stop(proc)
    finish_stop(proc, time.monotonic() + min(grace, STOP_GRACE_CAP))


def cleanup(proc: Handle) -> None:
    """After the main process ended (or must end): kill what is left of its group, as a container's
    end kills every process in it, reap it and drop the pid file."""
    if not isinstance(proc, Process):
        proc.cleanup()
        return
    _killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.popen.wait(timeout=5)
    proc.pidfile.unlink(missing_ok=True)


def kill_leftovers(pods_dir: Path, node: str, grace: float = 3.0) -> list[str]:
    """Stop the processes an agent of `node` left behind (pid files `*.pid` in `pods_dir` whose owner
    starts with `<node>:`); only a process whose start time still matches its pid file is signalled.
    Returns the owners that were stopped."""
    stopped: list[str] = []
    victims: list[int] = []
    for pidfile in sorted(pods_dir.glob("*.pid")):
        try:
            pid_s, start, owner = pidfile.read_text().split(" ", 2)
            pid = int(pid_s)
        except (OSError, ValueError):
            pidfile.unlink(missing_ok=True)
            continue
        if not owner.startswith(f"{node}:"):
            continue
        if start_time_of(pid) == start and start != "-":
            _killpg(pid, signal.SIGTERM)
            victims.append(pid)
            stopped.append(owner.strip())
        pidfile.unlink(missing_ok=True)
    deadline = time.monotonic() + grace
    while victims and time.monotonic() < deadline and any(start_time_of(p) for p in victims):
        time.sleep(0.1)
    for pid in victims:
        _killpg(pid, signal.SIGKILL)
    return stopped


def read_tail(path: Path, offset: int = 0, max_bytes: int = 16384) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(offset, end - max_bytes))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def run_probe(spec: ProbeSpec, container: Json, pod_ip: str, env: Mapping[str, str], cwd: Path) -> bool:
    """One probe attempt against the pod's address; any error is a failure."""
    try:
        handler = spec.handler
        if spec.kind == "exec":
            command = list(handler.get("command") or [])
            if not command:
                return False
            return subprocess.run(
                command, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, timeout=spec.timeout, check=False,
            ).returncode == 0
        host = str(handler.get("host") or pod_ip)
        port = resolve_port(handler.get("port", 0), container)
        if spec.kind == "httpGet":
            conn: http.client.HTTPConnection
            if str(handler.get("scheme") or "HTTP").upper() == "HTTPS":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                conn = http.client.HTTPSConnection(host, port, timeout=spec.timeout, context=ctx)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=spec.timeout)
            try:
                headers = {h["name"]: h["value"] for h in handler.get("httpHeaders") or []}
                headers.setdefault("User-Agent", "kube-probe/devenv")
                conn.request("GET", str(handler.get("path") or "/"), headers=headers)
                return 200 <= conn.getresponse().status < 400
            finally:
                conn.close()
        # tcpSocket, and grpc approximated by a TCP connect
        with socket.create_connection((host, port), timeout=spec.timeout):
            return True
    except Exception as exc:
        log.debug("probe %s of %s failed: %s", spec.kind, container.get("name"), exc)
        return False
