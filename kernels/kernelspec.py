"""The "Python 3 (Antigravity)" kernel spec (a pure builder) and its installation into a user's data folder, with
its logo (JupyterLab shows ``logo-svg.svg`` in the launcher and the kernel picker; the PNGs serve other front ends).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

NAME = "agp"
LOGOS = ("logo-svg.svg", "logo-64x64.png", "logo-32x32.png")  # kernels/logo/, shipped as package data


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
    for name in LOGOS:
        shutil.copyfile(Path(__file__).parent / "logo" / name, folder / name)
    return folder
