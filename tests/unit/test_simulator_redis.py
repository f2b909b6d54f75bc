"""The simulator's Redis side and start-up rules without a server: where each version connects, the
RESP encoding, redis-py's error text, and PERFORMANCE_TRACKING (docs/tracardi.md §9)."""

from __future__ import annotations

import io
import socket

import pytest

from devenv.simulator.redis_client import Redis, RedisError, RedisTarget, encode, read_reply, target_for
from devenv.simulator.settings import Settings, SettingsError, sentry_dsn_error, startup_error
from devenv.simulator.versions import V08X, V080, V082X, V0820

URL_ONLY = {"REDIS_HOST": "redis://cache.svc:6390"}


def test_080_connects_to_the_url_as_it_is() -> None:
    assert target_for("080", URL_ONLY) == RedisTarget("cache.svc", 6390)
    assert target_for("080", {"REDIS_HOST": "redis://:pw@r:7000"}) == RedisTarget("r", 7000, "pw")
    assert target_for("080", {}) == RedisTarget("localhost", 6379)


@pytest.mark.parametrize("db", ["08x", "0820", "082x"])
def test_081_and_082_take_the_port_from_redis_port(db: str) -> None:
    assert target_for(db, URL_ONLY) == RedisTarget("cache.svc", 6379)  # the bug of issue 16
    both = {**URL_ONLY, "REDIS_PORT": "6390", "REDIS_PASSWORD": "pw"}
    assert target_for(db, both) == RedisTarget("cache.svc", 6390, "pw")
    assert target_for(db, {"REDIS_HOST": "cache.svc", "REDIS_PORT": "7001"}) == RedisTarget("cache.svc", 7001)
    with pytest.raises(ValueError, match="invalid literal"):
        target_for(db, {"REDIS_PORT": "six"})


def test_settings_carry_the_target_and_refuse_a_bad_port() -> None:
    assert Settings.from_env(V08X, {**URL_ONLY, "REDIS_PORT": "6390"}).redis == RedisTarget("cache.svc", 6390)
    with pytest.raises(SettingsError, match="REDIS_PORT"):
        Settings.from_env(V0820, {"REDIS_PORT": "0"})


def test_resp_encoding_and_replies() -> None:
    assert encode("SET", "k", "v", "PX", 1500) == b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nPX\r\n$4\r\n1500\r\n"
    assert read_reply(io.BytesIO(b"+OK\r\n")) == "OK"
    assert read_reply(io.BytesIO(b":3\r\n")) == 3
    assert read_reply(io.BytesIO(b"$5\r\nhello\r\n")) == b"hello"
    assert read_reply(io.BytesIO(b"$-1\r\n")) is None
    assert read_reply(io.BytesIO(b"*2\r\n$1\r\na\r\n:1\r\n")) == [b"a", 1]
    with pytest.raises(RedisError, match="WRONGPASS"):
        read_reply(io.BytesIO(b"-WRONGPASS invalid username-password pair\r\n"))
    with pytest.raises(RedisError, match="closed"):
        read_reply(io.BytesIO(b""))


def test_a_refused_connection_reads_as_redis_py_says_it() -> None:
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(RedisError) as e:
            Redis(RedisTarget("127.0.0.1", port), timeout=2)
    assert str(e.value) == f"Error 111 connecting to 127.0.0.1:{port}. Connection refused."


@pytest.mark.parametrize(("value", "reason"), [
    ("no", "Unsupported scheme ''"),
    ("yes", "Unsupported scheme ''"),
    ("ftp://k@sentry.io/1", "Unsupported scheme 'ftp'"),
    ("https://sentry.io/1", "Missing public key"),
    ("https://key@o1.ingest.sentry.io/450", None),
])
def test_sentry_dsn(value: str, reason: str | None) -> None:
    assert sentry_dsn_error(value) == reason


def test_performance_tracking_crashes_only_082_on_a_non_dsn() -> None:
    for version in (V080, V08X):
        assert startup_error(Settings.from_env(version, {"PERFORMANCE_TRACKING": "no"})) is None
    for version in (V0820, V082X):
        crash = startup_error(Settings.from_env(version, {"PERFORMANCE_TRACKING": "no"}))
        assert crash is not None
        assert "Unsupported scheme" in crash
        assert "\n" not in crash
        assert startup_error(Settings.from_env(version, {})) is None
        dsn = {"PERFORMANCE_TRACKING": "https://key@o1.ingest.sentry.io/450"}
        assert startup_error(Settings.from_env(version, dsn)) is None
