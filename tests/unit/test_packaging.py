"""The distribution carries every package of the source tree: an editable install finds a sub-package that the
wheel (the images, the notebook runtime) leaves out, so only this check sees it missing (agp.hub.jobs once was:
the hub image failed to import the workspace service)."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = config["package-dir"]
    found = set()
    for package, folder in folders.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            parts = init.parent.relative_to(base).parts
            if any(p.startswith((".", "_")) or p in {"node_modules", "labextension"} for p in parts):
                continue
            name = ".".join((package, *parts))
            # A folder mapped to a package of its own (agp.core in hub/core) is that package, not a sub-package.
            if not any(name != p and init.parent == ROOT / f for p, f in folders.items()):
                found.add(name)
    missing = found - listed
    assert not missing, f"packages missing from pyproject.toml's [tool.setuptools] packages: {missing}"
