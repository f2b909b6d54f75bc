"""Tracardi versions: image tags, database versions, default tenants and upgrade paths (pure).

Tracardi has three version identifiers (docs/tracardi.md §1): the image tag (`0.8.2.1`), the
application version (`0.8.2`) and the database version that prefixes every index name (`0820`). A
change of database version needs an install and a migration, and Tracardi only migrates between
adjacent database versions, so a skipped step is carried out as consecutive upgrades through a
representative version of each database version in between.

What is decided here is an expectation from the tag alone; the operator confirms the database version
and tenant with what the running API reports (docs/tracardi.md §7.1).

Every check returns a `Verdict` (ok, reason, message); reasons are CamelCase and reach status
conditions as they are. The tags themselves (grammar, ordering, parsing) live in `version_tags`; their
names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from tracardi_operator.reasons import Reason
from tracardi_operator.version_tags import (
    MAX_TAG_LENGTH,
    TAG_REGEX,
    VERSION_ACCEPTED,
    InvalidVersionError,
    ParsedTag,
    PrereleaseKind,
    TracardiVersion,
    Verdict,
    parse,
    try_parse,
)

StepKind = Literal["Install", "Rolling", "Migrate", "Rollback"]

# Reasons (CamelCase; they become condition reasons, tracardi_operator.reasons lists them).
INVALID_VERSION = Reason.INVALID_VERSION
UNKNOWN_VERSION = Reason.UNKNOWN_VERSION
UNSUPPORTED_VERSION = Reason.UNSUPPORTED_VERSION
PRERELEASE_NOT_ALLOWED = Reason.PRERELEASE_NOT_ALLOWED
NO_MIGRATION_PATH = Reason.NO_MIGRATION_PATH
ROLLBACK_TARGET_DELETED = Reason.ROLLBACK_TARGET_DELETED
INSTALL = Reason.INSTALL
UP_TO_DATE = Reason.UP_TO_DATE
ROLLING_UPDATE = Reason.ROLLING_UPDATE
MIGRATION = Reason.MIGRATION
ROLLBACK = Reason.ROLLBACK

__all__ = [
    "INSTALL",
    "INVALID_VERSION",
    "MAX_TAG_LENGTH",
    "MIGRATION",
    "MIGRATIONS",
    "NO_MIGRATION_PATH",
    "PRERELEASE_NOT_ALLOWED",
    "REPRESENTATIVES",
    "ROLLBACK",
    "ROLLBACK_TARGET_DELETED",
    "ROLLING_UPDATE",
    "TAG_REGEX",
    "UNKNOWN_VERSION",
    "UNSUPPORTED_VERSION",
    "UP_TO_DATE",
    "VERSION_ACCEPTED",
    "InvalidVersionError",
    "ParsedTag",
    "PrereleaseKind",
    "Step",
    "StepKind",
    "TracardiVersion",
    "UpgradePath",
    "Verdict",
    "check_target",
    "is_known_prerelease",
    "is_known_unsupported",
    "is_supported",
    "migration_chain",
    "parse",
    "plan_upgrade",
    "try_parse",
]


# ---------------------------------------------------------------------------------------------------
# What is known about Tracardi releases

# Tracardi's migrations, source db version -> destination db version. Only adjacent steps exist
# (docs/tracardi.md §5); 0.8.2.1 also migrates from its release candidates (082x).
MIGRATIONS: Mapping[str, tuple[str, ...]] = {
    "070": ("071",),
    "071": ("072",),
    "072": ("073",),
    "073": ("074",),
    "074": ("080",),
    "080": ("08x",),
    "08x": ("0820",),
    "082x": ("0820",),
}

# The version the operator runs when an upgrade passes through a db version without stopping there.
REPRESENTATIVES: Mapping[str, TracardiVersion] = {
    "080": TracardiVersion(0, 8, 0),
    "08x": TracardiVersion(0, 8, 1),
    "0820": TracardiVersion(0, 8, 2, 1),
}


def is_supported(version: TracardiVersion) -> bool:
    """Releases the operator runs: 0.8.0, 0.8.1, 0.8.2 and its 4th-component builds."""
    if version.is_prerelease:
        return False
    release = (version.major, version.minor, version.patch)
    return release == (0, 8, 2) or (release in ((0, 8, 0), (0, 8, 1)) and version.build is None)


def is_known_prerelease(version: TracardiVersion) -> bool:
    """Pre-releases whose db version is known (0.8.2-rcN, 0.9.0-devN): run only with opt-in."""
    return version.is_prerelease and version.build is None and version.db_version is not None


def is_known_unsupported(version: TracardiVersion) -> bool:
    """Releases Tracardi had but the operator does not run: 0.7.0 to 0.7.4."""
    return (
        not version.is_prerelease
        and version.build is None
        and (version.major, version.minor) == (0, 7)
        and version.patch <= 4
    )


def check_target(version: TracardiVersion, *, allow_prerelease: bool) -> Verdict:
    """Whether the operator may run `version` at all."""
    if is_supported(version):
        return Verdict(True, VERSION_ACCEPTED, f"{version} is supported")
    if is_known_prerelease(version):
        if allow_prerelease:
            return Verdict(True, VERSION_ACCEPTED, f"{version} is a pre-release, allowed by upgrade.allowPrerelease")
        return Verdict(
            False,
            PRERELEASE_NOT_ALLOWED,
            f"{version} is a pre-release; set spec.upgrade.allowPrerelease to true to run it, or choose a release",
        )
    if is_known_unsupported(version):
        return Verdict(
            False,
            UNSUPPORTED_VERSION,
            f"{version} is older than 0.8.0, which the operator does not run; choose 0.8.0 or later",
        )
    return Verdict(
        False,
        UNKNOWN_VERSION,
        f"{version} is not a Tracardi version this operator knows; supported: 0.8.0, 0.8.1, 0.8.2 and 0.8.2.N",
    )


def migration_chain(from_db: str, to_db: str) -> tuple[str, ...] | None:
    """The db versions an upgrade passes through, both ends included; None when Tracardi has no path."""
    paths: dict[str, tuple[str, ...]] = {from_db: (from_db,)}
    frontier = [from_db]
    while frontier:
        db = frontier.pop(0)
        if db == to_db:
            return paths[db]
        for successor in MIGRATIONS.get(db, ()):
            if successor not in paths:
                paths[successor] = (*paths[db], successor)
                frontier.append(successor)
    return None


# ---------------------------------------------------------------------------------------------------
# Upgrade paths


@dataclass(frozen=True)
class Step:
    """One version change: Install (nothing before), Rolling (same db version), Migrate, Rollback."""

    kind: StepKind
    to_version: TracardiVersion
    from_version: TracardiVersion | None = None

    @property
    def to_db(self) -> str:
        db = self.to_version.db_version
        assert db is not None, "steps are only planned for versions with a known db version"
        return db

    @property
    def from_db(self) -> str | None:
        return None if self.from_version is None else self.from_version.db_version

    def __str__(self) -> str:
        if self.from_version is None:
            return f"{self.kind} {self.to_version} ({self.to_db})"
        return f"{self.kind} {self.from_version} ({self.from_db}) -> {self.to_version} ({self.to_db})"


@dataclass(frozen=True)
class UpgradePath:
    """What it takes to go from the running version to the desired one, or why it is refused."""

    ok: bool
    reason: str
    message: str
    steps: tuple[Step, ...] = field(default=())

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.ok, self.reason, self.message)


def _refuse(verdict: Verdict) -> UpgradePath:
    return UpgradePath(False, verdict.reason, verdict.message)


def plan_upgrade(
    current: str | None,
    target: str,
    *,
    allow_prerelease: bool,
    rollback_targets: Collection[str] = frozenset(),
) -> UpgradePath:
    """The steps from `current` (None: nothing installed yet) to `target`, or why there are none.

    `rollback_targets` are the db versions whose indices still exist (status.versions in state
    Superseded); going back to any other db version is refused, since its data is gone.
    """
    parsed_target = try_parse(target)
    if parsed_target.version is None:
        return _refuse(parsed_target.verdict)
    wanted = parsed_target.version
    acceptable = check_target(wanted, allow_prerelease=allow_prerelease)
    if not acceptable.ok:
        return _refuse(acceptable)

    if current is None:
        return UpgradePath(True, INSTALL, f"install {wanted} ({wanted.db_version})", (Step("Install", wanted),))

    parsed_current = try_parse(current)
    if parsed_current.version is None:
        return _refuse(
            Verdict(
                False, INVALID_VERSION, f"the running version in status is not a tag: {parsed_current.verdict.message}"
            )
        )
    running = parsed_current.version
    running_db = running.db_version
    if running_db is None:
        return _refuse(
            Verdict(
                False, UNKNOWN_VERSION, f"the running version {running} has no known db version; cannot plan from it"
            )
        )

    return _plan_from(running, running_db, wanted, rollback_targets)


def _plan_from(
    running: TracardiVersion, running_db: str, wanted: TracardiVersion, rollback_targets: Collection[str]
) -> UpgradePath:
    """The change from a running version (of a known db version) to an acceptable different one."""
    if running == wanted:
        return UpgradePath(True, UP_TO_DATE, f"{wanted} is running")

    if running_db == wanted.db_version:
        return UpgradePath(
            True,
            ROLLING_UPDATE,
            f"{running} and {wanted} share db version {running_db}: rolling update, no migration",
            (Step("Rolling", wanted, running),),
        )

    if wanted < running:
        if wanted.db_version not in rollback_targets:
            return _refuse(
                Verdict(
                    False,
                    ROLLBACK_TARGET_DELETED,
                    f"cannot go back to {wanted}: the indices of db version {wanted.db_version} are gone or "
                    f"were never kept; set spec.version back to {running}",
                )
            )
        return UpgradePath(
            True,
            ROLLBACK,
            f"roll back from {running} to {wanted} on its kept indices; data written since is not carried back",
            (Step("Rollback", wanted, running),),
        )

    return _migration_path(running, running_db, wanted)


def _migration_path(running: TracardiVersion, running_db: str, wanted: TracardiVersion) -> UpgradePath:
    """One verified migration per db version between the running one and the wanted one."""
    assert wanted.db_version is not None  # check_target accepts only versions with a db version
    chain = migration_chain(running_db, wanted.db_version)
    if chain is None:
        return _refuse(
            Verdict(
                False,
                NO_MIGRATION_PATH,
                f"Tracardi has no migration from db version {running_db} ({running}) to "
                f"{wanted.db_version} ({wanted}); choose a version reachable from {running}",
            )
        )
    steps: list[Step] = []
    previous = running
    for db in chain[1:]:
        nxt = wanted if db == chain[-1] else REPRESENTATIVES.get(db)
        if nxt is None:
            return _refuse(Verdict(False, NO_MIGRATION_PATH, f"no version to run for intermediate db version {db}"))
        steps.append(Step("Migrate", nxt, previous))
        previous = nxt
    through = ", ".join(str(step.to_version) for step in steps[:-1])
    message = f"migrate {running} ({running_db}) to {wanted} ({wanted.db_version})"
    if through:
        message += f" through {through}, one verified migration per step"
    return UpgradePath(True, MIGRATION, message, tuple(steps))
