"""The node agent's side of the simulator's shared mode (`devenv/simulator/shared.py`): one simulator
process per agent, started on first use and again when it died, serving every simulator container.

A `SharedContainer` stands where a `runtime.Process` stands for a container of its own: it has a log
file and an offset, an exit code (None while it runs) and the two steps of stopping. The exit codes are
the process's: 2 and 1 at start-up as the simulator's `main` returns them, 0 after a stop, 137 for every
container when the shared process itself is gone (as a node's containers end when the node dies).
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devenv.nodeagent import runtime

log = logging.getLogger("nodeagent.shared")

STATES_MAX_AGE = 0.5  # seconds one listing of every container's state serves every pod worker
START_TIMEOUT = 30.0
KILLED = 137


class SharedError(RuntimeError):
    pass


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass
class SharedSimulator:
    pods_dir: Path
    repo_root: Path
    python: str
    owner: str  # "<node>:simulator-shared": its pid file is cleaned up as any pod process's
    env: Mapping[str, str]
    _proc: runtime.Process | None = None
    generation: int = 0  # counts starts: containers of an earlier generation died with it
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _states: dict[str, Any] = field(default_factory=dict)
    _states_at: float = 0.0

    @property
    def socket_path(self) -> Path:
        return self.pods_dir / "simulator-shared.sock"

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc is not None else 0

    def alive(self) -> bool:
        return self._proc is not None and self._proc.exit_code() is None

    def _ensure(self) -> None:
        """Start the shared process unless it runs (called with the lock held)."""
        if self.alive():
            return
        if self._proc is not None:
            log.warning("shared simulator (pid %d) ended with %s: starting it again", self._proc.pid,
                        self._proc.exit_code())
            runtime.cleanup(self._proc)
        self.socket_path.unlink(missing_ok=True)
        argv = [self.python, "-m", "devenv.simulator", "shared", "--socket", str(self.socket_path)]
        self._proc = runtime.start_process(argv, self.env, self.repo_root, self.pods_dir / "simulator-shared.log",
                                           self.pods_dir / "simulator-shared.pid", self.owner)
        self.generation += 1
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.exit_code() is not None:
                raise SharedError(f"shared simulator exited with {self._proc.exit_code()} at start "
                                  f"(see {self.pods_dir / 'simulator-shared.log'})")
            try:
                self._request("GET", "/containers", None, timeout=2.0)
                log.info("shared simulator started: pid %d, socket %s", self._proc.pid, self.socket_path)
                return
            except OSError:
                time.sleep(0.1)
        raise SharedError(f"shared simulator did not answer on {self.socket_path} within {START_TIMEOUT:.0f} s")

    def _request(self, method: str, path: str, body: Any, timeout: float = 60.0) -> Any:
        conn = _UnixConnection(self.socket_path, timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            if response.status >= 400:
                raise SharedError(f"{method} {path}: HTTP {response.status}: {data[:300].decode(errors='replace')}")
            return json.loads(data or b"null")
        finally:
            conn.close()

    def start(self, cid: str, spec: dict[str, Any], log_path: Path, owner: str, what: str) -> SharedContainer:
        """Hand one container to the shared process; its output goes to `log_path` after a header line."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as out:
            out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {owner}: (shared simulator) {what}\n")
            offset = out.tell()
        with self._lock:
            self._ensure()
            generation = self.generation
        handle = SharedContainer(self, cid, generation, log_path, offset)
        try:
            state = self._request("PUT", f"/containers/{cid}", {**spec, "log": str(log_path)})
        except (OSError, SharedError) as exc:
            handle.final = KILLED
            with open(log_path, "a") as out:
                out.write(f"shared simulator did not take the container: {exc}\n")
            return handle
        if state.get("state") == "exited":
            handle.final = int(state.get("code", 1))
        return handle

    def states(self) -> tuple[dict[str, Any], float]:
        """Every container's state (one listing, reused for STATES_MAX_AGE) and when it was read."""
        with self._lock:
            if time.monotonic() - self._states_at > STATES_MAX_AGE:
                try:
                    self._states = dict(self._request("GET", "/containers", None, timeout=10.0))
                except (OSError, SharedError, ValueError):
                    self._states = {}
                self._states_at = time.monotonic()
            return self._states, self._states_at

    def stop(self, cid: str) -> int | None:
        try:
            state = self._request("DELETE", f"/containers/{cid}", None)
        except (OSError, SharedError, ValueError):
            return None
        return int(state.get("code", 0))


@dataclass
class SharedContainer:
    """One container in the shared process, as the pod worker sees it (see runtime.Handle)."""

    shared: SharedSimulator
    cid: str
    generation: int
    log_path: Path
    log_offset: int
    final: int | None = None  # the exit code, once known
    started: float = field(default_factory=time.monotonic)
    stopping: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.shared.pid

    def exit_code(self) -> int | None:
        if self.final is not None:
            return self.final
        if self.generation != self.shared.generation or not self.shared.alive():
            self.final = KILLED
            return self.final
        states, read_at = self.shared.states()
        state = states.get(self.cid)
        if state is None:
            if read_at > self.started + 0.05 and self.stopping is None:
                self.final = KILLED  # the shared process no longer knows it
            return self.final
        if state.get("state") == "exited":
            self.final = int(state.get("code", 1))
        return self.final

    def signal_stop(self) -> None:
        """As SIGTERM: ask the shared process to stop the container (in the background)."""
        if self.final is not None or self.stopping is not None:
            return

        def stop() -> None:
            code = self.shared.stop(self.cid)
            self.final = code if code is not None else KILLED

        self.stopping = threading.Thread(target=stop, name=f"stop-{self.cid}", daemon=True)
        self.stopping.start()

    def finish_stop(self, deadline: float) -> None:
        if self.stopping is None:
            self.signal_stop()
        if self.stopping is not None:
            self.stopping.join(max(0.0, deadline - time.monotonic()))
        if self.final is None:
            self.final = KILLED  # not stopped in time: the agent gives up on it as SIGKILL would

    def cleanup(self) -> None:
        """After it ended (or must end): the shared process forgets it and closes its log."""
        if self.stopping is not None:
            self.stopping.join(runtime.STOP_GRACE_CAP)
        elif self.generation == self.shared.generation and self.shared.alive():
            code = self.shared.stop(self.cid)
            if self.final is None and code is not None:
                self.final = code
        if self.final is None:
            self.final = KILLED
