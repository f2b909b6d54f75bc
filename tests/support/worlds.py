"""Seeded whole worlds for the standing adversarial test of retention.

A world is one or two Elasticsearch clusters (`FakeElastic`, told apart by cluster_uuid) and 1 to 5
installations on them, with host spellings that differ for one cluster and coincide for two, statuses
as the operator writes them and as people or restores leave them (abandoned upgrades, partial
deletions, unverified migrations, wiped or forged records), Deployments whose images are evidence of
what runs, random policies, and one change injected while the operator waits (during a snapshot, or
just before a delete request).

`World.play` runs the REAL retention path for every installation, twice: the pass of
`reconcile.Runtime._retention` (identity from the shared inventory cache, the live set from
`retention.evidence.cluster_live`, `retention.execution.run` with its effects, the status written back),
against the world as the fakes hold it. Every delete request is checked, at the moment it is sent, against a
ground truth written here from the world itself, not from `retention`: no name of a live pair
of any installation actually on that cluster (Current record, currentVersion, a running image, an
upgrade in progress), of a kept rollback target, of another tenant, foreign, too young, or the source
of an unverified migration goes; nothing goes when retention is disabled or no single policy that is
not a dry run governs at that moment.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import ValidationError

from tests.factories import installation_body, installation_spec, merge_patch
from tests.support.fake_elastic import FakeElastic
from tracardi_operator.elastic import ElasticAdapter
from tracardi_operator.indices import VersionId
from tracardi_operator.models import TracardiInstallation, TracardiRetentionPolicy
from tracardi_operator.retention import execution
from tracardi_operator.retention.evidence import cluster_key, cluster_live, images_by_instance
from tracardi_operator.retention.execution import Fresh
from tracardi_operator.retention.inventory import InventoryCache
from tracardi_operator.retention.status import after_run, mark_deleting

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
TAGS = ("0.8.0", "0.8.1", "0.8.2.1")
PAIR_OF_TAG = {"0.8.0": VersionId("080", "fa73a"), "0.8.1": VersionId("08x", "01506"),
               "0.8.2.1": VersionId("0820", "ffe49")}
OTHER_TENANTS = (VersionId("080", "bad01"), VersionId("0820", "zz999"))
HOMES = ("shop", "lab")  # the namespace each cluster's Service lives in
NAMESPACES = ("shop", "lab", "team")
RECLAIMABLE = ("Superseded", "Deleting", "Abandoned")
AGES = (dt.timedelta(hours=1), dt.timedelta(days=3), dt.timedelta(days=8), dt.timedelta(days=30))
CHANGES = ("dryRun", "policyDeleted", "tie", "disabled", "keepRaised", "newLive", "newInstallation")
_NAME = re.compile(r"^(?:prod-|static-)?(?:template\.)?([0-9a-z]+)\.([0-9a-z]+)\.tracardi-[a-z0-9-]+$")


def _iso(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Cluster:
    uuid: str | None
    home: str
    es: FakeElastic


@dataclass
class Member:
    """An installation: the object as the API server holds it, and what it actually is."""

    raw: dict[str, Any]
    cluster: int  # index into World.clusters: where its hosts really lead
    images: list[str] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return str(self.raw["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.raw["metadata"]["name"])

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.raw.setdefault("status", {})
        return status


@dataclass
class Injection:
    moment: str  # "snapshot" or "delete"
    at_request: int  # for "delete": the number of the request (1 = the first of the world)
    change: str
    fired: str | None = None  # what it did, once it did


@dataclass
class World:
    seed: int
    clusters: list[Cluster]
    members: list[Member]
    policies: list[dict[str, Any]]
    ns_labels: dict[str, dict[str, str]]
    orphans: list[tuple[int, str, str, str]]  # (cluster, namespace, instance, image): no installation listed
    injection: Injection | None
    cache: InventoryCache = field(default_factory=InventoryCache)
    checked: int = 0
    requests: int = 0
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    _running: Member | None = None
    _start_history: list[dict[str, Any]] = field(default_factory=list)
    _begun: set[VersionId] = field(default_factory=set)  # pairs this pass has already deleted names of

    # -- the world as the API server lists it ------------------------------------------------------
    def deployments(self) -> list[dict[str, Any]]:
        def deployment(namespace: str, instance: str, image: str) -> dict[str, Any]:
            return {"metadata": {"namespace": namespace, "labels": {"app.kubernetes.io/instance": instance}},
                    "spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}}}

        found = [deployment(m.namespace, m.name, image) for m in self.members for image in m.images]
        return found + [deployment(ns, instance, image) for _, ns, instance, image in self.orphans]

    def member(self, namespace: str, name: str) -> Member | None:
        return next((m for m in self.members if (m.namespace, m.name) == (namespace, name)), None)

    # -- the pass of reconcile.Runtime._retention, against the fakes ---------------------------------
    def play(self, rounds: int = 2) -> None:
        rng = random.Random(self.seed * 7919 + 1)
        for es_index, cluster in enumerate(self.clusters):
            cluster.es.before_delete = lambda names, i=es_index: self._on_delete(i, names)
            cluster.es.during_snapshot = self._on_snapshot
        for _ in range(rounds):
            order = list(self.members)
            rng.shuffle(order)
            for member in order:
                self._pass(member)

    def _pass(self, member: Member) -> None:
        try:
            inst = TracardiInstallation.model_validate(member.raw)
        except ValidationError:
            return  # the operator does not act on an object it refuses
        # FakeElastic answers the part of ElasticAdapter that a retention run uses.
        adapter = cast(ElasticAdapter, self.clusters[member.cluster].es)
        self._running = member
        self._start_history = copy.deepcopy(member.status.get("versions") or [])
        written = copy.deepcopy(member.status)
        self._begun = set()
        key = cluster_key(inst)
        identity = self.cache.get(key, adapter).raw.cluster_uuid

        shared: list[str] = []  # as last read, like the pass's inputs

        def inputs() -> tuple[list[TracardiRetentionPolicy], set[VersionId]]:
            policies = []
            for raw in self.policies:
                try:
                    policies.append(TracardiRetentionPolicy.model_validate(raw))
                except ValidationError:
                    continue
            images = images_by_instance(self.deployments())
            live, found = cluster_live(inst, identity, [m.raw for m in self.members], images)
            shared[:] = sorted(found)
            return policies, live

        def recheck() -> Fresh:
            fresh_policies, fresh_live = inputs()
            current = None
            found = self.member(member.namespace, member.name)
            if found is not None:
                try:
                    current = TracardiInstallation.model_validate(found.raw)
                except ValidationError:
                    current = None
            return Fresh(fresh_policies, fresh_live, current, dict(self.ns_labels.get(member.namespace, {})))

        def record_deleting(names: Mapping[VersionId, Sequence[str]]) -> None:
            member.status["versions"] = mark_deleting(member.status.get("versions") or [], names)

        policies, live = inputs()
        try:
            effects = execution.Callbacks(publish=lambda plan: None, recheck=recheck, record_deleting=record_deleting)
            outcome = execution.run(inst, adapter, self.cache, policies,
                                    dict(self.ns_labels.get(member.namespace, {})), live, NOW, effects)
        except Exception as e:  # the operator logs and tries again next cycle
            self.errors.append(f"{member.namespace}/{member.name}: {type(e).__name__}: {e}")
            return
        finally:
            self._running = None
        # The status as reconcile writes it back after the run: after_run's patch of the status the pass read,
        # merged as the apiserver merges it.
        change = after_run(inst.status, written, outcome, identity=identity, shared=shared, now=NOW,
                           generation=inst.metadata.generation)
        merge_patch(member.status, change.patch)

    # -- the moments the operator waits ---------------------------------------------------------------
    def _on_snapshot(self) -> None:
        if self.injection is not None and self.injection.moment == "snapshot" and self.injection.fired is None:
            self._inject(None)

    def _on_delete(self, cluster: int, names: list[str]) -> None:
        self.requests += 1
        self._check(cluster, names)
        self._begun |= {pair for pair in map(_parse, names) if pair is not None}
        inj = self.injection
        if inj is not None and inj.moment == "delete" and inj.fired is None and self.requests >= inj.at_request:
            self._inject(names)

    def _inject(self, batch: list[str] | None) -> None:
        assert self.injection is not None
        running = self._running
        change = self.injection.change
        governing = self._governing(running) if running is not None else None
        targets = [governing] if governing is not None else self.policies
        if change == "dryRun":
            for p in targets:
                p["spec"]["dryRun"] = True
        elif change == "policyDeleted":
            for p in targets:
                self.policies.remove(p)
        elif change == "keepRaised":
            for p in targets:
                p["spec"]["keepSupersededVersions"] = 3
        elif change == "tie":
            top = max((int(p["spec"].get("priority", 0)) for p in self.policies), default=0)
            self.policies.append({"metadata": {"name": "zz-tie"}, "spec": {"priority": top}})
        elif change == "disabled" and running is not None:
            running.raw["spec"]["retention"] = {"enabled": False}
            running.raw["metadata"]["generation"] = int(running.raw["metadata"].get("generation") or 1) + 1
        elif change in ("newLive", "newInstallation") and running is not None:
            pair = self._pair_to_revive(running, batch)
            if pair is None:
                self.injection.fired = f"{change}: no pair to revive"
                return
            tag = next(t for t, p in PAIR_OF_TAG.items() if p == pair)
            other = next((m for m in self.members if m is not running and m.cluster == running.cluster), None)
            if change == "newLive" and other is not None:
                other.status["versions"] = [*(other.status.get("versions") or []),
                                            {"version": tag, "dbVersion": pair.db, "tenant": pair.tenant,
                                             "state": "Current"}]
                other.status["currentVersion"] = tag
                other.images = [f"tracardi/tracardi-api:{tag}"]
                self.injection.fired = f"newLive: {other.namespace}/{other.name} now Current on {pair}"
                return
            home = self.clusters[running.cluster].home
            newcomer = Member(raw=_installation(f"newcomer{len(self.members)}", home, [f"http://es.{home}:9200"],
                                                tag, {}, True), cluster=running.cluster,
                              images=[f"tracardi/tracardi-api:{tag}"])
            newcomer.status.update({"currentVersion": tag, "versions": [
                {"version": tag, "dbVersion": pair.db, "tenant": pair.tenant, "state": "Current"}]})
            self.members.append(newcomer)
            self.injection.fired = f"newInstallation: {newcomer.namespace}/{newcomer.name} Current on {pair}"
            return
        self.injection.fired = change

    def _pair_to_revive(self, running: Member, batch: list[str] | None) -> VersionId | None:
        """The pair of the batch under way, else one the running installation may reclaim."""
        for name in batch or []:
            parsed = _parse(name)
            if parsed is not None and parsed in PAIR_OF_TAG.values():
                return parsed
        for record in running.status.get("versions") or []:
            pair = VersionId(str(record.get("dbVersion")), str(record.get("tenant")))
            if record.get("state") in RECLAIMABLE and pair in PAIR_OF_TAG.values():
                return pair
        return None

    # -- the ground truth ------------------------------------------------------------------------------
    def _governing(self, member: Member) -> dict[str, Any] | None:
        """The one policy that governs `member` now, None for none or a tie."""
        ns_labels = self.ns_labels.get(member.namespace, {})
        labels = member.raw["metadata"].get("labels") or {}
        matching = [p for p in self.policies if _selects(p["spec"].get("namespaceSelector"), ns_labels)
                    and _selects(p["spec"].get("selector"), labels)]
        if not matching:
            return None
        top = max(int(p["spec"].get("priority", 0)) for p in matching)
        winners = [p for p in matching if int(p["spec"].get("priority", 0)) == top]
        return winners[0] if len(winners) == 1 else None

    def live_on(self, cluster: int) -> dict[VersionId, str]:
        """Every pair live on `cluster` now, with who makes it live."""
        live: dict[VersionId, str] = {}
        for m in self.members:
            if m.cluster != cluster:
                continue
            who = f"{m.namespace}/{m.name}"
            status = m.status
            for record in status.get("versions") or []:
                if record.get("state") == "Current":
                    live.setdefault(VersionId(record["dbVersion"], record["tenant"]), f"{who} Current record")
            if status.get("currentVersion") in PAIR_OF_TAG:
                live.setdefault(PAIR_OF_TAG[status["currentVersion"]], f"{who} currentVersion")
            for image in m.images:
                tag = image.split("@")[0].rsplit(":", 1)[-1]
                if tag in PAIR_OF_TAG:
                    live.setdefault(PAIR_OF_TAG[tag], f"{who} runs {image}")
            up = status.get("upgrade")
            if up and up.get("step") != "Completed":
                for tag in (up.get("fromVersion"), up.get("toVersion")):
                    if tag in PAIR_OF_TAG:
                        live.setdefault(PAIR_OF_TAG[tag], f"{who} upgrade {up.get('step')}")
        for where, ns, instance, image in self.orphans:
            tag = image.rsplit(":", 1)[-1]
            if where == cluster and tag in PAIR_OF_TAG:
                live.setdefault(PAIR_OF_TAG[tag], f"{ns}/{instance} (being deleted) runs {image}")
        return live

    def _check(self, cluster: int, names: list[str]) -> None:
        running = self._running
        es = self.clusters[cluster].es
        for name in names:
            self.checked += 1
            rule = self._forbidden(cluster, running, name, es)
            if rule is not None:
                who = f"{running.namespace}/{running.name}" if running else "?"
                self.violations.append(f"{who} deleted {name} on cluster {cluster}: {rule}")

    def _forbidden(self, cluster: int, running: Member | None, name: str, es: FakeElastic) -> str | None:
        if running is None or running.cluster != cluster:
            return "a delete outside the pass of an installation on this cluster"
        if self.clusters[cluster].uuid is None:
            return "the cluster does not say who it is"
        spec = running.raw["spec"]
        if not (spec.get("retention") or {}).get("enabled", True):
            return "retention is disabled"
        policy = self._governing(running)
        if policy is None:
            return "no single policy governs (none, or a tie)"
        if policy["spec"].get("dryRun"):
            return f"policy {policy['metadata']['name']} is a dry run"
        parsed = _parse(name)
        meta = es.templates.get(name) if ".tracardi-" in name and "template." in name else es.indices.get(name)
        if parsed is None or meta is None or meta != parsed:
            return f"foreign (name says {parsed}, _meta says {meta})"
        if parsed not in PAIR_OF_TAG.values():
            return f"another tenant's ({parsed})"
        live = self.live_on(cluster)
        if parsed in live:
            return f"live pair {parsed}: {live[parsed]}"
        history = self._start_history
        entries = [(i, r) for i, r in enumerate(history) if (r.get("dbVersion"), r.get("tenant")) == (parsed.db,
                                                                                                        parsed.tenant)]
        states = {r.get("state") for _, r in entries}
        if not states & set(RECLAIMABLE) or "Current" in states:
            return f"{parsed} is not a reclaimable version of this installation (states {sorted(map(str, states))})"
        keep = int(policy["spec"].get("keepSupersededVersions", 1))
        newest_first: list[VersionId] = []
        for record in reversed(history):
            pair = VersionId(str(record.get("dbVersion")), str(record.get("tenant")))
            if pair not in newest_first:
                newest_first.append(pair)
        # A version whose deletion has begun is no rollback target any more (a policy that raises its
        # keep mid-run cannot make a half-deleted version whole again).
        targets = [p for p in newest_first
                   if p not in live and p not in self._begun and self._served(history, p)][:max(0, keep)]
        if parsed in targets:
            return f"{parsed} is a kept rollback target (keep {keep}: {', '.join(map(str, targets))})"
        newest = entries[-1][1]
        min_age = _duration(str(policy["spec"].get("minAgeAfterSuperseded", "168h")))
        at = newest.get("supersededAt")
        if at is None or dt.datetime.fromisoformat(at.replace("Z", "+00:00")) + min_age > NOW:
            return f"{parsed} is too young (superseded {at}, min age {min_age})"
        tags = {str(r.get("version")) for _, r in entries} | {parsed.db}
        unverified = [r for r in history if r.get("migratedFrom") in tags and r.get("migrationVerified") is not True]
        if unverified:
            return f"{parsed} is the source of the unverified migration to {unverified[0].get('version')}"
        return None

    @staticmethod
    def _served(history: list[dict[str, Any]], pair: VersionId) -> bool:
        states = {r.get("state") for r in history if (r.get("dbVersion"), r.get("tenant")) == (pair.db, pair.tenant)}
        return "Superseded" in states and "Current" not in states

    # -- for people ---------------------------------------------------------------------------------------
    def describe(self) -> str:
        lines = [f"world seed {self.seed}"]
        for i, c in enumerate(self.clusters):
            lines.append(f"  cluster {i}: uuid {c.uuid}, Service es in namespace {c.home}, "
                         f"{len(c.es.indices)} indices, {len(c.es.templates)} templates left")
        for m in self.members:
            st = m.status
            versions = ", ".join(
                f"{r.get('version')}={r.get('state')}"
                + (f"(at {r.get('supersededAt')})" if r.get("supersededAt") else "")
                + (f"(from {r.get('migratedFrom')} verified={r.get('migrationVerified')})"
                   if r.get("migratedFrom") else "")
                + (f"({len(r.get('deletedNames') or [])} deleted)" if r.get("deletedNames") else "")
                for r in st.get("versions") or [])
            up = st.get("upgrade")
            lines.append(
                f"  {m.namespace}/{m.name} on cluster {m.cluster}: hosts {m.raw['spec']['elasticsearch']['hosts']}, "
                f"recorded {st.get('elasticsearchCluster')}, retention {m.raw['spec'].get('retention')}, "
                f"labels {m.raw['metadata'].get('labels')}, currentVersion {st.get('currentVersion')}, "
                f"versions [{versions}], images {m.images}"
                + (f", upgrade {up.get('fromVersion')}->{up.get('toVersion')} {up.get('step')} "
                   f"(tenant {up.get('toTenant')})" if up else ""))
        for where, ns, instance, image in self.orphans:
            lines.append(f"  Deployment {ns}/{instance} of no listed installation on cluster {where}: {image}")
        for p in self.policies:
            lines.append(f"  policy {p['metadata']['name']}: {p['spec']}")
        lines.append(f"  namespace labels {self.ns_labels}")
        if self.injection is not None:
            inj = self.injection
            lines.append(f"  injected {inj.change} at {inj.moment}"
                         + (f" #{inj.at_request}" if inj.moment == "delete" else "") + f": fired {inj.fired}")
        lines.append(f"  {self.requests} delete requests, {self.checked} names checked")
        lines += [f"  VIOLATION {v}" for v in self.violations]
        lines += [f"  error {e}" for e in self.errors]
        return "\n".join(lines)


def _parse(name: str) -> VersionId | None:
    match = _NAME.match(name)
    return VersionId(match.group(1), match.group(2)) if match else None


def _duration(text: str) -> dt.timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return dt.timedelta(seconds=int(text[:-1]) * units[text[-1]])


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if not selector:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for req in selector.get("matchExpressions") or []:
        key, op, values = req["key"], req["operator"], req.get("values") or []
        ok = {"In": key in labels and labels[key] in values,
              "NotIn": key not in labels or labels[key] not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def _installation(name: str, namespace: str, hosts: list[str], version: str, labels: dict[str, str],
                  enabled: bool) -> dict[str, Any]:
    spec = installation_spec(version, hosts=hosts, retention={"enabled": enabled})
    return installation_body(spec, name=name, status={}, namespace=namespace, generation=1, labels=labels)


# ---------------------------------------------------------------------------------------------------
# Generation


def _hosts(rng: random.Random, home: str, namespace: str) -> list[str]:
    spellings = [[f"http://es.{home}.svc.cluster.local:9200/"], [f"http://ES.{home}.svc.cluster.local:9200"],
                 [f"http://es-0.es.{home}:9200", f"http://es-1.es.{home}:9200"], [f"http://es.{home}:9200"]]
    if namespace == home:
        spellings += [["http://es:9200"], ["http://es:9200/"]]
    return rng.choice(spellings)


def _record(tag: str, state: str, rng: random.Random, **extra: Any) -> dict[str, Any]:
    pair = PAIR_OF_TAG[tag]
    record: dict[str, Any] = {"version": tag, "dbVersion": pair.db, "tenant": pair.tenant, "state": state}
    if state != "Current" and (state != "Abandoned" or rng.random() < 0.6) and rng.random() < 0.9:
        record["supersededAt"] = _iso(NOW - rng.choice(AGES))
    record.update(extra)
    return record


def _history(rng: random.Random, current: str) -> list[dict[str, Any]]:
    position = TAGS.index(current)
    history = []
    for tag in TAGS[:position]:
        if rng.random() < 0.75:
            state = rng.choices(["Superseded", "Abandoned", "Deleting", "Deleted"], [6, 1.5, 1, 1.5])[0]
            history.append(_record(tag, state, rng))
    if rng.random() < 0.15 and position < len(TAGS) - 1:  # rolled back from a newer version
        history.append(_record(TAGS[position + 1], "Superseded", rng))
    current_record = _record(current, "Current", rng)
    if history and rng.random() < 0.7:
        current_record["migratedFrom"] = history[-1]["version"]
        verified = rng.choice([True, True, False, None])
        if verified is not None:
            current_record["migrationVerified"] = verified
    history.append(current_record)
    for tag in TAGS[position + 1:]:
        if rng.random() < 0.2:  # an upgrade attempt that never served
            history.append(_record(tag, "Abandoned", rng))
    return history


def _policy(rng: random.Random, index: int) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "priority": rng.choice([0, 0, 1, 2]), "keepSupersededVersions": rng.randint(0, 3),
        "minAgeAfterSuperseded": rng.choice(["0s", "0s", "168h"]), "dryRun": rng.random() < 0.15,
    }
    if rng.random() < 0.4:
        spec["maxDeletionsPerRun"] = rng.randint(1, 40)
    if rng.random() < 0.3:
        spec["snapshot"] = {"repository": "backups"}
    if rng.random() < 0.25:
        spec["namespaceSelector"] = {"matchLabels": {"tracardi.com/retention": "standard"}}
    spec["selector"] = rng.choice([
        {}, {}, {"matchLabels": {"tier": "prod"}},
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod", "dev"]}]},
        {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]},
    ])
    return {"apiVersion": "tracardi.com/v1alpha1", "kind": "TracardiRetentionPolicy",
            "metadata": {"name": f"p{index}"}, "spec": spec}


def generate(seed: int) -> World:
    rng = random.Random(seed)
    n_clusters = rng.choice([1, 2])
    clusters = [Cluster(uuid=f"uuid-{'AB'[i]}", home=HOMES[i], es=FakeElastic(cluster_uuid=f"uuid-{'AB'[i]}"))
                for i in range(n_clusters)]
    if rng.random() < 0.05:
        clusters[-1].uuid = clusters[-1].es.cluster_uuid = None
    members: list[Member] = []
    for i in range(rng.randint(1, 5)):
        where = rng.randrange(n_clusters)
        namespace = rng.choice(NAMESPACES)
        current = rng.choice(TAGS)
        labels = rng.choice([{}, {"tier": "prod"}, {"tier": "dev"}])
        raw = _installation(f"inst{i}", namespace, _hosts(rng, clusters[where].home, namespace), current, labels,
                            rng.random() < 0.9)
        member = Member(raw=raw, cluster=where)
        status = member.status
        status["versions"] = _history(rng, current)
        status["currentVersion"] = current
        if rng.random() < 0.7 and clusters[where].uuid is not None:
            status["elasticsearchCluster"] = clusters[where].uuid
        member.images = [f"{rng.choice(['tracardi/tracardi-api', 'registry:5000/tracardi/tracardi-api'])}:{current}"]
        if rng.random() < 0.15:  # an old ReplicaSet still rolling
            member.images.append(f"tracardi/tracardi-api:{rng.choice(TAGS)}")
        if rng.random() < 0.2:
            target = rng.choice([t for t in TAGS if t != current])
            step = rng.choice(["Resolving", "Installing", "Migrating", "Verifying", "Switching", "Failed",
                               "Completed"])
            up: dict[str, Any] = {"kind": "Migrate", "fromVersion": current, "toVersion": target,
                                  "fromDbVersion": PAIR_OF_TAG[current].db, "fromTenant": PAIR_OF_TAG[current].tenant,
                                  "toDbVersion": PAIR_OF_TAG[target].db, "step": step}
            if step not in ("Resolving", "Installing") or rng.random() < 0.5:
                up["toTenant"] = PAIR_OF_TAG[target].tenant
            status["upgrade"] = up
            if rng.random() < 0.5 and not any(r["version"] == target for r in status["versions"]):
                status["versions"].append(_record(target, "Abandoned", rng))  # the earlier attempt
        members.append(member)
    # Forged, wiped and restored statuses.
    for member in members:
        status, roll = member.status, rng.random()
        if roll < 0.07:
            status["versions"] = []
        elif roll < 0.14:
            for record in status["versions"]:
                if record["state"] == "Current":
                    record.update(state="Superseded", supersededAt=_iso(NOW - dt.timedelta(days=30)))
        elif roll < 0.24:
            others = [m for m in members if m is not member and m.cluster == member.cluster]
            if others:
                tag = str(rng.choice(others).raw["spec"]["version"])
                status["versions"].insert(0, {**_record(tag, "Superseded", rng),
                                              "supersededAt": _iso(NOW - dt.timedelta(days=60))})
        elif roll < 0.28:
            status.pop("currentVersion", None)
        if rng.random() < 0.05:
            member.raw["spec"]["elasticsearch"]["hosts"] = ["es:9200"]  # refused by the model: fail closed
    orphans = []
    if rng.random() < 0.1:
        orphans.append((rng.randrange(n_clusters), rng.choice(NAMESPACES), "leaving",
                        f"tracardi/tracardi-api:{rng.choice(TAGS)}"))
    # The clusters' contents: every version any installation on it knows, minus what was deleted.
    for where, cluster in enumerate(clusters):
        on_it = [m for m in members if m.cluster == where]
        pairs = {PAIR_OF_TAG[str(r["version"])] for m in on_it for r in m.status.get("versions") or []
                 if r["state"] != "Deleted" or rng.random() < 0.3}
        pairs |= {PAIR_OF_TAG[str(m.raw["spec"]["version"])] for m in on_it}
        pairs |= {PAIR_OF_TAG[o[3].rsplit(":", 1)[-1]] for o in orphans if o[0] == where}
        for pair in sorted(pairs):
            cluster.es.install(pair)
        for other in OTHER_TENANTS:
            if rng.random() < 0.5:
                cluster.es.install(other)
        cluster.es.indices["logs-2026"] = None
        cluster.es.indices["080.fa73a.tracardi-extra"] = None  # parses, no _meta
        cluster.es.indices["08x.01506.tracardi-custom"] = VersionId("0820", "ffe49")  # _meta disagrees
        cluster.es.templates["template.080.fa73a.tracardi-audit"] = VersionId("08x", "01506")
        for m in on_it:
            for record in m.status.get("versions") or []:
                if record["state"] == "Deleting":
                    names = sorted(cluster.es.names_of(PAIR_OF_TAG[str(record["version"])]))
                    gone = rng.sample(names, rng.randint(0, len(names))) if names else []
                    record["deletedNames"] = sorted(gone)
                    for name in gone:
                        cluster.es.indices.pop(name, None)
                        cluster.es.templates.pop(name, None)
    policies = [_policy(rng, i) for i in range(rng.choices([0, 1, 2, 3], [1, 5, 3, 1])[0])]
    ns_labels = {ns: rng.choice([{}, {"tracardi.com/retention": "standard"}]) for ns in NAMESPACES}
    injection = None
    if rng.random() < 0.6:
        injection = Injection(moment=rng.choice(["snapshot", "delete", "delete"]), at_request=rng.randint(1, 3),
                              change=rng.choice(CHANGES))
    return World(seed=seed, clusters=clusters, members=members, policies=policies, ns_labels=ns_labels,
                 orphans=orphans, injection=injection)


def run_world(seed: int) -> World:
    world = generate(seed)
    world.play()
    return world
