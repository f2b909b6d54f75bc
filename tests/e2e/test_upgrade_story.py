"""The story the operator exists for, on devenv with the Tracardi simulator: create 0.8.0, seed data,
bump to 0.8.1, bump to 0.8.2.1 (Tracardi's own 0.8.2 migration is faithful to its bugs, so the
operator's repair must carry event, profile and the other partitioned data), then a minor bump to
0.8.2.2. Documents, images, Jobs and status are checked at each step; the timings are printed."""

from __future__ import annotations

import sys
import time
from typing import Any

from tests.e2e.conftest import Installations

SEED = {"profiles": 12, "events": 30, "sessions": 10}


def _timed(label: str, started: float, timings: dict[str, float]) -> None:
    timings[label] = time.monotonic() - started
    print(f"  e2e step {label}: {timings[label]:.1f}s", file=sys.stderr, flush=True)


def _alias_ids(es: Any, alias: str) -> list[str]:
    res = es.search(index=alias, query={"match_all": {}}, size=10000, _source=False)
    return [h["_id"] for h in res["hits"]["hits"]]


def test_upgrade_story(installations: Installations, es: Any) -> None:
    from devenv import seed as seeder
    from devenv.simulator.versions import version_for_tag

    timings: dict[str, float] = {}
    t = time.monotonic()
    installations.create("acme", "0.8.0")
    obj = installations.wait_settled("acme", "0.8.0")
    _timed("create 0.8.0", t, timings)
    assert obj["status"]["versions"][0] | {"installedAt": None} == {
        "version": "0.8.0", "dbVersion": "080", "tenant": "fa73a", "state": "Current", "installedAt": None}
    assert installations.jobs() == ["acme-install-080"]
    assert set(installations.images().values()) == {
        "tracardi/tracardi-api:0.8.0", "tracardi/tracardi-gui:0.8.0", "tracardi/update-worker:0.8.0"}

    report = seeder.seed(es, version_for_tag("0.8.0"), counts=seeder.SeedCounts(**SEED))
    seeded = {key: sorted(ids) for key, ids in report.ids.items()}
    assert seeded["staging/profile"]
    assert seeded["production/event"]

    t = time.monotonic()
    installations.patch_spec("acme", {"version": "0.8.1"})
    obj = installations.wait_settled("acme", "0.8.1", timeout=600)
    _timed("bump 0.8.0 -> 0.8.1", t, timings)
    assert installations.jobs() == ["acme-install-080", "acme-install-08x", "acme-migrate-080-to-08x"]
    assert [(v["version"], v["dbVersion"], v["tenant"], v["state"]) for v in obj["status"]["versions"]] == [
        ("0.8.0", "080", "fa73a", "Superseded"), ("0.8.1", "08x", "01506", "Current")]
    assert not any(n.endswith("-08x") for n in installations.images()), "side-by-side objects are gone"
    for context, prefix in (("staging", ""), ("production", "prod-")):
        for resource in ("profile", "event", "session"):
            assert sorted(_alias_ids(es, f"{prefix}01506.tracardi-{resource}")) == seeded[f"{context}/{resource}"]

    t = time.monotonic()
    installations.patch_spec("acme", {"version": "0.8.2.1"})
    obj = installations.wait_settled("acme", "0.8.2.1", timeout=600)
    _timed("bump 0.8.1 -> 0.8.2.1", t, timings)
    for context, prefix in (("staging", ""), ("production", "prod-")):
        for resource in ("profile", "event", "session"):
            ids = _alias_ids(es, f"{prefix}ffe49.tracardi-{resource}")
            assert len(ids) == len(set(ids)), f"{context} {resource}: an id appears twice"
            assert sorted(ids) == seeded[f"{context}/{resource}"], f"{context} {resource} not all readable"
    assert obj["status"]["upgrade"]["verified"], "verified counts are recorded"
    assert [v["state"] for v in obj["status"]["versions"]] == ["Superseded", "Superseded", "Current"]

    jobs_before = installations.jobs()
    t = time.monotonic()
    installations.patch_spec("acme", {"version": "0.8.2.2"})
    obj = installations.wait_settled("acme", "0.8.2.2")
    _timed("minor bump 0.8.2.1 -> 0.8.2.2", t, timings)
    assert installations.jobs() == jobs_before, "a minor bump runs no Job"
    assert set(installations.images().values()) == {
        "tracardi/tracardi-api:0.8.2.2", "tracardi/tracardi-gui:0.8.2.2", "tracardi/update-worker:0.8.2.2"}
    reasons = [r for r, _ in installations.events("acme")]
    assert {"Installed", "Migrated", "Switched", "UpgradeCompleted"} <= set(reasons)
    print("  e2e timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()), file=sys.stderr)


def test_a_skipped_version_is_crossed_one_migration_at_a_time(installations: Installations, es: Any) -> None:
    """0.8.0 → 0.8.2.1 in one bump: installed, migrated and verified through 0.8.1 on the way."""
    from devenv import seed as seeder
    from devenv.simulator.versions import version_for_tag

    installations.create("acme", "0.8.0")
    installations.wait_settled("acme", "0.8.0")
    report = seeder.seed(es, version_for_tag("0.8.0"), counts=seeder.SeedCounts(**SEED))
    seeded = {key: sorted(ids) for key, ids in report.ids.items()}
    t = time.monotonic()
    installations.patch_spec("acme", {"version": "0.8.2.1"})
    obj = installations.wait_settled("acme", "0.8.2.1", timeout=900)
    print(f"  e2e step skip 0.8.0 -> 0.8.2.1: {time.monotonic() - t:.1f}s", file=sys.stderr, flush=True)
    assert installations.jobs() == ["acme-install-080", "acme-install-0820", "acme-install-08x",
                                    "acme-migrate-080-to-08x", "acme-migrate-08x-to-0820"]
    assert [(v["version"], v["state"]) for v in obj["status"]["versions"]] == [
        ("0.8.0", "Superseded"), ("0.8.1", "Superseded"), ("0.8.2.1", "Current")]
    for context, prefix in (("staging", ""), ("production", "prod-")):
        for resource in ("profile", "event", "session"):
            assert sorted(_alias_ids(es, f"{prefix}ffe49.tracardi-{resource}")) == seeded[f"{context}/{resource}"]
