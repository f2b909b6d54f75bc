"""Crash safety on devenv: the operator killed with SIGKILL at every step of a 0.8.0 → 0.8.1 upgrade
(as soon as status.upgrade.step shows it, i.e. right after the step was recorded and before it was
acted on, and once more while the migration Job runs) and started again converges to 0.8.1, with
exactly one migration Job for 080 → 08x, every seeded document readable in 08x, and Tracardi's
migration started once. Restarted once more on the settled installation, the operator applies none of
its children again: each carries the digest of the manifest it was applied with, and still holds it.

"Started once" is read from the simulator's task documents in the 08x task indices (both contexts):
a POST /migration becomes one orchestrator document (`celery.kind: orchestrator`, named
`Migration plan orchestrator` as in Tracardi) queued for the 08x worker (`celery.queue` = `08x.01506`),
and the worker turns it into one copy task (`celery.kind: copy`) per listed source index. 0.8.1 lists
both contexts in one listing, so one POST migrates both: exactly one orchestrator, and exactly one
copy task per source index."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from tests.e2e.conftest import Installations, OperatorProcess
from tests.e2e.faults import metric
from tests.e2e.test_failures import assert_all_readable, seed, step, wait_pods_gone
from tests.factories import wait_for

STEPS = ("StartingCandidate", "Installing", "Migrating", "Switching")


def task_documents(es: Any) -> list[dict[str, Any]]:
    """Every task document queued for the 0.8.1 worker (tenant 01506), both contexts."""
    from devenv.simulator.naming import Namespace
    from devenv.simulator.versions import version_for_tag

    version = version_for_tag("0.8.1")
    ns = Namespace("08x", "01506")
    indices = ",".join(ns.index(version.resource("task"), c) for c in ("staging", "production"))
    es.indices.refresh(index=indices, ignore_unavailable=True)
    hits = es.search(index=indices, query={"term": {"celery.queue": "08x.01506"}}, size=5000,
                     ignore_unavailable=True)["hits"]["hits"]
    return [h["_source"] | {"_index": h["_index"]} for h in hits]


def _migration_job_running(inst: Installations) -> bool:
    jobs = {j.metadata.name: j for j in inst.batch.list_namespaced_job(inst.namespace).items}
    job = jobs.get("acme-migrate-080-to-08x")
    return bool(job is not None and (job.status.active or 0) > 0)


def _crash(operator: OperatorProcess, label: str, kills: list[str]) -> None:
    operator.kill()
    kills.append(label)
    print(f"  crash: operator killed at {label}", file=sys.stderr, flush=True)
    time.sleep(1.0)
    operator.start()


def test_killed_at_every_step_converges_with_one_migration(
        installations: Installations, operator: OperatorProcess, es: Any) -> None:
    inst = installations
    try:
        inst.create("acme", "0.8.0")
        inst.wait_settled("acme", "0.8.0")
        seeded = seed(es, "0.8.0")
        inst.patch_spec("acme", {"version": "0.8.1"})
        kills: list[str] = []
        started = time.monotonic()
        for target in STEPS:
            def reached(target: str = target) -> bool:
                current = step(inst, "acme")
                assert current != "Failed", f"the upgrade failed: {inst.get('acme')['status']}"
                # Before the bump is acted on, the 0.8.0 install's upgrade record still reads Completed.
                allowed = (*STEPS, "Completed") if target == STEPS[0] else STEPS
                assert current in allowed, f"step {current} before killing at {target}"
                return current == target

            wait_for(reached, 300, f"step {target}", interval=0.1)
            _crash(operator, target, kills)
            if target == "Migrating":
                # Once more while the migration Job runs (created by the restarted operator).
                wait_for(lambda: _migration_job_running(inst) or step(inst, "acme") != "Migrating", 120,
                         "the migration Job running", interval=0.1)
                if step(inst, "acme") == "Migrating":
                    _crash(operator, "Migrating (Job running)", kills)
        obj = inst.wait_settled("acme", "0.8.1", timeout=400)
        print(f"  crash: converged {time.monotonic() - started:.0f}s after the bump, kills {kills}",
              file=sys.stderr, flush=True)
        assert kills[:3] == list(STEPS[:3])
        assert kills[-1] == "Switching"
    finally:
        if operator.proc is None or operator.proc.poll() is not None:
            operator.start()

    assert inst.jobs() == ["acme-install-080", "acme-install-08x", "acme-migrate-080-to-08x"], "no -r2, no rerun"
    assert [(v["version"], v["dbVersion"], v["state"]) for v in obj["status"]["versions"]] == [
        ("0.8.0", "080", "Superseded"), ("0.8.1", "08x", "Current")]
    migrate_records = [j for j in obj["status"]["upgrade"]["jobs"] if j["purpose"] == "Migrate"]
    assert [j["name"] for j in migrate_records] == ["acme-migrate-080-to-08x"]
    assert not {"acme-api-08x", "acme-worker-08x"} & set(inst.images())
    assert_all_readable(es, "0.8.1", seeded)

    docs = task_documents(es)
    orchestrators = [d for d in docs if d["celery"]["kind"] == "orchestrator"]
    assert len(orchestrators) == 1, f"Tracardi's migration was started {len(orchestrators)} times"
    copies = Counter(d["params"]["copy_index"]["from_index"] for d in docs if d["celery"]["kind"] == "copy")
    twice = {index: n for index, n in copies.items() if n != 1}
    assert not twice, f"copies started more than once: {twice}"
    assert {i.startswith("prod-") for i in copies} == {True, False}, "both contexts copied"
    assert len(copies) >= 60, f"only {len(copies)} copies"
    # A fresh process knows nothing it applied: it must find, not re-apply, the children as they are.
    operator.kill()
    operator.start()
    # prometheus_client writes labels sorted by name.
    phase = f'tracardi_operator_installation_phase{{installation="acme",namespace="{inst.namespace}",phase="Ready"}}'
    wait_for(lambda: metric(operator.port, phase) == 1, 60, "the restarted operator's first pass over acme")
    # A pass's duration is recorded once the whole pass has returned: whatever it applied, it has sent.
    wait_for(lambda: metric(operator.port, "tracardi_operator_reconcile_duration_seconds_count") >= 1, 60,
             "the restarted operator's first pass to end")
    applies = {resource: metric(operator.port, f'tracardi_operator_api_requests_total{{resource="{resource}",'
                                               f'verb="PATCH"}}') for resource in ("deployments", "services")}
    assert applies == {"deployments": 0, "services": 0}, f"children applied again after a restart: {applies}"
    wait_pods_gone(inst)
