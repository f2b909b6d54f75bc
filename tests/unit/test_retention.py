"""The retention plan, policy selection and the safety filter: one test per branch."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tracardi_operator.indices import Inventory, VersionId, parse_inventory
from tracardi_operator.models import LabelSelector, VersionState
from tracardi_operator.retention import plan as planning
from tracardi_operator.retention.decisions import Action, KeepReason, NameKind, PairDecision, RetentionPlan
from tracardi_operator.retention.history import HistoryEntry, RetentionPolicy, RetentionRules
from tracardi_operator.retention.plan import plan_retention
from tracardi_operator.retention.safety import (
    DEFAULT_URL_BYTE_LIMIT,
    REQUEST_LINE_RESERVE,
    SafetyGuard,
    batch_names,
    batch_path_bytes,
    enforce_safety,
    is_exact_name,
)
from tracardi_operator.retention.selection import PolicySelection, SelectionOutcome, select_policy

NOW = datetime(2024, 6, 1, tzinfo=UTC)
V080 = VersionId("080", "fa73a")
V08X = VersionId("08x", "01506")
V0820 = VersionId("0820", "ffe49")


def version_indices(version: VersionId, partitions: list[str]) -> list[str]:
    """A small but complete version: staging, prod- and static- indices, every partition."""
    prefix = f"{version.db}.{version.tenant}.tracardi-"
    names = [f"{prefix}flow", f"prod-{prefix}flow", f"static-{prefix}bridge", f"static-{prefix}flow-action-plugins"]
    for partition in partitions:
        names += [f"{prefix}event-{partition}", f"prod-{prefix}event-{partition}"]
    return names


def version_templates(version: VersionId) -> list[str]:
    return [
        f"template.{version.db}.{version.tenant}.tracardi-event",
        f"prod-template.{version.db}.{version.tenant}.tracardi-event",
    ]


OLD_080 = version_indices(V080, ["2023-1", "2023-2"])
OLD_08X = version_indices(V08X, ["2023-11", "2023-12"])
LIVE_0820 = [*version_indices(V0820, ["2024-q1", "2024-q2"]), "0820.ffe49.tracardi-item-2024-year"]
PLANTED_OTHER_TENANTS = ["0820.abcde.tracardi-flow", "080.zzzzz.tracardi-profile-2024-q1"]
PLANTED_FOREIGN = ["logs-app", ".kibana_1", "080.fa73a.tracardi-session", "080.fa73a.tracardi-rule"]


def build_inventory(extra_aliases: dict[str, list[str]] | None = None) -> Inventory:
    metas: dict[str, VersionId | None] = {}
    for names, version in ((OLD_080, V080), (OLD_08X, V08X), (LIVE_0820, V0820)):
        metas.update(dict.fromkeys(names, version))
    metas["0820.abcde.tracardi-flow"] = VersionId("0820", "abcde")
    metas["080.zzzzz.tracardi-profile-2024-q1"] = VersionId("080", "zzzzz")
    metas["080.fa73a.tracardi-session"] = V0820  # named like ours, _meta disagrees
    metas["080.fa73a.tracardi-rule"] = None  # no _meta at all
    metas["logs-app"] = None
    metas[".kibana_1"] = None
    cat = [{"index": name, "pri": "1", "rep": "1", "docs.count": "5", "status": "open"} for name in metas]
    mappings = {name: {"mappings": {"_meta": {"version": v.db, "name": v.tenant}}} for name, v in metas.items() if v}
    alias_targets: dict[str, list[str]] = {}
    for names, tenant in ((OLD_080, "fa73a"), (OLD_08X, "01506"), (LIVE_0820, "ffe49")):
        for name in names:
            context = "prod-" if name.startswith("prod-") else "static-" if name.startswith("static-") else ""
            resource = name.split(".tracardi-")[1].split("-20")[0]
            alias_targets.setdefault(f"{context}{tenant}.tracardi-{resource}", []).append(name)
    alias_targets.update(extra_aliases or {})
    aliases: dict[str, Any] = {}
    for alias, indices in alias_targets.items():
        for index in indices:
            aliases.setdefault(index, {"aliases": {}})["aliases"][alias] = {}
    templates = {
        "index_templates": [
            {
                "name": name,
                "index_template": {
                    "index_patterns": [
                        f"{'prod-' if name.startswith('prod-') else ''}{v.db}.{v.tenant}.tracardi-event-*"
                    ]
                },
            }
            for v in (V080, V08X, V0820)
            for name in version_templates(v)
        ]
        + [{"name": "ilm-history", "index_template": {"index_patterns": ["ilm-history-*"]}}]
    }
    return parse_inventory(cat, aliases, templates, mappings)


def standard_history(*, verified: bool = True) -> list[HistoryEntry]:
    return [
        HistoryEntry("0.8.0", "080", "fa73a", VersionState.SUPERSEDED, superseded_at=NOW - timedelta(days=60)),
        HistoryEntry(
            "0.8.1",
            "08x",
            "01506",
            VersionState.SUPERSEDED,
            superseded_at=NOW - timedelta(days=30),
            migrated_from="0.8.0",
            migration_verified=True,
        ),
        HistoryEntry(
            "0.8.2.1", "0820", "ffe49", VersionState.CURRENT, migrated_from="0.8.1", migration_verified=verified
        ),
    ]


def governed(**rules: Any) -> PolicySelection:
    return PolicySelection(SelectionOutcome.GOVERNED, RetentionPolicy("gc", rules=RetentionRules(**rules)))


def plan(
    *,
    history: list[HistoryEntry] | None = None,
    inventory: Inventory | None = None,
    policy: PolicySelection | None = None,
    enabled: bool = True,
    cluster_live: tuple[VersionId, ...] = (),
    url_byte_limit: int = DEFAULT_URL_BYTE_LIMIT,
) -> RetentionPlan:
    return plan_retention(
        standard_history() if history is None else history,
        build_inventory() if inventory is None else inventory,
        policy=governed(keep_superseded_versions=0, min_age_after_superseded=timedelta(0))
        if policy is None
        else policy,
        retention_enabled=enabled,
        cluster_live_versions=cluster_live,
        now=NOW,
        url_byte_limit=url_byte_limit,
    )


def decision(result: RetentionPlan, pair: VersionId) -> PairDecision:
    return next(d for d in result.decisions if d.pair == pair)


def kept_reasons(result: RetentionPlan) -> dict[str, KeepReason]:
    return {k.name: k.reason for k in result.kept}


# --------------------------------------------------------------------------------------------------
# The plan


def test_keep_none_deletes_every_superseded_index_and_template_and_nothing_else() -> None:
    result = plan()
    assert set(result.indices) == set(OLD_080 + OLD_08X)
    assert len(result.indices) == len(OLD_080 + OLD_08X)
    assert set(result.templates) == set(version_templates(V080) + version_templates(V08X))
    assert result.shards_freed == 2 * len(OLD_080 + OLD_08X)
    assert not result.safety_violations
    assert {d.pair: (d.action, d.reason) for d in result.decisions} == {
        V080: (Action.DELETE, KeepReason.ELIGIBLE),
        V08X: (Action.DELETE, KeepReason.ELIGIBLE),
    }
    d080 = decision(result, V080)
    assert (d080.indices_planned, d080.templates_planned, d080.remaining_after_run) == (len(OLD_080), 2, 0)
    assert d080.eligible_at == NOW - timedelta(days=60)
    # Oldest version first, and the order within a version is stable.
    assert result.indices[: len(OLD_080)] == tuple(sorted(OLD_080))
    reasons = kept_reasons(result)
    assert all(reasons[name] is KeepReason.LIVE_PAIR for name in LIVE_0820 + version_templates(V0820))
    assert reasons["0820.abcde.tracardi-flow"] is KeepReason.OTHER_TENANT
    assert reasons["080.zzzzz.tracardi-profile-2024-q1"] is KeepReason.OTHER_TENANT
    assert all(reasons[name] is KeepReason.FOREIGN for name in [*PLANTED_FOREIGN, "ilm-history"])
    details = {k.name: k.detail for k in result.kept}
    assert details["080.fa73a.tracardi-session"] == "MetaDisagrees"
    assert details["080.fa73a.tracardi-rule"] == "MetaMissing"
    assert details[".kibana_1"] == "SystemIndex"
    assert result.kept_summary()["LivePair"] == len(LIVE_0820) + 2
    assert not result.dry_run
    assert result.executable_index_batches == result.index_batches


def test_keep_one_superseded_version_deletes_only_the_oldest() -> None:
    result = plan(policy=governed(keep_superseded_versions=1, min_age_after_superseded=timedelta(0)))
    assert set(result.indices) == set(OLD_080)
    assert set(result.templates) == set(version_templates(V080))
    assert decision(result, V08X).reason is KeepReason.RETAINED_FOR_ROLLBACK
    assert decision(result, V08X).action is Action.KEEP
    assert all(kept_reasons(result)[n] is KeepReason.RETAINED_FOR_ROLLBACK for n in OLD_08X)


def test_keep_more_than_exist_deletes_nothing() -> None:
    result = plan(policy=governed(keep_superseded_versions=5, min_age_after_superseded=timedelta(0)))
    assert result.deletion_count == 0


@pytest.mark.parametrize(
    ("selection", "enabled", "reason"),
    [
        (governed(keep_superseded_versions=0), False, KeepReason.RETENTION_DISABLED),
        (PolicySelection(SelectionOutcome.NO_POLICY), True, KeepReason.NO_POLICY),
        (PolicySelection(SelectionOutcome.POLICY_TIE, tied=("a", "b")), True, KeepReason.POLICY_TIE),
        (PolicySelection(SelectionOutcome.POLICY_TIE, tied=("a", "b")), False, KeepReason.RETENTION_DISABLED),
    ],
)
def test_nothing_is_deleted_without_a_governing_policy(
    selection: PolicySelection, enabled: bool, reason: KeepReason
) -> None:
    result = plan(policy=selection, enabled=enabled)
    assert result.deletion_count == 0
    assert result.shards_freed == 0
    assert {d.reason for d in result.decisions} == {reason}
    assert not result.safety_violations


def test_too_recent_and_eligible_at() -> None:
    result = plan(policy=governed(keep_superseded_versions=0, min_age_after_superseded=timedelta(days=45)))
    assert decision(result, V080).reason is KeepReason.ELIGIBLE
    d08x = decision(result, V08X)
    assert d08x.reason is KeepReason.TOO_RECENT
    assert d08x.eligible_at == NOW + timedelta(days=15)
    assert set(result.indices) == set(OLD_080)


def test_exactly_at_eligible_at_is_old_enough() -> None:
    result = plan(policy=governed(keep_superseded_versions=0, min_age_after_superseded=timedelta(days=30)))
    assert decision(result, V08X).reason is KeepReason.ELIGIBLE


def test_unknown_superseded_at_keeps() -> None:
    history = standard_history()
    history[0] = replace(history[0], superseded_at=None)
    result = plan(history=history)
    assert decision(result, V080).reason is KeepReason.SUPERSEDED_AT_UNKNOWN
    assert decision(result, V080).eligible_at is None
    assert set(result.indices) == set(OLD_08X)


def test_unverified_migration_source_is_kept() -> None:
    result = plan(history=standard_history(verified=False))
    assert decision(result, V08X).reason is KeepReason.UNVERIFIED_MIGRATION_SOURCE
    assert set(result.indices) == set(OLD_080)


def test_migrated_from_may_name_a_db_version() -> None:
    history = standard_history()
    history[2] = replace(history[2], migrated_from="08x", migration_verified=False)
    assert decision(plan(history=history), V08X).reason is KeepReason.UNVERIFIED_MIGRATION_SOURCE


def test_pair_live_for_another_installation_is_kept() -> None:
    result = plan(cluster_live=(V080,))
    assert decision(result, V080).reason is KeepReason.LIVE_PAIR
    assert set(result.indices) == set(OLD_08X)


def test_live_pair_does_not_take_a_rollback_slot() -> None:
    # 08x is superseded here but live for another installation: it stays as LivePair, and the one
    # rollback slot goes to the newest superseded pair that is not live (080), not to 08x.
    result = plan(
        cluster_live=(V08X,), policy=governed(keep_superseded_versions=1, min_age_after_superseded=timedelta(0))
    )
    assert decision(result, V08X).reason is KeepReason.LIVE_PAIR
    assert decision(result, V080).reason is KeepReason.RETAINED_FOR_ROLLBACK
    assert result.deletion_count == 0
    assert result.safety_violations == ()


def test_live_pair_with_several_tags_does_not_take_a_rollback_slot() -> None:
    # The falsifying example of the property test, reduced: several entries per pair, some without
    # superseded_at, and a newer superseded pair that is live on the cluster.
    v070 = VersionId("070", "fa73a")
    v070_other = VersionId("070", "01506")
    live = VersionId("0820", "fa73a")
    history = [
        HistoryEntry("0.0.0", v070.db, v070.tenant, VersionState.SUPERSEDED, migration_verified=True),
        HistoryEntry(
            "0.1.0", v070.db, v070.tenant, VersionState.SUPERSEDED, superseded_at=NOW, migration_verified=True
        ),
        HistoryEntry("0.2.0", v070_other.db, v070_other.tenant, VersionState.SUPERSEDED, migration_verified=True),
        HistoryEntry("0.3.0", v070_other.db, v070_other.tenant, VersionState.SUPERSEDED, migration_verified=True),
        HistoryEntry("0.4.0", live.db, live.tenant, VersionState.SUPERSEDED, migration_verified=True),
    ]
    name = "070.fa73a.tracardi-flow"
    inventory = parse_inventory(
        [{"index": name, "pri": "0", "rep": "0"}],
        {},
        {"index_templates": []},
        {name: {"mappings": {"_meta": {"version": "070", "name": "fa73a"}}}},
    )
    result = plan(
        history=history,
        inventory=inventory,
        cluster_live=(live,),
        policy=governed(keep_superseded_versions=2, min_age_after_superseded=timedelta(0)),
    )
    assert decision(result, live).reason is KeepReason.LIVE_PAIR
    assert decision(result, v070_other).reason is KeepReason.RETAINED_FOR_ROLLBACK
    assert decision(result, v070).reason is KeepReason.RETAINED_FOR_ROLLBACK
    assert result.indices == ()
    assert result.safety_violations == ()


def test_several_tags_of_one_pair_keep_it_live() -> None:
    history = [
        *standard_history()[:2],
        HistoryEntry("0.8.2", "0820", "ffe49", VersionState.SUPERSEDED, superseded_at=NOW - timedelta(days=9)),
        HistoryEntry("0.8.2.1", "0820", "ffe49", VersionState.CURRENT),
    ]
    result = plan(history=history)
    assert V0820 not in {d.pair for d in result.decisions}
    assert not set(result.indices) & set(LIVE_0820)


def test_rollback_counts_pairs_not_tags() -> None:
    history = [
        HistoryEntry("0.8.0", "080", "fa73a", VersionState.SUPERSEDED, superseded_at=NOW - timedelta(days=90)),
        HistoryEntry("0.8.1", "08x", "01506", VersionState.SUPERSEDED, superseded_at=NOW - timedelta(days=60)),
        HistoryEntry("0.8.1.1", "08x", "01506", VersionState.SUPERSEDED, superseded_at=NOW - timedelta(days=30)),
        HistoryEntry("0.8.2.1", "0820", "ffe49", VersionState.CURRENT),
    ]
    result = plan(history=history, policy=governed(keep_superseded_versions=1, min_age_after_superseded=timedelta(0)))
    d08x = decision(result, V08X)
    assert d08x.reason is KeepReason.RETAINED_FOR_ROLLBACK
    assert d08x.versions == ("0.8.1", "0.8.1.1")
    assert decision(result, V080).reason is KeepReason.ELIGIBLE


def test_alias_of_the_live_tenant_pins_an_old_index() -> None:
    inventory = build_inventory({"ffe49.tracardi-rule": ["080.fa73a.tracardi-flow"]})
    result = plan(inventory=inventory)
    assert decision(result, V080).reason is KeepReason.ALIASED_BY_LIVE
    assert set(result.indices) == set(OLD_08X)


def test_foreign_alias_pins_an_old_index() -> None:
    inventory = build_inventory({"reporting": ["prod-08x.01506.tracardi-event-2023-11"]})
    result = plan(inventory=inventory)
    assert decision(result, V08X).reason is KeepReason.ALIASED_BY_LIVE
    assert set(result.indices) == set(OLD_080)


def test_retired_alias_of_an_old_tenant_does_not_pin() -> None:
    # The inventory's own fa73a/01506 aliases point to their versions: retired, nothing pinned.
    assert set(plan().indices) == set(OLD_080 + OLD_08X)


def test_deleted_pair_leftovers_are_left_alone() -> None:
    history = standard_history()
    history[0] = replace(history[0], state=VersionState.DELETED)
    result = plan(history=history)
    assert V080 not in {d.pair for d in result.decisions}
    assert all(kept_reasons(result)[name] is KeepReason.ALREADY_DELETED for name in OLD_080)


def test_pair_unknown_to_history_with_a_known_tenant() -> None:
    history = standard_history()[1:]
    result = plan(history=history)
    assert all(kept_reasons(result)[name] is KeepReason.OTHER_TENANT for name in OLD_080)
    history = [HistoryEntry("0.8.2", "0820", "01506", VersionState.CURRENT)]
    result = plan(history=history)
    assert all(kept_reasons(result)[name] is KeepReason.NOT_IN_HISTORY for name in OLD_08X)
    assert result.deletion_count == 0


def test_dry_run_plans_but_executes_nothing() -> None:
    result = plan(policy=governed(keep_superseded_versions=0, min_age_after_superseded=timedelta(0), dry_run=True))
    assert result.dry_run
    assert set(result.indices) == set(OLD_080 + OLD_08X)
    assert result.executable_index_batches == ()
    assert result.executable_templates == ()


def test_max_deletions_per_run_defers_the_rest_oldest_first() -> None:
    cap = len(OLD_080) + 1
    result = plan(
        policy=governed(keep_superseded_versions=0, min_age_after_superseded=timedelta(0), max_deletions_per_run=cap)
    )
    assert result.deletion_count == cap
    # All of 080's indices, then one template of 080: its templates go only after its indices.
    assert set(result.indices) == set(OLD_080)
    assert len(result.templates) == 1
    assert result.templates[0] in version_templates(V080)
    d080, d08x = decision(result, V080), decision(result, V08X)
    assert (d080.remaining_after_run, d08x.remaining_after_run) == (1, len(OLD_08X) + 2)
    deferred = {k.name for k in result.kept if k.reason is KeepReason.DEFERRED_BY_LIMIT}
    assert deferred == set(OLD_08X) | set(version_templates(V08X)) | (
        set(version_templates(V080)) - set(result.templates)
    )


def test_cap_cutting_into_a_version_defers_its_templates() -> None:
    result = plan(
        policy=governed(keep_superseded_versions=0, min_age_after_superseded=timedelta(0), max_deletions_per_run=2)
    )
    assert len(result.indices) == 2
    assert result.templates == ()


def test_cap_of_zero_deletes_nothing() -> None:
    result = plan(
        policy=governed(keep_superseded_versions=0, min_age_after_superseded=timedelta(0), max_deletions_per_run=0)
    )
    assert result.deletion_count == 0
    assert decision(result, V080).action is Action.DELETE


def test_batches_respect_the_url_limit() -> None:
    limit = REQUEST_LINE_RESERVE + 100
    result = plan(url_byte_limit=limit)
    assert len(result.index_batches) > 1
    assert all(batch_path_bytes(batch) <= limit for batch in result.index_batches)
    assert set(result.indices) == set(OLD_080 + OLD_08X)


def test_a_name_longer_than_the_limit_is_kept() -> None:
    result = plan(url_byte_limit=REQUEST_LINE_RESERVE + 30)
    reasons = kept_reasons(result)
    assert reasons["prod-080.fa73a.tracardi-event-2023-1"] is KeepReason.NAME_TOO_LONG
    assert all(batch_path_bytes(batch) <= REQUEST_LINE_RESERVE + 30 for batch in result.index_batches)


def test_batch_names() -> None:
    assert batch_names([]) == ()
    names = [f"n{i:03d}" for i in range(10)]
    batches = batch_names(names, REQUEST_LINE_RESERVE + 1 + 4 * 3 + 2)
    assert batches[0] == ("n000", "n001", "n002")
    assert [n for b in batches for n in b] == names
    # Non-ASCII is percent-encoded on the wire and measured so.
    assert batch_path_bytes(["é"]) == REQUEST_LINE_RESERVE + 1 + 6


# --------------------------------------------------------------------------------------------------
# The safety filter: it must hold even when the selection is wrong


def guard_for(policy: PolicySelection | None = None, enabled: bool = True, **kwargs: Any) -> SafetyGuard:
    return SafetyGuard.build(
        kwargs.get("history", standard_history()),
        kwargs.get("inventory", build_inventory()),
        policy=policy or governed(keep_superseded_versions=0, min_age_after_superseded=timedelta(0)),
        retention_enabled=enabled,
        cluster_live_versions=kwargs.get("cluster_live", ()),
        now=NOW,
    )


def everything_candidate(inventory: Inventory) -> RetentionPlan:
    """A selection gone mad: every index and template, invented names and wildcards, twice over."""
    names = [r.name for r in inventory.indices] + ["*", "080.*", "_all", "-080.fa73a.tracardi-flow", "a,b", "nope"]
    return RetentionPlan(
        policy="gc",
        dry_run=False,
        decisions=(),
        index_batches=(tuple(names), tuple(names)),
        templates=(*(t.name for t in inventory.templates), "template.*", "nope"),
        kept=(),
        shards_freed=10**6,
    )


def test_safety_filter_strips_everything_forbidden() -> None:
    inventory = build_inventory()
    result = enforce_safety(everything_candidate(inventory), guard_for())
    assert set(result.indices) == set(OLD_080 + OLD_08X)
    assert len(result.indices) == len(set(result.indices))
    assert set(result.templates) == set(version_templates(V080) + version_templates(V08X))
    assert result.shards_freed == 2 * len(OLD_080 + OLD_08X)
    rules = {v.name: v.rule for v in result.safety_violations}
    assert rules["0820.ffe49.tracardi-flow"] == "PairNotDeletable"
    assert rules["0820.abcde.tracardi-flow"] == "PairNotDeletable"
    assert rules["080.fa73a.tracardi-session"] == "NotAConfirmedTracardiIndex"
    assert rules[".kibana_1"] == "NotAnExactName"
    assert rules["*"] == rules["_all"] == rules["a,b"] == rules["-080.fa73a.tracardi-flow"] == "NotAnExactName"
    assert rules["nope"] == "NotAConfirmedTracardiTemplate"  # the template check comes last and wins
    assert rules["ilm-history"] == "NotAConfirmedTracardiTemplate"
    assert all(k.reason is KeepReason.BLOCKED_BY_SAFETY_FILTER for k in result.kept)


@pytest.mark.parametrize(
    ("guard_kwargs", "allowed"),
    [
        ({"enabled": False}, set()),
        ({"policy": PolicySelection(SelectionOutcome.NO_POLICY)}, set()),
        ({"policy": PolicySelection(SelectionOutcome.POLICY_TIE, tied=("a", "b"))}, set()),
        ({"policy": governed(keep_superseded_versions=1, min_age_after_superseded=timedelta(0))}, set(OLD_080)),
        ({"policy": governed(keep_superseded_versions=0, min_age_after_superseded=timedelta(days=45))}, set(OLD_080)),
        ({"history": standard_history(verified=False)}, set(OLD_080)),
        ({"cluster_live": (V08X,)}, set(OLD_080)),
        (
            {"inventory": build_inventory({"ffe49.tracardi-x": ["080.fa73a.tracardi-flow"]})},
            set(OLD_080 + OLD_08X) - {"080.fa73a.tracardi-flow"},
        ),
    ],
)
def test_safety_filter_rules(guard_kwargs: dict[str, Any], allowed: set[str]) -> None:
    inventory = guard_kwargs.get("inventory", build_inventory())
    result = enforce_safety(everything_candidate(inventory), guard_for(**guard_kwargs))
    assert set(result.indices) == allowed


def test_safety_filter_caps_and_rebatches() -> None:
    guard = replace(guard_for(), max_deletions=3, url_byte_limit=REQUEST_LINE_RESERVE + 60)
    result = enforce_safety(everything_candidate(build_inventory()), guard)
    assert result.deletion_count == 3
    assert all(batch_path_bytes(b) <= REQUEST_LINE_RESERVE + 60 for b in result.index_batches)


def test_every_plan_passes_the_filter_even_with_a_broken_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = build_inventory()

    def broken_candidate(*args: Any, **kwargs: Any) -> RetentionPlan:
        return everything_candidate(inventory)

    monkeypatch.setattr(planning, "_candidate_plan", broken_candidate)
    result = plan(
        inventory=inventory, policy=governed(keep_superseded_versions=1, min_age_after_superseded=timedelta(0))
    )
    assert set(result.indices) == set(OLD_080)
    assert result.safety_violations


def test_broken_pair_decisions_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real_decide = planning._decide_pairs

    def approve_everything(*args: Any) -> dict[VersionId, PairDecision]:
        return {
            pair: replace(d, action=Action.DELETE, reason=KeepReason.ELIGIBLE) for pair, d in real_decide(*args).items()
        }

    monkeypatch.setattr(planning, "_decide_pairs", approve_everything)
    result = plan(history=standard_history(verified=False), enabled=False)
    assert result.deletion_count == 0
    assert {v.rule for v in result.safety_violations} == {"NotGoverned"}


@pytest.mark.parametrize(
    ("name", "exact"),
    [
        ("080.fa73a.tracardi-flow", True),
        ("", False),
        ("*", False),
        ("a*", False),
        ("a?", False),
        ("a,b", False),
        ("-a", False),
        ("_all", False),
        ("+a", False),
        (".kibana", False),
        (" a", False),
        ("a b", False),
        ("a\tb", False),
        ("a:b", False),
        ("a#b", False),
        ("a/b", False),
        ('a"b', False),
        ("a|b", False),
        ("a<b", False),
        ("a\\b", False),
        ("tracardi-shop-acme-20260101-120000", True),
        ("template.0820.ffe49.tracardi-flow", True),
    ],
)
def test_is_exact_name(name: str, exact: bool) -> None:
    assert is_exact_name(name) is exact


# --------------------------------------------------------------------------------------------------
# Policy selection


def test_select_policy() -> None:
    ns = {"kubernetes.io/metadata.name": "acme"}
    labels = {"env": "prod"}
    everyone = RetentionPolicy("everyone", priority=0)
    prod = RetentionPolicy("prod", priority=10, selector=LabelSelector(match_labels={"env": "prod"}))
    other_ns = RetentionPolicy(
        "other-ns", priority=100, namespace_selector=LabelSelector(match_labels={"kubernetes.io/metadata.name": "x"})
    )
    assert select_policy([], ns, labels).outcome is SelectionOutcome.NO_POLICY
    assert select_policy([other_ns], ns, labels).outcome is SelectionOutcome.NO_POLICY
    assert "no retention policy" in select_policy([], ns, labels).message
    chosen = select_policy([everyone, prod, other_ns], ns, labels)
    assert chosen.outcome is SelectionOutcome.GOVERNED
    assert chosen.policy == prod
    assert chosen.message == "governed by prod"
    tie = select_policy([everyone, prod, replace(prod, name="also-prod")], ns, labels)
    assert tie.outcome is SelectionOutcome.POLICY_TIE
    assert tie.policy is None
    assert tie.tied == ("also-prod", "prod")
    assert tie.message == "tie between also-prod and prod: no policy applies"
    # A tie below the top does not matter.
    assert select_policy([everyone, replace(everyone, name="e2"), prod], ns, labels).policy == prod


def test_kept_name_kinds() -> None:
    result = plan()
    kinds = {k.name: k.kind for k in result.kept}
    assert kinds["ilm-history"] is NameKind.TEMPLATE
    assert kinds["logs-app"] is NameKind.INDEX
