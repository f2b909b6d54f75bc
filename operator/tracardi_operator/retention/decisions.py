"""What a retention plan says (pure data): per (db version, tenant) pair keep or delete and why, the
exact names to delete in request-sized batches, the names kept and why, and what the safety filter refused.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tracardi_operator.indices import VersionId


class KeepReason(StrEnum):
    """Why a pair or a name is kept, or `Eligible` when it goes: the reasons of status.retention items.

    Condition and Event reasons are `tracardi_operator.reasons.Reason`.
    """

    RETENTION_DISABLED = "RetentionDisabled"
    NO_POLICY = "NoPolicy"
    POLICY_TIE = "PolicyTie"
    LIVE_PAIR = "LivePair"
    UNVERIFIED_MIGRATION_SOURCE = "UnverifiedMigrationSource"
    RETAINED_FOR_ROLLBACK = "RetainedForRollback"
    SUPERSEDED_AT_UNKNOWN = "SupersededAtUnknown"
    TOO_RECENT = "TooRecent"
    ALIASED_BY_LIVE = "AliasedByLive"
    ELIGIBLE = "Eligible"
    # Name-level reasons.
    FOREIGN = "Foreign"
    OTHER_TENANT = "OtherTenant"
    NOT_IN_HISTORY = "NotInHistory"
    ALREADY_DELETED = "AlreadyDeleted"
    DEFERRED_BY_LIMIT = "DeferredByLimit"
    NAME_TOO_LONG = "NameTooLong"
    BLOCKED_BY_SAFETY_FILTER = "BlockedBySafetyFilter"


class Action(StrEnum):
    KEEP = "keep"
    DELETE = "delete"


class NameKind(StrEnum):
    INDEX = "index"
    TEMPLATE = "template"


@dataclass(frozen=True)
class PairDecision:
    pair: VersionId
    versions: tuple[str, ...]
    action: Action
    reason: KeepReason
    superseded_at: datetime | None
    # The earliest time the age rule allows deletion (other reasons may still keep the pair).
    eligible_at: datetime | None
    indices_planned: int = 0
    templates_planned: int = 0
    shards_freed: int = 0
    # Names of the pair still in the inventory that this run leaves (0 means: gone after this run).
    remaining_after_run: int = 0


@dataclass(frozen=True)
class KeptName:
    name: str
    kind: NameKind
    reason: KeepReason
    detail: str | None = None


@dataclass(frozen=True)
class SafetyViolation:
    """A name the selection planned but the safety filter refused: always a bug worth reporting."""

    name: str
    kind: NameKind
    rule: str


@dataclass(frozen=True)
class RetentionPlan:
    policy: str | None
    dry_run: bool
    decisions: tuple[PairDecision, ...]
    index_batches: tuple[tuple[str, ...], ...]
    templates: tuple[str, ...]
    kept: tuple[KeptName, ...]
    shards_freed: int
    safety_violations: tuple[SafetyViolation, ...] = ()

    @property
    def indices(self) -> tuple[str, ...]:
        return tuple(name for batch in self.index_batches for name in batch)

    @property
    def deletion_count(self) -> int:
        return len(self.indices) + len(self.templates)

    @property
    def executable_index_batches(self) -> tuple[tuple[str, ...], ...]:
        """What the act step may delete: nothing on a dry run."""
        return () if self.dry_run else self.index_batches

    @property
    def executable_templates(self) -> tuple[str, ...]:
        return () if self.dry_run else self.templates

    def kept_summary(self) -> dict[str, int]:
        return dict(Counter(kept.reason.value for kept in self.kept))
