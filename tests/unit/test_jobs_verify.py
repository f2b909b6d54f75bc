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
    IdTally,
    failure_message,
    failures,
    judge,
    listed_destinations,
    merge_candidates,
    plan_checks,
    source_indices,
    summarize,
    unreadable,
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


def tally(ids: list[str], found: dict[str, int], still: set[str] | None = None, sources: int = 1) -> IdTally:
    folded = IdTally.for_sources(sources)
    folded.add(ids, found, set(ids) if still is None else still)
    return folded


def test_a_page_where_every_id_is_readable_once_passes() -> None:
    ids = [f"d{i}" for i in range(10)]
    facts = CopyFacts({"a": 10}, dest_count=10, dest_meta_version="0820", ids=tally(ids, dict.fromkeys(ids, 1)))
    result = judge(check(), facts, "0820")
    assert result.ok
    assert (result.source_docs, result.missing, result.deleted) == (10, 0, 0)


def test_growth_never_offsets_a_loss() -> None:
    # 300 of the cutoff's ids are not readable; the destination holds 300 documents written since.
    ids = [f"d{i}" for i in range(1000)]
    found = {i: (0 if 400 <= int(i[1:]) < 700 else 1) for i in ids}
    facts = CopyFacts({"a": 1000}, dest_count=1000, dest_meta_version="0820", ids=tally(ids, found))
    result = judge(check(), facts, "0820")
    assert (result.problem, result.missing) == (DOCUMENTS_MISSING, 300)
    assert result.missing_ids == ("d400", "d401", "d402", "d403", "d404")


def test_ids_the_source_no_longer_holds_were_deleted_not_lost() -> None:
    ids = ["a", "b", "c", "d"]
    folded = tally(ids, {"a": 1, "b": 0, "c": 0, "d": 1}, still={"c"})
    assert (folded.checked, folded.missing, folded.deleted, folded.required) == (4, 1, 1, 3)
    result = judge(check(), CopyFacts({"a": 4}, dest_count=2, ids=folded), "0820")
    assert (result.problem, result.missing, result.missing_ids, result.deleted) == (DOCUMENTS_MISSING, 1, ("c",), 1)
    assert result.source_docs == 3
    assert unreadable(ids, {"a": 1, "b": 0, "d": 2}) == ["b", "c"]


def test_pages_fold_into_one_tally_and_name_a_few_ids() -> None:
    folded = IdTally.for_sources(1)
    for page in range(3):
        ids = [f"p{page}-{i}" for i in range(4)]
        folded.add(ids, {}, set(ids))
    assert (folded.checked, folded.missing) == (12, 12)
    assert folded.missing_ids == ["p0-0", "p0-1", "p0-2", "p0-3", "p1-0"]


def test_merged_sources_count_collapsed_ids_and_duplicates_fail() -> None:
    merged = IdTally.for_sources(2)
    merged.add(["x", "y"], {"x": 1, "y": 1})
    merged.add(["y", "z"], {"y": 1, "z": 1})  # y was saved in both partitions: one document
    result = judge(check(sources=("a", "b")), CopyFacts({"a": 2, "b": 2}, dest_count=3, ids=merged), "0820")
    assert result.ok
    assert result.collapsed == 1
    dup = tally(["x"], {"x": 2})
    assert judge(check(), CopyFacts({"a": 1}, dest_count=2, ids=dup), "0820").problem == DUPLICATE_IDS
    hidden = IdTally.for_sources(1)
    hidden.add(["x", "y"], {"x": 1, "y": 1}, occurrences=5)  # hits the answer could not hold
    assert hidden.duplicated == 1


def test_an_unchecked_destination_is_not_proven_by_its_count() -> None:
    result = judge(check(), CopyFacts({"a": 5}, dest_count=50, dest_meta_version="0820"), "0820")
    assert (result.problem, result.missing) == (DOCUMENTS_MISSING, 5)


def test_judge_mapping_and_duplicates() -> None:
    ok = tally(["x"], {"x": 1})
    assert judge(check(), CopyFacts({"a": 1}, dest_count=1, dest_meta_version="08x", ids=ok), "0820").problem == (
        WRONG_MAPPING
    )
    dup = CopyFacts({"a": 1}, dest_count=1, dest_meta_version="0820", ids=ok, alias_duplicates=1)
    assert judge(check(), dup, "0820").problem == DUPLICATE_IDS


def test_summary_and_failures_are_per_context_and_resource() -> None:
    ids = [f"d{i}" for i in range(5)]
    results = [
        judge(check(), CopyFacts({"a": 5}, dest_count=5, ids=tally(ids, dict.fromkeys(ids, 1))), "0820"),
        judge(check(NOT_LISTED, ("b",)), CopyFacts({"b": 3}), "0820"),
        judge(check(NOT_LISTED, ("c",)), CopyFacts({"c": 2}), "0820"),
    ]
    summary = summarize(results)
    assert summary["staging"] == {"resources": 1, "sourceDocs": 10, "destDocs": 5}
    assert summary["production"] == {"resources": 0, "sourceDocs": 0, "destDocs": 0}
    failed = failures(results)
    assert failed == [{"context": "staging", "resource": "event", "missing": 5, "problems": [NOT_LISTED]}]
    assert failure_message(failed) == "staging/event: 5 documents not readable (NotListed)"


def test_a_failure_names_the_resource_the_count_and_some_ids() -> None:
    lost = tally(["k1", "k2", "k3", "k4"], {"k4": 1})
    results = [judge(check(), CopyFacts({"a": 4}, dest_count=4, ids=lost), "0820")]
    failed = failures(results)
    assert failed == [{"context": "staging", "resource": "event", "missing": 3, "problems": [DOCUMENTS_MISSING],
                       "missingIds": ["k1", "k2", "k3"]}]
    assert failure_message(failed) == "staging/event: 3 documents not readable (DocumentsMissing) e.g. ids k1, k2, k3"
    deleted = tally(["k1", "k2"], {"k2": 1}, still=set())
    assert summarize([judge(check(), CopyFacts({"a": 2}, dest_count=1, ids=deleted), "0820")])["staging"][
        "deletedSinceCutoff"
    ] == 1
