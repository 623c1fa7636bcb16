"""Each role installs what it runs: the modules a role imports (at import time, as its processes load them) come
from distributions its extra declares, directly or through their own dependencies; and a role does not carry the
heavy parts of another (the hub no Spark or notebook stack, a notebook no FastAPI or supervisor).

Read from pyproject.toml and the source, checked against the distributions installed here (the test extra installs
every role), so that a module-level import of something a role lacks fails here and not in an image.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
FOLDERS = {
    "agp.core": "hub/core",
    "agp.hub": "hub",
    "agp.spawner": "spawner",
    "agp.extension": "extension",
    "agp.kernels": "kernels",
    "agp.compose": "compose",
}
# The modules each role's processes load, and the extras it installs.
ROLES = {
    "hub": (
        [
            "agp.hub.jupyterhub_config",
            "agp.hub.config",
            "agp.hub.service.__main__",
            "agp.hub.service.app",
            "agp.hub.cli",
            "agp.hub.rules_follow",  # the sidecar beside Trino's coordinator runs the hub image
            "agp.spawner.local",
            "agp.spawner.kube",
            "agp.spawner.docker",
        ],
        ["hub", "kubernetes", "docker"],
    ),
    "notebook": (
        ["agp.extension.app", "agp.extension.handlers", "agp.kernels"]
        + [f"agp.kernels.{p.stem}" for p in (ROOT / "kernels").glob("*.py") if p.stem not in {"__init__"}],
        ["notebook"],
    ),
}
# Distributions a role must not carry, even through a dependency.
NOT_IN = {"hub": {"pyspark", "jupysql", "jupyterlab", "ipykernel"}, "notebook": {"fastapi", "uvicorn", "supervisor"}}


def module_path(module: str) -> Path | None:
    for package, folder in sorted(FOLDERS.items(), key=lambda kv: -len(kv[0])):
        if module == package or module.startswith(package + "."):
            rest = module[len(package) :].lstrip(".")
            base = ROOT / folder / Path(*rest.split(".")) if rest else ROOT / folder
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
    return None


def import_time_imports(path: Path, module: str) -> set[str]:
    """What a module imports when it is loaded: statements at module level (and in its ``if``/``try`` blocks), not
    inside functions or classes, which run later or never; ``if TYPE_CHECKING:`` blocks are skipped."""
    tree = ast.parse(path.read_text())
    parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                name = (
                    ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                    if node.level
                    else node.module or ""
                )
                found.add(name)
                found.update(f"{name}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(tree.body)
    return found


def third_party_of(entries: list[str]) -> set[str]:
    """Top-level names of the non-agp, non-standard modules loaded with ``entries`` (their agp imports followed)."""
    seen: set[str] = set()
    third: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_path(module)
        if path is None:
            continue
        # Importing a submodule loads its package first.
        todo += [".".join(module.split(".")[:i]) for i in range(2, module.count(".") + 1)]
        for name in import_time_imports(path, module):
            if name.startswith("agp."):
                todo.append(name)
            else:
                third.add(name.split(".")[0])
    return {t for t in third if t and t not in sys.stdlib_module_names and t != "__future__"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


@cache
def distribution_closure(name: str, extras: frozenset[str] = frozenset()) -> frozenset[str]:
    """A distribution and everything it requires (with ``extras``), as installed here."""
    out = {name}
    try:
        reqs = requires(name) or []
    except PackageNotFoundError:
        return frozenset(out)
    for text in reqs:
        req = Requirement(text)
        env_ok = req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or {""}))
        if env_ok:
            out |= distribution_closure(_name(text), frozenset(req.extras))
    return frozenset(out)


def role_distributions(extras: list[str]) -> set[str]:
    declared = list(PROJECT["dependencies"])
    for extra in extras:
        declared += PROJECT["optional-dependencies"][extra]
    out: set[str] = set()
    for text in declared:
        out |= distribution_closure(_name(text), frozenset(Requirement(text).extras))
    return out


@pytest.mark.parametrize("role", sorted(ROLES))
def test_a_roles_imports_come_from_its_extra(role):
    entries, extras = ROLES[role]
    have = role_distributions(extras)
    by_module = packages_distributions()
    missing = {}
    for top in sorted(third_party_of(entries)):
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in by_module.get(top, [])}
        if not dists & have:
            missing[top] = sorted(dists) or ["(not installed)"]
    assert not missing, f"role {role!r} imports what its extras {extras} do not bring: {missing}"


@pytest.mark.parametrize("role", sorted(NOT_IN))
def test_a_role_does_not_carry_another_roles_stack(role):
    carried = role_distributions(ROLES[role][1]) & NOT_IN[role]
    assert not carried, f"role {role!r} would install {sorted(carried)}"


def test_the_check_sees_a_roles_imports():
    # The check cannot pass by reading nothing: the notebook role loads IPython's and Jupyter's stack, the hub
    # JupyterHub's and FastAPI's (the heavy libraries load later, inside functions).
    assert {"IPython", "ipywidgets", "jupyter_server"} <= third_party_of(ROLES["notebook"][0])
    assert {"jupyterhub", "fastapi", "sqlalchemy", "kubespawner", "dockerspawner"} <= third_party_of(ROLES["hub"][0])
