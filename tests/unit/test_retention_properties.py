"""Property tests: over random inventories and histories, the plan never lists a forbidden name.

What is forbidden is computed here a third time, from docs/tracardi.md §7 directly, independently of
both the selection (`retention.plan`) and the safety filter (`retention.safety`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracardi_operator.indices import Inventory, VersionId, parse_inventory
from tracardi_operator.models import VersionState
from tracardi_operator.retention.decisions import RetentionPlan
from tracardi_operator.retention.history import HistoryEntry, RetentionPolicy, RetentionRules
from tracardi_operator.retention.plan import plan_retention
from tracardi_operator.retention.safety import SafetyGuard, batch_path_bytes, enforce_safety
from tracardi_operator.retention.selection import PolicySelection, SelectionOutcome

NOW = datetime(2024, 6, 1, tzinfo=UTC)
DBS = ["070", "074", "080", "08x", "082x", "0820", "09x"]
TENANTS = ["fa73a", "01506", "ffe49", "abcde", "zzzzz", "acme"]
RESOURCES = ["flow", "event", "profile", "bridge", "flow-action-plugins", "event_to_profile", "user-log"]
PARTITIONS = [None, None, "2023-1", "2023-11", "2024-q1", "2024-q4", "2024-year"]
FOREIGN_NAMES = [
    ".kibana",
    ".kibana_1",
    ".tasks",
    "logs",
    "metrics-2024",
    "tracardi-flow",
    "080.fa73a.tracardi",
    "x080.fa73a.tracardi-flow",
    "ilm-history",
    "fa73a.tracardi-flow-old",
]
# RETENTION_EXAMPLES_SCALE multiplies the number of examples for a longer soak run.
_SCALE = float(os.environ.get("RETENTION_EXAMPLES_SCALE", "1"))
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
MANY = settings(max_examples=int(1500 * _SCALE), deadline=None, suppress_health_check=_HEALTH)
SOME = settings(max_examples=int(400 * _SCALE), deadline=None, suppress_health_check=_HEALTH)

# Strategies are built once: building them inside draws costs more than the plans being tested.
pairs = st.builds(VersionId, st.sampled_from(DBS), st.sampled_from(TENANTS))
contexts = st.sampled_from(["", "prod-", "static-"])
resources = st.sampled_from(RESOURCES)
partitions = st.sampled_from(PARTITIONS)
meta_kinds = st.sampled_from(["own", "own", "own", "other", "missing"])
small = st.integers(0, 3)
pick = st.integers(0, 10**6)  # an index into a list drawn earlier (modulo its length)
ALIAS_NAMES = ["reporting", ".kibana"] + [
    f"{ctx}{tenant}.tracardi-{res}" for ctx in ("", "prod-", "static-") for tenant in TENANTS for res in RESOURCES
]
alias_names = st.sampled_from(ALIAS_NAMES)
# Weighted towards worlds in which something may actually be deleted.
states = st.sampled_from([VersionState.SUPERSEDED] * 3 + [VersionState.CURRENT, VersionState.DELETED])
ages = st.sampled_from([None, -1, 0, 5, 10, 29, 30, 31, 60, 120, 400])
mostly_true = st.sampled_from([True, True, True, False])
outcomes = st.sampled_from([SelectionOutcome.GOVERNED] * 4 + [SelectionOutcome.NO_POLICY, SelectionOutcome.POLICY_TIE])
foreign_names = st.lists(st.sampled_from(FOREIGN_NAMES), max_size=4, unique=True)


def choose(draw: st.DrawFn, items: list[Any]) -> Any:
    return items[draw(pick) % len(items)]


@dataclass(frozen=True)
class World:
    history: list[HistoryEntry]
    inventory: Inventory
    policy: PolicySelection
    enabled: bool
    cluster_live: frozenset[VersionId]
    url_byte_limit: int


@st.composite
def histories(draw: st.DrawFn) -> list[HistoryEntry]:
    entries: list[HistoryEntry] = []
    for position in range(draw(st.integers(1, 5))):
        pair = draw(pairs)
        tag = f"0.{position}.{draw(st.integers(0, 3))}"
        previous = [e.version for e in entries] + [e.db for e in entries]
        migrated_from = choose(draw, previous) if previous and draw(st.booleans()) else None
        age = draw(ages)
        entries.append(
            HistoryEntry(
                version=tag,
                db=pair.db,
                tenant=pair.tenant,
                state=draw(states),
                superseded_at=None if age is None else NOW - timedelta(days=age),
                migrated_from=migrated_from,
                migration_verified=draw(mostly_true),
            )
        )
    return entries


@st.composite
def inventories(draw: st.DrawFn, known: list[VersionId]) -> Inventory:

    def owner() -> VersionId:
        return choose(draw, known) if known and draw(small) else draw(pairs)

    cat: list[dict[str, Any]] = []
    mappings: dict[str, Any] = {}
    for _ in range(draw(st.integers(3, 30))):
        pair = owner()
        context = draw(contexts)
        partition = draw(partitions)
        name = f"{context}{pair.db}.{pair.tenant}.tracardi-{draw(resources)}"
        name += f"-{partition}" if partition else ""
        meta = draw(meta_kinds)
        if meta == "own":
            mappings[name] = {"mappings": {"_meta": {"version": pair.db, "name": pair.tenant}}}
        elif meta == "other":
            other = draw(pairs)
            mappings[name] = {"mappings": {"_meta": {"version": other.db, "name": other.tenant}}}
        cat.append({"index": name, "pri": str(draw(small)), "rep": str(draw(small))})
    for name in draw(foreign_names):
        cat.append({"index": name, "pri": "1", "rep": "0"})
        if draw(st.booleans()):  # a foreign index may even carry a Tracardi-like _meta
            other = draw(pairs)
            mappings[name] = {"mappings": {"_meta": {"version": other.db, "name": other.tenant}}}
    index_names = sorted({row["index"] for row in cat})
    aliases: dict[str, Any] = {}
    for _ in range(draw(st.integers(0, 4))):
        if not index_names:
            break
        alias = draw(alias_names)
        for _ in range(1 + draw(small)):
            target = choose(draw, index_names)
            aliases.setdefault(target, {"aliases": {}})["aliases"][alias] = {}
    templates = []
    for _ in range(draw(st.integers(0, 6))):
        pair = owner()
        prod = draw(st.booleans())
        name = f"{'prod-' if prod else ''}template.{pair.db}.{pair.tenant}.tracardi-{draw(resources)}"
        pattern_owner = pair if draw(small) else draw(pairs)
        body: dict[str, Any] = {
            "index_patterns": [f"{'prod-' if prod else ''}{pattern_owner.db}.{pattern_owner.tenant}.tracardi-x-*"]
        }
        if draw(st.booleans()):
            meta_owner = pair if draw(small) else draw(pairs)
            body["_meta"] = {"version": meta_owner.db, "name": meta_owner.tenant}
        templates.append({"name": name, "index_template": body})
    templates += [{"name": "ilm-history", "index_template": {"index_patterns": ["ilm-history-*"]}}]
    return parse_inventory(cat, aliases, {"index_templates": templates}, mappings)


@st.composite
def policies(draw: st.DrawFn) -> PolicySelection:
    outcome = draw(outcomes)
    if outcome is SelectionOutcome.NO_POLICY:
        return PolicySelection(outcome)
    if outcome is SelectionOutcome.POLICY_TIE:
        return PolicySelection(outcome, tied=("a", "b"))
    rules = RetentionRules(
        keep_superseded_versions=draw(st.sampled_from([0, 0, 1, 2])),
        min_age_after_superseded=timedelta(days=draw(st.sampled_from([0, 0, 7, 30, 90]))),
        dry_run=draw(st.booleans()),
        max_deletions_per_run=draw(st.none() | st.integers(0, 8)),
    )
    return PolicySelection(outcome, RetentionPolicy("p", rules=rules))


@st.composite
def worlds(draw: st.DrawFn) -> World:
    history = draw(histories())
    known = sorted({e.pair for e in history})
    return World(
        history=history,
        inventory=draw(inventories(known)),
        policy=draw(policies()),
        enabled=draw(mostly_true),
        cluster_live=frozenset(draw(st.lists(pairs, max_size=2))),
        url_byte_limit=draw(st.sampled_from([4096, 1024, 300, 200])),
    )


def plan_for(world: World) -> RetentionPlan:
    return plan_retention(
        world.history,
        world.inventory,
        policy=world.policy,
        retention_enabled=world.enabled,
        cluster_live_versions=world.cluster_live,
        now=NOW,
        url_byte_limit=world.url_byte_limit,
    )


# --------------------------------------------------------------------------------------------------
# The oracle: what §7 allows, written from scratch


def deletable_pairs(world: World) -> set[VersionId]:
    policy = world.policy.policy
    if not world.enabled or world.policy.outcome is not SelectionOutcome.GOVERNED or policy is None:
        return set()
    rules = policy.rules
    live = set(world.cluster_live) | {e.pair for e in world.history if e.state is VersionState.CURRENT}
    last_position = {e.pair: i for i, e in enumerate(world.history)}
    superseded = [
        pair
        for pair in last_position
        if pair not in live and any(e.pair == pair and e.state is VersionState.SUPERSEDED for e in world.history)
    ]
    superseded.sort(key=lambda pair: last_position[pair], reverse=True)
    rollback = set(superseded[: rules.keep_superseded_versions])
    unverified = {
        source.pair
        for e in world.history
        if e.migrated_from and not e.migration_verified
        for source in world.history
        if e.migrated_from in (source.version, source.db)
    }
    allowed = set()
    for pair in superseded:
        newest = world.history[last_position[pair]]
        old_enough = newest.superseded_at is not None and NOW - newest.superseded_at >= rules.min_age_after_superseded
        if pair not in rollback and pair not in unverified and old_enough:
            allowed.add(pair)
    return allowed


def pinned_indices(world: World) -> set[str]:
    """Indices behind an alias that is not provably retired (see indices.live_aliases)."""
    live = set(world.cluster_live) | {e.pair for e in world.history if e.state is VersionState.CURRENT}
    owners = {r.name: r.owner for r in world.inventory.indices}
    pinned: set[str] = set()
    for alias in world.inventory.aliases:
        tenant = alias.parsed.tenant if alias.parsed else None
        retired = (
            tenant is not None
            and tenant not in {p.tenant for p in live}
            and all(
                (owner := owners.get(index)) is not None and owner.tenant == tenant and owner not in live
                for index in alias.indices
            )
        )
        if not retired:
            pinned.update(alias.indices)
    return pinned


def allowed_indices(world: World) -> set[str]:
    pairs_ok = deletable_pairs(world)
    pinned = pinned_indices(world)
    return {
        r.name
        for r in world.inventory.indices
        if r.owner in pairs_ok and r.name not in pinned and not r.name.startswith(".")
    }


def allowed_templates(world: World) -> set[str]:
    pairs_ok = deletable_pairs(world)
    return {t.name for t in world.inventory.templates if t.owner in pairs_ok}


def assert_structurally_sound(result: RetentionPlan, world: World) -> None:
    indices = list(result.indices)
    assert len(indices) == len(set(indices))
    assert len(result.templates) == len(set(result.templates))
    assert set(indices) <= world.inventory.index_names()
    assert set(result.templates) <= world.inventory.template_names()
    for name in [*indices, *result.templates]:
        assert not set(name) & set("*?,")
        assert not name.startswith(("-", "_", "+", "."))
    assert all(batch for batch in result.index_batches)
    assert all(batch_path_bytes(batch) <= world.url_byte_limit for batch in result.index_batches)
    cap = world.policy.policy.rules.max_deletions_per_run if world.policy.policy else None
    if cap is not None:
        assert result.deletion_count <= cap
    shards = {r.name: r.shards for r in world.inventory.indices}
    assert result.shards_freed == sum(shards[name] for name in indices)


@MANY
@given(worlds())
def test_plan_never_lists_a_forbidden_name(world: World) -> None:
    result = plan_for(world)
    assert set(result.indices) <= allowed_indices(world)
    assert set(result.templates) <= allowed_templates(world)
    assert_structurally_sound(result, world)
    # The selection and the filter agree: the filter never had to step in.
    assert result.safety_violations == ()
    if result.dry_run:
        assert result.executable_index_batches == ()
        assert result.executable_templates == ()


@SOME
@given(worlds())
def test_plan_deletes_everything_allowed_when_uncapped(world: World) -> None:
    """Safety is not bought by deleting nothing: absent a cap, all that may go does go."""
    result = plan_for(world)
    policy = world.policy.policy
    if policy is None or policy.rules.max_deletions_per_run is not None:
        return
    pinned = pinned_indices(world)
    owners = {r.name: r.owner for r in world.inventory.indices}
    pinned_pairs = {owners[name] for name in pinned if owners.get(name) is not None}
    expected = {
        name
        for name in allowed_indices(world)
        if owners[name] not in pinned_pairs and batch_path_bytes([name]) <= world.url_byte_limit
    }
    assert set(result.indices) == expected
    expected_pairs = {owners[name] for name in expected}
    assert set(result.templates) <= allowed_templates(world)
    for template in world.inventory.templates:
        if template.owner in expected_pairs and template.owner not in pinned_pairs:
            assert template.name in result.templates
    # Every name of the inventory is either planned or kept with a reason.
    listed = set(result.indices) | set(result.templates) | {k.name for k in result.kept}
    assert listed >= world.inventory.index_names() | world.inventory.template_names()


@SOME
@given(worlds(), st.data())
def test_safety_filter_alone_blocks_any_candidate(world: World, data: st.DataObject) -> None:
    """Whatever a (broken) selection proposes, the filter lets through only what §7 allows."""
    inventory_names = sorted(world.inventory.index_names())
    template_names = sorted(world.inventory.template_names())
    invented = ["*", "_all", "080.*", "a,b", "-x", "nope", ".kibana", "080.fa73a.tracardi-flow"]
    index_pool = inventory_names + invented
    template_pool = [*template_names, "template.*", "nope"]
    proposed_indices = [index_pool[i % len(index_pool)] for i in data.draw(st.lists(pick, max_size=40))]
    proposed_templates = [template_pool[i % len(template_pool)] for i in data.draw(st.lists(pick, max_size=10))]
    candidate = RetentionPlan(
        policy="p",
        dry_run=False,
        decisions=(),
        index_batches=(tuple(proposed_indices),),
        templates=tuple(proposed_templates),
        kept=(),
        shards_freed=-1,
    )
    guard = SafetyGuard.build(
        world.history,
        world.inventory,
        policy=world.policy,
        retention_enabled=world.enabled,
        cluster_live_versions=world.cluster_live,
        now=NOW,
        url_byte_limit=world.url_byte_limit,
    )
    result = enforce_safety(candidate, guard)
    assert set(result.indices) <= allowed_indices(world)
    assert set(result.templates) <= allowed_templates(world)
    assert_structurally_sound(result, world)
    accounted = {v.name for v in result.safety_violations} | {k.name for k in result.kept}
    assert accounted | set(result.indices) | set(result.templates) >= set(proposed_indices) | set(proposed_templates)
