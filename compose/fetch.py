"""Unpacking fetched archives and building MinIO from source, for the lab; fetching itself is the runtime's."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from agp.core import versions
from agp.core.fetch import FetchError, download, progress_bar, sha256_of

__all__ = ["FetchError", "build_minio", "download", "progress_bar", "sha256_of", "unpack", "unpack_folder"]

log = logging.getLogger(__name__)


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


def unpack_folder(archive: Path, folder: str, dest: Path) -> Path:
    """Unpack only ``folder`` (a path under the archive's single top folder) of a ``.tar.gz`` into ``dest``, once.

    Trino's server distribution stores a plugin's jars as hard links to ``lib/``: a link is written as a copy of its
    target, so that ``dest`` stands alone. Two passes over the archive (its index, then the data): a gzip stream
    cannot seek back to a link's target.
    """
    marker = dest / ".complete"
    if marker.exists():
        return dest
    with tarfile.open(archive, "r:gz") as t:
        members = t.getmembers()
    top = members[0].name.split("/", 1)[0]
    prefix = f"{top}/{folder.strip('/')}/"
    wanted = [m for m in members if m.name.startswith(prefix) and (m.isfile() or m.islnk())]
    if not wanted:
        raise FetchError(f"{archive.name} has no folder {folder!r}; the pinned artifact is not the expected one.")
    # archive name of the data -> the names it is written as under dest
    sources: dict[str, list[str]] = {}
    for m in wanted:
        rel = m.name[len(prefix) :]
        if not rel or rel.startswith("/") or ".." in Path(rel).parts:
            raise FetchError(f"{archive.name}: refusing the member {m.name!r} (outside {folder!r}).")
        sources.setdefault(m.linkname if m.islnk() else m.name, []).append(rel)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(archive, "r|gz") as t:
        for m in t:
            if m.name not in sources or not m.isfile():
                continue
            data = t.extractfile(m)
            assert data is not None  # a regular file's data
            first, *copies = sources.pop(m.name)
            with (tmp / first).open("wb") as f:
                shutil.copyfileobj(data, f, 1 << 20)
            for rel in copies:
                shutil.copyfile(tmp / first, tmp / rel)
    if sources:
        raise FetchError(f"{archive.name}: {len(sources)} files of {folder!r} have no data in the archive.")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    (dest / ".complete").write_text(f"{archive.name}:{folder}")
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
