"""The command line: kopf's identity without a passwd entry, and the CRDs `apply-crds` ships."""

from __future__ import annotations

import datetime
import getpass
from pathlib import Path

import pytest

from tracardi_operator import crdgen
from tracardi_operator.__main__ import operator_identity

REPO = Path(__file__).resolve().parents[2]
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def _no_passwd_entry() -> str:
    raise KeyError("getpwuid(): uid not found: 65532")


def test_identity_without_a_passwd_entry_is_the_uid_at_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image runs as 65532, which has no passwd entry: kopf's own getpass.getuser() raised KeyError."""
    monkeypatch.setattr(getpass, "getuser", _no_passwd_entry)
    identity = operator_identity({"HOSTNAME": "tracardi-operator-5d9c-x2"}, 65532, "node", NOW)
    assert identity.startswith("uid65532@tracardi-operator-5d9c-x2/20260102030405/")


def test_identity_prefers_pod_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", _no_passwd_entry)
    assert operator_identity({"POD_ID": "op-1", "HOSTNAME": "h"}, 65532, "node", NOW) == "op-1"


def test_identity_with_a_user_name_and_no_hostname_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    identity = operator_identity({}, 1000, "laptop", NOW)
    assert identity.startswith("alice@laptop/20260102030405/")
    assert identity != operator_identity({}, 1000, "laptop", NOW)  # a random suffix per start, as kopf's


def test_packaged_crds_are_the_generated_ones() -> None:
    """`apply-crds` reads the package's copy through importlib.resources; it equals crds/ and the models."""
    packaged = crdgen.packaged_crds()
    assert packaged == crdgen.rendered_files()
    assert packaged == {p.name: p.read_text() for p in (REPO / "crds").glob("tracardi.com_*.yaml")}


def test_package_data_names_the_crds() -> None:
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["package-data"]["tracardi_operator"] == ["crds/*.yaml"]


def test_crdgen_writes_and_checks_every_directory(tmp_path: Path) -> None:
    one, two = tmp_path / "crds", tmp_path / "pkg"
    assert crdgen.main(["--output-dir", str(one), "--output-dir", str(two)]) == 0
    assert crdgen.main(["--check", "--output-dir", str(one), "--output-dir", str(two)]) == 0
    (two / "tracardi.com_tracardiinstallations.yaml").write_text("stale\n")
    assert crdgen.main(["--check", "--output-dir", str(one), "--output-dir", str(two)]) == 1


def test_default_directories_are_crds_the_package_and_the_chart() -> None:
    assert (Path("crds"), REPO / "operator" / "tracardi_operator" / "crds",
            Path("charts/tracardi-operator/crds")) == crdgen.DEFAULT_OUTPUT_DIRS


def test_health_listens_everywhere_unless_given_the_pods_own_address() -> None:
    """devenv's pods share the host's network: its overlay gives each replica its pod IP."""
    from tracardi_operator.settings import Settings

    assert Settings.from_env({}).health_host == "0.0.0.0"
    assert Settings.from_env({"TRACARDI_OPERATOR_HEALTH_HOST": "127.3.0.7"}).health_host == "127.3.0.7"
