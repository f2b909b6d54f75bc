"""The rollout state machine: from an installation (spec + status) and what is observed of its
children, the next thing to do. Pure: `decide()` returns a `Decision` (manifests to apply, Jobs to
create, objects to delete, the new status, Events) and the handler carries it out.

How a version change proceeds (every step first recorded in status, then acted on, so that a crash
at any point resumes where it stopped and never runs a Job twice):

1. Resolving: the path from the running version to spec.version is planned (versions.plan_upgrade);
   a refused target changes nothing and sets SpecAccepted=False. The first step is recorded.
2. Install (nothing runs yet): the GUI/staging API and worker start; the install Job runs against
   the API; only then do the production API and the GUI start (traffic before install breaks it).
3. Rolling (same db version) and Rollback (back to a kept version): every component rolls to the tag,
   from the pass that records the step (its status patch goes before the applies).
4. Migrate (next db version): StartingCandidate (the new API and worker beside the old ones) →
   Installing (install Job) → Migrating (Offline: the old production API scaled to zero; the
   migration Job, exactly once per pair, verifies every copy) → Switching (every component to the new
   tag, candidates removed) → the old version recorded Superseded. Skipped db versions are crossed
   one migration at a time (0.8.0 → 0.8.1 → 0.8.2.1).
5. A failed Job stops the change before the switch (Degraded; the old version keeps serving). A person
   retries by setting the annotation tracardi.com/retry to a new value, which starts the Job again
   under a new deterministic name (`-r2`, …); never after the switch. While failed, the side-by-side
   API and worker keep following the spec (a fix in spec.env reaches them), and a Job is created only
   once the pods it goes through run the current spec (no pod of an older template still running).

Where it lives: `entry` (decide), `draft` (Decision, RolloutContext and the Draft a pass writes into),
`resolving` (planning a change and the checks that refuse one), `steps` (Install, Rolling, Rollback,
Migrate), `jobs` (the install and migration Jobs), `endings` (completion, abandon, rollback, failure and
retry), `workloads` (Deployments and Services), `readiness` (refused pods, stalled rollouts, Ready).
"""

from __future__ import annotations

from tracardi_operator.jobs.repair import quarter_suffix
from tracardi_operator.rollout.draft import WAIT, Decision, Event, RolloutContext
from tracardi_operator.rollout.entry import decide
from tracardi_operator.rollout.readiness import REFUSED_HINT
from tracardi_operator.rollout.resolving import needs_shard_room

__all__ = ["REFUSED_HINT", "WAIT", "Decision", "Event", "RolloutContext", "decide", "needs_shard_room",
           "quarter_suffix"]
