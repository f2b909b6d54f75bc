"""Fault injection for the end-to-end fault tests (test_faults.py) and benchmarks/bench_kills.py: a TCP
proxy to the apiserver that can freeze the streams open at one moment (a watch that silently stops
delivering), an installation used as a probe of the operator's reactions, the operator killed at random
moments of an upgrade, and the checks that follow a faulty upgrade."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.conftest import Installations, OperatorProcess
from tests.e2e.test_failures import assert_all_readable, seed, step
from tests.factories import wait_for


def say(message: str) -> None:
    print(f"  faults: {message}", file=sys.stderr, flush=True)


# -- a watch that silently stops delivering --------------------------------------------------------------


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.frozen = False


class FreezingProxy:
    """A TCP proxy in front of the apiserver (TLS passes through). `freeze()` stops passing the server's
    bytes on every connection open at that moment until its client sends something again: a request on
    a pooled connection goes on as before, while a watch stream (whose client only listens) stays open
    and silent for good, as a stream whose events silently stopped coming."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target_port, self.target_host = target_port, target_host
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self.links: list[_Link] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection((self.target_host, self.target_port))
            except OSError:
                continue
            link = _Link(client, server)
            self.links.append(link)
            threading.Thread(target=self._upstream, args=(link,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(link,), daemon=True).start()

    def _upstream(self, link: _Link) -> None:
        with contextlib.suppress(OSError):
            while data := link.client.recv(65536):
                link.frozen = False  # the client talks: a new request on this connection
                link.server.sendall(data)
        self._close(link)

    def _downstream(self, link: _Link) -> None:
        with contextlib.suppress(OSError):
            while data := link.server.recv(65536):
                while link.frozen and not self.closed:
                    time.sleep(0.05)
                link.client.sendall(data)
        self._close(link)

    @staticmethod
    def _close(link: _Link) -> None:
        for s in (link.client, link.server):
            with contextlib.suppress(OSError):
                s.close()

    def freeze(self) -> int:
        for link in self.links:
            link.frozen = True
        return len(self.links)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.listener.close()
        for link in self.links:
            self._close(link)

    def kubeconfig(self, original: Path, into: Path) -> Path:
        """A copy of `original` that talks to the apiserver through this proxy."""
        doc = yaml.safe_load(original.read_text())
        for cluster in doc["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        into.write_text(yaml.safe_dump(doc))
        into.chmod(0o600)
        return into


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


def metric(port: int, name: str) -> float:
    """The sum of every series of one metric on the operator's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


# -- a probe of the operator's reactions -----------------------------------------------------------------


class Probe:
    """An installation asking for a version no one knows: the operator refuses it in status and changes
    nothing else. Asking for another unknown version and waiting for status to name it measures how long
    the operator takes to see a change and act on it."""

    def __init__(self, inst: Installations, name: str = "probe") -> None:
        self.inst, self.name, self.n = inst, name, 0
        inst.create(name, "9.9.0", paused=False)
        self._wait("9.9.0", 120)

    def _refused(self, version: str) -> bool:
        c = self.inst.condition(self.name, "SpecAccepted")
        return bool(c and c["status"] == "False" and version in c["message"])

    def _wait(self, version: str, timeout: float) -> None:
        wait_for(lambda: self._refused(version), timeout, f"the probe refusing {version}", interval=0.1)

    def react(self, timeout: float = 120) -> float:
        """Seconds from a change of the probe's spec to the operator's status naming it."""
        self.n += 1
        version = f"9.9.{self.n}"
        started = time.monotonic()
        self.inst.patch_spec(self.name, {"version": version})
        self._wait(version, timeout)
        return time.monotonic() - started


# -- the operator killed at random moments ---------------------------------------------------------------

MIGRATIONS = ("acme-migrate-080-to-08x", "acme-migrate-08x-to-0820")
INSTALLS = ("acme-install-080", "acme-install-08x", "acme-install-0820")
HISTORY = [("0.8.0", "080", "Superseded"), ("0.8.1", "08x", "Superseded"), ("0.8.2.1", "0820", "Current")]


@dataclass
class Kill:
    at: float  # seconds after the version bump
    step: str | None
    restart: float  # seconds until /readyz again


@dataclass
class KillRun:
    seed: int
    kills: list[Kill] = field(default_factory=list)
    converged: float = 0.0
    jobs: list[str] = field(default_factory=list)
    orchestrators: dict[str, int] = field(default_factory=dict)
    copies_twice: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def task_documents(es: Any, tag: str) -> list[dict[str, Any]]:
    """Every task document queued for `tag`'s worker, both contexts (see test_crash_safety)."""
    from devenv.simulator.naming import Namespace, default_tenant
    from devenv.simulator.versions import version_for_tag

    version = version_for_tag(tag)
    ns = Namespace(version.db_version, default_tenant(version))
    indices = ",".join(ns.index(version.resource("task"), c) for c in ("staging", "production"))
    es.indices.refresh(index=indices, ignore_unavailable=True)
    hits = es.search(index=indices, query={"term": {"celery.queue": f"{ns.db}.{ns.tenant}"}}, size=5000,
                     ignore_unavailable=True)["hits"]["hits"]
    return [h["_source"] | {"_index": h["_index"]} for h in hits]


def orchestrators_by_context(es: Any, tag: str) -> Counter[str]:
    return Counter(str(d["celery"].get("context")) for d in task_documents(es, tag)
                   if d["celery"]["kind"] == "orchestrator")


def copies_twice(es: Any, tag: str) -> dict[str, int]:
    copies = Counter(d["params"]["copy_index"]["from_index"] for d in task_documents(es, tag)
                     if d["celery"]["kind"] == "copy")
    return {index: n for index, n in copies.items() if n != 1}


def killed_upgrade(inst: Installations, operator: OperatorProcess, es: Any, seed_value: int, kills: int,
                   mean_gap: float = 12.0, timeout: float = 900) -> KillRun:
    """0.8.0 installed and seeded, then 0.8.0 → 0.8.2.1 (through 0.8.1) with the operator SIGKILLed at
    `kills` moments drawn from `random.Random(seed_value)` (gaps uniform in [0.5, 2·mean_gap] s, and the
    time it stays dead uniform in [0, 2] s). Returns what happened and every broken promise."""
    rng = random.Random(seed_value)
    run = KillRun(seed_value)
    inst.create("acme", "0.8.0")
    inst.wait_settled("acme", "0.8.0", timeout=300)
    seeded = seed(es, "0.8.0")
    inst.patch_spec("acme", {"version": "0.8.2.1"})
    bumped = time.monotonic()
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.5, 2 * mean_gap))
            at = time.monotonic() - bumped
            current = step(inst, "acme")
            operator.kill()
            time.sleep(rng.uniform(0.0, 2.0))
            started = time.monotonic()
            operator.start()
            run.kills.append(Kill(round(at, 1), current, round(time.monotonic() - started, 1)))
            say(f"seed {seed_value}: kill {len(run.kills)} at {at:.1f}s, step {current}")
    finally:
        if operator.proc is None or operator.proc.poll() is not None:
            operator.start()
    obj = inst.wait_settled("acme", "0.8.2.1", timeout=timeout)
    run.converged = round(time.monotonic() - bumped, 1)
    run.jobs = inst.jobs()
    if run.jobs != sorted(INSTALLS + MIGRATIONS):
        run.problems.append(f"Jobs {run.jobs}, expected one per step: {sorted(INSTALLS + MIGRATIONS)}")
    history = [(v["version"], v["dbVersion"], v["state"]) for v in obj["status"]["versions"]]
    if history != HISTORY:
        run.problems.append(f"status.versions {history}, expected {HISTORY}")
    run.orchestrators = {"0.8.1": sum(orchestrators_by_context(es, "0.8.1").values()),
                         **{f"0.8.2.1/{c}": n for c, n in orchestrators_by_context(es, "0.8.2.1").items()}}
    # 0.8.1 migrates both contexts from one POST; 0.8.2.1 takes one per context.
    if run.orchestrators != {"0.8.1": 1, "0.8.2.1/staging": 1, "0.8.2.1/production": 1}:
        run.problems.append(f"POST /migration counts {run.orchestrators}, expected one per context")
    for tag in ("0.8.1", "0.8.2.1"):
        twice = copies_twice(es, tag)
        run.copies_twice.update({f"{tag}:{k}": v for k, v in twice.items()})
    if run.copies_twice:
        run.problems.append(f"copies started more than once: {run.copies_twice}")
    try:
        assert_all_readable(es, "0.8.2.1", seeded)
    except AssertionError as e:
        run.problems.append(str(e))
    return run


# -- pods' processes -------------------------------------------------------------------------------------


def pod_pid(pods_dir: Path, namespace: str, pod_prefix: str) -> int | None:
    """The pid of a running container of a pod whose name starts with `pod_prefix` (the node agent's pid
    files: `<pid> <start time> <node>:<namespace>/<pod>/<container>`)."""
    for pidfile in pods_dir.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid_s, _, owner = pidfile.read_text().split(" ", 2)
            ref = owner.strip().split(":", 1)[1]
            ns, pod = ref.split("/")[:2]
            if ns == namespace and pod.startswith(pod_prefix):
                return int(pid_s)
    return None


def kill_process_group(pid: int) -> None:
    """SIGKILL a pod's process and its children, as a node failure would."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signal.SIGKILL)


class Kubelet:
    """Starts the operator again whenever it exits, as a kubelet does a container with restartPolicy
    Always (the operator exits on purpose when it cannot renew its Lease for 10 s)."""

    def __init__(self, operator: OperatorProcess, delay: float = 1.0) -> None:
        self.operator, self.delay = operator, delay
        self.restarts: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            proc = self.operator.proc
            if proc is not None and proc.poll() is not None:
                say(f"the operator exited with {proc.returncode}; started again in {self.delay:.0f}s")
                time.sleep(self.delay)
                self.restarts.append(time.monotonic())
                try:
                    self.operator.start()
                except AssertionError as e:  # not ready yet, e.g. the apiserver still down: try again
                    say(f"restart failed: {str(e)[:200]}")
