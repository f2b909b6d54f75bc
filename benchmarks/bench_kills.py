"""The operator SIGKILLed at K random moments of a 0.8.0 → 0.8.1 → 0.8.2.1 upgrade on devenv (the long
variant of tests/e2e/test_faults.py, K = 10 there): prints each kill (when, at which step, how long the
restart took) and whether every promise held: one Job per step, one POST /migration per context, no
copy started twice, every seeded document readable, status history intact.

`python benchmarks/bench_kills.py [--kills 50] [--seed N] [--runs 1]` (devenv is brought up if needed;
DEVENV_DIR selects which)."""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "operator")]

import yaml  # noqa: E402

from tests.conftest import Devenv  # noqa: E402
from tests.e2e.conftest import Installations, OperatorProcess  # noqa: E402
from tests.e2e.faults import killed_upgrade  # noqa: E402
from tests.e2e.test_failures import wait_pods_gone  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: a random seed, printed)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--mean-gap", type=float, default=2.0,
                        help="mean seconds between kills (after the restart), so that most fall inside the upgrade")
    args = parser.parse_args()

    from elasticsearch import Elasticsearch
    from kubernetes import client, config

    from devenv import lifecycle
    from devenv.paths import State
    from tracardi_operator.kube import Kube
    from tracardi_operator.kubeclient import KubeClient

    values = lifecycle.up(State.default())
    devenv = Devenv(Path(values["KUBECONFIG"]), values["ELASTICSEARCH_URL"], values["REDIS_URL"])
    api = config.new_client_from_config(str(devenv.kubeconfig))
    kube = Kube(KubeClient.from_kubeconfig(devenv.kubeconfig))
    for path in sorted((ROOT / "crds").glob("tracardi.com_*.yaml")):
        kube.apply(yaml.safe_load(path.read_text()))
    es = Elasticsearch([devenv.elasticsearch_url])
    core = client.CoreV1Api(api)
    operator = OperatorProcess(devenv, Path(tempfile.mkdtemp(prefix="bench-kills-")))
    operator.start()
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    failed = 0
    try:
        for n in range(args.runs):
            seed = first + n
            es.indices.delete(index="*tracardi*,-.*", expand_wildcards="all", ignore_unavailable=True)
            for t in es.indices.get_index_template().get("index_templates", []):
                if ".tracardi-" in t["name"]:
                    es.indices.delete_index_template(name=t["name"])
            namespace = f"bench-kills-{uuid.uuid4().hex[:6]}"
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
            time.sleep(2)  # its default ServiceAccount
            inst = Installations(api, namespace, devenv.elasticsearch_url)
            print(f"run {n + 1}: seed {seed}, {args.kills} kills, namespace {namespace}", flush=True)
            run = killed_upgrade(inst, operator, es, seed, args.kills, mean_gap=args.mean_gap, timeout=1800)
            print(f"\n{'#':>3} {'at (s)':>7} {'step at kill':<18} {'restart (s)':>11}")
            for i, k in enumerate(run.kills, 1):
                print(f"{i:>3} {k.at:>7.1f} {k.step or '-':<18} {k.restart:>11.1f}")
            steps: dict[str, int] = {}
            for k in run.kills:
                steps[k.step or "-"] = steps.get(k.step or "-", 0) + 1
            print(f"\nseed {seed}: {len(run.kills)} kills ({', '.join(f'{s} {c}' for s, c in steps.items())}); "
                  f"converged {run.converged:.0f}s after the bump")
            print(f"Jobs: {', '.join(run.jobs)}")
            print(f"POST /migration (orchestrator documents): {run.orchestrators}")
            print(f"copies started twice: {len(run.copies_twice)}")
            print("result: " + ("OK" if not run.problems else "FAILED: " + "; ".join(run.problems)), flush=True)
            failed += bool(run.problems)
            wait_pods_gone(inst)
            core.delete_namespace(namespace)
    finally:
        operator.stop()
        es.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
