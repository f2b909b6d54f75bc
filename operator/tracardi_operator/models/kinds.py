"""The two kinds as whole objects (`TracardiInstallation`, `TracardiRetentionPolicy`), as handlers
receive them, and their identity in the API (`ResourceKind`), shared by crdgen and the handlers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from tracardi_operator import API_GROUP, API_VERSION, GROUP_VERSION
from tracardi_operator.models.common import CamelModel, ObjectMeta
from tracardi_operator.models.installation_spec import TracardiInstallationSpec
from tracardi_operator.models.installation_status import TracardiInstallationStatus
from tracardi_operator.models.retention_policy import TracardiRetentionPolicySpec, TracardiRetentionPolicyStatus


class TracardiInstallation(CamelModel):
    """A TracardiInstallation object."""

    api_version: str = Field(default=GROUP_VERSION, description="apiVersion.")
    kind: str = Field(default="TracardiInstallation", description="kind.")
    metadata: ObjectMeta = Field(description="Object metadata.")
    spec: TracardiInstallationSpec = Field(description="Desired state.")
    status: TracardiInstallationStatus = Field(
        default_factory=TracardiInstallationStatus, description="Observed state."
    )

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        """Namespace of the installation (always set for this namespaced kind)."""
        return self.metadata.namespace or "default"


class TracardiRetentionPolicy(CamelModel):
    """A TracardiRetentionPolicy object."""

    api_version: str = Field(default=GROUP_VERSION, description="apiVersion.")
    kind: str = Field(default="TracardiRetentionPolicy", description="kind.")
    metadata: ObjectMeta = Field(description="Object metadata.")
    spec: TracardiRetentionPolicySpec = Field(default_factory=TracardiRetentionPolicySpec, description="Desired state.")
    status: TracardiRetentionPolicyStatus = Field(
        default_factory=TracardiRetentionPolicyStatus, description="Observed state."
    )


@dataclass(frozen=True)
class ResourceKind:
    """What names a custom resource kind in the API and which models describe it."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    scope: Literal["Namespaced", "Cluster"]
    spec_model: type[CamelModel]
    status_model: type[CamelModel]
    spec_required: bool
    description: str
    group: str = API_GROUP
    version: str = API_VERSION

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


INSTALLATION = ResourceKind(
    kind="TracardiInstallation",
    plural="tracardiinstallations",
    singular="tracardiinstallation",
    short_names=("tri", "tracardi"),
    scope="Namespaced",
    spec_model=TracardiInstallationSpec,
    status_model=TracardiInstallationStatus,
    spec_required=True,
    description=(
        "A Tracardi installation (API, GUI, worker) on Elasticsearch and Redis. Changing spec.version "
        "upgrades it: rolling for a new build of the same database version, install plus migration "
        "plus verification for a new database version."
    ),
)

RETENTION_POLICY = ResourceKind(
    kind="TracardiRetentionPolicy",
    plural="tracardiretentionpolicies",
    singular="tracardiretentionpolicy",
    short_names=("trp",),
    scope="Cluster",
    spec_model=TracardiRetentionPolicySpec,
    status_model=TracardiRetentionPolicyStatus,
    spec_required=False,
    description=(
        "Which Tracardi installations may lose the Elasticsearch indices of their superseded versions, "
        "and when. An installation no policy selects never loses an index."
    ),
)

RESOURCE_KINDS = (INSTALLATION, RETENTION_POLICY)
