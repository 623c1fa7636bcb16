#!/usr/bin/env python3
"""Import images into a containerd's ``k8s.io`` namespace, where the kubelet finds them.

Arguments are archives (docker-archive or oci-archive files) or names of local podman images (saved to an archive
in the cache first). Pods then use them with ``imagePullPolicy: Never`` or ``IfNotPresent``.

    python3 images/load.py --address ~/.local/state/agp/k8s/run/containerd.sock localhost/agp-base:bookworm
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import imaging

NAMESPACE = "k8s.io"


def imported(address: str) -> set[str]:
    r = subprocess.run(
        ["ctr", "--address", address, "-n", NAMESPACE, "images", "ls", "-q"], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise imaging.ImageError(f"containerd at {address} did not answer: {r.stderr.strip()[:200]}")
    return set(r.stdout.split())


def load(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--address", required=True, help="containerd's socket (`python3 -m tests.k8s status --json` shows it)"
    )
    parser.add_argument("images", nargs="+", help="archive files or local podman image names")
    args = parser.parse_args(argv)
    imaging.need("ctr")
    for item in args.images:
        archive = Path(item)
        if not archive.is_file():
            imaging.need("podman")
            archive = imaging.save_archive(item)
        r = subprocess.run(
            ["ctr", "--address", args.address, "-n", NAMESPACE, "images", "import", str(archive)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise imaging.ImageError(f"importing {archive.name} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
        imaging.log.info("imported %s", r.stdout.strip().replace("\n", ", ") or archive.name)
    imaging.log.debug("images in %s: %s", NAMESPACE, sorted(imported(args.address)))


if __name__ == "__main__":
    sys.exit(imaging.main_wrapper(load))
