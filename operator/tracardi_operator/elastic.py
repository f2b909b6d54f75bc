"""The Elasticsearch adapter: the only module of retention that talks to Elasticsearch.

What lives here: building a client (TLS verification on by default; secrets never logged or shown in
a repr), reading the raw inventory (and the cluster's identity) in six requests (indices and mappings of
Tracardi-named indices only, from the cluster state's metadata, or from the index API when the user may
not read the cluster state: a cluster's other indices are counted, never listed), reading the shard
room alone (two small requests), deleting indices
and templates by exact names, checking which names still exist, and snapshotting named indices. No
decisions: what to delete is decided by `retention.plan.plan_retention`; this module refuses anything
that is not one exact name (`retention.safety.is_exact_name`, the test the plan's safety filter uses).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import AuthorizationException, Elasticsearch, NotFoundError

from tracardi_operator.indices import dig
from tracardi_operator.retention.safety import batch_names, is_exact_name

log = logging.getLogger("tracardi_operator")

STATE_ASKED_AGAIN_AFTER = 3600.0
"""Seconds after the cluster state was refused (403) before a client asks for it again."""

# Elasticsearch's default when the setting is nowhere to be read.
DEFAULT_MAX_SHARDS_PER_NODE = 1000

_STATE_FIELDS = ",".join(f"metadata.indices.*.{f}" for f in (
    "state", "settings.index.number_of_shards", "settings.index.number_of_replicas", "mappings._meta",
    "mappings.*._meta"))
# Every Tracardi index name holds `.tracardi-` (docs/tracardi.md §2); system (dot) indices are foreign
# whatever their name. Indices outside this pattern are never Tracardi's: they are not listed, and their
# mappings are not read (on a cluster with thousands of other indices those reads were most of a run).
TRACARDI_INDICES = "*.tracardi-*,-.*"
# The same fields from the index API (`GET <pattern>`), which answers in 7.x without mapping types.
_INDEX_FIELDS = ",".join(f"*.{f}" for f in (
    "settings.index.number_of_shards", "settings.index.number_of_replicas", "mappings._meta"))
_HEALTH_FIELDS = "number_of_data_nodes,active_shards,initializing_shards,unassigned_shards"
# Names joined into one path up to this many bytes are checked by name; longer lists would not fit
# the request line (http.max_initial_line_length, 4kb by default) and are checked against the settings of
# every Tracardi-named index.
_VERIFY_BY_NAME_BYTES = 3000


class UnsafeNameError(ValueError):
    """A name that Elasticsearch could read as more than one exact index or template."""


@dataclass(frozen=True)
class ElasticConnection:
    hosts: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key_id: str | None = None
    api_key: str | None = field(default=None, repr=False)
    verify_certs: bool = True
    ca_file: str | None = None
    request_timeout: float = 30.0


@dataclass(frozen=True)
class RawInventory:
    """Elasticsearch's answers, unparsed: `indices.parse_inventory` takes the first four."""

    cat_indices: list[dict[str, Any]]
    aliases: dict[str, Any]
    index_templates: dict[str, Any]
    mappings: dict[str, Any]
    max_shards_per_node: int
    data_nodes: int
    cluster_uuid: str | None = None
    """What the cluster says it is (GET /), None when it did not say (no elected master yet: `_na_`)."""
    shards_in_use: int = 0
    """Every shard of the cluster (active, initializing and unassigned; `_cluster/health`), whoever's."""


@dataclass(frozen=True)
class ShardRoom:
    """What the shard limit check needs: the limit's inputs and the shards in use."""

    max_shards_per_node: int
    data_nodes: int
    shards_in_use: int


def _shards(health: Mapping[str, Any] | None) -> int:
    h = health or {}
    return sum(int(h.get(k) or 0) for k in ("active_shards", "initializing_shards", "unassigned_shards"))


def build_client(connection: ElasticConnection) -> Elasticsearch:
    options: dict[str, Any] = {
        "verify_certs": connection.verify_certs,
        "timeout": connection.request_timeout,
    }
    if connection.ca_file:
        options["ca_certs"] = connection.ca_file
    if connection.api_key_id and connection.api_key:
        options["api_key"] = (connection.api_key_id, connection.api_key)
    elif connection.username is not None and connection.password is not None:
        options["http_auth"] = (connection.username, connection.password)
    return Elasticsearch(list(connection.hosts), **options)


def require_exact_names(names: Sequence[str]) -> list[str]:
    """The names, or UnsafeNameError if any could expand to something else (or be a system index)."""
    checked = list(names)
    for name in checked:
        if not is_exact_name(name):
            raise UnsafeNameError(f"refusing to act on {name!r}: not one exact name")
    if not checked:
        raise UnsafeNameError("refusing an empty list of names: the path would address every index")
    return checked


class ElasticAdapter:
    """Thin, typed calls over one client (built once per cluster and reused)."""

    def __init__(self, client: Elasticsearch, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._state_refused_at: float | None = None
        """When the cluster state was last refused (403): the inventory reads the index API instead
        until `STATE_ASKED_AGAIN_AFTER` has passed (a privilege granted later is used again)."""

    def close(self) -> None:
        """Close the client's connections (no installation uses it any more)."""
        self._client.transport.close()

    def read_inventory(self) -> RawInventory:
        client = self._client
        identity = cluster_uuid(client.info(filter_path="cluster_uuid"))
        rows, mappings = self._tracardi_indices()
        # _cat/aliases lists every alias, of system indices too, without the deprecation warning that
        # GET _alias and GET _mapping give for system indices; the rows become `GET _alias`'s shape.
        aliases = self._aliases()
        templates = self._templates()
        settings = client.cluster.get_settings(include_defaults=True, filter_path="*.cluster.max_shards_per_node")
        health = client.cluster.health(filter_path=_HEALTH_FIELDS)
        return RawInventory(
            cat_indices=rows,
            aliases=aliases,
            index_templates=templates,
            mappings=mappings,
            max_shards_per_node=max_shards_per_node(settings or {}),
            data_nodes=int((health or {}).get("number_of_data_nodes", 0)),
            cluster_uuid=identity,
            shards_in_use=_shards(health),
        )

    def _tracardi_indices(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Every Tracardi-named index (closed and hidden ones too) as `_cat/indices` rows (index, pri,
        rep, status) and the `_meta` of their mappings in `GET _mapping`'s shape, from one read of the
        cluster state's metadata. Not `_cat/indices`, which gathers every shard's statistics first (and
        the inventory never needs a document count): 155 ms for 1,000 indices on a cluster of 6,000."""
        refused_at = self._state_refused_at
        if refused_at is None or self._clock() - refused_at >= STATE_ASKED_AGAIN_AFTER:
            try:
                answer = self._client.cluster.state(metric="metadata", index=TRACARDI_INDICES,
                                                    expand_wildcards="all", allow_no_indices=True,
                                                    filter_path=_STATE_FIELDS)
                return state_rows(answer)
            except AuthorizationException:
                # Reading the cluster state is a cluster privilege (`monitor` in Elasticsearch 7.10; some
                # releases document `manage`), and some hosted services keep it to themselves. The index
                # API gives the same with the index privilege `view_index_metadata`. Asked again hourly.
                if refused_at is None:
                    log.info("Elasticsearch refused the cluster state (403): the index inventory reads the "
                             "index API instead")
                self._state_refused_at = self._clock()
        return state_rows(self._tracardi_indices_from_index_api())

    def _tracardi_indices_from_index_api(self) -> dict[str, Any]:
        """What `_tracardi_indices` reads, from two `GET <pattern>` requests instead of the cluster state
        (every Tracardi-named index's settings and `_meta`, then which of them are open), in the cluster
        state's shape (`index_answers_as_state`)."""
        every = self._client.indices.get(index=TRACARDI_INDICES, expand_wildcards="all", allow_no_indices=True,
                                         filter_path=_INDEX_FIELDS)
        opened = self._client.indices.get(index=TRACARDI_INDICES, expand_wildcards="open,hidden",
                                          allow_no_indices=True, filter_path="*.settings.index.uuid")
        return index_answers_as_state(every, opened)

    def _aliases(self) -> dict[str, Any]:
        aliases: dict[str, Any] = {}
        for row in _rows(self._client.cat.aliases(format="json", h="alias,index", expand_wildcards="all")):
            alias, index = row.get("alias"), row.get("index")
            if isinstance(alias, str) and isinstance(index, str):
                aliases.setdefault(index, {"aliases": {}})["aliases"][alias] = {}
        return aliases

    def _templates(self) -> dict[str, Any]:
        try:
            return dict(self._client.indices.get_index_template() or {})
        except NotFoundError:
            return {"index_templates": []}

    def refresh_inventory(self, previous: RawInventory, about: Sequence[str], deleted: Sequence[str]) -> RawInventory:
        """`previous` read again wherever it can change what becomes of `about` (the names of the next
        delete request): the cluster's identity, every alias, every template, and whether each of
        `about` (and each index an alias on one of them also reaches) still exists and what its
        `_meta` says now (one `GET <names>` per request line of them). The other rows are `previous`'s,
        less `deleted` (gone since). A handful of small requests instead of seven that list the
        cluster: nothing else can make a name of `about` deletable or not."""
        client = self._client
        identity = cluster_uuid(client.info(filter_path="cluster_uuid"))
        aliases = self._aliases()
        known = {row.get("index") for row in previous.cat_indices}
        wanted = set(require_exact_names(list(about)))
        by_alias: dict[str, set[str]] = {}
        for index, entry in aliases.items():
            for alias in (entry.get("aliases") or {}):
                by_alias.setdefault(alias, set()).add(index)
        related = {t for targets in by_alias.values() if targets & wanted for t in targets}
        indices = sorted(n for n in wanted | related if n in known)
        existing: set[str] = set()
        metas: dict[str, Any] = {}
        for batch in batch_names(indices):
            found, batch_metas = self._existing_with_meta(batch)
            existing |= found
            metas |= batch_metas
        return merged_inventory(previous, identity=identity, aliases=aliases, templates=self._templates(),
                                about=indices, existing=existing, metas=metas, deleted=deleted)

    def _existing_with_meta(self, names: Sequence[str]) -> tuple[set[str], dict[str, Any]]:
        """Which of these exact names are indices (closed ones too), and the `_meta` of their mappings
        (in `GET _mapping`'s shape; an index without one has no entry), in one request."""
        answer = self._client.indices.get(
            index=",".join(require_exact_names(names)), expand_wildcards="none", ignore_unavailable=True,
            allow_no_indices=True, filter_path="*.settings.index.uuid,*.mappings._meta",
        ) or {}
        asked = set(names)
        existing = {name for name in answer if name in asked}
        metas = {name: {"mappings": {"_meta": entry["mappings"]["_meta"]}} for name, entry in answer.items()
                 if name in asked and "_meta" in (entry.get("mappings") or {})}
        return existing, metas

    def shard_room(self) -> ShardRoom:
        """The shard limit's inputs and the shards in use, without listing any index."""
        settings = self._client.cluster.get_settings(include_defaults=True,
                                                     filter_path="*.cluster.max_shards_per_node")
        health = self._client.cluster.health(filter_path=_HEALTH_FIELDS)
        return ShardRoom(max_shards_per_node(settings or {}), int((health or {}).get("number_of_data_nodes", 0)),
                         _shards(health))

    def delete_indices(self, names: Sequence[str]) -> None:
        """Delete one batch of exact index names; names already gone are skipped (a resumed run)."""
        self._client.indices.delete(
            index=",".join(require_exact_names(names)),
            expand_wildcards="none",
            ignore_unavailable=True,
            allow_no_indices=True,
        )

    def delete_template(self, name: str) -> None:
        """Delete one composable index template by exact name; an absent one is already done."""
        (exact,) = require_exact_names([name])
        with contextlib.suppress(NotFoundError):
            self._client.indices.delete_index_template(name=exact)

    def existing_indices(self, names: Sequence[str]) -> set[str]:
        """Which of these exact names are still indices (for verifying a deletion): by name when the
        names fit in a request line; else, when all of them are Tracardi-named (a retention run's
        always are), from one read of every Tracardi-named index's settings; else by name, one request
        per request line of them. Settings, not _cat/indices, which gathers every shard's statistics
        first: for 1,000 indices on devenv's Elasticsearch, 41 ms against 75 ms (medians of 7)."""
        checked = require_exact_names(names)
        wanted = set(checked)
        if len(",".join(checked).encode()) > _VERIFY_BY_NAME_BYTES and all(
                ".tracardi-" in n and not n.startswith(".") for n in checked):
            listed = self._client.indices.get_settings(index=TRACARDI_INDICES, name="index.uuid",
                                                       expand_wildcards="all", filter_path="*.settings.index.uuid")
            return set(listed or {}) & wanted
        found: set[str] = set()
        for batch in batch_names(checked):
            answer = self._client.indices.get_settings(
                index=",".join(batch),
                name="index.uuid",
                expand_wildcards="none",
                ignore_unavailable=True,
                allow_no_indices=True,
                filter_path="*.settings.index.uuid",
            )
            found |= set(answer or {})
        return found & wanted

    def existing_templates(self, names: Sequence[str]) -> set[str]:
        try:
            templates = self._client.indices.get_index_template(filter_path="index_templates.name")
        except NotFoundError:
            return set()
        present = {entry.get("name") for entry in (templates or {}).get("index_templates", [])}
        return present & set(names)

    def snapshot_indices(self, repository: str, snapshot: str, names: Sequence[str]) -> str:
        """Snapshot exactly these indices into `repository` and wait; returns the snapshot name."""
        (exact_snapshot,) = require_exact_names([snapshot])
        response = self._client.snapshot.create(
            repository=repository,
            snapshot=exact_snapshot,
            body={
                "indices": ",".join(require_exact_names(names)),
                "ignore_unavailable": False,
                "include_global_state": False,
            },
            wait_for_completion=True,
            request_timeout=3600,
        )
        state = (response or {}).get("snapshot", {}).get("state")
        if state != "SUCCESS":
            raise RuntimeError(f"snapshot {exact_snapshot} in {repository} ended {state!r}")
        return exact_snapshot


def merged_inventory(
    previous: RawInventory, *, identity: str | None, aliases: dict[str, Any], templates: dict[str, Any],
    about: Sequence[str], existing: set[str], metas: Mapping[str, Any], deleted: Sequence[str],
) -> RawInventory:
    """`previous` with what was read again (see `ElasticAdapter.refresh_inventory`): the rows of `about`
    that no longer exist and of `deleted` are dropped; each of `about`'s `_meta` is the fresh one (none
    when the answer has none); identity, aliases and templates are replaced."""
    gone = set(deleted) | (set(about) - existing)
    mappings = {k: v for k, v in previous.mappings.items() if k not in gone and k not in set(about)}
    mappings |= {k: v for k, v in metas.items() if k in existing}
    return dataclasses.replace(
        previous, cat_indices=[row for row in previous.cat_indices if row.get("index") not in gone],
        aliases=aliases, index_templates=templates, mappings=mappings, cluster_uuid=identity)


def state_rows(answer: object) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`_cat/indices`-shaped rows (index, pri, rep, status; no document count or health) and
    `GET _mapping`-shaped `_meta`s of a cluster state's `metadata.indices`. 7.x keeps a mapping under its
    single type (`_doc`); a mapping without a type is read as well."""
    indices = dig(answer, "metadata", "indices")
    rows: list[dict[str, Any]] = []
    metas: dict[str, Any] = {}
    for name, entry in (indices.items() if isinstance(indices, Mapping) else ()):
        if not isinstance(entry, Mapping):
            continue
        index_settings = dig(entry, "settings", "index")
        rows.append({"index": name, "status": entry.get("state"), "pri": dig(index_settings, "number_of_shards"),
                     "rep": dig(index_settings, "number_of_replicas")})
        mappings = entry.get("mappings")
        meta = dig(mappings, "_meta")
        if meta is None and isinstance(mappings, Mapping) and len(mappings) == 1:
            meta = dig(next(iter(mappings.values())), "_meta")
        if meta is not None:
            metas[name] = {"mappings": {"_meta": meta}}
    return sorted(rows, key=lambda row: str(row["index"])), metas


def index_answers_as_state(every: object, opened: object) -> dict[str, Any]:
    """Two index API answers (`GET <pattern>` of every matching index, with settings and mappings; and of
    the open ones only) in the shape of the cluster state's `metadata.indices` that `state_rows` reads:
    an index in the first but not the second is closed."""
    open_names = set(opened) if isinstance(opened, Mapping) else set()
    indices = {name: {"state": "open" if name in open_names else "close",
                      "settings": entry.get("settings") or {}, "mappings": entry.get("mappings") or {}}
               for name, entry in (every.items() if isinstance(every, Mapping) else ())
               if isinstance(entry, Mapping)}
    return {"metadata": {"indices": indices}}


def _rows(answer: object) -> list[dict[str, Any]]:
    # The client's stubs type cat answers loosely (text or JSON); with format=json it is a list.
    return [row for row in answer if isinstance(row, dict)] if isinstance(answer, list) else []


def cluster_uuid(info: object) -> str | None:
    """The cluster_uuid of a `GET /` answer; None when absent or not yet decided (`_na_`)."""
    value = info.get("cluster_uuid") if isinstance(info, Mapping) else None
    return value if isinstance(value, str) and value and value != "_na_" else None


def max_shards_per_node(settings: Mapping[str, Any]) -> int:
    """cluster.max_shards_per_node as it applies: transient over persistent over the default."""
    for scope in ("transient", "persistent", "defaults"):
        value = settings.get(scope, {}).get("cluster", {}).get("max_shards_per_node")
        if value is not None:
            return int(value)
    return DEFAULT_MAX_SHARDS_PER_NODE
