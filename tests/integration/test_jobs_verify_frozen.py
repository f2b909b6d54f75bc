"""Verification proves ids, not counts, against the frozen view of each source (devenv's Elasticsearch).

The attack: with the Online strategy the old version keeps writing after the cutoff and before
Tracardi's `_reindex` starts, so the copy carries documents written since; if it also loses as many
documents of the cutoff, counts balance. Each test uses its own tenants and deletes its indices.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tracardi_operator.indices import VersionId
from tracardi_operator.jobs.common import Deadline, JobError, Log
from tracardi_operator.jobs.es import EsClient
from tracardi_operator.jobs.migrate import MigrationRequest, repair_and_verify, source_cutoff
from tracardi_operator.tracardi_api import MigrationEntry

SEEDED = 3000
N = 300


@pytest.fixture(scope="module")
def es_url(request: pytest.FixtureRequest) -> str:
    return os.environ.get("ELASTICSEARCH_URL") or str(request.getfixturevalue("devenv").elasticsearch_url)


@pytest.fixture
def world(es_url: str) -> Iterator[tuple[EsClient, VersionId, VersionId]]:
    es = EsClient((es_url,))
    source, target = VersionId("08x", f"vf{uuid.uuid4().hex[:6]}"), VersionId("0820", f"wf{uuid.uuid4().hex[:6]}")
    yield es, source, target
    for version in (source, target):
        es.request("DELETE", f"/*.{version.tenant}.tracardi-*", params={"expand_wildcards": "all"},
                   ok_statuses=frozenset({404}))


def bulk(es: EsClient, index: str, ids: list[str]) -> None:
    for start in range(0, len(ids), 5000):
        lines = []
        for doc_id in ids[start : start + 5000]:
            lines.append(json.dumps({"index": {"_index": index, "_id": doc_id}}))
            lines.append(json.dumps({"id": doc_id, "name": f"doc {doc_id}"}))
        request = urllib.request.Request(
            es.hosts[0] + "/_bulk?refresh=true", data=("\n".join(lines) + "\n").encode(), method="POST",
            headers={"Content-Type": "application/x-ndjson"},
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            assert not json.loads(answer.read())["errors"]


def copy(es: EsClient, source: str, destination: str) -> None:
    es.post("/_reindex", {"source": {"index": source}, "dest": {"index": destination}}, refresh="true")


def delete_ids(es: EsClient, index: str, ids: list[str]) -> None:
    es.post(f"/{index}/_delete_by_query", {"query": {"ids": {"values": ids}}}, refresh="true")


def verify(es: EsClient, request: MigrationRequest, entries: list[MigrationEntry], cutoff: Any) -> dict[str, Any]:
    log = Log(stream=io.StringIO())
    return repair_and_verify(es, request, entries, Deadline(300), log, dt.date(2026, 11, 3), cutoff=cutoff)


def prepare(es: EsClient, source: VersionId, target: VersionId, resource: str = "flow") -> tuple[str, str]:
    src, dst = f"{source.db}.{source.tenant}.tracardi-{resource}", f"{target.db}.{target.tenant}.tracardi-{resource}"
    bulk(es, src, [f"old-{i:05d}" for i in range(SEEDED)])
    es.request("PUT", f"/{dst}", {"aliases": {f"{target.tenant}.tracardi-{resource}": {}}})
    return src, dst


def test_losses_masked_by_writes_after_the_cutoff_fail_with_the_missing_count(
    world: tuple[EsClient, VersionId, VersionId],
) -> None:
    es, source, target = world
    src, dst = prepare(es, source, target)
    request = MigrationRequest(source, target, repair=False, merged_suffix=None)
    cutoff = source_cutoff(es, request, Deadline(600))
    # Online: the old version writes N documents after the cutoff, before Tracardi's _reindex starts ...
    bulk(es, src, [f"new-{i:05d}" for i in range(N)])
    # ... and the copy loses N documents of the cutoff, from the middle (no first/last sample sees them).
    copy(es, src, dst)
    lost = [f"old-{i:05d}" for i in range(SEEDED // 2, SEEDED // 2 + N)]
    delete_ids(es, dst, lost)
    assert es.get(f"/{dst}/_count")["count"] == SEEDED  # the counts balance: 3000 = 3000 - 300 + 300

    entry = MigrationEntry("e1", src, dst, False, False, "reindex", False)
    with pytest.raises(JobError) as failed:
        verify(es, request, [entry], cutoff)
    assert failed.value.reason == "MigrationIncomplete"
    (incomplete,) = failed.value.details["incomplete"]
    assert (incomplete["resource"], incomplete["missing"], incomplete["problems"]) == ("flow", N, ["DocumentsMissing"])
    assert incomplete["missingIds"]
    assert set(incomplete["missingIds"]) <= set(lost)
    assert f"staging/flow: {N} documents not readable (DocumentsMissing)" in failed.value.message
    assert incomplete["missingIds"][0] in failed.value.message


def test_writes_and_deletions_after_the_cutoff_are_no_loss(world: tuple[EsClient, VersionId, VersionId]) -> None:
    es, source, target = world
    src, dst = prepare(es, source, target)
    request = MigrationRequest(source, target, repair=False, merged_suffix=None)
    cutoff = source_cutoff(es, request, Deadline(600))
    bulk(es, src, [f"new-{i:05d}" for i in range(N)])  # written after the cutoff: not required
    deleted = [f"old-{i:05d}" for i in range(10)]
    delete_ids(es, src, deleted)  # deleted by the old version after the cutoff, before the copy
    copy(es, src, dst)

    entry = MigrationEntry("e1", src, dst, False, False, "reindex", False)
    result = verify(es, request, [entry], cutoff)
    staging = result["contexts"]["staging"]
    assert staging["sourceDocs"] == SEEDED - 10
    assert staging["deletedSinceCutoff"] == 10


def test_merged_partitions_are_proven_id_by_id(world: tuple[EsClient, VersionId, VersionId]) -> None:
    es, source, target = world
    first, second = (f"{source.db}.{source.tenant}.tracardi-event-2026-{m}" for m in (9, 10))
    merged = f"{target.db}.{target.tenant}.tracardi-event-2026-q4"
    bulk(es, first, [f"a-{i}" for i in range(500)] + ["both"])
    bulk(es, second, [f"b-{i}" for i in range(500)] + ["both"])  # one id saved in two months
    es.request("PUT", f"/{merged}", {"aliases": {f"{target.tenant}.tracardi-event": {}}})
    request = MigrationRequest(source, target, repair=False, merged_suffix=None)
    cutoff = source_cutoff(es, request, Deadline(600))
    copy(es, first, merged)
    copy(es, second, merged)
    entries = [MigrationEntry(f"e{i}", name, merged, False, False, "reindex", False)
               for i, name in enumerate((first, second))]
    result = verify(es, request, entries, cutoff)
    assert result["contexts"]["staging"]["collapsedIds"] == 1

    delete_ids(es, merged, ["b-7"])
    cutoff = source_cutoff(es, request, Deadline(600))
    with pytest.raises(JobError) as failed:
        verify(es, request, entries, cutoff)
    (incomplete,) = failed.value.details["incomplete"]
    assert (incomplete["missing"], incomplete["missingIds"]) == (1, ["b-7"])
