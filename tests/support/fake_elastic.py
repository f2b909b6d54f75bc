"""An in-memory Elasticsearch cluster behind the `ElasticAdapter` interface, for unit tests of the real
retention path (`retention.execution.run`): it answers the inventory from what it holds, records every delete request,
and lets a test change the world at the moments the operator waits (before a delete, during a snapshot).

It holds Tracardi-shaped indices and templates (with `_meta` as Tracardi writes it) and foreign names,
and refuses what Elasticsearch would refuse of a delete by exact names (an unknown name is skipped).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracardi_operator.elastic import RawInventory, ShardRoom, merged_inventory, require_exact_names
from tracardi_operator.indices import VersionId

PLAIN = ("flow", "rule", "segment", "event-source", "bridge")
PARTITIONED = ("event", "profile", "session")


def version_names(pair: VersionId, partitions: Sequence[str] = ("2026-10", "2026-11")) -> tuple[list[str], list[str]]:
    """(indices, templates) of one installed version, both contexts."""
    indices, templates = [], []
    for prefix in ("", "prod-"):
        indices += [f"{prefix}{pair.db}.{pair.tenant}.tracardi-{r}" for r in PLAIN]
        for resource in PARTITIONED:
            indices += [f"{prefix}{pair.db}.{pair.tenant}.tracardi-{resource}-{p}" for p in partitions]
            templates.append(f"{prefix}template.{pair.db}.{pair.tenant}.tracardi-{resource}")
    indices.append(f"static-{pair.db}.{pair.tenant}.tracardi-flow-action-plugins")
    return indices, templates


@dataclass
class FakeElastic:
    cluster_uuid: str | None = "cluster-1"
    indices: dict[str, VersionId | None] = field(default_factory=dict)  # name → the _meta pair (None: none)
    templates: dict[str, VersionId] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)  # alias → indices
    deleted: list[str] = field(default_factory=list)
    snapshots: list[tuple[str, list[str]]] = field(default_factory=list)
    before_delete: Callable[[list[str]], None] | None = None
    during_snapshot: Callable[[], None] | None = None
    shard_room_reads: int = 0

    def install(self, pair: VersionId, partitions: Sequence[str] = ("2026-10", "2026-11")) -> None:
        indices, templates = version_names(pair, partitions)
        for name in indices:
            self.indices[name] = pair
        for name in templates:
            self.templates[name] = pair

    def names_of(self, pair: VersionId) -> set[str]:
        return {n for n, p in {**self.indices, **self.templates}.items() if p == pair}

    # -- the ElasticAdapter interface ---------------------------------------------------------------
    def read_inventory(self) -> RawInventory:
        cat = [{"index": n, "pri": "1", "rep": "0", "status": "open"}
               for n in sorted(self.indices)]
        mappings = {n: {"mappings": {"_meta": {"version": p.db, "name": p.tenant}}}
                    for n, p in self.indices.items() if p is not None}
        aliases: dict[str, Any] = {}
        for alias, targets in self.aliases.items():
            for index in targets:
                aliases.setdefault(index, {"aliases": {}})["aliases"][alias] = {}
        templates = {"index_templates": [
            {"name": n, "index_template": {
                "index_patterns": [n.replace("template.", "", 1) + "-*"],
                "template": {"mappings": {"_meta": {"version": p.db, "name": p.tenant}}}}}
            for n, p in sorted(self.templates.items())]}
        # As Elasticsearch: only Tracardi-named indices are listed; every index counts in the shards in use.
        listed = [row for row in cat if ".tracardi-" in row["index"] and not row["index"].startswith(".")]
        return RawInventory(cat_indices=listed, aliases=aliases, index_templates=templates, mappings=mappings,
                            max_shards_per_node=1000, data_nodes=1, cluster_uuid=self.cluster_uuid,
                            shards_in_use=len(cat))

    def refresh_inventory(self, previous: RawInventory, about: Sequence[str], deleted: Sequence[str]) -> RawInventory:
        """As the adapter: identity, aliases and templates fresh, the existence and `_meta` of `about` and
        of every index an alias on one of them reaches fresh, every other row as `previous` had it."""
        full = self.read_inventory()
        known = {row["index"] for row in previous.cat_indices}
        wanted = set(require_exact_names(list(about)))
        related = {t for targets in self.aliases.values() if wanted & set(targets) for t in targets}
        indices = sorted(n for n in wanted | related if n in known)
        existing = {n for n in indices if n in self.indices}
        metas = {n: full.mappings[n] for n in existing if n in full.mappings}
        return merged_inventory(previous, identity=full.cluster_uuid, aliases=full.aliases,
                                templates=full.index_templates, about=indices, existing=existing, metas=metas,
                                deleted=deleted)

    def shard_room(self) -> ShardRoom:
        self.shard_room_reads += 1
        return ShardRoom(1000, 1, len(self.indices))

    def delete_indices(self, names: Sequence[str]) -> None:
        batch = require_exact_names(names)
        if self.before_delete is not None:
            self.before_delete(batch)
        for name in batch:
            if self.indices.pop(name, "absent") != "absent":
                self.deleted.append(name)

    def delete_template(self, name: str) -> None:
        (exact,) = require_exact_names([name])
        if self.before_delete is not None:
            self.before_delete([exact])
        if self.templates.pop(exact, None) is not None:
            self.deleted.append(exact)

    def existing_indices(self, names: Sequence[str]) -> set[str]:
        return set(names) & set(self.indices)

    def existing_templates(self, names: Sequence[str]) -> set[str]:
        return set(names) & set(self.templates)

    def snapshot_indices(self, repository: str, snapshot: str, names: Sequence[str]) -> str:
        if self.during_snapshot is not None:
            self.during_snapshot()
        self.snapshots.append((snapshot, list(names)))
        return snapshot
