"""The reasons conditions carry are the ones README.md's "Troubleshooting by condition" table documents.

Both ways: a reason added to `tracardi_operator.reasons` without a row (or a word in a row) fails, and
so does a row naming a reason the code no longer has.
"""

from __future__ import annotations

import re
from pathlib import Path

from tracardi_operator import versions
from tracardi_operator.reasons import CONDITION_REASONS, Reason, job_failed

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Troubleshooting by condition"


def _table_rows() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION) + len(SECTION)
    end = text.find("\n## ", start)
    section = text[start:] if end == -1 else text[start:end]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) > 2, "the section holds a table"
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]  # header, rule


def documented_reasons() -> set[str]:
    """The backticked words inside the parentheses of the first column: `Type=Status` (`Reason`, ...)."""
    reasons: set[str] = set()
    for cells in _table_rows():
        for group in re.findall(r"\(([^)]*)\)", cells[0]):
            reasons.update(re.findall(r"`([A-Za-z]+)`", group))
    return reasons


def test_every_condition_reason_is_documented() -> None:
    missing = {str(reason) for reason in CONDITION_REASONS} - documented_reasons()
    assert not missing, f"reasons without a row in README.md's troubleshooting table: {sorted(missing)}"


def test_every_documented_reason_exists() -> None:
    unknown = documented_reasons() - {str(reason) for reason in CONDITION_REASONS}
    assert not unknown, f"README.md's troubleshooting table names reasons no condition carries: {sorted(unknown)}"


def test_every_row_names_its_reasons() -> None:
    for cells in _table_rows():
        assert re.search(r"\(`[A-Za-z]+`", cells[0]), f"a row without a reason: {cells[0]}"


def test_reasons_are_camel_case_and_distinct() -> None:
    values = [str(reason) for reason in Reason]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", value) for value in values)


def test_the_version_checks_refuse_with_listed_reasons() -> None:
    refusals = [versions.INVALID_VERSION, versions.UNKNOWN_VERSION, versions.UNSUPPORTED_VERSION,
                versions.PRERELEASE_NOT_ALLOWED, versions.NO_MIGRATION_PATH, versions.ROLLBACK_TARGET_DELETED]
    paths = [versions.INSTALL, versions.UP_TO_DATE, versions.ROLLING_UPDATE, versions.MIGRATION, versions.ROLLBACK]
    assert set(refusals) | set(paths) <= CONDITION_REASONS


def test_a_job_without_a_reason_of_its_own() -> None:
    assert job_failed("Install") == "InstallFailed"
    assert job_failed("Migrate") == "MigrateFailed"
