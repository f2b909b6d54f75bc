"""Tracardi image tags (pure): the tag grammar admission also checks, `TracardiVersion` with its
ordering, the database version and default tenant a tag implies, and parsing that never raises
(`try_parse`, returning a `Verdict`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache, total_ordering
from typing import Literal

from tracardi_operator.reasons import Reason

# Admission checks this too (a CEL rule in the CRD), so it avoids backslashes, which CEL string
# literals would need escaped. No leading zeros, so that every tag has exactly one spelling.
TAG_REGEX = r"^(0|[1-9][0-9]*)[.](0|[1-9][0-9]*)[.](0|[1-9][0-9]*)([.](0|[1-9][0-9]*))?(-(rc|dev)(0|[1-9][0-9]*)?)?$"
_TAG = re.compile(TAG_REGEX)
MAX_TAG_LENGTH = 64

PrereleaseKind = Literal["dev", "rc"]

VERSION_ACCEPTED = "VersionAccepted"
"""A check that passed. Never a condition's reason: an accepted target's is the change planned (INSTALL ...)."""

_PRERELEASE_RANK: Mapping[PrereleaseKind | None, int] = {"dev": 0, "rc": 1, None: 2}


@dataclass(frozen=True)
class Verdict:
    """The outcome of a named check: whether it passed, a CamelCase reason, and a message for people."""

    ok: bool
    reason: str
    message: str


@total_ordering
@dataclass(frozen=True, eq=True)
class TracardiVersion:
    """A Tracardi image tag: `major.minor.patch[.build][-(rc|dev)[N]]`.

    Ordered as Tracardi releases are: a pre-release before its release (dev before rc), a release
    before its 4th-component builds (`0.8.2` < `0.8.2.1`).
    """

    major: int
    minor: int
    patch: int
    build: int | None = None
    prerelease: PrereleaseKind | None = None
    prerelease_number: int | None = None

    def __post_init__(self) -> None:
        numbers = [self.major, self.minor, self.patch, self.build, self.prerelease_number]
        if any(number is not None and number < 0 for number in numbers):
            raise ValueError("version components are non-negative")
        if self.prerelease is None and self.prerelease_number is not None:
            raise ValueError("a pre-release number needs a pre-release kind")

    def __str__(self) -> str:
        return self.tag

    @property
    def tag(self) -> str:
        """The image tag, spelled as Docker Hub spells it."""
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.build is not None:
            text += f".{self.build}"
        if self.prerelease is not None:
            text += f"-{self.prerelease}"
            if self.prerelease_number is not None:
                text += str(self.prerelease_number)
        return text

    @property
    def application_version(self) -> str:
        """Tracardi's own VERSION: the tag without build and pre-release (`0.8.2` for `0.8.2.1`)."""
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def is_prerelease(self) -> bool:
        return self.prerelease is not None

    @property
    def db_version(self) -> str | None:
        """The database version the tag is expected to report, None when Tracardi's rule is unknown."""
        return _db_version(self)

    @property
    def default_tenant(self) -> str | None:
        """The tenant Tracardi uses when TENANT_NAME is unset; None when the db version is unknown."""
        db = self.db_version
        if db is None:
            return None
        # Before 0.8.1 Tracardi hashed its version string; from 0.8.1 on, the db version.
        hashed = self.application_version if (self.major, self.minor, self.patch) < (0, 8, 1) else db
        return _md5_prefix(hashed)

    def _sort_key(self) -> tuple[int, int, int, int, int, int]:
        return (
            self.major,
            self.minor,
            self.patch,
            -1 if self.build is None else self.build,
            _PRERELEASE_RANK[self.prerelease],
            -1 if self.prerelease_number is None else self.prerelease_number,
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, TracardiVersion):
            return NotImplemented
        return self._sort_key() < other._sort_key()


def _md5_prefix(text: str) -> str:
    # Not a security use: Tracardi derives tenant names this way and we must compute the same.
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:5]


def _db_version(version: TracardiVersion) -> str | None:
    release = (version.major, version.minor, version.patch)
    if version.prerelease is None:
        if release[:2] == (0, 7) or release == (0, 8, 0):
            # No db_version before 0.8.1: the prefix is the version without dots.
            return f"{version.major}{version.minor}{version.patch}"
        if release == (0, 8, 1):
            return "08x"
        if release == (0, 8, 2):
            return "0820"
        return None
    if release == (0, 8, 2) and version.prerelease == "rc":
        return "082x"
    if release == (0, 9, 0) and version.prerelease == "dev":
        return "09x"
    return None


class InvalidVersionError(ValueError):
    """A string that is not a Tracardi image tag."""


@dataclass(frozen=True)
class ParsedTag:
    """The result of parsing a tag without raising: the version when it parsed, and why not otherwise."""

    version: TracardiVersion | None
    verdict: Verdict

    @property
    def ok(self) -> bool:
        return self.version is not None


PARSED_TAGS_KEPT = 1024
"""Distinct tags whose parse is kept (`try_parse`): a fleet runs a handful, and every idle pass reads
every installation's tags again."""


def try_parse(text: object) -> ParsedTag:
    """Parse an image tag; never raises, whatever `text` is. A string short enough to be a tag is parsed
    once and its result kept (the result is immutable)."""
    if isinstance(text, str) and len(text) <= MAX_TAG_LENGTH:
        return _parse_short(text)
    return _parse(text)


@lru_cache(maxsize=PARSED_TAGS_KEPT)
def _parse_short(text: str) -> ParsedTag:
    return _parse(text)


def _parse(text: object) -> ParsedTag:
    if not isinstance(text, str) or len(text) > MAX_TAG_LENGTH or _TAG.fullmatch(text) is None:
        shown = repr(text)[:80]
        return ParsedTag(
            None,
            Verdict(
                False,
                Reason.INVALID_VERSION,
                f"{shown} is not a Tracardi image tag; use one such as 0.8.1, 0.8.2.1 or 0.8.2-rc2",
            ),
        )
    match = _TAG.fullmatch(text)
    assert match is not None
    major, minor, patch, _, build, _, kind, number = match.groups()
    version = TracardiVersion(
        int(major),
        int(minor),
        int(patch),
        None if build is None else int(build),
        "rc" if kind == "rc" else ("dev" if kind == "dev" else None),
        None if number is None else int(number),
    )
    return ParsedTag(version, Verdict(True, VERSION_ACCEPTED, f"{text} is a Tracardi image tag"))


def parse(text: str) -> TracardiVersion:
    """Parse an image tag; InvalidVersionError when it is not one."""
    parsed = try_parse(text)
    if parsed.version is None:
        raise InvalidVersionError(parsed.verdict.message)
    return parsed.version
