#!/usr/bin/env python3
"""Build CoreDNS from the Go module proxy and the image ``localhost/agp-coredns:<version>``; print its archive's path.

The binary is cached by version in ~/.cache/agp/images/coredns-<version>/ (a cold build takes several minutes on
two cores: CoreDNS links every plugin, cloud DNS providers included); the image carries the hash of its inputs and
is rebuilt only when they change.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import imaging  # noqa: E402

VERSION = "v1.14.7"
NAME = f"localhost/agp-coredns:{VERSION}"


def binary(cache: Path) -> Path:
    """The static ``coredns`` of VERSION, built with ``go install`` when missing."""
    target = cache / f"coredns-{VERSION}" / "coredns"
    if target.is_file():
        return target
    imaging.need("go")
    tmp = target.parent / "bin.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false", GOBIN=str(tmp))
    logfile = imaging.log_dir() / "coredns.log"
    imaging.log.info("Building CoreDNS %s (several minutes cold, at nice 19; log: %s)", VERSION, logfile)
    imaging.run(
        ["go", "install", "-v", "-trimpath", "-ldflags", "-s -w", f"github.com/coredns/coredns@{VERSION}"],
        what="compiling coredns",
        logfile=logfile,
        env=env,
        cwd=tmp,
    )
    out = subprocess.run([tmp / "coredns", "-version"], capture_output=True, text=True).stdout
    if VERSION.lstrip("v") not in out:
        raise imaging.ImageError(f"the coredns just built says {out.strip()!r}, not {VERSION}; see {logfile}.")
    (tmp / "coredns").rename(target)
    shutil.rmtree(tmp, ignore_errors=True)
    return target


def build(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", type=Path, default=None, help="folder for binary and archive (~/.cache/agp/images)")
    args = parser.parse_args(argv)
    cache = args.cache or imaging.cache_dir()
    imaging.need("podman")
    exe = binary(cache)
    key = imaging.content_key(HERE / "Dockerfile", exe)
    labels = imaging.image_labels(NAME)
    if not labels or labels.get("org.agp.build-key") != key:
        with tempfile.TemporaryDirectory() as ctx:
            shutil.copy2(exe, Path(ctx) / "coredns")
            label_args = [
                a for kv in imaging.oci_labels("agp-coredns", VERSION, "cluster DNS", key) for a in ("--label", kv)
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
                what="building the coredns image",
                logfile=imaging.log_dir() / "coredns.log",
            )
    print(imaging.save_archive(NAME, cache))


if __name__ == "__main__":
    sys.exit(imaging.main_wrapper(build))
