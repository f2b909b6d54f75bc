"""The install and migration Jobs (pure): they run this operator's own image,
`tracardi-operator job install|migrate`, with the arguments below and the TRACARDI_* environment
(the contract of `tracardi_operator.jobs.cli`), once: never retried by Kubernetes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tracardi_operator.builders.environment import (
    ENV_JOB_INSTALLATION_TOKEN,
    admin_env,
    ca_volume,
    job_elasticsearch_env,
    token_env,
)
from tracardi_operator.builders.names import Component, install_job_name, migration_job_name, object_metadata
from tracardi_operator.builders.workloads import scheduling
from tracardi_operator.labels import LABEL_DB_VERSION, LABEL_FROM_DB_VERSION, LABEL_TO_DB_VERSION, common_labels
from tracardi_operator.models import TracardiInstallation

JOB_UID = 65532
"""The UID the operator's image runs as (its USER); the Jobs run the same image."""
TMP_VOLUME = "tmp"

# The job commands' interface, as tracardi_operator.jobs.cli parses it.
JOB_PROGRAM = "tracardi-operator"
ARG_API_URL = "--api-url"  # base URL of the new version's API in GUI/staging mode
ARG_NO_FLATTENED_CHECK = "--no-flattened-check"  # settings.flattened_check off (Tracardi stand-ins only)
ARG_FROM_DB = "--from-db"
ARG_FROM_TENANT = "--from-tenant"
ARG_TO_DB = "--to-db"
ARG_TO_TENANT = "--to-tenant"
ARG_REPAIR = "--repair"  # Auto | Off, spec.upgrade.repair
ARG_MERGED_SUFFIX = "--merged-suffix"  # status.upgrade.mergedSuffix, decided once by the operator


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
    volumes, mounts = ca_volume(installation)
    container: dict[str, Any] = {
        "name": component,
        "image": settings.job_image,
        "imagePullPolicy": settings.job_image_pull_policy,
        "command": [JOB_PROGRAM],
        "args": args,
        "env": [
            *job_elasticsearch_env(installation),
            *admin_env(installation),
            token_env(installation, ENV_JOB_INSTALLATION_TOKEN),
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
        "metadata": object_metadata(installation, name, labels),
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
