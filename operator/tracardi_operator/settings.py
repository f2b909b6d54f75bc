"""The operator's settings: one typed object read from the environment once, at start-up.

Nothing reads the environment anywhere else; tests build `Settings(...)` directly.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ApiAddressing = Literal["service", "pod"]

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _sa_path(env: Mapping[str, str]) -> Path:
    """Where a pod's ServiceAccount token, CA and namespace are mounted ($TRACARDI_OPERATOR_SA_DIR overrides)."""
    return Path(env.get("TRACARDI_OPERATOR_SA_DIR") or SA_DIR)


def sa_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """The mounted ServiceAccount directory when running in a pod (a token there and
    $KUBERNETES_SERVICE_HOST set), else None: then the operator is outside a cluster."""
    e = os.environ if env is None else env
    path = _sa_path(e)
    return path if (path / "token").exists() and e.get("KUBERNETES_SERVICE_HOST") else None


@dataclass(frozen=True)
class Settings:
    job_image: str = "tracardi-operator:0.1.0"
    """Image of the install and migration Jobs: the operator's own (repository `tracardi-operator`)."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means all."""
    api_addressing: ApiAddressing = "pod"
    """How Jobs reach a Tracardi API: Service DNS inside a cluster, pod addresses outside one."""
    health_port: int = 8080
    """Port of /metrics, /healthz and /readyz."""
    health_host: str = "0.0.0.0"  # noqa: S104 - the kubelet and Prometheus reach the pod on its own IP
    """Address they listen on: every address of the pod by default; devenv, whose pods share the host's
    network, gives each pod's own (loopback) IP."""
    resync_seconds: float = 300.0
    """How often an idle installation is looked at again (retention ages, lost events), with jitter."""
    workers: int = 8
    """How many installations are reconciled at once (threads; each pass is one installation's)."""
    watch_stale_seconds: float = 900.0
    """Liveness fails when no watch event arrived for this long (the heartbeat, every third of it up to a
    minute, counts as one while the installations' watch is caught up)."""
    health_grace_seconds: float = 120.0
    """Alive during start-up for this long, before the first event."""
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    job_deadline_seconds: int = 3600
    """activeDeadlineSeconds of install and migration Jobs."""
    leader_election: bool = True
    """Only the holder of the Lease `tracardi-operator` in `lease_namespace` reconciles."""
    lease_namespace: str = "default"
    identity: str = "tracardi-operator"
    """This replica's name in the Lease: the pod's name in a cluster."""
    flattened_check: bool = True
    """The install Job first checks that Elasticsearch knows the `flattened` field type Tracardi's
    templates need. Off only for Tracardi stand-ins on an OSS Elasticsearch (the local environment)."""
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        in_cluster = sa_dir(e) is not None
        addressing = e.get("TRACARDI_OPERATOR_API_ADDRESSING", "auto")
        if addressing not in ("auto", "service", "pod"):
            raise ValueError(
                f"TRACARDI_OPERATOR_API_ADDRESSING must be auto, service or pod, not {addressing!r}"
            )
        resolved: ApiAddressing = (
            ("service" if in_cluster else "pod") if addressing == "auto" else addressing  # type: ignore[assignment]
        )
        fmt = e.get("LOG_FORMAT", "text")
        if fmt not in ("text", "json"):
            raise ValueError(f"LOG_FORMAT must be text or json, not {fmt!r}")
        election = e.get("TRACARDI_OPERATOR_LEADER_ELECTION", "on")
        if election not in ("on", "off"):
            raise ValueError(f"TRACARDI_OPERATOR_LEADER_ELECTION must be on or off, not {election!r}")
        check = e.get("TRACARDI_OPERATOR_FLATTENED_CHECK", "on")
        if check not in ("on", "off"):
            raise ValueError(f"TRACARDI_OPERATOR_FLATTENED_CHECK must be on or off, not {check!r}")
        return cls(
            job_image=e.get("TRACARDI_OPERATOR_JOB_IMAGE", cls.job_image),
            namespaces=tuple(n.strip() for n in e.get("TRACARDI_OPERATOR_NAMESPACES", "").split(",") if n.strip()),
            api_addressing=resolved,
            health_port=int(e.get("TRACARDI_OPERATOR_HEALTH_PORT", cls.health_port)),
            health_host=e.get("TRACARDI_OPERATOR_HEALTH_HOST") or cls.health_host,
            resync_seconds=float(e.get("TRACARDI_OPERATOR_RESYNC_SECONDS", cls.resync_seconds)),
            workers=_workers(e.get("TRACARDI_OPERATOR_WORKERS", str(cls.workers))),
            watch_stale_seconds=float(e.get("TRACARDI_OPERATOR_WATCH_STALE_SECONDS", cls.watch_stale_seconds)),
            health_grace_seconds=float(e.get("TRACARDI_OPERATOR_HEALTH_GRACE_SECONDS", cls.health_grace_seconds)),
            log_format=fmt,  # type: ignore[arg-type]
            log_level=e.get("LOG_LEVEL", "INFO").upper(),
            job_deadline_seconds=int(e.get("TRACARDI_OPERATOR_JOB_DEADLINE_SECONDS", cls.job_deadline_seconds)),
            flattened_check=check == "on",
            leader_election=election == "on",
            lease_namespace=e.get("TRACARDI_OPERATOR_LEASE_NAMESPACE") or e.get("POD_NAMESPACE") or _sa_namespace(e)
            or "default",
            identity=e.get("TRACARDI_OPERATOR_IDENTITY") or e.get("POD_NAME") or socket.gethostname(),
        )


MAX_WORKERS = 64


def _workers(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise ValueError(f"TRACARDI_OPERATOR_WORKERS must be a whole number from 1 to {MAX_WORKERS}, not {text!r}")
    return int(text)


def _sa_namespace(env: Mapping[str, str]) -> str | None:
    """The namespace of the pod's ServiceAccount, when running in a pod."""
    try:
        return (_sa_path(env) / "namespace").read_text().strip() or None
    except OSError:
        return None
