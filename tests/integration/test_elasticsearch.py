"""devenv's Elasticsearch: the real 7.10.2 JVM, its modules (reindex, painless), snapshots, restart and stop."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from elasticsearch import Elasticsearch

from devenv import elasticsearch as devenv_es
from devenv import procs
from devenv.paths import State

pytestmark = [
    pytest.mark.integration,
    # procs.start lets go of the Popen of a detached process that is meant to outlive it; Python then warns
    # "subprocess N is still running" when that object is collected. Not a leak: stop() reaps it.
    pytest.mark.filterwarnings(r"ignore:subprocess \d+ is still running:ResourceWarning"),
]


class Running:
    def __init__(self, state: State, port: int, url: str) -> None:
        self.state = state
        self.port = port
        self.url = url

    def client(self) -> Elasticsearch:
        return Elasticsearch([self.url], request_timeout=60)


# Until devenv's shared fixtures exist: an Elasticsearch of its own, in a temporary state directory.
@pytest.fixture(scope="module")
def es_devenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    state = State(tmp_path_factory.mktemp("devenv"))
    devenv_es.build(state)
    port = devenv_es.free_ports()
    url = devenv_es.start(state, port)
    try:
        devenv_es.wait_ready(state, url)
        yield Running(state, port, url)
    finally:
        devenv_es.stop(state)


@pytest.fixture
def es(es_devenv: Running) -> Iterator[Elasticsearch]:
    client = es_devenv.client()
    yield client
    client.close()


def test_version_is_7_10_2(es: Elasticsearch) -> None:
    info = es.info()
    assert info["version"]["number"] == "7.10.2"
    assert info["version"]["build_flavor"] == "default"
    assert info["cluster_name"] == "devenv"


def test_create_and_delete_index(es: Elasticsearch) -> None:
    es.indices.create(index="create-delete", mappings={"properties": {"name": {"type": "keyword"}}})
    es.index(index="create-delete", id="1", document={"name": "one"}, refresh=True)
    assert es.get(index="create-delete", id="1")["_source"] == {"name": "one"}
    assert es.search(index="create-delete", query={"term": {"name": "one"}})["hits"]["total"]["value"] == 1
    es.indices.delete(index="create-delete")
    assert not es.indices.exists(index="create-delete")


def test_snapshot_into_path_repo(es: Elasticsearch, es_devenv: Running) -> None:
    location = devenv_es.snapshots_dir(es_devenv.state) / "fs-test"
    es.indices.create(index="snap-src", settings={"number_of_replicas": 0})
    es.index(index="snap-src", id="1", document={"v": 1}, refresh=True)
    es.snapshot.create_repository(repository="fs-test", body={"type": "fs", "settings": {"location": str(location)}})
    created = es.snapshot.create(
        repository="fs-test", snapshot="snap-1", body={"indices": "snap-src"}, wait_for_completion=True
    )
    assert created["snapshot"]["state"] == "SUCCESS"
    listed = es.snapshot.get(repository="fs-test", snapshot="_all")["snapshots"]
    assert [s["snapshot"] for s in listed] == ["snap-1"]
    assert listed[0]["indices"] == ["snap-src"]
    assert any(location.iterdir())

    restored = es.snapshot.restore(
        repository="fs-test",
        snapshot="snap-1",
        body={"indices": "snap-src", "rename_pattern": "(.+)", "rename_replacement": "restored-$1"},
        wait_for_completion=True,
    )
    assert restored["snapshot"]["shards"]["failed"] == 0
    assert es.get(index="restored-snap-src", id="1")["_source"] == {"v": 1}


def test_reindex_module(es: Elasticsearch) -> None:
    for i in range(5):
        es.index(index="reindex-src", id=str(i), document={"n": i})
    es.indices.refresh(index="reindex-src")
    result = es.reindex(
        body={"source": {"index": "reindex-src"}, "dest": {"index": "reindex-dst"}},
        refresh=True,
        wait_for_completion=True,
    )
    assert result["created"] == 5
    assert result["failures"] == []
    assert es.count(index="reindex-dst")["count"] == 5


def test_painless_update_by_query(es: Elasticsearch) -> None:
    for i in range(3):
        es.index(index="painless", id=str(i), document={"n": i})
    es.indices.refresh(index="painless")
    result = es.update_by_query(
        index="painless",
        body={
            "query": {"range": {"n": {"gte": 1}}},
            "script": {"lang": "painless", "source": "ctx._source.n += params.k", "params": {"k": 10}},
        },
        refresh=True,
        conflicts="proceed",
    )
    assert result["updated"] == 2
    values = sorted(es.get(index="painless", id=str(i))["_source"]["n"] for i in range(3))
    assert values == [0, 11, 12]


def test_the_adapter_lists_tracardi_indices_and_counts_every_shard(es: Elasticsearch, es_devenv: Running) -> None:
    """The inventory lists (and reads the mappings of) Tracardi-named indices only; the shards in use
    are the whole cluster's, the other indices' too, as Elasticsearch's limit counts them."""
    from tracardi_operator.elastic import ElasticAdapter, ElasticConnection, build_client

    meta = {"_meta": {"version": "0820", "name": "ab12c"}}
    es.indices.create(index="0820.ab12c.tracardi-profile", mappings=meta,
                      settings={"number_of_shards": 2, "number_of_replicas": 0})
    es.indices.create(index="app-logs-1", settings={"number_of_shards": 3, "number_of_replicas": 0})
    with warnings.catch_warnings():  # Elasticsearch warns that dot names are for system indices
        warnings.simplefilter("ignore")
        es.indices.create(index=".app-state", settings={"number_of_shards": 1, "number_of_replicas": 0})
    es.cluster.health(index="0820.ab12c.tracardi-profile,app-logs-1", wait_for_status="green", timeout="30s",
                      request_timeout=60)  # other tests' indices may keep the cluster yellow
    try:
        adapter = ElasticAdapter(build_client(ElasticConnection(hosts=(es_devenv.url,))))
        raw = adapter.read_inventory()
        assert [row["index"] for row in raw.cat_indices] == ["0820.ab12c.tracardi-profile"]
        assert set(raw.mappings) == {"0820.ab12c.tracardi-profile"}
        health = es.cluster.health()
        total = sum(int(health[k]) for k in ("active_shards", "initializing_shards", "unassigned_shards"))
        assert total >= 6
        assert raw.shards_in_use == total
        room = adapter.shard_room()
        assert (room.shards_in_use, room.data_nodes) == (total, 1)
        assert room.max_shards_per_node == raw.max_shards_per_node == 1000
        # Verifying a long list of names (past one request line) reads the Tracardi-named listing when
        # every name is Tracardi's, else asks by name, one request line at a time.
        gone = [f"0820.ab12c.tracardi-gone{i}" for i in range(300)]
        assert adapter.existing_indices([*gone, "0820.ab12c.tracardi-profile"]) == {"0820.ab12c.tracardi-profile"}
        assert adapter.existing_indices([*gone, "app-logs-1"]) == {"app-logs-1"}
        # Read again for the next request's names: a new alias is seen, an index made again with another
        # version's _meta is read anew, and a name gone since drops out.
        es.indices.put_alias(index="0820.ab12c.tracardi-profile", name="reports")
        fresh = adapter.refresh_inventory(raw, ["0820.ab12c.tracardi-profile"], deleted=[])
        assert "reports" in fresh.aliases["0820.ab12c.tracardi-profile"]["aliases"]
        es.indices.delete(index="0820.ab12c.tracardi-profile")
        es.indices.create(index="0820.ab12c.tracardi-profile", mappings={"_meta": {"version": "0821", "name": "x"}},
                          settings={"number_of_shards": 1, "number_of_replicas": 0})
        fresh = adapter.refresh_inventory(raw, ["0820.ab12c.tracardi-profile"], deleted=[])
        assert fresh.mappings["0820.ab12c.tracardi-profile"]["mappings"]["_meta"]["version"] == "0821"
        assert "0820.ab12c.tracardi-profile" not in fresh.aliases
        # A closed index still exists, with its _meta; one without _meta exists with none.
        es.indices.close(index="0820.ab12c.tracardi-profile")
        fresh = adapter.refresh_inventory(raw, ["0820.ab12c.tracardi-profile"], deleted=[])
        assert [row["index"] for row in fresh.cat_indices] == ["0820.ab12c.tracardi-profile"]
        assert fresh.mappings["0820.ab12c.tracardi-profile"]["mappings"]["_meta"]["version"] == "0821"
        es.indices.delete(index="0820.ab12c.tracardi-profile")
        es.indices.create(index="0820.ab12c.tracardi-profile", settings={"number_of_shards": 1,
                                                                         "number_of_replicas": 0})
        fresh = adapter.refresh_inventory(raw, ["0820.ab12c.tracardi-profile"], deleted=[])
        assert [row["index"] for row in fresh.cat_indices] == ["0820.ab12c.tracardi-profile"]
        assert "0820.ab12c.tracardi-profile" not in fresh.mappings
        es.indices.delete(index="0820.ab12c.tracardi-profile")
        fresh = adapter.refresh_inventory(raw, ["0820.ab12c.tracardi-profile"], deleted=[])
        assert fresh.cat_indices == []
        assert fresh.mappings == {}
        assert fresh.cluster_uuid == raw.cluster_uuid
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            es.indices.delete(index="0820.ab12c.tracardi-profile,app-logs-1,.app-state", ignore_unavailable=True)


class _RefusingClusterState(BaseHTTPRequestHandler):
    """Forwards every request to Elasticsearch but `_cluster/state`, which it refuses as Elasticsearch
    refuses a user without the cluster privilege (403, security_exception)."""

    upstream: ClassVar[str] = ""
    refused: ClassVar[list[str]] = []

    def _forward(self) -> None:
        if self.path.startswith("/_cluster/state"):
            self.refused.append(self.path)
            body = json.dumps({"error": {"type": "security_exception", "reason": "action [cluster:monitor/state] "
                               "is unauthorized for user [tracardi]"}, "status": 403}).encode()
            self._answer(403, {"Content-Type": "application/json"}, body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(self.upstream + self.path, data=data, method=self.command, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                self._answer(answer.status, dict(answer.headers.items()), answer.read())
        except urllib.error.HTTPError as error:
            self._answer(error.code, dict(error.headers.items()), error.read())

    def _answer(self, code: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(code)
        for key, value in headers.items():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_without_the_cluster_state_the_inventory_reads_the_index_api_alike(es: Elasticsearch,
                                                                           es_devenv: Running) -> None:
    """A user who may not read the cluster state (403) gets the same inventory from the index API: the
    same rows (a closed index and a hidden one included) and the same `_meta`s, and the refused request
    is sent again only after STATE_ASKED_AGAIN_AFTER."""
    from tracardi_operator.elastic import STATE_ASKED_AGAIN_AFTER, ElasticAdapter, ElasticConnection, build_client

    created = ["0820.ab12c.tracardi-event", "0820.ab12c.tracardi-closed", "0820.ab12c.tracardi-hidden",
               "0820.ab12c.tracardi-nometa"]
    es.indices.create(index=created[0], mappings={"_meta": {"version": "0820", "name": "ab12c"}},
                      settings={"number_of_shards": 2, "number_of_replicas": 0})
    es.indices.create(index=created[1], mappings={"_meta": {"version": "0820", "name": "ab12c"}},
                      settings={"number_of_shards": 1, "number_of_replicas": 0})
    es.indices.create(index=created[2], mappings={"_meta": {"version": "0821", "name": "x"}},
                      settings={"number_of_shards": 1, "number_of_replicas": 0, "index.hidden": True})
    es.indices.create(index=created[3], settings={"number_of_shards": 1, "number_of_replicas": 1})
    es.cluster.health(index=",".join(created[:3]), wait_for_status="green", timeout="30s", request_timeout=60)
    es.indices.close(index=created[1])
    _RefusingClusterState.upstream = es_devenv.url.rstrip("/")
    _RefusingClusterState.refused = []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingClusterState)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        direct = ElasticAdapter(build_client(ElasticConnection(hosts=(es_devenv.url,)))).read_inventory()
        now = [1000.0]
        refused = ElasticAdapter(build_client(ElasticConnection(hosts=(f"http://127.0.0.1:{proxy.server_port}",))),
                                 clock=lambda: now[0])
        first = refused.read_inventory()
        now[0] += STATE_ASKED_AGAIN_AFTER - 1
        again = refused.read_inventory()
        assert len(_RefusingClusterState.refused) == 1  # asked once; the index API from then on
        now[0] += 1
        later = refused.read_inventory()
        assert len(_RefusingClusterState.refused) == 2, "asked again once the wait is over"
        assert later.cat_indices == direct.cat_indices
        mine = sorted((row for row in direct.cat_indices if row["index"] in created), key=lambda r: r["index"])
        assert [(r["index"], r["status"], str(r["pri"]), str(r["rep"])) for r in mine] == [
            ("0820.ab12c.tracardi-closed", "close", "1", "0"), ("0820.ab12c.tracardi-event", "open", "2", "0"),
            ("0820.ab12c.tracardi-hidden", "open", "1", "0"), ("0820.ab12c.tracardi-nometa", "open", "1", "1")]
        for read in (first, again):
            assert read.cat_indices == direct.cat_indices
            assert read.mappings == direct.mappings
            assert (read.shards_in_use, read.cluster_uuid) == (direct.shards_in_use, direct.cluster_uuid)
        assert "0820.ab12c.tracardi-nometa" not in first.mappings
        assert first.mappings["0820.ab12c.tracardi-hidden"]["mappings"]["_meta"]["version"] == "0821"
    finally:
        proxy.shutdown()
        proxy.server_close()
        es.indices.delete(index=",".join(created), expand_wildcards="all", ignore_unavailable=True)


def test_restart_keeps_indices(es_devenv: Running) -> None:
    client = es_devenv.client()
    client.index(index="survivor", id="1", document={"kept": True}, refresh=True)
    client.close()

    assert devenv_es.stop(es_devenv.state)
    url = devenv_es.start(es_devenv.state, es_devenv.port)
    assert url == es_devenv.url
    devenv_es.wait_ready(es_devenv.state, url)

    client = es_devenv.client()
    try:
        assert client.get(index="survivor", id="1")["_source"] == {"kept": True}
        assert client.indices.exists(index="reindex-dst")
    finally:
        client.close()


def test_start_refuses_a_port_in_use(es_devenv: Running, tmp_path: Path) -> None:
    other = State(tmp_path / "other")
    devenv_es.build(other)
    with pytest.raises(procs.DevenvError, match="elasticsearch"):
        devenv_es.start(other, es_devenv.port)
    assert not procs.running(other, devenv_es.COMPONENT)


def test_stop_leaves_nothing_behind(es_devenv: Running) -> None:
    # Last in this module: everything after it finds Elasticsearch stopped.
    pid = procs.read_pid(es_devenv.state, devenv_es.COMPONENT)
    assert procs.alive(pid)

    assert devenv_es.stop(es_devenv.state)

    assert not procs.alive(pid)
    assert not procs.port_open("127.0.0.1", es_devenv.port)
    base_path = str(devenv_es.data_dir(es_devenv.state))
    assert _java_processes_using(base_path) == []
    assert not devenv_es.stop(es_devenv.state)


def _java_processes_using(needle: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"java") and any(needle.encode() in a for a in argv):
            found.append(int(entry))
    return found


