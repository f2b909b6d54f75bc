"""Benchmark: retention GC of 1,000 superseded indices against one raw batched delete.

Run: `ELASTICSEARCH_URL=http://127.0.0.1:9200 .venv/bin/python benchmarks/bench_gc.py [--indices N] [--others M]`
(or `export DEVENV_DIR=<state dir>`: the URL is then read from its env file)

It creates N indices of a fake superseded version (db `07b`, tenant `bench`, 1 shard, 0 replicas,
correct `_meta`, via one index template and parallel create calls), and once M unrelated indices that
the cluster also holds (another application's logs), then times
  (a) our path: the operator's retention run (`retention.execution.run`) with a real adapter:
      inventory, plan, the inputs read again before every delete request, batched deletes, verification;
  (b) a raw delete of the same names with the Elasticsearch client, in the same batches,
recreating the indices between rounds, and prints the figures and the ratio (goal <= 1.2).
cluster.max_shards_per_node is raised by a transient setting when needed, and restored.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from tracardi_operator.elastic import ElasticAdapter, ElasticConnection, RawInventory, build_client
from tracardi_operator.indices import VersionId
from tracardi_operator.models import TracardiInstallation, TracardiRetentionPolicy
from tracardi_operator.retention import execution
from tracardi_operator.retention.evidence import live_pairs
from tracardi_operator.retention.inventory import InventoryCache
from tracardi_operator.retention.safety import batch_names

OLD = VersionId("07b", "bench")
LIVE = VersionId("07c", "bench")
TEMPLATE = "bench-gc-template"
OTHERS_TEMPLATE = "bench-gc-others"
OTHERS_PREFIX = "bench-other-app-logs-"


def names(count: int) -> list[str]:
    # Partitioned staging and production indices, as an old version leaves them (all distinct).
    contexts = ("", "prod-")
    return [
        f"{contexts[i % 2]}{OLD.db}.{OLD.tenant}.tracardi-res{i // 24}-{2000 + i % 24 // 12}-{1 + i % 12}"
        for i in range(count)
    ]


def create_indices(client: Elasticsearch, index_names: list[str], workers: int) -> float:
    started = time.perf_counter()
    client.indices.put_index_template(
        name=TEMPLATE,
        body={
            "index_patterns": [f"{OLD.db}.{OLD.tenant}.*", f"prod-{OLD.db}.{OLD.tenant}.*"],
            "priority": 500,
            "template": {
                "settings": {"number_of_shards": 1, "number_of_replicas": 0},
                "mappings": {"_meta": {"version": OLD.db, "name": OLD.tenant}},
            },
        },
    )

    def create(name: str) -> None:
        client.indices.create(index=name, wait_for_active_shards="0", request_timeout=120)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(create, index_names))
    client.cluster.health(index=f"*{OLD.db}.{OLD.tenant}.*", wait_for_status="green", timeout="600s",
                          request_timeout=700)
    # Neither path starts while the master still works through the creations' cluster-state tasks.
    client.cluster.health(wait_for_events="languid", timeout="600s", request_timeout=700)
    return time.perf_counter() - started


def installation() -> TracardiInstallation:
    """The installation whose history makes OLD superseded and LIVE current (as the operator records it)."""
    return TracardiInstallation.model_validate({
        "metadata": {"name": "bench", "namespace": "bench", "generation": 1},
        "spec": {"version": "0.8.1", "elasticsearch": {"hosts": ["http://127.0.0.1:9200"]},
                 "redis": {"url": "redis://127.0.0.1"},
                 "installation": {"adminSecretRef": {"name": "a"}, "tokenSecretRef": {"name": "t", "key": "k"}},
                 "retention": {"enabled": True}},
        "status": {"currentVersion": "0.8.1", "versions": [
            {"version": "0.8.0", "dbVersion": OLD.db, "tenant": OLD.tenant, "state": "Superseded",
             "supersededAt": (datetime.now(UTC) - timedelta(days=30)).isoformat()},
            {"version": "0.8.1", "dbVersion": LIVE.db, "tenant": LIVE.tenant, "state": "Current",
             "migratedFrom": "0.8.0", "migrationVerified": True}]},
    })


POLICY = TracardiRetentionPolicy.model_validate(
    {"metadata": {"name": "bench"}, "spec": {"keepSupersededVersions": 0, "minAgeAfterSuperseded": "0s"}})


def request_kind(method: str, url: str) -> str:
    """`DELETE /{names}`, `GET /_cat/aliases`: the path with every run of index names folded to `{names}`."""
    parts = url.split("?", 1)[0].split("/")
    if len(parts) > 1 and parts[1] and not parts[1].startswith("_"):
        parts[1] = "{names}"  # the index part of the path; what follows an API name (_cat/...) is kept
    return f"{method} {'/'.join(parts) or '/'}"


class RequestTimes:
    """Every request the client sends, timed and counted by kind, under the label set by `label`."""

    def __init__(self, client: Elasticsearch) -> None:
        self.label = ""
        self.times: dict[tuple[str, str], list[float]] = defaultdict(list)
        transport = client.transport
        send: Callable[..., Any] = transport.perform_request

        def timed(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return send(method, url, *args, **kwargs)
            finally:
                if self.label:
                    self.times[(self.label, request_kind(method, url))].append(time.perf_counter() - started)

        transport.perform_request = timed  # type: ignore[method-assign]

    def table(self, elapsed: dict[str, float]) -> str:
        """Per path and request kind: count, total and median seconds, over every round; and the time
        each path spent outside requests (`elapsed`: each path's total over every round)."""
        rows = [f"{'path':<5} {'request':<42} {'count':>6} {'total s':>9} {'median ms':>10}"]
        for (label, kind), spent in sorted(self.times.items(), key=lambda kv: (kv[0][0], -sum(kv[1]))):
            rows.append(f"{label:<5} {kind:<42} {len(spent):>6} {sum(spent):>9.3f} "
                        f"{statistics.median(spent) * 1000:>10.1f}")
        for label, total in sorted(elapsed.items()):
            in_requests = sum(sum(spent) for (path, _), spent in self.times.items() if path == label)
            rows.append(f"{label:<5} {'(outside requests: planning, parsing)':<42} {'':>6} "
                        f"{total - in_requests:>9.3f}")
        return "\n".join(rows)


def our_path(client: Elasticsearch, expected: set[str], requests: RequestTimes) -> tuple[float, int, int]:
    """The operator's own retention run (`retention.execution.run`): inventory, plan, the inputs read
    again before every delete request, batched deletes, verification. Returns the time, the batches
    and the inventory reads."""
    adapter = CountingAdapter(client)
    inst = installation()
    live = live_pairs(inst)

    def recheck() -> execution.Fresh:
        return execution.Fresh([POLICY], live, inst, {})

    started = time.perf_counter()
    effects = execution.Callbacks(publish=lambda status: None, recheck=recheck, record_deleting=lambda names: None)
    outcome = execution.run(inst, adapter, InventoryCache(), [POLICY], {}, live, datetime.now(UTC), effects)
    elapsed = time.perf_counter() - started
    requests.label = ""  # the check below is the benchmark's, not the path's
    if outcome.deleted_indices != len(expected):
        raise SystemExit(f"our path deleted {outcome.deleted_indices} indices, not the {len(expected)} made")
    remaining = adapter.existing_indices(sorted(expected))
    if remaining:
        raise SystemExit(f"{len(remaining)} indices still exist after our path")
    return elapsed, len(batch_names(sorted(expected))), adapter.inventory_reads


class CountingAdapter(ElasticAdapter):
    """The operator's adapter, counting how often it reads the whole inventory."""

    def __init__(self, client: Elasticsearch) -> None:
        super().__init__(client)
        self.inventory_reads = 0

    def read_inventory(self) -> RawInventory:
        self.inventory_reads += 1
        return super().read_inventory()


def create_others(client: Elasticsearch, count: int, workers: int) -> float:
    """Unrelated indices (an application's daily logs, no `_meta`), made once and left for every round."""
    if count <= 0:
        return 0.0
    started = time.perf_counter()
    client.indices.put_index_template(name=OTHERS_TEMPLATE, body={
        "index_patterns": [f"{OTHERS_PREFIX}*"], "priority": 500,
        "template": {"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                     "mappings": {"properties": {"message": {"type": "text"}, "at": {"type": "date"}}}}})
    have = set(client.indices.get(index=f"{OTHERS_PREFIX}*", expand_wildcards="all",
                                  filter_path="*.settings.index.uuid") or {})
    wanted = [f"{OTHERS_PREFIX}{i:05d}" for i in range(count)]
    missing = [n for n in wanted if n not in have]

    def create(name: str) -> None:
        client.indices.create(index=name, wait_for_active_shards="0", request_timeout=300)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, _ in enumerate(pool.map(create, missing), 1):
            if done % 500 == 0:
                print(f"  others: {done}/{len(missing)} created", flush=True)
    client.cluster.health(wait_for_status="green", timeout="600s", request_timeout=700)
    return time.perf_counter() - started


def raw_path(client: Elasticsearch, index_names: list[str]) -> float:
    started = time.perf_counter()
    for batch in batch_names(sorted(index_names)):
        client.indices.delete(index=",".join(batch))
    return time.perf_counter() - started


def ensure_shard_room(client: Elasticsearch, needed: int) -> object:
    """Raise the transient limit if needed; returns the previous transient value to restore."""
    settings = client.cluster.get_settings(include_defaults=True, flat_settings=True)
    previous = settings.get("transient", {}).get("cluster.max_shards_per_node")
    current = int(
        previous
        or settings.get("persistent", {}).get("cluster.max_shards_per_node")
        or settings.get("defaults", {}).get("cluster.max_shards_per_node", 1000)
    )
    nodes = int(client.cluster.health()["number_of_data_nodes"])
    in_use = int(client.cluster.health()["active_shards"]) + int(client.cluster.health()["unassigned_shards"])
    if in_use + needed > current * nodes:
        raised = (in_use + needed) // max(1, nodes) + 100
        client.cluster.put_settings(body={"transient": {"cluster.max_shards_per_node": raised}})
        print(f"raised cluster.max_shards_per_node from {current} to {raised} (transient)")
    return previous


def elasticsearch_url() -> str:
    """$ELASTICSEARCH_URL, else the one in $DEVENV_DIR/env. `source <dir>/env` sets but does not export
    the variable; never guess a state directory: another devenv's cluster is not ours to load."""
    url = os.environ.get("ELASTICSEARCH_URL")
    if url:
        return url
    devenv_dir = os.environ.get("DEVENV_DIR")
    if devenv_dir:
        env_file = Path(devenv_dir) / "env"
        for line in env_file.read_text().splitlines() if env_file.exists() else []:
            key, _, value = line.removeprefix("export ").partition("=")
            if key.strip() == "ELASTICSEARCH_URL" and value.strip():
                return value.strip()
    raise SystemExit("export ELASTICSEARCH_URL, or DEVENV_DIR (its env file names the URL)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--indices", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of both paths (0: only make the unrelated indices, and keep them)")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--others", type=int, default=0,
                        help="unrelated indices the cluster also holds (made once, deleted at the end)")
    parser.add_argument("--keep-others", action="store_true", help="leave the unrelated indices for a next run")
    args = parser.parse_args()
    url = elasticsearch_url()
    print(f"Elasticsearch at {url}")
    client = build_client(ElasticConnection(hosts=(url,), request_timeout=300))
    requests = RequestTimes(client)
    index_names = names(args.indices)
    previous_limit = ensure_shard_room(client, args.indices + args.others)
    ours: list[float] = []
    raw: list[float] = []
    reads: list[int] = []
    try:
        made = create_others(client, args.others, args.workers)
        if args.others:
            print(f"{args.others} unrelated indices on the cluster (made or found in {made:.1f} s)")
        if args.rounds == 0:
            args.keep_others = True
            print("--rounds 0: nothing timed; the unrelated indices are kept for the next run")
            return
        for round_number in range(args.rounds):
            # Alternate the order so that neither path always runs on a freshly loaded cluster.
            for path in ("ours", "raw") if round_number % 2 == 0 else ("raw", "ours"):
                created = create_indices(client, index_names, args.workers)
                requests.label = path
                if path == "ours":
                    elapsed, batches, inventory_reads = our_path(client, set(index_names), requests)
                    ours.append(elapsed)
                    reads.append(inventory_reads)
                else:
                    elapsed = raw_path(client, index_names)
                    raw.append(elapsed)
                    batches = len(batch_names(index_names))
                requests.label = ""
                label = f"round {round_number + 1} {path:>4}"
                print(f"{label}: {elapsed:7.3f} s ({batches} batches; indices created in {created:.1f} s)")
    finally:
        for batch in batch_names(index_names):
            client.indices.delete(index=",".join(batch), ignore_unavailable=True, request_timeout=300)
        client.indices.delete_index_template(name=TEMPLATE, ignore=[404])
        if args.others and not args.keep_others:
            client.indices.delete(index=f"{OTHERS_PREFIX}*", request_timeout=600)
            client.indices.delete_index_template(name=OTHERS_TEMPLATE, ignore=[404])
        client.cluster.put_settings(body={"transient": {"cluster.max_shards_per_node": previous_limit}})
    if not ours:
        return
    ours_median, raw_median = statistics.median(ours), statistics.median(raw)
    print(f"indices: {args.indices}, unrelated indices: {args.others}, rounds: {args.rounds}")
    print(f"ours (the retention run: inventory, plan, re-read before each request, batched delete, verify): "
          f"median {ours_median:.3f} s  {ours}; inventory reads per run {reads}")
    print(f"raw batched delete:                               median {raw_median:.3f} s  {raw}")
    print(f"ratio ours/raw: {ours_median / raw_median:.2f} (goal <= 1.2)")
    print("where the time goes (requests sent while each path was timed, every round):")
    print(requests.table({"ours": sum(ours), "raw": sum(raw)}))


if __name__ == "__main__":
    main()
