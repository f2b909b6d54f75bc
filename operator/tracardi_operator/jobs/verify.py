"""Did every source document of a migration reach an index the new version reads? (pure)

What lives here: the routing of source indices to destinations (`plan_checks`), the verdict on one
destination from the figures Elasticsearch gave (`judge`), and the summaries the Job reports.

A source index is one of the from-pair's indices in the staging or production context (anchored name
pattern; `static-` indices are never migrated, nor are the resources in `NEVER_MIGRATED`). Its
destination is the repair's copy if there is one, else the `to_index` Tracardi listed for it. Sources
are grouped by destination, because Tracardi 0.8.2 merges all event and profile partitions into one.
A destination counts only when the target's alias (`[prod-]<tenant>.tracardi-<resource>`) points to
it: Tracardi 0.8.2.1 reads nothing else, and copies entity and console-log into unaliased indices.

Problems (the reason a person reads): NotListed (Tracardi offered no copy for the source), NotCopied
(the destination does not exist), NotReadable (the alias does not point to it), DocumentsMissing,
WrongMapping (`_meta.version` is not the target's db version: no template applied), DuplicateIds.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracardi_operator.indices import Context, IndexName, VersionId, parse_index_name
from tracardi_operator.tracardi_api import MigrationEntry

CONTEXTS = (Context.STAGING, Context.PRODUCTION)

# Resources of the source version the target's migration script never copies (not counting static).
# 0.8.0's api-instance has no successor in 0.8.1 (32 of 33 resources are migrated).
NEVER_MIGRATED: Mapping[tuple[str, str], frozenset[str]] = {
    ("080", "08x"): frozenset({"api-instance"}),
}

NOT_LISTED = "NotListed"
NOT_COPIED = "NotCopied"
NOT_READABLE = "NotReadable"
DOCUMENTS_MISSING = "DocumentsMissing"
WRONG_MAPPING = "WrongMapping"
DUPLICATE_IDS = "DuplicateIds"
_ROUTING_PROBLEMS = frozenset({NOT_LISTED, NOT_COPIED, NOT_READABLE})
# Tracardi's resource base names are lower-case words joined by '-' or '_' (tracardi-resources.md);
# anything else that merely fits the general index grammar (a `.bak` copy) is not a source.
_RESOURCE = re.compile(r"^[a-z]+(?:[-_][a-z]+)*$")


def context_prefix(context: Context) -> str:
    return {Context.STAGING: "", Context.PRODUCTION: "prod-", Context.STATIC: "static-"}[context]


def alias_name(context: Context, tenant: str, resource: str) -> str:
    """The 0.8.x read alias of a resource (no db version in it)."""
    return f"{context_prefix(context)}{tenant}.tracardi-{resource}"


def index_name(context: Context, version: VersionId, resource: str, partition: str | None = None) -> str:
    suffix = f"-{partition}" if partition else ""
    return f"{context_prefix(context)}{version.db}.{version.tenant}.tracardi-{resource}{suffix}"


def template_name(context: Context, version: VersionId, resource: str) -> str:
    return f"{context_prefix(context)}template.{version.db}.{version.tenant}.tracardi-{resource}"


@dataclass(frozen=True)
class SourceIndex:
    name: str
    parsed: IndexName

    @property
    def context(self) -> Context:
        return self.parsed.context

    @property
    def resource(self) -> str:
        return self.parsed.resource


def source_indices(index_names: Iterable[str], source: VersionId, target_db: str) -> tuple[SourceIndex, ...]:
    """The source pair's migratable indices (both contexts), sorted by name."""
    skipped = NEVER_MIGRATED.get((source.db, target_db), frozenset())
    found = []
    for name in index_names:
        parsed = parse_index_name(name)
        if (
            parsed is not None
            and parsed.version == source
            and parsed.context in CONTEXTS
            and parsed.resource not in skipped
            and _RESOURCE.match(parsed.resource)
        ):
            found.append(SourceIndex(name, parsed))
    return tuple(sorted(found, key=lambda s: s.name))


_MERGE_REPLACE = re.compile(r"(\d{4}-\d+)$")


def merge_candidates(to_index: str, today: dt.date) -> list[str]:
    """Where Tracardi's `reindex_to_one_index` may have written a listed `to_index`: its month suffix
    replaced by the run date's quarter, computed correctly or with 0.8.2's `(month % 4) + 1`, for the
    Job's day and the day before (a copy that ran across midnight)."""
    names = []
    for day in (today, today - dt.timedelta(days=1)):
        for quarter in ((day.month - 1) // 3 + 1, (day.month % 4) + 1):
            names.append(_MERGE_REPLACE.sub(f"{day.year}-q{quarter}", to_index))
    return list(dict.fromkeys(names))


def listed_destinations(
    entries: Iterable[MigrationEntry], index_names: Iterable[str] = (), today: dt.date | None = None
) -> dict[str, str]:
    """from_index → where Tracardi copied it, over every listing (0.8.1's duplicates collapse).

    A `reindex_to_one_index` entry did not write to its listed `to_index`: the first existing merge
    candidate is taken (the listed name when none exists, which verification reports NotCopied).
    """
    names = frozenset(index_names)
    routed = {}
    for entry in entries:
        destination = entry.to_index
        if entry.worker == "reindex_to_one_index" and today is not None:
            destination = next((c for c in merge_candidates(entry.to_index, today) if c in names), destination)
        routed[entry.from_index] = destination
    return routed


@dataclass(frozen=True)
class CopyCheck:
    """One destination (or one unrouted source) and the sources that should have reached it."""

    context: Context
    resource: str
    sources: tuple[str, ...]
    destination: str | None
    alias: str
    problem: str | None
    repaired: bool = False


def plan_checks(
    index_names: Iterable[str],
    alias_targets: Mapping[str, Iterable[str]],
    entries: Iterable[MigrationEntry],
    source: VersionId,
    target: VersionId,
    today: dt.date,
    repaired: Mapping[str, str] | None = None,
) -> tuple[CopyCheck, ...]:
    """Route every source index to its destination and say whether that destination can count."""
    names = frozenset(index_names)
    listed = listed_destinations(entries, names, today)
    overrides = dict(repaired or {})
    groups: dict[tuple[Context, str, str], list[str]] = {}
    destinations: dict[tuple[Context, str, str], str | None] = {}
    for src in source_indices(names, source, target.db):
        destination = overrides.get(src.name) or listed.get(src.name)
        key = (src.context, src.resource, destination or f"\0{src.name}")
        groups.setdefault(key, []).append(src.name)
        destinations[key] = destination
    checks = []
    for key, sources in sorted(groups.items()):
        context, resource, _ = key
        destination = destinations[key]
        alias = alias_name(context, target.tenant, resource)
        readers = frozenset(alias_targets.get(alias, ()))
        problem: str | None = None
        if destination is None:
            problem = NOT_LISTED
        elif destination not in names:
            problem = NOT_COPIED
        elif destination not in readers:
            problem = NOT_READABLE
        checks.append(
            CopyCheck(
                context=context,
                resource=resource,
                sources=tuple(sorted(sources)),
                destination=destination,
                alias=alias,
                problem=problem,
                repaired=destination is not None and destination in overrides.values(),
            )
        )
    return tuple(checks)


@dataclass(frozen=True)
class CopyFacts:
    """What Elasticsearch says about one check (gathered by the Job; none when the check has a problem).

    - `sample_missing`/`sample_duplicated`: sampled source ids found 0 or more than 1 time via the alias
    - `exact_missing`/`distinct_ids`: from a full id comparison, run only when counts or samples disagree
    - `alias_duplicates`: ids occurring twice or more across the alias (checked for repaired copies)
    """

    source_counts: Mapping[str, int]
    dest_count: int | None = None
    dest_meta_version: str | None = None
    sample_size: int = 0
    sample_missing: int = 0
    sample_duplicated: int = 0
    exact_missing: int | None = None
    distinct_ids: int | None = None
    alias_duplicates: int | None = None


@dataclass(frozen=True)
class CheckResult:
    context: Context
    resource: str
    sources: tuple[str, ...]
    destination: str | None
    source_docs: int
    dest_docs: int
    missing: int
    collapsed: int
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def needs_exact_check(check: CopyCheck, facts: CopyFacts) -> bool:
    """Counts alone cannot tell collapsed ids (merged partitions) from lost ones: compare ids."""
    if check.problem is not None:
        return False
    total = sum(facts.source_counts.values())
    return facts.sample_missing > 0 or (facts.dest_count or 0) < total


def judge(check: CopyCheck, facts: CopyFacts, target_db: str) -> CheckResult:
    total = sum(facts.source_counts.values())
    dest = facts.dest_count or 0
    missing, collapsed = 0, 0
    problem = check.problem
    if problem in _ROUTING_PROBLEMS:
        missing = total
        if total == 0:
            problem = None  # an empty source loses nothing wherever it went
    else:
        if facts.exact_missing is not None:
            missing = facts.exact_missing
            if facts.distinct_ids is not None:
                collapsed = max(0, total - facts.distinct_ids)
        elif dest < total or facts.sample_missing:
            missing = max(total - dest, facts.sample_missing)
        if missing:
            problem = DOCUMENTS_MISSING
        elif facts.dest_meta_version is not None and facts.dest_meta_version != target_db:
            problem = WRONG_MAPPING
        elif facts.sample_duplicated or facts.alias_duplicates:
            problem = DUPLICATE_IDS
    return CheckResult(
        context=check.context,
        resource=check.resource,
        sources=check.sources,
        destination=check.destination,
        source_docs=total,
        dest_docs=dest,
        missing=missing,
        collapsed=collapsed,
        problem=problem,
    )


def summarize(results: Sequence[CheckResult]) -> dict[str, dict[str, int]]:
    """Per context totals (never per index, so the result fits a termination message)."""
    summary: dict[str, dict[str, int]] = {}
    for context in CONTEXTS:
        mine = [r for r in results if r.context == context]
        destinations = {r.destination: r.dest_docs for r in mine if r.destination and r.problem is None}
        figures = {
            "resources": len({r.resource for r in mine}),
            "sourceDocs": sum(r.source_docs for r in mine),
            "destDocs": sum(destinations.values()),
        }
        collapsed = sum(r.collapsed for r in mine)
        if collapsed:
            figures["collapsedIds"] = collapsed
        summary[context.value] = figures
    return summary


def failures(results: Sequence[CheckResult]) -> list[dict[str, Any]]:
    """Failed checks aggregated per (context, resource): missing documents and the problems seen."""
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for result in results:
        if result.ok:
            continue
        entry = grouped.setdefault(
            (result.context.value, result.resource),
            {"context": result.context.value, "resource": result.resource, "missing": 0, "problems": []},
        )
        entry["missing"] += result.missing
        if result.problem not in entry["problems"]:
            entry["problems"].append(result.problem)
    return [grouped[key] for key in sorted(grouped)]


def failure_message(failed: Sequence[Mapping[str, Any]]) -> str:
    parts = [
        f"{f['context']}/{f['resource']}: {f['missing']} documents not readable ({','.join(f['problems'])})"
        if f["missing"]
        else f"{f['context']}/{f['resource']}: {','.join(f['problems'])}"
        for f in failed
    ]
    return "; ".join(parts)
