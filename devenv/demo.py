"""`python -m devenv.demo` (`make demo`): the operator's whole story on the local environment.

On a running devenv (`make devenv-up`): apply the CRDs, start the operator in the background (pid file
`.devenv/pids/operator.pid`, log `.devenv/logs/operator.log`), create the TracardiInstallation `acme` in
namespace `demo` at 0.8.0, seed it with a few hundred documents, bump it to 0.8.1 and to 0.8.2.1, then
apply a retention policy that deletes the oldest superseded version's indices. Each step shows the
installation's status, its Jobs, document counts and the indices per version; the environment stays up.

Re-runnable: a previous run's operator, namespace, policy and Tracardi indices are removed first.
Exit status 1 names the step that failed, why, and where the operator log is.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from devenv import lifecycle, procs
from devenv.paths import REPO_ROOT, State
from tracardi_operator import API_GROUP as GROUP
from tracardi_operator import API_VERSION, GROUP_VERSION
from tracardi_operator.models import INSTALLATION, RETENTION_POLICY

NAMESPACE = "demo"
NAME = "acme"
POLICY = "demo-retention"
FIRST, UPGRADES = "0.8.0", ("0.8.1", "0.8.2.1")
PLURAL, POLICIES = INSTALLATION.plural, RETENTION_POLICY.plural
STEP_TIMEOUT = 600.0
"""Bound of every wait on the operator (seconds)."""
NOTE_EVERY = 8.0
"""A waiting line at least this often (seconds)."""
SEED_COUNTS = {"profiles": 30, "events": 100, "sessions": 30}
OPERATOR = "operator"

T = TypeVar("T")


class DemoError(Exception):
    """A step did not complete; the message says which, why, and where to look."""


def say(text: str = "") -> None:
    print(text, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: int = 4) -> None:
    """Aligned columns; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    numeric = [all(isinstance(r[i], int) for r in rows if r[i] is not None) and bool(rows)
               for i in range(len(headers))]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)]
        say(" " * indent + "  ".join(parts).rstrip())


def short(text: str | None, width: int = 72) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def hhmmss(stamp: str | None) -> str:
    if not stamp:
        return ""
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).strftime("%H:%M:%S")
    except ValueError:
        return stamp


def _read_env(state: State) -> dict[str, str]:
    lines = [line.strip().removeprefix("export ") for line in state.env_file.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if "=" in line)


class Demo:
    def __init__(self, state: State) -> None:
        from kubernetes import client, config

        from devenv.simulator.es import connect

        self.state = state
        self.env = _read_env(state)
        self.es_url = self.env["ELASTICSEARCH_URL"]
        self.api = config.new_client_from_config(str(state.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.ext = client.ApiextensionsV1Api(self.api)
        self.es: Any = connect([self.es_url])
        self.durations: list[tuple[str, float]] = []
        self.operator_started = False
        self.seeded: dict[str, list[str]] = {}
        self.carried: dict[str, dict[str, int]] = {}
        """Seeded documents found per version tag, per `context/resource`."""
        self.duplicates: list[str] = []
        self.step_name = ""

    # -- output and steps -------------------------------------------------------------------------
    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.step_name = title
        say()
        say(f"=== {len(self.durations) + 1}. {title} " + "=" * max(3, 70 - len(title)))
        started = time.monotonic()
        try:
            yield
        except DemoError:
            raise
        except Exception as e:
            raise DemoError(f"step '{title}' failed: {type(e).__name__}: {short(str(e), 300)}") from e
        elapsed = time.monotonic() - started
        self.durations.append((title, elapsed))
        say(f"    ({title}: {elapsed:.0f}s)")

    def wait(self, what: str, check: Callable[[], T | None], progress: Callable[[], str] | None = None,
             timeout: float = STEP_TIMEOUT, interval: float = 1.0, explain: Callable[[], str] | None = None) -> T:
        """Poll `check` until it returns a value; print a line when the progress text changes and at
        least every NOTE_EVERY seconds; fail after `timeout` naming the step and the last progress."""
        started = time.monotonic()
        last_text, last_note = "", started
        while True:
            value = check()
            if value is not None:
                return value
            now = time.monotonic()
            if self.operator_started and not procs.running(self.state, OPERATOR):
                raise DemoError(f"step '{self.step_name}': the operator exited while waiting for {what}; "
                                f"log {self.state.log(OPERATOR)}:\n{procs.tail(self.state.log(OPERATOR))}")
            text = progress() if progress else ""
            if now - started > timeout:
                raise DemoError(f"step '{self.step_name}': not done after {timeout:.0f}s waiting for {what}"
                                + (f"; last seen: {text}" if text else "")
                                + (f"\n{explain()}" if explain else "")
                                + f"\n  operator log: {self.state.log(OPERATOR)}")
            if text != last_text or now - last_note >= NOTE_EVERY:
                say(f"    … {now - started:4.0f}s  {text or 'waiting for ' + what}")
                last_text, last_note = text, now
            time.sleep(interval)

    # -- Kubernetes helpers -----------------------------------------------------------------------
    def get(self) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, API_VERSION, NAMESPACE, PLURAL, NAME))

    @staticmethod
    def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}

    def progress(self) -> str:
        try:
            obj = self.get()
        except Exception as e:
            return f"(cannot read {NAME}: {type(e).__name__})"
        status = obj.get("status") or {}
        up = status.get("upgrade") or {}
        parts = [f"phase={status.get('phase', '-')}", f"step={up.get('step', '-')}"]
        if up.get("toVersion"):
            parts.append(f"{up.get('fromVersion') or '∅'}→{up['toVersion']}")
        message = up.get("message") or self.conditions(obj).get("Progressing", {}).get("message")
        return "  ".join(parts) + (f"  {short(message, 60)}" if message else "")

    def wait_settled(self, version: str) -> dict[str, Any]:
        """Ready on `version` for the current generation, nothing in progress; Degraded fails at once."""
        def settled() -> dict[str, Any] | None:
            obj = self.get()
            status = obj.get("status") or {}
            conds = self.conditions(obj)
            degraded = conds.get("Degraded", {})
            if degraded.get("status") == "True":
                raise DemoError(f"step '{self.step_name}': {NAME} is Degraded: {degraded.get('reason')}: "
                                f"{degraded.get('message')}\n  operator log: {self.state.log(OPERATOR)}")
            if (status.get("upgrade") or {}).get("step") == "Failed":
                raise DemoError(f"step '{self.step_name}': the upgrade failed: "
                                f"{status['upgrade'].get('message')}\n  operator log: {self.state.log(OPERATOR)}")
            ok = (status.get("observedGeneration") == obj["metadata"]["generation"]
                  and status.get("currentVersion") == version
                  and conds.get("Ready", {}).get("status") == "True"
                  and conds.get("Progressing", {}).get("status") == "False")
            return obj if ok else None

        return self.wait(f"{NAME} Ready on {version}", settled, self.progress, explain=self.explain)

    def explain(self) -> str:
        """The installation's main conditions, for a failure message."""
        try:
            conds = self.conditions(self.get())
        except Exception as e:
            return f"  (cannot read {NAME}: {type(e).__name__})"
        return "\n".join(f"  condition {t}={c.get('status')} {c.get('reason')}: {c.get('message')}"
                         for t in ("Ready", "Progressing", "Degraded", "Paused") if (c := conds.get(t)))

    # -- Elasticsearch helpers --------------------------------------------------------------------
    def index_docs(self) -> dict[str, int]:
        """Documents per Tracardi index (top-level documents, as a search counts them)."""
        self.es.indices.refresh(index="*tracardi*", expand_wildcards="open", ignore_unavailable=True)
        rows = self.es.cat.indices(index="*tracardi*", h="index", format="json", expand_wildcards="open")
        names = [str(r["index"]) for r in rows if not str(r["index"]).startswith(".")]
        counts = dict.fromkeys(names, 0)
        if names:
            res = self.es.search(index="*tracardi*", size=0, expand_wildcards="open",
                                 aggs={"i": {"terms": {"field": "_index", "size": 10000}}})
            for bucket in res["aggregations"]["i"]["buckets"]:
                counts[str(bucket["key"])] = int(bucket["doc_count"])
        return counts

    def templates(self) -> list[str]:
        body = self.es.indices.get_index_template()
        return [str(t["name"]) for t in body.get("index_templates", [])]

    # -- what each step shows ---------------------------------------------------------------------
    def show_status(self, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        say(f"  installation {NAMESPACE}/{NAME}: phase {status.get('phase')}, "
            f"currentVersion {status.get('currentVersion')}, generation {obj['metadata']['generation']} "
            f"(observed {status.get('observedGeneration')})")
        say("  status.versions:")
        table(["VERSION", "DB", "TENANT", "STATE", "INSTALLED", "SUPERSEDED", "MIGRATED FROM", "DELETED"],
              [[v.get("version"), v.get("dbVersion"), v.get("tenant"), v.get("state"), hhmmss(v.get("installedAt")),
                hhmmss(v.get("supersededAt")), v.get("migratedFrom"), hhmmss(v.get("deletedAt"))]
               for v in status.get("versions", [])])
        say("  conditions:")
        table(["TYPE", "STATUS", "REASON", "MESSAGE"],
              [[c["type"], c["status"], c.get("reason"), short(c.get("message"), 64)]
               for c in status.get("conditions", [])])

    def show_jobs(self) -> None:
        jobs = sorted(self.batch.list_namespaced_job(NAMESPACE).items, key=lambda j: j.metadata.creation_timestamp)
        rows = []
        for j in jobs:
            s = j.status
            result = "Succeeded" if s.succeeded else "Failed" if s.failed else "Running"
            took = (s.completion_time - s.start_time).total_seconds() if s.completion_time and s.start_time else None
            rows.append([j.metadata.name, (j.metadata.labels or {}).get("app.kubernetes.io/component", ""),
                         result, j.metadata.creation_timestamp.strftime("%H:%M:%S"),
                         f"{took:.0f}s" if took is not None else ""])
        say(f"  Jobs in namespace {NAMESPACE}:" + ("" if rows else " none"))
        if rows:
            table(["JOB", "COMPONENT", "RESULT", "CREATED", "TOOK"], rows)

    def show_documents(self, obj: dict[str, Any], docs: dict[str, int]) -> None:
        """Documents the current version reads through its aliases, per resource and context (an alias
        spans the partitions); documents in its indices that no alias reads are counted apart."""
        from tracardi_operator.indices import parse_alias_name, parse_index_name

        current = next((v for v in (obj.get("status") or {}).get("versions", []) if v["state"] == "Current"), None)
        if current is None:
            return
        pair = (current["dbVersion"], current["tenant"])
        aliases: dict[str, list[str]] = {
            index: list((body.get("aliases") or {}).keys())
            for index, body in self.es.indices.get_alias(index="*tracardi*", expand_wildcards="open").items()
        }
        groups: dict[str, Counter[str]] = defaultdict(Counter)
        indices: Counter[str] = Counter()
        unread, unread_indices, empty = 0, 0, 0
        for index, n in docs.items():
            parsed = parse_index_name(index)
            if parsed is None or (parsed.version.db, parsed.version.tenant) != pair:
                continue
            empty += n == 0
            read = [a for a in (parse_alias_name(name) for name in aliases.get(index, [])) if a is not None]
            if not read:
                unread += n
                unread_indices += n > 0
            for alias in read:
                groups[alias.resource][str(alias.context)] += n
                indices[alias.resource] += 1
        rows = [[res, c.get("staging", 0), c.get("production", 0), c.get("static", 0), indices[res]]
                for res, c in sorted(groups.items()) if sum(c.values())]
        total = sum(sum(c.values()) for c in groups.values())
        say(f"  documents {current['version']} reads through its aliases ({pair[0]}.{pair[1]}): {total} in "
            f"{len(rows)} index groups; {empty} indices are empty")
        table(["RESOURCE", "STAGING", "PRODUCTION", "STATIC", "INDICES"], rows)
        if unread:
            say(f"    + {unread} documents in {unread_indices} indices of {pair[0]}.{pair[1]} that no alias reads")

    def show_indices(self, obj: dict[str, Any], docs: dict[str, int], title: str = "indices per version") -> None:
        from tracardi_operator.indices import parse_index_name, parse_template_name

        states = {(v["dbVersion"], v["tenant"]): v for v in (obj.get("status") or {}).get("versions", [])}
        n_idx: Counter[tuple[str, str]] = Counter()
        n_docs: Counter[tuple[str, str]] = Counter()
        n_tpl: Counter[tuple[str, str]] = Counter()
        for index, n in docs.items():
            parsed = parse_index_name(index)
            if parsed is not None:
                key = (parsed.version.db, parsed.version.tenant)
                n_idx[key] += 1
                n_docs[key] += n
        for name in self.templates():
            tpl = parse_template_name(name)
            if tpl is not None:
                n_tpl[(tpl[1].db, tpl[1].tenant)] += 1
        order = {key: i for i, key in enumerate(states)}
        keys = sorted(set(n_idx) | set(n_tpl) | set(states), key=lambda k: (order.get(k, len(order)), k))
        say(f"  {title} (Elasticsearch, by db.tenant):")
        table(["DB", "TENANT", "VERSION", "STATE", "INDICES", "TEMPLATES", "DOCS"],
              [[db, tenant, states.get((db, tenant), {}).get("version", "?"),
                states.get((db, tenant), {}).get("state", f"(not {NAME}'s)"), n_idx[(db, tenant)],
                n_tpl[(db, tenant)], n_docs[(db, tenant)]] for db, tenant in keys])

    def show_verified(self, obj: dict[str, Any]) -> None:
        up = (obj.get("status") or {}).get("upgrade") or {}
        verified = up.get("verified") or []
        if not verified:
            say("  status.upgrade.verified: (none)")
            return
        groups: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for v in verified:
            g = groups[(v["context"], v["resource"])]
            g[0] += 1
            g[1] += int(v["sourceCount"])
            g[2] += int(v["destinationCount"])
            g[3] += 0 if v["ok"] else 1
        bad = sum(g[3] for g in groups.values())
        say(f"  status.upgrade.verified ({up.get('fromVersion')} → {up.get('toVersion')}): {len(verified)} indices, "
            + ("all ok" if not bad else f"{bad} NOT ok"))
        table(["CONTEXT", "RESOURCE", "INDICES", "SOURCE DOCS", "DEST DOCS", "OK"],
              [[ctx, "(all, per version)" if res == "*" else res, g[0], g[1], g[2], "yes" if not g[3] else "NO"]
               for (ctx, res), g in sorted(groups.items())])

    def show_step(self, obj: dict[str, Any]) -> dict[str, int]:
        docs = self.index_docs()
        self.show_status(obj)
        self.show_jobs()
        self.show_documents(obj, docs)
        self.show_indices(obj, docs)
        return docs

    def record_carried(self, obj: dict[str, Any]) -> None:
        """How many of the seeded documents the current version reads through its aliases, per seeded
        group (distinct ids; an id read twice is a duplicate and is reported)."""
        status = obj.get("status") or {}
        current = next(v for v in status.get("versions", []) if v["state"] == "Current")
        tenant = current["tenant"]
        found: dict[str, int] = {}
        for key, ids in self.seeded.items():
            prefix = "prod-" if key.split("/", 1)[0] == "production" else ""
            res = self.es.search(index=f"{prefix}{tenant}.tracardi-*,static-{tenant}.tracardi-*",
                                 size=2 * len(ids), query={"ids": {"values": ids}}, _source=False,
                                 ignore_unavailable=True)
            hits = [h["_id"] for h in res["hits"]["hits"]]
            found[key] = len(set(hits))
            if len(hits) != len(set(hits)):
                self.duplicates.append(f"{current['version']} {key}: {len(hits) - len(set(hits))} read twice")
        self.carried[str(status.get("currentVersion"))] = found

    # -- the steps --------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Remove what an earlier run left: its operator, namespace, policy and Tracardi indices."""
        from kubernetes.client.rest import ApiException

        if procs.stop(self.state, OPERATOR):
            say("  stopped the operator of an earlier demo")
        try:
            self.custom.delete_cluster_custom_object(GROUP, API_VERSION, POLICIES, POLICY)
            say(f"  deleted TracardiRetentionPolicy {POLICY}")
        except ApiException as e:
            if e.status != 404:
                raise
        try:
            self.core.delete_namespace(NAMESPACE)
            say(f"  deleting namespace {NAMESPACE} of an earlier demo")
        except ApiException as e:
            if e.status != 404:
                raise

        def gone() -> bool | None:
            try:
                self.core.read_namespace(NAMESPACE)
            except ApiException as e:
                if e.status == 404:
                    return True
                raise
            return None

        self.wait(f"namespace {NAMESPACE} to be gone", gone, timeout=180)
        others = self.custom.list_cluster_custom_object(GROUP, API_VERSION, POLICIES).get("items", []) \
            if self._crd_exists(RETENTION_POLICY.crd_name) else []
        if others:
            say("  note: other retention policies exist: " + ", ".join(p["metadata"]["name"] for p in others))
        before = len(self.index_docs())
        self.es.indices.delete(index="*tracardi*,-.*", expand_wildcards="all", ignore_unavailable=True)
        dropped = [t for t in self.templates() if ".tracardi-" in t]
        for name in dropped:
            self.es.indices.delete_index_template(name=name)
        say(f"  Elasticsearch {self.es_url}: deleted {before} Tracardi indices and {len(dropped)} templates")

    def _crd_exists(self, name: str) -> bool:
        from kubernetes.client.rest import ApiException

        try:
            self.ext.read_custom_resource_definition(name)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def start_operator(self) -> None:
        from tracardi_operator.kube import Kube
        from tracardi_operator.kubeclient import KubeClient

        kube = Kube(KubeClient.from_kubeconfig(self.state.kubeconfig))
        for path in sorted((REPO_ROOT / "crds").glob("tracardi.com_*.yaml")):
            kube.apply(yaml.safe_load(path.read_text()))
            say(f"  applied crds/{path.name}")

        def established() -> bool | None:
            for name in (INSTALLATION.crd_name, RETENTION_POLICY.crd_name):
                crd = self.ext.read_custom_resource_definition(name)
                if not any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or []):
                    return None
            return True

        self.wait("the CRDs to be established", established, timeout=60)
        port = procs.free_port()
        env = dict(os.environ)
        env.update({
            "KUBECONFIG": str(self.state.kubeconfig),
            "TRACARDI_OPERATOR_JOB_IMAGE": "tracardi-operator:dev",
            "TRACARDI_OPERATOR_HEALTH_PORT": str(port),
            "TRACARDI_OPERATOR_API_ADDRESSING": "pod",
            # devenv's Elasticsearch is an OSS build without `flattened`; the simulator does not need it.
            "TRACARDI_OPERATOR_FLATTENED_CHECK": "off",
            "PYTHONUNBUFFERED": "1",  # .devenv/logs/operator.log is read while the demo runs
            # Idle installations are looked at again every 20 s (default 300 s): retention ages show sooner.
            "TRACARDI_OPERATOR_RESYNC_SECONDS": "20",
        })
        pid = procs.start(self.state, OPERATOR, [str(REPO_ROOT / ".venv" / "bin" / "tracardi-operator"), "run"],
                          env=env, cwd=REPO_ROOT)
        self.operator_started = True
        say(f"  started tracardi-operator run: pid {pid}, health :{port}, log {self.state.log(OPERATOR)}")

        def ready() -> bool | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    return True if r.status == 200 else None
            except OSError:
                return None

        self.wait("the operator's /readyz", ready, timeout=60, interval=0.5)
        say("  the operator is ready")

    def create(self) -> dict[str, Any]:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))

        def service_account() -> bool | None:
            try:
                self.core.read_namespaced_service_account("default", NAMESPACE)
            except ApiException as e:
                if e.status == 404:
                    return None
                raise
            return True

        self.wait(f"the default ServiceAccount of {NAMESPACE}", service_account, timeout=60, interval=0.3)
        for name, data in (("acme-admin", {"username": "admin@acme.test", "password": "s3cret-admin"}),
                           ("acme-install", {"token": "inst4ll-token"})):
            self.core.create_namespaced_secret(NAMESPACE, client.V1Secret(
                metadata=client.V1ObjectMeta(name=name),
                data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()}))
        say(f"  namespace {NAMESPACE}, Secrets acme-admin (username, password) and acme-install (token)")
        body = {
            "apiVersion": GROUP_VERSION, "kind": "TracardiInstallation",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "version": FIRST,
                "elasticsearch": {"hosts": [self.es_url], "indexShards": 1, "indexReplicas": 0},
                "redis": {"url": self.env["REDIS_URL"]},
                "installation": {"adminSecretRef": {"name": "acme-admin"},
                                 "tokenSecretRef": {"name": "acme-install", "key": "token"}},
            },
        }
        self.custom.create_namespaced_custom_object(GROUP, API_VERSION, NAMESPACE, PLURAL, body)
        say(f"  TracardiInstallation {NAME}: version {FIRST}, elasticsearch {self.es_url} (1 shard, 0 replicas)")
        obj = self.wait_settled(FIRST)
        self.show_step(obj)
        return obj

    def seed(self, obj: dict[str, Any]) -> None:
        from devenv import seed as seeder
        from devenv.simulator.versions import version_for_tag

        current = obj["status"]["versions"][-1]
        report = seeder.seed(self.es, version_for_tag(FIRST), tenant=current["tenant"],
                             counts=seeder.SeedCounts(**SEED_COUNTS))
        self.seeded = report.ids
        by_group: dict[str, Counter[str]] = defaultdict(Counter)
        for key, ids in report.ids.items():
            context, resource = key.split("/", 1)
            by_group[resource][context] += len(ids)
        say(f"  devenv.seed wrote {sum(report.counts.values())} documents of Tracardi {FIRST} into "
            f"{len(report.counts)} indices of {report.namespace.db}.{report.namespace.tenant}:")
        table(["RESOURCE", "STAGING", "PRODUCTION"],
              [[r, c["staging"], c["production"]] for r, c in sorted(by_group.items())])
        self.record_carried(obj)
        docs = self.index_docs()
        self.show_documents(obj, docs)

    def bump(self, version: str) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, API_VERSION, NAMESPACE, PLURAL, NAME,
                                                   {"spec": {"version": version}})
        say(f"  patched spec.version → {version}")
        obj = self.wait_settled(version)
        self.show_step(obj)
        self.show_verified(obj)
        self.record_carried(obj)

    def retention(self) -> None:
        obj = self.get()
        self.show_indices(obj, self.index_docs(), "before: indices per version")
        policy = {
            "apiVersion": GROUP_VERSION, "kind": "TracardiRetentionPolicy",
            "metadata": {"name": POLICY},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
                "keepSupersededVersions": 1, "minAgeAfterSuperseded": "0s", "dryRun": False,
            },
        }
        self.custom.create_cluster_custom_object(GROUP, API_VERSION, POLICIES, policy)
        say(f"  applied TracardiRetentionPolicy {POLICY}: selects namespace {NAMESPACE};")
        say("    keepSupersededVersions 1, minAgeAfterSuperseded 0s, dryRun false")

        def retention_progress() -> str:
            r = (self.get().get("status") or {}).get("retention") or {}
            if not r:
                return "no status.retention yet"
            return (f"policy={r.get('policy', '-')} deletedIndices={r.get('deletedIndices', '-')} "
                    f"{short(r.get('message'), 60)}")

        def deleted() -> dict[str, Any] | None:
            o = self.get()
            status = o.get("status") or {}
            r = status.get("retention") or {}
            done = r.get("policy") == POLICY and r.get("dryRun") is False and r.get("lastRunAt") and any(
                v["state"] == "Deleted" for v in status.get("versions", []))
            return o if done else None

        obj = self.wait("retention to delete the oldest superseded version", deleted, retention_progress)
        r = obj["status"]["retention"]
        say(f"  status.retention: policy {r.get('policy')}, dryRun {r.get('dryRun')}, "
            f"deletedIndices {r.get('deletedIndices')}, snapshot {r.get('snapshot') or '-'}, "
            f"lastRunAt {hhmmss(r.get('lastRunAt'))}")
        if r.get("message"):
            say(f"    message: {short(r['message'], 100)}")
        items = r.get("items", [])
        say("  plan, per version:")
        table(["VERSION (db.tenant)", "ACTION", "REASON"],
              [[i["name"], i["action"], i["reason"]] for i in items if i["kind"] == "Version"])
        per_kind = Counter((i["kind"], i["action"], i["reason"]) for i in items if i["kind"] != "Version")
        if per_kind:
            say("  plan, indices and templates:")
            table(["KIND", "ACTION", "REASON", "COUNT"],
                  [[k, a, why, n] for (k, a, why), n in sorted(per_kind.items())])
        docs = self.index_docs()
        self.show_indices(obj, docs, "after: indices per version")
        self.show_status(obj)

    def summary(self, total: float) -> None:
        say()
        say("=== summary " + "=" * 68)
        table(["STEP", "DURATION"], [[name, f"{secs:5.0f}s"] for name, secs in self.durations]
              + [["total", f"{total:5.0f}s"]])
        say()
        versions = list(self.carried)
        say("  seeded documents each version reads through its aliases (documents carried over):")
        rows: list[list[object]] = []
        for key in sorted(self.seeded):
            rows.append([key, len(self.seeded[key]), *[self.carried[v].get(key, 0) for v in versions]])
        rows.append(["total", sum(len(i) for i in self.seeded.values()),
                     *[sum(self.carried[v].values()) for v in versions]])
        table(["CONTEXT/RESOURCE", "SEEDED", *[f"AT {v}" for v in versions]], rows)
        say("  duplicates: " + ("; ".join(self.duplicates) if self.duplicates else "none (no id is read twice)"))
        kube = ".devenv/bin/kubectl"
        say()
        say("The environment is still running. Explore it:")
        say("    source .devenv/env                      # exports KUBECONFIG and ELASTICSEARCH_URL")
        say(f"    {kube} get tri -A")
        say(f"    {kube} get tri {NAME} -n {NAMESPACE} -o yaml")
        say(f"    {kube} get jobs,deploy,pods -n {NAMESPACE}")
        say(f"    {kube} get trp {POLICY} -o yaml")
        say('    curl -s "$ELASTICSEARCH_URL/_cat/indices/*tracardi*?v&s=index"')
        say(f"    less {self._rel(self.state.log(OPERATOR))}        # the operator's log")
        say("Stop everything (the operator too): make devenv-down")

    @staticmethod
    def _rel(path: Path) -> str:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(Path.cwd()))
        return str(path)

    def run(self) -> None:
        started = time.monotonic()
        say(f"tracardi-operator demo on devenv {self.state.root} (kube {self.state.kubeconfig}, "
            f"Elasticsearch {self.es_url})")
        with self.step("clean up an earlier demo"):
            self.prepare()
        with self.step("apply the CRDs and start the operator"):
            self.start_operator()
        with self.step(f"install Tracardi {FIRST}"):
            obj = self.create()
        with self.step(f"seed {FIRST} with documents"):
            self.seed(obj)
        previous = FIRST
        for version in UPGRADES:
            with self.step(f"upgrade {previous} → {version}"):
                self.bump(version)
            previous = version
        with self.step("retention policy: delete what is no longer needed"):
            self.retention()
        self.summary(time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    del argv
    state = State.default()
    if not lifecycle.is_up(state):
        print(f"demo: devenv {state.root} is not up; run `make devenv-up` first", file=sys.stderr)
        return 1
    try:
        Demo(state).run()
    except DemoError as e:
        print(f"\nDEMO FAILED: {e}", file=sys.stderr)
        print(f"operator log: {state.log(OPERATOR)} (last lines below)\n{procs.tail(state.log(OPERATOR))}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; the operator keeps running (stop it with make devenv-down); "
              f"log {state.log(OPERATOR)}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
