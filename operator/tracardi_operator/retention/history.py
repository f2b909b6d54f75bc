"""What retention reads of an installation: the versions it has run (pure).

What lives here:
- `HistoryEntry`: one version of status.versions as the planner reads it, and `history_of`, which reads it.
- `RetentionRules` and `RetentionPolicy`: what a TracardiRetentionPolicy allows, and whom it selects.
- `RECLAIMABLE_STATES` and `STATE_PRECEDENCE`: which version states retention may reclaim, and which
  state wins when several image tags share one (db version, tenant) pair.

The states themselves are `models.VersionState`, the one definition the CRD and the planner share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tracardi_operator.indices import VersionId
from tracardi_operator.models import LabelSelector, TracardiInstallation, VersionState

# States whose indices retention may reclaim; only SUPERSEDED ones are rollback targets, so only they
# take a keepSupersededVersions slot.
RECLAIMABLE_STATES = frozenset({VersionState.SUPERSEDED, VersionState.DELETING, VersionState.ABANDONED})
# Precedence when several entries (image tags) share a pair: the most protective state wins.
STATE_PRECEDENCE = (VersionState.CURRENT, VersionState.SUPERSEDED, VersionState.DELETING, VersionState.ABANDONED)


@dataclass(frozen=True)
class HistoryEntry:
    """One version the installation has run (status.versions; the list is kept newest last)."""

    version: str
    db: str
    tenant: str
    state: VersionState
    superseded_at: datetime | None = None
    # The image tag this version was migrated from, and whether that migration was verified
    # (document counts checked). Until it is, the source's indices are the only good copy.
    migrated_from: str | None = None
    migration_verified: bool = False

    @property
    def pair(self) -> VersionId:
        return VersionId(db=self.db, tenant=self.tenant)


@dataclass(frozen=True)
class RetentionRules:
    keep_superseded_versions: int = 1
    min_age_after_superseded: timedelta = timedelta(hours=168)
    dry_run: bool = False
    max_deletions_per_run: int | None = None


@dataclass(frozen=True)
class RetentionPolicy:
    name: str
    priority: int = 0
    # None selects everything, as an empty selector does (models.LabelSelector.matches decides).
    namespace_selector: LabelSelector | None = None
    selector: LabelSelector | None = None
    rules: RetentionRules = field(default_factory=RetentionRules)


def history_of(inst: TracardiInstallation) -> list[HistoryEntry]:
    """status.versions as the planner reads it. A migration counts as verified only when the switch
    recorded the migration Job's verification (migrationVerified); a record without it keeps its
    source (fail closed)."""
    return [
        HistoryEntry(
            version=r.version, db=r.db_version, tenant=r.tenant, state=VersionState(r.state),
            superseded_at=r.superseded_at, migrated_from=r.migrated_from,
            migration_verified=r.migration_verified is True,
        )
        for r in inst.status.versions
    ]
