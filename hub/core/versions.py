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
JAVA_MAJOR = {"trino": 24, "nessie": 21, "keycloak": 17, "catalog": 17}

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
# Trino's HTTP event listener (query history): the plugin of Trino's own version. Maven Central serves no
# io.trino:trino-http-event-listener:476 zip (its listing names only 368), so the plugin folder
# (plugin/http-event-listener) is unpacked from the full server distribution of the same version, io.trino:trino-server,
# and nothing else of it (TRINO_HTTP_EVENT_LISTENER_DIR). Its jars are hard links to the distribution's lib/: unpacking
# follows them (agp.compose.fetch.unpack_folder).
TRINO_SERVER_FULL = Artifact(
    "io.trino",
    "trino-server",
    TRINO_VERSION,
    "tar.gz",
    "cfd5accde17e8ebd251eeeb78aed1f490e77bb3a164d95a0f454bf8a7c1cbd3f",
    821045832,
)
TRINO_HTTP_EVENT_LISTENER_DIR = "plugin/http-event-listener"
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

ARTIFACTS = (TRINO_SERVER, TRINO_ICEBERG, TRINO_SERVER_FULL, KEYCLOAK, NESSIE)

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

# The Iceberg REST catalog: Apache Iceberg's own REST server classes (RESTCatalogAdapter and RESTCatalogServlet, from
# iceberg-core's test jar: the implementation the REST specification is tested against) over Iceberg's JDBC catalog
# in PostgreSQL, started by compose/config/catalog/AgpRestCatalog.java. The same Iceberg as Spark's runtime; the
# AWS SDK comes from ICEBERG_AWS_BUNDLE. The list is Maven's resolution of iceberg-core, iceberg-core:tests,
# iceberg-aws, jetty-servlet 11, the PostgreSQL driver and slf4j-simple (runtime scope), pinned here.
CATALOG_JARS = (
    Artifact(
        "org.apache.iceberg",
        "iceberg-core",
        "1.10.1",
        "jar",
        "5dc1472e3a393d9d5a713aedee7007cebdf62cabbe82c72feb6d3da8e50d7216",
        2353588,
    ),
    Artifact(
        "org.apache.iceberg",
        "iceberg-api",
        "1.10.1",
        "jar",
        "9c806b96f20882d1e5e7a4b9a8d7bc1fa32917b509af4e6d139afaa09a288396",
        674113,
    ),
    Artifact(
        "org.apache.avro",
        "avro",
        "1.12.0",
        "jar",
        "1f5fbfff9b7427d6832cc3031a3c81413d3e21d9e2551847d9231c28493f9492",
        713436,
    ),
    Artifact(
        "org.apache.commons",
        "commons-compress",
        "1.26.2",
        "jar",
        "9168a03141d8fc7eda21a2360d83cc0412bcbb1d6204d992bd48c2573cb3c6b8",
        1083634,
    ),
    Artifact(
        "commons-codec",
        "commons-codec",
        "1.17.0",
        "jar",
        "f700de80ac270d0344fdea7468201d8b9c805e5c648331c3619f2ee067ccfc59",
        372608,
    ),
    Artifact(
        "commons-io",
        "commons-io",
        "2.16.1",
        "jar",
        "f41f7baacd716896447ace9758621f62c1c6b0a91d89acee488da26fc477c84f",
        508826,
    ),
    Artifact(
        "org.apache.commons",
        "commons-lang3",
        "3.14.0",
        "jar",
        "7b96bf3ee68949abb5bc465559ac270e0551596fa34523fddf890ec418dde13c",
        657952,
    ),
    Artifact(
        "org.slf4j",
        "slf4j-api",
        "2.0.17",
        "jar",
        "7b751d952061954d5abfed7181c1f645d336091b679891591d63329c622eb832",
        69908,
    ),
    Artifact(
        "org.apache.iceberg",
        "iceberg-common",
        "1.10.1",
        "jar",
        "167791c08975f299ebae6c508ea872b899673c33dc2911e4c265f95b96a656f1",
        31808,
    ),
    Artifact(
        "org.apache.iceberg",
        "iceberg-bundled-guava",
        "1.10.1",
        "jar",
        "05b79072e19071b1bcf7a4e382d624b3b2ccad6eaf79627676219bb48e4e834d",
        1794018,
    ),
    Artifact(
        "io.airlift",
        "aircompressor",
        "0.27",
        "jar",
        "fdbef3137a28f63bb0cb93487803080ede746a4ec3d421e36c6f0c305c35e5e4",
        254937,
    ),
    Artifact(
        "org.apache.httpcomponents.client5",
        "httpclient5",
        "5.5",
        "jar",
        "496b4b0e8d5f3a8139a5d2638486d304758bac3a9c39d76989f663cfd9354fc9",
        954979,
    ),
    Artifact(
        "org.apache.httpcomponents.core5",
        "httpcore5",
        "5.3.4",
        "jar",
        "f2b2fd7a0164e8c3120cd8437bc9fea439239e165c17262b3e907daa7e979f80",
        908601,
    ),
    Artifact(
        "org.apache.httpcomponents.core5",
        "httpcore5-h2",
        "5.3.4",
        "jar",
        "1fb4f34e4b612e7c127ad693335583587850b17ce9b1c366f9de1ca49fe2c781",
        241692,
    ),
    Artifact(
        "com.fasterxml.jackson.core",
        "jackson-core",
        "2.19.2",
        "jar",
        "aa77eaf29293a868c47372194f7c5287d77d9370b04ea25d3fffc1e4904b5880",
        591418,
    ),
    Artifact(
        "com.fasterxml.jackson.core",
        "jackson-databind",
        "2.19.2",
        "jar",
        "0a1bd4e9b0d670e632d40ee8c625ad376233502f03c2f5889baea95d025b47a7",
        1679351,
    ),
    Artifact(
        "com.fasterxml.jackson.core",
        "jackson-annotations",
        "2.19.2",
        "jar",
        "e516743a316dcf83c572ffc9cb6e8c5e8c134880c8c5155b02f7b34e9c5dc3cf",
        79309,
    ),
    Artifact(
        "com.github.ben-manes.caffeine",
        "caffeine",
        "2.9.3",
        "jar",
        "1e0a7bbef1dd791653143f3f05d0e489934bf5481e58a87c9e619cd46b68729b",
        912143,
    ),
    Artifact(
        "com.google.errorprone",
        "error_prone_annotations",
        "2.10.0",
        "jar",
        "a249d4d25dfb86d41e6c82fc335df580189f0c9feeabdc53233fc1e5060724a1",
        15992,
    ),
    Artifact(
        "org.roaringbitmap",
        "RoaringBitmap",
        "1.3.0",
        "jar",
        "73443a71a2e2401c7d518a487983539fcaf5f9652efbd178f929e7b6d36881d0",
        459295,
    ),
    Artifact(
        "org.apache.iceberg",
        "iceberg-core",
        "1.10.1",
        "jar",
        "8c18111a61ea40ba23114e10e33bacfceca6cf36d2c9a932d880e0100f14af1e",
        1519700,
        classifier="tests",
    ),
    Artifact(
        "org.apache.iceberg",
        "iceberg-aws",
        "1.10.1",
        "jar",
        "28229076a64512513e7142e7a5cf088dc18393c066887373d9c0616ba0c071b3",
        229165,
    ),
    Artifact(
        "dev.failsafe",
        "failsafe",
        "3.3.2",
        "jar",
        "2c5dc879a6dac7ea3a7b29d795e27bd49b8e7908b05c2f3e56053c19d79850f5",
        143998,
    ),
    Artifact(
        "org.eclipse.jetty",
        "jetty-servlet",
        "11.0.25",
        "jar",
        "641eb7725c8aa27ff4f35e71b826f6c3fff5ce745d6997e520eafb887e3623ec",
        165626,
    ),
    Artifact(
        "org.eclipse.jetty",
        "jetty-security",
        "11.0.25",
        "jar",
        "861a0be80a4dfa7935a89113d4ac4ed76505f079b22c9e2f1a84017908bbcd57",
        121716,
    ),
    Artifact(
        "org.eclipse.jetty",
        "jetty-server",
        "11.0.25",
        "jar",
        "710652a7dccc0590cd0af2798dd3c4c93a777e7fb591d89d7cf02a4839bf0dd8",
        800034,
    ),
    Artifact(
        "org.eclipse.jetty",
        "jetty-http",
        "11.0.25",
        "jar",
        "7ae3f8055557e6cea13980eaa37eaf9d546cd57a2d358aa7cb2e5de7c4946169",
        273637,
    ),
    Artifact(
        "org.eclipse.jetty",
        "jetty-util",
        "11.0.25",
        "jar",
        "801ce0baaaf9a269fade7172dadd290c707f3bcdaf22b4292c323f6548b05959",
        571524,
    ),
    Artifact(
        "org.eclipse.jetty",
        "jetty-io",
        "11.0.25",
        "jar",
        "6d5859f4ce88156c86aac0fa62d27a768d8f100aa6da5c13a82ec3c9ea16a349",
        222274,
    ),
    Artifact(
        "org.eclipse.jetty.toolchain",
        "jetty-jakarta-servlet-api",
        "5.0.2",
        "jar",
        "efb20997729f32bfa6c8a8319037c353f7ad460d5d49f336bf232998ea2358db",
        605086,
    ),
    Artifact(
        "org.postgresql",
        "postgresql",
        "42.7.8",
        "jar",
        "2a32a9dcbc42d67a50ad3a0de5efd102c8d2be46720045f2cbd6689f160ab7c7",
        1116727,
    ),
    Artifact(
        "org.checkerframework",
        "checker-qual",
        "3.49.5",
        "jar",
        "508c83c62c344f6f7ee28f47b88a8797d6116d043bfd1ca0576c828dd1df2880",
        238219,
    ),
    Artifact(
        "org.slf4j",
        "slf4j-simple",
        "2.0.17",
        "jar",
        "ddfea59ac074c6d3e24ac2c38622d2d963895e17f70b38ed4bdae4d780be6964",
        15716,
    ),
)
