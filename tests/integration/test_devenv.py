"""Acceptance of devenv itself (issue 2), on the real environment, where test_nodeagent.py does not
already cover it: the server's version, `kubectl rollout status` of a Deployment and of its new image,
RBAC on a TokenRequest token, a CEL rule of a CRD, a server-side dry run of manifests/, and `python -m
devenv down` leaving no process or port behind (on a devenv of its own, never the session's)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from devenv import controlplane, elasticsearch, procs
from devenv.paths import State
from tests.factories import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def kubectl(devenv: Any, *args: str, kubeconfig: Path | None = None, timeout: float = 180,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """devenv's own kubectl (bin/kubectl of the state directory) with devenv's kubeconfig."""
    binary = Path(devenv.kubeconfig).parent / "bin" / "kubectl"
    result = subprocess.run(
        [str(binary), "--kubeconfig", str(kubeconfig or devenv.kubeconfig), *args],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO,
    )
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
    return result


def token_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """A kubeconfig authenticating with `token`, with the server and CA of devenv's kubeconfig."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    (cluster,) = admin["clusters"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "token", "user": {"token": token}}],
        "contexts": [{"name": "token", "context": {"cluster": cluster["name"], "user": "token"}}],
        "current-context": "token",
    }))
    path.chmod(0o600)
    return path


# ---- the server --------------------------------------------------------------------------------


def test_server_reports_its_real_version(devenv: Any, kube_api: Any) -> None:
    info = client.VersionApi(kube_api).get_code()
    assert info.git_version == controlplane.KUBERNETES_VERSION == "v1.35.4"
    assert (info.major, info.minor) == ("1", "35")
    versions = json.loads(kubectl(devenv, "version", "-o", "json").stdout)
    assert versions["serverVersion"]["gitVersion"] == "v1.35.4"
    assert versions["clientVersion"]["gitVersion"] == "v1.35.4"


# ---- a Deployment through kubectl ---------------------------------------------------------------


def test_kubectl_rollout_status_of_a_deployment_and_of_its_new_image(devenv: Any, kube_api: Any,
                                                                     namespace: str) -> None:
    # Pod addresses, cascading deletion and the ReplicaSets are checked in test_nodeagent.py; here the
    # rollout as a person follows it, with kubectl.
    kubectl(devenv, "-n", namespace, "create", "deployment", "web", "--image=nginx:1.27", "--replicas=3")
    out = kubectl(devenv, "-n", namespace, "rollout", "status", "deployment/web", "--timeout=120s").stdout
    assert 'deployment "web" successfully rolled out' in out
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(namespace, label_selector="app=web").items
    assert len({p.status.pod_ip for p in pods}) == 3

    kubectl(devenv, "-n", namespace, "set", "image", "deployment/web", "nginx=nginx:1.28")
    out = kubectl(devenv, "-n", namespace, "rollout", "status", "deployment/web", "--timeout=120s").stdout
    assert 'deployment "web" successfully rolled out' in out
    history = kubectl(devenv, "-n", namespace, "rollout", "history", "deployment/web").stdout
    assert [line.split()[0] for line in history.splitlines() if line[:1].isdigit()] == ["1", "2"]
    d = client.AppsV1Api(kube_api).read_namespaced_deployment("web", namespace)
    assert d.spec.template.spec.containers[0].image == "nginx:1.28"
    assert (d.status.updated_replicas, d.status.ready_replicas) == (3, 3)


# ---- authentication and authorization -----------------------------------------------------------


def test_service_account_without_bindings_is_forbidden_to_list_secrets(
    devenv: Any, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="nobody")))
    token = kubectl(devenv, "-n", namespace, "create", "token", "nobody", "--duration=10m").stdout.strip()
    assert token.count(".") == 2, "a JWT"
    api = config.new_client_from_config(str(token_kubeconfig(devenv.kubeconfig, token, tmp_path / "kubeconfig")))
    try:
        # Authenticated (not 401): the server knows who this is ...
        review = client.AuthenticationV1Api(api).create_self_subject_review(
            client.V1SelfSubjectReview(metadata=client.V1ObjectMeta()))
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:nobody"
        # ... and RBAC allows it nothing on Secrets.
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(api).list_namespaced_secret(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:nobody" in str(denied.value.body)
    finally:
        api.close()
    result = kubectl(devenv, "-n", namespace, "get", "secrets", kubeconfig=tmp_path / "kubeconfig", check=False)
    assert result.returncode != 0
    assert "Forbidden" in result.stderr


# ---- CRDs with CEL ------------------------------------------------------------------------------


def widget_crd(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "required": ["replicas", "maxReplicas"],
                        "properties": {"replicas": {"type": "integer"}, "maxReplicas": {"type": "integer"}},
                        "x-kubernetes-validations": [{
                            "rule": "self.replicas <= self.maxReplicas",
                            "message": "replicas must not exceed maxReplicas",
                        }],
                    }},
                }},
            }],
        },
    }


@pytest.fixture
def widget_group(kube_api: Any) -> Iterator[str]:
    """A CRD with a CEL rule, in a group of its own (deleted afterwards)."""
    ext = client.ApiextensionsV1Api(kube_api)
    group = f"w{uuid.uuid4().hex[:8]}.devenv.test"
    ext.create_custom_resource_definition(widget_crd(group))

    def established() -> bool:
        crd = ext.read_custom_resource_definition(f"widgets.{group}")
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_for(established, 30, "the CRD to be established")
    yield group
    ext.delete_custom_resource_definition(f"widgets.{group}")


def test_crd_cel_rule_rejects_a_bad_object_with_422(kube_api: Any, namespace: str, widget_group: str) -> None:
    api = client.CustomObjectsApi(kube_api)

    def widget(name: str, replicas: int) -> dict[str, Any]:
        return {"apiVersion": f"{widget_group}/v1", "kind": "Widget", "metadata": {"name": name},
                "spec": {"replicas": replicas, "maxReplicas": 3}}

    def create_good() -> bool:
        # Serving a new group may lag its Established condition by a moment (404 until then).
        try:
            api.create_namespaced_custom_object(widget_group, "v1", namespace, "widgets", widget("good", 2))
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    wait_for(create_good, 30, "the good widget created")
    with pytest.raises(ApiException) as rejected:
        api.create_namespaced_custom_object(widget_group, "v1", namespace, "widgets", widget("bad", 5))
    assert rejected.value.status == 422
    body = json.loads(rejected.value.body)
    assert body["reason"] == "Invalid"
    assert "replicas must not exceed maxReplicas" in body["message"]
    names = [o["metadata"]["name"] for o in
             api.list_namespaced_custom_object(widget_group, "v1", namespace, "widgets")["items"]]
    assert names == ["good"]


# ---- manifests/ --------------------------------------------------------------------------------


def test_manifests_pass_a_server_side_dry_run(devenv: Any, kube_api: Any) -> None:
    # A server dry run creates nothing, not even the namespace the other objects go into: create that
    # for real (unless it is there already), and delete it afterwards.
    core = client.CoreV1Api(kube_api)
    name = "tracardi-operator"

    def phase() -> str | None:
        try:
            return str(core.read_namespace(name).status.phase)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    wait_for(lambda: phase() != "Terminating", 120, f"namespace {name} to finish terminating")
    created = phase() is None
    if created:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        result = kubectl(devenv, "apply", "-k", "manifests/", "--dry-run=server")
        lines = result.stdout.splitlines()
        assert all(line.endswith("(server dry run)") for line in lines), result.stdout
        kinds = sorted(line.split("/", 1)[0].split(".", 1)[0] for line in lines)
        assert kinds == sorted(["namespace", "customresourcedefinition", "customresourcedefinition",
                                "serviceaccount", "clusterrole", "clusterrolebinding", "role", "rolebinding",
                                "service", "deployment"])
        # Nothing but the namespace exists afterwards.
        with pytest.raises(ApiException) as absent:
            client.AppsV1Api(kube_api).read_namespaced_deployment("tracardi-operator", name)
        assert absent.value.status == 404
    finally:
        if created:
            core.delete_namespace(name)


# ---- python -m devenv down ----------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (session id, command line) of every process on the machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        found[int(entry.name)] = (int(fields[3]), cmdline)
    return found


def _listening_ports(pids: set[int]) -> set[int]:
    """TCP ports on which any of `pids` listens."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    ports = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        for link in links:
            if link.startswith("socket:[") and link[8:-1] in inodes:
                ports.add(inodes[link[8:-1]])
    return ports


def _devenv_cli(root: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEVENV_DIR=str(root))
    return subprocess.run([sys.executable, "-m", "devenv", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_devenv_down_leaves_no_process_port_route_or_rule_of_ours(devenv: Any) -> None:
    """A devenv of its own (the session's keeps running), built from the session's binaries: down leaves
    no process, port, route or nft table of it."""
    session = State.default()
    own = State(Path(tempfile.mkdtemp(prefix="devenv-down-", dir="/tmp")))
    assert own.root != session.root
    try:
        own.ensure()
        (own.bin / "devenv-cluster").symlink_to(controlplane.binary(session))
        (own.bin / "devenv-coredns").symlink_to(controlplane.coredns_binary(session))
        shutil.copy2(elasticsearch.classpath_file(session), elasticsearch.classpath_file(own))
        shutil.copytree(elasticsearch.launcher_dir(session), elasticsearch.launcher_dir(own))
        up = _devenv_cli(own.root, "up", timeout=400)
        assert up.returncode == 0, up.stdout + up.stderr

        from devenv import lifecycle, network

        added = json.loads((own.root / "network.json").read_text()) if os.geteuid() == 0 else {}
        if added:  # the routed network: two /16 routes to lo and kube-proxy's table
            assert set(added["routes"]) <= set(network.local_routes())
            assert network.nft_table_exists(added["table"])
        components = {c: procs.read_pid(own, c) for c in lifecycle.components(own)}
        assert all(procs.alive(pid) for pid in components.values()), components
        sessions = {pid for pid in components.values() if pid is not None}
        ours = {pid for pid, (sid, cmd) in _processes().items() if sid in sessions or str(own.root) in cmd}
        ports = _listening_ports(ours)
        recorded = set(json.loads((own.root / "ports.json").read_text()).values())
        assert recorded <= ports, (recorded, ports)

        down = _devenv_cli(own.root, "down", timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        assert "stopped: " in down.stderr, down.stderr  # procs.say writes to stderr
        assert "nodeagent" in down.stderr.split("stopped: ", 1)[1], down.stderr

        def leftovers() -> dict[int, str]:
            return {pid: cmd for pid, (sid, cmd) in _processes().items()
                    if pid in ours or sid in sessions or str(own.root) in cmd}

        wait_for(lambda: not leftovers(), 10, "no process of that devenv")
        assert not leftovers()
        assert not [p for p in ports if procs.port_open("127.0.0.1", p)], ports
        assert not _listening_ports(ours)
        assert not own.env_file.exists()
        if added:
            assert not set(added["routes"]) & set(network.local_routes()), network.local_routes()
            assert not network.nft_table_exists(added["table"])
            assert not network.nft_table_exists(added["table"], "ip6")
            assert not (own.root / "network.json").exists()
    finally:
        _devenv_cli(own.root, "down", timeout=120)
        shutil.rmtree(own.root, ignore_errors=True)


def test_token_kubeconfig_keeps_server_and_ca(tmp_path: Path) -> None:
    admin = tmp_path / "admin"
    ca = base64.b64encode(b"CA").decode()
    admin.write_text(yaml.safe_dump({
        "clusters": [{"name": "devenv", "cluster": {"server": "https://127.0.0.1:1",
                                                    "certificate-authority-data": ca}}],
        "users": [{"name": "admin", "user": {"client-certificate-data": "x"}}]}))
    written = yaml.safe_load(token_kubeconfig(admin, "t0ken", tmp_path / "k").read_text())
    assert written["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:1", "certificate-authority-data": ca}
    assert written["users"] == [{"name": "token", "user": {"token": "t0ken"}}]
