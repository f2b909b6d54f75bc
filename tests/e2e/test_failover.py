"""Two operator replicas, one leader: the leader killed (SIGKILL, as a node failure would) while the
migration Job of a major upgrade runs; the standby takes over within 20 s and completes the upgrade
with one migration Job and one POST /migration. The replicas are local processes with identities of
their own, competing for a Lease in the test's namespace; the session's operator is stopped meanwhile.
"""

from __future__ import annotations

import re
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Installations, OperatorProcess
from tests.e2e.test_crash_safety import _migration_job_running, task_documents
from tests.e2e.test_failures import assert_all_readable, seed, step, wait_pods_gone
from tests.e2e.test_rbac import other_operators
from tests.factories import wait_for

TAKEOVER_LIMIT = 20.0


def leads(op: OperatorProcess, identity: str) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/metrics", timeout=2) as answer:
        text = answer.read().decode()
    found = re.search(r'^tracardi_operator_leader\{identity="' + re.escape(identity) + r'"\} (\S+)$', text, re.M)
    return found is not None and float(found.group(1)) == 1.0


@pytest.fixture
def replicas(request: pytest.FixtureRequest, devenv: Any, namespace: str,
             tmp_path: Path) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    paused: OperatorProcess | None = None
    if other_operators():
        paused = request.getfixturevalue("operator")
        assert isinstance(paused, OperatorProcess)
        paused.stop()
    ops = []
    for identity in ("replica-a", "replica-b"):
        op = OperatorProcess(devenv, tmp_path / identity)
        op.log_dir.mkdir()
        op.extra_env = {"TRACARDI_OPERATOR_IDENTITY": identity, "TRACARDI_OPERATOR_LEASE_NAMESPACE": namespace}
        ops.append(op)
    try:
        yield ops[0], ops[1]
    finally:
        for op in ops:
            op.stop()
        if paused is not None:
            paused.start()


def test_the_standby_takes_over_a_killed_leader_mid_migration(
    replicas: tuple[OperatorProcess, OperatorProcess], kube_api: Any, namespace: str, devenv: Any,
    es: Any, clean_es: None,
) -> None:
    a, b = replicas
    a.start()
    wait_for(lambda: leads(a, "replica-a"), 30, "replica-a leading")
    b.start()
    time.sleep(3)
    assert not leads(b, "replica-b"), "two leaders"
    inst = Installations(kube_api, namespace, devenv.elasticsearch_url)
    inst.create("acme", "0.8.0")
    inst.wait_settled("acme", "0.8.0")
    seeded = seed(es, "0.8.0")
    inst.patch_spec("acme", {"version": "0.8.1"})
    wait_for(lambda: _migration_job_running(inst), 300, "the migration Job running", interval=0.2)
    a.kill()
    killed = time.monotonic()
    wait_for(lambda: leads(b, "replica-b"), 60, "replica-b leading", interval=0.2)
    takeover = time.monotonic() - killed
    print(f"  failover: the standby took over {takeover:.1f}s after the leader was killed", file=sys.stderr,
          flush=True)
    assert takeover <= TAKEOVER_LIMIT
    obj = inst.wait_settled("acme", "0.8.1", timeout=400)
    assert step(inst, "acme") == "Completed"
    assert inst.jobs() == ["acme-install-080", "acme-install-08x", "acme-migrate-080-to-08x"]
    assert [(v["dbVersion"], v["state"]) for v in obj["status"]["versions"]] == [("080", "Superseded"),
                                                                                 ("08x", "Current")]
    assert_all_readable(es, "0.8.1", seeded)
    docs = task_documents(es)
    assert len([d for d in docs if d["celery"]["kind"] == "orchestrator"]) == 1, "one POST /migration"
    copies = Counter(d["params"]["copy_index"]["from_index"] for d in docs if d["celery"]["kind"] == "copy")
    assert not {index: n for index, n in copies.items() if n != 1}, "no copy twice"
    assert "replica-b now leads" in b.log.read_text()
    wait_pods_gone(inst)
