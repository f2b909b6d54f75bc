"""How Tracardi composes index, template and alias names (docs/tracardi.md §2), as pure functions.

`[prod-|static-]<db>.<tenant>.tracardi-<resource>[-<partition>]`; templates
`[prod-]template.<db>.<tenant>.tracardi-<resource>`; aliases `[prod-|static-]<tenant>.tracardi-<resource>`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from devenv.simulator.versions import PARTITIONINGS, Partitioning, Resource, Version

Context = Literal["staging", "production"]
CONTEXTS: tuple[Context, ...] = ("staging", "production")

INDEX_PATTERN = re.compile(
    r"^(?:(?P<prefix>prod|static)-)?(?P<db>[0-9][0-9a-z]*)\.(?P<tenant>[^.]+)\.(?P<base>tracardi-.+?)"
    r"(?:-(?P<part>\d{4}-(?:\d{1,2}|q[1-4]|year)))?$"
)


def default_tenant(version: Version) -> str:
    """md5 of the version string (before 0.8.1) or of the db version (from 0.8.1 on), first 5 hex digits."""
    return md5_tenant(version.tenant_seed)


def md5_tenant(seed: str) -> str:
    return hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest()[:5]


def context_prefix(context: Context) -> str:
    return "prod-" if context == "production" else ""


def partition_suffix(partitioning: Partitioning, when: dt.date) -> str:
    """`YYYY-M` (month, unpadded), `YYYY-qN` (the correct quarter) or `YYYY-year`."""
    if partitioning == "month":
        return f"{when.year}-{when.month}"
    if partitioning == "quarter":
        return f"{when.year}-q{(when.month - 1) // 3 + 1}"
    return f"{when.year}-year"


def tracardi_run_quarter_suffix(when: dt.date) -> str:
    """The quarter 0.8.2's `reindex_to_one_index` computes: `(month % 4) + 1`, right only in May and
    November (docs/tracardi-migration-transforms.md §3.2: March gives q4)."""
    return f"{when.year}-q{(when.month % 4) + 1}"


@dataclass(frozen=True)
class Namespace:
    """The (db version, tenant) pair that every index name of one installed version carries."""

    db: str
    tenant: str

    def index(self, resource: Resource, context: Context, suffix: str | None = None) -> str:
        prefix = "static-" if resource.static else context_prefix(context)
        name = f"{prefix}{self.db}.{self.tenant}.{resource.base}"
        return f"{name}-{suffix}" if suffix else name

    def template(self, resource: Resource, context: Context) -> str:
        return f"{context_prefix(context)}template.{self.db}.{self.tenant}.{resource.base}"

    def template_pattern(self, resource: Resource, context: Context) -> str:
        return f"{context_prefix(context)}{self.db}.{self.tenant}.{resource.base}-*-*"

    def alias(self, resource: Resource, context: Context) -> str:
        prefix = "static-" if resource.static else context_prefix(context)
        return f"{prefix}{self.tenant}.{resource.base}"

    def partition_regex(self, resource: Resource, context: Context) -> re.Pattern[str]:
        """An anchored pattern for the month/quarter/year partitions of a resource in one context."""
        stem = re.escape(f"{context_prefix(context)}{self.db}.{self.tenant}.{resource.base}")
        return re.compile(rf"^{stem}-(\d{{4}}-(?:\d{{1,2}}|q[1-4]|year))$")


def effective_partitioning(resource: Resource, env: Mapping[str, str]) -> Partitioning | None:
    """A resource's partitioning after its *_PARTITIONING variable (None for plain and static)."""
    if not resource.partitioned:
        return None
    if resource.partitioning_env:
        wanted = env.get(resource.partitioning_env, "").strip().lower()
        if wanted in PARTITIONINGS:
            return wanted
    assert resource.partitioning in PARTITIONINGS
    return resource.partitioning


@dataclass(frozen=True)
class ExpectedIndexSet:
    """Everything one install of a version creates: names only, both contexts."""

    indices: tuple[str, ...]
    templates: tuple[str, ...]
    aliases: tuple[str, ...]


def expected_index_set(
    version: Version, ns: Namespace, env: Mapping[str, str], today: dt.date
) -> ExpectedIndexSet:
    """The full index set an install creates today (plain, current partitions, static; templates; aliases)."""
    indices: list[str] = []
    templates: list[str] = []
    aliases: list[str] = []
    for context in CONTEXTS:
        for r in version.resources:
            if r.static:
                if context == "staging":
                    indices.append(ns.index(r, context))
                    aliases.append(ns.alias(r, context))
                continue
            part = effective_partitioning(r, env)
            if part is None:
                indices.append(ns.index(r, context))
            else:
                indices.append(ns.index(r, context, partition_suffix(part, today)))
                templates.append(ns.template(r, context))
            aliases.append(ns.alias(r, context))
    return ExpectedIndexSet(tuple(indices), tuple(templates), tuple(aliases))
