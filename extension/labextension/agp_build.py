"""agp's build backend: setuptools', which first builds the JupyterLab extension of this folder.

``pyproject.toml`` names this module as its PEP 517 backend (``backend-path``), so every way agp is built — ``pip
install -e .`` (CI's ``.ci/bootstrap``), the wheel ``agp lab up`` builds for the notebook runtime, the images' ``pip
wheel`` — builds the extension with JupyterLab's own tools (``jlpm``, and ``@jupyter/builder`` through
``jupyter_builder``) and ships it as data files in ``share/jupyter/labextensions/@agp/labextension``, where
JupyterLab finds prebuilt extensions. Users install nothing else.

Builds are cached outside the source tree, in ``$AGP_CACHE_DIR/labextension`` (default ``~/.cache/agp``):
``work/`` keeps ``node_modules`` (installed again only when ``package.json`` or ``yarn.lock`` change), and
``builds/<digest>`` the output of each source digest, so a repeated install of the same sources runs neither yarn
nor the compiler.

Without Node.js the wheel is built without the extension and a warning says so; ``AGP_LABEXTENSION=require`` makes
that an error, ``AGP_LABEXTENSION=skip`` skips the extension silently (the hub's image does not need it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (the hooks this backend does not change)

HERE = Path(__file__).resolve().parent
NAME = "@agp/labextension"
# Where the wheel's data files are taken from (pyproject.toml's [tool.setuptools.data-files] globs name it).
STAGE = Path("build") / "agp-labextension"
SOURCES = ("package.json", "yarn.lock", "tsconfig.json", ".yarnrc.yml", "src", "style")
KEEP_BUILDS = 5
INSTALL_JSON = {
    "packageManager": "python",
    "packageName": "antigravity-platform",
    "uninstallInstructions": "Use your Python package manager (pip, conda, etc.) to uninstall antigravity-platform",
}


def _say(message: str) -> None:
    print(f"agp labextension: {message}", file=sys.stderr, flush=True)


def source_digest(folder: Path) -> str:
    """A digest of the extension's sources (what changes its build output)."""
    h = hashlib.sha256()
    for part in SOURCES:
        path = folder / part
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            h.update(str(f.relative_to(folder)).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("AGP_CACHE_DIR") or Path.home() / ".cache" / "agp") / "labextension"


@contextlib.contextmanager
def _locked(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cmd: list[str], cwd: Path) -> None:
    _say(" ".join(cmd[:3]) + (" ..." if len(cmd) > 3 else ""))
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-30:])
        command = " ".join(cmd)
        raise RuntimeError(f"Building the JupyterLab extension failed: `{command}` exited {done.returncode}:\n{tail}")


def _compile(source: Path, work: Path, output: Path) -> None:
    """Install (when package.json or yarn.lock changed), compile and bundle the extension in ``work``."""
    from jupyter_builder.federated_extensions import build_labextension
    from jupyter_builder.jlpm import YARN_PATH, _which_node_js

    node = _which_node_js()
    work.mkdir(parents=True, exist_ok=True)
    for part in SOURCES:
        target = work / part
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if (source / part).is_dir():
            shutil.copytree(source / part, target)
        elif (source / part).is_file():
            shutil.copy2(source / part, target)
    lock = hashlib.sha256(b"".join((work / p).read_bytes() for p in ("package.json", "yarn.lock"))).hexdigest()
    installed = work / ".installed"
    if not (work / "node_modules").is_dir() or not installed.exists() or installed.read_text() != lock:
        _run([node, YARN_PATH, "install", "--immutable"], work)
        installed.write_text(lock)
    for stale in ("lib", "labextension"):  # and tsc's record of them, or it believes lib/ is up to date
        shutil.rmtree(work / stale, ignore_errors=True)
    (work / "tsconfig.tsbuildinfo").unlink(missing_ok=True)
    _run([node, str(work / "node_modules" / "typescript" / "bin" / "tsc"), "--sourceMap", "false"], work)
    _say("bundling with @jupyter/builder")
    build_labextension(str(work))
    built = work / "labextension"
    if not (built / "package.json").is_file():
        raise RuntimeError(f"Building the JupyterLab extension left no {built / 'package.json'}.")
    (built / "install.json").write_text(json.dumps(INSTALL_JSON, indent=2) + "\n")
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(built, partial)
    partial.rename(output)


def _prune(builds: Path, keep: Path) -> None:
    old = sorted((p for p in builds.iterdir() if p != keep and p.is_dir()), key=lambda p: p.stat().st_mtime)
    for p in old[: max(0, len(old) - (KEEP_BUILDS - 1))]:
        shutil.rmtree(p, ignore_errors=True)


def build_labextension(project: Path) -> Path | None:
    """The built extension staged in ``project/build/agp-labextension`` (from the cache when the sources are known).

    Returns the staged folder, or None when the extension was not built (no Node.js, or skipped).
    """
    stage = project / STAGE
    shutil.rmtree(stage, ignore_errors=True)  # never ship the files of an older build
    mode = os.environ.get("AGP_LABEXTENSION", "").lower()
    source = project / "extension" / "labextension"
    if mode == "skip" or not (source / "package.json").is_file():
        return None
    digest = source_digest(source)
    root = cache_root()
    output = root / "builds" / digest
    with _locked(root / "build.lock"):
        if (output / "package.json").is_file():
            _say(f"using the cached build {digest}")
        else:
            if not (shutil.which("node") or shutil.which("nodejs")):
                message = (
                    "Node.js is not installed, so the JupyterLab extension (the Jobs panel) is not built: "
                    "install nodejs (apt-get install nodejs npm) and build again."
                )
                if mode == "require":
                    raise RuntimeError(message)
                _say("WARNING: " + message)
                return None
            _say(f"building {NAME} ({digest}) in {root / 'work'}")
            _compile(source, root / "work", output)
            _prune(output.parent, output)
        os.utime(output)
        shutil.copytree(output, stage)
    return stage


def _with_labextension(hook):
    def run(*args, **kwargs):
        build_labextension(Path.cwd())
        return hook(*args, **kwargs)

    run.__name__ = hook.__name__
    return run


build_wheel = _with_labextension(_setuptools.build_wheel)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """setuptools' editable wheel, with the extension's data files, which setuptools leaves out of editable wheels."""
    stage = build_labextension(Path.cwd())
    name = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    if stage is not None:
        add_data_files(Path(wheel_directory) / name, stage, LABEXTENSIONS)
    return name


LABEXTENSIONS = f"share/jupyter/labextensions/{NAME}"


def add_data_files(wheel: Path, folder: Path, target: str) -> None:
    """Add the files of ``folder`` to ``wheel`` as data installed at ``<prefix>/<target>``, and to its RECORD."""
    import base64
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        entries = [(info, z.read(info)) for info in z.infolist()]
    record = next(info.filename for info, _ in entries if info.filename.endswith(".dist-info/RECORD"))
    data = record.split(".dist-info/")[0] + ".data/data/"
    added = [
        (f"{data}{target}/{f.relative_to(folder).as_posix()}", f.read_bytes())
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    ]
    rows = [
        line
        for info, content in entries
        if info.filename == record
        for line in content.decode().splitlines()
        if line and not line.startswith(record + ",")
    ]
    for path, content in added:
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        rows.append(f"{path},sha256={digest},{len(content)}")
    rows.append(f"{record},,")
    partial = wheel.with_name(wheel.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
        for info, content in entries:
            if info.filename != record:
                z.writestr(info, content)
        for path, content in added:
            z.writestr(path, content)
        z.writestr(record, "\n".join(rows) + "\n")
    partial.replace(wheel)
