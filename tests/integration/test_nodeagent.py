"""The node agent against the real control plane of devenv: Deployments roll out and cascade, Jobs of the
operator image complete or fail by exit code, a pod process is reachable on its podIP and made Ready by
its readinessProbe, secretKeyRef env reaches the process, namespaces delete."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.factories import wait_for

pytestmark = [
    pytest.mark.integration,
    # kubernetes' ApiException reads headers the way urllib3 deprecates; every 404 would otherwise fail.
    pytest.mark.filterwarnings("ignore:HTTPResponse.getheaders:DeprecationWarning"),
]

REPO = Path(__file__).resolve().parents[2]

# API errors while waiting mean "not yet", not a failure.
wait = functools.partial(wait_for, ignoring=(ApiException,))


@pytest.fixture(scope="module")
def api(kube_api: client.ApiClient) -> client.ApiClient:
    """The devenv of this test session (brought up by the shared `devenv` fixture)."""
    return kube_api


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def batch(api: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api)


def make_namespace(core: client.CoreV1Api) -> str:
    name = f"nodeagent-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait(lambda: core.read_namespaced_service_account("default", name), 60, "the default ServiceAccount")
    return name


def delete_namespace(core: client.CoreV1Api, name: str, timeout: float = 90) -> None:
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    wait(gone, timeout, f"namespace {name} to be deleted")


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = make_namespace(core)
    yield name
    delete_namespace(core, name)


def operator_container(command: list[str], **kwargs: Any) -> client.V1Container:
    return client.V1Container(name="main", image="tracardi-operator:dev", command=command, **kwargs)


def job(name: str, container: client.V1Container, backoff_limit: int = 0) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=backoff_limit,
            template=client.V1PodTemplateSpec(spec=client.V1PodSpec(restart_policy="Never", containers=[container])),
        ),
    )


def job_condition(batch: client.BatchV1Api, ns: str, name: str) -> str | None:
    status = batch.read_namespaced_job_status(name, ns).status
    for cond in status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return str(cond.type)
    return None


def deployment(name: str, image: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image=image)]),
            ),
        ),
    )


def rolled_out(apps: client.AppsV1Api, ns: str, name: str, replicas: int) -> bool:
    d = apps.read_namespaced_deployment_status(name, ns)
    s = d.status
    return bool(
        (s.observed_generation or 0) >= d.metadata.generation
        and s.updated_replicas == replicas
        and s.ready_replicas == replicas
        and s.available_replicas == replicas
        and (s.replicas or 0) == replicas
    )


def test_deployment_rolls_out_rolls_again_and_cascades(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", "nginx:1.27", 3))
    wait(lambda: rolled_out(apps, namespace, "web", 3), 90, "3 ready replicas")
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    ips = {p.status.pod_ip for p in pods}
    assert len(ips) == 3
    assert not any(ip.startswith("127.0.0.") for ip in ips)  # the pod network's (or devenv's own loopback)
    assert all(p.status.host_ip == "127.0.0.1" and p.status.phase == "Running" for p in pods)

    apps.patch_namespaced_deployment(
        "web", namespace, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}}
    )
    wait(lambda: rolled_out(apps, namespace, "web", 3), 120, "the new image rolled out")

    def only_new_pods() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        return len(pods) == 3 and all(p.spec.containers[0].image == "nginx:1.28" for p in pods)

    wait(only_new_pods, 90, "old pods removed")
    assert len(apps.list_namespaced_replica_set(namespace).items) == 2

    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")

    def cascaded() -> bool:
        return not apps.list_namespaced_replica_set(namespace).items and not core.list_namespaced_pod(namespace).items

    wait(cascaded, 90, "ReplicaSets and Pods deleted")


def test_job_of_the_operator_image_completes(batch: client.BatchV1Api, namespace: str) -> None:
    batch.create_namespaced_job(namespace, job("ok", operator_container(["sh", "-c", "exit 0"])))
    assert wait(lambda: job_condition(batch, namespace, "ok"), 90, "job finished") == "Complete"


def test_job_exiting_3_fails_after_its_backoff_limit(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job("bad", operator_container(["sh", "-c", "exit 3"]), backoff_limit=1))
    assert wait(lambda: job_condition(batch, namespace, "bad"), 120, "job finished") == "Failed"
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=bad").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Failed"
        terminated = pod.status.container_statuses[0].state.terminated
        assert terminated.exit_code == 3
        assert terminated.reason == "Error"
        assert terminated.message.startswith("output: ")
        assert terminated.message.endswith(f"{namespace}_{pod.metadata.name}_main.log")


SERVER = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = ('hello from ' + os.environ['POD_NAME']).encode()\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
    "print('serving', flush=True)\n"
    "http.server.HTTPServer((os.environ['POD_IP'], 8080), H).serve_forever()\n"
)


def test_process_serves_on_its_pod_ip_and_its_probe_makes_it_ready(core: client.CoreV1Api, namespace: str) -> None:
    env = [
        client.V1EnvVar(name="POD_IP", value_from=client.V1EnvVarSource(
            field_ref=client.V1ObjectFieldSelector(field_path="status.podIP"))),
        client.V1EnvVar(name="POD_NAME", value_from=client.V1EnvVarSource(
            field_ref=client.V1ObjectFieldSelector(field_path="metadata.name"))),
    ]
    probe = client.V1Probe(http_get=client.V1HTTPGetAction(path="/", port="http"), period_seconds=1)
    container = operator_container(
        ["python", "-c", SERVER], env=env, readiness_probe=probe,
        ports=[client.V1ContainerPort(name="http", container_port=8080)],
    )
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="web"), spec=client.V1PodSpec(containers=[container]))
    core.create_namespaced_pod(namespace, pod)

    def ready() -> client.V1Pod | None:
        p = core.read_namespaced_pod("web", namespace)
        conds = {c.type: c.status for c in p.status.conditions or []}
        return p if conds.get("Ready") == "True" else None

    p = wait(ready, 60, "pod Ready")
    ip = p.status.pod_ip
    assert not ip.startswith("127.0.0.")  # the routed pod network's, or a loopback address of devenv's own
    assert p.status.container_statuses[0].ready
    assert p.status.container_statuses[0].state.running is not None
    with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as resp:
        assert resp.read() == b"hello from web"
    assert "serving" in wait(lambda: core.read_namespaced_pod_log("web", namespace), 20, "logs")

    core.delete_namespaced_pod("web", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_pod("web", namespace)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait(gone, 30, "pod deleted")


def test_job_gets_secret_env(core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str) -> None:
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="creds"), string_data={"password": "s3cret"})
    )
    env = [client.V1EnvVar(name="PASSWORD", value_from=client.V1EnvVarSource(
        secret_key_ref=client.V1SecretKeySelector(name="creds", key="password")))]
    script = 'echo "password=$PASSWORD"; test "$PASSWORD" = s3cret'
    batch.create_namespaced_job(namespace, job("secret", operator_container(["sh", "-c", script], env=env)))
    assert wait(lambda: job_condition(batch, namespace, "secret"), 90, "job finished") == "Complete"
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=secret").items[0]
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.reason == "Completed"
    log_file = Path(terminated.message.removeprefix("output: ").splitlines()[0])
    assert log_file.name == f"{namespace}_{pod.metadata.name}_main.log"
    assert "password=s3cret" in log_file.read_text()


def test_namespace_with_running_pods_deletes(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    ns = make_namespace(core)
    try:
        apps.create_namespaced_deployment(ns, deployment("web", "nginx:1.27", 2))
        sleeper = client.V1Pod(
            metadata=client.V1ObjectMeta(name="sleeper"),
            spec=client.V1PodSpec(containers=[operator_container(["sh", "-c", "sleep 600"])]),
        )
        core.create_namespaced_pod(ns, sleeper)
        wait(lambda: rolled_out(apps, ns, "web", 2), 90, "2 ready replicas")
        wait(lambda: str(core.read_namespaced_pod("sleeper", ns).status.phase) == "Running", 60, "sleeper running")
    finally:
        delete_namespace(core, ns, timeout=90)


def simulator_present() -> bool:
    return (Path(__file__).resolve().parents[2] / "devenv" / "simulator" / "__main__.py").exists()


@pytest.mark.skipif(not simulator_present(), reason="devenv.simulator is not there yet")
def test_tracardi_gui_runs_in_the_simulator(core: client.CoreV1Api, namespace: str) -> None:
    container = client.V1Container(
        name="gui", image="tracardi/tracardi-gui:0.8.1", ports=[client.V1ContainerPort(container_port=80)],
        readiness_probe=client.V1Probe(tcp_socket=client.V1TCPSocketAction(port=80), period_seconds=1),
    )
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="gui"), spec=client.V1PodSpec(containers=[container])))

    def ready() -> client.V1Pod | None:
        p = core.read_namespaced_pod("gui", namespace)
        return p if p.status.container_statuses and p.status.container_statuses[0].ready else None

    ip = wait(ready, 60, "gui Ready").status.pod_ip
    with urllib.request.urlopen(f"http://{ip}/", timeout=5) as resp:
        assert b"0.8.1" in resp.read()


@pytest.mark.skipif(not simulator_present(), reason="devenv.simulator is not there yet")
def test_unknown_tracardi_tag_is_reported_in_the_pod_status(core: client.CoreV1Api, namespace: str) -> None:
    container = client.V1Container(name="api", image="tracardi/tracardi-api:9.9.9")
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="api"), spec=client.V1PodSpec(containers=[container])))

    def crashed() -> client.V1ContainerStatus | None:
        statuses = core.read_namespaced_pod("api", namespace).status.container_statuses or []
        return statuses[0] if statuses and statuses[0].last_state.terminated else None

    status = wait(crashed, 60, "the simulator to exit")
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert status.last_state.terminated.exit_code == 2
    assert "9.9.9" in status.last_state.terminated.message
    time.sleep(3)
    assert core.read_namespaced_pod("api", namespace).status.container_statuses[0].restart_count <= 2  # back-off
    assert "9.9.9" in core.read_namespaced_pod_log("api", namespace)


@pytest.mark.skipif(not simulator_present(), reason="devenv.simulator is not there yet")
def test_082_api_with_performance_tracking_no_crash_loops(core: client.CoreV1Api, namespace: str) -> None:
    """0.8.2.x reads PERFORMANCE_TRACKING as a Sentry DSN and exits at start-up on `no`; the pod shows it
    as a kubelet would: CrashLoopBackOff, the exit code and the one-line reason (docs/tracardi.md §9)."""
    container = client.V1Container(name="api", image="tracardi/tracardi-api:0.8.2.1",
                                   env=[client.V1EnvVar(name="PERFORMANCE_TRACKING", value="no")])
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="api"), spec=client.V1PodSpec(containers=[container])))

    def crashed() -> client.V1ContainerStatus | None:
        statuses = core.read_namespaced_pod("api", namespace).status.container_statuses or []
        return statuses[0] if statuses and statuses[0].last_state.terminated else None

    status = wait(crashed, 60, "the simulated API to exit")
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert not status.ready
    assert status.last_state.terminated.exit_code == 1
    assert "Unsupported scheme" in status.last_state.terminated.message
    assert "Unsupported scheme" in core.read_namespaced_pod_log("api", namespace)


# --- a second node whose agent runs the simulator in shared mode --------------------------------------

@pytest.fixture
def shared_node(core: client.CoreV1Api, devenv: Any, tmp_path: Path) -> Iterator[str]:
    """A second Node whose agent hands every simulator container to one shared process
    (`--simulator shared`), on loopback pod addresses of its own; stopped and removed afterwards."""
    name = f"shared-{uuid.uuid4().hex[:6]}"
    log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115 - closed below
    agent = subprocess.Popen(
        [sys.executable, "-m", "devenv.nodeagent", "--kubeconfig", str(devenv.kubeconfig), "--state-dir",
         str(tmp_path), "--node-name", name, "--logs-port", "0", "--pod-ips", "127.0.201.1-127.0.201.254",
         "--simulator", "shared"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def ready() -> bool:
        assert agent.poll() is None, (tmp_path / "agent.log").read_text()
        conds = core.read_node(name).status.conditions or []
        return any(c.type == "Ready" and c.status == "True" for c in conds)

    try:
        wait(ready, 60, f"node {name} Ready")
        yield name
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait(10)
        log.close()
        with contextlib.suppress(ApiException):
            core.delete_node(name)


def test_shared_mode_runs_tracardi_pods_in_one_process(core: client.CoreV1Api, namespace: str, shared_node: str,
                                                      devenv: Any, tmp_path: Path) -> None:
    """Pods stay pods (their own podIP, readiness by probe, CrashLoopBackOff with the exit code and the
    reason) while one process serves every simulator container of the node."""
    on_node = {"kubernetes.io/hostname": shared_node}
    env = [client.V1EnvVar(name="ELASTIC_HOST", value=devenv.elasticsearch_url)]
    for name, tag in (("api-a", "0.8.0"), ("api-b", "0.8.2.1")):
        container = client.V1Container(
            name="api", image=f"tracardi/tracardi-api:{tag}", env=env,
            ports=[client.V1ContainerPort(container_port=80)],
            readiness_probe=client.V1Probe(http_get=client.V1HTTPGetAction(path="/healthcheck", port=80),
                                           period_seconds=1))
        core.create_namespaced_pod(namespace, client.V1Pod(
            metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(node_selector=on_node,
                                                                            containers=[container])))
    bad = client.V1Container(name="api", image="tracardi/tracardi-api:0.8.2.1",
                             env=[*env, client.V1EnvVar(name="PERFORMANCE_TRACKING", value="no")])
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="bad"), spec=client.V1PodSpec(node_selector=on_node, containers=[bad])))

    def ready(pod: str) -> client.V1Pod | None:
        p = core.read_namespaced_pod(pod, namespace)
        return p if p.status.container_statuses and p.status.container_statuses[0].ready else None

    ips = {pod: wait(functools.partial(ready, pod), 60, f"{pod} Ready").status.pod_ip for pod in ("api-a", "api-b")}
    assert len(set(ips.values())) == 2
    assert all(ip.startswith("127.0.201.") for ip in ips.values())
    for pod, version in (("api-a", "0.8.0"), ("api-b", "0.8.2")):
        with urllib.request.urlopen(f"http://{ips[pod]}/info/version/details", timeout=10) as resp:
            assert json.loads(resp.read())["version"] == version

    def crashed() -> client.V1ContainerStatus | None:
        statuses = core.read_namespaced_pod("bad", namespace).status.container_statuses or []
        return statuses[0] if statuses and statuses[0].last_state.terminated else None

    status = wait(crashed, 60, "the shared simulator to refuse the container")
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert status.last_state.terminated.exit_code == 1
    assert "Unsupported scheme" in status.last_state.terminated.message
    # One simulator process for the node: no pid file of a container process, the shared one's only.
    pids = [p.name for p in (tmp_path / "pods").glob("*.pid")]
    assert pids == ["simulator-shared.pid"], pids
    core.delete_namespaced_pod("api-a", namespace, grace_period_seconds=1)
    wait(lambda: not any(p.metadata.name == "api-a" for p in core.list_namespaced_pod(namespace).items), 60,
         "api-a deleted")
    with pytest.raises(urllib.error.URLError, match="refused"):  # nothing listens there any more
        urllib.request.urlopen(f"http://{ips['api-a']}/healthcheck", timeout=3)
    assert ready("api-b") is not None  # the other containers of the process go on
    # Deleted while this node's agent still runs (after it, nothing would end them but the pod GC).
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=1)
    wait(lambda: not core.list_namespaced_pod(namespace).items, 60, "the node's pods deleted")
