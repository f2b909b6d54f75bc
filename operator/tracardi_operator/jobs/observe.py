"""Reading from Elasticsearch what verification needs (I/O only; the verdicts live in `verify`).

What lives here: the cluster layout (index names, alias → indices), document counts, `_meta.version`,
sampled ids and where they occur through an alias, a full id comparison for merged destinations, and
the duplicate-id check over an alias. Index names go into URLs one at a time or joined with commas in
bounded chunks; nothing here ever writes or deletes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracardi_operator.jobs.es import EsClient, EsError
from tracardi_operator.jobs.verify import CopyCheck, CopyFacts, needs_exact_check

SAMPLE_SIZE = 20
ID_BATCH = 1000
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


def sample_ids(es: EsClient, name: str, size: int = SAMPLE_SIZE) -> list[str]:
    """Up to `size` ids from the start and `size` from the end of an index (by `_doc` order)."""
    ids: list[str] = []
    for order in ("asc", "desc"):
        body = {"size": size, "_source": False, "sort": [{"_doc": order}]}
        ids.extend(_hit_ids(es.post(_path([name]) + "/_search", body)))
    return sorted(set(ids))


def occurrences(es: EsClient, alias: str, ids: Sequence[str]) -> dict[str, int]:
    """How often each id is found when reading through `alias` (what Tracardi's load-by-id sees)."""
    found = dict.fromkeys(ids, 0)
    for start in range(0, len(ids), ID_BATCH):
        batch = list(ids[start : start + ID_BATCH])
        body = {"size": 2 * len(batch) + 10, "_source": False, "query": {"ids": {"values": batch}}}
        for hit_id in _hit_ids(es.post(_path([alias]) + "/_search", body)):
            if hit_id in found:
                found[hit_id] += 1
    return found


def exact_compare(es: EsClient, sources: Sequence[str], alias: str) -> tuple[int, int]:
    """(source ids not readable through `alias`, distinct source ids), over every source document."""
    seen: set[str] = set()
    missing = 0
    answer = es.post(
        _path(sources) + "/_search",
        {"size": ID_BATCH, "_source": False, "sort": ["_doc"]},
        scroll="2m",
    )
    scroll_id = answer.get("_scroll_id") if isinstance(answer, Mapping) else None
    try:
        while True:
            batch = [i for i in dict.fromkeys(_hit_ids(answer)) if i not in seen]
            hits = answer.get("hits", {}).get("hits", []) if isinstance(answer, Mapping) else []
            if not hits:
                break
            seen.update(batch)
            missing += sum(1 for n in occurrences(es, alias, batch).values() if n == 0)
            answer = es.post("/_search/scroll", {"scroll": "2m", "scroll_id": scroll_id})
            scroll_id = answer.get("_scroll_id", scroll_id) if isinstance(answer, Mapping) else scroll_id
    finally:
        if scroll_id:
            with contextlib.suppress(EsError):
                es.request("DELETE", "/_search/scroll", body={"scroll_id": scroll_id}, ok_statuses=frozenset({404}))
    return missing, len(seen)


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
    grown: Mapping[str, int] | None = None,
) -> CopyFacts:
    """Everything `verify.judge` needs about one check, reading as little as the figures allow.

    `grown`: documents written to each source after the copy began; an exact comparison sees them as
    missing, and they are not (the copy was never meant to carry them)."""
    mine = {name: source_counts.get(name, 0) for name in check.sources}
    if check.problem is not None or check.destination is None:
        return CopyFacts(source_counts=mine)
    dest_count = count(es, check.destination)
    sampled: list[str] = []
    for source in check.sources:
        if mine[source]:
            sampled.extend(sample_ids(es, source))
    seen = occurrences(es, check.alias, sorted(set(sampled)))
    sample_missing = sum(1 for n in seen.values() if n == 0)
    facts = CopyFacts(
        source_counts=mine,
        dest_count=dest_count,
        dest_meta_version=meta_version(es, check.destination),
        sample_size=len(seen),
        sample_missing=sample_missing,
        sample_duplicated=sum(1 for n in seen.values() if n > 1),
        alias_duplicates=alias_duplicates(es, check.alias) if duplicates else None,
    )
    if needs_exact_check(check, facts):
        missing, distinct = exact_compare(es, check.sources, check.alias)
        written_since = sum((grown or {}).get(name, 0) for name in check.sources)
        facts = dataclasses.replace(facts, exact_missing=max(0, missing - written_since),
                                    distinct_ids=max(0, distinct - written_since))
    return facts


def _hit_ids(answer: Any) -> list[str]:
    if not isinstance(answer, Mapping):
        return []
    hits = answer.get("hits", {}).get("hits", [])
    return [str(hit["_id"]) for hit in hits if isinstance(hit, Mapping) and "_id" in hit]
