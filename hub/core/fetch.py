"""Fetching artifacts once into the cache, with a progress bar, verified against pinned checksums."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import requests
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

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
