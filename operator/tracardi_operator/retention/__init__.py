"""The index retention decisions (pure: plain data in, plain data out; no I/O).

What lives here:
- `select_policy`: which TracardiRetentionPolicy governs an installation (LabelSelector semantics;
  the highest priority wins; a tie at the top means none does).
- `plan_retention`: per superseded (db, tenant) pair keep or delete with a reason, and the exact index
  and template names to delete, batched for URL length and capped per run. Every plan leaves through
  `enforce_safety`, a separate filter that re-checks the rules of docs/tracardi.md §7 name by name,
  so that a mistake in the selection cannot delete what must be kept.
- `headroom`: shard usage against cluster.max_shards_per_node (a module of its own).
- `status`: what a run writes into the installation's status (a module of its own).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import quote

from tracardi_operator.indices import Inventory, VersionId, live_aliases

# Elasticsearch refuses a request line longer than http.max_initial_line_length (default 4kb). The
# comma-joined names of a DELETE share that line with the method, the query string and the protocol,
# for which REQUEST_LINE_RESERVE bytes are set aside.
DEFAULT_URL_BYTE_LIMIT = 4096
REQUEST_LINE_RESERVE = 128

# Characters and leading characters that make a name an expression rather than one exact index.
_WILDCARD_CHARACTERS = frozenset("*?,")
_FORBIDDEN_LEADING = ("-", "_", "+")


class VersionState(StrEnum):
    CURRENT = "Current"
    SUPERSEDED = "Superseded"  # served production, then replaced: a rollback target while kept
    DELETING = "Deleting"  # a deletion run began: never a rollback target again
    ABANDONED = "Abandoned"  # installed for an upgrade that never served production: garbage
    DELETED = "Deleted"


# States whose indices retention may reclaim; only SUPERSEDED ones are rollback targets, so only they
# take a keepSupersededVersions slot.
RECLAIMABLE_STATES = frozenset({VersionState.SUPERSEDED, VersionState.DELETING, VersionState.ABANDONED})
# Precedence when several entries (image tags) share a pair: the most protective state wins.
_STATE_PRECEDENCE = (VersionState.CURRENT, VersionState.SUPERSEDED, VersionState.DELETING, VersionState.ABANDONED)


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


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class SelectorRequirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    """Kubernetes LabelSelector: every matchLabels pair and every requirement must hold."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[SelectorRequirement, ...] = ()


@dataclass(frozen=True)
class RetentionPolicy:
    name: str
    priority: int = 0
    # None selects everything, as an empty selector does.
    namespace_selector: LabelSelector | None = None
    selector: LabelSelector | None = None
    rules: RetentionRules = field(default_factory=RetentionRules)


class SelectionOutcome(StrEnum):
    GOVERNED = "Governed"
    NO_POLICY = "NoPolicy"
    POLICY_TIE = "PolicyTie"


@dataclass(frozen=True)
class PolicySelection:
    outcome: SelectionOutcome
    policy: RetentionPolicy | None = None
    tied: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        if self.outcome is SelectionOutcome.GOVERNED and self.policy is not None:
            return f"governed by {self.policy.name}"
        if self.outcome is SelectionOutcome.POLICY_TIE:
            return f"tie between {' and '.join(self.tied)}: no policy applies"
        return "no retention policy selects this installation"


class Reason(StrEnum):
    """Why a pair or a name is kept, or `Eligible` when it goes. Also the status/condition reasons."""

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
    reason: Reason
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
    reason: Reason
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


# --------------------------------------------------------------------------------------------------
# Policy selection


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return True
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    return all(_requirement_holds(req, labels) for req in selector.match_expressions)


def _requirement_holds(requirement: SelectorRequirement, labels: Mapping[str, str]) -> bool:
    # An invalid requirement (as the API server would reject it) selects nothing: a policy that
    # cannot be read must not start deleting.
    present = requirement.key in labels
    if requirement.operator == SelectorOperator.IN:
        return bool(requirement.values) and present and labels[requirement.key] in requirement.values
    if requirement.operator == SelectorOperator.NOT_IN:
        return bool(requirement.values) and (not present or labels[requirement.key] not in requirement.values)
    if requirement.operator == SelectorOperator.EXISTS:
        return not requirement.values and present
    if requirement.operator == SelectorOperator.DOES_NOT_EXIST:
        return not requirement.values and not present
    return False


def select_policy(
    policies: Iterable[RetentionPolicy],
    namespace_labels: Mapping[str, str],
    installation_labels: Mapping[str, str],
) -> PolicySelection:
    matching = [
        policy
        for policy in policies
        if selector_matches(policy.namespace_selector, namespace_labels)
        and selector_matches(policy.selector, installation_labels)
    ]
    if not matching:
        return PolicySelection(SelectionOutcome.NO_POLICY)
    top = max(policy.priority for policy in matching)
    winners = sorted((p for p in matching if p.priority == top), key=lambda p: p.name)
    if len(winners) > 1:
        return PolicySelection(SelectionOutcome.POLICY_TIE, tied=tuple(p.name for p in winners))
    return PolicySelection(SelectionOutcome.GOVERNED, policy=winners[0])


# --------------------------------------------------------------------------------------------------
# The history, read per (db, tenant) pair


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
        state = next((candidate for candidate in _STATE_PRECEDENCE if candidate in states), VersionState.DELETED)
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


# --------------------------------------------------------------------------------------------------
# The plan


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
            reason = Reason.RETENTION_DISABLED
        elif policy.outcome is SelectionOutcome.POLICY_TIE:
            reason = Reason.POLICY_TIE
        elif rules is None:
            reason = Reason.NO_POLICY
        elif pair in live:
            reason = Reason.LIVE_PAIR
        elif pair in unverified:
            reason = Reason.UNVERIFIED_MIGRATION_SOURCE
        elif pair in rollback_kept:
            reason = Reason.RETAINED_FOR_ROLLBACK
        elif eligible_at is None:
            reason = Reason.SUPERSEDED_AT_UNKNOWN
        elif now < eligible_at:
            reason = Reason.TOO_RECENT
        elif pair in pinned_by_alias:
            # One index still read through a live alias implicates the whole version: most likely
            # tenants collide and the live version has not let go of it.
            reason = Reason.ALIASED_BY_LIVE
        else:
            reason = Reason.ELIGIBLE
        decisions[pair] = PairDecision(
            pair=pair,
            versions=pair_history.versions,
            action=Action.DELETE if reason is Reason.ELIGIBLE else Action.KEEP,
            reason=reason,
            superseded_at=pair_history.superseded_at,
            eligible_at=eligible_at,
        )
    return decisions


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
    history_tenants = {p.tenant for p in by_pair}
    kept: list[KeptName] = []

    def name_level_reason(owner: VersionId | None) -> Reason | None:
        """The reason a name of `owner` stays, or None when its pair is being deleted."""
        if owner is None:
            return Reason.FOREIGN
        if owner in live:
            return Reason.LIVE_PAIR
        if owner not in by_pair:
            return Reason.NOT_IN_HISTORY if owner.tenant in history_tenants else Reason.OTHER_TENANT
        if by_pair[owner].state is VersionState.DELETED:
            return Reason.ALREADY_DELETED
        decision = decisions[owner]
        return None if decision.action is Action.DELETE else decision.reason

    doomed_indices: dict[VersionId, list[str]] = {}
    for record in inventory.indices:
        reason = name_level_reason(record.owner)
        if reason is None and record.owner is not None:
            if _path_bytes([record.name]) > url_byte_limit - REQUEST_LINE_RESERVE:
                reason = Reason.NAME_TOO_LONG
            else:
                doomed_indices.setdefault(record.owner, []).append(record.name)
                continue
        detail = record.foreign_reason.value if record.foreign_reason else None
        kept.append(KeptName(record.name, NameKind.INDEX, reason or Reason.FOREIGN, detail))

    doomed_templates: dict[VersionId, list[str]] = {}
    for template in inventory.templates:
        reason = name_level_reason(template.owner)
        if reason is None and template.owner is not None:
            doomed_templates.setdefault(template.owner, []).append(template.name)
            continue
        detail = template.foreign_reason.value if template.foreign_reason else None
        kept.append(KeptName(template.name, NameKind.TEMPLATE, reason or Reason.FOREIGN, detail))

    # Oldest versions first; a pair's templates go only once all its indices fit in this run, so
    # that a capped run never leaves indices whose template is already gone.
    budget = rules.max_deletions_per_run if rules and rules.max_deletions_per_run is not None else None
    indices: list[str] = []
    templates: list[str] = []
    for pair in sorted(set(doomed_indices) | set(doomed_templates), key=lambda p: by_pair[p].position):
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
        kept.extend(KeptName(n, NameKind.INDEX, Reason.DEFERRED_BY_LIMIT) for n in deferred)
        kept.extend(KeptName(n, NameKind.TEMPLATE, Reason.DEFERRED_BY_LIMIT) for n in deferred_templates)

    return RetentionPlan(
        policy=policy.policy.name if policy.policy else None,
        dry_run=rules.dry_run if rules else False,
        decisions=tuple(decisions.values()),
        index_batches=batch_names(indices, url_byte_limit),
        templates=tuple(templates),
        kept=tuple(kept),
        shards_freed=0,  # computed from the final lists by enforce_safety
    )


def _path_bytes(names: Sequence[str]) -> int:
    """Bytes of `/<name>,<name>...` as the client sends it (everything but the comma escaped)."""
    return 1 + sum(len(quote(name, safe="")) for name in names) + max(0, len(names) - 1)


def batch_names(names: Sequence[str], url_byte_limit: int = DEFAULT_URL_BYTE_LIMIT) -> tuple[tuple[str, ...], ...]:
    """Split names, in order, into comma-joined DELETE paths that fit the request line."""
    budget = url_byte_limit - REQUEST_LINE_RESERVE
    batches: list[tuple[str, ...]] = []
    current: list[str] = []
    used = 0  # _path_bytes(current), kept as a running sum: linear in the number of names
    for name in names:
        size = len(quote(name, safe=""))
        if current and used + 1 + size > budget:
            batches.append(tuple(current))
            current = []
        used = used + 1 + size if current else 1 + size
        current.append(name)
    if current:
        batches.append(tuple(current))
    return tuple(batches)


def batch_path_bytes(batch: Sequence[str]) -> int:
    """What one batch adds to the request line, for callers and tests that check the limit."""
    return _path_bytes(batch) + REQUEST_LINE_RESERVE


# --------------------------------------------------------------------------------------------------
# The safety filter (defence in depth)


def is_exact_name(name: str) -> bool:
    """True for a name Elasticsearch can only read as one concrete index or template."""
    return (
        bool(name)
        and not name.startswith(_FORBIDDEN_LEADING)
        and not name.startswith(".")
        and not any(ch in _WILDCARD_CHARACTERS for ch in name)
        and name not in {"_all", "*"}
        and name.strip() == name
    )


@dataclass(frozen=True)
class SafetyGuard:
    """Everything §7 of docs/tracardi.md forbids, computed from the inputs and not from the plan.

    Its rules are deliberately written again, name by name, rather than reusing the selection's
    pair decisions, so that a bug in the selection is caught here.
    """

    governed: bool
    max_deletions: int | None
    url_byte_limit: int
    index_owner: Mapping[str, VersionId]  # confirmed Tracardi indices only
    template_owner: Mapping[str, VersionId]  # confirmed Tracardi templates only
    shards: Mapping[str, int]
    deletable_pairs: frozenset[VersionId]
    protected_indices: frozenset[str]

    @classmethod
    def build(
        cls,
        history: Sequence[HistoryEntry],
        inventory: Inventory,
        *,
        policy: PolicySelection,
        retention_enabled: bool,
        cluster_live_versions: Iterable[VersionId],
        now: datetime,
        url_byte_limit: int = DEFAULT_URL_BYTE_LIMIT,
    ) -> SafetyGuard:
        rules = policy.policy.rules if policy.policy is not None else None
        governed = retention_enabled and policy.outcome is SelectionOutcome.GOVERNED and rules is not None
        live = frozenset(cluster_live_versions) | {e.pair for e in history if e.state is VersionState.CURRENT}
        deletable: set[VersionId] = set()
        if governed and rules is not None:
            # A pair is deletable only when no entry of it is Current, at least one is Superseded,
            # it is none of the newest `keep` superseded pairs, it was not the source of an
            # unverified migration, and its newest entry is old enough.
            newest_first: list[VersionId] = []
            for entry in reversed(history):
                if entry.pair not in newest_first:
                    newest_first.append(entry.pair)
            reclaimable = [
                pair
                for pair in newest_first
                if pair not in live
                and any(e.pair == pair and e.state in RECLAIMABLE_STATES for e in history)
                and not any(e.pair == pair and e.state is VersionState.CURRENT for e in history)
            ]
            # Rollback targets: pairs that served (an entry Superseded), newest first.
            served = {e.pair for e in history if e.state is VersionState.SUPERSEDED}
            targets = [p for p in reclaimable if p in served]
            rollback = set(targets[: max(0, rules.keep_superseded_versions)])
            superseded = reclaimable
            unverified_sources = {
                e.pair
                for e in history
                for successor in history
                if successor.migrated_from in (e.version, e.db) and not successor.migration_verified
            }
            for pair in superseded:
                newest = next(e for e in reversed(history) if e.pair == pair)
                old_enough = (
                    newest.superseded_at is not None and now >= newest.superseded_at + rules.min_age_after_superseded
                )
                if pair not in rollback and old_enough and pair not in unverified_sources:
                    deletable.add(pair)
        protected = frozenset(index for alias in live_aliases(inventory, live) for index in alias.indices)
        return cls(
            governed=governed,
            max_deletions=rules.max_deletions_per_run if rules is not None else None,
            url_byte_limit=url_byte_limit,
            index_owner={r.name: r.owner for r in inventory.indices if r.owner is not None},
            template_owner={t.name: t.owner for t in inventory.templates if t.owner is not None},
            shards={r.name: r.shards for r in inventory.indices},
            deletable_pairs=frozenset(deletable),
            protected_indices=protected,
        )

    def index_violation(self, name: str) -> str | None:
        """The rule deleting this index would break, or None when it may go."""
        violation = self._owner_violation(name, self.index_owner, "NotAConfirmedTracardiIndex")
        if violation is not None:
            return violation
        if name in self.protected_indices:
            return "AliasedByLive"
        if _path_bytes([name]) > self.url_byte_limit - REQUEST_LINE_RESERVE:
            return "NameTooLong"
        return None

    def template_violation(self, name: str) -> str | None:
        return self._owner_violation(name, self.template_owner, "NotAConfirmedTracardiTemplate")

    def _owner_violation(self, name: str, owners: Mapping[str, VersionId], unconfirmed: str) -> str | None:
        """The rules indices and templates share: governed, an exact name, ours, of a deletable pair."""
        if not self.governed:
            return "NotGoverned"
        if not is_exact_name(name):
            return "NotAnExactName"
        owner = owners.get(name)
        if owner is None:
            return unconfirmed
        if owner not in self.deletable_pairs:
            return "PairNotDeletable"
        return None


def enforce_safety(candidate: RetentionPlan, guard: SafetyGuard) -> RetentionPlan:
    """The last step of every plan: drop what must not go, re-cap, re-batch, recount.

    Whatever the candidate says, the result only lists inventory names of deletable pairs, each once,
    at most `max_deletions_per_run` of them, in batches that fit the request line.
    """
    violations: list[SafetyViolation] = []
    kept = list(candidate.kept)

    def admit(names: Iterable[str], kind: NameKind, check: Callable[[str], str | None]) -> list[str]:
        admitted: list[str] = []
        seen: set[str] = set()
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            rule = check(name)
            if rule is None:
                admitted.append(name)
            else:
                violations.append(SafetyViolation(name, kind, rule))
                kept.append(KeptName(name, kind, Reason.BLOCKED_BY_SAFETY_FILTER, rule))
        return admitted

    indices = admit(candidate.indices, NameKind.INDEX, guard.index_violation)
    templates = admit(candidate.templates, NameKind.TEMPLATE, guard.template_violation)
    if guard.max_deletions is not None:
        cap = max(0, guard.max_deletions)
        over_indices, indices = indices[cap:], indices[:cap]
        cap -= len(indices)
        over_templates, templates = templates[cap:], templates[:cap]
        kept.extend(KeptName(n, NameKind.INDEX, Reason.DEFERRED_BY_LIMIT) for n in over_indices)
        kept.extend(KeptName(n, NameKind.TEMPLATE, Reason.DEFERRED_BY_LIMIT) for n in over_templates)

    planned_indices = set(indices)
    planned_templates = set(templates)
    decisions = []
    for decision in candidate.decisions:
        pair_indices = [n for n, owner in guard.index_owner.items() if owner == decision.pair]
        pair_templates = [n for n, owner in guard.template_owner.items() if owner == decision.pair]
        going = [n for n in pair_indices if n in planned_indices]
        going_templates = [n for n in pair_templates if n in planned_templates]
        decisions.append(
            replace(
                decision,
                indices_planned=len(going),
                templates_planned=len(going_templates),
                shards_freed=sum(guard.shards.get(n, 0) for n in going),
                remaining_after_run=(len(pair_indices) + len(pair_templates) - len(going) - len(going_templates)),
            )
        )
    return replace(
        candidate,
        decisions=tuple(decisions),
        index_batches=batch_names(indices, guard.url_byte_limit),
        templates=tuple(templates),
        kept=tuple(kept),
        shards_freed=sum(guard.shards.get(n, 0) for n in indices),
        safety_violations=candidate.safety_violations + tuple(violations),
    )
