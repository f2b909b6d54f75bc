"""A test worker's devenv beside the first one (`lifecycle.worker_state`): its own state directory, the
first one's binaries."""

from __future__ import annotations

from pathlib import Path

from devenv.lifecycle import worker_state
from devenv.paths import State


def test_a_worker_state_is_beside_the_base_and_shares_its_binaries(tmp_path: Path) -> None:
    base = State(tmp_path / ".devenv")
    assert base.worker("gw1").root == tmp_path / ".devenv-gw1"
    assert not (tmp_path / ".devenv-gw1").exists()  # naming it makes nothing
    own = worker_state(base, "gw1")
    assert own.root.is_dir()
    assert own.bin.is_symlink()
    assert own.bin.resolve() == base.bin.resolve()
    (base.bin / "tool").write_text("built once")
    assert (own.bin / "tool").read_text() == "built once"
    assert worker_state(base, "gw1") == own  # again: nothing changes
    assert [w.root.name for w in base.workers()] == [".devenv-gw1"]


def test_a_worker_bin_of_its_own_is_replaced_by_the_link(tmp_path: Path) -> None:
    base = State(tmp_path / ".devenv")
    stale = tmp_path / ".devenv-gw2" / "bin"
    stale.mkdir(parents=True)
    (stale / "old-binary").write_text("x")
    own = worker_state(base, "gw2")
    assert own.bin.is_symlink()
    assert not (base.bin / "old-binary").exists()
