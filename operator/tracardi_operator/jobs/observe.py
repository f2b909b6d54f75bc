"""Reading from Elasticsearch what verification needs (I/O only; the verdicts live in `verify`).

What lives here: the cluster layout (index names, alias → indices), document counts, `_meta.version`,
the frozen view of the source indices opened when the copy begins (`freeze` → `Cutoff`), the exact id
comparison that streams every id of that view and looks each up through the target's alias
(`compare_ids`, folded by `verify.IdTally`), and the duplicate-id check over an alias. Ids only, in
pages: memory stays bounded by a page whatever the index size (a merged check also keeps one hash
per id, to count ids that collapsed). Index names go into URLs one at a time or joined with commas in
bounded chunks; nothing here ever writes or deletes.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracardi_operator.jobs.common import JobError
from tracardi_operator.jobs.es import EsClient, EsError
from tracardi_operator.jobs.verify import CopyCheck, CopyFacts, IdTally, unreadable
from tracardi_operator.reasons import Reason

PAGE = 1000
"""Ids per scroll page of a frozen source (the scroll's page size is fixed when it is opened)."""
ID_BATCH = 1000
"""Ids per lookup through an alias."""
SCROLL_STEP = "5m"
"""Keep-alive between two pages once reading has begun."""
MAX_KEEP_ALIVE = 86400
"""Elasticsearch's default `search.max_keep_alive` (24 h): a longer keep-alive is refused."""
FROZEN_NOW_KEEP_ALIVE = 600.0
MAX_WINDOW = 10000
"""`index.max_result_window`: the most hits one search returns."""
_NAMES_PER_REQUEST = 50


@dataclass(frozen=True)
class Layout:
    index_names: frozenset[str]
    alias_targets: Mapping[str, frozenset[str]]


def read_layout(es: EsClient) -> Layout:
    rows = es.get("/_cat/indices", format="json", h="index", expand_wildcards="all")
    names = frozenset(row["index"] for row in rows or [] if isinstance(row, Mapping) and row.get("index"))
    targets: dict[str, set[str]] = {}
    for row in es.get("/_cat/aliases", format="json", h="alias,index") or []:
        if isinstance(row, Mapping) and row.get("alias") and row.get("index"):
            targets.setdefault(str(row["alias"]), set()).add(str(row["index"]))
    return Layout(names, {alias: frozenset(indices) for alias, indices in targets.items()})


def _path(names: Iterable[str]) -> str:
    return "/" + ",".join(urllib.parse.quote(name, safe="") for name in names)


def refresh(es: EsClient, names: Iterable[str]) -> None:
    ordered = sorted(set(names))
    for start in range(0, len(ordered), _NAMES_PER_REQUEST):
        chunk = ordered[start : start + _NAMES_PER_REQUEST]
        es.request("POST", _path(chunk) + "/_refresh", params={"ignore_unavailable": "true"})


def count(es: EsClient, name: str) -> int:
    answer = es.get(_path([name]) + "/_count")
    return int(answer.get("count") or 0) if isinstance(answer, Mapping) else 0


def counts(es: EsClient, names: Iterable[str]) -> dict[str, int]:
    return {name: count(es, name) for name in sorted(set(names))}


def meta_version(es: EsClient, name: str) -> str | None:
    answer = es.get(_path([name]) + "/_mapping")
    if not isinstance(answer, Mapping):
        return None
    for body in answer.values():
        meta = body.get("mappings", {}).get("_meta") if isinstance(body, Mapping) else None
        if isinstance(meta, Mapping) and meta.get("version") is not None:
            return str(meta["version"])
    return None


def _scroll_body(page: int) -> dict[str, Any]:
    # Ids only: no _source, no stored field but the _id every hit carries; `_doc` order streams cheapest.
    return {"size": page, "_source": False, "stored_fields": [], "sort": ["_doc"], "track_total_hits": True}


def _clear_scroll(es: EsClient, scroll_id: str | None) -> None:
    if scroll_id:
        with contextlib.suppress(EsError):
            es.request("DELETE", "/_search/scroll", body={"scroll_id": scroll_id}, ok_statuses=frozenset({404}))


@dataclass
class FrozenSource:
    """One source index as it was at the cutoff: its documents then, and a scroll opened then."""

    index: str
    count: int
    first_page: list[str]
    scroll_id: str | None


class Cutoff(Mapping[str, int]):
    """The source indices frozen when the copy began: documents per index (the Mapping) and, per index,
    a scroll context opened at that moment. A scroll reads the index as it was when it was opened
    (Elasticsearch keeps those segments until the scroll is cleared or expires), on every 7.x
    version and distribution, so documents written or deleted later never change what it returns.
    Each index's ids can be read once (`id_pages`); `close` releases what is left."""

    def __init__(self, sources: Mapping[str, FrozenSource], keep_alive: str) -> None:
        self._sources = dict(sources)
        self.keep_alive = keep_alive

    def __getitem__(self, name: str) -> int:
        return self._sources[name].count

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    def id_pages(self, es: EsClient, name: str) -> Iterator[list[str]]:
        """Every id `name` held at the cutoff, page by page (a KeyError if it did not exist then)."""
        frozen = self._sources[name]
        page, frozen.first_page = frozen.first_page, []
        try:
            while page:
                yield page
                if frozen.scroll_id is None:
                    return
                try:
                    answer = es.post("/_search/scroll", {"scroll": SCROLL_STEP, "scroll_id": frozen.scroll_id})
                except EsError as error:
                    if error.status == 404:
                        raise JobError(
                            Reason.MIGRATION_INCOMPLETE,
                            f"the view of {name} frozen when the copy began expired after {self.keep_alive} "
                            "before it was verified: run the migration Job again (a retry copies nothing twice)",
                        ) from None
                    raise
                frozen.scroll_id = answer.get("_scroll_id", frozen.scroll_id) if isinstance(answer, Mapping) else None
                page = _hit_ids(answer)
        finally:
            _clear_scroll(es, frozen.scroll_id)
            frozen.scroll_id = None

    def close(self, es: EsClient) -> None:
        for frozen in self._sources.values():
            _clear_scroll(es, frozen.scroll_id)
            frozen.scroll_id, frozen.first_page = None, []


def freeze(es: EsClient, names: Iterable[str], keep_alive_seconds: float, page: int = PAGE) -> Cutoff:
    """Open the frozen view of each index now (refresh them first, so that it holds every write so far).

    The keep-alive covers the whole copy: the first scroll call may come only when the copy is over."""
    keep_alive = f"{max(60, min(int(keep_alive_seconds), MAX_KEEP_ALIVE))}s"
    frozen: dict[str, FrozenSource] = {}
    try:
        for name in sorted(set(names)):
            answer = es.post(_path([name]) + "/_search", _scroll_body(page), scroll=keep_alive)
            hits = answer.get("hits", {}) if isinstance(answer, Mapping) else {}
            total = hits.get("total", {})
            count = int(total.get("value", 0) if isinstance(total, Mapping) else total or 0)
            ids = _hit_ids(answer)
            scroll_id = answer.get("_scroll_id") if isinstance(answer, Mapping) else None
            if len(ids) >= count:  # everything is in the first page: nothing to keep open
                _clear_scroll(es, scroll_id)
                scroll_id = None
            frozen[name] = FrozenSource(name, count, ids, scroll_id)
    except BaseException:
        Cutoff(frozen, keep_alive).close(es)
        raise
    return Cutoff(frozen, keep_alive)


def occurrences(es: EsClient, alias: str, ids: Sequence[str]) -> tuple[dict[str, int], int]:
    """How often each id is found when reading through `alias` (what Tracardi's load-by-id sees), and
    the total number of hits for them. Ids only (`_source` off); a batch whose hits did not all fit
    the answer is asked again for the ids not yet seen, so no readable id is ever reported unreadable."""
    found = dict.fromkeys(ids, 0)
    total: int | None = None
    pending = list(dict.fromkeys(ids))
    while pending:
        body = {
            "size": min(MAX_WINDOW, 2 * len(pending) + 10),
            "_source": False,
            "stored_fields": [],
            "track_total_hits": True,
            "query": {"ids": {"values": pending}},
        }
        answer = es.post(_path([alias]) + "/_search", body)
        hits = _hit_ids(answer)
        for hit_id in hits:
            if hit_id in found:
                found[hit_id] += 1
        reported = answer.get("hits", {}).get("total", {}) if isinstance(answer, Mapping) else {}
        matched = int(reported.get("value", 0)) if isinstance(reported, Mapping) else len(hits)
        total = matched if total is None else total
        if matched <= len(hits):
            break
        pending = [i for i in pending if found[i] == 0]
    return found, total or 0


def present(es: EsClient, index: str, ids: Sequence[str]) -> set[str]:
    """Which of `ids` `index` holds now."""
    held: set[str] = set()
    for start in range(0, len(ids), ID_BATCH):
        batch = list(ids[start : start + ID_BATCH])
        body = {"size": len(batch), "_source": False, "stored_fields": [], "query": {"ids": {"values": batch}}}
        held.update(_hit_ids(es.post(_path([index]) + "/_search", body)))
    return held


def compare_ids(
    es: EsClient, check: CopyCheck, cutoff: Cutoff, tally: IdTally | None = None, batch: int = ID_BATCH
) -> IdTally:
    """Every id each source of `check` held at the cutoff, looked up through the check's alias."""
    tally = tally or IdTally.for_sources(len(check.sources))
    for source in check.sources:
        if source not in cutoff:
            continue  # created after the cutoff: it held nothing the copy had to carry
        for page in cutoff.id_pages(es, source):
            for start in range(0, len(page), batch):
                ids = page[start : start + batch]
                found, hits = occurrences(es, check.alias, ids)
                lost = unreadable(ids, found)
                tally.add(ids, found, present(es, source, lost) if lost else (), occurrences=hits)
    return tally


def alias_duplicates(es: EsClient, alias: str) -> int | None:
    """Ids (the mapped keyword `id`) held by two or more documents behind `alias`; None if unknowable."""
    body = {"size": 0, "aggs": {"dupes": {"terms": {"field": "id", "min_doc_count": 2, "size": 10}}}}
    try:
        answer = es.post(_path([alias]) + "/_search", body)
    except EsError:
        return None
    buckets = answer.get("aggregations", {}).get("dupes", {}).get("buckets", []) if isinstance(answer, Mapping) else []
    return len(buckets)


def gather(
    es: EsClient,
    check: CopyCheck,
    source_counts: Mapping[str, int],
    *,
    duplicates: bool = False,
    cutoff: Cutoff | None = None,
) -> CopyFacts:
    """Everything `verify.judge` needs about one check: the exact comparison of the ids its sources
    held at `cutoff` (without one, a view of the sources frozen now) and the destination's figures."""
    mine = {name: source_counts.get(name, 0) for name in check.sources}
    if check.problem is not None or check.destination is None:
        return CopyFacts(source_counts=mine)
    own = None
    if cutoff is None:
        own = cutoff = freeze(es, check.sources, FROZEN_NOW_KEEP_ALIVE)
    try:
        tally = compare_ids(es, check, cutoff)
    finally:
        if own is not None:
            own.close(es)
    return CopyFacts(
        source_counts=mine,
        dest_count=count(es, check.destination),
        dest_meta_version=meta_version(es, check.destination),
        ids=tally,
        alias_duplicates=alias_duplicates(es, check.alias) if duplicates else None,
    )


def _hit_ids(answer: Any) -> list[str]:
    if not isinstance(answer, Mapping):
        return []
    hits = answer.get("hits", {}).get("hits", [])
    return [str(hit["_id"]) for hit in hits if isinstance(hit, Mapping) and "_id" in hit]
