"""kopf wiring only: start-up, the per-installation loop, and the watch events that wake it.

Every decision lives in `rollout`/`retention`; every call to the API in `kube`; this module connects them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf

from tracardi_operator import API_GROUP, API_VERSION, health, leader, memory, metrics
from tracardi_operator.kube import Kube
from tracardi_operator.kubeclient import Credentials, KubeClient, credentials_from_environment
from tracardi_operator.labels import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY
from tracardi_operator.models import INSTALLATION, RETENTION_POLICY
from tracardi_operator.runtime import Runtime
from tracardi_operator.settings import Settings, sa_dir

log = logging.getLogger("tracardi_operator")
OURS = {LABEL_MANAGED_BY: MANAGED_BY}


def _credentials() -> Credentials:
    """In a pod: its ServiceAccount (the token re-read on every request, as it rotates); else $KUBECONFIG."""
    return credentials_from_environment(os.environ, sa_dir())


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's own connection: the same credentials as ours (`kubeclient`), read by one reader."""
    creds = _credentials()
    token = creds.bearer()
    return kopf.ConnectionInfo(
        server=creds.server, ca_data=creds.ca_pem, insecure=creds.insecure or None,
        scheme="Bearer" if token else None, token=token,
        # kopf prefers a user name and password to a token; ours the token: only one of them is handed over.
        username=None if token else creds.username, password=None if token else creds.password,
        certificate_data=creds.client_cert_pem, private_key_data=creds.client_key_pem,
        default_namespace=creds.namespace,
    )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    cfg: Settings = memo.get("settings") or Settings.from_env()
    registry = metrics.new_metrics()
    # A connection for each worker thread and for the calls made off the event loop (`asyncio.to_thread`).
    api = KubeClient(_credentials(), observe=registry.api_request, pool_size=cfg.workers + 8)
    runtime = Runtime(settings=cfg, kube=Kube(api), metrics=registry)
    memo["runtime"] = runtime
    server = health.HealthServer(registry, stale_after=cfg.watch_stale_seconds, grace=cfg.health_grace_seconds,
                                 port=cfg.health_port, host=cfg.health_host)
    memo["health"] = server
    await server.start()
    memo["heartbeat"] = asyncio.create_task(runtime.heartbeat())
    memo["policies"] = asyncio.create_task(runtime.policy_statuses())
    memo["memory"] = asyncio.create_task(memory.give_back_every())
    if cfg.leader_election:
        elector = leader.Elector(
            api, cfg.lease_namespace, cfg.identity, on_lost=_exit_on_lost_lease,
            on_change=lambda leading: registry.set_leader(cfg.identity, leading),
        )
        runtime.leading = elector.leading
        registry.set_leader(cfg.identity, False)
        memo["elector"] = elector
        memo["election"] = asyncio.create_task(elector.run())
    else:
        runtime.leading.set()
        registry.set_leader(cfg.identity, True)
    # Only event handlers: kopf keeps no state on the objects and adds no finalizer to them.
    settings.posting.level = logging.WARNING  # our own Events say what happened; kopf's only on errors
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 32
    # The children's watches select the operator's own on the server: a busy cluster's other Deployments
    # and Jobs never reach this process, and one that loses the label arrives as a deletion (`children`).
    for group, plural in (("apps", "deployments"), ("batch", "jobs")):
        settings.watching.label_selectors[group, plural] = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
    await _wait_for_apis(runtime.kube)
    server.mark_ready()
    log.info("started: job image %s, api addressing %s, namespaces %s, health on :%d",
             cfg.job_image, cfg.api_addressing, ",".join(cfg.namespaces) or "all", cfg.health_port)


WATCHED_APIS = (f"/apis/{API_GROUP}/{API_VERSION}", "/apis/apps/v1", "/apis/batch/v1")


async def _wait_for_apis(kube: Kube) -> None:
    """kopf resolves the resources to watch once, right after start-up, and never again for built-in
    groups: started while the apiserver is down or starting (after a restart of it, the Lease lost),
    it would watch nothing for good. So start-up waits until every group it watches is served."""
    waited = 0
    while missing := await asyncio.to_thread(kube.unserved, WATCHED_APIS):
        if waited % 10 == 0:
            log.warning("waiting for the Kubernetes API to serve %s (%ds)", ", ".join(missing), waited)
        await asyncio.sleep(1)
        waited += 1


def _exit_on_lost_lease() -> None:
    """Another replica may lead from now on: stop at once, as controller-runtime does; the kubelet
    restarts the container, which then stands by."""
    logging.shutdown()
    os._exit(1)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for key in ("heartbeat", "policies", "memory", "election"):
        task = memo.get(key)
        if task is not None:
            task.cancel()
    await _runtime(memo).stop_loops()
    elector = memo.get("elector")
    if elector is not None:
        await asyncio.to_thread(elector.release)  # after the loops stopped: the standby takes over now
    server = memo.get("health")
    if server is not None:
        await server.stop()


def _runtime(memo: Any) -> Runtime:
    runtime = memo["runtime"]
    assert isinstance(runtime, Runtime)
    return runtime


@kopf.on.event(API_GROUP, API_VERSION, INSTALLATION.plural)
async def installation_changed(type: str | None, namespace: str | None, name: str, memo: Any,
                               meta: Mapping[str, Any], body: Mapping[str, Any], **_: Any) -> None:
    """Every event of an installation: start its loop if it has none (the initial listing, a new
    object), wake it, or end it when the object is gone. No finalizer is involved: deleting an
    installation never waits for the operator."""
    runtime = _runtime(memo)
    runtime.touch()
    runtime.saw(namespace or "", name, meta.get("resourceVersion"), deleted=type == "DELETED")
    runtime.listed("installations", type, body)
    if type == "DELETED":
        runtime.forget(namespace or "", name)
        return
    runtime.ensure_loop(namespace or "", name)
    runtime.changed(namespace or "", name, meta.get("resourceVersion"), listed=type is None)


@kopf.on.event("apps", "v1", "deployments", labels=OURS)
async def deployment_changed(type: str | None, body: Mapping[str, Any], namespace: str | None, name: str,
                             labels: Mapping[str, str], memo: Any, **_: Any) -> None:
    """A Deployment's event: retention's listing of them follows it, the next pass of its installation
    lists them again, and its installation wakes when the event changed something its decisions read
    (not for each step of a rolling update's counts)."""
    runtime = _runtime(memo)
    runtime.listed("deployments", type, body)
    ns, instance, deleted = namespace or "", labels.get(LABEL_INSTANCE) or "", type == "DELETED"
    former = runtime.child_moved("deployments", ns, name, instance, deleted=deleted,
                                 resource_version=(body.get("metadata") or {}).get("resourceVersion"))
    if former is not None:
        runtime.wake_labelled(ns, former)
    if runtime.deployment_facts_changed(ns, instance, body, deleted=deleted) and instance:
        runtime.wake_labelled(ns, instance)


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def job_changed(type: str | None, body: Mapping[str, Any], namespace: str | None, name: str,
                      labels: Mapping[str, str], memo: Any, **_: Any) -> None:
    """A Job's event: the next pass of its installation lists them again, and it wakes (a step waits for
    its Job)."""
    runtime = _runtime(memo)
    ns, instance = namespace or "", labels.get(LABEL_INSTANCE) or ""
    former = runtime.child_moved("jobs", ns, name, instance, deleted=type == "DELETED",
                                 resource_version=(body.get("metadata") or {}).get("resourceVersion"))
    for owner in (instance, former):
        if owner:
            runtime.wake_labelled(ns, owner)


@kopf.on.event("", "v1", "namespaces")
async def namespace_changed(type: str | None, body: Mapping[str, Any], memo: Any, **_: Any) -> None:
    """A namespace's event: the listing of the namespaces' labels, which retention policies select
    installations by, follows it; when its labels changed, the installations in it look at their
    policies again at once (as they do when a policy changes)."""
    runtime = _runtime(memo)
    name = str((body.get("metadata") or {}).get("name") or "")
    if runtime.listed("namespaces", type, body) and type is not None:
        for namespace, installation in list(runtime.wakeups):
            if namespace == name:
                runtime.wake(namespace, installation)


@kopf.on.event(API_GROUP, API_VERSION, RETENTION_POLICY.plural)
async def policy_changed(memo: Any, type: str | None, name: str, meta: Mapping[str, Any], body: Mapping[str, Any],
                         **_: Any) -> None:
    """A policy decides what every installation it selects may lose: look at all of them again when its
    spec changes, it is created or deleted (not when only its status changed: the operator writes that)."""
    runtime = _runtime(memo)
    runtime.listed("policies", type, body)
    # Every event records the policy's generation, the initial listing's too (type None): that is what a
    # later status-only event is told apart by.
    changed = runtime.policy_seen(name, meta.get("generation"), deleted=type == "DELETED")
    if type is None or not changed:
        return  # the initial listing, which every installation's own first pass covers; or status only
    runtime.policies_changed()
    for namespace, name in list(runtime.wakeups):
        runtime.wake(namespace, name)


