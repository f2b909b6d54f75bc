"""The node agent put together: the Node keeper, the binder (pods nobody scheduled are bound to this node),
the pod runner (one `PodWorker` per pod bound here), the logs endpoint, start-up clean-up and shutdown."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubernetes.client.rest import ApiException

from devenv import procs
from devenv.nodeagent import rules, runtime
from devenv.nodeagent.images import ImageStore
from devenv.nodeagent.kube import Kube, WatchExpiredError, now_rfc3339
from devenv.nodeagent.logs import LogServer, ensure_certificate
from devenv.nodeagent.node import NodeKeeper
from devenv.nodeagent.pods import Context, IpPool, PodWorker
from devenv.nodeagent.rules import Json
from devenv.nodeagent.shared import SharedSimulator
from devenv.paths import REPO_ROOT, State

log = logging.getLogger("nodeagent")

WATCH_SECONDS = 300


def watch_forever(
    kube: Kube, selector: str, stop: threading.Event, what: str,
    on_list: Callable[[list[Json]], None], on_event: Callable[[str, Json], None],
) -> None:
    """List, then watch from the list's resourceVersion; a watch that ends is resumed, one that fails
    (410 WatchExpiredError or anything else) leads to a new list after a back-off. A handler that raises is logged
    and the loop carries on."""
    delay = 0.5
    while not stop.is_set():
        try:
            items, rv = kube.list_pods(selector)
            on_list(items)
            delay = 0.5
            while not stop.is_set():
                for etype, obj in kube.watch_pods(selector, rv, WATCH_SECONDS):
                    if etype == "BOOKMARK":
                        rv = str(obj["metadata"]["resourceVersion"])
                        continue
                    rv = str(obj["metadata"].get("resourceVersion") or rv)
                    try:
                        on_event(etype, obj)
                    except Exception:
                        log.exception("%s: handling %s event", what, etype)
                    if stop.is_set():
                        return
        except WatchExpiredError:
            log.info("%s: watch expired (410); listing again", what)
        except Exception as exc:
            if stop.is_set():
                return
            log.warning("%s: %s; listing again in %.1fs", what, exc, delay)
            stop.wait(delay)
            delay = min(10.0, delay * 2)


class Binder:
    """What the scheduler would do for one node: bind each unscheduled pod that fits (scheduler name,
    nodeSelector, taints) to this node; a pod that does not fit gets PodScheduled=False once."""

    def __init__(self, kube: Kube, node: NodeKeeper, stop: threading.Event) -> None:
        self.kube, self.node, self.stop = kube, node, stop
        self.pending: dict[str, Json] = {}
        self.reported: dict[str, str] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()

    def start(self) -> None:
        threading.Thread(target=watch_forever, name="binder-watch", daemon=True, args=(
            self.kube, "spec.nodeName=", self.stop, "binder", self._on_list, self._on_event)).start()
        threading.Thread(target=self._loop, name="binder", daemon=True).start()

    def _on_list(self, items: list[Json]) -> None:
        with self.lock:
            self.pending = {p["metadata"]["uid"]: p for p in items}
        self.wake.set()

    def _on_event(self, etype: str, pod: Json) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            if etype == "DELETED" or (pod.get("spec") or {}).get("nodeName"):
                self.pending.pop(uid, None)
                self.reported.pop(uid, None)
            else:
                self.pending[uid] = pod
        self.wake.set()

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.wake.wait(2.0)
            self.wake.clear()
            if self.node.changed.is_set():
                self.node.changed.clear()
            with self.lock:
                pods = list(self.pending.values())
            for pod in pods:
                try:
                    self._consider(pod)
                except Exception:
                    log.exception("binder: %s/%s", pod["metadata"].get("namespace"), pod["metadata"].get("name"))

    def _consider(self, pod: Json) -> None:
        meta = pod["metadata"]
        ok, reason = rules.binding_check(pod, self.node.labels, self.node.taints)
        if not ok:
            if reason.startswith("node(s)") and self.reported.get(meta["uid"]) != reason:
                self._unschedulable(pod, reason)
            return
        try:
            self.kube.bind(meta["namespace"], meta["name"], meta["uid"], self.node.node_name)
            log.info("bound %s/%s to %s", meta["namespace"], meta["name"], self.node.node_name)
        except ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("binding %s/%s: HTTP %s", meta["namespace"], meta["name"], exc.status)
                return
        with self.lock:
            self.pending.pop(meta["uid"], None)

    def _unschedulable(self, pod: Json, reason: str) -> None:
        meta = pod["metadata"]
        message = f"0/1 nodes are available: 1 {reason}."
        cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
        try:
            self.kube.patch_pod_status(meta["namespace"], meta["name"], {"conditions": [cond]})
            self.reported[meta["uid"]] = reason
        except ApiException as exc:
            log.warning("binder: %s/%s unschedulable status: HTTP %s", meta["namespace"], meta["name"], exc.status)


class PodRunner:
    """Keeps one PodWorker per pod bound to this node, fed by a watch on spec.nodeName=<node>."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=watch_forever, name="pods-watch", daemon=True, args=(
            self.ctx.kube, f"spec.nodeName={self.ctx.node_name}", self.ctx.stop, "pods",
            self._on_list, self._on_event)).start()

    def _on_list(self, items: list[Json]) -> None:
        seen = {p["metadata"]["uid"] for p in items}
        with self.lock:
            for uid in list(self.workers):
                if uid not in seen:
                    self.workers.pop(uid).gone()
        for pod in items:
            self._on_event("MODIFIED", pod)

    def _on_event(self, etype: str, pod: Json) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            if etype == "DELETED":
                if worker is not None:
                    self.workers.pop(uid).gone()
                return
            if worker is None or (worker.vanished and not worker.is_alive()):
                worker = PodWorker(self.ctx, pod)
                self.workers[uid] = worker
                worker.start()
            else:
                worker.update(pod)

    def find(self, namespace: str, name: str) -> PodWorker | None:
        with self.lock:
            matches = [w for w in self.workers.values() if w.namespace == namespace and w.pod_name == name]
        return matches[-1] if matches else None

    def locate_logs(self, namespace: str, pod: str, container: str,
                    previous: bool) -> tuple[Path, int, int | None, bool] | None:
        worker = self.find(namespace, pod)
        found = worker.log_range(container, previous) if worker is not None else None
        if found is not None:
            return found
        path = self.ctx.pods_dir / f"{namespace}_{pod}_{container}.log"
        if previous or not path.exists():
            if worker is not None and not previous:  # a container without a process: empty logs
                empty = self.ctx.pods_dir / ".empty.log"
                empty.touch()
                return empty, 0, 0, False
            return None
        return path, 0, None, False

    def workers_snapshot(self) -> list[PodWorker]:
        with self.lock:
            return list(self.workers.values())


@dataclass
class Options:
    kubeconfig: Path
    state_dir: Path
    node_name: str
    logs_port: int | None = None  # None: pick a free port; 0: no logs endpoint
    pod_ips: tuple[str, str] | None = None  # first and last pod address; None: rules' default range
    dns: rules.ClusterDns | None = None  # the cluster DNS pods' resolv.conf names; None: the host's
    simulator: str = "process"  # "shared": every simulator container in one process (devenv/simulator/shared.py)
    probe_time_scale: float = 1.0  # probes run on a clock this much faster (rules.ProbeSpec.scaled)


def simulator_present(repo_root: Path) -> Callable[[], bool]:
    return lambda: (repo_root / "devenv" / "simulator" / "__main__.py").exists()


def run(opts: Options, stop: threading.Event) -> None:
    """Run the agent until `stop` is set; then stop every pod process and return."""
    state = State(opts.state_dir.resolve())
    state.ensure()
    stopped = runtime.kill_leftovers(state.pods, opts.node_name)
    if stopped:
        log.info("stopped %d process(es) a previous agent left: %s", len(stopped), ", ".join(stopped))
    kube = Kube(str(opts.kubeconfig))
    ctx = Context(kube=kube, node_name=opts.node_name, pods_dir=state.pods, repo_root=REPO_ROOT, stop=stop,
                  ips=IpPool(*(opts.pod_ips or (None, None))),
                  simulator_available=simulator_present(REPO_ROOT), images=ImageStore(state.root / "images"),
                  dns=opts.dns, probe_time_scale=opts.probe_time_scale)
    if opts.probe_time_scale != 1:
        log.info("probes run at %g times their initial delays and periods", opts.probe_time_scale)
    if opts.simulator == "shared":
        ctx.shared = SharedSimulator(
            state.pods, REPO_ROOT, ctx.python, f"{opts.node_name}:simulator-shared",
            env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8",
                 "PYTHONUNBUFFERED": "1"})
        log.info("simulator containers run in one shared process")
    runner = PodRunner(ctx)
    logs_port = procs.free_port() if opts.logs_port is None else opts.logs_port
    if logs_port:
        crt, key = ensure_certificate(state.pki, state.root / "nodeagent")
        LogServer(logs_port, runner.locate_logs, crt, key, stop).start()
        log.info("serving container logs on https://127.0.0.1:%d", logs_port)
    node = NodeKeeper(kube, opts.node_name, logs_port or None, stop)
    node.register()
    if stop.is_set():
        return
    node.start()
    runner.start()
    Binder(kube, node, stop).start()
    log.info("node %s is up (apiserver %s:%d)", opts.node_name, kube.server.host, kube.server.port)
    stop.wait()
    shutdown(runner, state.pods, opts.node_name)


def shutdown(runner: PodRunner, pods_dir: Path, node: str) -> None:
    """SIGTERM to every pod process at once, SIGKILL after a few seconds. Pods stay in the API: the next
    agent finds them and restarts or fails them (see PodWorker._adopt)."""
    deadline = time.monotonic() + 2.0
    for worker in runner.workers_snapshot():
        worker.wake.set()
        worker.join(max(0.0, deadline - time.monotonic()))
    stopped = runtime.kill_leftovers(pods_dir, node, grace=runtime.STOP_GRACE_CAP)
    log.info("stopped %d pod process(es); bye", len(stopped))
