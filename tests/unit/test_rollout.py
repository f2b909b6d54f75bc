"""The rollout state machine, driven pass by pass against a small in-memory model of the children.

The model only does what Kubernetes would (Deployments roll out, Jobs finish with the result a test
chooses); every decision under test is `rollout.decide`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.factories import installation_body, installation_spec
from tracardi_operator import builders, conditions, labels
from tracardi_operator.models import TracardiInstallation
from tracardi_operator.observe import DeploymentState, JobState, Observed
from tracardi_operator.rollout import Decision, RolloutContext, decide, quarter_suffix
from tracardi_operator.scheduler import SOON

T0 = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
INSTALLED = {
    "080": {"version": "0.8.0", "dbVersion": "080", "tenant": "fa73a"},
    "08x": {"version": "0.8.1", "dbVersion": "08x", "tenant": "01506"},
    "0820": {"version": "0.8.2", "dbVersion": "0820", "tenant": "ffe49"},
}


def body(version: str, **spec: Any) -> dict[str, Any]:
    return installation_body(installation_spec(version, **spec), namespace="shop", uid="u-1", generation=1)


JobOutcome = Callable[[dict[str, Any]], tuple[str, dict[str, Any] | None]]


def succeed(job: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    job_labels = job["metadata"]["labels"]
    if job_labels[labels.LABEL_COMPONENT] == "install":
        return "Succeeded", INSTALLED[job_labels["tracardi.com/db-version"]]
    return "Succeeded", {"from": job_labels["tracardi.com/from-db-version"],
                         "to": job_labels["tracardi.com/to-db-version"],
                         "contexts": {"staging": {"resources": 32, "sourceDocs": 3, "destDocs": 3}},
                         "repaired": {"staging": {"event": {"copies": 2, "total": 5, "created": 5, "present": 0}}}}


@dataclass
class World:
    """What Kubernetes would make of the decisions: every Deployment rolls out at once."""

    body: dict[str, Any]
    job_outcome: JobOutcome = succeed
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    now: dt.datetime = T0
    retry: str | None = None
    rollout_ready: bool = True
    refusing: str = ""  # the apiserver's answer to every pod it is asked to create ("" creates them)

    def observed(self) -> Observed:
        deps = {}
        ips = {}
        for i, (name, d) in enumerate(sorted(self.deployments.items())):
            replicas = d["spec"]["replicas"]
            version = d["spec"]["template"]["metadata"]["labels"][labels.LABEL_VERSION]
            rolled_out = self.rollout_ready and not self.refusing
            ready = replicas if rolled_out else 0
            deps[name] = DeploymentState(name, version, replicas, ready, ready, rolled_out,
                                         refused=self.refusing if replicas else "")
            if ready:
                ips[name] = (f"127.0.1.{i + 1}",)
        jobs = {}
        for name, job in self.jobs.items():
            if self.refusing:
                jobs[name] = JobState(name, "Running", None, "", pods=0, refused=self.refusing)
                continue
            phase, result = self.job_outcome(job)
            jobs[name] = JobState(name, phase, result, "" if result is None else json.dumps(result),  # type: ignore[arg-type]
                                  pods=1)
        return Observed(deps, jobs, ips)

    def step(self) -> Decision:
        inst = TracardiInstallation.model_validate(self.body)
        ctx = RolloutContext(now=self.now, builder=builders.BuilderSettings(), retry=self.retry)
        d = decide(inst, self.observed(), ctx)
        self.body["status"] = d.status.to_k8s()
        for m in d.apply:
            if m["kind"] == "Deployment":
                self.deployments[m["metadata"]["name"]] = m
        for m in d.create:
            assert m["kind"] == "Job"
            if m["metadata"]["name"] not in self.jobs:
                self.jobs[m["metadata"]["name"]] = m
                self.created.append(m["metadata"]["name"])
        for _, kind, name in d.delete:
            if kind == "Deployment":
                self.deployments.pop(name, None)
        self.events += [(e.reason, e.message) for e in d.events]
        self.now += dt.timedelta(seconds=5)
        return d

    def converge(self, passes: int = 40) -> Decision:
        for _ in range(passes):
            d = self.step()
            if d.requeue_after is None:
                return d
        raise AssertionError(f"no convergence; status {json.dumps(self.body['status'], indent=1)[:3000]}")

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.body["status"]
        return status

    def condition(self, type_: str) -> dict[str, Any]:
        return next(c for c in self.status["conditions"] if c["type"] == type_)

    def bump(self, version: str) -> None:
        self.body["spec"]["version"] = version
        self.body["metadata"]["generation"] += 1

    def images(self) -> dict[str, str]:
        return {n: d["spec"]["template"]["spec"]["containers"][0]["image"] for n, d in self.deployments.items()}


def installed(version: str = "0.8.0", **spec: Any) -> World:
    w = World(body(version, **spec))
    w.converge()
    return w


# -- first creation -----------------------------------------------------------------------------------


def test_first_install_starts_api_and_worker_before_anything_serves_traffic() -> None:
    w = World(body("0.8.0"))
    w.step()  # resolve: recorded, nothing applied
    assert w.status["upgrade"]["kind"] == "Install"
    assert w.deployments == {}
    w.step()
    assert set(w.deployments) == {"acme-api", "acme-worker"}, "no production API or GUI before install"


def test_first_install_runs_one_install_job_then_every_component() -> None:
    w = installed("0.8.0")
    assert w.created == ["acme-install-080"]
    assert set(w.deployments) == {"acme-api", "acme-api-production", "acme-gui", "acme-worker"}
    assert w.status["currentVersion"] == "0.8.0"
    assert w.status["versions"] == [
        {"version": "0.8.0", "dbVersion": "080", "tenant": "fa73a", "state": "Current",
         "installedAt": w.status["versions"][0]["installedAt"]}
    ]
    assert w.condition("Ready")["status"] == "True"
    assert w.condition("Progressing")["status"] == "False"
    assert w.status["phase"] == "Ready"


def test_install_job_is_recorded_before_it_is_created() -> None:
    w = World(body("0.8.0"))
    for _ in range(3):
        w.step()
    assert w.status["upgrade"]["step"] == "Installing"
    d = w.step()
    assert d.create == [], "the pass that records the Job creates nothing"
    assert w.status["upgrade"]["jobs"][0]["name"] == "acme-install-080"
    d = w.step()
    assert [m["metadata"]["name"] for m in d.create] == ["acme-install-080"]


def test_failed_install_is_degraded_and_never_switches() -> None:
    w = World(body("0.8.0"), job_outcome=lambda job: ("Failed", {"error": "InstallTokenRejected",
                                                                   "message": "token rejected"}))
    w.converge()
    assert w.condition("Degraded")["status"] == "True"
    assert w.condition("Degraded")["reason"] == "InstallTokenRejected"
    assert "tracardi.com/retry" in w.condition("Degraded")["message"]
    assert "acme-api-production" not in w.deployments
    assert w.status.get("currentVersion") is None
    assert ("InstallTokenRejected", w.condition("Degraded")["message"]) in w.events


def test_retry_annotation_starts_a_new_attempt_once() -> None:
    outcomes = iter([("Failed", {"error": "Timeout", "message": "slow"})])

    def first_fails(job: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        if job["metadata"]["name"].endswith("-r2"):
            return succeed(job)
        return next(outcomes, ("Failed", {"error": "Timeout", "message": "slow"}))

    w = World(body("0.8.0"), job_outcome=first_fails)
    w.converge()
    assert w.status["phase"] == "Degraded"
    w.retry = "2026-11-27T10:05:00Z"
    w.converge()
    assert w.created == ["acme-install-080", "acme-install-080-r2"]
    assert w.status["handledRetry"] == "2026-11-27T10:05:00Z"
    assert w.status["phase"] == "Ready"
    w.converge()
    assert w.created == ["acme-install-080", "acme-install-080-r2"], "the same annotation value acts once"


# -- guards -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "reason"), [
    ("banana", "InvalidVersion"),
    ("0.9.9", "UnknownVersion"),
    ("0.8.2-rc2", "PrereleaseNotAllowed"),
])
def test_refused_target_changes_nothing(version: str, reason: str) -> None:
    w = installed("0.8.0")
    before = dict(w.deployments)
    w.bump(version)
    w.converge()
    assert w.images() == {n: d["spec"]["template"]["spec"]["containers"][0]["image"] for n, d in before.items()}
    accepted = w.condition("SpecAccepted")
    assert (accepted["status"], accepted["reason"]) == ("False", reason)
    assert w.status["phase"] == "Blocked"
    assert w.status["currentVersion"] == "0.8.0"
    assert [r for r, _ in w.events].count(reason) == 1, "one Event, not one per pass"
    assert w.condition("Ready")["status"] == "True", "the running version keeps serving"


def test_paused_does_nothing() -> None:
    w = World(body("0.8.0", paused=True))
    d = w.converge()
    assert d.apply == []
    assert d.create == []
    assert w.condition("Paused")["status"] == "True"
    assert w.status["phase"] == "Paused"


# -- minor bump, major bump, skipped steps, rollback ------------------------------------------------


def test_minor_bump_rolls_images_without_jobs() -> None:
    w = installed("0.8.2.1")
    w.bump("0.8.2.2")
    w.converge()
    assert w.created == ["acme-install-0820"]
    assert set(w.images().values()) == {"tracardi/tracardi-api:0.8.2.2", "tracardi/tracardi-gui:0.8.2.2",
                                        "tracardi/update-worker:0.8.2.2"}
    assert [(v["version"], v["state"]) for v in w.status["versions"]] == [("0.8.2.1", "Superseded"),
                                                                          ("0.8.2.2", "Current")]
    assert {v["dbVersion"] for v in w.status["versions"]} == {"0820"}


def test_an_image_roll_acts_in_its_first_pass_and_asks_for_no_pass_at_once() -> None:
    """The pass that records a patch bump applies every Deployment; its next pass is the step's own
    (a Deployment's event, or the wait), not one at once that would find nothing rolled yet and, in a
    fleet bump, go ahead of other installations' first passes. A major bump's first pass only records
    its step, and asks for the next at once."""
    w = installed("0.8.2.1")
    w.rollout_ready = False
    w.bump("0.8.2.2")
    d = w.step()
    assert {m["metadata"]["name"] for m in d.apply if m["kind"] == "Deployment"} == set(w.deployments)
    assert set(w.images().values()) == {"tracardi/tracardi-api:0.8.2.2", "tracardi/tracardi-gui:0.8.2.2",
                                        "tracardi/update-worker:0.8.2.2"}
    assert d.requeue_after is not None
    assert d.requeue_after > SOON
    major = installed("0.8.1")
    major.bump("0.8.2.1")
    assert (major.step().requeue_after or SOON + 1) <= SOON


def test_major_bump_installs_side_by_side_migrates_once_then_switches() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    seen_candidates = False
    for _ in range(40):
        d = w.step()
        if "acme-api-08x" in w.deployments:
            seen_candidates = True
            assert w.images()["acme-api-production"].endswith(":0.8.0"), "old production serves until the switch"
        if d.requeue_after is None:
            break
    assert seen_candidates
    assert w.created == ["acme-install-080", "acme-install-08x", "acme-migrate-080-to-08x"]
    assert "acme-api-08x" not in w.deployments
    assert "acme-worker-08x" not in w.deployments
    assert set(w.images().values()) == {"tracardi/tracardi-api:0.8.1", "tracardi/tracardi-gui:0.8.1",
                                        "tracardi/update-worker:0.8.1"}
    versions = w.status["versions"]
    assert [(v["version"], v["dbVersion"], v["tenant"], v["state"]) for v in versions] == [
        ("0.8.0", "080", "fa73a", "Superseded"), ("0.8.1", "08x", "01506", "Current")]
    assert versions[0]["supersededAt"]
    assert versions[1]["migratedFrom"] == "0.8.0"
    verified = w.status["upgrade"]["verified"]
    assert (verified[0]["context"], verified[0]["sourceCount"], verified[0]["ok"]) == ("staging", 3, True)
    assert (verified[1]["resource"], verified[1]["destinationCount"]) == ("event", 5)


def test_migration_job_carries_tenants_and_the_merged_suffix_recorded_before() -> None:
    w = installed("0.8.1")
    w.bump("0.8.2.1")
    w.converge()
    job = w.jobs["acme-migrate-08x-to-0820"]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--from-tenant") + 1] == "01506"
    assert args[args.index("--to-tenant") + 1] == "ffe49"
    assert args[args.index("--merged-suffix") + 1] == quarter_suffix(T0) == "2026-q4"
    assert w.status["upgrade"]["mergedSuffix"] == "2026-q4"


def test_failed_migration_keeps_the_old_version_serving() -> None:
    def migration_fails(job: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        if job["metadata"]["labels"][labels.LABEL_COMPONENT] == "migration":
            return "Failed", {"error": "MigrationIncomplete", "message": "event: 40 documents missing"}
        return succeed(job)

    w = installed("0.8.1")
    w.job_outcome = migration_fails
    w.bump("0.8.2.1")
    w.converge()
    assert w.condition("Degraded")["reason"] == "MigrationIncomplete"
    assert "40 documents missing" in w.condition("Degraded")["message"]
    assert w.images()["acme-api-production"].endswith(":0.8.1")
    assert w.status["currentVersion"] == "0.8.1"
    assert [v["state"] for v in w.status["versions"]] == ["Current"]
    w.converge()
    assert w.created.count("acme-migrate-08x-to-0820") == 1


def test_abandoning_a_failed_upgrade_removes_the_candidates() -> None:
    def migration_fails(job: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        if job["metadata"]["labels"][labels.LABEL_COMPONENT] == "migration":
            return "Failed", {"error": "MigrationTaskFailed", "message": "x"}
        return succeed(job)

    w = installed("0.8.0")
    w.job_outcome = migration_fails
    w.bump("0.8.1")
    w.converge()
    assert "acme-api-08x" in w.deployments
    w.bump("0.8.0")
    w.converge()
    assert "acme-api-08x" not in w.deployments
    assert w.condition("Degraded")["status"] == "False"
    assert w.status["phase"] == "Ready"


def test_offline_strategy_stops_production_during_the_copy() -> None:
    w = installed("0.8.0", upgrade={"strategy": "Offline"})
    w.bump("0.8.1")
    replicas_during_migration = []
    ready_while_scaled_down = []
    for _ in range(40):
        migrating = w.status["upgrade"]["step"] == "Migrating"
        scaled_down = w.deployments["acme-api-production"]["spec"]["replicas"] == 0
        d = w.step()
        if migrating:
            replicas_during_migration.append(w.deployments["acme-api-production"]["spec"]["replicas"])
        if scaled_down and w.status["upgrade"]["step"] == "Migrating":
            ready_while_scaled_down.append((w.condition("Ready")["status"], w.condition("Ready")["reason"]))
        if d.requeue_after is None:
            break
    assert replicas_during_migration
    assert set(replicas_during_migration) == {0}
    assert w.deployments["acme-api-production"]["spec"]["replicas"] == 1
    # A production API scaled to zero collects no events: not Ready, and the reason says why.
    assert ready_while_scaled_down
    assert set(ready_while_scaled_down) == {("False", "OfflineMigration")}
    assert w.condition("Ready")["status"] == "True"


def test_online_strategy_says_writes_during_the_copy_are_not_carried() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    messages = []
    for _ in range(40):
        d = w.step()
        messages.append(w.condition("Progressing")["message"])
        if d.requeue_after is None:
            break
    assert any("not carried over" in m for m in messages)


def test_skipped_db_version_is_crossed_one_migration_at_a_time() -> None:
    w = installed("0.8.0")
    w.bump("0.8.2.1")
    w.converge(80)
    assert w.created == ["acme-install-080", "acme-install-08x", "acme-migrate-080-to-08x",
                         "acme-install-0820", "acme-migrate-08x-to-0820"]
    assert [(v["version"], v["state"]) for v in w.status["versions"]] == [
        ("0.8.0", "Superseded"), ("0.8.1", "Superseded"), ("0.8.2.1", "Current")]


def test_rollback_to_a_kept_version_rolls_images_back_without_jobs() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    w.converge()
    jobs_before = list(w.created)
    w.bump("0.8.0")
    w.converge()
    assert w.created == jobs_before
    assert set(w.images().values()) == {"tracardi/tracardi-api:0.8.0", "tracardi/tracardi-gui:0.8.0",
                                        "tracardi/update-worker:0.8.0"}
    assert [(v["version"], v["state"]) for v in w.status["versions"]] == [("0.8.0", "Current"),
                                                                          ("0.8.1", "Superseded")]
    assert any(r == "RolledBack" and "not carried back" in m for r, m in w.events)


def test_rollback_to_deleted_indices_is_refused() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    w.converge()
    w.status["versions"][0]["state"] = "Deleted"
    w.bump("0.8.0")
    w.converge()
    assert w.condition("SpecAccepted")["reason"] == "RollbackTargetDeleted"
    assert w.images()["acme-api"].endswith(":0.8.1")


# -- crash safety ---------------------------------------------------------------------------------------


def test_deciding_again_on_the_same_state_is_idempotent() -> None:
    """A crash after any pass and a restart sees the same status: the same decision follows."""
    w = installed("0.8.0")
    w.bump("0.8.1")
    for _ in range(30):
        inst = TracardiInstallation.model_validate(w.body)
        ctx = RolloutContext(now=w.now, builder=builders.BuilderSettings())
        a, b = decide(inst, w.observed(), ctx), decide(inst, w.observed(), ctx)
        assert a.status == b.status
        assert a.apply == b.apply
        assert a.create == b.create
        assert a.delete == b.delete
        if w.step().requeue_after is None:
            break


def test_a_restart_between_recording_and_creating_creates_the_job_once() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    while not any(j["purpose"] == "Migrate" for j in (w.status.get("upgrade") or {}).get("jobs", [])):
        w.step()
    # The operator dies here and restarts: the same status, the Job not yet created.
    w.step()
    w.step()
    w.converge()
    assert w.created.count("acme-migrate-080-to-08x") == 1


def test_conditions_carry_the_generation() -> None:
    w = installed("0.8.0")
    assert {c["observedGeneration"] for c in w.status["conditions"]} == {1}
    assert w.status["observedGeneration"] == 1
    assert conditions.READY in {c["type"] for c in w.status["conditions"]}


def test_major_upgrade_without_shard_headroom_is_refused_before_it_starts() -> None:
    w = installed("0.8.0", elasticsearch={"hosts": ["http://es:9200"], "indexShards": 1, "indexReplicas": 0})
    w.bump("0.8.1")
    inst = TracardiInstallation.model_validate(w.body)
    d = decide(inst, w.observed(), RolloutContext(now=T0, builder=builders.BuilderSettings(), shards_available=10))
    assert d.status.upgrade is not None
    assert d.status.upgrade.step == "Completed", "no new upgrade recorded"
    accepted = conditions.find(d.status.conditions, conditions.SPEC_ACCEPTED)
    assert accepted is not None
    assert accepted.reason == "IndexHeadroomInsufficient"
    assert "needs about 72 new shards" in accepted.message
    assert "room for 10" in accepted.message
    assert [e.reason for e in d.events] == ["IndexHeadroomInsufficient"]
    d = decide(inst, w.observed(), RolloutContext(now=T0, builder=builders.BuilderSettings(), shards_available=500))
    assert d.status.upgrade is not None
    assert d.status.upgrade.kind == "Migrate"


# -- a retry after fixing the cause in the spec -------------------------------------------------------


@dataclass
class RollingWorld(World):
    """Deployments named in `rolling` have not rolled out their newest spec; `terminating` pods linger."""

    rolling: set[str] = field(default_factory=set)
    terminating: dict[str, int] = field(default_factory=dict)

    def observed(self) -> Observed:
        o = super().observed()
        deps = {n: (DeploymentState(n, d.version, d.replicas, d.ready_replicas, d.updated_replicas, False)
                    if n in self.rolling else d) for n, d in o.deployments.items()}
        return Observed(deps, o.jobs, o.pod_ips, self.terminating)


def _migration_fails_until_r2(job: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    if job["metadata"]["labels"][labels.LABEL_COMPONENT] == "migration" and not job["metadata"]["name"].endswith("-r2"):
        return "Failed", {"error": "MigrationTaskFailed", "message": "copy ended FAILURE"}
    return succeed(job)


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_a_spec_env_fix_while_failed_reaches_the_candidates() -> None:
    w = RollingWorld(body("0.8.0", env=[{"name": "TRACARDI_SIM_FAULTS", "value": "task-fails"}]))
    w.converge()
    w.job_outcome = _migration_fails_until_r2
    w.bump("0.8.1")
    w.converge()
    assert w.condition("Degraded")["reason"] == "MigrationTaskFailed"
    w.body["spec"]["env"] = []
    w.body["metadata"]["generation"] += 1
    w.converge()
    for name in ("acme-api-08x", "acme-worker-08x"):
        assert "TRACARDI_SIM_FAULTS" not in _env(w.deployments[name]), f"{name} still has the old env"
    assert _env(w.deployments["acme-api-08x"]).get("PRODUCTION") == "no"
    assert w.condition("Degraded")["status"] == "True", "no retry without the annotation"


def test_a_retried_job_waits_until_the_candidates_run_the_current_spec() -> None:
    w = RollingWorld(body("0.8.0"))
    w.converge()
    w.job_outcome = _migration_fails_until_r2
    w.bump("0.8.1")
    w.converge()
    w.rolling = {"acme-worker-08x"}
    w.retry = "1"
    for _ in range(5):
        w.step()
    assert "acme-migrate-080-to-08x-r2" not in w.created, "the worker still runs the old spec"
    w.rolling = set()
    w.terminating = {"acme-worker-08x": 1}
    for _ in range(5):
        w.step()
    assert "acme-migrate-080-to-08x-r2" not in w.created, "a pod of the old spec still runs"
    w.terminating = {}
    w.converge()
    assert w.created.count("acme-migrate-080-to-08x-r2") == 1
    assert w.status["currentVersion"] == "0.8.1"


def test_observe_counts_terminating_pods_per_deployment() -> None:
    from tracardi_operator.observe import observe

    dep = {"metadata": {"name": "acme-worker-08x", "generation": 2},
           "spec": {"replicas": 1, "template": {"metadata": {"labels": {labels.LABEL_VERSION: "0.8.1"}}}},
           "status": {"observedGeneration": 2, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}}

    def pod(name: str, deleting: bool) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "ownerReferences": [{"kind": "ReplicaSet",
                                                                    "name": "acme-worker-08x-5d9f"}]}
        if deleting:
            meta["deletionTimestamp"] = "2026-11-27T10:00:00Z"
        return {"metadata": meta, "status": {"podIP": "127.0.1.9",
                                             "conditions": [{"type": "Ready", "status": "True"}]}}

    o = observe({"deployments": [dep], "pods": [pod("new", False), pod("old", True)]})
    assert o.rolled_out("acme-worker-08x", "0.8.1")
    assert o.terminating == {"acme-worker-08x": 1}
    assert not o.settled("acme-worker-08x", "0.8.1")
    assert observe({"deployments": [dep], "pods": [pod("new", False)]}).settled("acme-worker-08x", "0.8.1")


def test_upgrading_again_after_a_rollback_is_refused_while_the_old_target_indices_exist() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    w.converge()
    w.bump("0.8.0")
    w.converge()
    jobs = list(w.created)
    w.bump("0.8.1")
    w.converge()
    accepted = w.condition("SpecAccepted")
    assert (accepted["status"], accepted["reason"]) == ("False", "StaleTargetIndices")
    assert w.created == jobs
    assert w.images()["acme-api"].endswith(":0.8.0")
    w.status["versions"][1]["state"] = "Deleted"  # retention deleted 08x
    w.converge()
    assert w.status["currentVersion"] == "0.8.1"
    assert w.created[len(jobs):] == ["acme-install-08x-r2", "acme-migrate-080-to-08x-r2"], \
        "Jobs of the earlier upgrade are never adopted"


def test_a_new_upgrade_after_an_abandoned_one_does_not_adopt_its_failed_job() -> None:
    fail_first = {"acme-migrate-080-to-08x"}

    def outcome(job: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        if job["metadata"]["name"] in fail_first:
            return "Failed", {"error": "MigrationTaskFailed", "message": "x"}
        return succeed(job)

    w = installed("0.8.0")
    w.job_outcome = outcome
    w.bump("0.8.1")
    w.converge()
    assert w.status["phase"] == "Degraded"
    w.bump("0.8.0")
    w.converge()
    abandoned = w.status["versions"][0]
    assert (abandoned["dbVersion"], abandoned["state"]) == ("08x", "Abandoned"), "the half-copied target is recorded"
    w.bump("0.8.1")
    w.converge()
    assert w.condition("SpecAccepted")["reason"] == "StaleTargetIndices", "never migrated into again as it is"
    abandoned_record = next(v for v in w.status["versions"] if v["dbVersion"] == "08x")
    abandoned_record["state"] = "Deleted"  # retention reclaimed it
    w.converge()
    assert w.status["currentVersion"] == "0.8.1"
    assert "acme-migrate-080-to-08x-r2" in w.created


def test_reverting_the_version_before_the_migration_starts_abandons_cleanly() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    while (w.status.get("upgrade") or {}).get("step") != "Installing":
        w.step()
    w.bump("0.8.0")
    w.converge()
    assert "acme-migrate-080-to-08x" not in w.created
    assert not any(n.endswith("-08x") for n in w.deployments)
    assert w.status["currentVersion"] == "0.8.0"
    assert w.status["phase"] == "Ready"


def test_reverting_during_the_migration_never_switches() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    while not any(j["purpose"] == "Migrate" for j in (w.status.get("upgrade") or {}).get("jobs", [])):
        w.step()
    w.bump("0.8.0")
    w.converge()
    assert w.created.count("acme-migrate-080-to-08x") == 1, "a started migration Job runs to its end"
    assert w.images()["acme-api-production"].endswith(":0.8.0")
    assert w.status["currentVersion"] == "0.8.0"


def test_reverting_during_the_switch_is_a_rollback_that_keeps_the_target_protected() -> None:
    w = installed("0.8.0")
    w.rollout_ready = True
    w.bump("0.8.1")
    while (w.status.get("upgrade") or {}).get("step") != "Switching":
        w.step()
    w.rollout_ready = False  # the new pods are coming up: the switch is applied, not finished
    w.step()
    assert w.images()["acme-api-production"].endswith(":0.8.1"), "production was given the target"
    w.bump("0.8.0")
    w.rollout_ready = True
    w.converge()
    assert w.status["currentVersion"] == "0.8.0"
    target = next(v for v in w.status["versions"] if v["dbVersion"] == "08x")
    assert target["state"] == "Superseded", "it served: a rollback target, kept by the policy's rules"
    assert target["supersededAt"]
    rolled_back = [message for reason, message in w.events if reason == "RolledBack"]
    assert len(rolled_back) == 1
    assert "not carried back" in rolled_back[0]
    assert not any(reason == "UpgradeAbandoned" for reason, _ in w.events)


def test_reverting_after_verification_but_before_the_switch_abandons() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    while (w.status.get("upgrade") or {}).get("step") != "Switching":
        w.step()
    w.bump("0.8.0")
    w.converge()
    target = next(v for v in w.status["versions"] if v["dbVersion"] == "08x")
    assert target["state"] == "Abandoned", "it never served production"
    assert w.images()["acme-api-production"].endswith(":0.8.0")


def test_a_half_deleted_version_is_no_rollback_target_and_the_refusal_names_what_is_gone() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    w.converge()
    old = next(v for v in w.status["versions"] if v["dbVersion"] == "080")
    old["state"] = "Deleting"
    old["deletedNames"] = [f"080.fa73a.tracardi-r{n}" for n in range(7)]
    w.status.pop("retention", None)  # the plan was withdrawn (policy deleted or dryRun)
    w.bump("0.8.0")
    w.converge()
    refused = w.condition("SpecAccepted")
    assert refused["reason"] == "RollbackTargetDeleted"
    assert "7 names are gone" in refused["message"]
    assert "080.fa73a.tracardi-r0" in refused["message"]
    assert w.status["currentVersion"] == "0.8.1"


def test_an_abandoned_version_is_no_rollback_target() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    w.converge()
    w.bump("0.8.2.1")
    while (w.status.get("upgrade") or {}).get("step") != "Switching":
        w.step()
    w.bump("0.8.1")
    w.converge()
    assert next(v for v in w.status["versions"] if v["dbVersion"] == "0820")["state"] == "Abandoned"
    w.bump("0.8.0")
    w.converge()
    assert w.status["currentVersion"] == "0.8.0", "the version that served is still a rollback target"


def test_the_switch_records_the_verification() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    w.converge()
    current = next(v for v in w.status["versions"] if v["state"] == "Current")
    assert current["migrationVerified"] is True


def test_a_retry_annotation_present_before_the_failure_does_not_retry_it() -> None:
    w = World(body("0.8.0"), job_outcome=lambda job: ("Failed", {"error": "Timeout", "message": "slow"}))
    w.retry = "copied-from-elsewhere"
    w.converge()
    assert w.created == ["acme-install-080"]
    assert w.status["phase"] == "Degraded"


def test_no_rollback_to_a_version_in_a_published_deletion_plan() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    w.converge()
    w.status["retention"] = {"policy": "p", "dryRun": False, "items": [
        {"name": "080.fa73a", "kind": "Version", "action": "Delete", "reason": "Eligible", "dbVersion": "080",
         "tenant": "fa73a"}]}
    w.bump("0.8.0")
    w.converge()
    assert w.condition("SpecAccepted")["reason"] == "RollbackTargetDeleted"
    w.status["retention"]["dryRun"] = True  # a dry run deletes nothing
    w.converge()
    assert w.status["currentVersion"] == "0.8.0"


def test_a_stalled_rollout_is_degraded_with_one_event_and_recovers() -> None:
    import dataclasses

    w = installed("0.8.2.1")
    w.bump("0.8.2.2")
    w.rollout_ready = False
    inst = TracardiInstallation.model_validate(w.body)
    obs = w.observed()
    stalled = Observed({n: dataclasses.replace(d, stalled=n == "acme-api") for n, d in obs.deployments.items()},
                       obs.jobs, obs.pod_ips)
    d = decide(inst, stalled, RolloutContext(now=T0, builder=builders.BuilderSettings()))
    degraded = conditions.find(d.status.conditions, conditions.DEGRADED)
    assert degraded is not None
    assert (degraded.status, degraded.reason) == ("True", "RolloutStalled")
    assert "acme-api" in degraded.message
    assert [e.reason for e in d.events if e.type == "Warning"] == ["RolloutStalled"]
    w.body["status"] = d.status.to_k8s()
    w.rollout_ready = True
    w.converge()
    assert w.condition("Degraded")["status"] == "False"
    assert w.status["currentVersion"] == "0.8.2.2"


PSA = ('pods "acme-api-5d9c" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true '
       '(pod or container "api" must set securityContext.runAsNonRoot=true)')


def test_pods_the_apiserver_refuses_are_degraded_at_once_with_its_words() -> None:
    w = World(body("0.8.0"), refusing=PSA)
    for _ in range(3):
        w.step()
    degraded = w.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "PodsRefused")
    assert "violates PodSecurity" in degraded["message"]
    assert "spec.security" in degraded["message"]
    assert w.status["phase"] == "Degraded"
    assert [r for r, _ in w.events].count("PodsRefused") == 1, "one Warning, not one per pass"
    w.refusing = ""  # the namespace's level was lowered, or a UID set
    w.converge()
    assert w.condition("Degraded")["status"] == "False"
    assert w.status["currentVersion"] == "0.8.0"


def test_a_job_whose_pods_are_refused_is_degraded_and_not_failed() -> None:
    w = installed("0.8.0")
    w.bump("0.8.1")
    while not w.jobs:
        w.step()
    w.refusing = 'pods "acme-install-08x-x" is forbidden: violates PodSecurity "restricted:latest"'
    w.step()
    assert w.condition("Degraded")["reason"] == "PodsRefused"
    assert w.status["upgrade"]["step"] != "Failed"
    w.refusing = ""
    w.converge()
    assert w.status["currentVersion"] == "0.8.1"


def test_observe_reads_the_replica_failure_of_a_deployment() -> None:
    from tracardi_operator.observe import observe

    deployment = {"metadata": {"name": "acme-api", "generation": 1}, "spec": {"replicas": 1, "template": {
        "metadata": {"labels": {labels.LABEL_VERSION: "0.8.0"}}}},
        "status": {"observedGeneration": 1, "conditions": [
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": PSA}]}}
    assert observe({"deployments": [deployment]}).deployments["acme-api"].refused == PSA
    deployment["status"]["conditions"][0]["status"] = "False"
    assert observe({"deployments": [deployment]}).deployments["acme-api"].refused == ""


def test_the_shard_room_is_needed_only_by_a_change_that_makes_indices() -> None:
    from tracardi_operator.models import TracardiInstallation
    from tracardi_operator.rollout import needs_shard_room

    def needs(w: World) -> bool:
        return needs_shard_room(TracardiInstallation.model_validate(w.body))

    assert needs(World(body("0.8.0"))), "a first install"
    w = installed("0.8.0")
    assert not needs(w), "nothing to change"
    w.bump("0.8.1")
    assert needs(w), "a migration makes the next version's indices"
    w = installed("0.8.2.1")
    w.bump("0.8.2.2")
    assert not needs(w), "an image roll"
    w.bump("0.7.0")
    assert not needs(w), "a refused version changes nothing"
