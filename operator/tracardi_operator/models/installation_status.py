"""The observed state of a TracardiInstallation (`TracardiInstallationStatus`), written only by the
operator: the versions it has run, the upgrade in progress with its Jobs and verified counts, the
retention plan and the shard headroom.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from tracardi_operator.models.common import CONDITIONS_LIST, INT32, INT64, CamelModel, Condition
from tracardi_operator.versions import StepKind

Phase = Literal["Pending", "Progressing", "Ready", "Degraded", "Blocked", "Paused"]


class VersionState(StrEnum):
    """The state of a version an installation has run (status.versions[].state)."""

    CURRENT = "Current"  # serving
    SUPERSEDED = "Superseded"  # served production, then replaced: a rollback target while kept
    DELETING = "Deleting"  # a deletion run began: never a rollback target again
    ABANDONED = "Abandoned"  # installed for an upgrade that never served production: garbage
    DELETED = "Deleted"  # its indices are gone

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
