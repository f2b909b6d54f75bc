"""Where devenv keeps its state: binaries, certificates, data, logs and pid files under `.devenv/`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class State:
    """The layout of one devenv state directory (default `<repo>/.devenv`, or $DEVENV_DIR)."""

    root: Path

    @classmethod
    def default(cls) -> State:
        return cls(Path(os.environ.get("DEVENV_DIR", REPO_ROOT / ".devenv")).resolve())

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def pods(self) -> Path:
        """Output of the processes the node agent runs for pods, one file per container run."""
        return self.root / "pods"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def pidfile(self, component: str) -> Path:
        return self.pids / f"{component}.pid"

    def worker(self, name: str) -> State:
        """The state directory of a test worker (`<root>-<name>`, e.g. `.devenv-gw1`): a devenv of its own
        beside this one (`lifecycle.worker_state` makes it, with `bin/` a link to this one's)."""
        return State(self.root.with_name(f"{self.root.name}-{name}"))

    def workers(self) -> list[State]:
        """The test workers' state directories beside this one."""
        return sorted((State(p) for p in self.root.parent.glob(f"{self.root.name}-gw*") if p.is_dir()),
                      key=lambda s: s.root.name)

    def ensure(self) -> None:
        for d in (self.root, self.bin, self.pki, self.logs, self.pids, self.data, self.pods):
            d.mkdir(parents=True, exist_ok=True)
