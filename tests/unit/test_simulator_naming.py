"""The simulator's version table and index naming (docs/tracardi.md §1-2, docs/tracardi-resources.md)."""

from __future__ import annotations

import datetime as dt

import pytest

from devenv.simulator.naming import (
    INDEX_PATTERN,
    Namespace,
    default_tenant,
    effective_partitioning,
    expected_index_set,
    partition_suffix,
    tracardi_run_quarter_suffix,
)
from devenv.simulator.versions import V08X, V080, V082X, V0820, UnknownTagError, version_for_tag

DAY = dt.date(2024, 3, 15)


@pytest.mark.parametrize(
    ("tag", "db"),
    [("0.8.0", "080"), ("0.8.1", "08x"), ("0.8.1.3", "08x"), ("0.8.2", "0820"), ("0.8.2.1", "0820"),
     ("0.8.2.2", "0820"), ("0.8.2-rc2", "082x")],
)
def test_tag_selects_database_version(tag: str, db: str) -> None:
    assert version_for_tag(tag).db_version == db


@pytest.mark.parametrize("tag", ["0.7.4", "0.9.0", "latest", "0.8.1-dev", "", "0.8.2.1.1"])
def test_unknown_tag_is_refused_with_one_line(tag: str) -> None:
    with pytest.raises(UnknownTagError) as e:
        version_for_tag(tag)
    assert "\n" not in str(e.value)


def test_default_tenants_follow_the_md5_rule() -> None:
    assert [default_tenant(v) for v in (V080, V08X, V0820, V082X)] == ["fa73a", "01506", "ffe49", "119a2"]


def test_version_details_fields() -> None:
    assert (V0820.version, V08X.version, V080.version) == ("0.8.2", "0.8.1", "0.8.0")
    assert not V080.reports_db_version
    assert V08X.reports_db_version
    assert V08X.migration_sources == ("080",)
    assert V0820.migration_sources == ("08x", "082x")


@pytest.mark.parametrize(
    ("version", "resources", "per_context", "templates"),
    [(V080, 35, 33, 5), (V08X, 37, 35, 6), (V0820, 39, 37, 10)],
)
def test_resource_counts_match_tracardi_resources_md(version, resources, per_context, templates) -> None:  # type: ignore[no-untyped-def]
    assert len(version.resources) == resources
    assert len(version.plain) + len(version.partitioned) == per_context
    assert len(version.partitioned) == templates
    assert {r.key for r in version.static} == {"action", "bridge"}


def test_partition_suffixes() -> None:
    assert partition_suffix("month", dt.date(2023, 11, 2)) == "2023-11"
    assert partition_suffix("month", dt.date(2024, 3, 2)) == "2024-3"
    assert partition_suffix("quarter", dt.date(2024, 3, 31)) == "2024-q1"
    assert partition_suffix("quarter", dt.date(2024, 4, 1)) == "2024-q2"
    assert partition_suffix("quarter", dt.date(2024, 12, 1)) == "2024-q4"
    assert partition_suffix("year", dt.date(2024, 12, 1)) == "2024-year"


@pytest.mark.parametrize(("month", "q"), [(1, 2), (3, 4), (4, 1), (5, 2), (11, 4), (12, 1)])
def test_tracardi_wrong_quarter_formula(month: int, q: int) -> None:
    assert tracardi_run_quarter_suffix(dt.date(2024, month, 1)) == f"2024-q{q}"


def test_names_from_the_facts_examples() -> None:
    ns = Namespace("08x", "01506")
    assert ns.index(V08X.resource("event"), "production", "2023-11") == "prod-08x.01506.tracardi-event-2023-11"
    assert ns.index(V08X.resource("flow"), "staging") == "08x.01506.tracardi-flow"
    ns2 = Namespace("0820", "ffe49")
    assert ns2.index(V0820.resource("bridge"), "production") == "static-0820.ffe49.tracardi-bridge"
    assert ns2.alias(V0820.resource("bridge"), "staging") == "static-ffe49.tracardi-bridge"
    assert ns2.template(V0820.resource("event"), "staging") == "template.0820.ffe49.tracardi-event"
    assert ns2.template(V0820.resource("event"), "production") == "prod-template.0820.ffe49.tracardi-event"
    assert ns2.template_pattern(V0820.resource("event"), "production") == "prod-0820.ffe49.tracardi-event-*-*"
    assert ns2.alias(V0820.resource("user-logs"), "production") == "prod-ffe49.tracardi-user-log"
    assert ns2.index(V0820.resource("event-to-profile"), "staging") == "0820.ffe49.tracardi-event_to_profile"


@pytest.mark.parametrize(
    ("version", "indices", "templates"),
    [(V080, 33 * 2 + 2, 10), (V08X, 35 * 2 + 2, 12), (V0820, 37 * 2 + 2, 20)],
)
def test_expected_index_set_sizes(version, indices, templates) -> None:  # type: ignore[no-untyped-def]
    ns = Namespace(version.db_version, default_tenant(version))
    s = expected_index_set(version, ns, {}, DAY)
    assert len(s.indices) == len(set(s.indices)) == indices
    assert len(s.templates) == len(set(s.templates)) == templates
    assert len(s.aliases) == len(set(s.aliases)) == indices
    for name in s.indices:
        m = INDEX_PATTERN.match(name)
        assert m is not None, name
        assert (m["db"], m["tenant"]) == (ns.db, ns.tenant)


def test_expected_index_set_0820_partitions() -> None:
    ns = Namespace("0820", "ffe49")
    s = set(expected_index_set(V0820, ns, {}, DAY).indices)
    assert {"0820.ffe49.tracardi-event-2024-3", "prod-0820.ffe49.tracardi-profile-2024-q1",
            "0820.ffe49.tracardi-item-2024-year", "0820.ffe49.tracardi-entity-2024-q1",
            "prod-0820.ffe49.tracardi-console-log-2024-3", "static-0820.ffe49.tracardi-flow-action-plugins",
            "0820.ffe49.tracardi-dispatch-log-2024-3"} <= s
    assert "0820.ffe49.tracardi-entity" not in s


def test_partitioning_env_changes_0820_names_and_entity_reads_item_partitioning() -> None:
    env = {"EVENT_PARTITIONING": "quarter", "ITEM_PARTITIONING": "month", "ENTITY_PARTITIONING": "year"}
    assert effective_partitioning(V0820.resource("event"), env) == "quarter"
    assert effective_partitioning(V0820.resource("entity"), env) == "month"
    assert effective_partitioning(V0820.resource("item"), env) == "month"
    assert effective_partitioning(V0820.resource("profile"), env) == "quarter"
    assert effective_partitioning(V08X.resource("event"), env) == "month"  # 0.8.1 reads no such variable
    assert effective_partitioning(V0820.resource("flow"), env) is None


def test_anchored_partition_regex() -> None:
    ns = Namespace("08x", "01506")
    rx = ns.partition_regex(V08X.resource("event"), "staging")
    assert rx.match("08x.01506.tracardi-event-2023-11")
    assert rx.match("08x.01506.tracardi-event-2024-q1")
    assert not rx.match("prod-08x.01506.tracardi-event-2023-11")
    assert not rx.match("08x.01506.tracardi-event-management")
    assert not rx.match("08x.01506.tracardi-event")
