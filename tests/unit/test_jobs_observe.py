"""The frozen view's paging and its failure modes, against a scripted Elasticsearch (no network)."""

from __future__ import annotations

from typing import Any

import pytest

from tracardi_operator.indices import Context
from tracardi_operator.jobs import observe
from tracardi_operator.jobs.common import JobError
from tracardi_operator.jobs.es import EsError
from tracardi_operator.jobs.verify import CopyCheck


def answer(ids: list[str], total: int, scroll_id: str | None = "s1") -> dict[str, Any]:
    return {"_scroll_id": scroll_id, "hits": {"total": {"value": total}, "hits": [{"_id": i} for i in ids]}}


class ScriptedEs:
    """Scroll pages of one index, lookups through an alias that holds `readable`, `source` held now."""

    def __init__(self, pages: list[list[str]], readable: set[str], source: set[str], expire: bool = False) -> None:
        self.pages, self.readable, self.source, self.expire = pages, readable, source, expire
        self.cleared: list[object] = []
        self.bodies: list[tuple[str, Any]] = []

    def post(self, path: str, body: Any = None, **params: str) -> Any:
        self.bodies.append((path, body))
        total = sum(len(p) for p in self.pages)
        if path == "/_search/scroll":
            if self.expire:
                raise EsError("POST", path, 404, "search_context_missing_exception")
            return answer(self.pages.pop(0) if self.pages else [], total)
        if "query" in body:
            held = self.readable if path.startswith("/alias") else self.source
            hits = [i for i in body["query"]["ids"]["values"] if i in held]
            return answer(hits, len(hits), None)
        return answer(self.pages.pop(0), total)

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        self.cleared.append(body)
        return {}


def test_every_page_of_the_frozen_view_is_compared_and_the_scroll_released() -> None:
    es = ScriptedEs([["a", "b"], ["c", "d"], ["e"]], readable={"a", "b", "d", "e"}, source={"c"})
    cutoff = observe.freeze(es, ["src"], keep_alive_seconds=3600, page=2)  # type: ignore[arg-type]
    assert dict(cutoff) == {"src": 5}
    _, opened = es.bodies[0]
    assert (opened["_source"], opened["stored_fields"], opened["size"]) == (False, [], 2)
    check = CopyCheck(Context.STAGING, "flow", ("src",), "dst", "alias", None)
    tally = observe.compare_ids(es, check, cutoff)  # type: ignore[arg-type]
    assert (tally.checked, tally.missing, tally.missing_ids) == (5, 1, ["c"])
    assert es.cleared == [{"scroll_id": "s1"}]
    lookups = [body for path, body in es.bodies if path == "/alias/_search"]
    assert all(body["_source"] is False for body in lookups)


def test_a_source_created_after_the_cutoff_requires_nothing() -> None:
    es = ScriptedEs([[]], readable=set(), source=set())
    cutoff = observe.freeze(es, [], keep_alive_seconds=60)  # type: ignore[arg-type]
    check = CopyCheck(Context.STAGING, "flow", ("later",), "dst", "alias", None)
    assert observe.compare_ids(es, check, cutoff).checked == 0  # type: ignore[arg-type]


def test_an_expired_frozen_view_fails_the_verification() -> None:
    es = ScriptedEs([["a"], ["b"]], readable={"a", "b"}, source=set(), expire=True)
    cutoff = observe.freeze(es, ["src"], keep_alive_seconds=60, page=1)  # type: ignore[arg-type]
    check = CopyCheck(Context.STAGING, "flow", ("src",), "dst", "alias", None)
    with pytest.raises(JobError) as failed:
        observe.compare_ids(es, check, cutoff)  # type: ignore[arg-type]
    assert failed.value.reason == "MigrationIncomplete"
    assert "src" in failed.value.message
