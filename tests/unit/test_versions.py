"""Tracardi versions: parsing, ordering, db versions, tenants, support and upgrade paths."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracardi_operator import version_tags
from tracardi_operator import versions as v
from tracardi_operator.versions import TracardiVersion, parse, plan_upgrade, try_parse

# ---------------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("0.8.0", TracardiVersion(0, 8, 0)),
        ("0.8.1", TracardiVersion(0, 8, 1)),
        ("0.8.2", TracardiVersion(0, 8, 2)),
        ("0.8.2.1", TracardiVersion(0, 8, 2, 1)),
        ("0.8.2.2", TracardiVersion(0, 8, 2, 2)),
        ("0.8.2-rc2", TracardiVersion(0, 8, 2, None, "rc", 2)),
        ("0.9.0-dev", TracardiVersion(0, 9, 0, None, "dev")),
        ("0.9.0-dev3", TracardiVersion(0, 9, 0, None, "dev", 3)),
        ("10.20.30.40", TracardiVersion(10, 20, 30, 40)),
    ],
)
def test_parse_known_shapes(tag: str, expected: TracardiVersion) -> None:
    assert parse(tag) == expected
    assert str(expected) == tag


@pytest.mark.parametrize(
    "tag",
    [
        "",
        "0.8",
        "v0.8.1",
        "0.8.1 ",
        " 0.8.1",
        "0.08.1",
        "0.8.01",
        "0.8.2.01",
        "0.8.2-beta1",
        "0.8.2-rc02",
        "0.8.2-RC2",
        "0.8.2.1.1",
        "latest",
        "0.8.1\n",
        "0.8.2-rc-2",
        "0.8.2+build",
        "1" * 70 + ".0.0",
    ],
)
def test_parse_refuses_what_is_not_a_tag(tag: str) -> None:
    parsed = try_parse(tag)
    assert not parsed.ok
    assert parsed.version is None
    assert parsed.verdict.reason == v.INVALID_VERSION
    with pytest.raises(v.InvalidVersionError):
        parse(tag)


@pytest.mark.parametrize("value", [None, 81, 0.8, b"0.8.1", ["0.8.1"]])
def test_try_parse_accepts_any_object(value: object) -> None:
    assert try_parse(value).verdict.reason == v.INVALID_VERSION


def test_parse_result_carries_verdict() -> None:
    parsed = try_parse("0.8.1")
    assert parsed.ok
    assert parsed.verdict.ok
    assert parsed.verdict.reason == v.VERSION_ACCEPTED


def test_invalid_message_is_bounded_and_actionable() -> None:
    message = try_parse("x" * 10_000).verdict.message
    assert len(message) < 200
    assert "0.8.2.1" in message


def test_version_rejects_impossible_components() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        TracardiVersion(0, -1, 0)
    with pytest.raises(ValueError, match="pre-release kind"):
        TracardiVersion(0, 8, 2, None, None, 2)


numbers = st.integers(min_value=0, max_value=10_000)
versions_strategy = st.builds(
    lambda major, minor, patch, build, pre: TracardiVersion(major, minor, patch, build, *pre),
    numbers,
    numbers,
    numbers,
    st.none() | numbers,
    st.sampled_from([(None, None)]) | st.tuples(st.sampled_from(["rc", "dev"]), st.none() | numbers),
)


@given(versions_strategy)
def test_round_trip(version: TracardiVersion) -> None:
    assert parse(str(version)) == version
    assert str(parse(version.tag)) == version.tag


@given(st.text())
def test_arbitrary_text_never_crashes(text: str) -> None:
    parsed = try_parse(text)
    if parsed.ok:
        assert parsed.version is not None
        assert str(parsed.version) == text
    else:
        assert parsed.verdict.reason == v.INVALID_VERSION


@given(st.from_regex(r"\A[0-9.\-rcdev]{1,20}\Z"))
def test_near_miss_text_never_crashes(text: str) -> None:
    parsed = try_parse(text)
    assert parsed.ok == (parsed.version is not None)
    if parsed.version is not None:
        assert parsed.version.tag == text


@given(versions_strategy, versions_strategy)
def test_ordering_is_consistent_with_equality(a: TracardiVersion, b: TracardiVersion) -> None:
    assert (a == b) == (not a < b and not b < a)
    assert (a < b) != (a >= b)
    assert (a <= b) == (a < b or a == b)
    if a == b:
        assert hash(a) == hash(b)


@given(versions_strategy, versions_strategy, versions_strategy)
def test_ordering_is_transitive(a: TracardiVersion, b: TracardiVersion, c: TracardiVersion) -> None:
    low, mid, high = sorted([a, b, c])
    assert low <= mid <= high
    assert low <= high


@given(versions_strategy, versions_strategy)
def test_ordering_follows_numbers_first(a: TracardiVersion, b: TracardiVersion) -> None:
    if (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch):
        assert a < b


def test_ordering_of_tracardi_releases() -> None:
    tags = ["0.9.0-dev", "0.8.2.2", "0.8.2-rc2", "0.8.0", "0.8.2.1", "0.8.2", "0.8.1", "0.8.2-dev1", "0.7.4"]
    assert [str(version) for version in sorted(parse(tag) for tag in tags)] == [
        "0.7.4",
        "0.8.0",
        "0.8.1",
        "0.8.2-dev1",
        "0.8.2-rc2",
        "0.8.2",
        "0.8.2.1",
        "0.8.2.2",
        "0.9.0-dev",
    ]


def test_compare_with_other_types_is_not_implemented() -> None:
    with pytest.raises(TypeError):
        _ = parse("0.8.1") < "0.8.2"


# ---------------------------------------------------------------------------------------------------
# Application version, db version, tenant


@pytest.mark.parametrize(
    ("tag", "application", "db", "tenant"),
    [
        ("0.7.0", "0.7.0", "070", hashlib.md5(b"0.7.0").hexdigest()[:5]),
        ("0.7.4", "0.7.4", "074", hashlib.md5(b"0.7.4").hexdigest()[:5]),
        ("0.8.0", "0.8.0", "080", "fa73a"),
        ("0.8.1", "0.8.1", "08x", "01506"),
        ("0.8.2", "0.8.2", "0820", "ffe49"),
        ("0.8.2.1", "0.8.2", "0820", "ffe49"),
        ("0.8.2.2", "0.8.2", "0820", "ffe49"),
        ("0.8.2-rc1", "0.8.2", "082x", "119a2"),
        ("0.8.2-rc2", "0.8.2", "082x", "119a2"),
        ("0.9.0-dev", "0.9.0", "09x", hashlib.md5(b"09x").hexdigest()[:5]),
    ],
)
def test_identifiers_of_tracardi_versions(tag: str, application: str, db: str, tenant: str) -> None:
    version = parse(tag)
    assert version.application_version == application
    assert version.db_version == db
    assert version.default_tenant == tenant


def test_tenant_table_of_the_facts() -> None:
    # docs/tracardi.md §1; 0.8.0 hashes its version string, the others their db version.
    assert {db: version_tags._md5_prefix(db) for db in ("08x", "0820", "082x")} == {
        "08x": "01506",
        "0820": "ffe49",
        "082x": "119a2",
    }
    assert version_tags._md5_prefix("0.8.0") == "fa73a"
    # The default Tracardi's 0.8.1 migration wrongly assumes for 0.8.0 (facts §5): not ours.
    assert parse("0.8.0").default_tenant != "31b7b"


@pytest.mark.parametrize("tag", ["0.9.0", "0.8.3", "1.0.0", "0.8.2-dev1", "0.9.0-rc1", "0.6.0", "0.8.1-rc1"])
def test_db_version_unknown_when_tracardi_rule_is_unknown(tag: str) -> None:
    assert parse(tag).db_version is None
    assert parse(tag).default_tenant is None


def test_fourth_component_keeps_db_version() -> None:
    assert parse("0.8.0.3").db_version == "080"
    assert parse("0.8.2.7").db_version == "0820"


# ---------------------------------------------------------------------------------------------------
# Support


@pytest.mark.parametrize("tag", ["0.8.0", "0.8.1", "0.8.2", "0.8.2.1", "0.8.2.2", "0.8.2.15"])
def test_supported_releases(tag: str) -> None:
    verdict = v.check_target(parse(tag), allow_prerelease=False)
    assert verdict == v.Verdict(True, v.VERSION_ACCEPTED, verdict.message)


@pytest.mark.parametrize("tag", ["0.8.2-rc2", "0.9.0-dev", "0.9.0-dev2"])
def test_prereleases_need_opt_in(tag: str) -> None:
    refused = v.check_target(parse(tag), allow_prerelease=False)
    assert not refused.ok
    assert refused.reason == v.PRERELEASE_NOT_ALLOWED
    assert "allowPrerelease" in refused.message
    assert v.check_target(parse(tag), allow_prerelease=True).ok


@pytest.mark.parametrize("tag", ["0.7.0", "0.7.4"])
def test_old_releases_are_unsupported(tag: str) -> None:
    verdict = v.check_target(parse(tag), allow_prerelease=True)
    assert (verdict.ok, verdict.reason) == (False, v.UNSUPPORTED_VERSION)


@pytest.mark.parametrize(
    "tag", ["0.7.5", "0.8.3", "0.9.0", "1.0.0", "0.8.1.1", "0.8.0.1", "0.8.2-dev1", "0.9.0-rc1", "0.8.2.1-rc1"]
)
def test_unknown_versions(tag: str) -> None:
    for allow in (False, True):
        verdict = v.check_target(parse(tag), allow_prerelease=allow)
        assert (verdict.ok, verdict.reason) == (False, v.UNKNOWN_VERSION)


def test_migration_chain() -> None:
    assert v.migration_chain("080", "0820") == ("080", "08x", "0820")
    assert v.migration_chain("070", "0820") == ("070", "071", "072", "073", "074", "080", "08x", "0820")
    assert v.migration_chain("082x", "0820") == ("082x", "0820")
    assert v.migration_chain("08x", "08x") == ("08x",)
    assert v.migration_chain("0820", "08x") is None
    assert v.migration_chain("08x", "082x") is None
    assert v.migration_chain("0820", "09x") is None
    assert v.migration_chain("zzz", "0820") is None


def test_representatives_are_supported_and_of_their_db_version() -> None:
    for db, version in v.REPRESENTATIVES.items():
        assert version.db_version == db
        assert v.is_supported(version)


# ---------------------------------------------------------------------------------------------------
# Upgrade paths


def kinds(path: v.UpgradePath) -> list[tuple[str, str | None, str]]:
    return [
        (step.kind, None if step.from_version is None else str(step.from_version), str(step.to_version))
        for step in path.steps
    ]


def test_first_install() -> None:
    path = plan_upgrade(None, "0.8.1", allow_prerelease=False)
    assert (path.ok, path.reason) == (True, v.INSTALL)
    assert kinds(path) == [("Install", None, "0.8.1")]
    assert path.steps[0].to_db == "08x"
    assert path.steps[0].from_db is None


def test_first_install_of_prerelease_with_opt_in() -> None:
    assert plan_upgrade(None, "0.9.0-dev", allow_prerelease=True).ok
    refused = plan_upgrade(None, "0.9.0-dev", allow_prerelease=False)
    assert (refused.ok, refused.reason, refused.steps) == (False, v.PRERELEASE_NOT_ALLOWED, ())


def test_up_to_date() -> None:
    path = plan_upgrade("0.8.1", "0.8.1", allow_prerelease=False)
    assert (path.ok, path.reason, path.steps) == (True, v.UP_TO_DATE, ())


@pytest.mark.parametrize(("current", "target"), [("0.8.2.1", "0.8.2.2"), ("0.8.2", "0.8.2.1"), ("0.8.2.2", "0.8.2.1")])
def test_same_db_version_rolls(current: str, target: str) -> None:
    path = plan_upgrade(current, target, allow_prerelease=False)
    assert (path.ok, path.reason) == (True, v.ROLLING_UPDATE)
    assert kinds(path) == [("Rolling", current, target)]


def test_adjacent_major_bump_migrates() -> None:
    path = plan_upgrade("0.8.0", "0.8.1", allow_prerelease=False)
    assert (path.ok, path.reason) == (True, v.MIGRATION)
    assert kinds(path) == [("Migrate", "0.8.0", "0.8.1")]
    assert (path.steps[0].from_db, path.steps[0].to_db) == ("080", "08x")


def test_skipped_step_goes_through_representative() -> None:
    path = plan_upgrade("0.8.0", "0.8.2.1", allow_prerelease=False)
    assert path.ok
    assert kinds(path) == [("Migrate", "0.8.0", "0.8.1"), ("Migrate", "0.8.1", "0.8.2.1")]
    assert [(step.from_db, step.to_db) for step in path.steps] == [("080", "08x"), ("08x", "0820")]
    assert "through 0.8.1" in path.message


def test_skipped_step_ends_at_the_exact_target() -> None:
    path = plan_upgrade("0.8.0", "0.8.2.2", allow_prerelease=False)
    assert kinds(path)[-1] == ("Migrate", "0.8.1", "0.8.2.2")


def test_release_candidate_migrates_to_release() -> None:
    path = plan_upgrade("0.8.2-rc2", "0.8.2.1", allow_prerelease=False)
    assert kinds(path) == [("Migrate", "0.8.2-rc2", "0.8.2.1")]


def test_no_path_into_prerelease_db() -> None:
    path = plan_upgrade("0.8.1", "0.8.2-rc2", allow_prerelease=True)
    assert (path.ok, path.reason) == (False, v.NO_MIGRATION_PATH)
    path = plan_upgrade("0.8.2.1", "0.9.0-dev", allow_prerelease=True)
    assert (path.ok, path.reason) == (False, v.NO_MIGRATION_PATH)


def test_rollback_to_kept_version() -> None:
    path = plan_upgrade("0.8.1", "0.8.0", allow_prerelease=False, rollback_targets={"080"})
    assert (path.ok, path.reason) == (True, v.ROLLBACK)
    assert kinds(path) == [("Rollback", "0.8.1", "0.8.0")]
    assert "not carried back" in path.message


def test_rollback_over_several_db_versions() -> None:
    path = plan_upgrade("0.8.2.1", "0.8.0", allow_prerelease=False, rollback_targets={"080", "08x"})
    assert kinds(path) == [("Rollback", "0.8.2.1", "0.8.0")]


def test_rollback_refused_when_indices_are_gone() -> None:
    path = plan_upgrade("0.8.2.1", "0.8.1", allow_prerelease=False, rollback_targets={"080"})
    assert (path.ok, path.reason, path.steps) == (False, v.ROLLBACK_TARGET_DELETED, ())
    assert "0.8.2.1" in path.message  # says how to get back
    assert not plan_upgrade("0.8.1", "0.8.0", allow_prerelease=False).ok  # nothing kept by default


@pytest.mark.parametrize(
    ("current", "target", "allow", "reason"),
    [
        ("0.8.1", "banana", False, v.INVALID_VERSION),
        ("0.8.1", "0.8.1 ", False, v.INVALID_VERSION),
        ("0.8.1", "0.8.3", False, v.UNKNOWN_VERSION),
        ("0.8.1", "0.7.4", False, v.UNSUPPORTED_VERSION),
        ("0.8.1", "0.8.2-rc2", False, v.PRERELEASE_NOT_ALLOWED),
        ("nonsense", "0.8.1", False, v.INVALID_VERSION),
        ("0.9.0", "0.8.1", False, v.UNKNOWN_VERSION),
    ],
)
def test_refusals(current: str, target: str, allow: bool, reason: str) -> None:
    path = plan_upgrade(current, target, allow_prerelease=allow)
    assert (path.ok, path.reason, path.steps) == (False, reason, ())
    assert path.message
    assert path.verdict == v.Verdict(False, reason, path.message)


def test_step_descriptions() -> None:
    (install,) = plan_upgrade(None, "0.8.1", allow_prerelease=False).steps
    assert str(install) == "Install 0.8.1 (08x)"
    (migrate,) = plan_upgrade("0.8.0", "0.8.1", allow_prerelease=False).steps
    assert str(migrate) == "Migrate 0.8.0 (080) -> 0.8.1 (08x)"


supported_tags = st.sampled_from(["0.8.0", "0.8.1", "0.8.2", "0.8.2.1", "0.8.2.2", "0.8.2.9"])


@given(supported_tags, supported_tags, st.sets(st.sampled_from(["080", "08x", "0820"])))
def test_paths_between_supported_versions(current: str, target: str, kept: set[str]) -> None:
    path = plan_upgrade(current, target, allow_prerelease=False, rollback_targets=kept)
    here, there = parse(current), parse(target)
    if here.db_version == there.db_version:
        assert path.ok
        assert all(step.kind == "Rolling" for step in path.steps)
    elif there < here:
        assert path.ok == (there.db_version in kept)
    else:
        # Forward: always possible, one adjacent migration per step, ending exactly at the target.
        assert path.ok
        assert all(step.kind == "Migrate" for step in path.steps)
        assert path.steps[-1].to_version == there
        assert path.steps[0].from_version == here
        for before, after in zip(path.steps, path.steps[1:], strict=False):
            assert before.to_version == after.from_version
        for step in path.steps:
            assert step.from_db is not None
            assert step.to_db in v.MIGRATIONS[step.from_db]


@given(st.text(max_size=20), st.text(max_size=20), st.booleans())
def test_plan_never_crashes(current: str, target: str, allow: bool) -> None:
    path = plan_upgrade(current, target, allow_prerelease=allow)
    assert path.ok or not path.steps
    assert path.reason[0].isupper()


def test_a_tag_is_parsed_once_and_anything_else_every_time() -> None:
    from tracardi_operator.version_tags import MAX_TAG_LENGTH

    assert try_parse("0.8.2.1") is try_parse("0.8.2.1"), "kept: the result is immutable"
    assert try_parse("0.8.2.1").version == TracardiVersion(0, 8, 2, 1)
    assert not try_parse("nope").ok
    assert try_parse("nope") is try_parse("nope")
    long = "1" * (MAX_TAG_LENGTH + 1)
    assert not try_parse(long).ok
    assert try_parse(long) is not try_parse(long), "too long to be a tag: never kept"
    assert not try_parse(801).ok
