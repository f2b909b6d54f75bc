"""The Node this agent stands for: its registration, its status heartbeat and its Lease in
kube-node-lease, renewed every 10 s by one thread. The latest labels and taints are kept for the binder."""

from __future__ import annotations

import contextlib
import logging
import platform
import threading
import uuid

from kubernetes.client.rest import ApiException

from devenv.nodeagent.kube import Kube, now_micro, now_rfc3339, retry
from devenv.nodeagent.rules import NODE_CAPACITY, Json

log = logging.getLogger("nodeagent.node")

HEARTBEAT_SECONDS = 10.0
LEASE_SECONDS = 40
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _read(path: str, default: str) -> str:
    with contextlib.suppress(OSError), open(path) as f:
        return f.read().strip() or default
    return default


def _os_image() -> str:
    with contextlib.suppress(OSError), open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def node_labels(name: str) -> dict[str, str]:
    return {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": ARCH,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": ARCH,
        "type": "devenv",
    }


def node_status(kubelet_version: str, logs_port: int | None, now: str) -> Json:
    conditions = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "node agent has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "node agent has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "node agent has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "devenv node agent is posting ready status"),
    ]
    status: Json = {
        "conditions": [
            {"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": now}
            for t, s, r, m in conditions
        ] + [{"type": "NetworkUnavailable", "status": "False", "reason": "RouteCreated",
              "message": "pods use loopback addresses", "lastHeartbeatTime": now}],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                      {"type": "Hostname", "address": platform.node() or "localhost"}],
        "capacity": dict(NODE_CAPACITY),
        "allocatable": dict(NODE_CAPACITY),
        "nodeInfo": {
            "machineID": _read("/etc/machine-id", uuid.uuid5(uuid.NAMESPACE_DNS, platform.node()).hex),
            "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, platform.node())),
            "bootID": _read("/proc/sys/kernel/random/boot_id", "unknown"),
            "kernelVersion": platform.release(),
            "osImage": _os_image(),
            "containerRuntimeVersion": "devenv://0.1.0",
            "kubeletVersion": kubelet_version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": ARCH,
        },
    }
    if logs_port:
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": logs_port}}
    return status


class NodeKeeper(threading.Thread):
    def __init__(self, kube: Kube, name: str, logs_port: int | None, stop: threading.Event) -> None:
        super().__init__(name="node", daemon=True)
        self.kube, self.node_name, self.logs_port, self.stop = kube, name, logs_port, stop
        self.uid = ""
        self.version = "v0.0.0"
        self.labels: dict[str, str] = node_labels(name)
        self.taints: list[Json] = []
        self.changed = threading.Event()  # set whenever the taints change (the binder listens)

    def register(self) -> None:
        """Create the Node (or adopt the existing one) and post a Ready status; retried until it works."""
        while not self.stop.is_set():
            try:
                self.version = retry(self.kube.server_version, "server version", self.stop)
                node = self.kube.get_node(self.node_name)
                if node is None:
                    body = {"apiVersion": "v1", "kind": "Node",
                            "metadata": {"name": self.node_name, "labels": self.labels,
                                         "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
                            "spec": {}}
                    try:
                        node = self.kube.create_node(body)
                        log.info("registered node %s", self.node_name)
                    except ApiException as exc:
                        if exc.status != 409:
                            raise
                        node = self.kube.get_node(self.node_name)
                assert node is not None
                self.uid = str(node["metadata"]["uid"])
                self.heartbeat()
                return
            except Exception as exc:
                log.warning("registering node %s: %s; retrying", self.node_name, exc)
                self.stop.wait(2)

    def heartbeat(self) -> None:
        node = self.kube.patch_node_status(self.node_name, node_status(self.version, self.logs_port, now_rfc3339()))
        self._note(node)
        self.kube.renew_lease(self.node_name, self.uid, now_micro(), LEASE_SECONDS)

    def _note(self, node: Json) -> None:
        taints = list((node.get("spec") or {}).get("taints") or [])
        self.labels = dict((node.get("metadata") or {}).get("labels") or self.labels)
        if taints != self.taints:
            log.info("node taints now %s", [t.get("key") for t in taints] or "none")
            self.taints = taints
            self.changed.set()

    def run(self) -> None:
        while not self.stop.wait(self._interval()):
            try:
                self.heartbeat()
            except ApiException as exc:
                if exc.status == 404:
                    log.warning("node %s was deleted; registering it again", self.node_name)
                    self.register()
                else:
                    log.warning("node heartbeat: HTTP %s", exc.status)
            except Exception as exc:
                log.warning("node heartbeat: %s", exc)

    def _interval(self) -> float:
        # While the not-ready taint is still on, look again sooner so that binding starts at once.
        return 1.0 if self.taints else HEARTBEAT_SECONDS

