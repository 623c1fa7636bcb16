"""Every private method the lab calls on itself exists (a method moved to agp.hub.setup left two callers behind
once: `agp lab restart trino` failed with an AttributeError, which only a restart in the integration tier reached)."""

import ast
from pathlib import Path

from agp.compose.lab import Lab

LAB = Path(__file__).resolve().parents[2] / "compose" / "lab.py"


def test_self_attributes_of_the_lab_exist():
    tree = ast.parse(LAB.read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Lab"]
    assigned = {
        t.attr
        for node in ast.walk(cls)
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    }
    used = {
        node.attr
        for node in ast.walk(cls)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
    }
    missing = sorted(name for name in used - assigned if not hasattr(Lab, name))
    assert not missing, f"Lab uses self.{', self.'.join(missing)}, which it does not define"
