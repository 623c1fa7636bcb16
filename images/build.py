#!/usr/bin/env python3
"""Build Antigravity's images from their Dockerfiles, in dependency order, skipping those whose inputs are unchanged.

    python3 images/build.py                  # every image this machine can build
    python3 images/build.py trino keycloak   # just these (and the base, when it is missing)
    python3 images/build.py --save           # also write each image's archive into the images cache

Each image is ``localhost/agp-<name>:dev``, also tagged ``:<key>``: a hash of what the build reads (the Dockerfile,
every file and folder it COPYs from the repository, the ids of the images it starts FROM), which is also its
``org.agp.build-key`` label. An image whose key is already tagged is not built again. The base
(``localhost/agp-base:bookworm``) comes from images/base/build.py when missing. An image that starts FROM an image
this machine does not have (one of a registry) is skipped, or is an error when named. One image failing does not
stop the others; the run fails at the end. ``--format docker``, because the OCI format drops HEALTHCHECK.
Standard library only, like imaging.py; the builds run under ``nice`` with podman as this machine needs it.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import imaging  # noqa: E402

BASE = "localhost/agp-base:bookworm"
# Build order: the base first (it is made by images/base/build.py, not by a Dockerfile), then every image from it.
ORDER = ("hub", "notebook", "catalog", "minio", "trino", "keycloak", "postgres", "proxy")
# The build-time trust store: the host's, mounted for RUN steps only (a TLS-intercepting proxy here); no image keeps it.
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Limits under this machine's hard ones (see KUBERNETES-HERE.md): runc cannot raise what the host does not allow.
ULIMITS = ("--ulimit", "nofile=10000:10000", "--ulimit", "nproc=4096:4096")
# Not inputs of any image: bytecode and caches that the working tree grows on its own.
IGNORED = ("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", "*.egg-info", ".git")


@dataclass(frozen=True)
class Dockerfile:
    """What a Dockerfile reads: the images it starts FROM and the repository paths it COPYs (after ARG defaults)."""

    path: Path
    bases: tuple[str, ...]
    sources: tuple[str, ...]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        if whole:
            word, _, rest = whole.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def parse(path: Path) -> Dockerfile:
    """The external images and the context paths of a Dockerfile; ``${ARG}`` in FROM resolved from ARG defaults."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[str] = []
    sources: list[str] = []
    seen_from = False
    for word, rest in instructions(path.read_text()):
        if word == "ARG" and not seen_from:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif word == "FROM":
            seen_from = True
            parts = rest.split()
            parts = [p for p in parts if not p.startswith("--")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), parts[0])
            if len(parts) >= 3 and parts[1].upper() == "AS":
                stages.add(parts[2].lower())
            if image.lower() not in stages and image not in bases and image != "scratch":
                bases.append(image)
        elif word in {"COPY", "ADD"}:
            tokens = [t for t in shlex.split(rest) if not t.startswith("--")]
            if any(t.startswith("--from") for t in shlex.split(rest)):
                continue
            sources.extend(tokens[:-1])
    return Dockerfile(path, tuple(bases), tuple(sources))


def _ignored(path: Path) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in path.parts for pattern in IGNORED)


def context_files(sources: tuple[str, ...], root: Path = ROOT) -> list[Path]:
    """Every file the COPYs read, folders walked, sorted; a source that does not exist is an error of the build."""
    files: set[Path] = set()
    for source in sources:
        matches = sorted(root.glob(source)) if any(c in source for c in "*?[") else [root / source]
        for match in matches:
            if not match.exists():
                raise imaging.ImageError(f"{source} is COPYed by a Dockerfile but does not exist under {root}")
            if match.is_dir():
                files.update(p for p in match.rglob("*") if p.is_file() and not _ignored(p.relative_to(root)))
            else:
                files.add(match)
    return sorted(files)


def build_key(dockerfile: Dockerfile, base_ids: dict[str, str], root: Path = ROOT) -> str:
    """The hash of a build's inputs: the Dockerfile, each COPYed file (by path and content), each FROM image's id."""
    parts: list[str | bytes | Path] = [dockerfile.path]
    for f in context_files(dockerfile.sources, root):
        parts += [str(f.relative_to(root)), f]
    parts += [f"{b}@{base_ids.get(b, '')}" for b in dockerfile.bases]
    return imaging.content_key(*parts)


def image_id(name: str) -> str | None:
    r = imaging.podman("image", "inspect", "--format", "{{.Id}}", name, check=False)
    return (r.stdout.strip() or None) if r.returncode == 0 else None


def ensure_base() -> None:
    if image_id(BASE):
        return
    imaging.log.info("%s is missing: making it with images/base/build.py (about 2 min)", BASE)
    r = subprocess.run([sys.executable, str(HERE / "base" / "build.py")])
    if r.returncode != 0:
        raise imaging.ImageError(f"images/base/build.py could not make {BASE}; see its output above.")


def drop_old_keys(repo: str, key: str) -> None:
    """Untag the ``:<key>`` tags of earlier builds of ``repo`` (their layers go with the next prune)."""
    r = imaging.podman("images", "--format", "json", repo, check=False)
    for image in json.loads(r.stdout or "[]") if r.returncode == 0 else []:
        for name in image.get("Names") or []:
            tag = name.rsplit(":", 1)[-1]
            if name.startswith(f"{repo}:") and re.fullmatch(r"[0-9a-f]{16}", tag) and tag != key:
                imaging.podman("untag", image["Id"], name, check=False)


# Images no tag names any more (earlier builds, whose keys drop_old_keys untagged) and the intermediate images of
# steps older than this are removed after each run: each build of the notebook image leaves about 2 GB, and a
# machine that builds in every CI run filled its disk (380 GB of such images). The last hour's stay, so that a
# build repeated soon reuses its steps' layers.
PRUNE_AFTER = "1h"


def prune_dangling() -> None:
    r = imaging.podman("image", "prune", "--force", "--filter", f"until={PRUNE_AFTER}", check=False)
    removed = len(r.stdout.split()) if r.returncode == 0 else 0
    if removed:
        imaging.log.info("removed %d untagged images older than %s", removed, PRUNE_AFTER)


def build_one(name: str, *, force: bool, explicit: bool) -> tuple[str, float] | None:
    """Build ``localhost/agp-<name>:dev`` unless up to date; (state, seconds), or None when it cannot build here."""
    dockerfile = parse(HERE / name / "Dockerfile")
    base_ids = {b: image_id(b) or "" for b in dockerfile.bases}
    missing = [b for b, i in base_ids.items() if not i]
    if missing:
        message = f"{name}: starts FROM {', '.join(missing)}, which is not here and cannot be pulled"
        if explicit:
            raise imaging.ImageError(message)
        imaging.log.warning("skipped %s", message)
        return None
    key = build_key(dockerfile, base_ids)
    repo = f"localhost/agp-{name}"
    if not force and image_id(f"{repo}:{key}"):
        imaging.podman("tag", f"{repo}:{key}", f"{repo}:dev")
        return "up to date", 0.0
    # --format docker: the OCI image format has no field for HEALTHCHECK, which podman would drop.
    cmd = [*imaging.PODMAN, "build", "--format", "docker", *ULIMITS, "--label", f"org.agp.build-key={key}"]
    if HOST_CA.is_file():
        cmd += ["-v", f"{HOST_CA}:{HOST_CA}:ro"]
    cmd += ["-f", str(dockerfile.path.relative_to(ROOT)), "-t", f"{repo}:{key}", "-t", f"{repo}:dev", "."]
    logfile = imaging.log_dir() / f"{name}.log"
    imaging.log.info("Building %s:dev (log: %s)", repo, logfile)
    start = time.monotonic()
    imaging.run(cmd, what=f"build of {name}", logfile=logfile, cwd=ROOT)
    drop_old_keys(repo, key)
    return "built", time.monotonic() - start


def size_of(name: str) -> int:
    r = imaging.podman("image", "inspect", "--format", "{{.Size}}", name)
    return int(r.stdout.strip())


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"images to build (default: all of {', '.join(ORDER)})"
    )
    parser.add_argument("--save", action="store_true", help="write each image's archive into the images cache")
    parser.add_argument("--force", action="store_true", help="build even when the inputs are unchanged")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(ORDER))
    if unknown:
        raise imaging.ImageError(f"no image named {', '.join(unknown)}; the images are {', '.join(ORDER)}.")
    imaging.need("podman", "nice")
    with imaging.build_lock():
        try:
            build(args)
        finally:
            prune_dangling()


def build(args: argparse.Namespace) -> None:
    ensure_base()
    wanted = [n for n in ORDER if n in args.names] if args.names else list(ORDER)
    rows, failed = [], []
    for name in wanted:
        try:
            result = build_one(name, force=args.force, explicit=bool(args.names))
        except imaging.ImageError as e:  # the others still build; the run fails at the end
            imaging.log.error("error: %s", e)
            failed.append(name)
            rows.append((f"localhost/agp-{name}", "FAILED", "-", "-", ""))
            continue
        if result is None:
            rows.append((f"localhost/agp-{name}", "skipped", "-", "-", ""))
            continue
        state, seconds = result
        image = f"localhost/agp-{name}:dev"
        saved = str(imaging.save_archive(image)) if args.save else ""
        took = f"{seconds:.0f} s" if state == "built" else "-"
        rows.append((image, state, f"{size_of(image) / 1e6:.0f} MB", took, saved))
    width = max(len(r[0]) for r in rows)
    for image, state, size, took, saved in rows:
        print(f"{image:<{width}}  {state:<10}  {size:>8}  {took:>6}  {saved}".rstrip())
    if failed:
        raise imaging.ImageError(f"{', '.join(failed)} did not build; the logs are in {imaging.log_dir()}.")


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(imaging.main_wrapper(main))
