"""Status conditions (metav1.Condition) and the phase that summarises them (pure).

Conditions are the contract with users and tools (`kubectl wait --for=condition=Ready`); the phase is a
one-word summary for people. Functions here take a list of conditions and return a new one; the time is
passed in, so results are reproducible and an unchanged condition yields an unchanged list, which lets
handlers skip a status patch that would change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from tracardi_operator.models import Condition, ConditionStatus, Phase

# Condition types of a TracardiInstallation.
READY = "Ready"  # the installation serves its current version, installed and verified
PROGRESSING = "Progressing"  # an install, rolling update, migration or rollback is under way
DEGRADED = "Degraded"  # something failed (a Job, a verification); the old version keeps serving
PAUSED = "Paused"  # spec.paused: the operator does not act
SPEC_ACCEPTED = "SpecAccepted"  # False when a guard refuses spec.version (the reason says which)
RETENTION_POLICY_RESOLVED = "RetentionPolicyResolved"  # False on a priority tie between policies
SHARED_VERSION_DATA = "SharedVersionData"  # another installation on the cluster uses one of our pairs
DELETION_INCOMPLETE = "DeletionIncomplete"  # a version half deleted, its plan withdrawn: a person decides
CLUSTER_IDENTIFIED = "ClusterIdentified"  # Elasticsearch told its cluster_uuid (else nothing is deleted)
INDEX_HEADROOM_LOW = "IndexHeadroomLow"  # shards in use at or above 80% of the cluster's limit

# Condition types of a TracardiRetentionPolicy.
POLICY_VALID = "Valid"

MAX_MESSAGE_LENGTH = 32768


def find(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    """The condition of that type, if present."""
    return next((condition for condition in conditions if condition.type == condition_type), None)


def status_of(conditions: Sequence[Condition], condition_type: str) -> ConditionStatus:
    """The status of that condition; Unknown when absent."""
    condition = find(conditions, condition_type)
    return "Unknown" if condition is None else condition.status


def is_true(conditions: Sequence[Condition], condition_type: str) -> bool:
    return status_of(conditions, condition_type) == "True"


def make_condition(
    condition_type: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str,
    *,
    now: datetime,
    observed_generation: int | None = None,
) -> Condition:
    """A condition stamped with `now` (to the second, as metav1.Time stores it)."""
    if isinstance(status, bool):
        status = "True" if status else "False"
    return Condition(
        type=condition_type,
        status=status,
        reason=reason,
        message=message[:MAX_MESSAGE_LENGTH],
        last_transition_time=now.replace(microsecond=0),
        observed_generation=observed_generation,
    )


def merge(conditions: Sequence[Condition], updates: Iterable[Condition]) -> list[Condition]:
    """`conditions` with `updates` applied: same type replaced in place, new types appended.

    lastTransitionTime moves only when the status changes: a new reason or message with the same
    status is not a transition.
    """
    merged = list(conditions)
    for update in updates:
        index = next((i for i, existing in enumerate(merged) if existing.type == update.type), None)
        if index is None:
            merged.append(update)
            continue
        existing = merged[index]
        if existing.status == update.status:
            update = update.model_copy(update={"last_transition_time": existing.last_transition_time})
        merged[index] = update
    return merged


def set_condition(
    conditions: Sequence[Condition],
    condition_type: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str,
    *,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """`conditions` with one condition set (see `merge` for when lastTransitionTime moves)."""
    update = make_condition(condition_type, status, reason, message, now=now, observed_generation=observed_generation)
    return merge(conditions, [update])


def remove(conditions: Sequence[Condition], condition_type: str) -> list[Condition]:
    """`conditions` without that type."""
    return [condition for condition in conditions if condition.type != condition_type]


def summarize_phase(conditions: Sequence[Condition]) -> Phase:
    """One word for people, from the conditions, most pressing first.

    Paused wins because nothing else moves while paused; Degraded before Blocked because a failure
    needs a person more urgently than a refused version; Progressing before Ready because an
    installation can serve while it upgrades.
    """
    if is_true(conditions, PAUSED):
        return "Paused"
    if is_true(conditions, DEGRADED):
        return "Degraded"
    if status_of(conditions, SPEC_ACCEPTED) == "False":
        return "Blocked"
    if is_true(conditions, PROGRESSING):
        return "Progressing"
    if is_true(conditions, READY):
        return "Ready"
    return "Pending"
