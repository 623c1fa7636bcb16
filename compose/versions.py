"""Pinned versions and artifacts of the data plane: the single source of truth for the lab and for Compose.

``docker-compose.yml`` names the same versions in its image tags; ``tests/unit/test_composition.py`` checks that
the two agree. Each Maven Central artifact carries the SHA-256 it was verified with when it was pinned, so a
download is checked against this file and not against the server that sent it.
"""

from __future__ import annotations

from dataclasses import dataclass

POSTGRES_MAJOR = 15
TRINO_VERSION = "476"
KEYCLOAK_VERSION = "26.4.7"
NESSIE_VERSION = "0.99.0"
MINIO_RELEASE = "RELEASE.2025-10-15T17-29-55Z"
# The Go module proxy no longer serves the pseudo-version of MINIO_RELEASE's commit (9e49d5e7a648); the lab builds
# the archived repository's last commit, which the proxy does serve, and which carries the same server.
CHP_VERSION = "5.3.0"  # configurable-http-proxy, JupyterHub's proxy, from npm
MINIO_MODULE = "github.com/minio/minio"
MINIO_MODULE_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
# mc, MinIO's client, built into compose's MinIO image for its one-shot set-up (the lab uses the minio package).
MC_MODULE_VERSION = "v0.0.0-20250313080218-cf909e1063a9"

# The lowest Java each service runs on; the lab picks the lowest installed JDK that fits.
JAVA_MAJOR = {"trino": 24, "nessie": 21, "keycloak": 17}

MAVEN_CENTRAL = "https://repo.maven.apache.org/maven2"


@dataclass(frozen=True)
class Artifact:
    """A file of Maven Central, pinned by coordinates and checksum."""

    group: str
    artifact: str
    version: str
    ext: str
    sha256: str
    size: int
    classifier: str = ""

    @property
    def filename(self) -> str:
        suffix = f"-{self.classifier}" if self.classifier else ""
        return f"{self.artifact}-{self.version}{suffix}.{self.ext}"

    @property
    def url(self) -> str:
        return f"{MAVEN_CENTRAL}/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.filename}"


TRINO_SERVER = Artifact(
    "io.trino",
    "trino-server-core",
    TRINO_VERSION,
    "tar.gz",
    "0f388f9967c177ae70a47c099082fc95387f0c3cb96d8000d1d41fc3a5223158",
    194358953,
)
TRINO_ICEBERG = Artifact(
    "io.trino",
    "trino-iceberg",
    TRINO_VERSION,
    "zip",
    "99edba5b491ed94d599aeb61e0794272d3569d8b563f3bb8569e8a49daa87b6c",
    345890737,
)
KEYCLOAK = Artifact(
    "org.keycloak",
    "keycloak-quarkus-dist",
    KEYCLOAK_VERSION,
    "tar.gz",
    "aca60ab72ae4d67adc6b8fe7fca5e08d16a6bb5e4a4f2ebb54050e3f5503fd2b",
    158708913,
)
NESSIE = Artifact(
    "org.projectnessie.nessie",
    "nessie-quarkus",
    NESSIE_VERSION,
    "jar",
    "ce9fa33e2878bf5ea3981876b9e6204cabc0362b3dd82326b10e47271a78c417",
    245069033,
    classifier="runner",
)

ARTIFACTS = (TRINO_SERVER, TRINO_ICEBERG, KEYCLOAK, NESSIE)

# Spark in the kernels: pyspark 4.0 from PyPI (Java 17), with Iceberg's runtime and AWS bundle from Maven Central.
PYSPARK_VERSION = "4.0.5"
ICEBERG_VERSION = "1.10.1"
ICEBERG_SPARK_RUNTIME = Artifact(
    "org.apache.iceberg",
    "iceberg-spark-runtime-4.0_2.13",
    ICEBERG_VERSION,
    "jar",
    "2192a0881ed0f5773b5a83a8820d2b0b2069beec203028643a1c338551007f09",
    47083764,
)
ICEBERG_AWS_BUNDLE = Artifact(
    "org.apache.iceberg",
    "iceberg-aws-bundle",
    ICEBERG_VERSION,
    "jar",
    "86bf20892ea5b4c17688f19b075399885f6aa5303f6b2dc9f491e76ceef9633b",
    62673230,
)
SPARK_JARS = (ICEBERG_SPARK_RUNTIME, ICEBERG_AWS_BUNDLE)
