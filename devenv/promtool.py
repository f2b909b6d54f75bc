"""promtool, pinned in `promtool/go.mod` (github.com/prometheus/prometheus) and built from the Go module proxy
like the control plane: `python -m devenv.promtool` (`make promtool`) puts `bin/promtool` in the state
directory, built again only when `promtool/go.mod` or `promtool/go.sum` is newer. The tests of
manifests/monitoring run it (`promtool check rules`, `promtool test rules`).

Built with `-tags remove_all_sd`: without Prometheus' service discovery plugins (the AWS, Azure, GCE, ...
SDKs) the build compiles a fifth of the packages, and promtool's rule commands use none of them."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from devenv import gobuild, procs
from devenv.paths import REPO_ROOT, State

PROMTOOL_MODULE = REPO_ROOT / "devenv" / "promtool"
PACKAGE = "github.com/prometheus/prometheus/cmd/promtool"


def binary(state: State) -> Path:
    return state.bin / "promtool"


def _sources() -> list[Path]:
    return [PROMTOOL_MODULE / "go.mod", PROMTOOL_MODULE / "go.sum"]


def release(go_mod: str) -> str:
    """The Prometheus release of the pinned module: v0.MMM.P is release 3.(MMM-300).P."""
    found = re.search(r"^\s*(?:require\s+)?github\.com/prometheus/prometheus v0\.3(\d\d)\.(\d+)\b", go_mod,
                      re.MULTILINE)
    if found is None:
        raise procs.DevenvError(f"{PROMTOOL_MODULE / 'go.mod'} requires no github.com/prometheus/prometheus v0.3NN.P")
    return f"3.{int(found.group(1))}.{found.group(2)}"


def build(state: State) -> Path:
    """`bin/promtool` of `state`, compiled unless it is newer than the pinned module (progress every 15 s)."""
    out = binary(state)
    with gobuild.build_lock(state):
        if not gobuild.fresh(out, _sources()):
            version = release((PROMTOOL_MODULE / "go.mod").read_text())
            stamp = f"-X github.com/prometheus/common/version.Version={version}"
            flags = ["-tags", "remove_all_sd", "-ldflags", f"-s -w {stamp}"]
            gobuild.go_build(state, f"promtool {version}", "build-promtool", PROMTOOL_MODULE, out, flags,
                             package=PACKAGE)
    return out


if __name__ == "__main__":
    sys.exit(gobuild.main("promtool", build))
