"""Names, URLs and metadata of the objects an installation owns (pure): the components and slots,
the deterministic names of Deployments, Services and Jobs, and the metadata (labels, owner reference)
every child carries."""

from __future__ import annotations

from typing import Any, Literal

from tracardi_operator import GROUP_VERSION
from tracardi_operator.labels import bounded
from tracardi_operator.models import TracardiInstallation

Component = Literal["api", "api-production", "gui", "worker", "install", "migration"]
ServingComponent = Literal["api", "api-production", "gui", "worker"]
Slot = Literal["primary", "candidate"]

SERVING_COMPONENTS: tuple[ServingComponent, ...] = ("api", "api-production", "gui", "worker")
# What runs beside the old version during a major upgrade: the API the install and migration go
# through (GUI/staging mode, the only mode that issues tokens) and the worker that does the copying.
CANDIDATE_COMPONENTS: tuple[ServingComponent, ...] = ("api", "worker")
SERVICE_COMPONENTS: tuple[ServingComponent, ...] = ("api", "api-production", "gui")

HTTP_PORT = 80


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


def object_metadata(installation: TracardiInstallation, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": installation.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(installation)],
    }
