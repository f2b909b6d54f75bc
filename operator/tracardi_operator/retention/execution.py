"""A retention run of one installation (reads and deletes through `elastic.ElasticAdapter`): read the
inventory, plan, publish the plan in status, read the inputs again, then snapshot, delete by exact names
and verify.

The decisions are `plan.plan_retention`, `selection.select_policy` and `headroom`; what the run needs of
its caller (writing status before anything goes, reading the inputs again) is `Effects`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tracardi_operator.elastic import ElasticAdapter
from tracardi_operator.indices import VersionId
from tracardi_operator.models import RetentionStatus, TracardiInstallation, TracardiRetentionPolicy
from tracardi_operator.reasons import Reason
from tracardi_operator.retention import headroom
from tracardi_operator.retention.decisions import Action, RetentionPlan
from tracardi_operator.retention.evidence import cluster_key, live_pairs
from tracardi_operator.retention.history import history_of
from tracardi_operator.retention.inventory import CachedInventory, InventoryCache
from tracardi_operator.retention.plan import plan_retention
from tracardi_operator.retention.selection import policy_of, select_policy
from tracardi_operator.retention.status import RunOutcome, status_of_plan

log = logging.getLogger("tracardi_operator.gc")  # the logger name the operator has always used for retention

Names = Mapping[VersionId, Sequence[str]]
"""Names by the (db version, tenant) pair they belong to."""


@dataclass(frozen=True)
class Fresh:
    """The inputs of a plan read again right before anything is deleted."""

    policies: Sequence[TracardiRetentionPolicy]
    cluster_live: Iterable[VersionId]
    installation: TracardiInstallation | None  # None: gone, being deleted or unreadable
    namespace_labels: Mapping[str, str]


class Effects(Protocol):
    """What a run asks of its caller."""

    def publish(self, plan: RetentionStatus) -> None:
        """Write the plan into status.retention: it is readable before anything goes."""

    def recheck(self) -> Fresh:
        """Read the policies, the live pairs, the installation and its namespace's labels again."""

    def record_deleting(self, names: Names) -> None:
        """Record the versions of `names` as Deleting, with the names about to go, before they go (a
        failure stops the run)."""


@dataclass(frozen=True)
class Callbacks:
    """Effects made of three functions."""

    publish: Callable[[RetentionStatus], None]
    recheck: Callable[[], Fresh]
    record_deleting: Callable[[Names], None]


@dataclass(frozen=True)
class _Reread:
    """One reading of the inputs right before acting: what they plan, and whether acting may go on."""

    outcome: RunOutcome
    plan: RetentionPlan
    policies: Sequence[TracardiRetentionPolicy]
    inventory: CachedInventory
    go: bool


def run(
    inst: TracardiInstallation,
    adapter: ElasticAdapter,
    cache: InventoryCache,
    policies: Sequence[TracardiRetentionPolicy],
    namespace_labels: Mapping[str, str],
    cluster_live: Iterable[VersionId],
    now: dt.datetime,
    effects: Effects,
) -> RunOutcome:
    """Plan, publish (`effects.publish`), then act as the governing policy allows.

    The first plan comes from shared, possibly slightly stale inputs (the cached inventory, the cached
    listings of policies and installations, the installation as the pass read it). When it would
    delete, it is computed again from fresh ones (`effects.recheck`, and a fresh inventory) and only that
    plan is published and carried out, and only if the installation's spec and labels are still those
    the pass started from. Immediately before every delete request (after a snapshot, which may take an
    hour, too) the inputs are read and the plan derived once more; a name the new plan no longer
    deletes is not deleted. Before the first name of a version goes, `effects.record_deleting` records
    it as Deleting with the names about to go, so that it is never taken for a whole version again.
    Nothing is deleted on a cluster that does not say who it is (cluster_uuid).
    """
    key = cluster_key(inst)
    asked = time.monotonic()
    cached = cache.get(key, adapter)
    outcome, plan = assess(inst, cached, policies, namespace_labels, cluster_live, now)
    if plan.dry_run or not (_executable(plan) or _gone(plan)):
        return outcome
    if cached.raw.cluster_uuid is None:
        outcome.retention.message = (outcome.retention.message or "") + (
            "; Elasticsearch did not tell its cluster_uuid, so which installations share it is unknown: "
            "nothing is deleted")
        return outcome
    act = _Run(inst, adapter, cache, key, cached.raw.cluster_uuid, now, effects)
    # An inventory read begun after this run asked (by it, or by another pass it waited for) is as fresh
    # as a second reading; one from the cache is not.
    first = act.reread(just_read=cached if cached.at >= asked else None)
    if first is None:
        return outcome
    if not first.go:
        return first.outcome
    return act.carry_out(first)


@dataclass(frozen=True)
class _Scope:
    """What the inventory is read again for: the next request's names, from the last reading."""

    previous: CachedInventory
    about: Sequence[str]
    deleted: Sequence[str]


@dataclass(frozen=True)
class _Run:
    """One run past its first plan: where it acts, and what it must find unchanged to go on."""

    inst: TracardiInstallation
    adapter: ElasticAdapter
    cache: InventoryCache
    key: tuple[str, ...]
    cluster_uuid: str
    now: dt.datetime
    effects: Effects

    def reread(self, scope: _Scope | None = None, just_read: CachedInventory | None = None) -> _Reread | None:
        """The outcome and plan from inputs read now; None when the installation is gone. `go` is False
        when the run must stop: its spec (retention.enabled, a version change) or labels changed since
        this pass read them (the pass their change woke decides, after the rollout has seen it), its
        hosts now lead to another cluster, or the plan became a dry run. With a `scope` (right before a
        delete request) the inventory is read again where it can change what becomes of the request's
        names (`ElasticAdapter.refresh_inventory`); else all of it."""
        fresh = self.effects.recheck()
        current = fresh.installation
        if current is None:
            return None
        if just_read is not None:
            entry = just_read
        elif scope is None:
            entry = self.cache.get(self.key, self.adapter, fresh=True)
        else:
            entry = self.cache.refreshed(self.key, self.adapter, scope.previous, scope.about, scope.deleted)
        again, plan = assess(current, entry, fresh.policies, fresh.namespace_labels, fresh.cluster_live, self.now)
        go = (current.metadata.generation == self.inst.metadata.generation
              and current.metadata.labels == self.inst.metadata.labels
              and entry.raw.cluster_uuid == self.cluster_uuid and not plan.dry_run)
        return _Reread(again, plan, fresh.policies, entry, go)

    def carry_out(self, first: _Reread) -> RunOutcome:
        """Publish the plan, snapshot, delete (each request after reading the inputs again), verify."""
        outcome, plan = first.outcome, first.plan
        if not _executable(plan):
            # A run interrupted after its deletions (a crash, a failed status patch): the names are gone,
            # only the record is missing. Record it now rather than leave the versions Superseded forever.
            outcome.deleted_pairs = _gone(plan)
            if outcome.deleted_pairs:
                outcome.events.append(("Normal", Reason.INDICES_DELETED,
                                       f"recorded {_pairs(outcome.deleted_pairs)} as deleted: their indices and "
                                       f"templates are already gone"))
            return outcome
        self.effects.publish(outcome.retention)  # the plan is readable before anything goes
        policy = next((p for p in first.policies if p.metadata.name == plan.policy), None)
        repository = policy.spec.snapshot.repository if policy and policy.spec.snapshot else None
        if repository:
            snapshot = f"tracardi-{self.inst.namespace}-{self.inst.name}-{self.now.strftime('%Y%m%d-%H%M%S')}".lower()
            outcome.snapshot = self.adapter.snapshot_indices(repository, snapshot, list(plan.indices))
            outcome.events.append(("Normal", Reason.SNAPSHOT_TAKEN,
                                   f"snapshot {snapshot} in {repository} before deleting"))
        inventory = first.inventory.inventory
        owners = {r.name: r.owner for r in inventory.indices if r.owner is not None}
        owners |= {t.name: t.owner for t in inventory.templates if t.owner is not None}
        # The plan was derived from inputs read just now, unless a snapshot (which may take an hour) came
        # between: then the first request, like every later one, waits for a plan derived again.
        deleted, aborted = self._delete(plan, owners, plan if not repository else None,
                                        None if repository else first.inventory)
        self.cache.invalidate(self.key)
        wanted, templates = self._verify(plan, deleted)
        outcome.deleted_indices, outcome.deleted_templates = len(wanted), len(templates)
        outcome.deleted_pairs = [] if aborted else [p for p in _gone(plan) if _all_of(p, plan, deleted, owners)]
        outcome.deleting = _by_pair(deleted, owners)
        if outcome.headroom is not None:  # as it is after this run, not as it was read before
            gone = set(wanted)
            outcome.headroom = headroom.freed(outcome.headroom, sum(r.shards for r in inventory.indices
                                                                    if r.name in gone and r.is_open))
        status = outcome.retention
        status.deleted_indices = outcome.deleted_indices
        status.last_run_at = self.now
        status.snapshot = outcome.snapshot
        if aborted:
            status.message = (status.message or "") + (
                f"; stopped after {len(deleted)} names: the inputs changed before the next deletion "
                f"(policy, retention setting, spec or a new live installation)")
        outcome.events.append(("Normal", Reason.INDICES_DELETED,
                               f"deleted {outcome.deleted_indices} indices and {outcome.deleted_templates} templates "
                               f"of {_pairs(outcome.deleted_pairs) or 'superseded versions'} as {plan.policy} allows"
                               + ("; stopped early because the inputs changed" if aborted else "")))
        return outcome

    def _delete(self, plan: RetentionPlan, owners: Mapping[str, VersionId], current: RetentionPlan | None,
                latest: CachedInventory | None) -> tuple[list[str], bool]:
        """Send the plan's delete requests, each only for names a plan derived just before it still
        deletes (`current`: one derived already); the names deleted, and whether the run stopped early.
        `latest` is the inventory the last plan came from (None: read all of it again first, as after
        a snapshot)."""
        deleted: list[str] = []
        work: list[tuple[str, list[str]]] = [("indices", list(b)) for b in plan.executable_index_batches]
        work += [("template", [t]) for t in plan.executable_templates]
        for kind, names in work:
            if current is None:
                again = self.reread(None if latest is None else _Scope(latest, names, list(deleted)))
                current = again.plan if again is not None and again.go else None
                if current is None or again is None:
                    return deleted, True
                latest = again.inventory
            allowed = set(current.indices if kind == "indices" else current.executable_templates)
            current = None  # the next request looks again
            batch = [n for n in names if n in allowed]
            if not batch:
                continue
            self.effects.record_deleting(_by_pair(deleted + batch, owners))
            if kind == "indices":
                self.adapter.delete_indices(batch)
            else:
                self.adapter.delete_template(batch[0])
            deleted += batch
        return deleted, False

    def _verify(self, plan: RetentionPlan, deleted: Sequence[str]) -> tuple[list[str], list[str]]:
        """The indices and templates deleted, once Elasticsearch says none of them is still there."""
        planned_indices, planned_templates = set(plan.indices), set(plan.templates)
        wanted = [n for n in deleted if n in planned_indices]
        left = self.adapter.existing_indices(wanted) if wanted else set()
        templates = [n for n in deleted if n in planned_templates]
        left |= self.adapter.existing_templates(templates) if templates else set()
        if left:
            raise RuntimeError(f"retention: {len(left)} names still exist after deletion, e.g. {sorted(left)[:3]}")
        return wanted, templates


def _by_pair(names: Iterable[str], owners: Mapping[str, VersionId]) -> dict[VersionId, list[str]]:
    grouped: dict[VersionId, list[str]] = {}
    for name in names:
        owner = owners.get(name)
        if owner is not None:
            grouped.setdefault(owner, []).append(name)
    return grouped


def _all_of(pair: VersionId, plan: RetentionPlan, deleted: Sequence[str], owners: Mapping[str, VersionId]) -> bool:
    """Every name of `pair` the plan meant to delete was deleted."""
    gone = set(deleted)
    return all(n in gone for n in (*plan.indices, *plan.templates) if owners.get(n) == pair)


def _executable(plan: RetentionPlan) -> bool:
    return bool(plan.executable_index_batches or plan.executable_templates)


def _gone(plan: RetentionPlan) -> list[VersionId]:
    """Pairs the plan deletes of which nothing is left once this run is done."""
    return [d.pair for d in plan.decisions if d.action is Action.DELETE and d.remaining_after_run == 0]


def _pairs(pairs: Iterable[VersionId]) -> str:
    return ", ".join(f"{p.db}.{p.tenant}" for p in pairs)


def assess(
    inst: TracardiInstallation,
    cached: CachedInventory,
    policies: Sequence[TracardiRetentionPolicy],
    namespace_labels: Mapping[str, str],
    cluster_live: Iterable[VersionId],
    now: dt.datetime,
) -> tuple[RunOutcome, RetentionPlan]:
    """The plan and headroom from one set of inputs (pure apart from logging)."""
    selection = select_policy([policy_of(p) for p in policies], namespace_labels, inst.metadata.labels or {})
    live = set(cluster_live) | live_pairs(inst)
    plan = plan_retention(
        history_of(inst), cached.inventory, policy=selection, retention_enabled=inst.spec.retention.enabled,
        cluster_live_versions=live, now=now,
    )
    outcome = RunOutcome(retention=status_of_plan(plan, selection, now), headroom=headroom.assess(
        cached.raw.shards_in_use, cached.raw.max_shards_per_node, cached.raw.data_nodes,
        reclaimable=plan.shards_freed, now=now,
    ), selection=selection, planned_indices=len(plan.indices))
    for violation in plan.safety_violations:
        log.error("retention safety filter refused %s %s: %s", violation.kind, violation.name, violation.rule)
    return outcome, plan
