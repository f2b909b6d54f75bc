"""The simulator's configuration, read once at start-up from the env Tracardi reads plus our own switches.

Tracardi's variables (docs/tracardi.md §6): ELASTIC_HOST, ELASTIC_SCHEME, ELASTIC_HTTP_AUTH_USERNAME,
ELASTIC_HTTP_AUTH_PASSWORD, ELASTIC_VERIFY_CERTS, PRODUCTION, EXPOSE_GUI_API, TENANT_NAME
(0.8.0: INSTANCE_PREFIX), INSTALLATION_TOKEN, *_PARTITIONING, REDIS_HOST, REDIS_PORT, REDIS_PASSWORD
(see redis_client.target_for), PERFORMANCE_TRACKING (0.8.0/0.8.1: yes/no; 0.8.2.x: a Sentry DSN, and
any other value stops the API and the worker at start-up, see `startup_error`).
The simulator's own: TRACARDI_SIM_FAULTS (see `Faults`), TRACARDI_SIM_MIGRATION (`faithful` default,
or `fixed`), TRACARDI_SIM_TOKEN_TTL (seconds, default 1800), TRACARDI_SIM_POLL (worker poll seconds).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from devenv.simulator.naming import Namespace, default_tenant
from devenv.simulator.redis_client import RedisTarget, target_for
from devenv.simulator.versions import Version

MigrationMode = Literal["faithful", "fixed"]


class SettingsError(ValueError):
    """A variable the simulator cannot run with; the message is one line for the pod's status."""


@dataclass(frozen=True)
class Faults:
    """Fault modes from TRACARDI_SIM_FAULTS, a comma list:
    `install-partial`, `migration-skips-partitioned`, `task-fails`, `http-500:<probability>`,
    `slow:<duration>` (`2s`, `500ms`), `wrong-quarter` (event/profile merge destination named with
    0.8.2's `(month % 4) + 1` quarter instead of the correct one, in fixed mode)."""

    install_partial: bool = False
    migration_skips_partitioned: bool = False
    task_fails: bool = False
    http_500: float = 0.0
    slow_seconds: float = 0.0
    wrong_quarter: bool = False


_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|s|m)?$")


def parse_duration(text: str) -> float:
    m = _DURATION.match(text.strip())
    if not m:
        raise SettingsError(f"TRACARDI_SIM_FAULTS: bad duration {text!r} (examples: 2s, 500ms)")
    n = float(m["n"])
    return {"ms": n / 1000, "m": n * 60}.get(m["unit"] or "s", n)


def parse_faults(text: str) -> Faults:
    values: dict[str, object] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, _, arg = item.partition(":")
        if name == "install-partial":
            values["install_partial"] = True
        elif name == "migration-skips-partitioned":
            values["migration_skips_partitioned"] = True
        elif name == "task-fails":
            values["task_fails"] = True
        elif name == "wrong-quarter":
            values["wrong_quarter"] = True
        elif name == "http-500":
            try:
                p = float(arg)
            except ValueError:
                raise SettingsError(f"TRACARDI_SIM_FAULTS: http-500 needs a probability, got {arg!r}") from None
            if not 0.0 <= p <= 1.0:
                raise SettingsError(f"TRACARDI_SIM_FAULTS: http-500 probability {p} not in [0, 1]")
            values["http_500"] = p
        elif name == "slow":
            values["slow_seconds"] = parse_duration(arg)
        else:
            raise SettingsError(f"TRACARDI_SIM_FAULTS: unknown fault {item!r}")
    return Faults(**values)  # type: ignore[arg-type]  # keys and types checked above


def _yes(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("yes", "true", "1", "on", "y")


def elastic_hosts(env: Mapping[str, str]) -> list[str]:
    """ELASTIC_HOST as a list of URLs: entries with a scheme are kept, others get ELASTIC_SCHEME and,
    without a port, 9200 (Tracardi does not read ELASTIC_PORT)."""
    scheme = env.get("ELASTIC_SCHEME", "http").strip() or "http"
    hosts: list[str] = []
    for raw in env.get("ELASTIC_HOST", "127.0.0.1").split(","):
        host = raw.strip().rstrip("/")
        if not host:
            continue
        if "://" not in host:
            host = f"{scheme}://{host}"
        if not re.search(r":\d+$", host.split("://", 1)[1]):
            host = f"{host}:9200"
        hosts.append(host)
    return hosts


def sentry_dsn_error(value: str) -> str | None:
    """Why sentry_sdk refuses `value` as a DSN (its wording), None for a usable DSN."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        return f"Unsupported scheme {parts.scheme!r}"
    if not parts.username:
        return "Missing public key"
    if not parts.hostname:
        return "Missing hostname"
    project = parts.path.rsplit("/", 1)[-1]
    if not project.isdigit():
        return f"Invalid project in DSN ({value!r})"
    return None


@dataclass(frozen=True)
class Settings:
    version: Version
    namespace: Namespace
    es_hosts: list[str]
    es_auth: tuple[str, str] | None
    es_verify_certs: bool
    production: bool
    expose_gui_api: bool
    installation_token: str
    migration_mode: MigrationMode
    faults: Faults
    token_ttl: float
    poll_interval: float
    redis: RedisTarget
    performance_tracking: str
    env: Mapping[str, str] = field(repr=False)

    @classmethod
    def from_env(cls, version: Version, env: Mapping[str, str]) -> Settings:
        tenant = env.get("TENANT_NAME", "").strip()
        if version.db_version == "080":
            tenant = env.get("INSTANCE_PREFIX", "").strip() or tenant
        mode = env.get("TRACARDI_SIM_MIGRATION", "faithful").strip().lower() or "faithful"
        if mode not in ("faithful", "fixed"):
            raise SettingsError(f"TRACARDI_SIM_MIGRATION must be faithful or fixed, got {mode!r}")
        user = env.get("ELASTIC_HTTP_AUTH_USERNAME", "")
        password = env.get("ELASTIC_HTTP_AUTH_PASSWORD", "")
        try:
            ttl = float(env.get("TRACARDI_SIM_TOKEN_TTL", "1800"))
            poll = float(env.get("TRACARDI_SIM_POLL", "0.5"))
        except ValueError as e:
            raise SettingsError(f"TRACARDI_SIM_TOKEN_TTL/TRACARDI_SIM_POLL: {e}") from None
        try:
            redis = target_for(version.db_version, env)
        except ValueError as e:
            raise SettingsError(f"REDIS_PORT: {e}") from None
        return cls(
            version=version,
            namespace=Namespace(version.db_version, tenant or default_tenant(version)),
            es_hosts=elastic_hosts(env),
            es_auth=(user, password) if user else None,
            es_verify_certs=_yes(env.get("ELASTIC_VERIFY_CERTS"), True),
            production=_yes(env.get("PRODUCTION"), False),
            expose_gui_api=_yes(env.get("EXPOSE_GUI_API"), True),
            installation_token=env.get("INSTALLATION_TOKEN", "tracardi"),
            migration_mode=mode,  # type: ignore[arg-type]  # checked above
            faults=parse_faults(env.get("TRACARDI_SIM_FAULTS", "")),
            token_ttl=ttl,
            poll_interval=poll,
            redis=redis,
            performance_tracking=env.get("PERFORMANCE_TRACKING", ""),
            env=dict(env),
        )


def startup_error(settings: Settings) -> str | None:
    """What stops Tracardi's API and worker at start-up, as one line (None: they start).
    0.8.2.x hands PERFORMANCE_TRACKING to sentry_sdk as a DSN, so `no` crashes it (docs/tracardi.md §9);
    0.8.0 and 0.8.1 read the variable as yes/no."""
    value = settings.performance_tracking.strip()
    if settings.version.db_version not in ("0820", "082x") or not value:
        return None
    reason = sentry_dsn_error(value)
    return None if reason is None else f"sentry_sdk.utils.BadDsn: {reason} (PERFORMANCE_TRACKING={value!r})"
