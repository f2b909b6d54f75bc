"""devenv's cluster network against the real control plane: pods get addresses of the routed pod network,
the endpointslice controller lists them, kube-proxy routes a Service's ClusterIP to them (and refuses once
there are none), CoreDNS answers the Service's name at the cluster DNS ClusterIP, and a pod from the
operator's image reaches the Service by its DNS names through the resolv.conf the node agent writes.
Cleanup: `devenv down` (and `up` after a killed run) removes every route and nft table devenv added."""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from devenv import lifecycle, network
from devenv.paths import State
from tests.factories import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:HTTPResponse.getheaders:DeprecationWarning"),
]

# API errors and refused connections while waiting mean "not yet", not a failure.
wait = functools.partial(wait_for, interval=0.3, ignoring=(ApiException, OSError))
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP proxy

SERVER = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = os.environ['POD_NAME'].encode()\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
    "http.server.ThreadingHTTPServer((os.environ['POD_IP'], 8080), H).serve_forever()\n"
)

CLIENT = (
    "import sys, urllib.request\n"
    "print(open('/etc/resolv.conf').read(), flush=True)\n"
    "for url in sys.argv[1:]:\n"
    "    print(url, '->', urllib.request.urlopen(url, timeout=10).read().decode(), flush=True)\n"
)


@pytest.fixture(scope="module")
def net(devenv: Any) -> dict[str, str]:
    values = lifecycle.read_env(State.default())
    if "DEVENV_CLUSTER_DNS" not in values:
        pytest.skip("this devenv runs without the routed network (loopback pod addresses)")
    return values


def _env() -> list[client.V1EnvVar]:
    def field(path: str) -> client.V1EnvVarSource:
        return client.V1EnvVarSource(field_ref=client.V1ObjectFieldSelector(field_path=path))

    return [client.V1EnvVar(name="POD_IP", value_from=field("status.podIP")),
            client.V1EnvVar(name="POD_NAME", value_from=field("metadata.name"))]


def _web(apps: client.AppsV1Api, core: client.CoreV1Api, ns: str, replicas: int) -> str:
    labels = {"app": "web"}
    probe = client.V1Probe(tcp_socket=client.V1TCPSocketAction(port="http"), period_seconds=1)
    container = client.V1Container(
        name="web", image="tracardi-operator:dev", command=["python", "-c", SERVER], env=_env(),
        ports=[client.V1ContainerPort(name="http", container_port=8080)], readiness_probe=probe)
    apps.create_namespaced_deployment(ns, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=replicas, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels),
                                              spec=client.V1PodSpec(containers=[container])))))
    svc = core.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector=labels, ports=[
            client.V1ServicePort(name="http", port=80, target_port="http")])))
    return str(svc.spec.cluster_ip)


def _slice_ips(discovery: client.DiscoveryV1Api, ns: str) -> set[str]:
    """Ready addresses of the Service's EndpointSlices (raw JSON: the client's model refuses a slice
    without endpoints)."""
    raw = discovery.list_namespaced_endpoint_slice(
        ns, label_selector="kubernetes.io/service-name=web", _preload_content=False)
    slices = json.loads(raw.data)["items"]
    return {a for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")
            for a in e["addresses"]}


def _get(url: str) -> str:
    with DIRECT.open(url, timeout=5) as resp:
        return str(resp.read().decode())


def test_service_routes_to_its_pods_by_cluster_ip_and_dns_name(
    kube_api: client.ApiClient, namespace: str, net: dict[str, str]
) -> None:
    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    batch, discovery = client.BatchV1Api(kube_api), client.DiscoveryV1Api(kube_api)
    cluster_ip = _web(apps, core, namespace, replicas=2)
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network(net["DEVENV_SERVICE_CIDR"])

    def ready_pods() -> dict[str, str] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        ready = {p.status.pod_ip: p.metadata.name for p in pods if p.status.pod_ip and any(
            c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])}
        return ready if len(ready) == 2 else None

    pods = wait(ready_pods, 90, "two web pods Ready")
    for ip in pods:
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(net["DEVENV_POD_CIDR"])
    # The real endpointslice controller accepts the routed addresses (it drops loopback ones).
    wait(lambda: _slice_ips(discovery, namespace) == set(pods), 60, f"the EndpointSlice listing {sorted(pods)}")

    # From the host: kube-proxy's DNAT of the ClusterIP spreads over both pods.
    seen = {wait(lambda: _get(f"http://{cluster_ip}/"), 30, "the ClusterIP answering")}
    deadline = time.monotonic() + 30
    while seen != set(pods.values()) and time.monotonic() < deadline:
        seen.add(_get(f"http://{cluster_ip}/"))
    assert seen == set(pods.values())
    # CoreDNS answers the Service's name at the cluster DNS ClusterIP.
    dns = net["DEVENV_CLUSTER_DNS"]
    assert network.resolve(dns, f"web.{namespace}.svc.cluster.local") == [cluster_ip]
    assert network.resolve(dns, f"nothing.{namespace}.svc.cluster.local") == []

    # From a pod of the operator's image: its resolv.conf names the cluster DNS; short and full names work.
    urls = ["http://web/", f"http://web.{namespace}.svc/", f"http://web.{namespace}.svc.cluster.local/",
            f"http://{cluster_ip}/"]
    batch.create_namespaced_job(namespace, client.V1Job(
        metadata=client.V1ObjectMeta(name="client"),
        spec=client.V1JobSpec(backoff_limit=0, template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
            restart_policy="Never", containers=[client.V1Container(
                name="client", image="tracardi-operator:dev", command=["python", "-c", CLIENT, *urls])])))))

    def finished() -> str | None:
        for c in batch.read_namespaced_job_status("client", namespace).status.conditions or []:
            if c.type in ("Complete", "Failed") and c.status == "True":
                return str(c.type)
        return None

    outcome = wait(finished, 120, "the client Job to finish")
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=client").items[0].metadata.name
    log = core.read_namespaced_pod_log(pod, namespace)
    assert outcome == "Complete", log
    assert f"nameserver {dns}" in log
    assert f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local" in log
    assert "options ndots:5" in log
    for url in urls:
        assert any(line.startswith(f"{url} -> web-") for line in log.splitlines()), log

    # Scaled to zero: no endpoints, and kube-proxy refuses connections to the ClusterIP at once.
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 0}})
    wait(lambda: not _slice_ips(discovery, namespace), 60, "the EndpointSlice emptied")

    def refused() -> bool:
        try:
            _get(f"http://{cluster_ip}/")
        except urllib.error.URLError as exc:
            return isinstance(exc.reason, ConnectionRefusedError)
        except ConnectionRefusedError:
            return True
        return False

    wait(refused, 30, "connections to the ClusterIP refused")


@pytest.mark.skipif(os.geteuid() != 0, reason="adding routes needs root")
def test_down_and_a_later_up_leave_no_route_or_table(tmp_path: Path, net: dict[str, str]) -> None:
    """A second state directory: its networks are its own; what a killed run left (routes, kube-proxy's
    tables) is removed by the next setup, and `devenv down` removes everything."""
    state = State(tmp_path / "state")
    state.ensure()
    first = network.setup(state)
    assert first.plan is not None, first.reason
    plan = first.plan
    assert plan.pod_cidr != net["DEVENV_POD_CIDR"]
    assert plan.service_cidr != net["DEVENV_SERVICE_CIDR"]
    assert set(plan.routes) <= set(network.local_routes())
    for family in ("ip", "ip6"):  # as a killed kube-proxy leaves them
        subprocess.run(["nft", "add", "table", family, plan.table], check=True)
    again = network.setup(state)  # what `devenv up` does first after a killed run
    assert again.plan == plan
    assert not network.nft_table_exists(plan.table)
    assert not network.nft_table_exists(plan.table, "ip6")
    subprocess.run(["nft", "add", "table", "ip", plan.table], check=True)
    stopped = lifecycle.down(state, quiet=True)
    assert f"route {plan.pod_cidr}" in stopped
    assert f"nft table ip {plan.table}" in stopped
    assert not set(plan.routes) & set(network.local_routes())
    assert not network.nft_table_exists(plan.table)
    assert not (state.root / "network.json").exists()
    # Our own devenv's network is untouched.
    assert net["DEVENV_POD_CIDR"] in network.local_routes()


def test_a_local_process_pod_gets_the_cluster_resolv_conf(
    kube_api: client.ApiClient, namespace: str, net: dict[str, str]
) -> None:
    """The simulator runs as a local process: it sees the pod's resolv.conf in a mount namespace of its own,
    while the host's /etc/resolv.conf stays as it was."""
    core = client.CoreV1Api(kube_api)
    host_before = Path("/etc/resolv.conf").read_text()
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="gui"),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="gui", image="tracardi/tracardi-gui:0.8.1", ports=[client.V1ContainerPort(container_port=8787)])])))
    pidfile = State.default().pods / f"{namespace}_gui_gui.pid"
    pid = wait(lambda: pidfile.exists() and int(pidfile.read_text().split()[0]), 60, "the gui process")
    seen = wait(lambda: Path(f"/proc/{pid}/root/etc/resolv.conf").read_text(), 10, "its resolv.conf")
    lines = seen.splitlines()
    assert lines[0] == f"nameserver {net['DEVENV_CLUSTER_DNS']}"
    assert lines[1].startswith(f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local")
    assert lines[2] == "options ndots:5"
    assert Path("/etc/resolv.conf").read_text() == host_before
