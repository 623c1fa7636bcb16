"""docker-compose.yml's start of the Iceberg REST catalog: its properties file, with the two secrets of the mounted
secrets folder, written into a folder of its own (Java properties take no environment references), then the catalog.

    python3 /etc/agp/catalog.py JAVA-COMMAND... PROPERTIES-FILE

runs JAVA-COMMAND PROPERTIES-FILE (the image's entrypoint) once the file is written. Values come from the
environment (AGP_CATALOG_JDBC_URL, AGP_CATALOG_WAREHOUSE, AGP_S3_ENDPOINT, AGP_S3_REGION), never pasted into this
source; the keys are those of the lab's agp.compose.services.catalog_properties and the Helm chart's catalog.
"""

import os
import sys
from pathlib import Path

SECRETS = Path("/run/secrets")


def esc(value: str) -> str:
    """A value as java.util.Properties reads it back."""
    for a, b in (("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("=", "\\="), (":", "\\:")):
        value = value.replace(a, b)
    return value


def properties(env: dict, secrets: Path) -> dict:
    return {
        "agp.bind": "0.0.0.0",
        "agp.port": "8181",
        "agp.token-file": str(secrets / "catalog.token"),
        "uri": env["AGP_CATALOG_JDBC_URL"],
        "jdbc.user": "iceberg",
        "jdbc.password": (secrets / "postgres-iceberg.password").read_text().strip(),
        "jdbc.schema-version": "V1",
        "retryable_status_codes": "57P01,57P02,57P03,08001",
        "warehouse": env["AGP_CATALOG_WAREHOUSE"],
        "io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        "s3.endpoint": env["AGP_S3_ENDPOINT"],
        "s3.path-style-access": "true",
        "s3.access-key-id": "agp-iceberg",
        "s3.secret-access-key": (secrets / "minio-agp-iceberg.secret").read_text().strip(),
        "client.region": env["AGP_S3_REGION"],
    }


def main(argv: list) -> None:
    if len(argv) < 2:
        sys.exit("usage: catalog.py JAVA-COMMAND... PROPERTIES-FILE")
    out = Path(argv[-1])
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    out.touch(mode=0o600)
    out.write_text("".join(f"{k}={esc(v)}\n" for k, v in properties(dict(os.environ), SECRETS).items()))
    os.execvp(argv[0], argv)  # noqa: S606 (the image's own command, after the file is written)


if __name__ == "__main__":
    main(sys.argv[1:])
