"""The images built on this machine (buildah's storage, as `make image` leaves them) and their root
filesystems: `ImageStore.find` answers whether an image exists here and with which config, `rootfs`
unpacks one copy per image id under `<state>/images/<id>/rootfs` (from a `buildah mount` of a
throw-away working container), shared read-only by every container of that image."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path

from devenv.nodeagent.rules import ImageConfig

log = logging.getLogger("nodeagent.images")


def buildah(*args: str) -> list[str]:
    return ["buildah", f"--storage-driver={os.environ.get('STORAGE_DRIVER', 'overlay')}", *args]


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def find(self, image: str) -> ImageConfig | None:
        """The config of `image` when it exists in buildah's storage here, else None (no pull: nothing
        is pulled in devenv)."""
        if shutil.which("buildah") is None:
            self._note(image, "buildah is not installed (make debs)")
            return None
        done = subprocess.run(buildah("inspect", "--type", "image", image), capture_output=True, text=True,
                              timeout=60, check=False)
        if done.returncode != 0:
            self._note(image, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "not found")
            return None
        raw = json.loads(done.stdout)
        self._warned.discard(image)
        return ImageConfig.from_oci(str(raw["FromImageID"]), (raw.get("OCIv1") or {}).get("config") or {})

    def _note(self, image: str, why: str) -> None:
        if image not in self._warned:
            self._warned.add(image)
            log.info("image %s is not built here (%s): its containers run as local processes of .venv; "
                     "`make image` builds it", image, why)

    def rootfs(self, image: ImageConfig) -> Path:
        """The unpacked root filesystem of `image` (made once per image id, about 2 s)."""
        target = self.root / image.id / "rootfs"
        with self._lock:
            if target.is_dir():
                return target
            partial = self.root / image.id / "rootfs.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.parent.mkdir(parents=True, exist_ok=True)
            ctr = subprocess.run(buildah("from", "--pull-never", image.id), capture_output=True, text=True,
                                 check=True, timeout=120).stdout.strip().splitlines()[-1]
            try:
                mount = subprocess.run(buildah("mount", ctr), capture_output=True, text=True, check=True,
                                       timeout=60).stdout.strip()
                subprocess.run(["cp", "-a", f"{mount}/.", str(partial)], check=True, timeout=600)
            finally:
                subprocess.run(buildah("rm", ctr), capture_output=True, check=False, timeout=60)
            partial.rename(target)
            log.info("unpacked image %s into %s", image.id[:12], target)
            self._prune(keep=image.id)
            return target

    def _prune(self, keep: str) -> None:
        """Drop unpacked copies of image ids buildah no longer has (rebuilt images)."""
        done = subprocess.run(buildah("images", "--no-trunc", "--quiet"), capture_output=True, text=True,
                              check=False, timeout=60)
        if done.returncode != 0:
            return
        known = {line.strip().removeprefix("sha256:") for line in done.stdout.splitlines()}
        for d in self.root.iterdir() if self.root.is_dir() else []:
            if d.name != keep and d.name not in known:
                shutil.rmtree(d, ignore_errors=True)
