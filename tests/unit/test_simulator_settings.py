"""Simulator settings, fault modes, tokens and the seeder's plan, without Elasticsearch or Redis."""

from __future__ import annotations

import datetime as dt

import pytest

from devenv.seed import SeedCounts, _plan
from devenv.simulator.auth import Store, TokenStore
from devenv.simulator.install import partial_install_left_out, plan_install
from devenv.simulator.mappings import mapping_for, rejected_fields
from devenv.simulator.naming import Namespace
from devenv.simulator.settings import Faults, Settings, SettingsError, elastic_hosts, parse_faults
from devenv.simulator.versions import V08X, V080, V0820, Version


def test_faults_parse() -> None:
    assert parse_faults("") == Faults()
    f = parse_faults("install-partial, migration-skips-partitioned,task-fails,http-500:0.3,slow:2s")
    assert f == Faults(install_partial=True, migration_skips_partitioned=True, task_fails=True, http_500=0.3,
                       slow_seconds=2.0)
    assert parse_faults("slow:500ms").slow_seconds == 0.5
    assert parse_faults("wrong-quarter").wrong_quarter


@pytest.mark.parametrize("bad", ["explode", "http-500:x", "http-500:1.5", "slow:fast"])
def test_bad_faults_are_refused(bad: str) -> None:
    with pytest.raises(SettingsError):
        parse_faults(bad)


def test_elastic_hosts() -> None:
    assert elastic_hosts({"ELASTIC_HOST": "http://127.0.0.1:9201"}) == ["http://127.0.0.1:9201"]
    assert elastic_hosts({"ELASTIC_HOST": "es1:9200, es2", "ELASTIC_SCHEME": "https"}) == [
        "https://es1:9200", "https://es2:9200"]


def test_settings_from_env() -> None:
    s = Settings.from_env(V08X, {"PRODUCTION": "yes", "EXPOSE_GUI_API": "no", "TENANT_NAME": "abc"})
    assert s.production
    assert not s.expose_gui_api
    assert s.namespace == Namespace("08x", "abc")
    assert s.installation_token == "tracardi"
    assert s.migration_mode == "faithful"
    assert Settings.from_env(V080, {"INSTANCE_PREFIX": "old"}).namespace.tenant == "old"
    assert Settings.from_env(V0820, {}).namespace.tenant == "ffe49"
    assert Settings.from_env(V0820, {"TRACARDI_SIM_MIGRATION": "fixed"}).migration_mode == "fixed"
    with pytest.raises(SettingsError):
        Settings.from_env(V0820, {"TRACARDI_SIM_MIGRATION": "broken"})


class FakeRedis(Store):
    """Keys with expiry times on a clock of the test's."""

    def __init__(self, now: list[float]) -> None:
        self.now = now
        self.data: dict[str, tuple[str, float]] = {}

    def get(self, key: str) -> str | None:
        value = self.data.get(key)
        return value[0] if value and value[1] > self.now[0] else None

    def set(self, key: str, value: str, ttl_ms: int) -> None:
        self.data[key] = (value, self.now[0] + ttl_ms / 1000)

    def expire(self, key: str, ttl_ms: int) -> None:
        if self.get(key) is not None:
            self.set(key, self.data[key][0], ttl_ms)


def test_tokens_same_user_same_token_ttl_renewed_on_use() -> None:
    now = [0.0]
    redis = FakeRedis(now)
    store = TokenStore("08x.t", 10, lambda: redis)
    t = store.issue("a@b.co", ["admin"])
    assert len(t) == 40
    assert int(t, 16) >= 0
    assert store.issue("a@b.co", ["admin"]) == t
    now[0] = 8
    assert store.check(t) is not None  # renewed until 18
    now[0] = 17
    assert store.check(t) is not None
    session = store.check(t)
    assert session is not None
    assert (session.username, session.roles) == ("a@b.co", ["admin"])
    now[0] = 40
    assert store.check(t) is None
    assert store.issue("a@b.co", ["admin"]) != t
    assert store.check("0" * 40) is None
    other = TokenStore("0820.t", 10, lambda: redis)  # another version on the same Redis
    assert other.check(store.issue("a@b.co", ["admin"])) is None


def test_install_plan_covers_the_index_set_and_partial_fault_leaves_out() -> None:
    day = dt.date(2024, 3, 15)
    full = plan_install(Settings.from_env(V0820, {}), day)
    assert sum(len(p.indices) for p in full) == 76
    assert sum(len(p.templates) for p in full) == 20
    partial = plan_install(Settings.from_env(V0820, {"TRACARDI_SIM_FAULTS": "install-partial"}), day)
    assert sum(len(p.indices) for p in partial) == 76 - len(partial_install_left_out(V0820))


def test_mappings_carry_meta_and_are_strict_where_tracardi_is() -> None:
    ns = Namespace("0820", "ffe49")
    m = mapping_for(ns, V0820.resource("event"))
    assert m["_meta"] == {"version": "0820", "name": "ffe49"}
    assert m["dynamic"] == "strict"
    assert mapping_for(ns, V0820.resource("flow"))["dynamic"] is True
    for version in (V080, V08X, V0820):
        vns = Namespace(version.db_version, "t")
        for key in ("profile", "event", "session", "entity", "log", "user-logs", "console-log"):
            assert mapping_for(vns, version.resource(key))["dynamic"] == "strict", (version.version, key)


@pytest.mark.parametrize(("version", "key", "doc", "rejected"), [
    (V080, "profile", {"id": "p", "traits": {"private": {"a": 1}, "public": {}}}, []),
    (V080, "profile", {"id": "p", "traits": {"plan": "pro"}}, ["traits.plan"]),
    (V08X, "log", {"id": "x", "date": "2024-01-01", "message": "m"}, ["id"]),
    (V0820, "user-logs", {"id": "x", "email": "a@b.co"}, ["id"]),
    (V08X, "console-log", {"id": "x", "flow_id": "f"}, ["id"]),
    (V08X, "item", {"id": "i", "name": "Item", "data": {"product": {"name": "Item"}}}, ["name"]),
    (V0820, "profile", {"id": "p", "data": {"pii": {"name": None, "display_name": "A"}}}, ["data.pii.name"]),
    (V0820, "event", {"id": "e", "data": {"contact": {"email": {"main": "a"}}}, "properties": {"any": 1}}, []),
    (V0820, "entity", {"id": "n", "timestamp": "2024-01-01"}, ["timestamp"]),
    (V0820, "flow", {"id": "f", "anything": {"goes": 1}}, []),
])
def test_strict_mappings_reject_shapes_tracardi_never_stores(
    version: Version, key: str, doc: dict[str, object], rejected: list[str]
) -> None:
    mapping = mapping_for(Namespace(version.db_version, "t"), version.resource(key))
    assert rejected_fields(mapping, doc) == rejected


@pytest.mark.parametrize("version", [V080, V08X, V0820])
def test_every_seeded_document_fits_its_mapping(version: Version) -> None:
    ns = Namespace(version.db_version, "t")
    for _, key, _, doc_id, doc in _plan(version, ns, SeedCounts(), 7, dt.date(2024, 3, 15)):
        assert doc.get("id", doc_id) == doc_id
        assert rejected_fields(mapping_for(ns, version.resource(key)), doc) == [], (key, doc)


def test_seed_plan_is_deterministic_and_shaped_per_version() -> None:
    day = dt.date(2024, 3, 15)
    ns = Namespace("080", "fa73a")
    a = list(_plan(V080, ns, SeedCounts(), 7, day))
    b = list(_plan(V080, ns, SeedCounts(), 7, day))
    assert [i for *_, i, _ in a] == [i for *_, i, _ in b]
    profiles = [d for _, key, _, _, d in a if key == "profile"]
    assert all("pii" in p and "data" not in p for p in profiles)
    assert all(set(p["traits"]) == {"private", "public"} for p in profiles)
    assert not any("id" in d for _, key, _, _, d in a if key in ("log", "user-logs", "console-log"))
    months = {ts.month for _, key, ts, _, _ in a if key == "event" and ts}
    assert len(months) == 3
    p81 = [d for _, key, _, _, d in _plan(V08X, Namespace("08x", "01506"), SeedCounts(), 7, day)
           if key == "profile"]
    assert any(isinstance(p["data"].get("contact", {}).get("email"), str) for p in p81)
