"""devenv's cluster network: pod addresses that Services can route to, kube-proxy and CoreDNS.

Every state directory gets, derived from its path (so two clones, or two state directories, on one host
never hand out the same addresses):
- a pod network `10.<129+i>.0.0/16`, routed to `lo` as a local route ("AnyIP": every address in it is
  bindable and reachable on this host); pods get 10.<129+i>.0.1-10.<129+i>.254.254, CoreDNS listens on
  10.<129+i>.255.254;
- a Service network `10.<1+i>.0.0/16`, also a local route, so a ClusterIP without endpoints refuses at
  once; the cluster DNS Service `kube-dns` has the 10th address, as with kubeadm;
- kube-proxy (nftables mode) in tables of its own, `ip devenv-<hash>` (and `ip6 devenv-<hash>`, empty).
i is the path's hash modulo 125, moved on to the next free slot when another devenv holds that one.

What was added is recorded in `<state>/network.json` before it is added; `cleanup` removes exactly that
(routes and the nft table), so `devenv down` leaves nothing, and `devenv up` first removes what a killed
run left. Without the privileges to add routes (CAP_NET_ADMIN), or with DEVENV_NETWORK=loopback, pods get
loopback addresses (127.<1+h>.x.y) and Services have no endpoints: no ClusterIP routing, no cluster DNS.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devenv import procs
from devenv.paths import State

CLUSTER_DOMAIN = "cluster.local"
SLOTS = 125  # 10.1-10.125 for Services, 10.129-10.253 for pods: never 10.0 (Kubernetes' usual defaults) or 10.255
_FILE = "network.json"


@dataclass(frozen=True)
class Plan:
    """The addresses of one state directory (pure: derived from its path and the slots others hold)."""

    slot: int
    digest: str

    @property
    def pod_cidr(self) -> str:
        return f"10.{129 + self.slot}.0.0/16"

    @property
    def service_cidr(self) -> str:
        return f"10.{1 + self.slot}.0.0/16"

    @property
    def pod_ips(self) -> str:
        """The node agent's range; 10.x.255.0/24 is kept for devenv's own addresses (CoreDNS)."""
        return f"10.{129 + self.slot}.0.1-10.{129 + self.slot}.254.254"

    @property
    def coredns_ip(self) -> str:
        return f"10.{129 + self.slot}.255.254"

    @property
    def dns_ip(self) -> str:
        """The `kube-dns` ClusterIP (the kubelet's clusterDNS)."""
        return str(ipaddress.IPv4Network(self.service_cidr)[10])

    @property
    def table(self) -> str:
        """kube-proxy's nftables table (family ip)."""
        return f"devenv-{self.digest[:10]}"

    @property
    def routes(self) -> tuple[str, ...]:
        return (self.pod_cidr, self.service_cidr)


def _digest(root: Path) -> str:
    return hashlib.sha256(str(root).encode()).hexdigest()


def plan_for(root: Path, taken: Collection[str] = ()) -> Plan:
    """The addresses of the state directory `root`: its hash picks a slot; a slot whose networks appear in
    `taken` (local routes another devenv added) is skipped."""
    digest = _digest(root)
    first = int(digest, 16) % SLOTS
    for step in range(SLOTS):
        plan = Plan((first + step) % SLOTS, digest)
        if not set(plan.routes) & set(taken):
            return plan
    raise procs.DevenvError("network: every devenv address slot is taken by other devenvs on this host")


def loopback_pod_ips(root: Path) -> str:
    """Pod addresses without the routed network: a loopback /16 of the state directory's own."""
    second = 1 + int(_digest(root), 16) % 254
    return f"127.{second}.0.1-127.{second}.255.254"


# -- the running network ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    """What `setup` made: `plan` is None when pods get loopback addresses (then `reason` says why)."""

    plan: Plan | None
    pod_ips: str
    reason: str = ""

    @property
    def routed(self) -> bool:
        return self.plan is not None


def _record(state: State) -> Path:
    return state.root / _FILE


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def local_routes() -> list[str]:
    """The destinations of `local ... dev lo` routes in the local table that are not the kernel's own."""
    out = _run(["ip", "-4", "-j", "route", "show", "table", "local", "type", "local", "dev", "lo"])
    if out.returncode != 0:
        return []
    found = []
    for route in json.loads(out.stdout or "[]"):
        dst = str(route.get("dst", ""))
        if "/" in dst and route.get("protocol") != "kernel":
            found.append(dst)
    return found


def nft_table_exists(table: str, family: str = "ip") -> bool:
    return _run(["nft", "list", "table", family, table]).returncode == 0


def cleanup(state: State) -> list[str]:
    """Remove every route and nft table the record of `state` names; returns what was removed."""
    record = _record(state)
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return []
    removed = []
    for dst in data.get("routes") or []:
        if dst in local_routes() and _run(["ip", "route", "del", "local", dst, "dev", "lo", "table", "local"]
                                          ).returncode == 0:
            removed.append(f"route {dst}")
    table = data.get("table")
    tables = [(family, table) for family in ("ip", "ip6")] if table and shutil.which("nft") else []
    for family, name in tables:
        if nft_table_exists(name, family) and _run(["nft", "delete", "table", family, name]).returncode == 0:
            removed.append(f"nft table {family} {name}")
    leftovers = [d for d in data.get("routes") or [] if d in local_routes()]
    leftovers += [f"nft table {f} {n}" for f, n in tables if nft_table_exists(n, f)]
    if leftovers:
        raise procs.DevenvError(f"network: could not remove {', '.join(leftovers)} (record {record})")
    record.unlink(missing_ok=True)
    return removed


def setup(state: State) -> Network:
    """Add the routes of this state directory's networks (after removing a killed run's leftovers), or
    fall back to loopback pod addresses with the reason."""
    cleanup(state)
    loopback = loopback_pod_ips(state.root)
    if os.environ.get("DEVENV_NETWORK", "routed") == "loopback":
        return Network(None, loopback, "DEVENV_NETWORK=loopback")
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        return Network(None, loopback, f"{' and '.join(missing)} not found (Debian: iproute2, nftables)")
    plan = plan_for(state.root, local_routes())
    _record(state).write_text(json.dumps({"routes": list(plan.routes), "table": plan.table}))
    for dst in plan.routes:
        out = _run(["ip", "route", "add", "local", dst, "dev", "lo", "table", "local"])
        if out.returncode != 0:
            cleanup(state)
            return Network(None, loopback, f"ip route add local {dst} dev lo: {out.stderr.strip()} "
                                           "(needs root or CAP_NET_ADMIN)")
    return Network(plan, plan.pod_ips)


def fallback_message(network: Network) -> str:
    return (f"network: {network.reason}; pods get loopback addresses ({network.pod_ips}): Services get no "
            "endpoints, ClusterIPs and cluster DNS are not available (reach pods by their IP)")


def corefile(plan: Plan, kubeconfig: Path, ready_port: int) -> str:
    """CoreDNS's configuration: kubeadm's default Corefile, bound to the CoreDNS address, reading the
    cluster through a kubeconfig (it runs outside any pod)."""
    return f""".:53 {{
    bind {plan.coredns_ip}
    errors
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} devenv
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    forward . /etc/resolv.conf
    cache 30
    loadbalance
}}
"""


# -- kube-proxy, CoreDNS and the kube-dns Service -----------------------------------------------------------

PROXY = "kube-proxy"
DNS = "coredns"
COMPONENTS = (PROXY, DNS)

_COREDNS_RULES = [
    {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
]


def _apply(create: Any, replace: Any, body: dict[str, Any], *args: str) -> None:
    from kubernetes.client.rest import ApiException

    try:
        create(*args, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        replace(body["metadata"]["name"], *args, body)


def publish_dns(kubeconfig: Path, plan: Plan, node_name: str) -> None:
    """RBAC for CoreDNS (kubeadm's system:coredns), and the `kube-dns` Service in kube-system at the DNS
    ClusterIP with an EndpointSlice naming CoreDNS's address (CoreDNS runs as a devenv process, not a pod)."""
    from kubernetes import client, config

    api = config.new_client_from_config(str(kubeconfig))
    rbac, core, discovery = client.RbacAuthorizationV1Api(api), client.CoreV1Api(api), client.DiscoveryV1Api(api)
    _apply(rbac.create_cluster_role, rbac.replace_cluster_role,
           {"metadata": {"name": "system:coredns"}, "rules": _COREDNS_RULES})
    _apply(rbac.create_cluster_role_binding, rbac.replace_cluster_role_binding, {
        "metadata": {"name": "system:coredns"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:coredns"}]})
    ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
    from kubernetes.client.rest import ApiException

    try:
        existing = core.read_namespaced_service("kube-dns", "kube-system")
        if existing.spec.cluster_ip != plan.dns_ip:
            core.delete_namespaced_service("kube-dns", "kube-system")
            existing = None
    except ApiException as exc:
        if exc.status != 404:
            raise
        existing = None
    if existing is None:
        core.create_namespaced_service("kube-system", {
            "metadata": {"name": "kube-dns", "labels": labels},
            "spec": {"clusterIP": plan.dns_ip,
                     "ports": [{"name": n, "port": 53, "protocol": p, "targetPort": 53} for n, p in ports]}})
    _apply(discovery.create_namespaced_endpoint_slice, discovery.replace_namespaced_endpoint_slice, {
        "metadata": {"name": "kube-dns-devenv", "labels": {
            "kubernetes.io/service-name": "kube-dns", "endpointslice.kubernetes.io/managed-by": "devenv"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [plan.coredns_ip], "conditions": {"ready": True}, "nodeName": node_name}],
        "ports": [{"name": n, "port": 53, "protocol": p} for n, p in ports]}, "kube-system")


def start(state: State, plan: Plan, server: str, node_name: str) -> None:
    """Start kube-proxy (nftables, the table of this devenv) and CoreDNS, publish `kube-dns`, and wait until
    the DNS ClusterIP answers through kube-proxy."""
    from devenv import certs, controlplane

    pki = certs.ensure(state.pki)
    exe = str(controlplane.binary(state))
    configs = {}
    for user in (PROXY, DNS):
        configs[user] = state.pki / f"{user}.kubeconfig"
        configs[user].write_text(controlplane.kubeconfig_yaml(pki, server, user))
        configs[user].chmod(0o600)
    healthz, metrics, ready = procs.free_port(), procs.free_port(), procs.free_port()
    while len({healthz, metrics, ready}) < 3:
        metrics, ready = procs.free_port(), procs.free_port()
    procs.start(state, PROXY, [
        exe, "kube-proxy", f"--kubeconfig={configs[PROXY]}", "--proxy-mode=nftables",
        f"--hostname-override={node_name}", f"--cluster-cidr={plan.pod_cidr}",
        f"--healthz-bind-address=127.0.0.1:{healthz}", f"--metrics-bind-address=127.0.0.1:{metrics}",
        "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0", "--v=1",
    ], env=dict(os.environ, DEVENV_KUBE_PROXY_TABLE=plan.table))
    corefile_path = state.root / "Corefile"
    corefile_path.write_text(corefile(plan, configs[DNS], ready))
    procs.start(state, DNS, [str(controlplane.coredns_binary(state)), "-conf", str(corefile_path)])
    publish_dns(state.kubeconfig, plan, node_name)
    procs.wait_for(state, PROXY, lambda: nft_table_exists(plan.table), 60, f"nftables table ip {plan.table}")
    procs.wait_for(state, DNS, lambda: _http_ok(f"http://127.0.0.1:{ready}/ready"), 60, "ready")
    name = f"kube-dns.kube-system.svc.{CLUSTER_DOMAIN}"
    procs.wait_for(state, PROXY, lambda: resolve(plan.dns_ip, name) == [plan.dns_ip], 60,
                   f"{name} answered at the DNS ClusterIP {plan.dns_ip}")


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - a local http URL we built
            return int(r.status) == 200
    except OSError:
        return False


def resolve(server: str, name: str, timeout: float = 2.0) -> list[str] | None:
    """The IPv4 addresses in the answer of DNS server `server` (UDP port 53) for `name`; [] for NXDOMAIN
    or no A record; None when it does not answer."""
    query_id = int.from_bytes(os.urandom(2), "big")
    question = b"".join(len(p).to_bytes(1, "big") + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = query_id.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question + b"\0\x01\0\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, (server, 53))
            reply = s.recv(4096)
        except OSError:
            return None
    if len(reply) < 12 or int.from_bytes(reply[:2], "big") != query_id:
        return None
    answers = int.from_bytes(reply[6:8], "big")
    pos = 12 + len(question) + 4
    found = []
    for _ in range(answers):
        while pos < len(reply):  # the owner name: labels, or a compression pointer
            if reply[pos] >= 0xC0:
                pos += 2
                break
            if reply[pos] == 0:
                pos += 1
                break
            pos += 1 + reply[pos]
        rtype, length = int.from_bytes(reply[pos:pos + 2], "big"), int.from_bytes(reply[pos + 8:pos + 10], "big")
        pos += 10
        if rtype == 1 and length == 4:
            found.append(".".join(str(b) for b in reply[pos:pos + 4]))
        pos += length
    return found
