"""`tracardi-operator`: `run` starts the operator; `job install|migrate` are what its Jobs run;
`apply-crds` installs the CRDs from crds/ into the cluster of $KUBECONFIG."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

CRDS = Path(__file__).resolve().parent.parent.parent / "crds"


def _run(args: argparse.Namespace) -> int:
    import kopf

    from tracardi_operator import handlers  # noqa: F401 - registers the handlers
    from tracardi_operator.settings import Settings

    settings = Settings.from_env()
    kopf.configure(
        verbose=settings.log_level == "DEBUG",
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="object" if settings.log_format == "json" else None,
    )
    logging.getLogger().setLevel(settings.log_level)
    memo = kopf.Memo(settings=settings)
    kopf.run(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        memo=memo,
    )
    return 0


def _apply_crds(_: argparse.Namespace) -> int:
    import yaml
    from kubernetes import config

    from tracardi_operator.kube import Kube

    kube = Kube(config.new_client_from_config())
    for path in sorted(CRDS.glob("tracardi.com_*.yaml")):
        kube.apply(yaml.safe_load(path.read_text()))
        print(f"applied {path.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tracardi-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the operator").set_defaults(func=_run)
    sub.add_parser("apply-crds", help="apply crds/ to the cluster of $KUBECONFIG").set_defaults(func=_apply_crds)
    job = sub.add_parser("job", help="what the install and migration Jobs run")
    from tracardi_operator.jobs import cli as job_cli

    job_cli.add_job_commands(job.add_subparsers(dest="job", required=True))
    job.set_defaults(func=job_cli.run_job)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
