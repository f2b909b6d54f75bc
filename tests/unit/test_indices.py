"""Parsing and classification of the index inventory (docs/tracardi.md §2)."""

from __future__ import annotations

from typing import Any

import pytest

from tracardi_operator.elastic import index_answers_as_state, state_rows
from tracardi_operator.indices import (
    Context,
    ForeignReason,
    IndexName,
    Inventory,
    VersionId,
    classify_index,
    classify_template,
    live_aliases,
    meta_version,
    parse_alias_name,
    parse_index_name,
    parse_inventory,
    parse_template_name,
)

V080 = VersionId("080", "fa73a")
V08X = VersionId("08x", "01506")
V0820 = VersionId("0820", "ffe49")


def meta(version: VersionId) -> dict[str, Any]:
    return {"mappings": {"_meta": {"version": version.db, "name": version.tenant}}}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("080.fa73a.tracardi-flow", IndexName(Context.STAGING, V080, "flow", None)),
        ("prod-08x.01506.tracardi-event-2023-11", IndexName(Context.PRODUCTION, V08X, "event", "2023-11")),
        ("0820.ffe49.tracardi-profile-2024-q1", IndexName(Context.STAGING, V0820, "profile", "2024-q1")),
        ("static-0820.ffe49.tracardi-bridge", IndexName(Context.STATIC, V0820, "bridge", None)),
        ("0820.ffe49.tracardi-event-2024-3", IndexName(Context.STAGING, V0820, "event", "2024-3")),
        ("prod-0820.ffe49.tracardi-item-2024-year", IndexName(Context.PRODUCTION, V0820, "item", "2024-year")),
        (
            "static-0820.ffe49.tracardi-flow-action-plugins",
            IndexName(Context.STATIC, V0820, "flow-action-plugins", None),
        ),
        ("0820.ffe49.tracardi-user-log-2024-year", IndexName(Context.STAGING, V0820, "user-log", "2024-year")),
        ("0820.ffe49.tracardi-event_to_profile", IndexName(Context.STAGING, V0820, "event_to_profile", None)),
        ("0820.abcde.tracardi-flow", IndexName(Context.STAGING, VersionId("0820", "abcde"), "flow", None)),
        (
            "080.zzzzz.tracardi-profile-2024-q1",
            IndexName(Context.STAGING, VersionId("080", "zzzzz"), "profile", "2024-q1"),
        ),
        # Not a partition suffix (q5, three-digit month): stays part of the resource name.
        ("080.fa73a.tracardi-event-2024-q5", IndexName(Context.STAGING, V080, "event-2024-q5", None)),
    ],
)
def test_parse_index_name(name: str, expected: IndexName) -> None:
    assert parse_index_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        ".kibana",
        ".kibana_1",
        ".prod-080.fa73a.tracardi-flow",
        "logs-2024",
        "tracardi-flow",
        "fa73a.tracardi-flow",  # an alias name, not an index name
        "template.0820.ffe49.tracardi-event",
        "test-080.fa73a.tracardi-flow",
        "a080.fa73a.tracardi-flow",
        "080.fa73a.tracardi",
        "080..tracardi-flow",
        "080.fa.73a.tracardi-flow",
        "",
    ],
)
def test_unparseable_index_names(name: str) -> None:
    assert parse_index_name(name) is None


def test_template_names() -> None:
    assert parse_template_name("template.0820.ffe49.tracardi-event") == (Context.STAGING, V0820, "event")
    assert parse_template_name("prod-template.08x.01506.tracardi-log") == (Context.PRODUCTION, V08X, "log")
    assert parse_template_name("static-template.08x.01506.tracardi-log") is None
    assert parse_template_name("ilm-history") is None
    assert parse_template_name("0820.ffe49.tracardi-event") is None


def test_alias_names() -> None:
    alias = parse_alias_name("prod-ffe49.tracardi-event")
    assert alias is not None
    assert (alias.context, alias.tenant, alias.resource) == (
        Context.PRODUCTION,
        "ffe49",
        "event",
    )
    static = parse_alias_name("static-ffe49.tracardi-bridge")
    assert static is not None
    assert static.context is Context.STATIC
    assert parse_alias_name(".kibana") is None
    assert parse_alias_name("my-reporting") is None


@pytest.mark.parametrize(
    ("meta_value", "expected"),
    [
        ({"version": "080", "name": "fa73a"}, V080),
        ({"version": 80, "name": "fa73a"}, VersionId("80", "fa73a")),
        ({"version": "080"}, None),
        ({"name": "fa73a"}, None),
        (None, None),
        ("080", None),
    ],
)
def test_meta_version(meta_value: object, expected: VersionId | None) -> None:
    assert meta_version(meta_value) == expected


def test_classify_index_reasons() -> None:
    assert classify_index(".kibana", None) == (None, ForeignReason.SYSTEM_INDEX)
    assert classify_index("logs-2024", None) == (None, ForeignReason.UNPARSEABLE_NAME)
    parsed, reason = classify_index("080.fa73a.tracardi-flow", None)
    assert parsed is not None
    assert reason is ForeignReason.META_MISSING
    _, reason = classify_index("080.fa73a.tracardi-flow", {"version": "08x", "name": "fa73a"})
    assert reason is ForeignReason.META_DISAGREES
    _, reason = classify_index("080.fa73a.tracardi-flow", {"version": "080", "name": "01506"})
    assert reason is ForeignReason.META_DISAGREES
    assert classify_index("080.fa73a.tracardi-flow", {"version": "080", "name": "fa73a"})[1] is None


def template_body(patterns: list[str], meta_value: dict[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"index_patterns": patterns, "template": {"mappings": {}}}
    if meta_value is not None:
        body["template"]["mappings"]["_meta"] = meta_value
    return body


def test_classify_template() -> None:
    owned = classify_template("template.080.fa73a.tracardi-event", template_body(["080.fa73a.tracardi-event-*-*"]))
    assert owned.owner == V080
    assert owned.foreign_reason is None
    assert not owned.confirmed_by_meta

    confirmed = classify_template(
        "prod-template.080.fa73a.tracardi-event",
        template_body(["prod-080.fa73a.tracardi-event-*-*"], {"version": "080", "name": "fa73a"}),
    )
    assert confirmed.owner == V080
    assert confirmed.confirmed_by_meta
    assert confirmed.context is Context.PRODUCTION

    disagrees = classify_template(
        "template.080.fa73a.tracardi-event",
        template_body(["080.fa73a.tracardi-event-*-*"], {"version": "0820", "name": "ffe49"}),
    )
    assert disagrees.owner is None
    assert disagrees.foreign_reason is ForeignReason.META_DISAGREES

    top_level_meta = classify_template(
        "template.080.fa73a.tracardi-event",
        {"index_patterns": ["080.fa73a.tracardi-event-*"], "_meta": {"version": "080", "name": "x"}},
    )
    assert top_level_meta.foreign_reason is ForeignReason.META_DISAGREES

    reaching = classify_template("template.080.fa73a.tracardi-event", template_body(["0820.ffe49.tracardi-*"]))
    assert reaching.owner is None
    assert reaching.foreign_reason is ForeignReason.PATTERNS_DISAGREE

    # A staging template must not reach production indices either.
    crossing = classify_template("template.080.fa73a.tracardi-event", template_body(["prod-080.fa73a.x-*"]))
    assert crossing.foreign_reason is ForeignReason.PATTERNS_DISAGREE

    foreign = classify_template("ilm-history", template_body(["ilm-history-*"]))
    assert foreign.owner is None
    assert foreign.foreign_reason is ForeignReason.UNPARSEABLE_NAME


def raw_inventory() -> Inventory:
    cat = [
        {
            "index": "080.fa73a.tracardi-flow",
            "pri": "1",
            "rep": "1",
            "docs.count": "3",
            "health": "yellow",
            "status": "open",
        },
        {
            "index": "prod-080.fa73a.tracardi-event-2023-11",
            "pri": "3",
            "rep": "0",
            "docs.count": "10",
            "health": "green",
            "status": "open",
        },
        {
            "index": "static-080.fa73a.tracardi-bridge",
            "pri": "1",
            "rep": "0",
            "docs.count": None,
            "health": "green",
            "status": "close",
        },
        {"index": "080.fa73a.tracardi-profile", "pri": "1", "rep": "0", "status": "open"},  # no _meta
        {"index": "080.fa73a.tracardi-session", "pri": "1", "rep": "0", "status": "open"},  # wrong _meta
        {"index": ".kibana_1", "pri": "1", "rep": "0", "status": "open"},
        {"index": "logs", "pri": "x", "rep": None, "status": "open"},
        {"pri": "1"},  # malformed row: skipped, never an error
    ]
    mappings = {
        "080.fa73a.tracardi-flow": meta(V080),
        "prod-080.fa73a.tracardi-event-2023-11": meta(V080),
        "static-080.fa73a.tracardi-bridge": meta(V080),
        "080.fa73a.tracardi-session": meta(V0820),
    }
    aliases = {
        "080.fa73a.tracardi-flow": {"aliases": {"fa73a.tracardi-flow": {}}},
        "prod-080.fa73a.tracardi-event-2023-11": {"aliases": {"prod-fa73a.tracardi-event": {}, "report": {}}},
        "logs": {"aliases": {}},
        ".kibana_1": {"aliases": {".kibana": {}}},
    }
    templates = {
        "index_templates": [
            {
                "name": "template.080.fa73a.tracardi-event",
                "index_template": template_body(["080.fa73a.tracardi-event-*-*"]),
            },
            {"name": "ilm-history", "index_template": template_body(["ilm-history-*"])},
            {"name": "broken"},
        ]
    }
    return parse_inventory(cat, aliases, templates, mappings)


def test_parse_inventory() -> None:
    inventory = raw_inventory()
    by_name = inventory.by_name()
    assert set(by_name) == {
        "080.fa73a.tracardi-flow",
        "prod-080.fa73a.tracardi-event-2023-11",
        "static-080.fa73a.tracardi-bridge",
        "080.fa73a.tracardi-profile",
        "080.fa73a.tracardi-session",
        ".kibana_1",
        "logs",
    }
    assert by_name["080.fa73a.tracardi-flow"].owner == V080
    assert by_name["080.fa73a.tracardi-flow"].shards == 2
    assert by_name["prod-080.fa73a.tracardi-event-2023-11"].shards == 3
    assert by_name["static-080.fa73a.tracardi-bridge"].owner == V080
    assert by_name["080.fa73a.tracardi-profile"].foreign_reason is ForeignReason.META_MISSING
    assert by_name["080.fa73a.tracardi-session"].foreign_reason is ForeignReason.META_DISAGREES
    assert by_name[".kibana_1"].foreign_reason is ForeignReason.SYSTEM_INDEX
    assert by_name["logs"].primaries == 0
    assert by_name["logs"].foreign_reason is ForeignReason.UNPARSEABLE_NAME
    # Closed indices do not count against the shard limit: 2 + 3 + (profile 1) + (session 1) + kibana 1.
    assert inventory.shards_in_use == 8
    assert inventory.owned_versions() == {V080}
    assert inventory.template_names() == {"template.080.fa73a.tracardi-event", "ilm-history", "broken"}
    assert {t.name for t in inventory.templates if t.owner == V080} == {"template.080.fa73a.tracardi-event"}
    assert {a.name: a.indices for a in inventory.aliases} == {
        "fa73a.tracardi-flow": ("080.fa73a.tracardi-flow",),
        "prod-fa73a.tracardi-event": ("prod-080.fa73a.tracardi-event-2023-11",),
        "report": ("prod-080.fa73a.tracardi-event-2023-11",),
        ".kibana": (".kibana_1",),
    }


def test_live_aliases() -> None:
    inventory = raw_inventory()
    # With 0820/ffe49 live, the fa73a aliases are retired; a foreign alias ("report", ".kibana") is
    # always live because someone we do not know reads it.
    assert {a.name for a in live_aliases(inventory, [V0820])} == {"report", ".kibana"}
    # The live tenant reads through the same alias names when tenants collide.
    assert {a.name for a in live_aliases(inventory, [VersionId("0820", "fa73a")])} == {
        "report",
        ".kibana",
        "fa73a.tracardi-flow",
        "prod-fa73a.tracardi-event",
    }
    # An alias reaching an index of a live pair is live.
    assert "fa73a.tracardi-flow" in {a.name for a in live_aliases(inventory, [V080])}


def test_alias_mixing_tenants_or_reaching_foreign_is_live() -> None:
    cat = [
        {"index": "080.fa73a.tracardi-flow", "pri": "1", "rep": "0"},
        {"index": "080.zzzzz.tracardi-flow", "pri": "1", "rep": "0"},
        {"index": "080.fa73a.tracardi-rule", "pri": "1", "rep": "0"},
    ]
    mappings = {"080.fa73a.tracardi-flow": meta(V080), "080.zzzzz.tracardi-flow": meta(VersionId("080", "zzzzz"))}
    aliases = {
        "080.fa73a.tracardi-flow": {"aliases": {"zzzzz.tracardi-flow": {}}},
        "080.zzzzz.tracardi-flow": {"aliases": {"zzzzz.tracardi-flow": {}}},
        "080.fa73a.tracardi-rule": {"aliases": {"fa73a.tracardi-rule": {}}},  # its index has no _meta
    }
    inventory = parse_inventory(cat, aliases, {}, mappings)
    assert {a.name for a in live_aliases(inventory, [V0820])} == {"zzzzz.tracardi-flow", "fa73a.tracardi-rule"}


def test_cluster_state_metadata_becomes_rows_and_metas() -> None:
    # The shape `GET _cluster/state/metadata/<pattern>?filter_path=...` answers with on 7.x: the mapping
    # under its type, settings as strings, a closed index's state "close"; an index without `_meta`
    # has only its state and settings.
    answer = {"metadata": {"indices": {
        "prod-080.fa73a.tracardi-event-2023-11": {
            "state": "open", "settings": {"index": {"number_of_shards": "3", "number_of_replicas": "0"}},
            "mappings": {"_doc": {"_meta": {"version": V080.db, "name": V080.tenant}}}},
        "080.fa73a.tracardi-flow": {
            "state": "close", "settings": {"index": {"number_of_shards": "1", "number_of_replicas": "1"}},
            "mappings": {"_meta": {"version": V080.db, "name": V080.tenant}}},  # a mapping without a type
        "080.fa73a.tracardi-profile": {"state": "open",
                                       "settings": {"index": {"number_of_shards": "2", "number_of_replicas": "1"}}},
        "broken": "not an object",
    }}}
    rows, metas = state_rows(answer)
    assert [row["index"] for row in rows] == [
        "080.fa73a.tracardi-flow", "080.fa73a.tracardi-profile", "prod-080.fa73a.tracardi-event-2023-11"]
    assert set(metas) == {"080.fa73a.tracardi-flow", "prod-080.fa73a.tracardi-event-2023-11"}
    by_name = parse_inventory(rows, {}, {}, metas).by_name()
    assert by_name["prod-080.fa73a.tracardi-event-2023-11"].owner == V080
    assert by_name["prod-080.fa73a.tracardi-event-2023-11"].shards == 3
    assert by_name["080.fa73a.tracardi-flow"].owner == V080
    assert not by_name["080.fa73a.tracardi-flow"].is_open
    assert by_name["080.fa73a.tracardi-profile"].foreign_reason is ForeignReason.META_MISSING
    assert by_name["080.fa73a.tracardi-profile"].shards == 4
    assert state_rows({}) == ([], {})  # no Tracardi-named index: filter_path leaves an empty answer


def test_index_api_answers_read_as_the_cluster_state() -> None:
    # `GET <pattern>` of every matching index (typeless mappings) and of the open ones only: an index
    # only in the first is closed; one without `_meta` has none; anything else in an answer is skipped.
    every = {
        "080.fa73a.tracardi-flow": {"settings": {"index": {"number_of_shards": "1", "number_of_replicas": "1"}},
                                    "mappings": {"_meta": {"version": V080.db, "name": V080.tenant}}},
        "080.fa73a.tracardi-profile": {"settings": {"index": {"number_of_shards": "2", "number_of_replicas": "0"}}},
        "broken": ["not", "an", "object"],
    }
    opened = {"080.fa73a.tracardi-profile": {"settings": {"index": {"uuid": "u"}}}}
    rows, metas = state_rows(index_answers_as_state(every, opened))
    assert rows == [{"index": "080.fa73a.tracardi-flow", "status": "close", "pri": "1", "rep": "1"},
                    {"index": "080.fa73a.tracardi-profile", "status": "open", "pri": "2", "rep": "0"}]
    assert metas == {"080.fa73a.tracardi-flow": {"mappings": {"_meta": {"version": V080.db, "name": V080.tenant}}}}
    assert state_rows(index_answers_as_state({}, {})) == ([], {})  # filter_path's answer for no index
