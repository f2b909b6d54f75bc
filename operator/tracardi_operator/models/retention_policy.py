"""The TracardiRetentionPolicy's spec and status: which installations a policy governs and which of
their superseded versions' indices may be deleted, and when.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from tracardi_operator.models.common import (
    CONDITIONS_LIST,
    INT32,
    INT64,
    CamelModel,
    Condition,
    Duration,
    parse_duration,
)
from tracardi_operator.models.selectors import LabelSelector


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
