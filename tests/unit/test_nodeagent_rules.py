"""The node agent's pure decisions: images to runners, argv and env of a process, pod IPs, binding,
restarts, probes, pod phase and status."""

from __future__ import annotations

from typing import Any

import pytest

from devenv.nodeagent import rules
from devenv.nodeagent.rules import EnvError, PodFacts, ProbeSpec, ProbeTracker, Runner, RunnerKind

PY = "/repo/.venv/bin/python"


# -- images and runners -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "registry", "repository", "tag"),
    [
        ("nginx", "", "nginx", "latest"),
        ("nginx:1.27", "", "nginx", "1.27"),
        ("tracardi/tracardi-api:0.8.1", "", "tracardi/tracardi-api", "0.8.1"),
        ("docker.io/tracardi/tracardi-api:0.8.2.1", "docker.io", "tracardi/tracardi-api", "0.8.2.1"),
        ("localhost:5000/tracardi-operator:dev", "localhost:5000", "tracardi-operator", "dev"),
        ("ghcr.io/acme/tools/tracardi-operator", "ghcr.io", "acme/tools/tracardi-operator", "latest"),
    ],
)
def test_parse_image(image: str, registry: str, repository: str, tag: str) -> None:
    ref = rules.parse_image(image)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)


def test_parse_image_with_digest() -> None:
    ref = rules.parse_image("quay.io/x/tracardi-operator@sha256:abc")
    assert ref.name == "tracardi-operator"
    assert ref.digest == "sha256:abc"
    assert ref.tag == ""


@pytest.mark.parametrize(
    "image",
    ["tracardi-operator:dev", "tracardi-operator", "registry.local:5000/team/tracardi-operator:1.2.3"],
)
def test_operator_images_run_as_processes(image: str) -> None:
    assert rules.runner_for(image, simulator_available=True).kind is RunnerKind.OPERATOR
    assert rules.runner_for(image, simulator_available=False).kind is RunnerKind.OPERATOR


@pytest.mark.parametrize(
    ("image", "role", "tag"),
    [
        ("tracardi/tracardi-api:0.8.1", "api", "0.8.1"),
        ("docker.io/tracardi/update-worker:0.8.2.1", "worker", "0.8.2.1"),
        ("mirror.example.com/tracardi/tracardi-gui:0.8.0", "gui", "0.8.0"),
        ("tracardi/tracardi-api", "api", "latest"),
    ],
)
def test_tracardi_images_go_to_the_simulator(image: str, role: str, tag: str) -> None:
    assert rules.runner_for(image, simulator_available=True) == Runner(RunnerKind.SIMULATOR, role=role, tag=tag)


def test_tracardi_images_without_simulator_are_like_any_image() -> None:
    assert rules.runner_for("tracardi/tracardi-api:0.8.1", simulator_available=False).kind is RunnerKind.NONE


@pytest.mark.parametrize("image", ["nginx:1.27", "busybox", "someone/tracardi-api:1", "tracardi-operator-x:1"])
def test_other_images_have_no_process(image: str) -> None:
    assert rules.runner_for(image, simulator_available=True).kind is RunnerKind.NONE


def test_command_replaces_the_entrypoint() -> None:
    runner = Runner(RunnerKind.OPERATOR)
    c = {"name": "m", "command": ["sh", "-c"], "args": ["exit $(CODE)"]}
    assert rules.container_argv(runner, c, {"CODE": "3"}, "127.0.1.1", PY) == ["sh", "-c", "exit 3"]


def test_args_alone_go_to_the_operator_entrypoint() -> None:
    runner = Runner(RunnerKind.OPERATOR)
    argv = rules.container_argv(runner, {"name": "m", "args": ["install", "--name", "t"]}, {}, "127.0.1.1", PY)
    assert argv == ["tracardi-operator", "install", "--name", "t"]
    assert rules.container_argv(runner, {"name": "m"}, {}, "127.0.1.1", PY) == ["tracardi-operator"]


def test_simulator_argv_uses_first_container_port_or_80() -> None:
    runner = Runner(RunnerKind.SIMULATOR, role="api", tag="0.8.1")
    c = {"name": "api", "command": ["ignored"], "ports": [{"containerPort": 8686}, {"containerPort": 9}]}
    assert rules.container_argv(runner, c, {}, "127.0.1.7", PY) == [
        PY, "-m", "devenv.simulator", "api", "--tag", "0.8.1", "--host", "127.0.1.7", "--port", "8686"]
    argv = rules.container_argv(runner, {"name": "api"}, {}, "127.0.1.7", PY)
    assert argv is not None
    assert argv[-1] == "80"


def test_no_argv_for_process_less_images() -> None:
    assert rules.container_argv(Runner(RunnerKind.NONE), {"name": "x"}, {}, "127.0.1.1", PY) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("$(A)-$(B)", "1-$(B)"), ("$$(A)", "$(A)"), ("a$b", "a$b"), ("$(A)$(A)", "11"), ("$$$(A)", "$1")],
)
def test_expand(value: str, expected: str) -> None:
    assert rules.expand(value, {"A": "1"}) == expected


# -- env --------------------------------------------------------------------------------------------------

FACTS = PodFacts(name="job-x", namespace="ns1", uid="u-1", node_name="devenv", service_account="op",
                 pod_ip="127.0.1.9", labels={"app": "t"}, annotations={"a/b": "c"})
SECRETS = {"es": {"password": "s3cret", "user": "elastic"}}
CONFIG_MAPS = {"cfg": {"host": "http://127.0.0.1:9201"}}


def resolve(container: dict[str, Any]) -> dict[str, str]:
    return rules.resolve_env(container, FACTS, secrets=SECRETS.get, config_maps=CONFIG_MAPS.get)


def test_env_literal_secret_configmap_and_fields() -> None:
    env = resolve({"env": [
        {"name": "PLAIN", "value": "x"},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "es", "key": "password"}}},
        {"name": "HOST", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "host"}}},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "URL", "value": "$(HOST)/?u=$(PLAIN)"},
    ]})
    assert env == {"PLAIN": "x", "PW": "s3cret", "HOST": "http://127.0.0.1:9201", "NAME": "job-x", "NS": "ns1",
                   "IP": "127.0.1.9", "APP": "t", "URL": "http://127.0.0.1:9201/?u=x"}


def test_env_from_with_prefix_and_env_overrides() -> None:
    env = resolve({"envFrom": [{"secretRef": {"name": "es"}, "prefix": "ES_"}, {"configMapRef": {"name": "cfg"}}],
                   "env": [{"name": "ES_user", "value": "other"}]})
    assert env == {"ES_password": "s3cret", "ES_user": "other", "host": "http://127.0.0.1:9201"}


def test_missing_secret_is_a_config_error() -> None:
    with pytest.raises(EnvError, match='secret "nope" not found'):
        resolve({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]})


def test_missing_key_is_a_config_error() -> None:
    with pytest.raises(EnvError, match="couldn't find key k in configmap"):
        resolve({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]})


def test_optional_refs_may_be_missing() -> None:
    env = resolve({
        "envFrom": [{"secretRef": {"name": "nope", "optional": True}}],
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "es", "key": "k", "optional": True}}}],
    })
    assert env == {}


def test_resource_field_ref() -> None:
    c = {"resources": {"limits": {"memory": "512Mi"}},
         "env": [{"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
                 {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]}
    assert resolve(c) == {"MEM": "512Mi", "CPU": "32"}


def test_process_env_puts_the_venv_first_and_keeps_the_agents_env_out() -> None:
    env = rules.process_env({"A": "1"}, venv_bin="/repo/.venv/bin", system_path="/usr/bin:/bin", home="/root",
                            apiserver_host="127.0.0.1", apiserver_port=6443, hostname="p", sa_dir="/sa")
    assert env["PATH"] == "/repo/.venv/bin:/usr/bin:/bin"
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert env["TRACARDI_OPERATOR_SA_DIR"] == "/sa"
    assert env["A"] == "1"
    assert "KUBECONFIG" not in env


def test_a_pod_path_still_gets_the_venv_first() -> None:
    env = rules.process_env({"PATH": "/opt/bin"}, venv_bin="/v/bin", system_path="/usr/bin", home="/root",
                            apiserver_host="h", apiserver_port=1, hostname="p", sa_dir=None)
    assert env["PATH"] == "/v/bin:/opt/bin"
    assert "TRACARDI_OPERATOR_SA_DIR" not in env


def test_token_unless_automount_is_off() -> None:
    assert rules.wants_service_account_token({"spec": {}})
    assert not rules.wants_service_account_token({"spec": {"automountServiceAccountToken": False}})


# -- pod IPs ----------------------------------------------------------------------------------------------


def test_first_pod_ip_is_not_in_127_0_0() -> None:
    assert rules.next_pod_ip([]) == "127.0.1.1"


def test_pod_ips_go_round_robin_and_skip_used_ones() -> None:
    assert rules.next_pod_ip(["127.0.1.2"], after="127.0.1.1") == "127.0.1.3"
    # a freed address is not reused at once
    assert rules.next_pod_ip([], after="127.0.1.5") == "127.0.1.6"


def test_pod_ips_skip_0_and_255() -> None:
    assert rules.next_pod_ip([], after="127.0.1.254") == "127.0.2.1"


def test_pod_ips_wrap_around() -> None:
    assert rules.next_pod_ip(["127.0.1.1"], after="127.255.255.254") == "127.0.1.2"


# -- binding ----------------------------------------------------------------------------------------------

LABELS = {"kubernetes.io/hostname": "devenv", "kubernetes.io/os": "linux"}
NOT_READY = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "n", "uid": "u"}, "spec": {"containers": [], **spec}}


def test_binds_a_plain_pod() -> None:
    assert rules.binding_check(pod(), LABELS, []) == (True, "")


def test_other_schedulers_are_left_alone() -> None:
    ok, reason = rules.binding_check(pod(schedulerName="mine"), LABELS, [])
    assert not ok
    assert "mine" in reason


def test_node_selector_must_match() -> None:
    assert rules.binding_check(pod(nodeSelector={"kubernetes.io/os": "linux"}), LABELS, [])[0]
    ok, reason = rules.binding_check(pod(nodeSelector={"disk": "ssd"}), LABELS, [])
    assert not ok
    assert "node selector" in reason


def test_not_ready_taint_blocks_unless_tolerated() -> None:
    assert not rules.binding_check(pod(), LABELS, [NOT_READY])[0]
    tolerated = pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
    assert rules.binding_check(tolerated, LABELS, [NOT_READY])[0]
    assert rules.binding_check(pod(tolerations=[{"operator": "Exists"}]), LABELS, [NOT_READY])[0]


def test_prefer_no_schedule_does_not_block() -> None:
    assert rules.binding_check(pod(), LABELS, [{"key": "x", "effect": "PreferNoSchedule"}])[0]


def test_being_deleted_or_bound_is_not_bound() -> None:
    assert not rules.binding_check(pod(nodeName="other"), LABELS, [])[0]
    deleting = pod()
    deleting["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert not rules.binding_check(deleting, LABELS, [])[0]


# -- restarts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "code", "expected"),
    [("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 3, True),
     ("Never", 0, False), ("Never", 3, False)],
)
def test_restarts(policy: str, code: int, expected: bool) -> None:
    assert rules.restarts(policy, code) is expected


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [rules.backoff_seconds(n) for n in range(7)] == [2, 4, 8, 16, 32, 60, 60]


def test_terminated_state_messages() -> None:
    ok = rules.terminated_state(0, "t0", "t1", "devenv://x", "/d/pods/a.log", "noise")
    assert ok["terminated"]["reason"] == "Completed"
    assert ok["terminated"]["message"] == "output: /d/pods/a.log"
    bad = rules.terminated_state(2, "t0", "t1", "devenv://x", "/d/pods/a.log", "unknown tag 9.9")
    assert bad["terminated"]["reason"] == "Error"
    assert bad["terminated"]["message"] == "output: /d/pods/a.log\nunknown tag 9.9"
    assert bad["terminated"]["exitCode"] == 2


def test_tail_lines() -> None:
    text = "\n".join(str(i) for i in range(100)) + "\n"
    assert rules.tail_lines(text, 3) == "97\n98\n99"
    assert len(rules.tail_lines("x" * 5000)) == 2048


# -- probes -----------------------------------------------------------------------------------------------


def test_probe_spec_defaults_and_values() -> None:
    assert ProbeSpec.parse(None) is None
    spec = ProbeSpec.parse({"httpGet": {"path": "/h", "port": 80}, "periodSeconds": 2, "failureThreshold": 1})
    assert spec is not None
    assert (spec.kind, spec.period, spec.timeout, spec.failure_threshold, spec.success_threshold) == (
        "httpGet", 2.0, 1.0, 1, 1)


def test_a_scaled_probe_sees_success_sooner_but_gives_up_no_sooner() -> None:
    spec = ProbeSpec.parse({"httpGet": {"path": "/h", "port": 80}, "initialDelaySeconds": 5, "periodSeconds": 10,
                            "timeoutSeconds": 5, "failureThreshold": 3, "successThreshold": 2})
    assert spec is not None
    fast = spec.scaled(0.2)
    assert (fast.initial_delay, fast.period, fast.timeout, fast.success_threshold) == (1.0, 2.0, 5.0, 2)
    assert fast.failure_threshold == 15  # 15 failures 2 s apart: the 30 s of the real clock
    assert fast.period * fast.failure_threshold == spec.period * spec.failure_threshold
    odd = ProbeSpec(kind="tcpSocket", handler={}, period=3, failure_threshold=1).scaled(0.3)
    assert odd.period * odd.failure_threshold >= 3  # rounded up, never less patient
    assert spec.scaled(1) is spec
    one_second = ProbeSpec.parse({"tcpSocket": {"port": 80}, "periodSeconds": 1})
    assert one_second is not None
    assert one_second.scaled(0.01).period == rules.MIN_PROBE_PERIOD


@pytest.mark.parametrize("text", ["0", "-1", "10.5", "fast", "", "nan", "inf"])
def test_a_probe_time_scale_outside_zero_to_ten_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="above 0 and at most 10"):
        rules.parse_time_scale(text)


def test_probe_time_scales_in_range_are_taken() -> None:
    assert rules.parse_time_scale("0.2") == 0.2
    assert rules.parse_time_scale("1") == 1.0
    assert rules.parse_time_scale("5") == 5.0
    slow = ProbeSpec(kind="tcpSocket", handler={}, initial_delay=5, period=10).scaled(5)
    assert (slow.initial_delay, slow.period, slow.failure_threshold) == (25.0, 50.0, 3)


def test_resolve_named_port() -> None:
    c = {"name": "c", "ports": [{"name": "http", "containerPort": 8686}]}
    assert rules.resolve_port("http", c) == 8686
    assert rules.resolve_port(81, c) == 81
    assert rules.resolve_port("82", c) == 82
    with pytest.raises(ValueError, match="nope"):
        rules.resolve_port("nope", c)


def test_probe_tracker_thresholds() -> None:
    spec = ProbeSpec(kind="tcpSocket", handler={}, success_threshold=2, failure_threshold=2)
    t = ProbeTracker(spec, result=False)
    assert not t.record(True)
    assert t.record(True)
    assert t.record(False)  # one failure is below the threshold
    assert not t.record(False)


# -- phase and status -------------------------------------------------------------------------------------


def running() -> dict[str, Any]:
    return {"name": "c", "ready": True, "state": {"running": {"startedAt": "t"}}}


def exited(code: int) -> dict[str, Any]:
    return {"name": "c", "ready": False, "state": {"terminated": {"exitCode": code}}}


def backing_off(code: int) -> dict[str, Any]:
    return {"name": "c", "ready": False, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": code}}}


def creating() -> dict[str, Any]:
    return {"name": "c", "ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}


@pytest.mark.parametrize(
    ("policy", "statuses", "phase"),
    [
        ("Always", [running()], "Running"),
        ("Always", [creating()], "Pending"),
        ("Never", [exited(0)], "Succeeded"),
        ("Never", [exited(3)], "Failed"),
        ("OnFailure", [exited(0)], "Succeeded"),
        ("OnFailure", [backing_off(3)], "Running"),
        ("Always", [backing_off(0)], "Running"),
        ("Never", [exited(0), running()], "Running"),
        ("Never", [exited(0), exited(1)], "Failed"),
        ("Never", [], "Pending"),
    ],
)
def test_pod_phase(policy: str, statuses: list[dict[str, Any]], phase: str) -> None:
    assert rules.pod_phase(policy, True, False, statuses) == phase


def test_pod_phase_init() -> None:
    assert rules.pod_phase("Always", False, False, [creating()]) == "Pending"
    assert rules.pod_phase("Never", False, True, [creating()]) == "Failed"
    assert rules.pod_phase("OnFailure", False, True, [creating()]) == "Pending"


def test_status_of_a_running_ready_pod() -> None:
    status = rules.pod_status(phase="Running", pod_ip="127.0.1.4", host_ip="127.0.0.1", start_time="t0",
                              init_statuses=[], statuses=[running()], initialized=True, readiness_gates=[],
                              previous_conditions=[], now="t1")
    conds = {c["type"]: c for c in status["conditions"]}
    assert {t: c["status"] for t, c in conds.items()} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True",
        "PodScheduled": "True"}
    assert status["podIP"] == "127.0.1.4"
    assert status["podIPs"] == [{"ip": "127.0.1.4"}]
    assert status["hostIP"] == "127.0.0.1"
    assert "initContainerStatuses" not in status


def test_conditions_keep_transition_times_and_foreign_conditions() -> None:
    previous = [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"},
                {"type": "ContainersReady", "status": "False", "lastTransitionTime": "t0"},
                {"type": "DisruptionTarget", "status": "True", "lastTransitionTime": "t0"}]
    conds = rules.pod_conditions("Running", True, [running()], [], previous, now="t1")
    by_type = {c["type"]: c for c in conds}
    assert by_type["Ready"]["lastTransitionTime"] == "t0"
    assert by_type["ContainersReady"]["lastTransitionTime"] == "t1"
    assert by_type["DisruptionTarget"]["status"] == "True"


def test_terminal_pods_are_not_ready() -> None:
    conds = {c["type"]: c for c in rules.pod_conditions("Succeeded", True, [exited(0)], [], [], now="t")}
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "PodCompleted"


def test_readiness_gates() -> None:
    gates = [{"conditionType": "example.com/ok"}]
    conds = {c["type"]: c for c in rules.pod_conditions("Running", True, [running()], gates, [], now="t")}
    assert conds["Ready"]["status"] == "False"
    prev = [{"type": "example.com/ok", "status": "True"}]
    conds = {c["type"]: c for c in rules.pod_conditions("Running", True, [running()], gates, prev, now="t")}
    assert conds["Ready"]["status"] == "True"


def test_qos_class() -> None:
    assert rules.qos_class([{"name": "a"}]) == "BestEffort"
    assert rules.qos_class([{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]) == "Guaranteed"
    assert rules.qos_class([{"resources": {"requests": {"cpu": "1"}}}]) == "Burstable"


def test_image_id_is_stable() -> None:
    assert rules.image_id("nginx:1") == rules.image_id("nginx:1")
    assert rules.image_id("nginx:1").startswith("docker.io/nginx@sha256:")
    assert rules.image_id("quay.io/a/b@sha256:ff") == "quay.io/a/b@sha256:ff"
