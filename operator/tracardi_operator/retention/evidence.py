"""Which (db version, tenant) pairs are live on an Elasticsearch cluster, from every piece of evidence
(pure): the installations' status records and current version, the images their Deployments run, an
upgrade's source and target. Unknown keeps, never exposes: an installation the model refuses keeps
whatever its status names, one that has not recorded its cluster counts as on every cluster, and
Deployments of no listed installation keep the versions they run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tracardi_operator import versions
from tracardi_operator.indices import VersionId
from tracardi_operator.labels import label_value
from tracardi_operator.models import TracardiInstallation


def pair_of_tag(tag: str, records: Iterable[tuple[str, str]] = ()) -> VersionId | None:
    """The (db version, tenant) an image tag runs: the tenant recorded for its db version if any (the
    API reported it), else Tracardi's default tenant for the tag. None for a tag that is no version."""
    parsed = versions.try_parse(tag).version
    db = parsed.db_version if parsed else None
    if parsed is None or db is None:
        return None
    recorded = next((tenant for record_db, tenant in records if record_db == db), None)
    tenant = recorded or parsed.default_tenant
    return VersionId(db, tenant) if tenant else None


def image_tag(image: str) -> str | None:
    """The tag of `repository[:port]/name:tag[@digest]`, None without one."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


def live_pairs(inst: TracardiInstallation, images: Iterable[str] = ()) -> set[VersionId]:
    """Pairs that serve or are about to, from every piece of evidence, any one of which is enough: the
    Current records, status.currentVersion (a status restored or edited may lack its record), the
    tags of the installation's running Deployments (`images`), and an upgrade's pairs."""
    pairs = {VersionId(r.db_version, r.tenant) for r in inst.status.versions if r.state == "Current"}
    records = [(r.db_version, r.tenant) for r in reversed(inst.status.versions)]
    tags = [inst.status.current_version or "", *(image_tag(i) or "" for i in images)]
    pairs |= {pair for pair in (pair_of_tag(tag, records) for tag in tags if tag) if pair is not None}
    up = inst.status.upgrade
    if up is not None and up.step != "Completed":
        # Until the install Job reports the new version's tenant (toTenant), the tag tells it: the
        # indices being installed must not be taken for an abandoned or superseded copy of that pair.
        for db, tenant, tag in ((up.to_db_version, up.to_tenant, up.to_version),
                                (up.from_db_version, up.from_tenant, up.from_version)):
            pair = VersionId(db, tenant) if db and tenant else pair_of_tag(tag, records) if tag else None
            if pair is not None:
                pairs.add(pair)
    return pairs


def live_pairs_unparsed(raw: Mapping[str, Any], images: Iterable[str] = ()) -> set[VersionId]:
    """Best effort for an installation the model refuses: every pair its status names that is not
    Deleted counts as live, so that a bad object can never expose another's indices to deletion."""
    status = raw.get("status") or {}
    pairs: set[VersionId] = set()
    current = status.get("currentVersion")
    for tag in [current if isinstance(current, str) else "", *(image_tag(i) or "" for i in images)]:
        pair = pair_of_tag(tag) if tag else None
        if pair is not None:
            pairs.add(pair)
    for record in status.get("versions") or []:
        if isinstance(record, Mapping) and record.get("state") != "Deleted" \
                and record.get("dbVersion") and record.get("tenant"):
            pairs.add(VersionId(str(record["dbVersion"]), str(record["tenant"])))
    upgrade = status.get("upgrade") or {}
    for db, tenant, tag in (("fromDbVersion", "fromTenant", "fromVersion"), ("toDbVersion", "toTenant", "toVersion")):
        if upgrade.get(db) and upgrade.get(tenant):
            pairs.add(VersionId(str(upgrade[db]), str(upgrade[tenant])))
        elif isinstance(upgrade.get(tag), str):
            pair = pair_of_tag(upgrade[tag])
            if pair is not None:
                pairs.add(pair)
    return pairs


def cluster_key(inst: TracardiInstallation) -> tuple[str, ...]:
    """The key the inventory cache is kept under: the namespace and the hosts as spelled (a Service
    name such as http://es:9200 resolves in the installation's namespace, so the same spelling in two
    namespaces may be two clusters). Only a cache key: whether two installations share a cluster is
    decided by the cluster's own identity (`same_cluster`)."""
    return (inst.namespace, *sorted(h.rstrip("/") for h in inst.spec.elasticsearch.hosts))


def recorded_cluster(raw: Mapping[str, Any]) -> str | None:
    """The cluster_uuid an installation recorded in its status, None while unknown."""
    value = (raw.get("status") or {}).get("elasticsearchCluster")
    return value if isinstance(value, str) and value else None


def same_cluster(mine: str, theirs: str | None) -> bool:
    """Whether another installation may be on this cluster. One that has not recorded its cluster yet
    counts as on every cluster: unknown must keep, never expose."""
    return theirs is None or theirs == mine


@dataclass(frozen=True)
class Witness:
    """What one listed installation says is live: where it is (namespace, name), the cluster it recorded
    (None: not yet), its live pairs (`live_pairs`, or `live_pairs_unparsed` when the model refused it:
    `parsed` False)."""

    where: tuple[str, str]
    recorded: str | None
    pairs: frozenset[VersionId]
    parsed: bool


@dataclass(frozen=True)
class FleetEvidence:
    """The evidence of every listed installation and Deployment, derived once from the listings and
    shared by every installation's run until they change (`fleet_evidence`)."""

    witnesses: tuple[Witness, ...]
    images: Mapping[tuple[str, str], Sequence[str]]
    """The images Deployments run, by (namespace, instance label)."""
    unclaimed: Mapping[tuple[str, str], frozenset[VersionId]]
    """The pairs Deployments run whose instance label is no listed installation's, by the same key."""


def fleet_evidence(
    installations: Iterable[Mapping[str, Any]],
    images: Mapping[tuple[str, str], Sequence[str]],
    parse: Callable[[Mapping[str, Any]], TracardiInstallation] = TracardiInstallation.model_validate,
) -> FleetEvidence:
    """Each listed installation's live pairs, with the images its Deployments run (by its namespace and
    instance label: the name, cut to a label value when it is longer, `labels.label_value`). Two names
    cut to the same label value both get that label's images: more evidence keeps more, never less.
    `parse` validates a listed installation (a caller may cache it by resourceVersion)."""
    witnesses: list[Witness] = []
    claimed: set[tuple[str, str]] = set()
    for raw in installations:
        meta = raw.get("metadata") or {}
        where = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        label = (where[0], label_value(where[1]))
        claimed.add(label)
        theirs = images.get(label, ())
        try:
            pairs, parsed = live_pairs(parse(raw), theirs), True
        except ValidationError:
            # Fail closed: whatever a refused object's status names stays live.
            pairs, parsed = live_pairs_unparsed(raw, theirs), False
        witnesses.append(Witness(where, recorded_cluster(raw), frozenset(pairs), parsed))
    unclaimed = {label: frozenset(live_pairs_unparsed({}, found))
                 for label, found in images.items() if label not in claimed}
    return FleetEvidence(tuple(witnesses), {k: tuple(v) for k, v in images.items()}, unclaimed)


def live_on(inst: TracardiInstallation, identity: str | None,
            fleet: FleetEvidence) -> tuple[set[VersionId], set[str]]:
    """The live pairs of `inst` (as this pass decided it, with the images its Deployments run) and of
    every listed installation that may share its cluster `identity` (None: unknown, so every
    installation counts); and the others (namespace/name) that recorded this cluster and serve one of
    `inst`'s live pairs. A refused object keeps whatever its status names; Deployments of no listed
    installation keep the versions they run, wherever they are."""
    mine_label = (inst.namespace, label_value(inst.name))
    mine = live_pairs(inst, fleet.images.get(mine_label, ()))
    live: set[VersionId] = set(mine)
    shared: set[str] = set()
    for witness in fleet.witnesses:
        if witness.where == (inst.namespace, inst.name):
            continue
        if identity is not None and not same_cluster(identity, witness.recorded):
            continue
        live |= witness.pairs
        if witness.parsed and witness.recorded is not None and not witness.pairs.isdisjoint(mine):
            shared.add(f"{witness.where[0]}/{witness.where[1]}")
    for label, pairs in fleet.unclaimed.items():
        if label != mine_label:  # this installation's own, counted in `mine` while it is not listed yet
            live |= pairs
    return live, shared


def cluster_live(
    inst: TracardiInstallation,
    identity: str | None,
    installations: Iterable[Mapping[str, Any]],
    images: Mapping[tuple[str, str], Sequence[str]],
    parse: Callable[[Mapping[str, Any]], TracardiInstallation] = TracardiInstallation.model_validate,
) -> tuple[set[VersionId], set[str]]:
    """`live_on` from the listed installations (raw objects) and the images their Deployments run by
    (namespace, instance label), derived for this one call (`fleet_evidence`)."""
    return live_on(inst, identity, fleet_evidence(installations, images, parse))


def images_by_instance(deployments: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(namespace, installation) → the images its Deployments run (the operator labels them)."""
    images: dict[tuple[str, str], list[str]] = {}
    for deployment in deployments:
        meta = deployment.get("metadata") or {}
        instance = (meta.get("labels") or {}).get("app.kubernetes.io/instance")
        pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
        found = [str(c.get("image")) for c in pod.get("containers") or [] if c.get("image")]
        if instance and found:
            images.setdefault((str(meta.get("namespace", "")), str(instance)), []).extend(found)
    return images
