"""The retention plan of one installation (pure: plain data in, plain data out; no I/O).

`plan_retention` decides per superseded (db, tenant) pair keep or delete with a reason, and lists the
exact index and template names to delete, batched for URL length and capped per run. Every plan leaves
through `safety.enforce_safety`, a separate filter that re-checks the rules of docs/tracardi.md §7 name
by name, so that a mistake here cannot delete what must be kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from tracardi_operator.indices import Inventory, VersionId, live_aliases
from tracardi_operator.models import VersionState
from tracardi_operator.retention.decisions import Action, KeepReason, KeptName, NameKind, PairDecision, RetentionPlan
from tracardi_operator.retention.history import RECLAIMABLE_STATES, STATE_PRECEDENCE, HistoryEntry, RetentionRules
from tracardi_operator.retention.safety import (
    DEFAULT_URL_BYTE_LIMIT,
    REQUEST_LINE_RESERVE,
    SafetyGuard,
    batch_names,
    enforce_safety,
    path_bytes,
)
from tracardi_operator.retention.selection import PolicySelection, SelectionOutcome


@dataclass(frozen=True)
class _PairHistory:
    pair: VersionId
    versions: tuple[str, ...]
    state: VersionState
    superseded_at: datetime | None
    position: int  # index of the pair's newest entry in the history (newest last)


def _pair_histories(history: Sequence[HistoryEntry]) -> list[_PairHistory]:
    """Group entries by pair: several image tags (0.8.2, 0.8.2.1) share one database version."""
    grouped: dict[VersionId, list[tuple[int, HistoryEntry]]] = {}
    for position, entry in enumerate(history):
        grouped.setdefault(entry.pair, []).append((position, entry))
    result = []
    for pair, entries in grouped.items():
        states = {entry.state for _, entry in entries}
        state = next((candidate for candidate in STATE_PRECEDENCE if candidate in states), VersionState.DELETED)
        newest_position, newest = entries[-1]
        result.append(
            _PairHistory(
                pair=pair,
                versions=tuple(entry.version for _, entry in entries),
                state=state,
                superseded_at=newest.superseded_at,
                position=newest_position,
            )
        )
    return result


def _unverified_sources(history: Sequence[HistoryEntry]) -> frozenset[VersionId]:
    """Pairs that an unverified migration copied from. `migratedFrom` may name a tag or a db."""
    sources = {e.migrated_from for e in history if e.migrated_from and not e.migration_verified}
    return frozenset(entry.pair for entry in history if entry.version in sources or entry.db in sources)


def plan_retention(
    history: Sequence[HistoryEntry],
    inventory: Inventory,
    *,
    policy: PolicySelection,
    retention_enabled: bool,
    cluster_live_versions: Iterable[VersionId],
    now: datetime,
    url_byte_limit: int = DEFAULT_URL_BYTE_LIMIT,
) -> RetentionPlan:
    """Decide what of this installation's superseded versions goes, and list it by exact names.

    `cluster_live_versions` are the live pairs of every installation sharing this Elasticsearch
    cluster (this one's included). `now` and every `superseded_at` must be timezone-aware.
    """
    live = frozenset(cluster_live_versions) | {e.pair for e in history if e.state is VersionState.CURRENT}
    rules = policy.policy.rules if policy.outcome is SelectionOutcome.GOVERNED and policy.policy else None
    pairs = _pair_histories(history)
    decisions = _decide_pairs(pairs, inventory, policy, rules, retention_enabled, live, history, now)
    candidate = _candidate_plan(pairs, decisions, inventory, policy, rules, live, url_byte_limit)
    guard = SafetyGuard.build(
        history,
        inventory,
        policy=policy,
        retention_enabled=retention_enabled,
        cluster_live_versions=live,
        now=now,
        url_byte_limit=url_byte_limit,
    )
    return enforce_safety(candidate, guard)


def _decide_pairs(
    pairs: list[_PairHistory],
    inventory: Inventory,
    policy: PolicySelection,
    rules: RetentionRules | None,
    retention_enabled: bool,
    live: frozenset[VersionId],
    history: Sequence[HistoryEntry],
    now: datetime,
) -> dict[VersionId, PairDecision]:
    superseded = sorted(
        (p for p in pairs if p.state in RECLAIMABLE_STATES), key=lambda p: p.position, reverse=True
    )
    # The rollback window counts only superseded pairs that are not live: a pair still live (for
    # another installation on the cluster) is kept as LivePair anyway and must not take a slot, or
    # the next older pair, the one actually left for rollback, would be deleted (as SafetyGuard says).
    # A version that never served (Abandoned) or is half deleted (Deleting) is no rollback target.
    rollback_candidates = [p for p in superseded if p.pair not in live and p.state is VersionState.SUPERSEDED]
    rollback_kept = {p.pair for p in rollback_candidates[: rules.keep_superseded_versions if rules else 0]}
    unverified = _unverified_sources(history)
    records = inventory.by_name()
    pinned_by_alias = {
        record.owner
        for alias in live_aliases(inventory, live)
        for record in (records.get(index) for index in alias.indices)
        if record is not None and record.owner is not None
    }
    decisions = {}
    for pair_history in superseded:
        pair = pair_history.pair
        eligible_at = (
            pair_history.superseded_at + rules.min_age_after_superseded
            if rules is not None and pair_history.superseded_at is not None
            else None
        )
        if not retention_enabled:
            reason = KeepReason.RETENTION_DISABLED
        elif policy.outcome is SelectionOutcome.POLICY_TIE:
            reason = KeepReason.POLICY_TIE
        elif rules is None:
            reason = KeepReason.NO_POLICY
        elif pair in live:
            reason = KeepReason.LIVE_PAIR
        elif pair in unverified:
            reason = KeepReason.UNVERIFIED_MIGRATION_SOURCE
        elif pair in rollback_kept:
            reason = KeepReason.RETAINED_FOR_ROLLBACK
        elif eligible_at is None:
            reason = KeepReason.SUPERSEDED_AT_UNKNOWN
        elif now < eligible_at:
            reason = KeepReason.TOO_RECENT
        elif pair in pinned_by_alias:
            # One index still read through a live alias implicates the whole version: most likely
            # tenants collide and the live version has not let go of it.
            reason = KeepReason.ALIASED_BY_LIVE
        else:
            reason = KeepReason.ELIGIBLE
        decisions[pair] = PairDecision(
            pair=pair,
            versions=pair_history.versions,
            action=Action.DELETE if reason is KeepReason.ELIGIBLE else Action.KEEP,
            reason=reason,
            superseded_at=pair_history.superseded_at,
            eligible_at=eligible_at,
        )
    return decisions


@dataclass(frozen=True)
class _NameRules:
    """Why a name of a pair stays: the pair's own decision, or what the pair is to this installation."""

    by_pair: Mapping[VersionId, _PairHistory]
    decisions: Mapping[VersionId, PairDecision]
    live: frozenset[VersionId]
    history_tenants: frozenset[str]

    def reason(self, owner: VersionId | None) -> KeepReason | None:
        """The reason a name of `owner` stays, or None when its pair is being deleted."""
        if owner is None:
            return KeepReason.FOREIGN
        if owner in self.live:
            return KeepReason.LIVE_PAIR
        if owner not in self.by_pair:
            return KeepReason.NOT_IN_HISTORY if owner.tenant in self.history_tenants else KeepReason.OTHER_TENANT
        if self.by_pair[owner].state is VersionState.DELETED:
            return KeepReason.ALREADY_DELETED
        decision = self.decisions[owner]
        return None if decision.action is Action.DELETE else decision.reason


def _candidate_plan(
    pairs: list[_PairHistory],
    decisions: dict[VersionId, PairDecision],
    inventory: Inventory,
    policy: PolicySelection,
    rules: RetentionRules | None,
    live: frozenset[VersionId],
    url_byte_limit: int,
) -> RetentionPlan:
    by_pair = {p.pair: p for p in pairs}
    names = _NameRules(by_pair, decisions, live, frozenset(p.tenant for p in by_pair))
    kept: list[KeptName] = []

    doomed_indices: dict[VersionId, list[str]] = {}
    for record in inventory.indices:
        reason = names.reason(record.owner)
        if reason is None and record.owner is not None:
            if path_bytes([record.name]) > url_byte_limit - REQUEST_LINE_RESERVE:
                reason = KeepReason.NAME_TOO_LONG
            else:
                doomed_indices.setdefault(record.owner, []).append(record.name)
                continue
        detail = record.foreign_reason.value if record.foreign_reason else None
        kept.append(KeptName(record.name, NameKind.INDEX, reason or KeepReason.FOREIGN, detail))

    doomed_templates: dict[VersionId, list[str]] = {}
    for template in inventory.templates:
        reason = names.reason(template.owner)
        if reason is None and template.owner is not None:
            doomed_templates.setdefault(template.owner, []).append(template.name)
            continue
        detail = template.foreign_reason.value if template.foreign_reason else None
        kept.append(KeptName(template.name, NameKind.TEMPLATE, reason or KeepReason.FOREIGN, detail))

    order = sorted(set(doomed_indices) | set(doomed_templates), key=lambda p: by_pair[p].position)
    budget = rules.max_deletions_per_run if rules and rules.max_deletions_per_run is not None else None
    indices, templates, deferred = _capped(order, doomed_indices, doomed_templates, budget)
    kept.extend(deferred)
    return RetentionPlan(
        policy=policy.policy.name if policy.policy else None,
        dry_run=rules.dry_run if rules else False,
        decisions=tuple(decisions.values()),
        index_batches=batch_names(indices, url_byte_limit),
        templates=tuple(templates),
        kept=tuple(kept),
        shards_freed=0,  # computed from the final lists by enforce_safety
    )


def _capped(
    order: Sequence[VersionId],
    doomed_indices: Mapping[VersionId, Sequence[str]],
    doomed_templates: Mapping[VersionId, Sequence[str]],
    budget: int | None,
) -> tuple[list[str], list[str], list[KeptName]]:
    """The indices and templates this run deletes within `budget` (None: no cap), and those it defers.

    Oldest versions first; a pair's templates go only once all its indices fit in this run, so that a
    capped run never leaves indices whose template is already gone.
    """
    indices: list[str] = []
    templates: list[str] = []
    deferred_names: list[KeptName] = []
    for pair in order:
        pair_indices = sorted(doomed_indices.get(pair, []))
        pair_templates = sorted(doomed_templates.get(pair, []))
        room = len(pair_indices) if budget is None else max(0, min(budget, len(pair_indices)))
        indices.extend(pair_indices[:room])
        deferred = pair_indices[room:]
        if budget is not None:
            budget -= room
        if not deferred:
            t_room = len(pair_templates) if budget is None else max(0, min(budget, len(pair_templates)))
            templates.extend(pair_templates[:t_room])
            if budget is not None:
                budget -= t_room
            deferred_templates = pair_templates[t_room:]
        else:
            deferred_templates = pair_templates
        deferred_names.extend(KeptName(n, NameKind.INDEX, KeepReason.DEFERRED_BY_LIMIT) for n in deferred)
        deferred_names.extend(KeptName(n, NameKind.TEMPLATE, KeepReason.DEFERRED_BY_LIMIT) for n in deferred_templates)
    return indices, templates, deferred_names
