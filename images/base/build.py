#!/usr/bin/env python3
"""Build ``localhost/agp-base:bookworm``: Debian bookworm (debootstrap minbase) with python3, python3-venv and
ca-certificates, the image our Dockerfiles start ``FROM``.

Here no registry can be reached, so the base is made locally and tagged with the name the Dockerfiles use; they
then build unchanged with podman here and with Docker elsewhere. Cached twice: the image carries the hash of its
inputs (this script, suite, packages, mirror) and is remade only when they change; the rootfs tarball of each
hash is kept in ~/.cache/agp/images, so a wiped podman store is refilled in seconds. Needs root and debootstrap.

    python3 images/base/build.py            # prints the image name when it is there
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import imaging  # noqa: E402

NAME = "localhost/agp-base:bookworm"
SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def host_mirror(suite: str = SUITE) -> str:
    """The Debian mirror this machine's apt uses for ``suite`` (a local mirror or proxy is kept), else Debian's."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):  # deb822 .sources files
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and suite in suites.group(1).split():
                return uris.group(1).rstrip("/")
        for line in text.splitlines():  # one-line format
            m = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s", line)
            if m and m.group(2) == suite:
                return m.group(1).rstrip("/")
    return DEFAULT_MIRROR


def make_rootfs(tarball: Path, mirror: str, logfile: Path) -> None:
    """debootstrap into a folder next to ``tarball``, trim it, and pack it with numeric owners."""
    work = tarball.with_suffix(".rootfs")
    shutil.rmtree(work, ignore_errors=True)
    imaging.run(
        ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}", SUITE, str(work), mirror],
        what="debootstrap of Debian bookworm",
        logfile=logfile,
    )
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*", "var/cache/apt/*.bin", "var/log/*.log"):
        for path in work.glob(pattern):
            path.unlink(missing_ok=True)
    for path in ("etc/resolv.conf", "etc/hostname"):  # the runtime provides them
        (work / path).unlink(missing_ok=True)
    tmp = tarball.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(work), "--numeric-owner", "-cf", str(tmp), "."], check=True)
    tmp.rename(tarball)
    shutil.rmtree(work, ignore_errors=True)


def build(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", default=None, help="Debian mirror (default: the one this machine's apt uses)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the image is up to date")
    args = parser.parse_args(argv)
    mirror = args.mirror or host_mirror()
    key = imaging.content_key(Path(__file__), SUITE, VARIANT, ",".join(PACKAGES), mirror)
    labels = imaging.image_labels(NAME) if shutil.which("podman") else None
    if labels and labels.get("org.agp.build-key") == key and not args.force:
        print(NAME)
        return
    if os.geteuid() != 0:
        raise imaging.ImageError("debootstrap needs root; run this as root.")
    imaging.need("debootstrap", "podman", "tar")
    cache = imaging.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"base-{SUITE}-{key}.tar"
    logfile = imaging.log_dir() / "base.log"
    if not tarball.exists() or args.force:
        imaging.log.info("Making the Debian %s rootfs from %s (about 2 min; log: %s)", SUITE, mirror, logfile)
        make_rootfs(tarball, mirror, logfile)
    changes = [
        *(
            f"LABEL {kv}"
            for kv in imaging.oci_labels("agp-base", SUITE, f"Debian {SUITE} {VARIANT} + {' '.join(PACKAGES)}", key)
        ),
        "ENV LANG=C.UTF-8",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        'CMD ["/bin/bash"]',
    ]
    imaging.podman("import", *(a for c in changes for a in ("--change", c)), str(tarball), NAME)
    imaging.log.info("Tagged %s", NAME)
    print(NAME)


if __name__ == "__main__":
    sys.exit(imaging.main_wrapper(build))
