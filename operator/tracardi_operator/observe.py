"""What the operator sees of an installation's children, reduced to the plain facts its decisions use.

`observe()` turns the Deployments, Jobs and Pods listed from the API into an `Observed`; it is pure,
so the rollout decisions are tested on hand-made observations without a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tracardi_operator.labels import LABEL_VERSION

JobPhase = Literal["Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class DeploymentState:
    name: str
    version: str | None
    """The Tracardi tag its pod template runs (label app.kubernetes.io/version)."""
    replicas: int
    ready_replicas: int
    updated_replicas: int
    rolled_out: bool
    """The controller has seen the newest spec and every replica is updated and ready."""
    stalled: bool = False
    """The rollout made no progress within its progressDeadlineSeconds (ProgressDeadlineExceeded)."""
    refused: str = ""
    """Why the apiserver refuses its pods (condition ReplicaFailure, e.g. Pod Security admission)."""


@dataclass(frozen=True)
class JobState:
    name: str
    phase: JobPhase
    result: Mapping[str, Any] | None = None
    """The JSON the Job's program wrote as its termination message, when it did."""
    message: str = ""
    """Why the Job failed, as Kubernetes or the program says it."""
    pods: int = 0
    """Pods the Job has (none while the apiserver refuses to create them)."""
    refused: str = ""
    """Why the apiserver refuses its pods (its FailedCreate Event), filled in by the reconcile pass."""


@dataclass(frozen=True)
class Observed:
    deployments: Mapping[str, DeploymentState] = field(default_factory=dict)
    jobs: Mapping[str, JobState] = field(default_factory=dict)
    pod_ips: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Addresses of the ready pods of each Deployment, by Deployment name."""
    terminating: Mapping[str, int] = field(default_factory=dict)
    """Pods of each Deployment that are being deleted (their process may still run), by Deployment name."""

    def rolled_out(self, name: str, version: str) -> bool:
        d = self.deployments.get(name)
        return d is not None and d.version == version and d.rolled_out

    def settled(self, name: str, version: str) -> bool:
        """Rolled out at `version` and no pod of an older template still running (being deleted)."""
        return self.rolled_out(name, version) and not self.terminating.get(name, 0)

    def serving(self, name: str) -> bool:
        d = self.deployments.get(name)
        return d is not None and (d.ready_replicas > 0 or d.replicas == 0)


def decision_facts(obj: Mapping[str, Any]) -> tuple[object, ...]:
    """What the rollout decisions read of one Deployment: its `DeploymentState` without the replica
    counts between none and all (a rolling update moves them several times and no decision reads
    them, only whether it is rolled out and whether any replica is ready), and whether any of its pods
    is terminating, where the Deployment says so (status.terminatingReplicas, Kubernetes 1.33 and later:
    a step that waits for old pods to go reads them from the pods). A watch event that changes none of
    this changes no decision, so it need not wake the installation."""
    d = _deployment(obj)
    terminating = bool((obj.get("status") or {}).get("terminatingReplicas"))
    return d.version, d.replicas, d.rolled_out, d.stalled, d.refused, d.ready_replicas > 0, terminating


def _deployment(obj: Mapping[str, Any]) -> DeploymentState:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {}) or {}
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {}) or {}
    replicas = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas", 0) or 0)
    updated = int(status.get("updatedReplicas", 0) or 0)
    total = int(status.get("replicas", 0) or 0)
    seen = int(status.get("observedGeneration", 0) or 0) >= int(meta.get("generation", 0) or 0)
    return DeploymentState(
        name=meta.get("name", ""),
        version=labels.get(LABEL_VERSION),
        replicas=replicas,
        ready_replicas=ready,
        updated_replicas=updated,
        rolled_out=seen and updated == replicas and ready == replicas and total == replicas,
        stalled=any(c.get("type") == "Progressing" and c.get("status") == "False"
                    and c.get("reason") == "ProgressDeadlineExceeded" for c in status.get("conditions") or []),
        refused=next((str(c.get("message") or c.get("reason") or "FailedCreate")
                      for c in status.get("conditions") or []
                      if c.get("type") == "ReplicaFailure" and c.get("status") == "True"), ""),
    )


def _termination_result(pods: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any] | None, str]:
    """The newest terminated container's message, parsed as JSON when it is JSON."""
    best: tuple[str, str] | None = None
    for pod in pods:
        for cs in (pod.get("status", {}) or {}).get("containerStatuses", []) or []:
            term = (cs.get("state", {}) or {}).get("terminated")
            if term:
                stamp = term.get("finishedAt") or ""
                if best is None or stamp >= best[0]:
                    best = (stamp, term.get("message") or "")
    if best is None:
        return None, ""
    text = best[1].strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return None, text
    return (parsed if isinstance(parsed, dict) else None), text


def _job(obj: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> JobState:
    name = obj.get("metadata", {}).get("name", "")
    status = obj.get("status", {}) or {}
    conds = {c.get("type"): c for c in status.get("conditions", []) or [] if c.get("status") == "True"}
    result, text = _termination_result(pods)
    if "Complete" in conds:
        return JobState(name, "Succeeded", result, text, len(pods))
    if "Failed" in conds:
        c = conds["Failed"]
        why = text or f"{c.get('reason', 'Failed')}: {c.get('message', '')}".strip(": ")
        return JobState(name, "Failed", result, why, len(pods))
    return JobState(name, "Running", result, text, len(pods))


def observe(children: Mapping[str, Sequence[Mapping[str, Any]]]) -> Observed:
    """Deployments, Jobs and Pods (as listed by kube.Kube.list_children) → Observed."""
    pods = children.get("pods", [])
    by_job: dict[str, list[Mapping[str, Any]]] = {}
    ready_ips: dict[str, list[str]] = {}
    terminating: dict[str, int] = {}
    deployments = {d.name: d for d in map(_deployment, children.get("deployments", []))}
    for pod in pods:
        labels = pod.get("metadata", {}).get("labels", {}) or {}
        if "job-name" in labels:
            by_job.setdefault(labels["job-name"], []).append(pod)
            continue
        status = pod.get("status", {}) or {}
        owner = _deployment_of(pod, deployments)
        if pod.get("metadata", {}).get("deletionTimestamp"):
            if owner:
                terminating[owner] = terminating.get(owner, 0) + 1
            continue
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []) or [])
        if ready and status.get("podIP") and owner:
            ready_ips.setdefault(owner, []).append(status["podIP"])
    jobs = {}
    for obj in children.get("jobs", []):
        job = _job(obj, by_job.get(obj.get("metadata", {}).get("name", ""), []))
        jobs[job.name] = job
    return Observed(
        deployments=deployments,
        jobs=jobs,
        pod_ips={k: tuple(sorted(v)) for k, v in ready_ips.items()},
        terminating=terminating,
    )


def _deployment_of(pod: Mapping[str, Any], deployments: Mapping[str, DeploymentState]) -> str | None:
    """A ReplicaSet is named `<deployment>-<hash>`; its pods carry it as owner."""
    for ref in pod.get("metadata", {}).get("ownerReferences", []) or []:
        if ref.get("kind") == "ReplicaSet":
            rs = str(ref.get("name", ""))
            head = rs.rsplit("-", 1)[0]
            if head in deployments:
                return head
    return None
