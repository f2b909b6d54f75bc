"""Which TracardiRetentionPolicy governs an installation (pure).

The policies' selectors are Kubernetes label selectors, matched as the API server would
(`models.LabelSelector.matches`, the one matcher); the highest priority wins, and a tie at the top means
that none does. `policy_of` reads a TracardiRetentionPolicy object, `governed_by` lists the installations
one policy governs (for the policy's own status).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from tracardi_operator.models import TracardiInstallation, TracardiRetentionPolicy
from tracardi_operator.reasons import Reason
from tracardi_operator.retention.history import RetentionPolicy, RetentionRules


class SelectionOutcome(StrEnum):
    """How selection ended, spelled as the RetentionPolicyResolved reason that says so."""

    GOVERNED = Reason.GOVERNED.value
    NO_POLICY = Reason.NO_POLICY.value
    POLICY_TIE = Reason.POLICY_TIE.value


@dataclass(frozen=True)
class PolicySelection:
    outcome: SelectionOutcome
    policy: RetentionPolicy | None = None
    tied: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        if self.outcome is SelectionOutcome.GOVERNED and self.policy is not None:
            return f"governed by {self.policy.name}"
        if self.outcome is SelectionOutcome.POLICY_TIE:
            return f"tie between {' and '.join(self.tied)}: no policy applies"
        return "no retention policy selects this installation"


def select_policy(
    policies: Iterable[RetentionPolicy],
    namespace_labels: Mapping[str, str],
    installation_labels: Mapping[str, str],
) -> PolicySelection:
    matching = [
        policy
        for policy in policies
        if (policy.namespace_selector is None or policy.namespace_selector.matches(namespace_labels))
        and (policy.selector is None or policy.selector.matches(installation_labels))
    ]
    if not matching:
        return PolicySelection(SelectionOutcome.NO_POLICY)
    top = max(policy.priority for policy in matching)
    winners = sorted((p for p in matching if p.priority == top), key=lambda p: p.name)
    if len(winners) > 1:
        return PolicySelection(SelectionOutcome.POLICY_TIE, tied=tuple(p.name for p in winners))
    return PolicySelection(SelectionOutcome.GOVERNED, policy=winners[0])


def policy_of(model: TracardiRetentionPolicy) -> RetentionPolicy:
    spec = model.spec
    return RetentionPolicy(
        name=model.metadata.name,
        priority=spec.priority,
        namespace_selector=spec.namespace_selector,
        selector=spec.selector,
        rules=RetentionRules(
            keep_superseded_versions=spec.keep_superseded_versions,
            min_age_after_superseded=spec.min_age,
            dry_run=spec.dry_run,
            max_deletions_per_run=spec.max_deletions_per_run,
        ),
    )


def governed_by(
    policy_name: str,
    policies: Sequence[TracardiRetentionPolicy],
    installations: Sequence[TracardiInstallation],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> list[tuple[str, str]]:
    """(namespace, name) of the installations `policy_name` governs: selected, retention enabled, not
    outranked and not tied."""
    rules = [policy_of(p) for p in policies]
    governed = []
    for inst in installations:
        if not inst.spec.retention.enabled:
            continue
        selection = select_policy(rules, namespace_labels.get(inst.namespace, {}), inst.metadata.labels or {})
        if selection.outcome is SelectionOutcome.GOVERNED and selection.policy is not None \
                and selection.policy.name == policy_name:
            governed.append((inst.namespace, inst.name))
    return sorted(governed)
