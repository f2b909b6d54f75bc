"""The install and migration Jobs against the real simulator and a real Elasticsearch.

Elasticsearch: the one of this test session's devenv. Simulator processes run on 127.0.0.x addresses;
each test uses its own tenants and deletes its indices.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")
ADMIN = {"TRACARDI_ADMIN_USERNAME": "admin@example.com", "TRACARDI_ADMIN_PASSWORD": "s3cret-Pw!"}
TOKEN = "install-t0ken"


@pytest.fixture(scope="session")
def es_url(devenv: Any) -> str:
    """The Elasticsearch of this test session's devenv."""
    return str(devenv.elasticsearch_url)


def es_call(es_url: str, method: str, path: str, body: object = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        es_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


_next_host = iter(range(60, 250))


def loopback() -> tuple[str, int]:
    host = f"127.0.0.{next(_next_host)}"
    with socket.socket() as s:
        s.bind((host, 0))
        return host, int(s.getsockname()[1])


@dataclass
class Tracardi:
    """Simulated API (+ worker) processes of one version; stopped by pid at the end of the test."""

    tag: str
    tenant: str
    url: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


@pytest.fixture
def tracardi(es_url: str, devenv: Any, tmp_path: Path) -> Iterator[Any]:
    started: list[Tracardi] = []
    redis = urllib.parse.urlsplit(devenv.redis_url)

    def start(tag: str, tenant: str, worker: bool = True, **extra: str) -> Tracardi:
        host, port = loopback()
        env = {
            **os.environ,
            "ELASTIC_HOST": es_url,
            "TENANT_NAME": tenant,
            "INSTANCE_PREFIX": tenant,
            "EXPOSE_GUI_API": "yes",
            "PRODUCTION": "no",
            "INSTALLATION_TOKEN": TOKEN,
            "TRACARDI_SIM_POLL": "0.3",
            # As the operator sets them: both Redis variables, telemetry off only where it means off.
            "REDIS_HOST": devenv.redis_url,
            "REDIS_PORT": str(redis.port),
            **({"PERFORMANCE_TRACKING": "no"} if tag.startswith(("0.8.0", "0.8.1")) else {}),
            **extra,
        }
        t = Tracardi(tag, tenant, f"http://{host}:{port}")
        for component in ("api", "worker") if worker else ("api",):
            with (tmp_path / f"{tag}-{component}.log").open("wb") as log:
                t.procs.append(
                    subprocess.Popen(
                        [
                            PYTHON,
                            "-m",
                            "devenv.simulator",
                            component,
                            "--tag",
                            tag,
                            "--host",
                            host,
                            "--port",
                            str(port),
                        ],
                        cwd=REPO,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        started.append(t)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{t.url}/healthcheck", timeout=1).close()
                return t
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"simulator {tag} did not start")

    yield start
    for t in started:
        for proc in t.procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
    tenants = {t.tenant for t in started}
    rows = es_call(es_url, "GET", "/_cat/indices?format=json&h=index")
    for name in sorted(r["index"] for r in rows):
        if any(f".{tenant}." in name for tenant in tenants):
            es_call(es_url, "DELETE", f"/{name}")
    for tenant in tenants:
        templates = es_call(es_url, "GET", "/_index_template").get("index_templates", [])
        for template in templates:
            if f".{tenant}." in template["name"]:
                es_call(es_url, "DELETE", f"/_index_template/{template['name']}")


def run_job(es_url: str, tmp_path: Path, *args: str, timeout: float = 600) -> tuple[int, dict[str, Any], str]:
    term = tmp_path / f"term-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        **ADMIN,
        "TRACARDI_INSTALLATION_TOKEN": TOKEN,
        "TRACARDI_ES_HOSTS": es_url,
        "TERMINATION_MESSAGE_PATH": str(term),
    }
    done = subprocess.run(
        [PYTHON, "-m", "tracardi_operator.jobs.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    for secret in (ADMIN["TRACARDI_ADMIN_PASSWORD"], TOKEN):
        assert secret not in stdout + stderr + term.read_text()
    result = json.loads(term.read_text())
    assert json.loads(stdout) == result
    assert len(term.read_bytes()) <= 4096
    return done.returncode, result, stderr


def install(es_url: str, tmp_path: Path, t: Tracardi) -> dict[str, Any]:
    # devenv's Elasticsearch is an OSS build without `flattened`, which the simulator does not need.
    code, result, stderr = run_job(
        es_url, tmp_path, "install", "--api-url", t.url, "--timeout", "180", "--no-flattened-check"
    )
    assert code == 0, (result, stderr[-2000:])
    assert result["schemaOk"]
    assert result["adminOk"]
    return result


def test_install_on_elasticsearch_without_flattened_stops_before_touching_anything(
    es_url: str, tmp_path: Path
) -> None:
    indices_before = sorted(es_call(es_url, "GET", "/_cat/indices?format=json&h=index&expand_wildcards=all"),
                            key=str)
    templates_before = es_call(es_url, "GET", "/_index_template")
    # No API is needed: the check comes first. The port is closed, so a call to the API would fail otherwise.
    code, result, _ = run_job(es_url, tmp_path, "install", "--api-url", "http://127.0.0.1:9", "--timeout", "20")
    assert code == 1
    assert result["error"] == "ElasticsearchLacksFlattened"
    assert "default distribution" in result["message"]
    assert sorted(es_call(es_url, "GET", "/_cat/indices?format=json&h=index&expand_wildcards=all"),
                  key=str) == indices_before
    assert es_call(es_url, "GET", "/_index_template") == templates_before


def seed(es_url: str, tag: str, tenant: str, rng_seed: int = 42) -> Any:
    from elasticsearch import Elasticsearch

    from devenv.seed import seed as write
    from devenv.simulator.versions import version_for_tag

    client = Elasticsearch([es_url])
    try:
        return write(client, version_for_tag(tag), tenant=tenant, rng_seed=rng_seed)
    finally:
        client.close()


def migrate(
    es_url: str, tmp_path: Path, t: Tracardi, source: dict[str, Any], target: dict[str, Any], *extra: str
) -> tuple[int, dict[str, Any], str]:
    return run_job(
        es_url,
        tmp_path,
        "migrate",
        "--api-url",
        t.url,
        "--from-db",
        source["dbVersion"],
        "--from-tenant",
        source["tenant"],
        "--to-db",
        target["dbVersion"],
        "--to-tenant",
        target["tenant"],
        "--timeout",
        "300",
        *extra,
    )


def _task_documents(es_url: str, tenant: str) -> int:
    """Task documents of the 0.8.1 simulator (both contexts): every POST /migration adds some."""
    es_call(es_url, "POST", f"/*08x.{tenant}.tracardi-task/_refresh")
    return int(es_call(es_url, "GET", f"/*08x.{tenant}.tracardi-task/_count")["count"])


def _writes(es_url: str, tenant: str) -> int:
    """Documents ever indexed into the 0.8.1 indices but the task index: a copy run again adds to it."""
    stats = es_call(es_url, "GET", f"/*08x.{tenant}.tracardi-*/_stats/indexing")["indices"]
    return sum(int(v["total"]["indexing"]["index_total"]) for name, v in stats.items() if "tracardi-task" not in name)


def tenant(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:5]}"


def test_install_080_seed_install_081_and_migrate(es_url: str, tracardi: Any, tmp_path: Path) -> None:
    old = tracardi("0.8.0", tenant("a"), worker=False)
    source = install(es_url, tmp_path, old)
    assert source["dbVersion"] == "080"
    assert source["tenant"] == old.tenant
    report = seed(es_url, "0.8.0", old.tenant)
    new = tracardi("0.8.1", tenant("b"))
    target = install(es_url, tmp_path, new)
    code, result, stderr = migrate(es_url, tmp_path, new, source, target)
    assert code == 0, (result, stderr[-3000:])
    assert result["from"] == "080"
    assert result["to"] == "08x"
    seeded = sum(n for index, n in report.counts.items() if not index.startswith("static-"))
    contexts = result["contexts"]
    assert contexts["staging"]["resources"] == 32
    assert contexts["production"]["resources"] == 32
    assert contexts["staging"]["sourceDocs"] + contexts["production"]["sourceDocs"] >= seeded
    assert "repaired" not in result

    # A rerun of the completed Job (more copies than Tracardi lists by default) posts and copies nothing.
    copies = contexts["staging"]["resources"] + contexts["production"]["resources"]
    assert copies > 50
    tasks_before = _task_documents(es_url, new.tenant)
    writes_before = _writes(es_url, new.tenant)
    code, again, stderr = migrate(es_url, tmp_path, new, source, target)
    assert code == 0, (again, stderr[-3000:])
    assert _task_documents(es_url, new.tenant) == tasks_before, "no POST /migration: no new task"
    assert _writes(es_url, new.tenant) == writes_before, "nothing copied again"
    assert "migration.already-started" in stderr

    # the install Job with a wrong installation token fails with its reason
    other = tracardi("0.8.1", tenant("c"), worker=False, INSTALLATION_TOKEN="something-else")
    code, result, _ = run_job(es_url, tmp_path, "install", "--api-url", other.url, "--timeout", "60",
                              "--no-flattened-check")
    assert code != 0
    assert result["error"] == "InstallTokenRejected"


def test_migration_that_skips_partitioned_indices_is_incomplete(es_url: str, tracardi: Any, tmp_path: Path) -> None:
    old = tracardi("0.8.0", tenant("d"), worker=False)
    source = install(es_url, tmp_path, old)
    seed(es_url, "0.8.0", old.tenant)
    new = tracardi("0.8.1", tenant("e"), TRACARDI_SIM_FAULTS="migration-skips-partitioned")
    target = install(es_url, tmp_path, new)
    code, result, _ = migrate(es_url, tmp_path, new, source, target)
    assert code != 0
    assert result["error"] == "MigrationIncomplete"
    skipped = {(f["context"], f["resource"]) for f in result["incomplete"]}
    assert {("staging", "event"), ("production", "profile"), ("staging", "session")} <= skipped
    assert all(f["problems"] == ["NotListed"] and f["missing"] > 0 for f in result["incomplete"])


REPAIRED = {"event", "profile", "session", "log", "user-log", "item", "entity", "console-log"}


def _ids_through_alias(es_url: str, alias: str) -> list[str]:
    answer = es_call(es_url, "POST", f"/{alias}/_search", {"size": 10000, "_source": False})
    return [hit["_id"] for hit in answer["hits"]["hits"]]


def test_0821_faithful_migration_is_repaired(es_url: str, tracardi: Any, tmp_path: Path) -> None:
    old = tracardi("0.8.1", tenant("f"), worker=False)
    source = install(es_url, tmp_path, old)
    report = seed(es_url, "0.8.1", old.tenant)
    new = tracardi("0.8.2.1", tenant("g"))
    target = install(es_url, tmp_path, new)

    code, result, _ = migrate(es_url, tmp_path, new, source, target, "--repair", "Off")
    assert code != 0
    assert result["error"] == "MigrationIncomplete"
    named = {(f["context"], f["resource"]) for f in result["incomplete"]}
    assert named == {(c, r) for c in ("staging", "production") for r in REPAIRED}

    code, result, stderr = migrate(
        es_url, tmp_path, new, source, target, "--repair", "Auto", "--merged-suffix", "2026-q4"
    )
    assert code == 0, (result, stderr[-3000:])
    assert result["mergedSuffix"] == "2026-q4"
    assert set(result["repaired"]["staging"]) == REPAIRED
    assert "already-started" in stderr  # the first run's copies were not started again

    # every seeded document is readable through 0.8.2.1's aliases, exactly once
    from devenv.simulator.naming import Namespace
    from devenv.simulator.versions import version_for_tag

    v0821 = version_for_tag("0.8.2.1")
    for key, ids in report.ids.items():
        context, resource = key.split("/")
        alias = Namespace("0820", new.tenant).alias(v0821.resource(resource), context)
        readable = _ids_through_alias(es_url, alias)
        assert set(ids) <= set(readable), key
        assert len(readable) == len(set(readable)), key
    profile = es_call(es_url, "POST", f"/{new.tenant}.tracardi-profile/_search", {"size": 1})["hits"]["hits"][0]
    assert isinstance(profile["_source"]["data"]["contact"]["email"], dict)
    merged = f"0820.{new.tenant}.tracardi-profile-2026-q4"
    assert es_call(es_url, "GET", f"/{merged}/_mapping")[merged]["mappings"]["_meta"]["version"] == "0820"
    # every repaired index is named as 0.8.2.1 partitions its resource (event month, session quarter, ...)
    from tracardi_operator.indices import parse_index_name

    scheme = {"event": r"\d+", "log": r"\d+", "console-log": r"\d+", "profile": "q[1-4]", "session": "q[1-4]",
              "entity": "q[1-4]", "item": "year", "user-log": "year"}
    for index in (r["index"] for r in es_call(es_url, "GET", "/_cat/indices?format=json&h=index")):
        parsed = parse_index_name(index)
        if parsed and parsed.version.tenant == new.tenant and parsed.resource in scheme and parsed.partition:
            assert re.fullmatch(rf"\d{{4}}-{scheme[parsed.resource]}", parsed.partition), index

    # a rerun (a crashed Job restarted) duplicates nothing and overwrites nothing
    event_id = report.ids["staging/event"][0]
    found = es_call(es_url, "POST", f"/{new.tenant}.tracardi-event/_search", {"query": {"ids": {"values": [event_id]}}})
    monthly = found["hits"]["hits"][0]["_index"]
    es_call(es_url, "POST", f"/{monthly}/_update/{event_id}?refresh=true", {"doc": {"metadata": {"status": "kept"}}})
    code, again, stderr = migrate(es_url, tmp_path, new, source, target, "--merged-suffix", "2026-q4")
    assert code == 0, (again, stderr[-3000:])
    created = sum(f["created"] for ctx in again["repaired"].values() for f in ctx.values())
    assert created == 0
    kept = es_call(es_url, "GET", f"/{monthly}/_doc/{event_id}")["_source"]
    assert kept["metadata"]["status"] == "kept"
    assert again["contexts"] == result["contexts"]


PARITY_DOCS: list[dict[str, Any]] = [
    {},
    {"data": None},
    {"data": "text"},
    {"data": {"contact": None, "pii": None, "devices": None}},
    {"data": {"contact": {}, "pii": {}, "devices": {}}},
    {
        "data": {
            "contact": {"email": "a@b.c", "phone": "+48"},
            "pii": {"name": "Ann"},
            "devices": {"names": ["x"], "other": ["y"]},
            "anonymous": True,
        }
    },
    {"data": {"contact": {"email": None, "phone": 123}, "pii": {"name": None}, "anonymous": "yes"}},
    {"data": {"contact": {"email": True, "phone": 1.5}, "devices": {"names": None}}},
    {"data": {"contact": {"email": ["a"], "phone": {"k": 1}}}},
    {
        "data": {
            "contact": {"email": {"main": "x@y.z"}, "phone": {"main": ""}},
            "pii": {"display_name": "B"},
            "devices": {"other": []},
            "anonymous": False,
        }
    },
    {"data": {"ec": {"order": {"cost": {"value": 1, "tax": 2, "other": 3}, "income": {"revenue": 4}}}}},
    {"data": {"ec": {"order": {"cost": {"tax": 2}, "income": {"revenue": 4, "value": 5}}}}},
    {"data": {"ec": None}},
    {"data": {"ec": {"order": "x"}}},
    {"timestamp": "2023-01-01", "id": "e", "properties": {"a": 1}},
    {"timestamp": None},
]


def test_painless_transforms_equal_the_python_ones(es_url: str) -> None:
    from tracardi_operator.jobs.transforms import PAINLESS, TRANSFORMS

    scratch = f"jobs-parity-{uuid.uuid4().hex[:6]}"
    unmapped = {"mappings": {"enabled": False}}
    es_call(es_url, "PUT", f"/{scratch}-src", unmapped)
    try:
        lines = "".join(
            json.dumps({"index": {"_id": str(i)}}) + "\n" + json.dumps(doc) + "\n" for i, doc in enumerate(PARITY_DOCS)
        )
        request = urllib.request.Request(
            f"{es_url}/{scratch}-src/_bulk?refresh=true",
            data=lines.encode(),
            method="POST",
            headers={"Content-Type": "application/x-ndjson"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert not json.loads(answer.read())["errors"]
        for name, script in PAINLESS.items():
            dest = f"{scratch}-{name}"
            es_call(es_url, "PUT", f"/{dest}", unmapped)
            done = es_call(
                es_url,
                "POST",
                "/_reindex?refresh=true",
                {
                    "source": {"index": f"{scratch}-src"},
                    "dest": {"index": dest, "op_type": "create"},
                    "conflicts": "proceed",
                    "script": {"lang": "painless", "source": script},
                },
            )
            assert not done["failures"], (name, done)
            assert done["created"] == len(PARITY_DOCS), (name, done)
            hits = es_call(es_url, "POST", f"/{dest}/_search", {"size": 100})["hits"]["hits"]
            by_id = {hit["_id"]: hit["_source"] for hit in hits}
            for i, doc in enumerate(PARITY_DOCS):
                assert by_id[str(i)] == TRANSFORMS[name](doc), (name, doc)
    finally:
        rows = es_call(es_url, "GET", "/_cat/indices?format=json&h=index")
        for row in rows:
            if row["index"].startswith(scratch):
                es_call(es_url, "DELETE", f"/{row['index']}")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))


def test_online_writes_during_the_copy_do_not_fail_verification(es_url: str, tracardi: Any, tmp_path: Path) -> None:
    """The old production API keeps collecting while an Online upgrade copies: documents written after the
    copy began are not carried over (as in Tracardi) and must not be reported as lost either."""
    import threading

    old = tracardi("0.8.0", tenant("o"), worker=False)
    source = install(es_url, tmp_path, old)
    report = seed(es_url, "0.8.0", old.tenant)
    live = next(i for i in sorted(report.counts) if i.startswith("prod-") and ".tracardi-event-" in i)
    new = tracardi("0.8.1", tenant("p"))
    target = install(es_url, tmp_path, new)
    stop = threading.Event()
    written: list[str] = []

    def collect() -> None:
        while not stop.wait(0.1):
            doc_id = f"live-{uuid.uuid4().hex}"
            es_call(es_url, "PUT", f"/{live}/_doc/{doc_id}?refresh=true", {"id": doc_id})
            written.append(doc_id)

    writer = threading.Thread(target=collect, daemon=True)
    writer.start()
    try:
        code, result, stderr = migrate(es_url, tmp_path, new, source, target)
    finally:
        stop.set()
        writer.join(10)
    assert written, "documents were written while the migration ran"
    assert code == 0, (result, stderr[-3000:])
    assert result["contexts"]["production"]["sourceDocs"] >= sum(
        n for index, n in report.counts.items() if index.startswith("prod-"))
