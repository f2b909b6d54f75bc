"""The safety filter every retention plan leaves through, and the one test of an exact name (pure).

What lives here:
- `is_exact_name`: whether Elasticsearch can only read a name as one concrete index, template or snapshot
  (no wildcard, list, exclusion, system index or `_all`); the Elasticsearch adapter refuses every other.
- The request line: `batch_names` splits names into comma-joined DELETE paths that fit it.
- `SafetyGuard` and `enforce_safety`: the rules of docs/tracardi.md §7 written again, name by name, from
  the inputs rather than the plan, so that a mistake in the selection cannot delete what must be kept.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import quote

from tracardi_operator.indices import Inventory, VersionId, live_aliases
from tracardi_operator.models import VersionState
from tracardi_operator.retention.decisions import KeepReason, KeptName, NameKind, RetentionPlan, SafetyViolation
from tracardi_operator.retention.history import RECLAIMABLE_STATES, HistoryEntry
from tracardi_operator.retention.selection import PolicySelection, SelectionOutcome

# Elasticsearch refuses a request line longer than http.max_initial_line_length (default 4kb). The
# comma-joined names of a DELETE share that line with the method, the query string and the protocol,
# for which REQUEST_LINE_RESERVE bytes are set aside.
DEFAULT_URL_BYTE_LIMIT = 4096
REQUEST_LINE_RESERVE = 128

# Characters that make a name an expression (wildcards, a list, a remote cluster) or that no index name
# may hold, and the leading characters of exclusions, `_all` and system indices.
_FORBIDDEN_CHARACTERS = frozenset('*?,:#\\/"<>|')
_FORBIDDEN_LEADING = ("-", "_", "+", ".")
# One search instead of a test per character (a plan tests every name of the inventory, on every reading
# before a delete request): a forbidden character, or whitespace (`\s` of a str pattern is what
# str.isspace() accepts).
_FORBIDDEN = re.compile("[" + re.escape("".join(sorted(_FORBIDDEN_CHARACTERS))) + r"\s]")


def is_exact_name(name: str) -> bool:
    """True for a name Elasticsearch can only read as one concrete index, template or snapshot."""
    return bool(name) and not name.startswith(_FORBIDDEN_LEADING) and _FORBIDDEN.search(name) is None


@functools.lru_cache(maxsize=1 << 16)
def _escaped_bytes(name: str) -> int:
    """Bytes of one name in a path as the client sends it (remembered: the same names are measured on
    every reading of a run)."""
    return len(quote(name, safe=""))


def path_bytes(names: Sequence[str]) -> int:
    """Bytes of `/<name>,<name>...` as the client sends it (everything but the comma escaped)."""
    return 1 + sum(_escaped_bytes(name) for name in names) + max(0, len(names) - 1)


def batch_names(names: Sequence[str], url_byte_limit: int = DEFAULT_URL_BYTE_LIMIT) -> tuple[tuple[str, ...], ...]:
    """Split names, in order, into comma-joined DELETE paths that fit the request line."""
    budget = url_byte_limit - REQUEST_LINE_RESERVE
    batches: list[tuple[str, ...]] = []
    current: list[str] = []
    used = 0  # path_bytes(current), kept as a running sum: linear in the number of names
    for name in names:
        size = _escaped_bytes(name)
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
    return path_bytes(batch) + REQUEST_LINE_RESERVE


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
        if path_bytes([name]) > self.url_byte_limit - REQUEST_LINE_RESERVE:
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
                kept.append(KeptName(name, kind, KeepReason.BLOCKED_BY_SAFETY_FILTER, rule))
        return admitted

    indices = admit(candidate.indices, NameKind.INDEX, guard.index_violation)
    templates = admit(candidate.templates, NameKind.TEMPLATE, guard.template_violation)
    if guard.max_deletions is not None:
        cap = max(0, guard.max_deletions)
        over_indices, indices = indices[cap:], indices[:cap]
        cap -= len(indices)
        over_templates, templates = templates[cap:], templates[:cap]
        kept.extend(KeptName(n, NameKind.INDEX, KeepReason.DEFERRED_BY_LIMIT) for n in over_indices)
        kept.extend(KeptName(n, NameKind.TEMPLATE, KeepReason.DEFERRED_BY_LIMIT) for n in over_templates)

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
