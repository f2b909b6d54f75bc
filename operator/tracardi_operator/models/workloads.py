"""How the Tracardi pods run, for every component: images, replica counts, compute resources, security
contexts and scheduling (the core/v1 shapes a TracardiInstallation's spec carries over to its pods).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from tracardi_operator.labels import MAX_LABEL_KEY_LENGTH, MAX_LABEL_LENGTH
from tracardi_operator.models.common import INT32, INT64, CamelModel, LocalObjectReference, Quantity


class ImagesSpec(CamelModel):
    """Where the Tracardi images come from; the tag is always `spec.version`."""

    api_repository: str = Field(
        default="tracardi/tracardi-api", min_length=1, max_length=512, description="Image repository of the API."
    )
    gui_repository: str = Field(
        default="tracardi/tracardi-gui", min_length=1, max_length=512, description="Image repository of the GUI."
    )
    worker_repository: str = Field(
        default="tracardi/update-worker",
        min_length=1,
        max_length=512,
        description="Image repository of the worker that runs migrations and other background tasks.",
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="Image pull policy of every Tracardi container."
    )
    pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, description="Secrets for pulling the images from a private registry."
    )


class ReplicasSpec(CamelModel):
    """Number of pods per component."""

    api: int = Field(
        default=1,
        ge=1,
        description="Pods of the API in GUI/staging mode; the operator installs and migrates through it.",
        json_schema_extra=INT32,
    )
    api_production: int = Field(
        default=1, ge=0, description="Pods of the API in production mode (event collection).", json_schema_extra=INT32
    )
    gui: int = Field(default=1, ge=0, description="Pods of the GUI.", json_schema_extra=INT32)
    worker: int = Field(
        default=1, ge=1, description="Pods of the worker; migrations need at least one.", json_schema_extra=INT32
    )


class ResourceRequirements(CamelModel):
    """Compute resources of one container, as in core/v1 ResourceRequirements."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Minimum resources, e.g. {cpu: 250m, memory: 512Mi}."
    )
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Maximum resources, e.g. {memory: 1Gi}.")


class ResourcesSpec(CamelModel):
    """Compute resources per component; a component without an entry gets none set."""

    api: ResourceRequirements | None = Field(default=None, description="Resources of the GUI/staging API.")
    api_production: ResourceRequirements | None = Field(default=None, description="Resources of the production API.")
    gui: ResourceRequirements | None = Field(default=None, description="Resources of the GUI.")
    worker: ResourceRequirements | None = Field(default=None, description="Resources of the worker.")


class SeccompProfile(CamelModel):
    """core/v1 SeccompProfile."""

    type: Literal["RuntimeDefault", "Localhost", "Unconfined"] = Field(description="Which profile applies.")
    localhost_profile: str | None = Field(
        default=None, max_length=1024, description="Path of a profile on the node (type Localhost only)."
    )


class Capabilities(CamelModel):
    """core/v1 Capabilities: Linux capabilities added to and dropped from the runtime's default set."""

    add: list[Annotated[str, StringConstraints(max_length=64)]] | None = Field(
        default=None, max_length=64, description="Capabilities added, e.g. NET_BIND_SERVICE."
    )
    drop: list[Annotated[str, StringConstraints(max_length=64)]] | None = Field(
        default=None, max_length=64, description="Capabilities dropped, e.g. ALL."
    )


class PodSecurity(CamelModel):
    """The fields of core/v1 PodSecurityContext a Tracardi pod may need; each one set replaces the
    operator's default for it."""

    run_as_user: int | None = Field(default=None, ge=0, description="UID of every container.",
                                    json_schema_extra=INT64)
    run_as_group: int | None = Field(default=None, ge=0, description="GID of every container.",
                                     json_schema_extra=INT64)
    run_as_non_root: bool | None = Field(default=None, description="Refuse to start a container as UID 0.")
    fs_group: int | None = Field(default=None, ge=0, description="Group owning mounted volumes.",
                                 json_schema_extra=INT64)
    supplemental_groups: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None, max_length=32, description="Extra groups of every container."
    )
    seccomp_profile: SeccompProfile | None = Field(default=None, description="Default: RuntimeDefault.")


class ContainerSecurity(CamelModel):
    """The fields of core/v1 SecurityContext of a Tracardi container; each one set replaces the
    operator's default for it."""

    run_as_user: int | None = Field(default=None, ge=0, description="UID of the container.", json_schema_extra=INT64)
    run_as_group: int | None = Field(default=None, ge=0, description="GID of the container.",
                                     json_schema_extra=INT64)
    run_as_non_root: bool | None = Field(default=None, description="Refuse to start the container as UID 0.")
    allow_privilege_escalation: bool | None = Field(default=None, description="Default: false.")
    read_only_root_filesystem: bool | None = Field(default=None, description="Mount the image read-only.")
    capabilities: Capabilities | None = Field(
        default=None,
        description=(
            "Default: drop ALL, add only what the component needs as root in Tracardi's images "
            "(NET_BIND_SERVICE for the APIs; CHOWN, DAC_OVERRIDE, SETGID, SETUID, NET_BIND_SERVICE for the "
            "GUI's nginx)."
        ),
    )
    seccomp_profile: SeccompProfile | None = Field(default=None, description="Default: the pod's.")


class SecuritySpec(CamelModel):
    """Security contexts of the Tracardi pods. The defaults meet the `baseline` Pod Security Standard
    and work with Tracardi's images, which run as root; `restricted` namespaces need a UID here
    (runAsUser and runAsNonRoot), which Tracardi's images must then tolerate."""

    pod: PodSecurity | None = Field(default=None, description="Pod-level security context of every component.")
    container: ContainerSecurity | None = Field(
        default=None, description="Container security context of every component (API, GUI, worker)."
    )


class NodeSelectorRequirement(CamelModel):
    key: str = Field(min_length=1, max_length=MAX_LABEL_KEY_LENGTH, description="Node label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(description="How to match.")
    values: list[Annotated[str, StringConstraints(max_length=MAX_LABEL_LENGTH)]] | None = Field(
        default=None, max_length=64, description="Values for In, NotIn, Gt and Lt."
    )


class NodeSelectorTerm(CamelModel):
    match_expressions: list[NodeSelectorRequirement] = Field(
        max_length=16, description="Every requirement must hold for the term to match."
    )


class PreferredSchedulingTerm(CamelModel):
    weight: int = Field(ge=1, le=100, description="Weight of the preference.", json_schema_extra=INT32)
    preference: NodeSelectorTerm = Field(description="The nodes preferred.")


class NodeAffinity(CamelModel):
    """core/v1 NodeAffinity (matchExpressions only)."""

    required: list[NodeSelectorTerm] | None = Field(
        default=None, max_length=16,
        description="requiredDuringSchedulingIgnoredDuringExecution: a node must match one of these terms.",
    )
    preferred: list[PreferredSchedulingTerm] | None = Field(
        default=None, max_length=16, description="preferredDuringSchedulingIgnoredDuringExecution."
    )


class Toleration(CamelModel):
    """core/v1 Toleration."""

    key: str | None = Field(
        default=None, max_length=MAX_LABEL_KEY_LENGTH, description="Taint key; empty with Exists matches all."
    )
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Default Equal.")
    value: str | None = Field(default=None, max_length=MAX_LABEL_LENGTH, description="Taint value (Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect; empty matches all."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated.", json_schema_extra=INT64
    )


class SchedulingSpec(CamelModel):
    """Where the Tracardi pods run, for every component."""

    node_selector: dict[str, Annotated[str, StringConstraints(max_length=MAX_LABEL_LENGTH)]] | None = Field(
        default=None, description="Node labels a node must have."
    )
    tolerations: list[Toleration] | None = Field(default=None, max_length=32, description="Taints tolerated.")
    node_affinity: NodeAffinity | None = Field(default=None, description="Node affinity of every pod.")
    priority_class_name: str | None = Field(
        default=None, max_length=253, description="PriorityClass of every pod."
    )
