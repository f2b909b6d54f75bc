"""devenv's Redis component without starting it: the missing-binary message, the port rule, the argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv import procs, redis
from devenv.paths import State


def test_a_missing_redis_server_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(procs.DevenvError, match=r"redis-server.*make debs"):
        redis.server_binary()


def test_the_port_is_never_redis_default(monkeypatch: pytest.MonkeyPatch) -> None:
    offered = iter([6379, 6379, 24001])
    monkeypatch.setattr(procs, "free_port", lambda host: next(offered))
    assert redis.free_port() == 24001
    assert redis.url(24001) == "redis://127.0.0.1:24001"


def test_no_persistence_and_data_in_the_state_dir(tmp_path: Path) -> None:
    argv = redis.argv("/usr/bin/redis-server", State(tmp_path), 24001)
    assert argv[argv.index("--port") + 1] == "24001"
    assert argv[argv.index("--bind") + 1] == "127.0.0.1"
    assert argv[argv.index("--save") + 1] == ""
    assert argv[argv.index("--appendonly") + 1] == "no"
    assert argv[argv.index("--dir") + 1] == str(tmp_path / "data" / "redis")
