"""The "Python 3 (Antigravity)" kernel spec (a pure builder) and its installation into a user's data folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

NAME = "agp"


def kernel_spec(python: str | None = None) -> dict:
    return {
        "argv": [
            python or sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--ext",
            "agp.kernels",
        ],
        "display_name": "Python 3 (Antigravity)",
        "language": "python",
        "metadata": {"debugger": True},
    }


def install(data_dir: Path, python: str | None = None) -> Path:
    """Write the spec under ``data_dir/kernels/agp``; returns the folder."""
    folder = data_dir / "kernels" / NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(kernel_spec(python), indent=2) + "\n")
    return folder
