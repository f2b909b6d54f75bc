"""Whole reconcile passes (`reconcile.Reconciler.reconcile_once`) against an in-memory Kubernetes and
Elasticsearch: status recorded before anything is created, passes that converge to a serving version and
then run retention, and how each pass is counted (ok, or error when the spec is invalid or refused)."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.factories import FakeClock, merge_patch
from tests.support.fake_elastic import FakeElastic
from tests.unit.test_rollout import body, succeed
from tracardi_operator import labels
from tracardi_operator.applied import AppliedCache
from tracardi_operator.children import EVERY_KIND, UNWATCHED, WATCHED, ChildListings, kept_form
from tracardi_operator.indices import VersionId
from tracardi_operator.listings import Listings
from tracardi_operator.observe import observe
from tracardi_operator.reconcile import Reconciler
from tracardi_operator.retention_pass import RetentionPass
from tracardi_operator.scheduler import GONE
from tracardi_operator.settings import Settings

OLD, NEW = VersionId("080", "fa73a"), VersionId("08x", "01506")


@dataclass
class MemoryKube:
    """What the apiserver and the controllers would do: Deployments roll out at once, Jobs succeed with
    the result `test_rollout.succeed` gives, status patches merge."""

    installation: dict[str, Any] | None
    policies: list[dict[str, Any]] = field(default_factory=list)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    revision: int = 0
    ops: list[str] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    listed: list[tuple[str, ...]] = field(default_factory=list)
    """The kinds of children each `list_children` call read."""

    def get_installation(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.installation)

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        assert self.installation is not None
        self.ops.append("status")
        merge_patch(self.installation.setdefault("status", {}), patch)

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Stores the object; like the apiserver, a new resourceVersion only when something changed."""
        self.ops.append(f"apply {manifest['kind']}")
        store = self.deployments if manifest["kind"] == "Deployment" else self.services
        name = manifest["metadata"]["name"]
        stored = copy.deepcopy(manifest)
        if manifest["kind"] == "Deployment":
            replicas = manifest["spec"].get("replicas", 1)
            stored["status"] = {"replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas}
        before = copy.deepcopy(store.get(name) or {})
        version = before.get("metadata", {}).pop("resourceVersion", None)
        if before != stored or version is None:
            self.revision += 1
            version = str(self.revision)
        stored["metadata"]["resourceVersion"] = version
        store[name] = stored
        return copy.deepcopy(stored)

    def create_once(self, manifest: dict[str, Any]) -> bool:
        name = manifest["metadata"]["name"]
        if name in self.jobs:
            return False
        self.ops.append(f"create {manifest['kind']}")
        self.jobs[name] = manifest
        return True

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.ops.append(f"delete {kind}")
        store = {"Deployment": self.deployments, "Service": self.services}.get(kind, self.jobs)
        return store.pop(name, None) is not None

    def event(self, involved: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason))

    def failed_create(self, namespace: str, name: str) -> str:
        return ""

    def list_children(self, namespace: str, instance: str,
                      kinds: Sequence[str] = ("deployments", "services", "jobs", "pods"),
                      ) -> dict[str, list[dict[str, Any]]]:
        self.listed.append(tuple(kinds))
        pods = []
        for i, name in enumerate(sorted(self.deployments)):
            if self.deployments[name]["spec"].get("replicas", 1):
                pods.append({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": f"{name}-abc12"}]},
                             "status": {"podIP": f"10.0.0.{i + 1}",
                                        "conditions": [{"type": "Ready", "status": "True"}]}})
        jobs = []
        for name, job in self.jobs.items():
            _, result = succeed(job)
            pods.append({"metadata": {"labels": {"job-name": name}}, "status": {"containerStatuses": [
                {"state": {"terminated": {"finishedAt": "2026-01-01T00:00:00Z", "message": json.dumps(result)}}}]}})
            jobs.append({**job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}})
        listed = {"deployments": copy.deepcopy(list(self.deployments.values())),
                  "services": copy.deepcopy(list(self.services.values())), "jobs": jobs, "pods": pods}
        return {kind: listed[kind] for kind in kinds}

    def list_cluster_at(self, kind: str) -> tuple[str, list[dict[str, Any]]]:
        return "", self.list_cluster(kind)

    def list_cluster(self, kind: str) -> list[dict[str, Any]]:
        if kind == "namespaces":
            self.ops.append("list namespaces")
            return [{"metadata": {"name": "shop", "labels": {"team": "shop"}}}]
        if kind == "policies":
            return copy.deepcopy(self.policies)
        if kind == "installations":
            return [copy.deepcopy(self.installation)] if self.installation else []
        return [{**d, "metadata": {**d["metadata"], "namespace": "shop"}} for d in self.deployments.values()]

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        return {}

    def patch_policy_status(self, name: str, status: dict[str, Any]) -> None:
        self.ops.append(f"policy status {name}")
        policy = next(p for p in self.policies if p["metadata"]["name"] == name)
        policy["status"] = copy.deepcopy(status)

    @property
    def status(self) -> dict[str, Any]:
        assert self.installation is not None
        found: dict[str, Any] = self.installation.get("status") or {}
        return found

    def condition(self, type_: str) -> dict[str, Any]:
        return next(c for c in self.status["conditions"] if c["type"] == type_)


@dataclass
class Counted:
    results: list[str] = field(default_factory=list)
    deleted: int = 0
    planned: list[int] = field(default_factory=list)
    phases: list[str | None] = field(default_factory=list)
    conditions: dict[str, str] = field(default_factory=dict)
    paused: list[bool] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)
    forgotten: list[tuple[str, str]] = field(default_factory=list)

    def forget_installation(self, namespace: str, installation: str) -> None:
        self.forgotten.append((namespace, installation))

    def count_reconciliation(self, result: str) -> None:
        self.results.append(result)

    def gc_deleted(self, namespace: str, installation: str, indices: int) -> None:
        self.deleted += indices

    def gc_planned(self, namespace: str, installation: str, indices: int) -> None:
        self.planned.append(indices)

    def installation_status(self, namespace: str, installation: str, phase: str | None,
                            conditions: dict[str, str]) -> None:
        self.phases.append(phase)
        self.conditions = dict(conditions)

    def set_paused(self, namespace: str, installation: str, paused: bool) -> None:
        self.paused.append(paused)

    def observe_step(self, step: str, seconds: float) -> None:
        assert seconds >= 0
        self.steps.append(step)

    def migrated(self, result: str) -> None:
        self.migrations.append(result)


@dataclass
class Elastic:
    es: FakeElastic

    def adapter(self, inst: Any) -> FakeElastic:
        return self.es

    def forget(self, namespace: str, name: str) -> None:
        return None


def reconciler(kube: MemoryKube, es: FakeElastic | None = None) -> tuple[Reconciler, Counted]:
    metrics = Counted()
    # Listings read anew by every pass (no watch feeds them here): a kept listing would still show the
    # Deployments of the version just superseded (they keep it, until a later pass).
    retention = RetentionPass(kube, Listings(kube.list_cluster_at, ttl=0), metrics=metrics)  # type: ignore[arg-type]
    # No watch tells the kept listing of children that they changed here either: listed by every pass.
    children = ChildListings(relist=-1)
    return (Reconciler(Settings(), kube, Elastic(es or FakeElastic()), retention, metrics,  # type: ignore[arg-type]
                       children=children), metrics)


def converge(r: Reconciler, passes: int = 40) -> None:
    for _ in range(passes):
        if r.reconcile_once("shop", "acme") is None:
            return
    raise AssertionError("no convergence")


def test_the_first_pass_records_its_decision_before_it_creates_anything() -> None:
    kube = MemoryKube(body("0.8.0"))
    r, metrics = reconciler(kube)
    assert r.reconcile_once("shop", "acme") is not None
    assert kube.ops == ["status"]  # the version change is recorded, nothing else moves yet
    assert kube.events == [("Normal", "UpgradeStarted")]
    assert kube.status["targetVersion"] == "0.8.0"
    r.reconcile_once("shop", "acme")
    assert kube.ops[1] == "status"
    assert "apply Deployment" in kube.ops[2:]
    assert metrics.results == ["ok", "ok"]


def test_passes_converge_to_serving_and_an_idle_pass_runs_retention() -> None:
    es = FakeElastic()
    es.install(OLD)
    es.install(NEW)
    es.indices["logs-2026"] = None  # foreign
    kube = MemoryKube(body("0.8.0"), policies=[{"metadata": {"name": "p"}, "spec": {
        "keepSupersededVersions": 0, "minAgeAfterSuperseded": "0s"}}])
    r, metrics = reconciler(kube, es)
    converge(r)
    assert kube.condition("Ready")["status"] == "True"
    assert kube.status["elasticsearchCluster"] == "cluster-1"
    assert kube.condition("RetentionPolicyResolved")["reason"] == "Governed"
    assert not es.deleted  # nothing superseded yet
    kube.installation["spec"]["version"] = "0.8.1"  # type: ignore[index]
    kube.installation["metadata"]["generation"] = 2  # type: ignore[index]
    converge(r)
    states = {(v["dbVersion"], v["tenant"]): v["state"] for v in kube.status["versions"]}
    assert states == {("080", "fa73a"): "Deleted", ("08x", "01506"): "Current"}
    assert es.deleted
    assert not es.names_of(OLD)
    assert es.names_of(NEW)
    assert "logs-2026" in es.indices
    assert metrics.deleted > 0
    assert ("Normal", "IndicesDeleted") in kube.events
    assert set(metrics.results) == {"ok"}
    # What the passes told the metrics: one migration, the steps each upgrade went through, the phase.
    assert metrics.migrations == ["succeeded"]
    assert "Migrating" in metrics.steps
    assert "Installing" in metrics.steps
    assert metrics.phases[-1] == "Ready"
    assert metrics.conditions["Ready"] == "True"
    assert set(metrics.paused) == {False}
    assert metrics.planned[-1] > 0, "the run's plan counted the superseded version's indices it deleted"
    r.reconcile_once("shop", "acme")
    assert metrics.planned[-1] == 0, "nothing left to delete"
    images = {d["spec"]["template"]["metadata"]["labels"][labels.LABEL_VERSION] for d in kube.deployments.values()}
    assert images == {"0.8.1"}


def test_an_invalid_spec_is_said_once_and_counted_as_an_error() -> None:
    invalid = body("0.8.0")
    invalid["spec"]["redis"] = {"url": 7}
    kube = MemoryKube(invalid)
    r, metrics = reconciler(kube)
    assert r.reconcile_once("shop", "acme") is None
    assert r.reconcile_once("shop", "acme") is None
    accepted = kube.condition("SpecAccepted")
    assert (accepted["status"], accepted["reason"]) == ("False", "InvalidSpec")
    assert kube.events == [("Warning", "InvalidSpec")]
    assert metrics.results == ["error", "error"]
    assert metrics.conditions["SpecAccepted"] == "False"
    assert not kube.deployments


def test_a_refused_version_is_counted_as_an_error() -> None:
    kube = MemoryKube(body("latest"))
    r, metrics = reconciler(kube)
    r.reconcile_once("shop", "acme")
    assert kube.condition("SpecAccepted")["reason"] == "InvalidVersion"
    assert metrics.results == ["error"]
    assert not kube.deployments


def test_a_gone_installation_ends_its_loop_and_writes_nothing() -> None:
    kube = MemoryKube(None)
    r, metrics = reconciler(kube)
    assert r.reconcile_once("shop", "acme") == GONE
    deleting = MemoryKube({**body("0.8.0"), "metadata": {**body("0.8.0")["metadata"], "deletionTimestamp": "x"}})
    assert reconciler(deleting)[0].reconcile_once("shop", "acme") == GONE
    assert kube.ops == deleting.ops == []
    assert metrics.results == []


def _applies(kube: MemoryKube) -> list[str]:
    return [op for op in kube.ops if op.startswith("apply")]


def test_an_idle_pass_applies_only_what_someone_else_changed() -> None:
    kube = MemoryKube(body("0.8.0"))
    r, _ = reconciler(kube)
    clock = FakeClock()
    r.applied = AppliedCache(reapply_after=3600, clock=clock)
    converge(r)
    children = len(kube.deployments) + len(kube.services)
    assert children >= 4
    kube.ops.clear()
    r.reconcile_once("shop", "acme")
    assert _applies(kube) == [], "an idle pass sends no apply that would change nothing"

    edited = sorted(kube.deployments)[0]
    kube.deployments[edited]["spec"]["replicas"] = 5  # someone scales it by hand
    kube.deployments[edited]["metadata"]["resourceVersion"] = "edited"
    gone = sorted(kube.services)[0]
    del kube.services[gone]  # someone deletes a Service
    kube.ops.clear()
    r.reconcile_once("shop", "acme")
    assert sorted(_applies(kube)) == ["apply Deployment", "apply Service"]
    assert kube.deployments[edited]["spec"]["replicas"] != 5
    assert gone in kube.services

    kube.ops.clear()
    r.reconcile_once("shop", "acme")
    assert _applies(kube) == []
    clock.sleep(3600)
    r.reconcile_once("shop", "acme")
    assert len(_applies(kube)) == children, "every child is applied again once an hour"


def test_a_version_change_applies_the_new_manifests() -> None:
    kube = MemoryKube(body("0.8.0"))
    r, _ = reconciler(kube)
    converge(r)
    kube.installation["spec"]["replicas"] = {"api": 3}  # type: ignore[index]
    kube.installation["metadata"]["generation"] = 2  # type: ignore[index]
    kube.ops.clear()
    converge(r)
    assert _applies(kube)
    assert any(d["spec"].get("replicas") == 3 for d in kube.deployments.values())


def test_a_patch_bump_is_recorded_and_rolled_in_the_same_pass_status_first() -> None:
    """An image roll needs no Job: the pass that records it also applies the new images (the reaction to a
    bump is one pass), and its status patch still comes before any apply."""
    kube, es = MemoryKube(body("0.8.2.1")), FakeElastic()
    r, _ = reconciler(kube, es)
    converge(r)
    assert es.shard_room_reads == 1, "a first install makes indices: the shard room is read"
    kube.installation["spec"]["version"] = "0.8.2.2"  # type: ignore[index]
    kube.installation["metadata"]["generation"] = 2  # type: ignore[index]
    kube.ops.clear()
    r.reconcile_once("shop", "acme")
    assert kube.status["upgrade"]["kind"] == "Rolling"
    assert es.shard_room_reads == 1, "an image roll makes no index: Elasticsearch is not asked"
    assert kube.ops[0] == "status", "recorded before anything moves"
    assert "apply Deployment" in kube.ops[1:]
    images = {c["image"] for d in kube.deployments.values() for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"tracardi/tracardi-api:0.8.2.2", "tracardi/tracardi-gui:0.8.2.2",
                      "tracardi/update-worker:0.8.2.2"}
    converge(r)
    assert kube.status["currentVersion"] == "0.8.2.2"

    kube.installation["spec"]["version"] = "0.8.2.1"  # type: ignore[index]
    kube.installation["metadata"]["generation"] = 3  # type: ignore[index]
    kube.ops.clear()
    r.reconcile_once("shop", "acme")
    assert kube.status["upgrade"]["kind"] == "Rolling", "back within one database version: an image roll"
    assert kube.ops[0] == "status"
    assert "apply Deployment" in kube.ops[1:]


def test_a_gone_installation_is_forgotten_by_the_apply_cache_and_the_metrics() -> None:
    kube = MemoryKube(body("0.8.0"))
    r, metrics = reconciler(kube)
    converge(r)
    assert len(r.applied) > 0
    assert metrics.forgotten == []
    kube.installation = None
    assert r.reconcile_once("shop", "acme") == GONE
    assert len(r.applied) == 0
    assert metrics.forgotten == [("shop", "acme")], "also when the deletion's watch event was missed"


def test_other_installations_are_validated_once_per_resource_version() -> None:
    listings = Listings(MemoryKube(None).list_cluster_at)
    raw = body("0.8.0")
    raw["metadata"].update(uid="u-1", resourceVersion="5")
    first = listings.parsed(raw)
    assert listings.parsed(copy.deepcopy(raw)) is first, "the same version: not validated again"
    raw["metadata"]["resourceVersion"] = "6"
    raw["spec"]["version"] = "0.8.1"
    again = listings.parsed(raw)
    assert again is not first
    assert again.spec.version == "0.8.1"


def test_policy_statuses_read_everything_once_and_write_only_what_changed() -> None:
    selecting = {"keepSupersededVersions": 1, "namespaceSelector": {"matchLabels": {"team": "shop"}}}
    kube = MemoryKube(body("0.8.0"), policies=[
        {"metadata": {"name": "shops", "generation": 1}, "spec": selecting},
        {"metadata": {"name": "others", "generation": 1},
         "spec": {**selecting, "namespaceSelector": {"matchLabels": {"team": "other"}}}}])
    r, _ = reconciler(kube)
    r.policy_statuses()
    assert kube.ops.count("list namespaces") == 1, "one listing for every policy"
    governed = {p["metadata"]["name"]: p["status"]["governed"] for p in kube.policies}
    assert governed == {"shops": [{"namespace": "shop", "name": "acme"}], "others": []}
    kube.ops.clear()
    r.policy_statuses()
    assert not [op for op in kube.ops if op.startswith("policy status")], "nothing changed: nothing written"


def test_an_idle_pass_reuses_its_watched_children_until_a_watch_event_or_its_own_write() -> None:
    """The kept listing of Deployments and Jobs (`children`): used only by an idle installation's pass, and
    only until a watch event of them, a write of the pass, or the relist backstop."""
    kube = MemoryKube(body("0.8.0"))
    r, _ = reconciler(kube)
    clock = FakeClock()
    r.children = ChildListings(relist=900, clock=clock)
    converge(r)
    every, unwatched = EVERY_KIND, UNWATCHED
    assert all(kinds == every for kinds in kube.listed), "an install under way lists everything every pass"
    kube.listed.clear()
    assert r.reconcile_once("shop", "acme") is None
    assert r.reconcile_once("shop", "acme") is None
    assert kube.listed == [every, unwatched], "idle: Deployments and Jobs kept from the last listing"
    kube.listed.clear()
    r.children.moved("deployments", "shop", "acme-api", "acme")  # a Deployment's watch event
    r.reconcile_once("shop", "acme")
    r.reconcile_once("shop", "acme")
    assert kube.listed == [every, unwatched]
    kube.listed.clear()
    clock.sleep(901)
    r.reconcile_once("shop", "acme")
    assert kube.listed == [every], "the relist backstop"
    kube.listed.clear()
    del kube.deployments["acme-gui"]  # someone deletes it; the watch would tell, and this pass must see it
    r.children.moved("deployments", "shop", "acme-gui", "acme", gone=True)
    r.reconcile_once("shop", "acme")
    assert "acme-gui" in kube.deployments, "put back"
    r.reconcile_once("shop", "acme")
    assert kube.listed == [every, every], "the pass that put it back wrote a child: the next lists again"
    kube.listed.clear()
    kube.installation["spec"]["version"] = "0.8.1"  # type: ignore[index]
    r.reconcile_once("shop", "acme")
    assert kube.listed == [every], "a version to reach: not idle"
    r.forget("shop", "acme")
    assert len(r.children) == 0


def test_one_model_is_kept_per_installation_however_often_its_status_was_written() -> None:
    listings = Listings(MemoryKube(None).list_cluster_at)
    raw = body("0.8.0")
    raw["metadata"].update(uid="u-1", resourceVersion="5")
    for version in range(5, 105):  # a hundred status writes: a hundred versions
        raw["metadata"].update(resourceVersion=str(version), generation=version)
        assert listings.parsed(raw).metadata.generation == version
    other = copy.deepcopy(raw)
    other["metadata"].update(uid="u-2", name="other")
    listings.parsed(other)
    assert listings.parsed_count() == 2, "the latest version of each, not every version seen"
    listings.observe("installations", "DELETED", other)
    assert listings.parsed_count() == 1, "a deleted installation's model goes with it"
    listings.parsed(other)  # a pass that read an older listing validates it again after the event
    assert listings.parsed_count() == 2
    listings.get("installations", fresh=True)  # a whole read, in which neither is listed any more
    assert listings.parsed_count() == 0, "a whole read drops the models of installations it does not list"


def test_a_kept_listing_holds_no_pod_spec_and_decides_as_the_whole_one() -> None:
    """What an idle installation keeps of its Deployments and Jobs between passes drops their pod
    templates' spec (most of their size); the observation its passes decide on is the same."""
    kube = MemoryKube(body("0.8.0"))
    r, _ = reconciler(kube)
    r.children = ChildListings(relist=900, clock=FakeClock())
    converge(r)
    whole = kube.list_children("shop", "acme")
    assert whole["deployments"], "an installed installation has Deployments"
    assert whole["jobs"], "and its install Job"
    slim = {kind: [kept_form(o) for o in objs] if kind in WATCHED else objs for kind, objs in whole.items()}
    assert observe(slim) == observe(whole)
    for obj in slim["deployments"] + slim["jobs"]:
        assert "spec" not in obj["spec"]["template"]
        assert obj["spec"]["template"]["metadata"]
    assert len(json.dumps(slim["deployments"])) < 0.7 * len(json.dumps(whole["deployments"]))
    assert all("spec" in d["spec"]["template"] for d in whole["deployments"]), "the listing is not changed"

    kube.ops.clear()
    r.reconcile_once("shop", "acme")  # lists whole and keeps the slim form
    r.reconcile_once("shop", "acme")  # decides on the kept one
    assert kube.listed[-1] == UNWATCHED
    assert _applies(kube) == [], "an idle pass on its kept listing applies nothing"
    r.applied.forget(("shop", "acme"))  # a record lost while the kept listing stays (no path does both today)
    r.reconcile_once("shop", "acme")
    assert len(_applies(kube)) > 0, "without a record, the kept form is not taken as applied: it applies"
