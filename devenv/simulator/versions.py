"""The Tracardi versions the simulator knows, as data: resources, index base names, partitioning.

Every table below is transcribed from docs/tracardi-resources.md (read from Tracardi's
source, branches 0.8.0, 0.8.1 and 0.8.2.1), so that a reader can check every index name against it.
How names are composed from these rows is in `naming.py` (docs/tracardi.md §2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Partitioning = Literal["month", "quarter", "year"]
PARTITIONINGS: tuple[Partitioning, ...] = ("month", "quarter", "year")

STATIC: Literal["static"] = "static"
"""Marker for the two resources shared by both contexts (`static-` prefix, no partitions)."""


@dataclass(frozen=True)
class Resource:
    """One row of a version's table in docs/tracardi-resources.md."""

    key: str
    """Tracardi's `Resource` key (e.g. `user-logs`)."""
    base: str
    """Index base name (e.g. `tracardi-user-log`)."""
    partitioning: Partitioning | Literal["static"] | None
    """None for a plain per-context index."""
    partitioning_env: str | None = None
    """The *_PARTITIONING variable that changes this resource's partitioning (0.8.2 only)."""

    @property
    def static(self) -> bool:
        return self.partitioning == STATIC

    @property
    def partitioned(self) -> bool:
        return self.partitioning in PARTITIONINGS


@dataclass(frozen=True)
class Version:
    """A Tracardi application version with its database version, default tenant and resources."""

    version: str
    """What /info/version/details reports as `version` (0.8.2 for image 0.8.2.1)."""
    db_version: str
    """Prefix of every index name (`080`, `08x`, `0820`, `082x`)."""
    reports_db_version: bool
    """0.8.0 has no `db_version` field in /info/version/details."""
    tenant_seed: str
    """md5(tenant_seed)[:5] is the default tenant (the version string before 0.8.1, the db version after)."""
    resources: tuple[Resource, ...]
    migration_sources: tuple[str, ...]
    """What GET /migrations answers."""

    def resource(self, key: str) -> Resource:
        for r in self.resources:
            if r.key == key:
                return r
        raise KeyError(f"{self.version} has no resource {key!r}")

    @property
    def plain(self) -> tuple[Resource, ...]:
        return tuple(r for r in self.resources if r.partitioning is None)

    @property
    def partitioned(self) -> tuple[Resource, ...]:
        return tuple(r for r in self.resources if r.partitioned)

    @property
    def static(self) -> tuple[Resource, ...]:
        return tuple(r for r in self.resources if r.static)


def _plain(key: str, base: str) -> Resource:
    return Resource(key, base, None)


def _static(key: str, base: str) -> Resource:
    return Resource(key, base, STATIC)


def _month(key: str, base: str, env: str | None = None) -> Resource:
    return Resource(key, base, "month", env)


# docs/tracardi-resources.md "## 0.8.0": 35 resources, per context 33 indices and 5 templates, 2 static.
RESOURCES_080: tuple[Resource, ...] = (
    _static("action", "tracardi-flow-action-plugins"),
    _plain("api-instance", "tracardi-api-instance"),
    _static("bridge", "tracardi-bridge"),
    _plain("consent-data-compliance", "tracardi-consent-data-compliance"),
    _plain("consent-type", "tracardi-consent-type"),
    _plain("console-log", "tracardi-console-log"),
    _plain("debug-info", "tracardi-debug-info"),
    _plain("destination", "tracardi-destination"),
    _plain("entity", "tracardi-entity"),
    _plain("entity-list", "tracardi-entity-list"),
    _month("event", "tracardi-event"),
    _plain("event-management", "tracardi-event-management"),
    _plain("event-redirect", "tracardi-event-redirect"),
    _plain("event-reshaping", "tracardi-event-reshaping"),
    _plain("event-source", "tracardi-source"),
    _plain("event-tags", "tracardi-events-tags"),
    _plain("event-to-profile", "tracardi-event_to_profile"),
    _plain("event-validation", "tracardi-event-validation"),
    _plain("flow", "tracardi-flow"),
    _plain("heartbeats", "tracardi-heartbeats"),
    _plain("identification-point", "tracardi-identification-point"),
    _plain("import", "tracardi-import"),
    _plain("live-segment", "tracardi-live-segment"),
    _month("log", "tracardi-log"),
    _month("profile", "tracardi-profile"),
    _plain("report", "tracardi-report"),
    _plain("resource", "tracardi-resource"),
    _plain("rule", "tracardi-rule"),
    _plain("segment", "tracardi-segment"),
    _month("session", "tracardi-session"),
    _plain("task", "tracardi-task"),
    _plain("tracardi-pro", "tracardi-pro"),
    _plain("user", "tracardi-user"),
    _month("user-logs", "tracardi-user-log"),
    _plain("version", "tracardi-version"),
)

# docs/tracardi-resources.md "## 0.8.1": 37 resources, per context 35 indices and 6 templates, 2 static.
RESOURCES_08X: tuple[Resource, ...] = (
    _static("action", "tracardi-flow-action-plugins"),
    _static("bridge", "tracardi-bridge"),
    _plain("consent-data-compliance", "tracardi-consent-data-compliance"),
    _plain("consent-type", "tracardi-consent-type"),
    _plain("console-log", "tracardi-console-log"),
    _plain("content", "tracardi-content"),
    _plain("debug-info", "tracardi-debug-info"),
    _plain("destination", "tracardi-destination"),
    _plain("entity", "tracardi-entity"),
    _plain("entity-list", "tracardi-entity-list"),
    _month("event", "tracardi-event"),
    _plain("event-management", "tracardi-event-management"),
    _plain("event-redirect", "tracardi-event-redirect"),
    _plain("event-reshaping", "tracardi-event-reshaping"),
    _plain("event-source", "tracardi-source"),
    _plain("event-tags", "tracardi-events-tags"),
    _plain("event-to-profile", "tracardi-event_to_profile"),
    _plain("event-validation", "tracardi-event-validation"),
    _plain("flow", "tracardi-flow"),
    _plain("heartbeats", "tracardi-heartbeats"),
    _plain("identification-point", "tracardi-identification-point"),
    _plain("import", "tracardi-import"),
    _month("item", "tracardi-item"),
    _plain("live-segment", "tracardi-live-segment"),
    _month("log", "tracardi-log"),
    _month("profile", "tracardi-profile"),
    _plain("report", "tracardi-report"),
    _plain("resource", "tracardi-resource"),
    _plain("rule", "tracardi-rule"),
    _plain("segment", "tracardi-segment"),
    _month("session", "tracardi-session"),
    _plain("setting", "tracardi-setting"),
    _plain("task", "tracardi-task"),
    _plain("tracardi-pro", "tracardi-pro"),
    _plain("user", "tracardi-user"),
    _month("user-logs", "tracardi-user-log"),
    _plain("version", "tracardi-version"),
)

# docs/tracardi-resources.md "## 0.8.2.1": 39 resources, per context 37 indices and 10 templates, 2 static.
# The *_PARTITIONING names are Tracardi 0.8.2's config variables; entity reads ITEM_PARTITIONING
# (a Tracardi typo, docs/tracardi-resources.md "Notes"). FIELD_UPDATE_LOG_PARTITIONING is our guess.
RESOURCES_0820: tuple[Resource, ...] = (
    _static("action", "tracardi-flow-action-plugins"),
    _static("bridge", "tracardi-bridge"),
    _plain("consent-data-compliance", "tracardi-consent-data-compliance"),
    _plain("consent-type", "tracardi-consent-type"),
    _month("console-log", "tracardi-console-log", "CONSOLE_LOG_PARTITIONING"),
    _plain("content", "tracardi-content"),
    _plain("debug-info", "tracardi-debug-info"),
    _plain("destination", "tracardi-destination"),
    _month("dispatch-log", "tracardi-dispatch-log", "DISPATCH_LOG_PARTITIONING"),
    Resource("entity", "tracardi-entity", "quarter", "ITEM_PARTITIONING"),
    _plain("entity-list", "tracardi-entity-list"),
    _month("event", "tracardi-event", "EVENT_PARTITIONING"),
    _plain("event-management", "tracardi-event-management"),
    _plain("event-redirect", "tracardi-event-redirect"),
    _plain("event-reshaping", "tracardi-event-reshaping"),
    _plain("event-source", "tracardi-source"),
    _plain("event-tags", "tracardi-events-tags"),
    _plain("event-to-profile", "tracardi-event_to_profile"),
    _plain("event-validation", "tracardi-event-validation"),
    _month("field-update-log", "tracardi-field-update-log", "FIELD_UPDATE_LOG_PARTITIONING"),
    _plain("flow", "tracardi-flow"),
    _plain("heartbeats", "tracardi-heartbeats"),
    _plain("identification-point", "tracardi-identification-point"),
    _plain("import", "tracardi-import"),
    Resource("item", "tracardi-item", "year", "ITEM_PARTITIONING"),
    _plain("live-segment", "tracardi-live-segment"),
    _month("log", "tracardi-log", "LOG_PARTITIONING"),
    Resource("profile", "tracardi-profile", "quarter", "PROFILE_PARTITIONING"),
    _plain("report", "tracardi-report"),
    _plain("resource", "tracardi-resource"),
    _plain("rule", "tracardi-rule"),
    _plain("segment", "tracardi-segment"),
    Resource("session", "tracardi-session", "quarter", "SESSION_PARTITIONING"),
    _plain("setting", "tracardi-setting"),
    _plain("task", "tracardi-task"),
    _plain("tracardi-pro", "tracardi-pro"),
    _plain("user", "tracardi-user"),
    Resource("user-logs", "tracardi-user-log", "year", "USER_LOG_PARTITIONING"),
    _plain("version", "tracardi-version"),
)

V080 = Version("0.8.0", "080", False, "0.8.0", RESOURCES_080, ("0.7.4",))
V08X = Version("0.8.1", "08x", True, "08x", RESOURCES_08X, ("080",))
V0820 = Version("0.8.2", "0820", True, "0820", RESOURCES_0820, ("08x", "082x"))
# The 0.8.2 release candidates: same resources as 0.8.2, their own database version.
V082X = Version("0.8.2", "082x", True, "082x", RESOURCES_0820, ("08x",))

VERSIONS_BY_DB: dict[str, Version] = {v.db_version: v for v in (V080, V08X, V0820, V082X)}


class UnknownTagError(ValueError):
    """An image tag that names no version the simulator knows."""


_TAGS: tuple[tuple[re.Pattern[str], Version], ...] = (
    (re.compile(r"^0\.8\.0$"), V080),
    (re.compile(r"^0\.8\.1(?:\.\d+)?$"), V08X),
    (re.compile(r"^0\.8\.2(?:\.\d+)?$"), V0820),
    (re.compile(r"^0\.8\.2-rc\d+$"), V082X),
)


def version_for_tag(tag: str) -> Version:
    """The version an image tag runs: a 4th component keeps the database version (0.8.2.2 is 0.8.2)."""
    for pattern, version in _TAGS:
        if pattern.match(tag):
            return version
    known = "0.8.0, 0.8.1[.N], 0.8.2[.N], 0.8.2-rcN"
    raise UnknownTagError(f"tracardi simulator: unknown image tag {tag!r} (known: {known})")
