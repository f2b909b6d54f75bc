"""The Elasticsearch index inventory, parsed and classified (pure: plain data in, records out).

What lives here: the name grammar of Tracardi indices, index templates and aliases
(docs/tracardi.md §2), and `parse_inventory`, which turns the raw answers of `_cat/indices`,
`_alias`, `_index_template` and `_mapping` (`_meta` only) into typed records. Every index and
template is either owned by a (db version, tenant) pair or FOREIGN with a reason. An index counts as
owned only when its mapping's `_meta` confirms the pair read from its name: a name alone is never
enough to make an index deletable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Context(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"
    STATIC = "static"


class ForeignReason(StrEnum):
    """Why an index or template is not treated as Tracardi's (and is therefore never touched)."""

    SYSTEM_INDEX = "SystemIndex"
    UNPARSEABLE_NAME = "UnparseableName"
    META_MISSING = "MetaMissing"
    META_DISAGREES = "MetaDisagrees"
    PATTERNS_DISAGREE = "PatternsDisagree"


@dataclass(frozen=True, order=True)
class VersionId:
    """A Tracardi version as the data knows it: (database version, tenant). Never the image tag."""

    db: str
    tenant: str

    def __str__(self) -> str:
        return f"{self.db}.{self.tenant}"


@dataclass(frozen=True)
class IndexName:
    """What an index name says about itself; not yet confirmed by `_meta`."""

    context: Context
    version: VersionId
    resource: str
    partition: str | None


@dataclass(frozen=True)
class AliasName:
    """An 0.8.x alias: `[prod-|static-]<tenant>.tracardi-<resource>` (no db version in it)."""

    context: Context
    tenant: str
    resource: str


@dataclass(frozen=True)
class IndexRecord:
    name: str
    parsed: IndexName | None
    foreign_reason: ForeignReason | None
    primaries: int
    replicas: int
    status: str | None
    """`open` or `close` (the cluster state's word), None when Elasticsearch did not say."""

    @property
    def owner(self) -> VersionId | None:
        """The confirmed (db, tenant) pair; None for a foreign index."""
        if self.foreign_reason is not None or self.parsed is None:
            return None
        return self.parsed.version

    @property
    def shards(self) -> int:
        """Shards this index occupies: every primary and each of its replicas."""
        return self.primaries * (1 + self.replicas)

    @property
    def is_open(self) -> bool:
        # Closed indices do not count against cluster.max_shards_per_node.
        return self.status != "close"


@dataclass(frozen=True)
class TemplateRecord:
    name: str
    context: Context | None
    version: VersionId | None
    resource: str | None
    foreign_reason: ForeignReason | None
    confirmed_by_meta: bool

    @property
    def owner(self) -> VersionId | None:
        if self.foreign_reason is not None:
            return None
        return self.version


@dataclass(frozen=True)
class AliasRecord:
    name: str
    parsed: AliasName | None
    indices: tuple[str, ...]


@dataclass(frozen=True)
class Inventory:
    indices: tuple[IndexRecord, ...]
    templates: tuple[TemplateRecord, ...]
    aliases: tuple[AliasRecord, ...]

    def index_names(self) -> frozenset[str]:
        return frozenset(record.name for record in self.indices)

    def template_names(self) -> frozenset[str]:
        return frozenset(record.name for record in self.templates)

    def by_name(self) -> dict[str, IndexRecord]:
        return {record.name: record for record in self.indices}

    def owned_versions(self) -> frozenset[VersionId]:
        """Every confirmed (db, tenant) pair that still has an index or a template."""
        owners = [record.owner for record in self.indices] + [record.owner for record in self.templates]
        return frozenset(owner for owner in owners if owner is not None)

    @property
    def shards_in_use(self) -> int:
        """Shards counted by Elasticsearch's shard limit (open indices only)."""
        return sum(record.shards for record in self.indices if record.is_open)


# Anchored patterns of docs/tracardi.md §2. The tenant may hold anything but a dot; the resource is
# lazy so that a trailing partition suffix is split off rather than swallowed.
_INDEX_PATTERN = re.compile(
    r"^(?:(?P<prefix>prod|static)-)?(?P<db>[0-9][0-9a-z]*)\.(?P<tenant>[^.]+)\.tracardi-(?P<res>.+?)"
    r"(?:-(?P<part>\d{4}-(?:\d{1,2}|q[1-4]|year)))?$"
)
_TEMPLATE_PATTERN = re.compile(
    r"^(?:(?P<prefix>prod)-)?template\.(?P<db>[0-9][0-9a-z]*)\.(?P<tenant>[^.]+)\.tracardi-(?P<res>.+)$"
)
_ALIAS_PATTERN = re.compile(r"^(?:(?P<prefix>prod|static)-)?(?P<tenant>[^.]+)\.tracardi-(?P<res>.+)$")

_CONTEXT_BY_PREFIX = {None: Context.STAGING, "prod": Context.PRODUCTION, "static": Context.STATIC}
_INDEX_PREFIX_BY_CONTEXT = {Context.STAGING: "", Context.PRODUCTION: "prod-", Context.STATIC: "static-"}


def parse_index_name(name: str) -> IndexName | None:
    if name.startswith("."):
        return None
    match = _INDEX_PATTERN.match(name)
    if match is None:
        return None
    return IndexName(
        context=_CONTEXT_BY_PREFIX[match["prefix"]],
        version=VersionId(db=match["db"], tenant=match["tenant"]),
        resource=match["res"],
        partition=match["part"],
    )


def parse_template_name(name: str) -> tuple[Context, VersionId, str] | None:
    match = _TEMPLATE_PATTERN.match(name)
    if match is None:
        return None
    context = _CONTEXT_BY_PREFIX[match["prefix"]]
    return context, VersionId(db=match["db"], tenant=match["tenant"]), match["res"]


def parse_alias_name(name: str) -> AliasName | None:
    if name.startswith("."):
        return None
    match = _ALIAS_PATTERN.match(name)
    if match is None:
        return None
    return AliasName(context=_CONTEXT_BY_PREFIX[match["prefix"]], tenant=match["tenant"], resource=match["res"])


def meta_version(meta: object) -> VersionId | None:
    """The pair a mapping's `_meta` names, or None when it names none."""
    if not isinstance(meta, Mapping):
        return None
    db, tenant = meta.get("version"), meta.get("name")
    if db is None or tenant is None:
        return None
    return VersionId(db=str(db), tenant=str(tenant))


def classify_index(name: str, meta: object) -> tuple[IndexName | None, ForeignReason | None]:
    """The parsed name and, when the index is not confirmed Tracardi's, why."""
    if name.startswith("."):
        return None, ForeignReason.SYSTEM_INDEX
    parsed = parse_index_name(name)
    if parsed is None:
        return None, ForeignReason.UNPARSEABLE_NAME
    recorded = meta_version(meta)
    if recorded is None:
        return parsed, ForeignReason.META_MISSING
    if recorded != parsed.version:
        return parsed, ForeignReason.META_DISAGREES
    return parsed, None


def classify_template(name: str, body: Mapping[str, Any]) -> TemplateRecord:
    """A composable template is owned by the pair its name carries, unless its own data disagrees.

    Templates have no mapping `_meta` in the index sense, but a composable template may carry `_meta`
    at its top level or in `template.mappings`; whichever is present must agree. Its index patterns
    must stay inside the owner's own index prefix: deleting a template whose patterns reach another
    version's indices would change how that version creates partitions.
    """
    parsed = parse_template_name(name)
    if parsed is None:
        return TemplateRecord(name, None, None, None, ForeignReason.UNPARSEABLE_NAME, False)
    context, version, resource = parsed
    metas = [body.get("_meta"), dig(body, "template", "mappings", "_meta")]
    recorded = [meta_version(meta) for meta in metas if meta is not None]
    reason: ForeignReason | None = None
    if any(found != version for found in recorded):
        reason = ForeignReason.META_DISAGREES
    else:
        own_prefix = f"{_INDEX_PREFIX_BY_CONTEXT[context]}{version.db}.{version.tenant}."
        patterns = body.get("index_patterns") or []
        if isinstance(patterns, str):
            patterns = [patterns]
        if not all(isinstance(p, str) and p.startswith(own_prefix) for p in patterns):
            reason = ForeignReason.PATTERNS_DISAGREE
    return TemplateRecord(name, context, version, resource, reason, bool(recorded) and reason is None)


def parse_inventory(
    cat_indices: Iterable[Mapping[str, Any]],
    aliases: Mapping[str, Any],
    index_templates: Mapping[str, Any],
    mappings: Mapping[str, Any],
) -> Inventory:
    """Classify everything Elasticsearch reported.

    - `cat_indices`: rows shaped like `_cat/indices?format=json&h=index,pri,rep,status` (`elastic.state_rows`)
    - `aliases`: `GET _alias`, `{index: {"aliases": {alias: {...}}}}`
    - `index_templates`: `GET _index_template`, `{"index_templates": [{name, index_template}]}`
    - `mappings`: `GET _mapping?filter_path=*.mappings._meta`, `{index: {"mappings": {"_meta": {}}}}`
    Malformed rows are tolerated (a foreign oddity must never abort a run); they end up foreign.
    """
    index_records = []
    for row in cat_indices:
        name = row.get("index")
        if not isinstance(name, str) or not name:
            continue
        parsed, reason = classify_index(name, dig(mappings, name, "mappings", "_meta"))
        index_records.append(
            IndexRecord(
                name=name,
                parsed=parsed,
                foreign_reason=reason,
                primaries=_as_int(row.get("pri")) or 0,
                replicas=_as_int(row.get("rep")) or 0,
                status=_as_str(row.get("status")),
            )
        )
    template_records = [
        classify_template(entry["name"], _as_mapping(entry.get("index_template")))
        for entry in index_templates.get("index_templates") or []
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str)
    ]
    return Inventory(
        indices=tuple(sorted(index_records, key=lambda r: r.name)),
        templates=tuple(sorted(template_records, key=lambda r: r.name)),
        aliases=_alias_records(aliases),
    )


def live_aliases(inventory: Inventory, live_versions: Iterable[VersionId]) -> tuple[AliasRecord, ...]:
    """The aliases something may still read through; every index they point to must be kept.

    0.8.x aliases carry a tenant but no db version, so an alias cannot be tied to a version by its
    name. An alias is therefore live unless it is provably retired, that is all of:
    - it is a Tracardi alias (`[prod-|static-]<tenant>.tracardi-<resource>`): an alias someone else
      made is read by something we do not know;
    - its tenant is not the tenant of any live pair on the cluster: with a version-independent
      TENANT_NAME the live version reads through the very same alias names;
    - every index it points to is a confirmed Tracardi index of the alias's own tenant whose pair
      is not live: an alias that mixes tenants or reaches a live or foreign index is somebody's.
    """
    live = frozenset(live_versions)
    live_tenants = {version.tenant for version in live}
    records = inventory.by_name()

    def retired_target(index: str, tenant: str) -> bool:
        record = records.get(index)
        owner = record.owner if record is not None else None
        return owner is not None and owner.tenant == tenant and owner not in live

    return tuple(
        alias
        for alias in inventory.aliases
        if alias.parsed is None
        or alias.parsed.tenant in live_tenants
        or not all(retired_target(index, alias.parsed.tenant) for index in alias.indices)
    )


def _alias_records(aliases_by_index: Mapping[str, Any]) -> tuple[AliasRecord, ...]:
    targets: dict[str, set[str]] = {}
    for index, entry in aliases_by_index.items():
        alias_map = entry.get("aliases") if isinstance(entry, Mapping) else None
        for alias in alias_map or {}:
            targets.setdefault(alias, set()).add(index)
    return tuple(
        AliasRecord(name=alias, parsed=parse_alias_name(alias), indices=tuple(sorted(indices)))
        for alias, indices in sorted(targets.items())
    )


def dig(data: object, *keys: str) -> object:
    """`data[k1][k2]...`, or None where a level is missing or not a mapping (Elasticsearch's answers are
    read without trusting their shape)."""
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _as_mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _as_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
