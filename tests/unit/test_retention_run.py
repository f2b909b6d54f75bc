"""The real retention path (`retention.execution.run`: plan, publish, snapshot, re-check, delete, verify) against an
in-memory cluster. Each test changes the world where the operator waits and checks what was deleted."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from tests.factories import installation_body, installation_spec
from tests.support.fake_elastic import FakeElastic
from tracardi_operator.indices import VersionId
from tracardi_operator.models import RetentionStatus, TracardiInstallation, TracardiRetentionPolicy
from tracardi_operator.retention import execution
from tracardi_operator.retention.evidence import live_pairs
from tracardi_operator.retention.execution import Fresh
from tracardi_operator.retention.inventory import InventoryCache
from tracardi_operator.retention.safety import batch_names
from tracardi_operator.retention.status import RunOutcome

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
OLD, LIVE = VersionId("080", "fa73a"), VersionId("08x", "01506")
HISTORY = [
    {"version": "0.8.0", "dbVersion": "080", "tenant": "fa73a", "state": "Superseded",
     "supersededAt": "2026-11-01T00:00:00Z"},
    {"version": "0.8.1", "dbVersion": "08x", "tenant": "01506", "state": "Current", "migratedFrom": "0.8.0",
     "migrationVerified": True},
]


def installation(generation: int = 1, enabled: bool = True) -> TracardiInstallation:
    return TracardiInstallation.model_validate(installation_body(
        installation_spec(retention={"enabled": enabled}), namespace="shop", generation=generation,
        status={"currentVersion": "0.8.1", "versions": HISTORY},
    ))


def policy(**spec: Any) -> TracardiRetentionPolicy:
    return TracardiRetentionPolicy.model_validate({"metadata": {"name": "p"}, "spec": {
        "keepSupersededVersions": 0, "minAgeAfterSuperseded": "0s", **spec}})


@dataclass
class World:
    es: FakeElastic = field(default_factory=FakeElastic)
    inst: TracardiInstallation = field(default_factory=installation)
    policies: list[TracardiRetentionPolicy] = field(default_factory=lambda: [policy()])
    others_live: set[VersionId] = field(default_factory=set)
    recorded: list[dict[VersionId, list[str]]] = field(default_factory=list)
    rechecks: int = 0

    def __post_init__(self) -> None:
        self.es.install(OLD)
        self.es.install(LIVE)
        self.es.indices["logs-2026"] = None  # foreign

    def live(self) -> set[VersionId]:
        return live_pairs(self.inst) | self.others_live

    def recheck(self) -> Fresh:
        self.rechecks += 1
        return Fresh(list(self.policies), self.live(), self.inst, {})

    def publish(self, plan: RetentionStatus) -> None:
        pass

    def record_deleting(self, names: Any) -> None:
        # What a Deleting record must say before the names go: compare with what is gone so far.
        assert all(n in self.es.indices or n in self.es.templates for pair in names for n in names[pair]
                   if n not in self.es.deleted), "recorded before deletion"
        self.recorded.append({pair: list(found) for pair, found in names.items()})

    def run(self) -> RunOutcome:
        start = installation(self.inst.metadata.generation or 1, self.inst.spec.retention.enabled)
        return execution.run(start, self.es, InventoryCache(ttl=0), list(self.policies), {}, self.live(), NOW, self)


def test_an_allowed_deletion_deletes_every_name_of_the_old_version_and_nothing_else() -> None:
    w = World()
    expected = w.es.names_of(OLD)
    outcome = w.run()
    assert set(w.es.deleted) == expected
    assert outcome.deleted_pairs == [OLD]
    assert w.es.names_of(LIVE)
    assert "logs-2026" in w.es.indices


def test_policy_switched_to_dry_run_during_the_snapshot_deletes_nothing() -> None:
    w = World(policies=[policy(snapshot={"repository": "backups"})])
    w.es.during_snapshot = lambda: w.policies.__setitem__(0, policy(dryRun=True, snapshot={"repository": "b"}))
    w.run()
    assert w.es.snapshots, "the snapshot was taken"
    assert w.es.deleted == []


def test_policy_deleted_during_the_snapshot_deletes_nothing() -> None:
    w = World(policies=[policy(snapshot={"repository": "backups"})])
    w.es.during_snapshot = w.policies.clear
    w.run()
    assert w.es.deleted == []


def test_retention_disabled_during_the_snapshot_deletes_nothing() -> None:
    w = World(policies=[policy(snapshot={"repository": "backups"})])

    def disable() -> None:
        w.inst = installation(generation=2, enabled=False)

    w.es.during_snapshot = disable
    w.run()
    assert w.es.deleted == []


def test_a_new_installation_live_on_the_pair_during_the_snapshot_saves_it() -> None:
    w = World(policies=[policy(snapshot={"repository": "backups"})])
    w.es.during_snapshot = lambda: w.others_live.add(OLD)
    w.run()
    assert w.es.deleted == []


def test_a_change_between_two_batches_stops_the_rest() -> None:
    w = World()
    batches: list[list[str]] = []

    def after_first(batch: list[str]) -> None:
        batches.append(batch)
        w.others_live.add(OLD)  # from now on the old pair is live again

    w.es.before_delete = after_first
    w.run()
    assert len(batches) == 1, "only the request already under way went"
    assert set(w.es.deleted) == set(batches[0])


def test_a_capped_run_records_the_version_as_deleting_before_its_first_name_goes() -> None:
    w = World(policies=[policy(maxDeletionsPerRun=5)])
    outcome = w.run()
    assert len(w.es.deleted) == 5
    assert w.recorded
    assert OLD in w.recorded[0]
    assert set(w.es.deleted) <= set(w.recorded[-1][OLD])
    assert set(outcome.deleting[OLD]) == set(w.es.deleted)
    assert outcome.deleted_pairs == [], "not all gone: still Deleting"


def test_a_cluster_that_does_not_say_who_it_is_loses_nothing() -> None:
    w = World(es=FakeElastic(cluster_uuid=None))
    outcome = w.run()
    assert w.es.deleted == []
    assert "cluster_uuid" in (outcome.retention.message or "")


def test_a_status_without_its_current_record_still_protects_the_serving_pair() -> None:
    w = World()
    w.inst = TracardiInstallation.model_validate({
        **installation().model_dump(by_alias=True, mode="json", exclude_none=True),
        "status": {"currentVersion": "0.8.1", "versions": [HISTORY[0], {**HISTORY[1], "state": "Superseded",
                                                                          "supersededAt": "2026-11-02T00:00:00Z"}]},
    })
    start_live = live_pairs(w.inst)
    assert LIVE in start_live
    outcome = execution.run(w.inst, w.es, InventoryCache(ttl=0), w.policies, {}, start_live, NOW, w)
    assert not (set(w.es.deleted) & w.es.names_of(LIVE))
    assert not any(".01506." in n for n in w.es.deleted)
    assert LIVE not in outcome.deleted_pairs


def test_inputs_are_read_once_per_delete_request_and_again_after_a_snapshot() -> None:
    requests: list[list[str]] = []
    w = World()
    w.es.before_delete = requests.append
    w.run()
    assert len(requests) > 1
    assert w.rechecks == len(requests), "the first request uses the plan read just before it"
    snapshotted = World(policies=[policy(snapshot={"repository": "backups"})])
    later: list[list[str]] = []
    snapshotted.es.before_delete = later.append
    snapshotted.run()
    assert snapshotted.rechecks == len(later) + 1, "after a snapshot the first request reads again too"


def _many_batches() -> _BatchedWorld:
    """An old version with enough partitions that its indices take several delete requests."""
    w = _BatchedWorld()
    w.es.install(OLD, partitions=[f"{year}-{month}" for year in range(2015, 2027) for month in range(1, 13)])
    return w


class _BatchedWorld(World):
    def plan_batches(self) -> list[list[str]]:
        """The index requests the old version's names take (as the plan batches them)."""
        return [list(b) for b in batch_names(sorted(n for n in self.es.names_of(OLD) if ".tracardi-" in n
                                                    and not n.startswith("template") and "template." not in n))]


def test_an_alias_made_between_two_requests_saves_the_indices_it_reaches() -> None:
    w = _many_batches()
    requests: list[list[str]] = []
    later: list[str] = []

    def after_first(batch: list[str]) -> None:
        requests.append(batch)
        if len(requests) == 1:  # someone points a report at an index the next requests would delete
            later.append(sorted(n for n in w.es.names_of(OLD) if n in w.es.indices and n not in batch)[-1])
            w.es.aliases["reports"] = list(later)

    w.es.before_delete = after_first
    assert len(w.plan_batches()) > 2, "several requests are planned"
    w.run()
    assert later[0] not in w.es.deleted
    assert later[0] in w.es.indices


def test_an_index_made_again_by_another_version_between_two_requests_is_not_deleted() -> None:
    w = _many_batches()
    requests: list[list[str]] = []
    remade: list[str] = []

    def after_first(batch: list[str]) -> None:
        requests.append(batch)
        if len(requests) == 1:  # deleted and created again, now holding the live version's data
            remade.append(sorted(n for n in w.es.names_of(OLD) if n not in batch and n in w.es.indices)[-1])
            w.es.indices[remade[0]] = LIVE

    w.es.before_delete = after_first
    assert len(w.plan_batches()) > 2, "several requests are planned"
    w.run()
    assert remade[0] not in w.es.deleted
    assert remade[0] in w.es.indices


def test_an_alias_whose_other_index_was_made_again_between_two_requests_protects_its_names() -> None:
    """A Tracardi alias of the old tenant over two old indices is retired. One of them is not deleted by
    this run (the run is capped); when it is made again with the live version's data between two
    requests, the alias is live again before the request that would delete the other one."""
    def capped() -> _BatchedWorld:
        w = _many_batches()
        w.policies = [policy(maxDeletionsPerRun=300)]
        return w

    probe = capped()
    probe_requests: list[list[str]] = []
    probe.es.before_delete = probe_requests.append
    probe.run()
    assert len(probe_requests) >= 2
    target = probe_requests[1][-1]  # deleted by the second request
    other = next(n for n in sorted(probe.es.indices) if probe.es.indices[n] == OLD and n not in probe.es.deleted
                 and not n.startswith("static-"))  # left for a later run
    w = capped()
    w.es.aliases[f"{OLD.tenant}.tracardi-reports"] = [target, other]
    requests: list[list[str]] = []

    def after_first(batch: list[str]) -> None:
        requests.append(batch)
        if len(requests) == 1:
            w.es.indices[other] = LIVE  # deleted and made again, the alias on it restored with it

    w.es.before_delete = after_first
    w.run()
    assert target not in w.es.deleted
    assert target in w.es.indices
