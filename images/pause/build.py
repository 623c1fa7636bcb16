#!/usr/bin/env python3
"""Build the pods' sandbox image ``localhost/agp-pause:3.10`` and print the path of its archive for containerd.

Cached: the image carries the hash of its inputs (main.go, go.mod, Dockerfile, Go version) and is rebuilt only when
they change; the archive is written once per image id.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import imaging  # noqa: E402

NAME = "localhost/agp-pause:3.10"


def build(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", type=Path, default=None, help="folder for the archive (default ~/.cache/agp/images)")
    args = parser.parse_args(argv)
    imaging.need("go", "podman")
    go_version = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()
    key = imaging.content_key(HERE / "main.go", HERE / "go.mod", HERE / "Dockerfile", go_version)
    labels = imaging.image_labels(NAME)
    if not labels or labels.get("org.agp.build-key") != key:
        logfile = imaging.log_dir() / "pause.log"
        with tempfile.TemporaryDirectory() as ctx:
            env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false")
            imaging.run(
                ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", f"{ctx}/pause", "."],
                what="compiling pause",
                logfile=logfile,
                env=env,
                cwd=HERE,
            )
            label_args = [
                a for kv in imaging.oci_labels("agp-pause", "3.10", "pod sandbox process", key) for a in ("--label", kv)
            ]
            imaging.run(
                [
                    *imaging.PODMAN,
                    "build",
                    "--pull=never",
                    *label_args,
                    "-t",
                    NAME,
                    "-f",
                    str(HERE / "Dockerfile"),
                    ctx,
                ],
                what="building the pause image",
                logfile=logfile,
            )
    print(imaging.save_archive(NAME, args.cache))


if __name__ == "__main__":
    sys.exit(imaging.main_wrapper(build))
