"""Manifests of the objects an installation owns: Deployments, Services, install and migration Jobs (pure).

Each builder takes the parsed TracardiInstallation and a few plain values and returns a dict ready to
apply. Names are deterministic, so applying twice is harmless and a crashed operator finds its own
objects again:

    <cr>-api, <cr>-api-production, <cr>-gui, <cr>-worker   serving (slot primary), and their Services
    <cr>-api-<db>, <cr>-worker-<db>                        a new db version started beside the old one
                                                           during a major upgrade (slot candidate)
    <cr>-install-<db>                                      install Job
    <cr>-migrate-<from db>-to-<to db>                      migration Job, exactly once per pair

Secrets only ever appear as secretKeyRef: no manifest holds a secret value.

The Jobs run this operator's own image, `tracardi-operator job install|migrate` with the arguments
and TRACARDI_* environment variables below (the contract of `tracardi_operator.jobs.cli`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tracardi_operator import GROUP_VERSION, versions
from tracardi_operator.labels import (
    LABEL_DB_VERSION,
    LABEL_FROM_DB_VERSION,
    LABEL_SLOT,
    LABEL_TO_DB_VERSION,
    bounded,
    common_labels,
    selector_labels,
)
from tracardi_operator.models import ResourceRequirements, TracardiInstallation

Component = Literal["api", "api-production", "gui", "worker", "install", "migration"]
ServingComponent = Literal["api", "api-production", "gui", "worker"]

TELEMETRY_VARIABLE = "PERFORMANCE_TRACKING"
JOB_UID = 65532
"""The UID the operator's image runs as (its USER); the Jobs run the same image."""
TMP_VOLUME = "tmp"
Slot = Literal["primary", "candidate"]

SERVING_COMPONENTS: tuple[ServingComponent, ...] = ("api", "api-production", "gui", "worker")
# What runs beside the old version during a major upgrade: the API the install and migration go
# through (GUI/staging mode, the only mode that issues tokens) and the worker that does the copying.
CANDIDATE_COMPONENTS: tuple[ServingComponent, ...] = ("api", "worker")
SERVICE_COMPONENTS: tuple[ServingComponent, ...] = ("api", "api-production", "gui")

HTTP_PORT = 80
CA_MOUNT_DIR = "/etc/tracardi/elasticsearch-ca"
CA_FILE_NAME = "ca.crt"
CA_VOLUME = "elasticsearch-ca"

# The job commands' interface, as tracardi_operator.jobs.cli parses it. Secrets reach a Job only as
# environment variables from secretKeyRefs, never as arguments.
JOB_PROGRAM = "tracardi-operator"
ARG_API_URL = "--api-url"  # base URL of the new version's API in GUI/staging mode
ARG_NO_FLATTENED_CHECK = "--no-flattened-check"  # settings.flattened_check off (Tracardi stand-ins only)
ARG_FROM_DB = "--from-db"
ARG_FROM_TENANT = "--from-tenant"
ARG_TO_DB = "--to-db"
ARG_TO_TENANT = "--to-tenant"
ARG_REPAIR = "--repair"  # Auto | Off, spec.upgrade.repair
ARG_MERGED_SUFFIX = "--merged-suffix"  # status.upgrade.mergedSuffix, decided once by the operator
ENV_ADMIN_USERNAME = "TRACARDI_ADMIN_USERNAME"  # installation.adminSecretRef, key username
ENV_ADMIN_PASSWORD = "TRACARDI_ADMIN_PASSWORD"  # installation.adminSecretRef, key password
ENV_JOB_INSTALLATION_TOKEN = "TRACARDI_INSTALLATION_TOKEN"  # installation.tokenSecretRef
ENV_INSTALLATION_TOKEN = "INSTALLATION_TOKEN"  # the same token, as the Tracardi API reads it
ENV_ES_HOSTS = "TRACARDI_ES_HOSTS"  # comma-separated, as ELASTIC_HOST
ENV_ES_VERIFY_CERTS = "TRACARDI_ES_VERIFY_CERTS"  # yes | no
ENV_ES_CA_FILE = "TRACARDI_ES_CA_FILE"
# From elasticsearch.credentialsSecretRef, each optional: keys username, password, apiKeyId, apiKey.
ENV_ES_USERNAME = "TRACARDI_ES_USERNAME"
ENV_ES_PASSWORD = "TRACARDI_ES_PASSWORD"
ENV_ES_API_KEY_ID = "TRACARDI_ES_API_KEY_ID"
ENV_ES_API_KEY = "TRACARDI_ES_API_KEY"


@dataclass(frozen=True)
class BuilderSettings:
    """What the builders need from the operator's settings (the settings object maps onto this)."""

    job_image: str = "tracardi-operator:latest"
    job_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    job_service_account: str | None = None
    # activeDeadlineSeconds of the Jobs: a stuck Job would otherwise hold an upgrade forever.
    job_active_deadline_seconds: int | None = 3600
    # The install Job checks Elasticsearch for the `flattened` type Tracardi's templates need.
    flattened_check: bool = True


@dataclass(frozen=True)
class InstallRequest:
    """An install of one version through its API."""

    version: str
    db_version: str
    api_url: str
    attempt: int = 1


@dataclass(frozen=True)
class MigrationRequest:
    """A migration from one (db version, tenant) pair to the next, through the new version's API."""

    from_version: str
    from_db_version: str
    from_tenant: str
    to_version: str
    to_db_version: str
    to_tenant: str
    api_url: str
    attempt: int = 1
    merged_suffix: str | None = None


# ---------------------------------------------------------------------------------------------------
# Names


def _attempt_suffix(attempt: int) -> str:
    if attempt < 1:
        raise ValueError("attempts count from 1")
    # The first attempt keeps the plain name; a retry a person asked for gets a new, still
    # deterministic, name and leaves the failed Job and its logs in place.
    return "" if attempt == 1 else f"-r{attempt}"


def workload_name(
    cr_name: str, component: ServingComponent, slot: Slot = "primary", db_version: str | None = None
) -> str:
    """Name of a Deployment and of its Service."""
    if slot == "primary":
        return bounded(f"{cr_name}-{component}")
    if db_version is None:
        raise ValueError("a candidate workload is named after its db version")
    return bounded(f"{cr_name}-{component}-{db_version}")


def install_job_name(cr_name: str, db_version: str, attempt: int = 1) -> str:
    return bounded(f"{cr_name}-install-{db_version}{_attempt_suffix(attempt)}")


def migration_job_name(cr_name: str, from_db_version: str, to_db_version: str, attempt: int = 1) -> str:
    return bounded(f"{cr_name}-migrate-{from_db_version}-to-{to_db_version}{_attempt_suffix(attempt)}")


def api_service_url(installation: TracardiInstallation, slot: Slot = "primary", db_version: str | None = None) -> str:
    """In-cluster URL of the GUI/staging API Service."""
    service = workload_name(installation.name, "api", slot, db_version)
    return f"http://{service}.{installation.namespace}.svc:{HTTP_PORT}"


# ---------------------------------------------------------------------------------------------------
# Metadata


def owner_reference(installation: TracardiInstallation) -> dict[str, Any]:
    """Makes the installation the controller of a child: deleted with it, and watched through it."""
    if not installation.metadata.uid:
        raise ValueError("an owner reference needs the installation's uid")
    return {
        "apiVersion": GROUP_VERSION,
        "kind": installation.kind,
        "name": installation.name,
        "uid": installation.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(installation: TracardiInstallation, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": installation.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(installation)],
    }


def _workload_labels(
    installation: TracardiInstallation, component: ServingComponent, version: str, slot: Slot, db_version: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """(labels of the objects and pods, selector); selectors never include the version, which changes."""
    selector = {**selector_labels(installation.name, component), LABEL_SLOT: slot}
    if slot == "candidate":
        assert db_version is not None
        selector[LABEL_DB_VERSION] = db_version
    labels = {**common_labels(installation.name, component, version), **selector}
    if db_version is not None:
        labels[LABEL_DB_VERSION] = db_version
    return labels, selector


# ---------------------------------------------------------------------------------------------------
# Environment


def _secret_env(name: str, secret: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    reference: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        reference["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": reference}}


def _value_env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def elasticsearch_env(installation: TracardiInstallation) -> list[dict[str, Any]]:
    """ELASTIC_* variables as Tracardi reads them (docs/tracardi.md §6); the Jobs read the same."""
    es = installation.spec.elasticsearch
    env = [
        _value_env("ELASTIC_HOST", ",".join(es.hosts)),
        _value_env("ELASTIC_SCHEME", es.scheme),
        _value_env("ELASTIC_VERIFY_CERTS", _yes_no(es.verify_certs)),
    ]
    if es.credentials_secret_ref is not None:
        secret = es.credentials_secret_ref.name
        # All optional: the Secret holds either basic-auth or API-key keys.
        env += [
            _secret_env("ELASTIC_HTTP_AUTH_USERNAME", secret, "username", optional=True),
            _secret_env("ELASTIC_HTTP_AUTH_PASSWORD", secret, "password", optional=True),
            _secret_env("ELASTIC_API_KEY_ID", secret, "apiKeyId", optional=True),
            _secret_env("ELASTIC_API_KEY", secret, "apiKey", optional=True),
        ]
    if es.ca_secret_ref is not None:
        env.append(_value_env("ELASTIC_CA_FILE", f"{CA_MOUNT_DIR}/{CA_FILE_NAME}"))
    if es.index_shards is not None:
        env.append(_value_env("ELASTIC_INDEX_SHARDS", str(es.index_shards)))
    if es.index_replicas is not None:
        env.append(_value_env("ELASTIC_INDEX_REPLICAS", str(es.index_replicas)))
    return env


def redis_env(installation: TracardiInstallation) -> list[dict[str, Any]]:
    """REDIS_HOST and REDIS_PORT, always both: Tracardi 0.8.1 and 0.8.2.x take the port of the
    connection that login uses from REDIS_PORT (default 6379), not from the URL (docs/tracardi.md §6)."""
    redis = installation.spec.redis
    env = [_value_env("REDIS_HOST", redis.host), _value_env("REDIS_PORT", str(redis.port))]
    if redis.password_secret_ref is not None:
        env.append(_secret_env("REDIS_PASSWORD", redis.password_secret_ref.name, redis.password_secret_ref.key))
    return env


def _token_env(installation: TracardiInstallation, name: str = ENV_INSTALLATION_TOKEN) -> dict[str, Any]:
    token = installation.spec.installation.token_secret_ref
    return _secret_env(name, token.name, token.key)


def job_elasticsearch_env(installation: TracardiInstallation) -> list[dict[str, Any]]:
    """TRACARDI_ES_* variables: how a Job reaches Elasticsearch to verify installs and migrations."""
    es = installation.spec.elasticsearch
    env = [
        _value_env(ENV_ES_HOSTS, ",".join(es.hosts)),
        _value_env(ENV_ES_VERIFY_CERTS, _yes_no(es.verify_certs)),
    ]
    if es.credentials_secret_ref is not None:
        secret = es.credentials_secret_ref.name
        env += [
            _secret_env(ENV_ES_USERNAME, secret, "username", optional=True),
            _secret_env(ENV_ES_PASSWORD, secret, "password", optional=True),
            _secret_env(ENV_ES_API_KEY_ID, secret, "apiKeyId", optional=True),
            _secret_env(ENV_ES_API_KEY, secret, "apiKey", optional=True),
        ]
    if es.ca_secret_ref is not None:
        env.append(_value_env(ENV_ES_CA_FILE, f"{CA_MOUNT_DIR}/{CA_FILE_NAME}"))
    return env


def _admin_env(installation: TracardiInstallation) -> list[dict[str, Any]]:
    admin = installation.spec.installation.admin_secret_ref.name
    return [
        _secret_env(ENV_ADMIN_USERNAME, admin, "username"),
        _secret_env(ENV_ADMIN_PASSWORD, admin, "password"),
    ]


def telemetry_env(installation: TracardiInstallation, version: str) -> list[dict[str, Any]]:
    """PERFORMANCE_TRACKING=no where it means "no telemetry", and nowhere else.

    Tracardi up to 0.8.1 reads the variable as yes/no (default yes: reports to Tracardi's Sentry);
    0.8.2.x reads it as a Sentry DSN and refuses to start on anything else, `no` included
    (docs/tracardi.md §6). A value the user sets in spec.env wins either way.
    """
    if any(extra.name == TELEMETRY_VARIABLE for extra in installation.spec.env):
        return []
    parsed = versions.try_parse(version).version
    if parsed is None or (parsed.major, parsed.minor, parsed.patch) >= (0, 8, 2):
        return []
    return [_value_env(TELEMETRY_VARIABLE, "no")]


def component_env(
    installation: TracardiInstallation, component: ServingComponent, version: str
) -> list[dict[str, Any]]:
    """Environment of a Tracardi container at image tag `version`. TENANT_NAME is never set: a
    version-independent tenant makes the aliases of old and new version collide during an upgrade
    (docs/tracardi.md §4)."""
    if component == "gui":
        return [_value_env("API_URL", installation.spec.gui.api_url or api_service_url(installation))]
    env = [*elasticsearch_env(installation), *redis_env(installation), *telemetry_env(installation, version)]
    if component == "api":
        env += [_value_env("PRODUCTION", "no"), _value_env("EXPOSE_GUI_API", "yes"), _token_env(installation)]
    elif component == "api-production":
        env += [_value_env("PRODUCTION", "yes"), _value_env("EXPOSE_GUI_API", "no"), _token_env(installation)]
    env += [_value_env(extra.name, extra.value) for extra in installation.spec.env]
    return env


def _ca_volume(installation: TracardiInstallation) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts) that put the Elasticsearch CA at ELASTIC_CA_FILE, if one is configured."""
    ca = installation.spec.elasticsearch.ca_secret_ref
    if ca is None:
        return [], []
    volume = {
        "name": CA_VOLUME,
        "secret": {"secretName": ca.name, "items": [{"key": ca.key, "path": CA_FILE_NAME}]},
    }
    mount = {"name": CA_VOLUME, "mountPath": CA_MOUNT_DIR, "readOnly": True}
    return [volume], [mount]


# ---------------------------------------------------------------------------------------------------
# Deployments and Services


def _image(installation: TracardiInstallation, component: ServingComponent, version: str) -> str:
    images = installation.spec.images
    repository = {
        "api": images.api_repository,
        "api-production": images.api_repository,
        "gui": images.gui_repository,
        "worker": images.worker_repository,
    }[component]
    return f"{repository}:{version}"


def _resources(installation: TracardiInstallation, component: ServingComponent) -> ResourceRequirements | None:
    resources = installation.spec.resources
    return {
        "api": resources.api,
        "api-production": resources.api_production,
        "gui": resources.gui,
        "worker": resources.worker,
    }[component]


def _spec_replicas(installation: TracardiInstallation, component: ServingComponent) -> int:
    replicas = installation.spec.replicas
    return {
        "api": replicas.api,
        "api-production": replicas.api_production,
        "gui": replicas.gui,
        "worker": replicas.worker,
    }[component]


def _http_probe(path: str, *, initial_delay: int, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _container(installation: TracardiInstallation, component: ServingComponent, version: str) -> dict[str, Any]:
    _, mounts = _ca_volume(installation)
    container: dict[str, Any] = {
        "name": component,
        "image": _image(installation, component, version),
        "imagePullPolicy": installation.spec.images.pull_policy,
        "env": component_env(installation, component, version),
    }
    if component != "worker":
        container["ports"] = [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    if component in ("api", "api-production"):
        # /healthcheck only echoes (docs/tracardi.md §6): fine to tell a live process, but only the
        # version endpoint, which reads the configuration and the installation state, tells readiness.
        container["readinessProbe"] = _http_probe("/info/version/details", initial_delay=5, period=10, failures=3)
        container["livenessProbe"] = _http_probe("/healthcheck", initial_delay=30, period=20, failures=6)
    elif component == "gui":
        container["readinessProbe"] = _http_probe("/", initial_delay=2, period=10, failures=3)
    resources = _resources(installation, component)
    if resources is not None:
        container["resources"] = resources.to_k8s()
    if mounts and component != "gui":
        container["volumeMounts"] = mounts
    container["securityContext"] = container_security(installation, component)
    return container


# Tracardi's images run as root. What each needs of root's capabilities, nothing more: the APIs bind
# port 80; the GUI's nginx binds port 80, prepares its cache directories and drops to its own user.
_CAPABILITIES_NEEDED: dict[str, list[str]] = {
    "api": ["NET_BIND_SERVICE"],
    "api-production": ["NET_BIND_SERVICE"],
    "gui": ["CHOWN", "DAC_OVERRIDE", "NET_BIND_SERVICE", "SETGID", "SETUID"],
    "worker": [],
}


def container_security(installation: TracardiInstallation, component: ServingComponent) -> dict[str, Any]:
    """The container securityContext: the baseline-compatible default, each field the spec sets winning."""
    default: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], **({"add": needed} if (needed := _CAPABILITIES_NEEDED[component]) else {})},
    }
    own = installation.spec.security.container
    chosen = own.model_dump(by_alias=True, mode="json", exclude_none=True) if own else {}
    return {**default, **chosen}


def pod_security(installation: TracardiInstallation) -> dict[str, Any]:
    """The pod securityContext: seccomp RuntimeDefault, each field the spec sets winning."""
    own = installation.spec.security.pod
    chosen = own.model_dump(by_alias=True, mode="json", exclude_none=True) if own else {}
    return {"seccompProfile": {"type": "RuntimeDefault"}, **chosen}


def scheduling(installation: TracardiInstallation) -> dict[str, Any]:
    """nodeSelector, tolerations, affinity and priorityClassName of every Tracardi pod, as set in the spec."""
    spec = installation.spec.scheduling
    out: dict[str, Any] = {}
    if spec.node_selector:
        out["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        out["tolerations"] = [t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in spec.tolerations]
    if spec.node_affinity is not None:
        affinity: dict[str, Any] = {}
        if spec.node_affinity.required:
            affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
                t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in spec.node_affinity.required]}
        if spec.node_affinity.preferred:
            affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [
                t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in spec.node_affinity.preferred]
        if affinity:
            out["affinity"] = {"nodeAffinity": affinity}
    if spec.priority_class_name:
        out["priorityClassName"] = spec.priority_class_name
    return out


def deployment(
    installation: TracardiInstallation,
    component: ServingComponent,
    version: str,
    *,
    slot: Slot = "primary",
    db_version: str | None = None,
    replicas: int | None = None,
) -> dict[str, Any]:
    """The Deployment of one component at one image tag.

    A candidate (slot "candidate") runs beside the primary during a major upgrade and needs its
    `db_version` for its name. `replicas` overrides spec.replicas, e.g. 0 for the old production API
    while an Offline upgrade copies; candidates default to one pod.
    """
    if slot == "candidate" and component not in CANDIDATE_COMPONENTS:
        raise ValueError(f"{component} has no candidate: only {', '.join(CANDIDATE_COMPONENTS)} run side by side")
    name = workload_name(installation.name, component, slot, db_version)
    labels, selector = _workload_labels(installation, component, version, slot, db_version)
    if replicas is None:
        replicas = 1 if slot == "candidate" else _spec_replicas(installation, component)
    volumes, _ = _ca_volume(installation)
    pod_spec: dict[str, Any] = {
        "securityContext": pod_security(installation),
        "containers": [_container(installation, component, version)],
        **scheduling(installation),
    }
    if volumes and component != "gui":
        pod_spec["volumes"] = volumes
    pull_secrets = installation.spec.images.pull_secrets
    if pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": secret.name} for secret in pull_secrets]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(installation, name, labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def service(
    installation: TracardiInstallation,
    component: ServingComponent,
    version: str,
    *,
    slot: Slot = "primary",
    db_version: str | None = None,
) -> dict[str, Any]:
    """The ClusterIP Service in front of a component's Deployment (same name, same selector)."""
    if component not in SERVICE_COMPONENTS:
        raise ValueError(f"{component} serves no HTTP and has no Service")
    if slot == "candidate" and component not in CANDIDATE_COMPONENTS:
        raise ValueError(f"{component} has no candidate")
    labels, selector = _workload_labels(installation, component, version, slot, db_version)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(installation, workload_name(installation.name, component, slot, db_version), labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


# ---------------------------------------------------------------------------------------------------
# Jobs


def _job(
    installation: TracardiInstallation,
    settings: BuilderSettings,
    *,
    name: str,
    component: Component,
    version: str,
    extra_labels: dict[str, str],
    args: list[str],
) -> dict[str, Any]:
    labels = {**common_labels(installation.name, component, version), **extra_labels}
    volumes, mounts = _ca_volume(installation)
    container: dict[str, Any] = {
        "name": component,
        "image": settings.job_image,
        "imagePullPolicy": settings.job_image_pull_policy,
        "command": [JOB_PROGRAM],
        "args": args,
        "env": [
            *job_elasticsearch_env(installation),
            *_admin_env(installation),
            _token_env(installation, ENV_JOB_INSTALLATION_TOKEN),
        ],
        # The Job writes its JSON result (or failure reason) there; the logs stand in if it could not.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # The operator's own image: the `restricted` Pod Security Standard, with a writable /tmp only.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": JOB_UID,
            "runAsGroup": JOB_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [*mounts, {"name": TMP_VOLUME, "mountPath": "/tmp"}],  # noqa: S108 - a private emptyDir
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [*volumes, {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}}],
        **scheduling(installation),
    }
    if settings.job_service_account is not None:
        pod_spec["serviceAccountName"] = settings.job_service_account
    job_spec: dict[str, Any] = {
        # A migration must run exactly once (a re-run corrupts data, docs/tracardi.md §5): Kubernetes
        # never retries the pod; only a person does, through the tracardi.com/retry annotation.
        "backoffLimit": 0,
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if settings.job_active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = settings.job_active_deadline_seconds
    # No ttlSecondsAfterFinished: the finished Job, under its deterministic name, is the evidence that
    # the step ran; it goes with the installation (owner reference).
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(installation, name, labels),
        "spec": job_spec,
    }


def install_job(
    installation: TracardiInstallation, request: InstallRequest, settings: BuilderSettings
) -> dict[str, Any]:
    """The Job that installs `request.version` through its API and waits until GET /install proves it."""
    return _job(
        installation,
        settings,
        name=install_job_name(installation.name, request.db_version, request.attempt),
        component="install",
        version=request.version,
        extra_labels={LABEL_DB_VERSION: request.db_version},
        args=[
            "job", "install", ARG_API_URL, request.api_url,
            *([] if settings.flattened_check else [ARG_NO_FLATTENED_CHECK]),
        ],
    )


def migration_job(
    installation: TracardiInstallation, request: MigrationRequest, settings: BuilderSettings
) -> dict[str, Any]:
    """The Job that migrates both contexts from one db version to the next and verifies every copy."""
    return _job(
        installation,
        settings,
        name=migration_job_name(installation.name, request.from_db_version, request.to_db_version, request.attempt),
        component="migration",
        version=request.to_version,
        extra_labels={
            LABEL_FROM_DB_VERSION: request.from_db_version,
            LABEL_TO_DB_VERSION: request.to_db_version,
        },
        args=_migrate_args(installation, request),
    )


def _migrate_args(installation: TracardiInstallation, request: MigrationRequest) -> list[str]:
    args = [
        "job",
        "migrate",
        ARG_API_URL,
        request.api_url,
        ARG_FROM_DB,
        request.from_db_version,
        ARG_FROM_TENANT,
        request.from_tenant,
        ARG_TO_DB,
        request.to_db_version,
        ARG_TO_TENANT,
        request.to_tenant,
        ARG_REPAIR,
        installation.spec.upgrade.repair,
    ]
    if request.merged_suffix is not None:
        args += [ARG_MERGED_SUFFIX, request.merged_suffix]
    return args
