"""`tracardi-operator`: `run` starts the operator; `job install|migrate` are what its Jobs run;
`apply-crds` installs the CRDs shipped in the package (tracardi_operator/crds, a generated copy of crds/)
into the cluster of $KUBECONFIG."""

from __future__ import annotations

import argparse
import datetime
import getpass
import logging
import os
import secrets
import socket
import sys
from collections.abc import Mapping


def operator_identity(env: Mapping[str, str], uid: int, hostname: str, now: datetime.datetime) -> str:
    """Who this operator process is, for kopf (its progress annotations and peering). kopf's own guess
    calls getpass.getuser(), which raises KeyError when the UID has no passwd entry, as in the image
    (USER 65532) or under any runAsUser a cluster picks. Here: $POD_ID if set (kopf's own convention),
    else `<user>@<host>/<time>/<random>` as kopf builds it, the user being the UID when it has no name.
    In a pod the host name is the pod's name."""
    if env.get("POD_ID"):
        return env["POD_ID"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{uid}"
    host = env.get("HOSTNAME") or hostname
    return f"{user}@{host}/{now.strftime('%Y%m%d%H%M%S')}/{secrets.token_hex(2)}"


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
    if settings.log_level != "DEBUG":
        # kopf logs "Handler ... succeeded" for every watch event of every object: with a fleet, most of
        # the log. Our own lines say what happened; kopf's failures are warnings and errors, still logged.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    memo = kopf.Memo(settings=settings)
    identity = operator_identity(os.environ, os.getuid(), socket.gethostname(), datetime.datetime.now(datetime.UTC))
    logging.getLogger("tracardi_operator").info("operator identity: %s", identity)
    kopf.run(
        identity=identity,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        memo=memo,
    )
    return 0


def _apply_crds(_: argparse.Namespace) -> int:
    import yaml

    from tracardi_operator.crdgen import packaged_crds
    from tracardi_operator.kube import Kube
    from tracardi_operator.kubeclient import KubeClient, credentials_from_environment
    from tracardi_operator.settings import sa_dir

    crds = packaged_crds()
    if not crds:
        print("no CRDs in the installed package (tracardi_operator/crds)", file=sys.stderr)
        return 1
    kube = Kube(KubeClient(credentials_from_environment(os.environ, sa_dir())))
    for name, text in crds.items():
        kube.apply(yaml.safe_load(text))
        print(f"applied {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tracardi-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the operator").set_defaults(func=_run)
    sub.add_parser("apply-crds", help="apply the packaged CRDs to the cluster (in a pod: in-cluster)").set_defaults(
        func=_apply_crds)
    job = sub.add_parser("job", help="what the install and migration Jobs run")
    from tracardi_operator.jobs import cli as job_cli

    job_cli.add_job_commands(job.add_subparsers(dest="job", required=True))
    job.set_defaults(func=job_cli.run_job)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
