"""The desired state of a TracardiInstallation (`TracardiInstallationSpec`) and its smaller sections:
installation credentials, upgrade and retention switches, the GUI's API address and extra environment.
Connections live in `backends`, pod settings in `workloads`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from tracardi_operator.models.backends import ElasticsearchSpec, RedisSpec
from tracardi_operator.models.common import CamelModel, SecretKeyRef, SecretRef, cel_rule, object_default
from tracardi_operator.models.workloads import ImagesSpec, ReplicasSpec, ResourcesSpec, SchedulingSpec, SecuritySpec
from tracardi_operator.versions import TAG_REGEX


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
                cel_rule(
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
                cel_rule(
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
    upgrade: UpgradeSpec = object_default("How version changes are carried out.", UpgradeSpec)
    retention: RetentionSpec = object_default(
        "Whether retention policies may delete this installation's old indices.", RetentionSpec
    )
    images: ImagesSpec = object_default("Where the Tracardi images come from.", ImagesSpec)
    replicas: ReplicasSpec = object_default("Number of pods per component.", ReplicasSpec)
    resources: ResourcesSpec = object_default("Compute resources per component.", ResourcesSpec)
    gui: GuiSpec = object_default("How the GUI reaches the API.", GuiSpec)
    security: SecuritySpec = object_default(
        "Security contexts of the Tracardi pods (defaults meet the baseline Pod Security Standard).", SecuritySpec
    )
    scheduling: SchedulingSpec = object_default("Where the Tracardi pods run.", SchedulingSpec)
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=64,
        description=(
            "Extra environment of the Tracardi API and worker containers, e.g. LOGGING_LEVEL or "
            "EVENT_PARTITIONING. Connection, context and token variables come from the spec and are refused here."
        ),
    )
