"""The Deployments and Services a step applies or deletes, and how a step reads them back (pure):
the serving version's objects (primary), the candidates run beside it during a migration, whether
every component rolled out, and the URL a Job reaches the new API at."""

from __future__ import annotations

from tracardi_operator import builders
from tracardi_operator.observe import Observed
from tracardi_operator.rollout.draft import Draft


def primary_manifests(s: Draft, version: str, *, components: tuple[builders.ServingComponent, ...]
                       = builders.SERVING_COMPONENTS, production_replicas: int | None = None) -> None:
    for component in components:
        replicas = production_replicas if component == "api-production" else None
        s.d.apply.append(builders.deployment(s.inst, component, version, replicas=replicas))
        if component in builders.SERVICE_COMPONENTS:
            s.d.apply.append(builders.service(s.inst, component, version))


def converge_primary(s: Draft, version: str) -> None:
    """Keep the running version's objects as they should be (drift, deleted objects, spec edits)."""
    primary_manifests(s, version)


def workload_names(s: Draft, *components: builders.ServingComponent) -> list[str]:
    return [builders.workload_name(s.inst.name, c) for c in components]


def all_rolled_out(s: Draft, observed: Observed, version: str,
                    components: tuple[builders.ServingComponent, ...] = builders.SERVING_COMPONENTS) -> bool:
    return all(observed.rolled_out(builders.workload_name(s.inst.name, c), version) for c in components)


def api_url(s: Draft, observed: Observed, deployment_name: str, slot: builders.Slot, db: str | None) -> str | None:
    if s.ctx.api_addressing == "service":
        return builders.api_service_url(s.inst, slot, db)
    ips = observed.pod_ips.get(deployment_name, ())
    return f"http://{ips[0]}:{builders.HTTP_PORT}" if ips else None


def candidate_manifests(s: Draft, version: str, db: str) -> None:
    for component in builders.CANDIDATE_COMPONENTS:
        s.d.apply.append(builders.deployment(s.inst, component, version, slot="candidate", db_version=db))
    s.d.apply.append(builders.service(s.inst, "api", version, slot="candidate", db_version=db))


def delete_candidates(s: Draft, db: str) -> None:
    for component in builders.CANDIDATE_COMPONENTS:
        s.d.delete.append(("apps/v1", "Deployment", builders.workload_name(s.inst.name, component, "candidate", db)))
    s.d.delete.append(("v1", "Service", builders.workload_name(s.inst.name, "api", "candidate", db)))
