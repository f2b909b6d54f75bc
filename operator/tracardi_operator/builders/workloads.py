"""The Deployments and Services of the serving components and of the candidates (pure): image,
resources, replicas, probes, security contexts and scheduling, as the spec says."""

from __future__ import annotations

from typing import Any

from tracardi_operator.builders.environment import ca_volume, component_env
from tracardi_operator.builders.names import (
    CANDIDATE_COMPONENTS,
    HTTP_PORT,
    SERVICE_COMPONENTS,
    ServingComponent,
    Slot,
    object_metadata,
    workload_name,
)
from tracardi_operator.labels import LABEL_DB_VERSION, LABEL_SLOT, LABEL_VERSION, common_labels, selector_labels
from tracardi_operator.models import ResourceRequirements, TracardiInstallation


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
    _, mounts = ca_volume(installation)
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
    volumes, _ = ca_volume(installation)
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
        "metadata": object_metadata(installation, name, labels),
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
    # No version label: a Service stays the same object across versions of one database version, so a
    # minor bump changes only the Deployments (and the pass's apply of the Service is skipped, `applied`).
    labels.pop(LABEL_VERSION, None)
    name = workload_name(installation.name, component, slot, db_version)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_metadata(installation, name, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
