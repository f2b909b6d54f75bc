"""helm, pinned in `helm/go.mod` (helm.sh/helm/v3) and built from the Go module proxy like the control plane:
`python -m devenv.helm` (`make helm`) puts `bin/helm` in the state directory, built again only when
`helm/go.mod` or `helm/go.sum` is newer. The chart's tests (`charts/tracardi-operator/`) run it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from devenv import gobuild, procs
from devenv.paths import REPO_ROOT, State

HELM_MODULE = REPO_ROOT / "devenv" / "helm"
HELM_VERSION = "v3.22.0"  # keep in step with helm/go.mod
PACKAGE = "helm.sh/helm/v3/cmd/helm"


def binary(state: State) -> Path:
    return state.bin / "helm"


def _sources() -> list[Path]:
    return [HELM_MODULE / "go.mod", HELM_MODULE / "go.sum"]


def ldflags(go_mod: str) -> list[str]:
    """What helm's Makefile stamps into a release: its version, and the Kubernetes version it assumes when no
    cluster is asked (`helm template`, `helm lint`), derived from the pinned k8s.io/client-go (v0.N -> 1.N)."""
    found = re.search(r"^\s*(?:require\s+)?k8s\.io/client-go v0\.(\d+)\.", go_mod, re.MULTILINE)
    if found is None:
        raise procs.DevenvError(f"{HELM_MODULE / 'go.mod'} requires no k8s.io/client-go v0.N")
    flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
             "-X helm.sh/helm/v3/internal/version.gitTreeState=clean"]
    for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={found.group(1)}"]
    return flags


def build(state: State) -> Path:
    """`bin/helm` of `state`, compiled unless it is newer than the pinned module (progress every 15 s)."""
    out = binary(state)
    with gobuild.build_lock(state):
        if not gobuild.fresh(out, _sources()):
            flags = ["-ldflags", " ".join(ldflags((HELM_MODULE / "go.mod").read_text()))]
            gobuild.go_build(state, f"helm {HELM_VERSION}", "build-helm", HELM_MODULE, out, flags, package=PACKAGE)
    return out


if __name__ == "__main__":
    sys.exit(gobuild.main("helm", build))
