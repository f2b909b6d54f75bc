"""Did every source document of a migration reach an index the new version reads? (pure)

What lives here: the routing of source indices to destinations (`plan_checks`), the exact id
comparison folded page by page (`IdTally`), the verdict on one destination (`judge`), and the
summaries the Job reports.

The guarantee: every id a source index held at the cutoff (a frozen view opened when the copy began)
and still holds is readable through the target's alias. Ids, not counts: documents written after the
cutoff are not in the frozen view, so they can never make up for lost ones.

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
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
# Tracardi's resource base names are lower-case words joined by '-' or '_' (docs/tracardi-resources.md);
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


MISSING_SHOWN = 5
"""How many missing ids a failure names (a few, so the message fits a termination message)."""


@dataclass
class IdTally:
    """The exact id comparison of one check, folded page by page (pure: the pages come from `observe`).

    Every id a source held at the cutoff is looked up through the target's alias. An id found nowhere
    is `missing` when the source still holds it (the copy lost it) and `deleted` when the source no
    longer does (deleted by the old version after the cutoff: not data to carry over). Ids written
    after the cutoff are never in the pages, so growth can never offset a loss. `distinct` is counted
    only for checks with several sources (merged partitions, where one id may occur in several).
    """

    checked: int = 0
    missing: int = 0
    deleted: int = 0
    duplicated: int = 0
    missing_ids: list[str] = field(default_factory=list)
    seen: set[int] | None = None

    @classmethod
    def for_sources(cls, sources: int) -> IdTally:
        return cls(seen=set() if sources > 1 else None)

    def add(
        self,
        ids: Sequence[str],
        found: Mapping[str, int],
        still_in_source: Collection[str] = (),
        *,
        occurrences: int | None = None,
    ) -> None:
        """Fold one page: its source ids, how often each was found through the alias, which of the
        unreadable ones the source still holds, and (if known) the total hits through the alias."""
        self.checked += len(ids)
        duplicated = 0
        for doc_id in ids:
            n = found.get(doc_id, 0)
            if n > 1:
                duplicated += 1
            elif n == 0:
                if doc_id in still_in_source:
                    self.missing += 1
                    if len(self.missing_ids) < MISSING_SHOWN:
                        self.missing_ids.append(doc_id)
                else:
                    self.deleted += 1
            if self.seen is not None:
                self.seen.add(hash(doc_id))
        if occurrences is not None and occurrences > sum(found.values()) and not duplicated:
            duplicated = 1  # hits beyond the ids seen: some id is readable more than once
        self.duplicated += duplicated

    @property
    def required(self) -> int:
        """Ids the copy had to carry: present at the cutoff and still in the source."""
        return self.checked - self.deleted

    @property
    def collapsed(self) -> int:
        """Ids held by more than one source of a merged check (one document in the destination)."""
        return 0 if self.seen is None else max(0, self.checked - len(self.seen))


def unreadable(ids: Iterable[str], found: Mapping[str, int]) -> list[str]:
    """The ids of a page not found through the alias (to be looked up in the source once more)."""
    return [doc_id for doc_id in ids if found.get(doc_id, 0) == 0]


@dataclass(frozen=True)
class CopyFacts:
    """What Elasticsearch says about one check (gathered by the Job; none when the check has a problem).

    - `source_counts`: documents per source index at the cutoff (or now, without one)
    - `ids`: the exact comparison of every source id at the cutoff against the alias (`IdTally`)
    - `alias_duplicates`: ids (the mapped keyword `id`) occurring twice or more across the alias
    """

    source_counts: Mapping[str, int]
    dest_count: int | None = None
    dest_meta_version: str | None = None
    ids: IdTally | None = None
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
    missing_ids: tuple[str, ...] = ()
    deleted: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None


def judge(check: CopyCheck, facts: CopyFacts, target_db: str) -> CheckResult:
    """The verdict on one check. Without a routing problem only the exact id comparison decides: a
    check whose ids were not compared is not proven, and counts (however large) never stand in."""
    total = sum(facts.source_counts.values())
    dest = facts.dest_count or 0
    missing, collapsed, deleted = 0, 0, 0
    missing_ids: tuple[str, ...] = ()
    problem = check.problem
    if problem in _ROUTING_PROBLEMS:
        missing = total
        if total == 0:
            problem = None  # an empty source loses nothing wherever it went
    elif facts.ids is None:
        missing = total
        problem = DOCUMENTS_MISSING if total else None
    else:
        tally = facts.ids
        total = tally.required
        missing, collapsed, deleted = tally.missing, tally.collapsed, tally.deleted
        missing_ids = tuple(tally.missing_ids)
        if missing:
            problem = DOCUMENTS_MISSING
        elif facts.dest_meta_version is not None and facts.dest_meta_version != target_db:
            problem = WRONG_MAPPING
        elif tally.duplicated or facts.alias_duplicates:
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
        missing_ids=missing_ids,
        deleted=deleted,
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
        deleted = sum(r.deleted for r in mine)
        if deleted:
            figures["deletedSinceCutoff"] = deleted
        summary[context.value] = figures
    return summary


def failures(results: Sequence[CheckResult]) -> list[dict[str, Any]]:
    """Failed checks aggregated per (context, resource): missing documents, a few of their ids, and the
    problems seen."""
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
        shown = entry.get("missingIds", [])
        if result.missing_ids and len(shown) < MISSING_SHOWN:
            entry["missingIds"] = [*shown, *result.missing_ids][:MISSING_SHOWN]
    return [grouped[key] for key in sorted(grouped)]


def failure_message(failed: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for f in failed:
        if not f["missing"]:
            parts.append(f"{f['context']}/{f['resource']}: {','.join(f['problems'])}")
            continue
        ids = f" e.g. ids {', '.join(f['missingIds'][:3])}" if f.get("missingIds") else ""
        parts.append(f"{f['context']}/{f['resource']}: {f['missing']} documents not readable "
                     f"({','.join(f['problems'])}){ids}")
    return "; ".join(parts)
