"""What the rollout reports whatever the step (pure): pods the apiserver refuses and Deployments that
make no progress (Degraded), and whether the installation serves (Ready)."""

from __future__ import annotations

from tracardi_operator import builders, conditions
from tracardi_operator.observe import Observed
from tracardi_operator.reasons import Reason
from tracardi_operator.rollout.draft import DEGRADED, READY, Draft, is_offline
from tracardi_operator.rollout.workloads import workload_names

REFUSED_HINT = ("the namespace's Pod Security level refuses them? Label it for a lower level, or set "
                "spec.security (a UID for `restricted`)")


def refused_pods(s: Draft, observed: Observed) -> None:
    """Pods the apiserver refuses to create (Pod Security admission, a quota) never come: say so at
    once, with the apiserver's words, rather than wait for a progress deadline. A failed Job's Degraded
    stays the more specific word; this clears once the pods are created."""
    refused = [(name, d.refused) for name, d in sorted(observed.deployments.items()) if d.refused]
    refused += [(name, j.refused) for name, j in sorted(observed.jobs.items()) if j.refused]
    degraded = conditions.find(s.status.conditions, DEGRADED)
    if degraded is not None and degraded.status == "True" and degraded.reason not in (Reason.PODS_REFUSED,
                                                                                      Reason.ROLLOUT_STALLED):
        return
    if not refused:
        if degraded is not None and degraded.reason == Reason.PODS_REFUSED:
            s.cond(DEGRADED, False, Reason.AS_EXPECTED, "the pods are created again")
        return
    message = "; ".join(f"{name}: {why}" for name, why in refused)[:2000] + f" ({REFUSED_HINT})"
    if degraded is None or degraded.reason != Reason.PODS_REFUSED or degraded.message != message:
        s.event("Warning", Reason.PODS_REFUSED, message)
    s.cond(DEGRADED, True, Reason.PODS_REFUSED, message)


def stalled_rollouts(s: Draft, observed: Observed) -> None:
    """A Deployment that cannot roll out (image not pullable, crash loop) would be waited on forever:
    say so. A failed Job's Degraded stays the more specific word."""
    stalled = sorted(name for name, d in observed.deployments.items() if d.stalled)
    degraded = conditions.find(s.status.conditions, DEGRADED)
    if degraded is not None and degraded.status == "True" and degraded.reason != Reason.ROLLOUT_STALLED:
        return
    if not stalled:
        if degraded is not None and degraded.reason == Reason.ROLLOUT_STALLED:
            s.cond(DEGRADED, False, Reason.AS_EXPECTED, "every Deployment makes progress again")
        return
    message = (f"{', '.join(stalled)} made no progress within its progress deadline (an image that cannot be "
               f"pulled? pods that crash?); see kubectl describe deployment and the pods' events")
    if degraded is None or degraded.reason != Reason.ROLLOUT_STALLED:
        s.event("Warning", Reason.ROLLOUT_STALLED, message)
    s.cond(DEGRADED, True, Reason.ROLLOUT_STALLED, message)


def ready(s: Draft, observed: Observed) -> None:
    current = s.status.current_version
    if current is None:
        s.cond(READY, False, Reason.NOT_INSTALLED, "no version is installed yet")
        return
    names = workload_names(s, "api", "api-production", "gui")
    down = [n for n in names if not observed.serving(n)]
    up = s.status.upgrade
    offline = up is not None and up.step == "Migrating" and is_offline(s)
    production_name = builders.workload_name(s.inst.name, "api-production")
    production = observed.deployments.get(production_name)
    # `serving` counts a Deployment scaled to zero as fine; a production API at zero replicas that the
    # spec wants running collects no events (the old one during an Offline copy, or while switching).
    scaled_down = (production is not None and production.replicas == 0
                   and s.inst.spec.replicas.api_production > 0)
    if scaled_down and production_name not in down:
        down.append(production_name)
    if s.inst.spec.paused and not observed.deployments:
        s.cond(READY, False, Reason.PAUSED, "paused before anything was deployed")
    elif offline and up is not None and production_name in down:
        s.cond(READY, False, Reason.OFFLINE_MIGRATION,
               f"event collection is paused: the production API of {current} is scaled to zero while "
               f"{up.from_db_version} → {up.to_db_version} is copied (upgrade.strategy Offline)")
    elif down:
        s.cond(READY, False, Reason.COMPONENTS_UNAVAILABLE, f"not serving yet: {', '.join(down)}")
    else:
        s.cond(READY, True, Reason.SERVING, f"{current} serves")
