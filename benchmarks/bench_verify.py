"""Benchmark: the exact id verification of one migrated index (1,000,000 documents by default).

Run: `ELASTICSEARCH_URL=http://127.0.0.1:9200 .venv/bin/python benchmarks/bench_verify.py [--docs N]`

It seeds N small documents into a source index (`08x.benchv.tracardi-event-2026-1`, 1 shard, 0
replicas) and copies them with `_reindex` into a destination read through an alias, as a migration
would. Then it times what the migration Job does: open the frozen view of the source at the cutoff
(`observe.freeze`), and stream every id of it, looking each up through the alias (`observe.compare_ids`,
folded by `verify.IdTally`). It prints the seconds of each part, ids per second and the peak RSS of
this process (`resource.getrusage`), before and after the check. The indices are deleted at the end
(`--keep` keeps them for a second run, which then skips the seeding).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import urllib.request

from tracardi_operator.indices import Context
from tracardi_operator.jobs import observe
from tracardi_operator.jobs.es import EsClient
from tracardi_operator.jobs.verify import CopyCheck

SOURCE = "08x.benchv.tracardi-event-2026-1"
DESTINATION = "0820.benchv.tracardi-event-2026-1"
ALIAS = "benchv.tracardi-event"
SETTINGS = {"settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"}}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def seed(es: EsClient, url: str, docs: int, batch: int = 10000) -> float:
    started = time.perf_counter()
    es.request("PUT", f"/{SOURCE}", SETTINGS)
    for start in range(0, docs, batch):
        lines = []
        for i in range(start, min(docs, start + batch)):
            doc_id = f"ev-{i:08d}-{(i * 2654435761) % 2**32:08x}"  # uuid-like length, not in _doc order
            lines.append(json.dumps({"index": {"_id": doc_id}}))
            lines.append(json.dumps({"id": doc_id, "type": "page-view", "n": i}))
        request = urllib.request.Request(  # noqa: S310 (the URL is the operator's own ELASTICSEARCH_URL)
            f"{url}/{SOURCE}/_bulk", data=("\n".join(lines) + "\n").encode(), method="POST",
            headers={"Content-Type": "application/x-ndjson"},
        )
        with urllib.request.urlopen(request, timeout=300) as answer:  # noqa: S310
            if json.loads(answer.read())["errors"]:
                raise SystemExit("bulk indexing failed")
    es.post(f"/{SOURCE}/_refresh")
    es.request("PUT", f"/{DESTINATION}", {**SETTINGS, "aliases": {ALIAS: {}}})
    es.post("/_reindex", {"source": {"index": SOURCE, "size": 5000}, "dest": {"index": DESTINATION}},
            wait_for_completion="true", timeout="30m")
    for name in (SOURCE, DESTINATION):
        es.request("PUT", f"/{name}/_settings", {"index": {"refresh_interval": "1s"}})
        es.post(f"/{name}/_refresh")
        es.post(f"/{name}/_forcemerge", max_num_segments="1")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--page", type=int, default=observe.PAGE, help="ids per scroll page")
    parser.add_argument("--batch", type=int, default=observe.ID_BATCH, help="ids per lookup through the alias")
    parser.add_argument("--keep", action="store_true", help="keep the indices (a second run skips seeding)")
    args = parser.parse_args(argv)
    url = os.environ.get("ELASTICSEARCH_URL")
    if not url:
        print("set ELASTICSEARCH_URL (e.g. `source .devenv/env`)", file=sys.stderr)
        return 2
    es = EsClient((url,), timeout=1800.0)
    try:
        existing = es.request("GET", f"/{SOURCE}/_count", ok_statuses=frozenset({404}))
        if isinstance(existing, dict) and existing.get("count") == args.docs:
            print(f"seed: reusing {args.docs} documents")
        else:
            es.request("DELETE", f"/{SOURCE},{DESTINATION}", ok_statuses=frozenset({404}))
            print(f"seed: {args.docs} documents into source and destination in {seed(es, url, args.docs):.1f} s")
        rss_before = peak_rss_mib()
        started = time.perf_counter()
        cutoff = observe.freeze(es, [SOURCE], keep_alive_seconds=3600, page=args.page)
        frozen = time.perf_counter() - started
        check = CopyCheck(Context.STAGING, "event", (SOURCE,), DESTINATION, ALIAS, None)
        tally = observe.compare_ids(es, check, cutoff, batch=args.batch)
        total = time.perf_counter() - started
        cutoff.close(es)
        if tally.checked != args.docs or tally.missing:
            print(f"unexpected: checked {tally.checked}, missing {tally.missing}", file=sys.stderr)
            return 1
        print(f"documents: {args.docs}  page: {args.page}  lookup batch: {args.batch}")
        print(f"freeze (cutoff): {frozen:.2f} s")
        print(f"exact check: {total:.1f} s ({args.docs / total:,.0f} ids/s), {tally.checked} ids, 0 missing")
        print(f"peak RSS: {rss_before:.1f} MiB before the check, {peak_rss_mib():.1f} MiB after")
        return 0
    finally:
        if not args.keep:
            es.request("DELETE", f"/{SOURCE},{DESTINATION}", ok_statuses=frozenset({404}))


if __name__ == "__main__":
    sys.exit(main())
