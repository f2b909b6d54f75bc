"""The operator's API: pydantic models of TracardiInstallation and TracardiRetentionPolicy.

These models are the single source of `crds/*.yaml` (see `crdgen`): every field carries the description
that `kubectl explain` shows, and constraints admission can check are declared here, either as JSON
schema constraints or as CEL rules (`x-kubernetes-validations`). JSON names are camelCase; models accept
both camelCase and snake_case on input and emit camelCase.

Defaults live here and nowhere else, but never inside list items: a defaulted field in a list item makes
GitOps tools see a permanent diff between the manifest and the stored object.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tracardi_operator import API_GROUP, API_VERSION, GROUP_VERSION
from tracardi_operator.versions import TAG_REGEX, StepKind

# ---------------------------------------------------------------------------------------------------
# Shared building blocks


class CamelModel(BaseModel):
    """Base of every API model: camelCase on the wire, tolerant of fields it does not know.

    Unknown fields are ignored rather than refused so that a newer CRD (or kopf's own bookkeeping in
    status) never makes an older operator fail to parse an object.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        # Reconcilers work on a deep copy of the status and assign to it; assignments are validated so
        # that a wrong value fails where it is made, not when the API server rejects the patch.
        validate_assignment=True,
    )

    def to_k8s(self) -> dict[str, Any]:
        """The object as Kubernetes stores it: camelCase keys, JSON types, unset optionals omitted."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _cel(rule: str, message: str, field_path: str | None = None) -> JsonValue:
    validation: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path is not None:
        validation["fieldPath"] = field_path
    return validation


def _object_default(description: str, factory: type[CamelModel]) -> Any:
    """A field holding a sub-object whose own defaults apply when the user omits it.

    pydantic does not put `default_factory` values into the JSON schema; `default: {}` tells the API
    server to create the object, and with it the nested defaults, so `kubectl get -o yaml` shows them.
    """
    return Field(default_factory=factory, description=description, json_schema_extra={"default": {}})


INT32: dict[str, Any] = {"format": "int32"}
INT64: dict[str, Any] = {"format": "int64"}
# Conditions are a map keyed by type, as in every built-in kind (lets server-side apply merge them).
CONDITIONS_LIST: dict[str, Any] = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}

# Kubernetes object names as referenced by other objects (DNS subdomain names).
ObjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
]
SecretKey = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]

# A resource quantity ("500m", "1Gi", 2), as in core/v1 ResourceRequirements.
Quantity = Annotated[
    int | str,
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}),
]

# Go duration syntax as Kubernetes uses it ("168h", "30m", "1h30m", "0"). Days are not a Go unit.
DURATION_REGEX = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": timedelta(microseconds=0.001),
    "us": timedelta(microseconds=1),
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
}
Duration = Annotated[str, StringConstraints(pattern=DURATION_REGEX, max_length=64)]


def parse_duration(text: str) -> timedelta:
    """The timedelta of a Go duration string such as "168h" or "1h30m"; ValueError when malformed."""
    if not re.fullmatch(DURATION_REGEX, text):
        raise ValueError(f"not a duration like 168h, 30m or 1h30m: {text!r}")
    total = timedelta()
    for number, unit in _DURATION_PART.findall(text):
        total += float(number) * _DURATION_UNITS[unit]
    return total


class SecretRef(CamelModel):
    """A Secret in the installation's namespace whose keys are fixed by the field that refers to it."""

    name: ObjectName = Field(description="Name of the Secret, in the namespace of the installation.")


class SecretKeyRef(CamelModel):
    """One key of a Secret in the installation's namespace."""

    name: ObjectName = Field(description="Name of the Secret, in the namespace of the installation.")
    key: SecretKey = Field(description="Key within the Secret whose value is used.")


class LocalObjectReference(CamelModel):
    """A reference to an object in the same namespace, by name."""

    name: ObjectName = Field(description="Name of the referenced object.")


# ---------------------------------------------------------------------------------------------------
# TracardiInstallation spec

def _valid_url_port(url: str) -> str:
    """The schema's pattern admits any port; a port out of range is caught here (InvalidSpec in status)
    rather than when the first Elasticsearch client is built."""
    port = urllib.parse.urlsplit(url).port  # raises ValueError when out of 0-65535 or not a number
    if port == 0:
        raise ValueError("port 0 is not a port Elasticsearch listens on")
    return url


ElasticsearchHost = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://[^\s,]+$"),
    AfterValidator(_valid_url_port),
]


class ElasticsearchSpec(CamelModel):
    """How every Tracardi component and Job reaches Elasticsearch (7.8 to 7.17)."""

    hosts: list[ElasticsearchHost] = Field(
        min_length=1,
        max_length=32,
        description=(
            "Elasticsearch URLs, scheme included, e.g. http://elasticsearch:9200. All hosts share one "
            "scheme, because Tracardi reads a single ELASTIC_SCHEME."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.all(h, h.startsWith('http://')) || self.all(h, h.startsWith('https://'))",
                    "all hosts must use the same scheme, http:// or https://",
                )
            ]
        },
    )
    credentials_secret_ref: SecretRef | None = Field(
        default=None,
        description=(
            "Secret with the Elasticsearch credentials: keys `username` and `password` for basic "
            "authentication, or `apiKeyId` and `apiKey` for an API key. Omit for an unsecured cluster."
        ),
    )
    verify_certs: bool = Field(
        default=True, description="Verify the TLS certificates of https hosts (ELASTIC_VERIFY_CERTS)."
    )
    ca_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the PEM CA bundle that signs the Elasticsearch certificates.",
    )
    index_shards: int | None = Field(
        default=None,
        ge=1,
        description="Primary shards per index Tracardi creates (ELASTIC_INDEX_SHARDS); Tracardi's default if unset.",
        json_schema_extra=INT32,
    )
    index_replicas: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Replica shards of each index Tracardi creates (ELASTIC_INDEX_REPLICAS); 0 on a single-node "
            "cluster keeps indices green. Tracardi's default if unset."
        ),
        json_schema_extra=INT32,
    )

    @model_validator(mode="after")
    def _one_scheme(self) -> Self:
        schemes = {host.split("://", 1)[0] for host in self.hosts}
        if len(schemes) > 1:
            raise ValueError("all hosts must use the same scheme, http:// or https://")
        return self

    @property
    def scheme(self) -> str:
        """The scheme shared by all hosts: `http` or `https`."""
        return self.hosts[0].split("://", 1)[0]


DEFAULT_REDIS_PORT = 6379
REDIS_CREDENTIALS_MESSAGE = (
    "the Redis URL must not carry credentials (user:password@host): it would be visible in every "
    "Deployment's environment; put the password in a Secret and name it in redis.passwordSecretRef"
)


class RedisSpec(CamelModel):
    """How the Tracardi API and worker reach Redis."""

    url: str = Field(
        min_length=9,
        max_length=2048,
        pattern=r"^rediss?://[^\s]+$",
        description=(
            "Redis URL, e.g. redis://redis:6379 (REDIS_HOST; its port, 6379 if omitted, also goes to "
            "REDIS_PORT). No credentials in it: the password belongs in passwordSecretRef."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [_cel("!self.contains('@')", REDIS_CREDENTIALS_MESSAGE)]
        },
    )
    password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the Redis password (REDIS_PASSWORD); omit for none."
    )

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        if "@" in url:
            raise ValueError(REDIS_CREDENTIALS_MESSAGE)
        try:
            parts.port  # noqa: B018 - parsing it is the check
        except ValueError:
            raise ValueError("the Redis URL's port must be a number from 0 to 65535") from None
        if not parts.hostname:
            raise ValueError("the Redis URL names no host, e.g. redis://redis:6379")
        return url

    @property
    def host(self) -> str:
        """REDIS_HOST: the URL as given (Celery and Tracardi 0.8.0 read host and port from it)."""
        return self.url

    @property
    def port(self) -> int:
        """REDIS_PORT: Tracardi 0.8.1 and 0.8.2.x take the port of the connection that login uses from
        this variable, not from the URL (docs/tracardi.md §6)."""
        return urllib.parse.urlsplit(self.url).port or DEFAULT_REDIS_PORT


class InstallationSpec(CamelModel):
    """The credentials a new Tracardi version is installed with."""

    admin_secret_ref: SecretRef = Field(
        description=(
            "Secret with keys `username` (an e-mail address) and `password`: the administrator created "
            "at installation, also used to log in for migrations."
        )
    )
    token_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the installation token (INSTALLATION_TOKEN) that guards POST /install."
    )


class UpgradeSpec(CamelModel):
    """How version changes are carried out."""

    allow_prerelease: bool = Field(
        default=False, description="Accept pre-release versions (-rc, -dev); refused otherwise."
    )
    strategy: Literal["Online", "Offline"] = Field(
        default="Online",
        description=(
            "Online keeps the old production API collecting events during the copy of a major upgrade "
            "(events written meanwhile are not carried over); Offline scales it to zero during the copy, "
            "so nothing is lost but collection pauses."
        ),
    )
    repair: Literal["Auto", "Off"] = Field(
        default="Auto",
        description=(
            "Auto copies what Tracardi's own 08x to 0820 migration silently skips (partitioned indices, "
            "entity, console-log) and verifies it; Off only verifies, so such an upgrade fails."
        ),
    )


class RetentionSpec(CamelModel):
    """Whether retention policies may delete this installation's old indices."""

    enabled: bool = Field(
        default=True,
        description=(
            "When false, no TracardiRetentionPolicy ever deletes an index of this installation. When "
            "true, the highest-priority policy selecting it decides; none selecting it means nothing goes."
        ),
    )


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
    key: str = Field(min_length=1, max_length=317, description="Node label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(description="How to match.")
    values: list[Annotated[str, StringConstraints(max_length=63)]] | None = Field(
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

    key: str | None = Field(default=None, max_length=317, description="Taint key; empty with Exists matches all.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Default Equal.")
    value: str | None = Field(default=None, max_length=63, description="Taint value (Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect; empty matches all."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated.", json_schema_extra=INT64
    )


class SchedulingSpec(CamelModel):
    """Where the Tracardi pods run, for every component."""

    node_selector: dict[str, Annotated[str, StringConstraints(max_length=63)]] | None = Field(
        default=None, description="Node labels a node must have."
    )
    tolerations: list[Toleration] | None = Field(default=None, max_length=32, description="Taints tolerated.")
    node_affinity: NodeAffinity | None = Field(default=None, description="Node affinity of every pod.")
    priority_class_name: str | None = Field(
        default=None, max_length=253, description="PriorityClass of every pod."
    )


class GuiSpec(CamelModel):
    """How the GUI, running in a browser, reaches the API."""

    api_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description=(
            "URL of the GUI/staging API as browsers see it (the GUI's API_URL), e.g. "
            "https://tracardi-api.example.com. Default: the API Service's in-cluster address."
        ),
    )


# Variables the operator sets itself on Tracardi containers; spec.env may not override them.
RESERVED_ENV = (
    "ELASTIC_HOST", "ELASTIC_SCHEME", "ELASTIC_HTTP_AUTH_USERNAME", "ELASTIC_HTTP_AUTH_PASSWORD",
    "ELASTIC_API_KEY_ID", "ELASTIC_API_KEY", "ELASTIC_CA_FILE", "ELASTIC_VERIFY_CERTS", "REDIS_HOST",
    "REDIS_PORT", "REDIS_PASSWORD", "PRODUCTION", "EXPOSE_GUI_API", "INSTALLATION_TOKEN", "TENANT_NAME",
    "INSTANCE_PREFIX", "API_URL",
)


class EnvVar(CamelModel):
    """One extra environment variable of the Tracardi containers."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!(self.name in [" + ", ".join(f"'{n}'" for n in RESERVED_ENV) + "])",
                    "this variable is set by the operator from the spec and cannot be overridden in env",
                    ".name",
                )
            ]
        }
    )

    name: str = Field(
        min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Variable name."
    )
    value: str = Field(max_length=4096, description="Literal value (not for secrets: it is visible in the spec).")


class TracardiInstallationSpec(CamelModel):
    """The desired state of one Tracardi installation."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.version.matches('" + TAG_REGEX + "')",
                    "version must be a Tracardi image tag such as 0.8.1, 0.8.2.1 or 0.8.2-rc2",
                    ".version",
                )
            ]
        }
    )

    version: str = Field(
        min_length=5,
        max_length=64,
        description=(
            "Tracardi image tag run by every component, e.g. 0.8.1 or 0.8.2.1. Changing it upgrades "
            "(or rolls back) the installation."
        ),
    )
    paused: bool = Field(default=False, description="Stop acting on this installation; status keeps being reported.")
    elasticsearch: ElasticsearchSpec = Field(description="The Elasticsearch cluster holding Tracardi's data.")
    redis: RedisSpec = Field(description="The Redis server used by the API and the worker.")
    installation: InstallationSpec = Field(description="Credentials used to install new versions.")
    upgrade: UpgradeSpec = _object_default("How version changes are carried out.", UpgradeSpec)
    retention: RetentionSpec = _object_default(
        "Whether retention policies may delete this installation's old indices.", RetentionSpec
    )
    images: ImagesSpec = _object_default("Where the Tracardi images come from.", ImagesSpec)
    replicas: ReplicasSpec = _object_default("Number of pods per component.", ReplicasSpec)
    resources: ResourcesSpec = _object_default("Compute resources per component.", ResourcesSpec)
    gui: GuiSpec = _object_default("How the GUI reaches the API.", GuiSpec)
    security: SecuritySpec = _object_default(
        "Security contexts of the Tracardi pods (defaults meet the baseline Pod Security Standard).", SecuritySpec
    )
    scheduling: SchedulingSpec = _object_default("Where the Tracardi pods run.", SchedulingSpec)
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=64,
        description=(
            "Extra environment of the Tracardi API and worker containers, e.g. LOGGING_LEVEL or "
            "EVENT_PARTITIONING. Connection, context and token variables come from the spec and are refused here."
        ),
    )


# ---------------------------------------------------------------------------------------------------
# Conditions (metav1.Condition)

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(CamelModel):
    """One aspect of the current state, in the shape of metav1.Condition."""

    type: str = Field(
        min_length=1, max_length=316, description="Kind of condition, e.g. Ready, Progressing, Degraded, Paused."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason for the last transition, for machines and for searching.",
    )
    message: str = Field(max_length=32768, description="What happened and what a person can do; may be empty.")
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was set for.", json_schema_extra=INT64
    )


# ---------------------------------------------------------------------------------------------------
# TracardiInstallation status

Phase = Literal["Pending", "Progressing", "Ready", "Degraded", "Blocked", "Paused"]
VersionState = Literal["Current", "Superseded", "Deleting", "Abandoned", "Deleted"]
UpgradeStep = Literal[
    "Resolving",
    "StartingCandidate",
    "Installing",
    "Migrating",
    "Verifying",
    "Repairing",
    "Switching",
    "Rolling",
    "Completed",
    "Failed",
]
TracardiContext = Literal["staging", "production"]


class VersionRecord(CamelModel):
    """A version this installation has run, identified by its database version and tenant."""

    version: str = Field(description="Image tag, e.g. 0.8.1.")
    db_version: str = Field(description="Database version the API reported, the prefix of its indices, e.g. 08x.")
    tenant: str = Field(description="Tenant the API reported, the second part of its index names, e.g. 01506.")
    state: VersionState = Field(
        description=(
            "Current (serving), Superseded (served, then replaced; indices kept, a rollback target), Deleting "
            "(retention began deleting its indices: never a rollback target again), Abandoned (installed for "
            "an upgrade that never served; its indices are garbage) or Deleted (indices gone)."
        )
    )
    installed_at: datetime | None = Field(default=None, description="When the installation was verified.")
    superseded_at: datetime | None = Field(
        default=None, description="When a newer version took over; retention ages count from here."
    )
    migrated_from: str | None = Field(default=None, description="Image tag whose data was migrated into this one.")
    migration_verified: bool | None = Field(
        default=None,
        description=(
            "Whether the migration Job proved that every document of migratedFrom arrived. Until it is "
            "true, retention never deletes the source."
        ),
    )
    deleted_names: list[str] | None = Field(
        default=None,
        description="Indices and templates retention deleted so far (state Deleting).",
        json_schema_extra={"maxItems": 2000},
    )
    deleted_at: datetime | None = Field(default=None, description="When retention deleted its indices.")


class JobRecord(CamelModel):
    """An install or migration Job of the upgrade in progress."""

    name: str = Field(description="Name of the Job, in the installation's namespace.")
    purpose: Literal["Install", "Migrate"] = Field(description="What the Job does.")
    outcome: Literal["Running", "Succeeded", "Failed"] | None = Field(
        default=None, description="Last outcome observed; recorded before anything else moves."
    )
    reason: str | None = Field(default=None, description="CamelCase reason of a failure.")
    message: str | None = Field(default=None, description="What the Job reported.")
    started_at: datetime | None = Field(default=None, description="When the Job was created.")
    finished_at: datetime | None = Field(default=None, description="When the Job finished.")


class VerifiedCount(CamelModel):
    """Documents of one migrated index, counted in its source and in its destination."""

    context: TracardiContext = Field(description="Tracardi context: staging or production.")
    resource: str = Field(description="Tracardi resource, e.g. event or profile.")
    source_index: str = Field(description="Index the documents were copied from.")
    destination_index: str = Field(description="Index the documents were copied to; one the new version reads.")
    source_count: int = Field(ge=0, description="Documents in the source.", json_schema_extra=INT64)
    destination_count: int = Field(ge=0, description="Documents in the destination.", json_schema_extra=INT64)
    ok: bool = Field(description="Whether the destination holds every source document.")


class UpgradeStatus(CamelModel):
    """The version change in progress, or the last one."""

    kind: StepKind = Field(description="Install, Rolling (same db version), Migrate or Rollback.")
    from_version: str | None = Field(default=None, description="Image tag being left; none for a first install.")
    to_version: str = Field(description="Image tag of this step.")
    from_db_version: str | None = Field(default=None, description="Database version being left.")
    to_db_version: str | None = Field(default=None, description="Database version of this step.")
    from_tenant: str | None = Field(default=None, description="Tenant of the version being left.")
    to_tenant: str | None = Field(
        default=None, description="Tenant the new version's API reported once installed (never assumed)."
    )
    merged_suffix: str | None = Field(
        default=None,
        description=(
            "Partition suffix (e.g. 2024-q1) of the single destination into which the 08x to 0820 "
            "migration merges event and profile partitions; fixed once so that a retry writes to the same index."
        ),
    )
    remaining: list[str] = Field(
        default_factory=list,
        description="Image tags still to go through after this step when a migration step was skipped.",
    )
    step: UpgradeStep = Field(description="Where the change is.")
    jobs: list[JobRecord] = Field(default_factory=list, description="Install and migration Jobs of this change.")
    verified: list[VerifiedCount] = Field(default_factory=list, description="Document counts checked per index.")
    started_at: datetime | None = Field(default=None, description="When the change started.")
    message: str | None = Field(default=None, description="What is happening, for people.")


class RetentionItem(CamelModel):
    """One entry of the deletion plan: something retention keeps or deletes, and why."""

    name: str = Field(description="A db.tenant pair for kind Version, else the exact index or template name.")
    kind: Literal["Version", "Index", "Template"] = Field(description="What the entry is.")
    action: Literal["Keep", "Delete"] = Field(description="What retention does with it.")
    reason: str = Field(description="CamelCase reason for the action, e.g. Live, RollbackTarget, TooYoung.")
    eligible_at: datetime | None = Field(default=None, description="When a kept entry becomes deletable, if ever.")
    db_version: str | None = Field(default=None, description="Database version the entry belongs to.")
    tenant: str | None = Field(default=None, description="Tenant the entry belongs to.")


class RetentionStatus(CamelModel):
    """The published deletion plan: computed, then shown here, then carried out."""

    policy: str | None = Field(
        default=None, description="Governing TracardiRetentionPolicy; none means nothing is deleted."
    )
    conflicting_policies: list[str] = Field(
        default_factory=list, description="Policies tied at the highest priority; while tied nothing is deleted."
    )
    dry_run: bool | None = Field(default=None, description="Whether the governing policy only plans.")
    computed_at: datetime | None = Field(default=None, description="When the plan was computed.")
    items: list[RetentionItem] = Field(default_factory=list, description="What is kept and what is deleted.")
    snapshot: str | None = Field(default=None, description="Snapshot taken before the last deletion.")
    deleted_indices: int | None = Field(
        default=None, ge=0, description="Indices deleted by the last run.", json_schema_extra=INT64
    )
    last_run_at: datetime | None = Field(default=None, description="When deletions last ran.")
    message: str | None = Field(default=None, description="Summary for people.")


class HeadroomStatus(CamelModel):
    """Shards in use against the Elasticsearch cluster's limit."""

    shards_used: int = Field(ge=0, description="Open shards in the cluster.", json_schema_extra=INT64)
    shard_limit: int = Field(ge=0, description="cluster.max_shards_per_node times data nodes.", json_schema_extra=INT64)
    used_percent: int = Field(ge=0, description="shardsUsed as a percentage of shardLimit.", json_schema_extra=INT32)
    reclaimable_shards: int | None = Field(
        default=None,
        ge=0,
        description="Shards retention could free under the governing policy.",
        json_schema_extra=INT64,
    )
    checked_at: datetime | None = Field(default=None, description="When the counts were read.")


class TracardiInstallationStatus(CamelModel):
    """The observed state of a Tracardi installation, written only by the operator."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation last acted on.", json_schema_extra=INT64
    )
    phase: Phase | None = Field(default=None, description="Summary for people; the conditions are the contract.")
    current_version: str | None = Field(default=None, description="Image tag that is running and serving.")
    target_version: str | None = Field(default=None, description="Image tag being moved to.")
    versions: list[VersionRecord] = Field(
        default_factory=list, description="Every version this installation has run, newest last."
    )
    upgrade: UpgradeStatus | None = Field(default=None, description="The version change in progress, or the last one.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Progressing, Degraded, Paused and others.",
        json_schema_extra=CONDITIONS_LIST,
    )
    retention: RetentionStatus | None = Field(default=None, description="The deletion plan of old indices.")
    headroom: HeadroomStatus | None = Field(default=None, description="Shards in use against the cluster limit.")
    elasticsearch_cluster: str | None = Field(
        default=None,
        description=(
            "The cluster_uuid the Elasticsearch cluster reports (GET /): installations are on the same "
            "cluster when these are equal, however their hosts are spelled."
        ),
    )
    handled_retry: str | None = Field(
        default=None, description="Value of the tracardi.com/retry annotation last acted on."
    )


# ---------------------------------------------------------------------------------------------------
# TracardiRetentionPolicy


# Kubernetes label keys ([prefix/]name) and values; written without backslashes (kept out of CEL rules).
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]


class LabelSelectorRequirement(CamelModel):
    """One expression of a label selector, as in metav1.LabelSelectorRequirement."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                    " : (!has(self.values) || size(self.values) == 0)",
                    "In and NotIn need values; Exists and DoesNotExist take none",
                )
            ]
        }
    )

    key: LabelKey = Field(description="Label key the expression applies to, e.g. tracardi.com/retention.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="How the key relates to values.")
    values: list[LabelValue] | None = Field(
        default=None, max_length=64, description="Values for In and NotIn; empty otherwise."
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> Self:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs values")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy this expression."""
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        inside = present and labels[self.key] in (self.values or [])
        return inside if self.operator == "In" else not inside


class LabelSelector(CamelModel):
    """A label query, as in metav1.LabelSelector: all of its terms must hold; an empty one matches all."""

    match_labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        description="Labels that must have these values.",
        json_schema_extra={
            "maxProperties": 64,
            "x-kubernetes-validations": [
                _cel(f"self.all(k, k.matches('{LABEL_KEY_PATTERN}'))",
                     "every key must be a label key: [prefix/]name, e.g. tracardi.com/retention")
            ],
        },
    )

    @field_validator("match_labels")
    @classmethod
    def _label_keys(cls, labels: dict[str, str]) -> dict[str, str]:
        bad = [key for key in labels if len(key) > 317 or not re.match(LABEL_KEY_PATTERN, key)]
        if bad:
            raise ValueError(f"not a label key: {bad[0]!r} (expected [prefix/]name, e.g. tracardi.com/retention)")
        return labels
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, description="Expressions that must all hold."
    )

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with `labels` is selected."""
        return all(labels.get(key) == value for key, value in self.match_labels.items()) and all(
            expression.matches(labels) for expression in self.match_expressions
        )


class SnapshotSpec(CamelModel):
    """Where indices are snapshotted before they are deleted."""

    repository: str = Field(
        min_length=1, max_length=255, description="Elasticsearch snapshot repository, registered beforehand."
    )


class TracardiRetentionPolicySpec(CamelModel):
    """Which installations a policy governs, and which of their superseded versions' indices may go."""

    namespace_selector: LabelSelector | None = Field(
        default=None, description="Namespaces whose installations are governed, by namespace labels; omitted: all."
    )
    selector: LabelSelector | None = Field(
        default=None, description="Installations governed, by their labels; omitted: all in selected namespaces."
    )
    priority: int = Field(
        default=0,
        description="When several policies select an installation the highest wins; a tie means none applies.",
        json_schema_extra=INT32,
    )
    keep_superseded_versions: int = Field(
        default=1,
        ge=0,
        description="Newest superseded versions kept as rollback targets whatever their age.",
        json_schema_extra=INT32,
    )
    min_age_after_superseded: Duration = Field(
        default="168h",
        description="How long after being superseded a version's indices are kept at least (Go duration, e.g. 168h).",
    )
    dry_run: bool = Field(default=False, description="Publish the deletion plan but delete nothing.")
    snapshot: SnapshotSpec | None = Field(
        default=None, description="Snapshot the indices into this repository before deleting them."
    )
    max_deletions_per_run: int | None = Field(
        default=None,
        ge=1,
        description="At most this many indices deleted per run; all eligible if unset.",
        json_schema_extra=INT32,
    )

    @property
    def min_age(self) -> timedelta:
        """minAgeAfterSuperseded as a timedelta."""
        return parse_duration(self.min_age_after_superseded)


class GovernedInstallation(CamelModel):
    """An installation a policy governs."""

    namespace: str = Field(description="Namespace of the installation.")
    name: str = Field(description="Name of the installation.")


class TracardiRetentionPolicyStatus(CamelModel):
    """The observed state of a retention policy, written only by the operator."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation last acted on.", json_schema_extra=INT64
    )
    governed: list[GovernedInstallation] = Field(
        default_factory=list, description="Installations this policy governs (selected, enabled and not outranked)."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Conditions of the policy.", json_schema_extra=CONDITIONS_LIST
    )


# ---------------------------------------------------------------------------------------------------
# Whole objects, as handlers receive them


class ObjectMeta(CamelModel):
    """The part of metav1.ObjectMeta the operator reads."""

    name: str = Field(description="Name of the object.")
    namespace: str | None = Field(default=None, description="Namespace; none for cluster-scoped objects.")
    uid: str = Field(default="", description="Unique id, for owner references.")
    generation: int = Field(default=0, description="Generation of the spec.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")


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


# ---------------------------------------------------------------------------------------------------
# Identity of the two kinds, shared by crdgen and the handlers


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
