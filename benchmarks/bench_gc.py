"""Benchmark: retention GC of 1,000 superseded indices against one raw batched delete.

Run: `ELASTICSEARCH_URL=http://127.0.0.1:9200 .venv/bin/python benchmarks/bench_gc.py [--indices N]`
(or `export DEVENV_DIR=<state dir>`: the URL is then read from its env file)

It creates N indices of a fake superseded version (db `07b`, tenant `bench`, 1 shard, 0 replicas,
correct `_meta`, via one index template and parallel create calls), then times
  (a) our path: read the inventory + parse + plan + delete via elastic.py in batches + verify gone,
  (b) a raw delete of the same names with the Elasticsearch client, in the same batches,
recreating the indices between rounds, and prints the figures and the ratio (goal <= 1.2).
cluster.max_shards_per_node is raised by a transient setting when needed, and restored.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from elasticsearch import Elasticsearch

from tracardi_operator.elastic import ElasticAdapter, ElasticConnection, build_client
from tracardi_operator.indices import VersionId, parse_inventory
from tracardi_operator.retention import (
    HistoryEntry,
    PolicySelection,
    RetentionPolicy,
    RetentionRules,
    SelectionOutcome,
    VersionState,
    batch_names,
    plan_retention,
)

OLD = VersionId("07b", "bench")
LIVE = VersionId("07c", "bench")
TEMPLATE = "bench-gc-template"


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
    client.cluster.health(index=f"*{OLD.db}.{OLD.tenant}.*", wait_for_status="green", timeout="120s")
    return time.perf_counter() - started


def our_path(client: Elasticsearch, expected: set[str]) -> tuple[float, int]:
    adapter = ElasticAdapter(client)
    started = time.perf_counter()
    raw = adapter.read_inventory()
    inventory = parse_inventory(raw.cat_indices, raw.aliases, raw.index_templates, raw.mappings)
    now = datetime.now(UTC)
    history = [
        HistoryEntry("0.7.11", OLD.db, OLD.tenant, VersionState.SUPERSEDED, superseded_at=now - timedelta(days=30)),
        HistoryEntry(
            "0.7.12", LIVE.db, LIVE.tenant, VersionState.CURRENT, migrated_from="0.7.11", migration_verified=True
        ),
    ]
    policy = PolicySelection(
        SelectionOutcome.GOVERNED,
        RetentionPolicy(
            "bench", rules=RetentionRules(keep_superseded_versions=0, min_age_after_superseded=timedelta(0))
        ),
    )
    plan = plan_retention(
        history, inventory, policy=policy, retention_enabled=True, cluster_live_versions=[LIVE], now=now
    )
    planned = set(plan.indices)
    if planned != expected:
        raise SystemExit(f"plan differs from the benchmark indices: {len(planned)} planned, {len(expected)} made")
    for batch in plan.executable_index_batches:
        adapter.delete_indices(batch)
    remaining = adapter.existing_indices(plan.indices)  # as gc.run verifies: one request
    elapsed = time.perf_counter() - started
    if remaining:
        raise SystemExit(f"{len(remaining)} indices still exist after our path")
    return elapsed, len(plan.index_batches)


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
            key, _, value = line.partition("=")
            if key.strip() == "ELASTICSEARCH_URL" and value.strip():
                return value.strip()
    raise SystemExit("export ELASTICSEARCH_URL, or DEVENV_DIR (its env file names the URL)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--indices", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    url = elasticsearch_url()
    print(f"Elasticsearch at {url}")
    client = build_client(ElasticConnection(hosts=(url,), request_timeout=300))
    index_names = names(args.indices)
    previous_limit = ensure_shard_room(client, args.indices)
    ours: list[float] = []
    raw: list[float] = []
    try:
        for round_number in range(args.rounds):
            # Alternate the order so that neither path always runs on a freshly loaded cluster.
            for path in ("ours", "raw") if round_number % 2 == 0 else ("raw", "ours"):
                created = create_indices(client, index_names, args.workers)
                if path == "ours":
                    elapsed, batches = our_path(client, set(index_names))
                    ours.append(elapsed)
                else:
                    elapsed = raw_path(client, index_names)
                    raw.append(elapsed)
                    batches = len(batch_names(index_names))
                label = f"round {round_number + 1} {path:>4}"
                print(f"{label}: {elapsed:7.3f} s ({batches} batches; indices created in {created:.1f} s)")
    finally:
        for batch in batch_names(index_names):
            client.indices.delete(index=",".join(batch), ignore_unavailable=True, request_timeout=300)
        client.indices.delete_index_template(name=TEMPLATE, ignore=[404])
        client.cluster.put_settings(body={"transient": {"cluster.max_shards_per_node": previous_limit}})
    ours_median, raw_median = statistics.median(ours), statistics.median(raw)
    print(f"indices: {args.indices}, rounds: {args.rounds}")
    print(f"ours (inventory + plan + batched delete + verify): median {ours_median:.3f} s  {ours}")
    print(f"raw batched delete:                               median {raw_median:.3f} s  {raw}")
    print(f"ratio ours/raw: {ours_median / raw_median:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
