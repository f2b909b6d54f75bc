"""Manifest builders: names, labels, owner references, environment, probes and Jobs."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import pytest

from tests.factories import installation_body, installation_spec
from tracardi_operator import builders as b
from tracardi_operator import labels as lbl
from tracardi_operator.models import TracardiInstallation

SETTINGS = b.BuilderSettings(job_image="registry.example/tracardi-operator:0.1.0")


def make_installation(name: str = "acme", uid: str = "uid-123", **spec: Any) -> TracardiInstallation:
    body = installation_spec(hosts=("http://es-0:9200", "http://es-1:9200"), **spec)
    return TracardiInstallation.model_validate(
        installation_body(body, name=name, namespace="shop", uid=uid, generation=1)
    )


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in container["env"]}


def container_of(manifest: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = manifest["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def all_manifests(installation: TracardiInstallation) -> list[dict[str, Any]]:
    manifests = [b.deployment(installation, component, "0.8.1") for component in b.SERVING_COMPONENTS]
    manifests += [
        b.deployment(installation, c, "0.8.2.1", slot="candidate", db_version="0820") for c in b.CANDIDATE_COMPONENTS
    ]
    manifests += [b.service(installation, component, "0.8.1") for component in b.SERVICE_COMPONENTS]
    manifests.append(b.service(installation, "api", "0.8.2.1", slot="candidate", db_version="0820"))
    manifests.append(b.install_job(installation, b.InstallRequest("0.8.1", "08x", "http://api"), SETTINGS))
    manifests.append(
        b.migration_job(
            installation, b.MigrationRequest("0.8.0", "080", "fa73a", "0.8.1", "08x", "01506", "http://api"), SETTINGS
        )
    )
    return manifests


# ---------------------------------------------------------------------------------------------------
# Names


def test_names() -> None:
    assert b.workload_name("acme", "api") == "acme-api"
    assert b.workload_name("acme", "api-production") == "acme-api-production"
    assert b.workload_name("acme", "api", "candidate", "0820") == "acme-api-0820"
    assert b.workload_name("acme", "worker", "candidate", "08x") == "acme-worker-08x"
    assert b.install_job_name("acme", "08x") == "acme-install-08x"
    assert b.migration_job_name("acme", "080", "08x") == "acme-migrate-080-to-08x"
    assert b.migration_job_name("acme", "08x", "0820", attempt=2) == "acme-migrate-08x-to-0820-r2"
    assert b.install_job_name("acme", "0820", attempt=3) == "acme-install-0820-r3"


def test_candidate_needs_db_version_and_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="db version"):
        b.workload_name("acme", "api", "candidate")
    with pytest.raises(ValueError, match="from 1"):
        b.install_job_name("acme", "08x", attempt=0)


def test_long_names_are_bounded_deterministic_and_distinct() -> None:
    long_a = "a" * 70 + "-one"
    long_b = "a" * 70 + "-two"
    name_a = b.migration_job_name(long_a, "08x", "0820")
    assert len(name_a) <= 63
    assert name_a == b.migration_job_name(long_a, "08x", "0820")
    assert name_a != b.migration_job_name(long_b, "08x", "0820")
    assert name_a[-1].isalnum()


def test_label_value_is_valid() -> None:
    assert lbl.label_value("acme") == "acme"
    value = lbl.label_value("x" * 62 + "-.y" * 5)
    assert len(value) <= 63
    assert value[0].isalnum()
    assert value[-1].isalnum()
    assert lbl.bounded("short") == "short"


def test_api_service_url() -> None:
    installation = make_installation()
    assert b.api_service_url(installation) == "http://acme-api.shop.svc:80"
    assert b.api_service_url(installation, "candidate", "0820") == "http://acme-api-0820.shop.svc:80"


# ---------------------------------------------------------------------------------------------------
# Metadata on every object


def test_every_object_is_labelled_and_owned() -> None:
    installation = make_installation()
    for manifest in all_manifests(installation):
        json.dumps(manifest)  # plain data only
        metadata = manifest["metadata"]
        assert metadata["namespace"] == "shop"
        labels = metadata["labels"]
        assert labels[lbl.LABEL_NAME] == "tracardi"
        assert labels[lbl.LABEL_INSTANCE] == "acme"
        assert labels[lbl.LABEL_MANAGED_BY] == "tracardi-operator"
        assert labels[lbl.LABEL_COMPONENT] in {"api", "api-production", "gui", "worker", "install", "migration"}
        if manifest["kind"] == "Service":
            assert lbl.LABEL_VERSION not in labels, "a Service is the same object across versions"
        else:
            assert labels[lbl.LABEL_VERSION] in {"0.8.1", "0.8.2.1"}
        assert metadata["ownerReferences"] == [
            {
                "apiVersion": "tracardi.com/v1alpha1",
                "kind": "TracardiInstallation",
                "name": "acme",
                "uid": "uid-123",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        if manifest["kind"] in ("Deployment", "Job"):
            assert manifest["spec"]["template"]["metadata"]["labels"] == labels


def test_owner_needs_uid() -> None:
    with pytest.raises(ValueError, match="uid"):
        b.deployment(make_installation(uid=""), "api", "0.8.1")


def test_no_secret_value_in_any_manifest() -> None:
    installation = make_installation(
        elasticsearch={"hosts": ["https://es:9200"], "credentialsSecretRef": {"name": "es-creds"}},
        redis={"url": "redis://r:6379", "passwordSecretRef": {"name": "redis", "key": "password"}},
    )
    workloads = [manifest for manifest in all_manifests(installation) if manifest["kind"] != "Service"]
    assert len(workloads) == 8
    for manifest in workloads:
        for entry in container_of(manifest)["env"]:
            if any(word in entry["name"] for word in ("PASSWORD", "TOKEN", "KEY", "USERNAME")):
                assert "value" not in entry, entry["name"]
                assert "secretKeyRef" in entry["valueFrom"], entry["name"]


# ---------------------------------------------------------------------------------------------------
# Deployments


def test_api_deployment() -> None:
    deployment = b.deployment(make_installation(), "api", "0.8.1")
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    assert deployment["metadata"]["name"] == "acme-api"
    assert deployment["spec"]["replicas"] == 1
    container = container_of(deployment)
    assert container["image"] == "tracardi/tracardi-api:0.8.1"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["ports"] == [{"name": "http", "containerPort": 80, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/info/version/details", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthcheck", "port": "http"}
    env = env_of(container)
    assert env["PRODUCTION"] == "no"
    assert env["EXPOSE_GUI_API"] == "yes"
    assert env["ELASTIC_HOST"] == "http://es-0:9200,http://es-1:9200"
    assert env["ELASTIC_SCHEME"] == "http"
    assert env["ELASTIC_VERIFY_CERTS"] == "yes"
    assert env["REDIS_HOST"] == "redis://redis:6379"
    assert env["REDIS_PORT"] == "6379"
    assert env["INSTALLATION_TOKEN"] == {"secretKeyRef": {"name": "acme-install", "key": "token"}}
    assert env["PERFORMANCE_TRACKING"] == "no"
    assert "TENANT_NAME" not in env
    assert "ELASTIC_HTTP_AUTH_USERNAME" not in env
    assert "REDIS_PASSWORD" not in env
    assert "volumes" not in deployment["spec"]["template"]["spec"]


def test_production_api_deployment() -> None:
    deployment = b.deployment(make_installation(replicas={"apiProduction": 3}), "api-production", "0.8.1")
    assert deployment["metadata"]["name"] == "acme-api-production"
    assert deployment["spec"]["replicas"] == 3
    env = env_of(container_of(deployment))
    assert (env["PRODUCTION"], env["EXPOSE_GUI_API"]) == ("yes", "no")
    assert container_of(deployment)["image"] == "tracardi/tracardi-api:0.8.1"


def test_gui_deployment() -> None:
    gui = b.deployment(make_installation(), "gui", "0.8.1")
    container = container_of(gui)
    assert container["image"] == "tracardi/tracardi-gui:0.8.1"
    assert env_of(container) == {"API_URL": "http://acme-api.shop.svc:80"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/"
    custom = b.deployment(make_installation(gui={"apiUrl": "https://api.acme.example"}), "gui", "0.8.1")
    assert env_of(container_of(custom)) == {"API_URL": "https://api.acme.example"}


def test_worker_deployment() -> None:
    worker = b.deployment(make_installation(), "worker", "0.8.1")
    container = container_of(worker)
    assert container["image"] == "tracardi/update-worker:0.8.1"
    assert "ports" not in container
    assert "readinessProbe" not in container
    env = env_of(container)
    assert "ELASTIC_HOST" in env
    assert "REDIS_HOST" in env
    assert "PRODUCTION" not in env
    assert "INSTALLATION_TOKEN" not in env


def test_images_replicas_resources_and_pull_secrets_from_spec() -> None:
    installation = make_installation(
        images={
            "apiRepository": "mirror/api",
            "workerRepository": "mirror/worker",
            "pullPolicy": "Always",
            "pullSecrets": [{"name": "regcred"}],
        },
        replicas={"worker": 4, "gui": 0},
        resources={"worker": {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}},
    )
    worker = b.deployment(installation, "worker", "0.8.2.1")
    assert worker["spec"]["replicas"] == 4
    assert container_of(worker)["image"] == "mirror/worker:0.8.2.1"
    assert container_of(worker)["imagePullPolicy"] == "Always"
    assert container_of(worker)["resources"] == {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}
    assert worker["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert container_of(b.deployment(installation, "api", "0.8.2.1"))["image"] == "mirror/api:0.8.2.1"
    assert "resources" not in container_of(b.deployment(installation, "api", "0.8.2.1"))
    assert b.deployment(installation, "gui", "0.8.2.1")["spec"]["replicas"] == 0


def test_replicas_override_for_offline_copy() -> None:
    assert b.deployment(make_installation(), "api-production", "0.8.1", replicas=0)["spec"]["replicas"] == 0


def test_elasticsearch_credentials_tls_and_tuning() -> None:
    installation = make_installation(
        elasticsearch={
            "hosts": ["https://es:9200"],
            "credentialsSecretRef": {"name": "es-creds"},
            "verifyCerts": False,
            "caSecretRef": {"name": "es-ca", "key": "tls.ca"},
            "indexShards": 2,
            "indexReplicas": 0,
        },
        redis={"url": "redis://r:6379", "passwordSecretRef": {"name": "redis", "key": "pw"}},
    )
    deployment = b.deployment(installation, "api", "0.8.1")
    env = env_of(container_of(deployment))
    assert env["ELASTIC_SCHEME"] == "https"
    assert env["ELASTIC_VERIFY_CERTS"] == "no"
    for name, key in [
        ("ELASTIC_HTTP_AUTH_USERNAME", "username"),
        ("ELASTIC_HTTP_AUTH_PASSWORD", "password"),
        ("ELASTIC_API_KEY_ID", "apiKeyId"),
        ("ELASTIC_API_KEY", "apiKey"),
    ]:
        assert env[name] == {"secretKeyRef": {"name": "es-creds", "key": key, "optional": True}}
    assert env["ELASTIC_CA_FILE"] == "/etc/tracardi/elasticsearch-ca/ca.crt"
    assert env["ELASTIC_INDEX_SHARDS"] == "2"
    assert env["ELASTIC_INDEX_REPLICAS"] == "0"
    assert env["REDIS_PASSWORD"] == {"secretKeyRef": {"name": "redis", "key": "pw"}}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "elasticsearch-ca", "secret": {"secretName": "es-ca", "items": [{"key": "tls.ca", "path": "ca.crt"}]}}
    ]
    assert container_of(deployment)["volumeMounts"] == [
        {"name": "elasticsearch-ca", "mountPath": "/etc/tracardi/elasticsearch-ca", "readOnly": True}
    ]
    gui = b.deployment(installation, "gui", "0.8.1")
    assert "volumes" not in gui["spec"]["template"]["spec"]
    job = b.install_job(installation, b.InstallRequest("0.8.1", "08x", "http://api"), SETTINGS)
    job_env = env_of(container_of(job))
    assert job_env["TRACARDI_ES_CA_FILE"] == "/etc/tracardi/elasticsearch-ca/ca.crt"
    assert job_env["TRACARDI_ES_VERIFY_CERTS"] == "no"
    for name, key in [
        ("TRACARDI_ES_USERNAME", "username"),
        ("TRACARDI_ES_PASSWORD", "password"),
        ("TRACARDI_ES_API_KEY_ID", "apiKeyId"),
        ("TRACARDI_ES_API_KEY", "apiKey"),
    ]:
        assert job_env[name] == {"secretKeyRef": {"name": "es-creds", "key": key, "optional": True}}
    assert job["spec"]["template"]["spec"]["volumes"] == [*pod["volumes"], {"name": "tmp", "emptyDir": {
        "sizeLimit": "64Mi"}}]


def test_selectors_exclude_version_and_separate_slots() -> None:
    installation = make_installation()
    primary = b.deployment(installation, "api", "0.8.1")
    candidate = b.deployment(installation, "api", "0.8.2.1", slot="candidate", db_version="0820")
    assert candidate["metadata"]["name"] == "acme-api-0820"
    assert candidate["spec"]["replicas"] == 1
    for deployment in (primary, candidate):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert lbl.LABEL_VERSION not in selector
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    primary_selector = primary["spec"]["selector"]["matchLabels"]
    candidate_selector = candidate["spec"]["selector"]["matchLabels"]
    assert primary_selector[lbl.LABEL_SLOT] == "primary"
    assert candidate_selector[lbl.LABEL_SLOT] == "candidate"
    assert candidate_selector[lbl.LABEL_DB_VERSION] == "0820"
    # Neither Deployment selects the other's pods.
    assert not primary_selector.items() <= candidate["spec"]["template"]["metadata"]["labels"].items()
    assert not candidate_selector.items() <= primary["spec"]["template"]["metadata"]["labels"].items()
    # A rolling update to a new tag keeps the (immutable) selector.
    assert b.deployment(installation, "api", "0.8.2.1")["spec"]["selector"] == primary["spec"]["selector"]


def test_only_api_and_worker_have_candidates() -> None:
    with pytest.raises(ValueError, match="no candidate"):
        b.deployment(make_installation(), "gui", "0.8.2.1", slot="candidate", db_version="0820")
    with pytest.raises(ValueError, match="no candidate"):
        b.service(make_installation(), "gui", "0.8.2.1", slot="candidate", db_version="0820")


# ---------------------------------------------------------------------------------------------------
# Services


@pytest.mark.parametrize("component", b.SERVICE_COMPONENTS)
def test_service_matches_its_deployment(component: b.ServingComponent) -> None:
    installation = make_installation()
    service = b.service(installation, component, "0.8.1")
    deployment = b.deployment(installation, component, "0.8.1")
    assert service["metadata"]["name"] == deployment["metadata"]["name"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["type"] == "ClusterIP"


@pytest.mark.parametrize("component", b.SERVICE_COMPONENTS)
def test_a_service_does_not_change_with_a_version_of_the_same_database(component: b.ServingComponent) -> None:
    installation = make_installation()
    assert b.service(installation, component, "0.8.2.1") == b.service(installation, component, "0.8.2.2")
    assert b.deployment(installation, component, "0.8.2.1") != b.deployment(installation, component, "0.8.2.2")


def test_candidate_service() -> None:
    installation = make_installation()
    service = b.service(installation, "api", "0.8.2.1", slot="candidate", db_version="0820")
    deployment = b.deployment(installation, "api", "0.8.2.1", slot="candidate", db_version="0820")
    assert service["metadata"]["name"] == "acme-api-0820"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_worker_has_no_service() -> None:
    with pytest.raises(ValueError, match="no Service"):
        b.service(make_installation(), "worker", "0.8.1")


# ---------------------------------------------------------------------------------------------------
# Jobs


def test_install_job() -> None:
    job = b.install_job(
        make_installation(), b.InstallRequest("0.8.2.1", "0820", "http://acme-api-0820.shop.svc:80"), SETTINGS
    )
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"]["name"] == "acme-install-0820"
    labels = job["metadata"]["labels"]
    assert labels[lbl.LABEL_COMPONENT] == "install"
    assert labels[lbl.LABEL_VERSION] == "0.8.2.1"
    assert labels[lbl.LABEL_DB_VERSION] == "0820"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert "serviceAccountName" not in pod
    container = container_of(job)
    assert container["image"] == "registry.example/tracardi-operator:0.1.0"
    assert container["command"] == ["tracardi-operator"]
    assert container["args"] == ["job", "install", "--api-url", "http://acme-api-0820.shop.svc:80"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = env_of(container)
    assert env["TRACARDI_ADMIN_USERNAME"] == {"secretKeyRef": {"name": "acme-admin", "key": "username"}}
    assert env["TRACARDI_ADMIN_PASSWORD"] == {"secretKeyRef": {"name": "acme-admin", "key": "password"}}
    assert env["TRACARDI_INSTALLATION_TOKEN"] == {"secretKeyRef": {"name": "acme-install", "key": "token"}}
    assert env["TRACARDI_ES_HOSTS"] == "http://es-0:9200,http://es-1:9200"
    assert env["TRACARDI_ES_VERIFY_CERTS"] == "yes"
    assert not any(name.startswith("ELASTIC_") for name in env)


def test_migration_job() -> None:
    installation = make_installation(upgrade={"repair": "Off"})
    request = b.MigrationRequest(
        "0.8.1", "08x", "01506", "0.8.2.1", "0820", "ffe49", "http://acme-api-0820.shop.svc:80"
    )
    job = b.migration_job(installation, request, SETTINGS)
    assert job["metadata"]["name"] == "acme-migrate-08x-to-0820"
    labels = job["metadata"]["labels"]
    assert labels[lbl.LABEL_COMPONENT] == "migration"
    assert labels[lbl.LABEL_VERSION] == "0.8.2.1"
    assert (labels[lbl.LABEL_FROM_DB_VERSION], labels[lbl.LABEL_TO_DB_VERSION]) == ("08x", "0820")
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert container_of(job)["args"] == [
        "job", "migrate",
        "--api-url", "http://acme-api-0820.shop.svc:80",
        "--from-db", "08x",
        "--from-tenant", "01506",
        "--to-db", "0820",
        "--to-tenant", "ffe49",
        "--repair", "Off",
    ]  # fmt: skip
    fixed = b.migration_job(installation, dataclasses.replace(request, merged_suffix="2024-q1"), SETTINGS)
    assert container_of(fixed)["args"][-2:] == ["--merged-suffix", "2024-q1"]
    retry = b.migration_job(installation, dataclasses.replace(request, attempt=2), SETTINGS)
    assert retry["metadata"]["name"] == "acme-migrate-08x-to-0820-r2"


def test_job_settings() -> None:
    settings = b.BuilderSettings(
        job_image="op:1",
        job_image_pull_policy="Never",
        job_service_account="tracardi-jobs",
        job_active_deadline_seconds=None,
    )
    job = b.install_job(make_installation(), b.InstallRequest("0.8.1", "08x", "http://api"), settings)
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "tracardi-jobs"
    assert "activeDeadlineSeconds" not in job["spec"]
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert container_of(job)["imagePullPolicy"] == "Never"


def test_builders_are_deterministic() -> None:
    assert all_manifests(make_installation()) == all_manifests(make_installation())


def test_job_arguments_are_what_the_job_cli_parses() -> None:
    # Contract with tracardi_operator.jobs.cli: every argument the builders emit is accepted there.
    from tracardi_operator.jobs.cli import add_job_commands

    parser = argparse.ArgumentParser()
    add_job_commands(parser.add_subparsers())
    installation = make_installation()
    install = b.install_job(installation, b.InstallRequest("0.8.1", "08x", "http://api"), SETTINGS)
    parsed = parser.parse_args(container_of(install)["args"][1:])
    assert parsed.api_url == "http://api"
    request = b.MigrationRequest(
        "0.8.1", "08x", "01506", "0.8.2.1", "0820", "ffe49", "http://api", merged_suffix="2024-q1"
    )
    migrate = b.migration_job(installation, request, SETTINGS)
    parsed = parser.parse_args(container_of(migrate)["args"][1:])
    assert (parsed.from_db, parsed.from_tenant, parsed.to_db, parsed.to_tenant) == ("08x", "01506", "0820", "ffe49")
    assert (parsed.repair, parsed.merged_suffix) == ("Auto", "2024-q1")


_ES_ENV = {
    "ELASTIC_HOST": "http://es-0:9200,http://es-1:9200",
    "ELASTIC_SCHEME": "http",
    "ELASTIC_VERIFY_CERTS": "yes",
}
_REDIS_ENV = {
    "REDIS_HOST": "redis://redis.cache:16379",
    "REDIS_PORT": "16379",
    "REDIS_PASSWORD": {"secretKeyRef": {"name": "redis", "key": "pw"}},
}
_TOKEN = {"INSTALLATION_TOKEN": {"secretKeyRef": {"name": "acme-install", "key": "token"}}}
_TELEMETRY_OFF = {"PERFORMANCE_TRACKING": "no"}


@pytest.mark.parametrize(("version", "telemetry"), [
    ("0.8.0", _TELEMETRY_OFF),
    ("0.8.1", _TELEMETRY_OFF),
    # 0.8.2.x reads PERFORMANCE_TRACKING as a Sentry DSN and will not start with "no" in it.
    ("0.8.2", {}),
    ("0.8.2.1", {}),
    ("0.8.2.2", {}),
    ("0.8.2-rc2", {}),
])
@pytest.mark.parametrize(("component", "own"), [
    ("api", {"PRODUCTION": "no", "EXPOSE_GUI_API": "yes", **_TOKEN}),
    ("api-production", {"PRODUCTION": "yes", "EXPOSE_GUI_API": "no", **_TOKEN}),
    ("worker", {}),
])
def test_exact_environment_per_version(
    version: str, telemetry: dict[str, Any], component: b.ServingComponent, own: dict[str, Any]
) -> None:
    installation = make_installation(
        version=version,
        redis={"url": "redis://redis.cache:16379", "passwordSecretRef": {"name": "redis", "key": "pw"}},
    )
    env = env_of(container_of(b.deployment(installation, component, version)))
    assert env == {**_ES_ENV, **_REDIS_ENV, **telemetry, **own}


def test_gui_environment_is_the_api_url_only_at_every_version() -> None:
    for version in ("0.8.0", "0.8.1", "0.8.2.1"):
        env = env_of(container_of(b.deployment(make_installation(version=version), "gui", version)))
        assert env == {"API_URL": "http://acme-api.shop.svc:80"}


def test_candidate_gets_the_environment_of_its_own_version() -> None:
    installation = make_installation(version="0.8.2.1")
    primary = env_of(container_of(b.deployment(installation, "api", "0.8.1")))
    candidate = env_of(container_of(b.deployment(installation, "api", "0.8.2.1", slot="candidate", db_version="0820")))
    assert primary["PERFORMANCE_TRACKING"] == "no"
    assert "PERFORMANCE_TRACKING" not in candidate


def test_a_telemetry_setting_in_spec_env_wins() -> None:
    dsn = "https://key@sentry.example/1"
    installation = make_installation(env=[{"name": "PERFORMANCE_TRACKING", "value": dsn}])
    for version in ("0.8.1", "0.8.2.1"):
        container = container_of(b.deployment(installation, "api", version))
        values = [e["value"] for e in container["env"] if e["name"] == "PERFORMANCE_TRACKING"]
        assert values == [dsn]


def test_install_job_without_the_flattened_check() -> None:
    settings = dataclasses.replace(SETTINGS, flattened_check=False)
    job = b.install_job(make_installation(), b.InstallRequest("0.8.1", "08x", "http://api"), settings)
    assert container_of(job)["args"] == ["job", "install", "--api-url", "http://api", "--no-flattened-check"]


# Pod Security Standards (https://kubernetes.io/docs/concepts/security/pod-security-standards/), the
# checks that concern what the builders set, written out here rather than taken from the builders.
_BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                          "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def baseline_violations(pod: dict[str, Any]) -> list[str]:
    found = []
    for c in pod["containers"]:
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            found.append("privileged")
        if set((sc.get("capabilities") or {}).get("add") or []) - _BASELINE_CAPABILITIES:
            found.append("capabilities beyond the baseline set")
    if (pod.get("securityContext") or {}).get("seccompProfile", {}).get("type") == "Unconfined":
        found.append("seccomp Unconfined")
    return found


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    found = baseline_violations(pod)
    pod_sc = pod.get("securityContext") or {}
    for c in pod["containers"]:
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{c['name']}: allowPrivilegeEscalation != false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            found.append(f"{c['name']}: capabilities not dropping ALL")
        if set((sc.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{c['name']}: capabilities added beyond NET_BIND_SERVICE")
        if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))):
            found.append(f"{c['name']}: runAsNonRoot != true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            found.append(f"{c['name']}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{c['name']}: seccompProfile not set")
    return found


def pod_of(manifest: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return pod


def test_jobs_meet_the_restricted_standard_with_a_writable_tmp_only() -> None:
    installation = make_installation(elasticsearch={"hosts": ["https://es:9200"],
                                                    "caSecretRef": {"name": "ca", "key": "c"}})
    for job in (b.install_job(installation, b.InstallRequest("0.8.1", "08x", "http://api"), SETTINGS),
                b.migration_job(installation, b.MigrationRequest("0.8.0", "080", "fa73a", "0.8.1", "08x", "01506",
                                                                 "http://api"), SETTINGS)):
        pod = pod_of(job)
        assert restricted_violations(pod) == []
        container = container_of(job)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["runAsUser"] == 65532
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]


def test_tracardi_pods_meet_baseline_by_default() -> None:
    installation = make_installation()
    for component in b.SERVING_COMPONENTS:
        pod = pod_of(b.deployment(installation, component, "0.8.1"))
        assert baseline_violations(pod) == []
        sc = pod["containers"][0]["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert container_of(b.deployment(installation, "worker", "0.8.1"))["securityContext"]["capabilities"] == {
        "drop": ["ALL"]}


def test_a_uid_in_the_spec_makes_tracardi_pods_restricted() -> None:
    installation = make_installation(security={
        "pod": {"runAsUser": 10001, "runAsGroup": 10001, "runAsNonRoot": True, "fsGroup": 10001},
        "container": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
    })
    for component in ("api", "api-production", "worker"):
        pod = pod_of(b.deployment(installation, component, "0.8.1"))
        assert restricted_violations(pod) == [], component
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, "defaults stay"
    default = pod_of(b.deployment(make_installation(), "api", "0.8.1"))
    assert any("runAsNonRoot" in v for v in restricted_violations(default)), "without a UID: not restricted"


def test_scheduling_reaches_every_pod() -> None:
    installation = make_installation(scheduling={
        "nodeSelector": {"pool": "tracardi"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "tracardi", "effect": "NoSchedule"}],
        "nodeAffinity": {"required": [{"matchExpressions": [{"key": "zone", "operator": "In",
                                                             "values": ["a", "b"]}]}]},
        "priorityClassName": "tracardi-high",
    })
    manifests = [b.deployment(installation, c, "0.8.1") for c in b.SERVING_COMPONENTS]
    manifests.append(b.install_job(installation, b.InstallRequest("0.8.1", "08x", "http://api"), SETTINGS))
    for manifest in manifests:
        pod = pod_of(manifest)
        assert pod["nodeSelector"] == {"pool": "tracardi"}
        assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "tracardi",
                                       "effect": "NoSchedule"}]
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]
        assert pod["priorityClassName"] == "tracardi-high"
    plain = pod_of(b.deployment(make_installation(), "api", "0.8.1"))
    assert not {"nodeSelector", "tolerations", "affinity", "priorityClassName"} & set(plain)
