"""Retention garbage collection of one installation: select the governing policy, read the index
inventory of its Elasticsearch cluster (once per cycle, shared by every installation on it), plan,
publish the plan in status, then snapshot, delete by exact names and verify.

The decisions are `retention.plan_retention`, `retention.select_policy` and
`retention.headroom`; this module translates between them and the API objects, and acts.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tracardi_operator import retention as rt
from tracardi_operator import versions
from tracardi_operator.elastic import ElasticAdapter, ElasticConnection, RawInventory
from tracardi_operator.indices import Inventory, VersionId, parse_inventory
from tracardi_operator.labels import label_value
from tracardi_operator.models import LabelSelector, TracardiInstallation, TracardiRetentionPolicy
from tracardi_operator.retention import headroom
from tracardi_operator.retention.status import RunOutcome, status_of_plan

log = logging.getLogger("tracardi_operator.gc")

INVENTORY_TTL = 20.0
"""Seconds one inventory read serves every installation on the same cluster."""


# ---------------------------------------------------------------------------------------------------
# Pure translation


def _selector(model: LabelSelector | None) -> rt.LabelSelector | None:
    if model is None:
        return None
    return rt.LabelSelector(
        match_labels=dict(model.match_labels or {}),
        match_expressions=tuple(
            rt.SelectorRequirement(e.key, e.operator, tuple(e.values or ())) for e in model.match_expressions or []
        ),
    )


def policy_of(model: TracardiRetentionPolicy) -> rt.RetentionPolicy:
    spec = model.spec
    return rt.RetentionPolicy(
        name=model.metadata.name,
        priority=spec.priority,
        namespace_selector=_selector(spec.namespace_selector),
        selector=_selector(spec.selector),
        rules=rt.RetentionRules(
            keep_superseded_versions=spec.keep_superseded_versions,
            min_age_after_superseded=spec.min_age,
            dry_run=spec.dry_run,
            max_deletions_per_run=spec.max_deletions_per_run,
        ),
    )


def history_of(inst: TracardiInstallation) -> list[rt.HistoryEntry]:
    """status.versions as the planner reads it. A migration counts as verified only when the switch
    recorded the migration Job's verification (migrationVerified); a record without it keeps its
    source (fail closed)."""
    return [
        rt.HistoryEntry(
            version=r.version, db=r.db_version, tenant=r.tenant, state=rt.VersionState(r.state),
            superseded_at=r.superseded_at, migrated_from=r.migrated_from,
            migration_verified=r.migration_verified is True,
        )
        for r in inst.status.versions
    ]


def pair_of_tag(tag: str, records: Iterable[tuple[str, str]] = ()) -> VersionId | None:
    """The (db version, tenant) an image tag runs: the tenant recorded for its db version if any (the
    API reported it), else Tracardi's default tenant for the tag. None for a tag that is no version."""
    parsed = versions.try_parse(tag).version
    db = parsed.db_version if parsed else None
    if parsed is None or db is None:
        return None
    recorded = next((tenant for record_db, tenant in records if record_db == db), None)
    tenant = recorded or parsed.default_tenant
    return VersionId(db, tenant) if tenant else None


def image_tag(image: str) -> str | None:
    """The tag of `repository[:port]/name:tag[@digest]`, None without one."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


def live_pairs(inst: TracardiInstallation, images: Iterable[str] = ()) -> set[VersionId]:
    """Pairs that serve or are about to, from every piece of evidence, any one of which is enough: the
    Current records, status.currentVersion (a status restored or edited may lack its record), the
    tags of the installation's running Deployments (`images`), and an upgrade's pairs."""
    pairs = {VersionId(r.db_version, r.tenant) for r in inst.status.versions if r.state == "Current"}
    records = [(r.db_version, r.tenant) for r in reversed(inst.status.versions)]
    tags = [inst.status.current_version or "", *(image_tag(i) or "" for i in images)]
    pairs |= {pair for pair in (pair_of_tag(tag, records) for tag in tags if tag) if pair is not None}
    up = inst.status.upgrade
    if up is not None and up.step != "Completed":
        # Until the install Job reports the new version's tenant (toTenant), the tag tells it: the
        # indices being installed must not be taken for an abandoned or superseded copy of that pair.
        for db, tenant, tag in ((up.to_db_version, up.to_tenant, up.to_version),
                                (up.from_db_version, up.from_tenant, up.from_version)):
            pair = VersionId(db, tenant) if db and tenant else pair_of_tag(tag, records) if tag else None
            if pair is not None:
                pairs.add(pair)
    return pairs


def live_pairs_unparsed(raw: Mapping[str, Any], images: Iterable[str] = ()) -> set[VersionId]:
    """Best effort for an installation the model refuses: every pair its status names that is not
    Deleted counts as live, so that a bad object can never expose another's indices to deletion."""
    status = raw.get("status") or {}
    pairs: set[VersionId] = set()
    current = status.get("currentVersion")
    for tag in [current if isinstance(current, str) else "", *(image_tag(i) or "" for i in images)]:
        pair = pair_of_tag(tag) if tag else None
        if pair is not None:
            pairs.add(pair)
    for record in status.get("versions") or []:
        if isinstance(record, Mapping) and record.get("state") != "Deleted" \
                and record.get("dbVersion") and record.get("tenant"):
            pairs.add(VersionId(str(record["dbVersion"]), str(record["tenant"])))
    upgrade = status.get("upgrade") or {}
    for db, tenant, tag in (("fromDbVersion", "fromTenant", "fromVersion"), ("toDbVersion", "toTenant", "toVersion")):
        if upgrade.get(db) and upgrade.get(tenant):
            pairs.add(VersionId(str(upgrade[db]), str(upgrade[tenant])))
        elif isinstance(upgrade.get(tag), str):
            pair = pair_of_tag(upgrade[tag])
            if pair is not None:
                pairs.add(pair)
    return pairs


def cluster_key(inst: TracardiInstallation) -> tuple[str, ...]:
    """The key the inventory cache is kept under: the namespace and the hosts as spelled (a Service
    name such as http://es:9200 resolves in the installation's namespace, so the same spelling in two
    namespaces may be two clusters). Only a cache key: whether two installations share a cluster is
    decided by the cluster's own identity (`same_cluster`)."""
    return (inst.namespace, *sorted(h.rstrip("/") for h in inst.spec.elasticsearch.hosts))


def recorded_cluster(raw: Mapping[str, Any]) -> str | None:
    """The cluster_uuid an installation recorded in its status, None while unknown."""
    value = (raw.get("status") or {}).get("elasticsearchCluster")
    return value if isinstance(value, str) and value else None


def same_cluster(mine: str, theirs: str | None) -> bool:
    """Whether another installation may be on this cluster. One that has not recorded its cluster yet
    counts as on every cluster: unknown must keep, never expose."""
    return theirs is None or theirs == mine


def cluster_live(
    inst: TracardiInstallation,
    identity: str | None,
    installations: Iterable[Mapping[str, Any]],
    images: Mapping[tuple[str, str], Sequence[str]],
) -> tuple[set[VersionId], set[str]]:
    """The live pairs of `inst` and of every installation that may share its cluster `identity`
    (None: unknown, so every installation counts), from the listed installations (raw objects) and
    the images their Deployments run by (namespace, instance label: the name, cut to a label value
    when it is longer, `labels.label_value`); and the others (namespace/name) that
    recorded this cluster and serve one of `inst`'s live pairs. A refused object keeps whatever its
    status names; Deployments of no listed installation keep the versions they run, wherever they are.
    """
    left = {where: list(found) for where, found in images.items()}
    mine = live_pairs(inst, left.pop((inst.namespace, label_value(inst.name)), ()))
    live: set[VersionId] = set(mine)
    shared: set[str] = set()
    for raw in installations:
        meta = raw.get("metadata") or {}
        where = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if where == (inst.namespace, inst.name):
            continue
        their_images = left.pop((where[0], label_value(where[1])), [])
        recorded = recorded_cluster(raw)
        if identity is not None and not same_cluster(identity, recorded):
            continue
        try:
            other = TracardiInstallation.model_validate(raw)
        except ValidationError:
            # Fail closed: whatever a refused object's status names stays live.
            live |= live_pairs_unparsed(raw, their_images)
            continue
        theirs = live_pairs(other, their_images)
        live |= theirs
        if recorded is not None and theirs & mine:
            shared.add(f"{where[0]}/{where[1]}")
    for found in left.values():
        live |= live_pairs_unparsed({}, found)
    return live, shared


def governed_by(
    policy_name: str,
    policies: Sequence[TracardiRetentionPolicy],
    installations: Sequence[TracardiInstallation],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> list[tuple[str, str]]:
    """(namespace, name) of the installations `policy_name` governs: selected, retention enabled, not
    outranked and not tied."""
    rules = [policy_of(p) for p in policies]
    governed = []
    for inst in installations:
        if not inst.spec.retention.enabled:
            continue
        selection = rt.select_policy(rules, namespace_labels.get(inst.namespace, {}), inst.metadata.labels or {})
        if selection.outcome is rt.SelectionOutcome.GOVERNED and selection.policy is not None \
                and selection.policy.name == policy_name:
            governed.append((inst.namespace, inst.name))
    return sorted(governed)


# ---------------------------------------------------------------------------------------------------
# I/O


@dataclass
class _Cached:
    at: float
    raw: RawInventory
    inventory: Inventory


class InventoryCache:
    """One inventory read per cluster per cycle, shared by the installations on that cluster."""

    def __init__(self, ttl: float = INVENTORY_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ...], _Cached] = {}

    def get(self, key: tuple[str, ...], adapter: ElasticAdapter, fresh: bool = False) -> _Cached:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and not fresh and time.monotonic() - entry.at < self.ttl:
                return entry
        raw = adapter.read_inventory()
        entry = _Cached(time.monotonic(), raw, parse_inventory(raw.cat_indices, raw.aliases, raw.index_templates,
                                                               raw.mappings))
        with self._lock:
            self._entries[key] = entry
        return entry

    def invalidate(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._entries.pop(key, None)


def connection_of(
    inst: TracardiInstallation, secret: Mapping[str, str] | None, ca_file: str | None
) -> ElasticConnection:
    es = inst.spec.elasticsearch
    secret = secret or {}
    return ElasticConnection(
        hosts=tuple(es.hosts), username=secret.get("username"), password=secret.get("password"),
        api_key_id=secret.get("apiKeyId"), api_key=secret.get("apiKey"), verify_certs=es.verify_certs,
        ca_file=ca_file,
    )


@dataclass(frozen=True)
class Fresh:
    """The inputs of a plan read again right before anything is deleted."""

    policies: Sequence[TracardiRetentionPolicy]
    cluster_live: Iterable[VersionId]
    installation: TracardiInstallation | None  # None: gone, being deleted or unreadable
    namespace_labels: Mapping[str, str]


Recheck = Callable[[], Fresh]


DeletingRecorder = Callable[[Mapping[VersionId, Sequence[str]]], None]


@dataclass(frozen=True)
class _Reread:
    """One reading of the inputs right before acting: what they plan, and whether acting may go on."""

    outcome: RunOutcome
    plan: rt.RetentionPlan
    policies: Sequence[TracardiRetentionPolicy]
    inventory: _Cached
    go: bool


def run(
    inst: TracardiInstallation,
    adapter: ElasticAdapter,
    cache: InventoryCache,
    policies: Sequence[TracardiRetentionPolicy],
    namespace_labels: Mapping[str, str],
    cluster_live: Iterable[VersionId],
    now: dt.datetime,
    publish: Any,
    recheck: Recheck | None = None,
    record_deleting: DeletingRecorder | None = None,
) -> RunOutcome:
    """Plan, publish (via `publish(RetentionStatus)`), then act as the governing policy allows.

    The first plan comes from shared, possibly slightly stale inputs (the cached inventory, the cached
    listings of policies and installations, the installation as the pass read it). When it would
    delete, it is computed again from fresh ones (`recheck`, and a fresh inventory) and only that plan
    is published and carried out, and only if the installation's spec and labels are still those the
    pass started from. Immediately before every delete request (after a snapshot, which may take an
    hour, too) the inputs are read and the plan derived once more; a name the new plan no longer
    deletes is not deleted. Before the first name of a version goes, `record_deleting` records it as
    Deleting with the names about to go, so that it is never taken for a whole version again.
    Nothing is deleted on a cluster that does not say who it is (cluster_uuid).
    """
    key = cluster_key(inst)
    cached = cache.get(key, adapter)
    outcome, plan = _assess(inst, cached, policies, namespace_labels, cluster_live, now)
    if plan.dry_run or not (_executable(plan) or _gone(plan)):
        return outcome
    if cached.raw.cluster_uuid is None:
        outcome.retention.message = (outcome.retention.message or "") + (
            "; Elasticsearch did not tell its cluster_uuid, so which installations share it is unknown: "
            "nothing is deleted")
        return outcome

    def reread() -> _Reread | None:
        """The outcome and plan from inputs read now; None when the installation is gone. `go` is False
        when the run must stop: its spec (retention.enabled, a version change) or labels changed since
        this pass read them (the pass their change woke decides, after the rollout has seen it), its
        hosts now lead to another cluster, or the plan became a dry run."""
        assert recheck is not None
        fresh = recheck()
        current = fresh.installation
        if current is None:
            return None
        entry = cache.get(key, adapter, fresh=True)
        again, fresh_plan = _assess(current, entry, fresh.policies, fresh.namespace_labels, fresh.cluster_live, now)
        go = (current.metadata.generation == inst.metadata.generation
              and current.metadata.labels == inst.metadata.labels
              and entry.raw.cluster_uuid == cached.raw.cluster_uuid and not fresh_plan.dry_run)
        return _Reread(again, fresh_plan, fresh.policies, entry, go)

    if recheck is not None:
        first = reread()
        if first is None:
            return outcome
        outcome, plan = first.outcome, first.plan
        if not first.go:
            return outcome
        policies, cached = first.policies, first.inventory
    status = outcome.retention
    if not _executable(plan):
        # A run interrupted after its deletions (a crash, a failed status patch): the names are gone,
        # only the record is missing. Record it now rather than leave the versions Superseded forever.
        outcome.deleted_pairs = _gone(plan)
        if outcome.deleted_pairs:
            outcome.events.append(("Normal", "IndicesDeleted",
                                   f"recorded {_pairs(outcome.deleted_pairs)} as deleted: their indices and "
                                   f"templates are already gone"))
        return outcome
    publish(status)  # the plan is readable before anything goes
    policy = next((p for p in policies if p.metadata.name == plan.policy), None)
    repository = policy.spec.snapshot.repository if policy and policy.spec.snapshot else None
    if repository:
        snapshot = f"tracardi-{inst.namespace}-{inst.name}-{now.strftime('%Y%m%d-%H%M%S')}".lower()
        outcome.snapshot = adapter.snapshot_indices(repository, snapshot, list(plan.indices))
        outcome.events.append(("Normal", "SnapshotTaken", f"snapshot {snapshot} in {repository} before deleting"))
    inventory = cached.inventory
    owners = {r.name: r.owner for r in inventory.indices if r.owner is not None}
    owners |= {t.name: t.owner for t in inventory.templates if t.owner is not None}
    deleted: list[str] = []
    aborted = False
    # The plan was derived from inputs read just now, unless a snapshot (which may take an hour) came
    # between: then the first request, like every later one, waits for a plan derived again.
    current_plan: rt.RetentionPlan | None = plan if not repository else None
    work: list[tuple[str, list[str]]] = [("indices", list(b)) for b in plan.executable_index_batches]
    work += [("template", [t]) for t in plan.executable_templates]
    for kind, names in work:
        if current_plan is None and recheck is not None:
            again = reread()
            current_plan = again.plan if again is not None and again.go else None
            if current_plan is None:
                aborted = True
                break
        now_plan = current_plan or plan
        current_plan = None  # the next request looks again
        allowed = set(now_plan.indices if kind == "indices" else now_plan.executable_templates)
        batch = [n for n in names if n in allowed]
        if not batch:
            continue
        if record_deleting is not None:
            record_deleting(_by_pair(deleted + batch, owners))
        if kind == "indices":
            adapter.delete_indices(batch)
        else:
            adapter.delete_template(batch[0])
        deleted += batch
    cache.invalidate(key)
    planned_indices, planned_templates = set(plan.indices), set(plan.templates)
    wanted = [n for n in deleted if n in planned_indices]
    left = adapter.existing_indices(wanted) if wanted else set()
    templates = [n for n in deleted if n in planned_templates]
    left |= adapter.existing_templates(templates) if templates else set()
    if left:
        raise RuntimeError(f"retention: {len(left)} names still exist after deletion, e.g. {sorted(left)[:3]}")
    outcome.deleted_indices, outcome.deleted_templates = len(wanted), len(templates)
    outcome.deleted_pairs = [] if aborted else [p for p in _gone(plan) if _all_of(p, plan, deleted, owners)]
    outcome.deleting = _by_pair(deleted, owners)
    if outcome.headroom is not None:  # as it is after this run, not as it was read before
        gone = set(wanted)
        outcome.headroom = headroom.freed(outcome.headroom, sum(r.shards for r in inventory.indices
                                                       if r.name in gone and r.is_open))
    status.deleted_indices = outcome.deleted_indices
    status.last_run_at = now
    status.snapshot = outcome.snapshot
    if aborted:
        status.message = (status.message or "") + (
            f"; stopped after {len(deleted)} names: the inputs changed before the next deletion "
            f"(policy, retention setting, spec or a new live installation)")
    outcome.events.append(("Normal", "IndicesDeleted",
                           f"deleted {outcome.deleted_indices} indices and {outcome.deleted_templates} templates of "
                           f"{_pairs(outcome.deleted_pairs) or 'superseded versions'} as {plan.policy} allows"
                           + ("; stopped early because the inputs changed" if aborted else "")))
    return outcome


def _by_pair(names: Iterable[str], owners: Mapping[str, VersionId]) -> dict[VersionId, list[str]]:
    grouped: dict[VersionId, list[str]] = {}
    for name in names:
        owner = owners.get(name)
        if owner is not None:
            grouped.setdefault(owner, []).append(name)
    return grouped


def _all_of(pair: VersionId, plan: rt.RetentionPlan, deleted: Sequence[str], owners: Mapping[str, VersionId]) -> bool:
    """Every name of `pair` the plan meant to delete was deleted."""
    gone = set(deleted)
    return all(n in gone for n in (*plan.indices, *plan.templates) if owners.get(n) == pair)


def _executable(plan: rt.RetentionPlan) -> bool:
    return bool(plan.executable_index_batches or plan.executable_templates)


def _gone(plan: rt.RetentionPlan) -> list[VersionId]:
    """Pairs the plan deletes of which nothing is left once this run is done."""
    return [d.pair for d in plan.decisions if d.action is rt.Action.DELETE and d.remaining_after_run == 0]


def _pairs(pairs: Iterable[VersionId]) -> str:
    return ", ".join(f"{p.db}.{p.tenant}" for p in pairs)


def _assess(
    inst: TracardiInstallation,
    cached: _Cached,
    policies: Sequence[TracardiRetentionPolicy],
    namespace_labels: Mapping[str, str],
    cluster_live: Iterable[VersionId],
    now: dt.datetime,
) -> tuple[RunOutcome, rt.RetentionPlan]:
    """The plan and headroom from one set of inputs (pure apart from logging)."""
    selection = rt.select_policy([policy_of(p) for p in policies], namespace_labels, inst.metadata.labels or {})
    live = set(cluster_live) | live_pairs(inst)
    plan = rt.plan_retention(
        history_of(inst), cached.inventory, policy=selection, retention_enabled=inst.spec.retention.enabled,
        cluster_live_versions=live, now=now,
    )
    status = status_of_plan(plan, selection, now)
    outcome = RunOutcome(retention=status, headroom=headroom.assess(
        cached.inventory.shards_in_use, cached.raw.max_shards_per_node, cached.raw.data_nodes,
        reclaimable=plan.shards_freed, now=now,
    ), selection=selection)
    for violation in plan.safety_violations:
        log.error("retention safety filter refused %s %s: %s", violation.kind, violation.name, violation.rule)
    return outcome, plan
