"""Helpers the image build scripts share: folders, running a long command with progress, podman.

Images are built here with podman from a base made by debootstrap: no container registry is reachable, so every
``FROM`` names a local image (``localhost/...``). Standard library only, so the scripts run before any install.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

log = logging.getLogger("agp.images")

# podman under this machine's limits: runc (crun cannot do hybrid cgroups) and rlimits under the hard limit.
PODMAN = ["podman", "--runtime", "runc"]


class ImageError(Exception):
    """A one-sentence failure for the user; the detail is in the log it names."""


def cache_dir() -> Path:
    """Where built image archives and rootfs tarballs are kept (``AGP_IMAGES_CACHE`` or ~/.cache/agp/images)."""
    default = Path.home() / ".cache" / "agp" / "images"
    return Path(os.environ.get("AGP_IMAGES_CACHE") or default)


@contextlib.contextmanager
def build_lock():
    """Held while this machine builds images: a second builder (CI builds ahead of the tiers in the background while
    the tiers build what they need) waits and then finds the images made, instead of building the same ones at once.
    An advisory flock on a file in the cache, released when the process ends however it ends."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "build.lock").open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("Another build of images runs on this machine; waiting for it to finish.")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def log_dir() -> Path:
    default = Path.home() / ".local" / "state" / "agp" / "images" / "logs"
    path = Path(os.environ.get("AGP_IMAGES_LOGS") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_key(*parts: str | bytes | Path) -> str:
    """A short hash of the inputs of a build: files by content, everything else by value."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            h.update(part.read_bytes())
        else:
            h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def need(*tools: str) -> None:
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        raise ImageError(
            f"{', '.join(missing)} not found on PATH; `python3 -m tests.k8s up` installs them, or apt-get install them."
        )


def run(
    cmd: Sequence[str],
    *,
    what: str,
    logfile: Path,
    niceness: int = 19,
    env: dict | None = None,
    cwd: Path | None = None,
) -> None:
    """Run a long command at low priority, its output to ``logfile``; every 30 s log its latest line."""
    full = ["nice", "-n", str(niceness), *cmd]
    start = time.monotonic()
    latest = ""
    with logfile.open("a") as out:
        out.write(f"$ {' '.join(full)}\n")
        out.flush()
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)

        def pump() -> None:
            nonlocal latest
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                if line.strip():
                    latest = line.strip()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        last = start
        while proc.poll() is None:
            time.sleep(1)
            if time.monotonic() - last >= 30:
                last = time.monotonic()
                log.info("  %s, %d s: %s", what, last - start, latest[:120])
        reader.join()
    if proc.returncode != 0:
        raise ImageError(f"{what} failed (exit {proc.returncode}: {latest[:200]}); see {logfile}.")
    log.info("  %s: done in %d s", what, time.monotonic() - start)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([*PODMAN, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise ImageError(f"`podman {' '.join(args[:2])}` failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return r


def image_labels(name: str) -> dict[str, str] | None:
    """The labels of a local image, or None when podman has no image of that name."""
    r = podman("image", "inspect", name, check=False)
    if r.returncode != 0:
        return None
    data = json.loads(r.stdout)
    return (data[0].get("Labels") or {}) if data else None


def oci_labels(title: str, version: str, description: str, key: str) -> list[str]:
    """OCI labels as ``k=v`` strings, plus ``org.agp.build-key``: the hash of the inputs the image was built from."""
    labels = {
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.description": description,
        "org.opencontainers.image.vendor": "Antigravity",
        "org.agp.build-key": key,
    }
    return [f"{k}={v}" for k, v in labels.items()]


def save_archive(name: str, cache: Path | None = None) -> Path:
    """The image as a docker-archive in the cache, named by its image id (written once per id)."""
    r = podman("image", "inspect", "--format", "{{.Id}}", name)
    image_id = r.stdout.strip()[:16]
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    stem = name.replace("/", "_").replace(":", "_")
    path = cache / f"{stem}-{image_id}.tar"
    if not path.exists():
        for old in cache.glob(f"{stem}-*.tar"):  # archives of earlier builds of this name
            old.unlink()
        tmp = path.with_suffix(".partial")
        tmp.unlink(missing_ok=True)
        podman("save", "--format", "docker-archive", "-o", str(tmp), name)
        tmp.rename(path)
    return path


def main_wrapper(fn, argv: Iterable[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        fn(list(argv) if argv is not None else sys.argv[1:])
    except ImageError as e:
        log.error("error: %s", e)
        return 1
    return 0
