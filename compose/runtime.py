"""The notebook runtime: what workspace servers run from when they run as unprivileged OS users.

The lab's own Python (pyenv under root's 0700 home) and its editable install of agp are out of other users' reach.
So ``agp lab up`` builds, as root, a venv of Debian's ``/usr/bin/python3`` in a 0755 folder outside root's home,
installs agp into it from the source tree as a wheel (not editable) with its dependencies (from pip's cache after
the first time), adds the kernel spec and JupyterLab's defaults, and
copies Spark's jars and Trino's CA certificate to public folders. Users can run and read all of it, change none of
it. A marker records what was built; ``up`` does nothing more while the source, the dependencies and the Python
stay the same, and re-installs agp alone when only the source changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from rich.console import Console

from agp.core import versions
from agp.core.settings import Settings
from agp.spawner.osusers import ServerFolders

from . import fetch
from .keys import KeyPaths

BASE_PYTHON = Path("/usr/bin/python3")  # Debian's, readable and runnable by every user
DISTRIBUTION = "antigravity-platform"
# What goes into the wheel: the project file and the packages' folders (tests, images and helm do not).
SOURCE_PARTS = ("pyproject.toml", "README.md", "compose", "hub", "spawner", "extension", "kernels")
# JupyterLab's defaults for every server (the user may change them): no news or update checks from the internet.
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}


class RuntimeBuildError(RuntimeError):
    """The runtime could not be built; ``str()`` is one sentence for the user of ``agp lab up``."""


def source_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """A digest of (relative path, content) pairs, independent of their order (pure)."""
    h = hashlib.sha256()
    for rel, data in sorted(files):
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


EXTRA = "notebook"  # the optional dependencies a notebook's Python gets besides agp's own (pyproject.toml)


def requirements(pyproject: str) -> list[str]:
    """The runtime's dependencies: those of the distribution and of its ``notebook`` extra, as ``pyproject.toml``
    declares them (pure)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import toml as tomllib  # type: ignore[no-redef]
    project = tomllib.loads(pyproject)["project"]
    return sorted(project["dependencies"] + project.get("optional-dependencies", {}).get(EXTRA, []))


def wanted_marker(source: str, deps: str, python: str) -> dict[str, str]:
    return {"source": source, "dependencies": deps, "python": python}


def source_root() -> Path:
    """The source tree agp runs from (the lab's install is editable)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise RuntimeBuildError(
            f"The notebook runtime is built from agp's source tree, and {root} has no pyproject.toml; install agp "
            "from a checkout (`pip install -e .`)."
        )
    return root


def source_files(root: Path) -> Iterator[tuple[str, Path]]:
    for part in SOURCE_PARTS:
        path = root / part
        if path.is_file():
            yield part, path
            continue
        for f in sorted(path.rglob("*")):
            rel = f.relative_to(root)
            if f.is_file() and "__pycache__" not in rel.parts and f.suffix != ".pyc":
                yield str(rel), f


def ensure(settings: Settings, console: Console) -> ServerFolders:
    """Build or refresh the runtime and this lab's public files; quick when nothing changed."""
    folders = ServerFolders(settings.servers_root, settings.server_runtime_root)
    with _umask(0o022):
        for folder, mode in (
            (Path("/var/lib/agp"), 0o755),
            (folders.runtime_root, 0o755),
            (folders.root, 0o755),
            (folders.public, 0o755),
            (folders.homes, 0o711),
        ):
            _root_folder(folder, mode)
        # Labs, `up` and test sessions may refresh it at once. The lock is in the cache, which users cannot open.
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        with _locked(settings.cache_dir / "notebook-runtime.lock"):
            _install(folders, console)
            _public_files(settings, folders)
    return folders


def _root_folder(folder: Path, mode: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    info = folder.lstat()
    if info.st_uid != 0 or folder.is_symlink():
        raise RuntimeBuildError(f"{folder} must be a folder owned by root; remove it and run `agp lab up` again.")
    if info.st_mode & 0o7777 != mode:
        folder.chmod(mode)


def _install(folders: ServerFolders, console: Console) -> None:
    root = source_root()
    files = list(source_files(root))
    source = source_digest((rel, path.read_bytes()) for rel, path in files)
    deps = hashlib.sha256("\n".join(requirements((root / "pyproject.toml").read_text())).encode()).hexdigest()[:16]
    if not BASE_PYTHON.exists():
        raise RuntimeBuildError(
            f"Servers run on Debian's Python, and {BASE_PYTHON} is missing: `apt-get install python3`."
        )
    python = os.path.realpath(BASE_PYTHON)
    marker = folders.runtime_root / "built.json"
    wanted = wanted_marker(source, deps, python)
    try:
        built = json.loads(marker.read_text())
    except (OSError, ValueError):
        built = {}
    if built == wanted and folders.singleuser.exists():
        return
    t0 = time.monotonic()
    # A new Python or new dependencies: a new venv (about a minute from pip's cache); new source: agp alone.
    fresh = not folders.singleuser.exists() or (built.get("python"), built.get("dependencies")) != (python, deps)
    what = "Building the notebook runtime (about a minute)" if fresh else "Updating agp in the notebook runtime"
    with console.status(what + "...") as status, tempfile.TemporaryDirectory(prefix="agp-runtime-") as tmp:
        wheel = _wheel(root, files, Path(tmp), status, what)
        pip = [str(folders.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        if fresh:
            marker.unlink(missing_ok=True)
            shutil.rmtree(folders.venv, ignore_errors=True)
            # System site packages make the user's own site count (PIP_USER); --ignore-installed keeps Debian's
            # packages out of the venv's own, which come first on sys.path.
            _run([str(BASE_PYTHON), "-m", "venv", "--system-site-packages", str(folders.venv)], status, what)
            _run([*pip, "--ignore-installed", f"{wheel}[{EXTRA}]"], status, what)
        else:
            _run([*pip, "--no-deps", "--force-reinstall", str(wheel)], status, what)
        _post_install(folders)
    marker.write_text(json.dumps(wanted))
    console.print(f"[green]✓[/green] {what.split(' (')[0]} ({time.monotonic() - t0:.1f} s)")


def _wheel(root: Path, files: list[tuple[str, Path]], work: Path, status, what: str) -> Path:
    """agp's wheel, built from a copy of the hashed files (the build writes nothing into the source tree)."""
    src = work / "src"
    for rel, path in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, src / rel)
    dist = work / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(src)], status, what)
    (wheel,) = dist.glob("*.whl")
    return wheel


def _post_install(folders: ServerFolders) -> None:
    """The Antigravity kernel and JupyterLab's defaults, in the venv where every server of it finds them."""
    from agp.kernels import kernelspec

    share = folders.venv / "share" / "jupyter"
    kernelspec.install(share, python=str(folders.python))
    overrides = share / "lab" / "settings" / "overrides.json"
    overrides.parent.mkdir(parents=True, exist_ok=True)
    overrides.write_text(json.dumps(LAB_OVERRIDES, indent=2) + "\n")


def _public_files(settings: Settings, folders: ServerFolders) -> None:
    """Spark's jars (the servers' AGP_CACHE_DIR) and Trino's CA certificate: public, and nothing else."""
    downloads = folders.cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    ours = settings.cache_dir / "downloads"
    for artifact in versions.SPARK_JARS:
        target, cached = downloads / artifact.filename, ours / artifact.filename
        if target.exists() and target.stat().st_size == artifact.size:
            continue
        if cached.is_file():
            shutil.copyfile(cached, target)
        fetch.download(artifact, downloads)  # verifies the copy, or fetches what the lab's cache lacked
    ca = KeyPaths(settings.keys_dir).trino_ca
    if ca.exists() and (not folders.trino_ca.exists() or folders.trino_ca.read_bytes() != ca.read_bytes()):
        folders.trino_ca.write_bytes(ca.read_bytes())


def _run(cmd: list[str], status, what: str) -> None:
    """Run ``cmd``, showing its latest output line after ``what``; a failure becomes one sentence."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.strip()
        if line:
            tail = [*tail[-24:], line]
            status.update(f"{what}: {line[:100]}")
    if proc.wait() != 0:
        out = "\n".join("    " + t for t in tail)
        raise RuntimeBuildError(
            f"{what} failed: `{' '.join(cmd[:4])} ...` exited {proc.returncode}; it ended with:\n{out}"
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
