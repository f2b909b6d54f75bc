"""Routing of source indices to destinations and the verdicts of the migration Job (pure)."""

from __future__ import annotations

import datetime as dt

from tracardi_operator.indices import Context, VersionId
from tracardi_operator.jobs.verify import (
    DOCUMENTS_MISSING,
    DUPLICATE_IDS,
    NOT_COPIED,
    NOT_LISTED,
    NOT_READABLE,
    WRONG_MAPPING,
    CopyCheck,
    CopyFacts,
    failure_message,
    failures,
    judge,
    listed_destinations,
    merge_candidates,
    needs_exact_check,
    plan_checks,
    source_indices,
    summarize,
)
from tracardi_operator.tracardi_api import MigrationEntry

SRC = VersionId("08x", "01506")
DST = VersionId("0820", "ffe49")
TODAY = dt.date(2026, 3, 10)


def entry(from_index: str, to_index: str, worker: str = "reindex") -> MigrationEntry:
    production = from_index.startswith("prod-")
    return MigrationEntry("id-" + from_index, from_index, to_index, False, production, worker, False)


def test_source_indices_are_anchored_and_skip_static_foreign_and_never_migrated() -> None:
    names = [
        "080.fa73a.tracardi-api-instance",
        "080.fa73a.tracardi-flow",
        "prod-080.fa73a.tracardi-event-2023-11",
        "static-080.fa73a.tracardi-bridge",
        "080.fa73a.tracardi-flow-copy.bak",
        "x080.fa73a.tracardi-flow",
        "080.other.tracardi-flow",
        ".tasks",
    ]
    found = source_indices(names, VersionId("080", "fa73a"), "08x")
    assert [s.name for s in found] == ["080.fa73a.tracardi-flow", "prod-080.fa73a.tracardi-event-2023-11"]
    assert found[1].context == Context.PRODUCTION
    assert found[1].resource == "event"


def test_plan_checks_routes_and_names_problems() -> None:
    names = {
        "08x.01506.tracardi-flow",
        "0820.ffe49.tracardi-flow",
        "08x.01506.tracardi-entity",
        "0820.ffe49.tracardi-entity",
        "08x.01506.tracardi-rule",
        "08x.01506.tracardi-event-2023-11",
        "prod-08x.01506.tracardi-segment",
    }
    aliases = {"ffe49.tracardi-flow": ["0820.ffe49.tracardi-flow"]}
    entries = [
        entry("08x.01506.tracardi-flow", "0820.ffe49.tracardi-flow"),
        entry("08x.01506.tracardi-entity", "0820.ffe49.tracardi-entity"),
        entry("08x.01506.tracardi-rule", "0820.ffe49.tracardi-rule"),
    ]
    checks = {c.resource: c for c in plan_checks(names, aliases, entries, SRC, DST, TODAY)}
    assert checks["flow"].problem is None
    assert checks["flow"].alias == "ffe49.tracardi-flow"
    assert checks["entity"].problem == NOT_READABLE
    assert checks["rule"].problem == NOT_COPIED
    assert checks["event"].problem == NOT_LISTED
    assert checks["segment"].problem == NOT_LISTED
    assert checks["segment"].alias == "prod-ffe49.tracardi-segment"


def test_repaired_destinations_override_the_listing_and_merge_sources() -> None:
    names = {
        "08x.01506.tracardi-event-2023-11",
        "08x.01506.tracardi-event-2023-12",
        "0820.ffe49.tracardi-event-2026-q1",
    }
    aliases = {"ffe49.tracardi-event": {"0820.ffe49.tracardi-event-2026-q1"}}
    repaired = {n: "0820.ffe49.tracardi-event-2026-q1" for n in names if n.startswith("08x")}
    (check,) = plan_checks(names, aliases, [], SRC, DST, TODAY, repaired)
    assert check.sources == ("08x.01506.tracardi-event-2023-11", "08x.01506.tracardi-event-2023-12")
    assert check.problem is None
    assert check.repaired


def test_merge_candidates_cover_correct_and_tracardi_quarters() -> None:
    candidates = merge_candidates("0820.ffe49.tracardi-event-2023-11", dt.date(2026, 3, 10))
    assert "0820.ffe49.tracardi-event-2026-q1" in candidates
    assert "0820.ffe49.tracardi-event-2026-q4" in candidates  # (3 % 4) + 1
    first_of_month = merge_candidates("x-2023-1", dt.date(2026, 4, 1))
    assert "x-2026-q1" in first_of_month
    assert "x-2026-q2" in first_of_month


def test_listed_merge_entry_resolves_to_the_existing_candidate() -> None:
    merged = entry("08x.01506.tracardi-event-2023-11", "0820.ffe49.tracardi-event-2023-11", "reindex_to_one_index")
    routed = listed_destinations([merged], {"0820.ffe49.tracardi-event-2026-q4"}, dt.date(2026, 3, 1))
    assert routed == {"08x.01506.tracardi-event-2023-11": "0820.ffe49.tracardi-event-2026-q4"}
    assert listed_destinations([merged], set(), dt.date(2026, 3, 1))[merged.from_index] == merged.to_index


def check(problem: str | None = None, sources: tuple[str, ...] = ("a",)) -> CopyCheck:
    return CopyCheck(Context.STAGING, "event", sources, "d", "ffe49.tracardi-event", problem)


def test_judge_routing_problem_loses_every_source_document_unless_empty() -> None:
    result = judge(check(NOT_LISTED), CopyFacts({"a": 7}), "0820")
    assert (result.missing, result.problem, result.ok) == (7, NOT_LISTED, False)
    assert judge(check(NOT_READABLE), CopyFacts({"a": 0}), "0820").ok


def test_judge_counts_and_exact_comparison() -> None:
    ok = judge(check(), CopyFacts({"a": 5}, dest_count=6, dest_meta_version="0820", sample_size=5), "0820")
    assert ok.ok
    assert ok.missing == 0
    short = CopyFacts({"a": 5}, dest_count=3)
    assert needs_exact_check(check(), short)
    assert judge(check(), short, "0820").missing == 2
    collapsed = CopyFacts({"a": 5, "b": 5}, dest_count=8, exact_missing=0, distinct_ids=8)
    result = judge(check(sources=("a", "b")), collapsed, "0820")
    assert result.ok
    assert result.collapsed == 2
    lost = judge(check(), CopyFacts({"a": 5}, dest_count=9, sample_missing=1, exact_missing=1, distinct_ids=5), "0820")
    assert lost.problem == DOCUMENTS_MISSING
    assert lost.missing == 1


def test_judge_mapping_and_duplicates() -> None:
    facts = CopyFacts({"a": 1}, dest_count=1, dest_meta_version="08x")
    assert judge(check(), facts, "0820").problem == WRONG_MAPPING
    dup = CopyFacts({"a": 1}, dest_count=1, dest_meta_version="0820", alias_duplicates=1)
    assert judge(check(), dup, "0820").problem == DUPLICATE_IDS
    sampled = CopyFacts({"a": 1}, dest_count=1, sample_duplicated=1)
    assert judge(check(), sampled, "0820").problem == DUPLICATE_IDS
    assert not needs_exact_check(check(NOT_LISTED), CopyFacts({"a": 1}))


def test_summary_and_failures_are_per_context_and_resource() -> None:
    results = [
        judge(check(), CopyFacts({"a": 5}, dest_count=5), "0820"),
        judge(check(NOT_LISTED, ("b",)), CopyFacts({"b": 3}), "0820"),
        judge(check(NOT_LISTED, ("c",)), CopyFacts({"c": 2}), "0820"),
    ]
    summary = summarize(results)
    assert summary["staging"] == {"resources": 1, "sourceDocs": 10, "destDocs": 5}
    assert summary["production"] == {"resources": 0, "sourceDocs": 0, "destDocs": 0}
    failed = failures(results)
    assert failed == [{"context": "staging", "resource": "event", "missing": 5, "problems": [NOT_LISTED]}]
    assert failure_message(failed) == "staging/event: 5 documents not readable (NotListed)"
