"""Download the catalog's jars named in jars.txt (``<url> <sha256>`` per line) into a folder, verified.

Run in the image's build stage (standard library only); jars.txt is written from agp.core.versions and a unit test
keeps the two the same.
"""

import hashlib
import sys
import urllib.request
from pathlib import Path


def main(lock: str, dest: str) -> None:
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for line in Path(lock).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        url, sha256 = line.split()
        target = out / url.rsplit("/", 1)[1]
        with urllib.request.urlopen(url, timeout=120) as r:  # noqa: S310 (a pinned https URL of Maven Central)
            data = r.read()
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            sys.exit(f"{target.name}: sha256 {digest}, expected {sha256}")
        target.write_bytes(data)
        print(f"{target.name} ({len(data)} bytes) verified")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
