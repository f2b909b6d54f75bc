"""The entry point (pure): `decide` takes an installation and what is observed of its children and
returns the Decision of one pass: the step under way carried on (or the change resolved, or the
failure held), then what is reported whatever the step (refused pods, stalled rollouts, Ready)."""

from __future__ import annotations

from tracardi_operator.models import TracardiInstallation
from tracardi_operator.observe import Observed
from tracardi_operator.reasons import Reason
from tracardi_operator.rollout.draft import PAUSED, Decision, Draft, RolloutContext
from tracardi_operator.rollout.endings import failed_step
from tracardi_operator.rollout.readiness import ready, refused_pods, stalled_rollouts
from tracardi_operator.rollout.resolving import resolve
from tracardi_operator.rollout.steps import continue_upgrade


def decide(inst: TracardiInstallation, observed: Observed, ctx: RolloutContext) -> Decision:
    s = Draft(inst, ctx)
    spec = inst.spec
    if spec.paused:
        s.cond(PAUSED, True, Reason.PAUSED_BY_SPEC,
               "spec.paused is true: the operator changes nothing until it is false")
        ready(s, observed)
        return s.finish()
    s.cond(PAUSED, False, Reason.NOT_PAUSED, "the operator acts on this installation")
    s.status.target_version = spec.version

    up = s.status.upgrade
    if up is not None and up.step == "Failed":
        failed_step(s, observed)
    elif up is not None and up.step != "Completed":
        continue_upgrade(s, observed)
    else:
        resolve(s, observed)
        started = s.status.upgrade
        if started is not None and started.step == "Rolling":
            # An image roll (a patch bump, or a rollback) acts in the pass that records it: the pass
            # writes status before it applies anything, so the record still comes first. (Here `up`
            # was None or Completed, so a Rolling step is the one `resolve` just started, and it asked
            # for no pass at once.)
            continue_upgrade(s, observed)
    stalled_rollouts(s, observed)
    refused_pods(s, observed)
    ready(s, observed)
    return s.finish()
