"""Dependencies point one way: the lab depends on the runtime, never the reverse, and the runtime has no cycles.

Read from the source (every ``import`` and ``from ... import`` anywhere in a module, also inside functions), so that
an import deferred into a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Folder -> the agp package it installs as (pyproject.toml's package-dir).
PACKAGES = {
    "hub/core": "agp.core",
    "hub": "agp.hub",
    "spawner": "agp.spawner",
    "extension": "agp.extension",
    "kernels": "agp.kernels",
    "compose": "agp.compose",
}
# What each part may import of the others (besides itself). The runtime never imports the lab (compose).
ALLOWED = {
    "agp.core": set(),
    "agp.kernels": {"agp.core"},
    "agp.extension": {"agp.core", "agp.kernels"},
    "agp.spawner": {"agp.core", "agp.extension", "agp.kernels"},
    "agp.hub": {"agp.core", "agp.spawner"},
    "agp.compose": {"agp.core", "agp.hub", "agp.spawner", "agp.extension", "agp.kernels"},
}


def package_of(path: Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    for folder, package in PACKAGES.items():  # hub/core before hub
        if rel.startswith(folder + "/"):
            return package
    raise AssertionError(f"{rel} is in no package")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    for folder, package in PACKAGES.items():
        if rel.as_posix().startswith(folder + "/"):
            parts = rel.relative_to(folder).parts
            return ".".join([package, *[p for p in parts if p != "__init__"]])
    raise AssertionError(rel)


def imported(path: Path) -> set[str]:
    """The agp modules ``path`` imports, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path)
    base = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("agp.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[: len(base) - node.level + 1]
                name = ".".join(parent + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("agp."):
                found.add(name)
                found |= {f"{name}.{a.name}" for a in node.names}
    return found


def part_of(module: str) -> str | None:
    for package in sorted(PACKAGES.values(), key=len, reverse=True):
        if module == package or module.startswith(package + "."):
            return package
    return None


def sources() -> list[Path]:
    files = []
    for folder in PACKAGES:
        files += [p for p in (ROOT / folder).rglob("*.py") if "migrations/versions" not in p.as_posix()]
    # hub/core's files belong to agp.core, not agp.hub
    return sorted(set(files))


EDGES = {
    (package_of(f), other)
    for f in sources()
    for m in imported(f)
    if (other := part_of(m)) is not None and other != package_of(f)
}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_part_imports_only_what_it_may(package):
    wrong = sorted(
        f"{f.relative_to(ROOT)} imports {m}"
        for f in sources()
        if package_of(f) == package
        for m in imported(f)
        if (other := part_of(m)) is not None and other != package and other not in ALLOWED[package]
    )
    assert not wrong, "\n".join(wrong)


def test_the_runtime_never_imports_the_lab():
    runtime = {p for p in ALLOWED if p != "agp.compose"}
    assert not [e for e in EDGES if e[0] in runtime and e[1] == "agp.compose"], sorted(EDGES)


def test_no_import_cycle_between_parts():
    graph: dict[str, set[str]] = {}
    for a, b in EDGES:
        graph.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in graph.get(start, ())
        )

    cycles = sorted(p for p in graph if reaches(p, p, {p}))
    assert not cycles, f"parts on an import cycle: {cycles}; edges: {sorted(EDGES)}"


def test_the_reader_sees_imports_inside_functions():
    # The check cannot pass by missing deferred imports: the catalog browser imports its reader inside a function.
    assert "agp.kernels.catalog" in imported(ROOT / "kernels" / "widgets.py")
