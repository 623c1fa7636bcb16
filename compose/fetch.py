"""Fetching artifacts once into the cache, with a progress bar, verified against pinned checksums."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import requests
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from . import versions
from .versions import Artifact

log = logging.getLogger(__name__)


class FetchError(RuntimeError):
    """An artifact could not be fetched, verified or built."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(artifact: Artifact, downloads: Path, progress: Progress | None = None) -> Path:
    """The verified file of ``artifact`` in ``downloads``; fetched only when missing or corrupt."""
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / artifact.filename
    if target.is_file() and target.stat().st_size == artifact.size and sha256_of(target) == artifact.sha256:
        return target
    partial = target.with_name(target.name + ".part")
    log.info("downloading %s", artifact.url)
    try:
        with requests.get(artifact.url, stream=True, timeout=(15, 120)) as r:
            r.raise_for_status()
            task = progress.add_task(artifact.filename, total=artifact.size) if progress else None
            with partial.open("wb") as f:
                for chunk in r.iter_content(1 << 20):
                    f.write(chunk)
                    if progress and task is not None:
                        progress.advance(task, len(chunk))
    except (requests.RequestException, OSError) as e:
        partial.unlink(missing_ok=True)
        raise FetchError(f"Could not download {artifact.filename} from Maven Central: {e}") from e
    digest = sha256_of(partial)
    if digest != artifact.sha256:
        partial.unlink(missing_ok=True)
        raise FetchError(
            f"{artifact.filename} failed verification (sha256 {digest}, expected {artifact.sha256}); "
            "it was deleted, run the command again."
        )
    partial.replace(target)
    return target


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` into ``dest`` once (a ``.complete`` marker makes it idempotent); return ``dest``."""
    marker = dest / ".complete"
    if marker.exists():
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)  # noqa: S202 (zipfile drops absolute and .. parts of names)
    else:
        with tarfile.open(archive) as t:
            t.extractall(tmp, filter="tar")
    # Both Maven Central distributions wrap their content in one top folder: lift it.
    entries = list(tmp.iterdir())
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
    shutil.rmtree(dest, ignore_errors=True)
    root.rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    (dest / ".complete").write_text(archive.name)
    return dest


def build_minio(cache: Path) -> Path:
    """The MinIO server binary built with ``go install`` at the pinned module version, cached by version."""
    bindir = cache / "minio" / versions.MINIO_MODULE_VERSION
    binary = bindir / "minio"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if not go:
        raise FetchError(
            "MinIO is built from source and needs Go 1.24 or newer: install it (`apt-get install golang`)."
        )
    env = {**os.environ, "GOBIN": str(bindir), "GOFLAGS": "-buildvcs=false", "CGO_ENABLED": "0"}
    module = f"{versions.MINIO_MODULE}@{versions.MINIO_MODULE_VERSION}"
    print(f"Building MinIO ({module}) with go install; this takes a few minutes once.", file=sys.stderr)
    log.info("go install %s", module)
    proc = subprocess.run([go, "install", module], env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not binary.is_file():
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise FetchError(f"Building MinIO with `go install {module}` failed:\n{tail}")
    return binary
