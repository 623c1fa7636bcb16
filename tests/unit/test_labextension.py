"""The JupyterLab extension (extension/labextension): built with agp, installed where JupyterLab finds it, served.

These check the installed environment (``pip install -e .`` builds and installs it: .ci/bootstrap) and the wheel the
lab's notebook runtime installs (compose/runtime.py builds it from a copy of the source tree, as done here).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from agp.compose import runtime

pytest_plugins = ["jupyter_server.pytest_plugin"]

NAME = "@agp/labextension"
INSTALLED = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / NAME
REBUILD = "reinstall agp (`python3 -m pip install -e .`, which builds the extension; it needs Node.js)"


def test_the_extension_is_listed_by_jupyterlab_in_this_environment():
    listing = subprocess.run(
        [sys.executable, "-m", "jupyterlab.labextensions", "list"], capture_output=True, text=True, check=True
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    line = next((row for row in text.splitlines() if NAME in row), None)
    assert line is not None, f"{NAME} is not installed here: {REBUILD}.\n{text}"
    assert "enabled" in line and "OK" in line and "(python, antigravity-platform)" in line, line


@pytest.fixture
def jp_server_config():
    """JupyterLab in a test server, reading prebuilt extensions from this environment (the plugin hides its paths)."""
    return {
        "ServerApp": {"jpserver_extensions": {"jupyterlab": True}},
        "LabApp": {"extra_labextensions_path": [str(INSTALLED.parent.parent)]},
    }


async def test_jupyterlab_loads_and_serves_the_extension(jp_fetch):
    if not (INSTALLED / "package.json").is_file():
        pytest.fail(f"{NAME} is not installed in {INSTALLED}: {REBUILD}.")
    page = (await jp_fetch("lab")).body.decode()
    config = json.loads(
        re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)[1]
    )
    (ours,) = [e for e in config["federated_extensions"] if e["name"] == NAME]
    assert ours["extension"] and ours["load"].startswith("static/remoteEntry.")
    assert "@agp/labextension:jobs" not in config.get("disabledExtensions", [])
    entry = await jp_fetch("lab", "extensions", NAME, ours["load"])
    assert entry.code == 200 and b"@agp/labextension" in entry.body


def test_a_wheel_of_the_source_tree_carries_the_built_extension(tmp_path):
    """The wheel agp lab up installs in the notebook runtime (compose/runtime.py: a copy of the hashed files)."""
    root = runtime.source_root()
    src = tmp_path / "src"
    for rel, path in runtime.source_files(root):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(path.read_bytes())
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    prefix = f"antigravity_platform-0.1.0.data/data/share/jupyter/labextensions/{NAME}/"
    ours = {n[len(prefix) :] for n in names if n.startswith(prefix)}
    assert {"package.json", "install.json"} <= ours, f"no built extension in the wheel: {sorted(ours)}"
    assert any(re.fullmatch(r"static/remoteEntry\.[0-9a-f]+\.js", n) for n in ours), sorted(ours)
    built = json.loads(zipfile.ZipFile(wheel).read(prefix + "package.json"))
    assert built["name"] == NAME and built["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
