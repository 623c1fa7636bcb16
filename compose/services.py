"""Pure builders of the lab's services: paths, command lines, environments, health checks and config files.

Nothing here starts a process or touches the network; :mod:`agp.compose.lab` does that with what these return.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from agp.core import versions
from agp.core.settings import DB_ROLES, GENERATED_CREDENTIALS, Settings
from agp.hub.setup import (  # noqa: F401 (the lab's set-up is the runtime's: re-exported for its callers)
    broker_policy,
    catalog_policy,
    objects_policy,
    postgres_roles,
    provisioner_policy,
    trino_policy,
)

from .java import Java
from .keys import ISSUER, TRINO_AUDIENCE, KeyPaths

CONFIG_DIR = Path(__file__).parent / "config"


@dataclass(frozen=True)
class LabPaths:
    """Every folder and file of one lab, derived from the settings."""

    lab_dir: Path
    cache_dir: Path
    pg_root: Path

    @classmethod
    def of(cls, settings: Settings, pg_root: Path | None = None) -> LabPaths:
        return cls(settings.lab_dir, settings.cache_dir, pg_root or settings.lab_dir / "postgres")

    logs = property(lambda self: self.lab_dir / "logs")
    supervisor_conf = property(lambda self: self.lab_dir / "supervisord.conf")
    supervisor_sock = property(lambda self: self.lab_dir / "supervisor.sock")
    supervisor_pid = property(lambda self: self.lab_dir / "supervisord.pid")
    pgdata = property(lambda self: self.pg_root / "data")
    minio_data = property(lambda self: self.lab_dir / "minio")
    nessie = property(lambda self: self.lab_dir / "nessie")
    catalog = property(lambda self: self.lab_dir / "catalog")
    catalog_properties = property(lambda self: self.lab_dir / "catalog" / "catalog.properties")
    trino = property(lambda self: self.lab_dir / "trino")
    keycloak = property(lambda self: self.lab_dir / "keycloak")
    downloads = property(lambda self: self.cache_dir / "downloads")
    trino_home = property(lambda self: self.cache_dir / f"trino-{versions.TRINO_VERSION}")
    keycloak_home = property(lambda self: self.cache_dir / f"keycloak-{versions.KEYCLOAK_VERSION}")
    nessie_jar = property(lambda self: self.downloads / versions.NESSIE.filename)
    catalog_jars = property(lambda self: [self.downloads / a.filename for a in versions.CATALOG_JARS])
    iceberg_aws_bundle = property(lambda self: self.downloads / versions.ICEBERG_AWS_BUNDLE.filename)
    minio_binary = property(lambda self: self.cache_dir / "minio" / versions.MINIO_MODULE_VERSION / "minio")
    npm_prefix = property(lambda self: self.cache_dir / f"npm-chp-{versions.CHP_VERSION}")
    chp_bin = property(lambda self: self.npm_prefix / "node_modules" / ".bin")
    hub = property(lambda self: self.lab_dir / "hub")
    hub_settings = property(lambda self: self.lab_dir / "hub" / "settings.json")

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"


def external_postgres_dir(lab_dir: Path) -> Path:
    """Where PostgreSQL's cluster lives when the ``postgres`` user cannot reach the lab folder (root's home)."""
    digest = hashlib.sha256(str(lab_dir).encode()).hexdigest()[:12]
    return Path("/var/lib/agp") / f"lab-{digest}"


@dataclass(frozen=True)
class Health:
    """How to tell that a service serves: ``http`` (GET is 2xx), ``trino`` (/v1/info not starting), ``postgres``."""

    kind: str
    target: str


@dataclass(frozen=True)
class Service:
    name: str
    title: str
    command: tuple[str, ...]
    cwd: Path
    env: dict[str, str]
    ports: dict[str, int]
    health: Health
    phase: int
    endpoints: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    java: Java | None = None
    stopsignal: str = "TERM"


def shared_env(s: Settings) -> dict[str, str]:
    """The environment that the shared config files in ``compose/config`` expand; the same keys as in Compose (secrets
    as plain text: a child process's environment is where they leave the settings)."""
    c = s.credentials
    return {
        "AGP_BIND_HOST": s.host,
        "AGP_S3_ENDPOINT": s.s3_endpoint,
        "AGP_S3_REGION": s.s3_region,
        "AGP_S3_ACCESS_KEY": c.s3_access_key,
        "AGP_S3_SECRET_KEY": c.s3_secret_key.get_secret_value(),
        "AGP_CATALOG_URI": s.catalog_uri,
        "AGP_TRINO_CATALOG_URI": s.trino_catalog_uri,
        "AGP_WAREHOUSE_BUCKET": s.warehouse_bucket,
        "AGP_NESSIE_S3_ACCESS_KEY": c.nessie_s3_access_key,
        "AGP_NESSIE_S3_SECRET_KEY": c.nessie_s3_secret_key.get_secret_value(),
        "AGP_NESSIE_DB_USER": DB_ROLES["nessie"],
        "AGP_NESSIE_DB_PASSWORD": c.nessie_db_password.get_secret_value(),
        "AGP_NESSIE_JDBC_URL": f"jdbc:postgresql://{s.host}:{s.ports.postgres}/nessie",
        "AGP_NESSIE_PORT": str(s.ports.nessie),
        "AGP_NESSIE_MANAGEMENT_PORT": str(s.ports.nessie_management),
        "AGP_DEMO_PASSWORD": c.demo_password.get_secret_value(),
        "AGP_HUB_CLIENT_SECRET": c.hub_client_secret.get_secret_value(),
        "AGP_SERVICES_CLIENT_ID": "agp-services",
        "AGP_SERVICES_CLIENT_SECRET": c.services_client_secret.get_secret_value(),
        "AGP_KEYCLOAK_ISSUER": s.keycloak_issuer,
        "AGP_KEYCLOAK_TOKEN_URL": s.keycloak_token_url,
        "AGP_HUB_URL": s.url("hub"),
    }


# Credentials that the hub and its workspace service never use, blanked in the settings file they read: the
# PostgreSQL superuser and other services' own secrets.
NOT_FOR_THE_HUB = (
    "postgres_password",
    "s3_secret_key",  # provisioning has a MinIO user of its own
    "nessie_db_password",
    "keycloak_db_password",
    "nessie_s3_secret_key",
    "catalog_db_password",
    "catalog_s3_secret_key",
    "trino_s3_secret_key",
    "keycloak_admin_password",
)


def hub_settings(s: Settings) -> Settings:
    """The settings the hub and the workspace service read (``<lab>/hub/settings.json``)."""
    blank = {name: SecretStr("") for name in NOT_FOR_THE_HUB}
    return s.model_copy(update={"credentials": s.credentials.model_copy(update=blank)})


def java_env(java: Java) -> dict[str, str]:
    return {"JAVA_HOME": str(java.home), "PATH": f"{java.home / 'bin'}:/usr/local/bin:/usr/bin:/bin"}


def postgres(s: Settings, p: LabPaths, run_as: str | None) -> Service:
    pgbin = Path(f"/usr/lib/postgresql/{versions.POSTGRES_MAJOR}/bin")
    return Service(
        name="postgres",
        title=f"PostgreSQL {versions.POSTGRES_MAJOR}",
        command=(
            str(pgbin / "postgres"),
            "-D",
            str(p.pgdata),
            "-p",
            str(s.ports.postgres),
            "-c",
            f"listen_addresses={s.host}",
            "-c",
            f"unix_socket_directories={p.pgdata}",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "fsync=off",
        ),
        cwd=p.pg_root,
        env={"LC_ALL": "C.UTF-8"},
        ports={"postgres": s.ports.postgres},
        health=Health("postgres", s.postgres_dsn),
        phase=1,
        endpoints={"dsn": s.postgres_dsn.replace(f":{s.db_password(s.credentials.postgres_user)}@", ":***@")},
        user=run_as,
        stopsignal="INT",  # PostgreSQL's fast shutdown: SIGTERM would wait for every client to leave
    )


def minio(s: Settings, p: LabPaths) -> Service:
    c = s.credentials
    return Service(
        name="minio",
        title=f"MinIO ({versions.MINIO_RELEASE} line)",
        command=(
            str(p.minio_binary),
            "server",
            "--quiet",
            "--address",
            f"{s.host}:{s.ports.minio}",
            "--console-address",
            f"{s.host}:{s.ports.minio_console}",
            str(p.minio_data),
        ),
        cwd=p.minio_data,
        env={
            "MINIO_ROOT_USER": c.s3_access_key,
            "MINIO_ROOT_PASSWORD": c.s3_secret_key.get_secret_value(),
            "MINIO_REGION": s.s3_region,
            "MINIO_UPDATE": "off",
            "MINIO_BROWSER": "on",
        },
        ports={"minio": s.ports.minio, "minio_console": s.ports.minio_console},
        health=Health("http", s.url("minio", "/minio/health/ready")),
        phase=1,
        endpoints={"s3": s.s3_endpoint, "console": s.url("minio_console"), "warehouse": f"s3://{s.warehouse_bucket}/"},
    )


# A catalog's JVM on one machine: a small heap, the serial collector, the quick first-tier compiler.
SMALL_JVM = ("-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")


def nessie(s: Settings, p: LabPaths, java: Java) -> Service:
    return Service(
        name="nessie",
        title=f"Nessie {versions.NESSIE_VERSION} (Iceberg REST catalog)",
        command=(
            str(java.binary),
            *SMALL_JVM,
            # Vert.x caches files under /tmp/vertx-cache by default, a folder every user may write to.
            f"-Dvertx.cacheDirBase={p.nessie / 'vertx-cache'}",
            f"-Dquarkus.config.locations={CONFIG_DIR / 'nessie' / 'application.properties'}",
            "-Dquarkus.log.console.enable=true",
            "-jar",
            str(p.nessie_jar),
        ),
        cwd=p.nessie,
        # Nessie reaches S3 as its own MinIO user (AGP_NESSIE_S3_*): the root keys stay out of its environment.
        env={
            **{k: v for k, v in shared_env(s).items() if k not in {"AGP_S3_ACCESS_KEY", "AGP_S3_SECRET_KEY"}},
            **java_env(java),
        },
        ports={"nessie": s.ports.nessie, "nessie_management": s.ports.nessie_management},
        health=Health("http", s.url("nessie_management", "/q/health/ready")),
        phase=3,  # after Keycloak: Nessie checks its bearer tokens against the realm
        endpoints={"iceberg_rest": s.catalog_uri, "nessie_api": s.url("nessie", "/api/v2")},
        java=java,
    )


def _java_property(value: str) -> str:
    """A value as java.util.Properties reads it back (backslashes and line breaks escaped)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def catalog_properties(s: Settings, p: LabPaths) -> str:
    """The Iceberg REST catalog's one configuration file (secrets included: the lab writes it 0600). Its JDBC
    catalog keeps tables in PostgreSQL as the role ``iceberg``; its FileIO reaches S3 as its own MinIO user."""
    c = s.credentials
    values = {
        "agp.bind": s.host,
        "agp.port": str(s.ports.catalog),
        "agp.token-file": str(s.keys_dir / GENERATED_CREDENTIALS["catalog_token"]),
        "uri": f"jdbc:postgresql://{s.host}:{s.ports.postgres}/iceberg",
        "jdbc.user": DB_ROLES["iceberg"],
        "jdbc.password": c.catalog_db_password.get_secret_value(),
        "jdbc.schema-version": "V1",
        # Reconnect and retry when PostgreSQL restarted under the pool (admin or crash shutdown, starting up, no
        # connection), besides the connection errors Iceberg retries by default.
        "retryable_status_codes": "57P01,57P02,57P03,08001",
        "warehouse": f"s3://{s.warehouse_bucket}/",
        "io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        "s3.endpoint": s.s3_endpoint,
        "s3.path-style-access": "true",
        "s3.access-key-id": c.catalog_s3_access_key,
        "s3.secret-access-key": c.catalog_s3_secret_key.get_secret_value(),
        "client.region": s.s3_region,
    }
    lines = ["# Written by `agp lab up` from the lab's settings; secrets inside: readable by the lab's user only."]
    lines += [f"{k}={_java_property(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def iceberg_rest(s: Settings, p: LabPaths, java: Java) -> Service:
    """Apache Iceberg's REST catalog (AgpRestCatalog.java, run by Java's source launcher: nothing to build)."""
    classpath = ":".join(str(j) for j in [*p.catalog_jars, p.iceberg_aws_bundle])
    return Service(
        name="catalog",
        title=f"Iceberg REST catalog {versions.ICEBERG_VERSION} (JDBC in PostgreSQL)",
        command=(
            str(java.binary),
            *SMALL_JVM,
            # Each table load and commit is an INFO line of Iceberg's; keep the log to what needs reading.
            "-Dorg.slf4j.simpleLogger.log.org.apache.iceberg.BaseMetastoreTableOperations=warn",
            "-Dorg.slf4j.simpleLogger.log.org.apache.iceberg.BaseMetastoreCatalog=warn",
            "-cp",
            classpath,
            str(CONFIG_DIR / "catalog" / "AgpRestCatalog.java"),
            str(p.catalog_properties),
        ),
        cwd=p.catalog,
        env=java_env(java),
        ports={"catalog": s.ports.catalog},
        health=Health("http", s.url("catalog", "/healthz")),
        phase=2,  # after the bootstrap made its database, role and MinIO user
        endpoints={"iceberg_rest": s.catalog_uri},
        java=java,
    )


def trino(s: Settings, p: LabPaths, java: Java, internal_secret: str = "", spooling_key: str = "") -> Service:
    return Service(
        name="trino",
        title=f"Trino {versions.TRINO_VERSION}",
        command=(
            str(p.trino_home / "bin" / "launcher"),
            "run",
            f"--etc-dir={p.trino / 'etc'}",
            f"--data-dir={p.trino / 'data'}",
        ),
        cwd=p.trino,
        # Trino holds no root key: tables come with vended credentials, spooling has a MinIO user of its own.
        env={
            **{k: v for k, v in shared_env(s).items() if k not in {"AGP_S3_ACCESS_KEY", "AGP_S3_SECRET_KEY"}},
            "AGP_TRINO_S3_ACCESS_KEY": s.credentials.trino_s3_access_key,
            "AGP_TRINO_S3_SECRET_KEY": s.credentials.trino_s3_secret_key.get_secret_value(),
            **java_env(java),
            "AGP_TRINO_INTERNAL_SECRET": internal_secret,
            "AGP_TRINO_SPOOLING_KEY": spooling_key,
            # The HTTP event listener's bearer token (etc/event-listener.properties names it, never holds it).
            "AGP_QUERY_HISTORY_TOKEN": s.credentials.query_history_token.get_secret_value(),
        },
        ports={"trino": s.ports.trino, "trino_https": s.ports.trino_https},
        health=Health("trino", s.url("trino", "/v1/info")),
        phase=2,
        endpoints={
            "https": s.trino_https_url,
            "http": s.trino_url,
            "catalog": "iceberg",
            "ca_certificate": str(KeyPaths(s.keys_dir).trino_ca),
            "spooling": f"s3://{s.trino_spooling_bucket}/",
        },
        java=java,
    )


def keycloak(s: Settings, p: LabPaths, java: Java) -> Service:
    c = s.credentials
    return Service(
        name="keycloak",
        title=f"Keycloak {versions.KEYCLOAK_VERSION}",
        command=(
            str(p.keycloak_home / "bin" / "kc.sh"),
            "start",
            "--optimized",
            "--import-realm",
            "--http-enabled=true",
            f"--http-host={s.host}",
            f"--http-port={s.ports.keycloak}",
            f"--http-management-port={s.ports.keycloak_management}",
            "--hostname-strict=false",
            "--cache=local",  # one node: no cluster discovery, which costs 20 s of JOIN time-outs at start
            f"--db-url=jdbc:postgresql://{s.host}:{s.ports.postgres}/keycloak",
        ),
        cwd=p.keycloak,
        env={
            **shared_env(s),
            **java_env(java),
            # In the environment, not on the command line: /proc/<pid>/cmdline is readable by every OS user.
            "KC_DB_USERNAME": DB_ROLES["keycloak"],
            "KC_DB_PASSWORD": c.keycloak_db_password.get_secret_value(),
            "KC_BOOTSTRAP_ADMIN_USERNAME": c.keycloak_admin,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": c.keycloak_admin_password.get_secret_value(),
            "JAVA_OPTS_KC_HEAP": "-Xms64m -Xmx768m",
            # Vert.x's file cache in the lab's folder, not /tmp/vertx-cache, which every user may write to.
            "JAVA_OPTS_APPEND": f"-XX:TieredStopAtLevel=1 -Dvertx.cacheDirBase={p.keycloak / 'vertx-cache'}",
        },
        ports={"keycloak": s.ports.keycloak, "keycloak_management": s.ports.keycloak_management},
        health=Health("http", s.url("keycloak_management", "/health/ready")),
        phase=2,
        endpoints={
            "http": s.url("keycloak"),
            "issuer": s.keycloak_issuer,
            "admin_console": s.url("keycloak", "/admin/"),
        },
        java=java,
    )


def jupyterhub(s: Settings, p: LabPaths, crypt_key: str) -> Service:
    import sys

    python_bin = str(Path(sys.executable).parent)
    return Service(
        name="jupyterhub",
        title="JupyterHub",
        command=(str(Path(python_bin) / "jupyterhub"), "-f", str(HUB_CONFIG)),
        cwd=p.hub,
        env={
            "AGP_CONFIG": str(p.hub_settings),
            "JUPYTERHUB_CRYPT_KEY": crypt_key,
            "PATH": f"{p.chp_bin}:{python_bin}:/usr/local/bin:/usr/bin:/bin",
        },
        ports={
            "hub": s.ports.hub,
            "hub_api": s.ports.hub_api,
            "proxy_api": s.ports.proxy_api,
            "workspaces": s.ports.workspaces,
        },
        health=Health("http", s.url("hub", "/services/workspaces/health")),
        phase=4,
        endpoints={"hub": s.hub_url, "workspaces": s.url("hub", "/services/workspaces/")},
    )


HUB_CONFIG = Path(__file__).parent.parent / "hub" / "jupyterhub_config.py"

KEYCLOAK_QUARKUS_PROPERTIES = (
    "quarkus.datasource.jdbc.validate-on-borrow=true\nquarkus.datasource.jdbc.background-validation-interval=10S\n"
)
KEYCLOAK_BUILD_OPTIONS = ("--db=postgres", "--health-enabled=true", "--metrics-enabled=false")


# How long a spooled segment may wait for its client before Trino's pruner (every 5 minutes) deletes it; a read
# one is deleted at once, when the client acknowledges it. Trino's default is 12 h; an hour bounds the lab's disk.
TRINO_SPOOLING_TTL = "1h"


def trino_files(s: Settings, p: LabPaths) -> dict[Path, str]:
    """Trino's etc folder for a single-node lab; the catalog file is copied from ``compose/config``."""
    etc = p.trino / "etc"
    jvm = [
        "-server",
        f"-Xmx{s.trino_heap}",
        "-XX:InitialRAMPercentage=5",
        "-XX:+UseG1GC",
        "-XX:G1HeapRegionSize=32M",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        "-XX:+HeapDumpOnOutOfMemoryError",
        f"-XX:HeapDumpPath={p.trino / 'data'}",
        "-XX:-OmitStackTraceInFastThrow",
        "-XX:ReservedCodeCacheSize=256M",
        "-XX:PerMethodRecompilationCutoff=10000",
        "-XX:PerBytecodeRecompilationCutoff=10000",
        "-Djdk.attach.allowAttachSelf=true",
        "-Djdk.nio.maxCachedBufferSize=2000000",
        "-Dfile.encoding=UTF-8",
        "-XX:+EnableDynamicAgentLoading",
    ]
    heap_mb = _megabytes(s.trino_heap)
    keys = KeyPaths(s.keys_dir)
    config = {
        "coordinator": "true",
        "node-scheduler.include-coordinator": "true",
        "http-server.http.port": str(s.ports.trino),
        "http-server.https.enabled": "true",
        "http-server.https.port": str(s.ports.trino_https),
        "http-server.https.keystore.path": str(keys.trino_keystore),
        "http-server.authentication.type": "JWT",
        "http-server.authentication.jwt.key-file": str(keys.broker_public),
        "http-server.authentication.jwt.required-issuer": ISSUER,
        "http-server.authentication.jwt.required-audience": TRINO_AUDIENCE,
        "internal-communication.shared-secret": "${ENV:AGP_TRINO_INTERNAL_SECRET}",
        "discovery.uri": s.trino_url,
        "query.max-memory": f"{heap_mb // 2}MB",
        "query.max-memory-per-node": f"{heap_mb // 2}MB",
        "task.concurrency": "2",
        "catalog.management": "static",
        # The spooling client protocol, for clients that ask for it (the `trino` package does by default): large
        # results become segments in the spooling bucket, which the client downloads straight from MinIO with
        # presigned URLs handed out over the query's authenticated HTTPS. Not COORDINATOR_PROXY: the coordinator
        # would relay every byte, and the `trino` package downloads segments with a requests session of its own,
        # in which REQUESTS_CA_BUNDLE replaces the lab's CA. The key encrypts the segment handles clients get.
        "protocol.spooling.enabled": "true",
        "protocol.spooling.shared-secret-key": "${ENV:AGP_TRINO_SPOOLING_KEY}",
        "protocol.spooling.retrieval-mode": "STORAGE",
    }
    node = {
        "node.environment": "agp_lab",
        "node.id": "agp-lab-coordinator",
        "node.data-dir": str(p.trino / "data"),
        "node.internal-address": s.host,
    }
    catalog = CONFIG_DIR / "trino" / "catalog"
    files = {
        etc / "jvm.config": "\n".join(jvm) + "\n",
        etc / "config.properties": _properties(config),
        etc / "node.properties": _properties(node),
        etc / "log.properties": "io.trino=INFO\n",
        etc / "access-control.properties": _properties(
            {
                "access-control.name": "file",
                "security.config-file": str(s.trino_rules_path),
                "security.refresh-period": "5s",
            }
        ),
    }
    files[etc / "spooling-manager.properties"] = _properties(trino_spooling_manager(s))
    files[etc / "event-listener.properties"] = _properties(trino_event_listener(s.query_history_ingest_uri))
    for f in sorted(catalog.glob("*.properties")):
        files[etc / "catalog" / f.name] = f.read_text()
    return files


# How Trino's HTTP event listener retries an event the workspace service did not take (connection refused, a 5xx,
# 408 or 429): after 1 s, then twice as long each time up to 10 s, 30 times: about 4.5 minutes in all, so that a
# restart of the service (seconds) or of its database (a minute or two) loses no event. Events wait in Trino's
# memory meanwhile: a restart of Trino itself loses those not yet delivered.
TRINO_EVENT_RETRIES = {
    "http-event-listener.connect-retry-count": "30",
    "http-event-listener.connect-retry-delay": "1s",
    "http-event-listener.connect-backoff-base": "2",
    "http-event-listener.connect-max-delay": "10s",
}


def trino_event_listener(ingest_uri: str, token_ref: str = "${ENV:AGP_QUERY_HISTORY_TOKEN}") -> dict[str, str]:  # noqa: S107 (a reference)
    """Trino's etc/event-listener.properties: the HTTP event listener posts every query's created and completed
    event to the workspace service's ingest door (the query history), with its bearer token from the environment
    (``token_ref``: Trino replaces ``${ENV:...}`` in every properties file)."""
    return {
        "event-listener.name": "http",
        "http-event-listener.log-created": "true",
        "http-event-listener.log-completed": "true",
        "http-event-listener.connect-ingest-uri": ingest_uri,
        "http-event-listener.connect-http-headers": f"Authorization:Bearer {token_ref}",
        **TRINO_EVENT_RETRIES,
    }


def trino_spooling_manager(s: Settings) -> dict[str, str]:
    """Trino's spooling manager: segments in the lab's spooling bucket on MinIO, as Trino's own MinIO user (keys
    from the environment; it reaches that bucket alone), deleted when read and pruned when expired."""
    return {
        "spooling-manager.name": "filesystem",
        "fs.s3.enabled": "true",
        "fs.location": f"s3://{s.trino_spooling_bucket}/",
        # SSE-C (Trino's default for segments) needs TLS to MinIO, which the lab does not have: MinIO refuses
        # customer keys over plain HTTP. Segments sit in a bucket that only the root keys and presigned URLs
        # reach, and travel like the rest of the lab's S3 traffic.
        "fs.segment.encryption": "false",
        "fs.segment.explicit-ack": "true",  # the client's acknowledgement deletes a segment it has read
        "fs.segment.ttl": TRINO_SPOOLING_TTL,
        "fs.segment.direct.ttl": TRINO_SPOOLING_TTL,  # how long a presigned URL stays valid
        "fs.segment.pruning.enabled": "true",
        "fs.segment.pruning.interval": "5m",
        "s3.endpoint": "${ENV:AGP_S3_ENDPOINT}",
        "s3.region": "${ENV:AGP_S3_REGION}",
        "s3.path-style-access": "true",
        "s3.aws-access-key": "${ENV:AGP_TRINO_S3_ACCESS_KEY}",
        "s3.aws-secret-key": "${ENV:AGP_TRINO_S3_SECRET_KEY}",
    }


def _properties(values: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


def _megabytes(size: str) -> int:
    units = {"G": 1024, "M": 1, "K": 1 / 1024}
    size = size.strip().upper()
    if size and size[-1] in units:
        return int(float(size[:-1]) * units[size[-1]])
    return int(size) // (1024 * 1024)


def supervisor_conf(p: LabPaths, services: list[Service]) -> str:
    """supervisord's config: one program a service, none started automatically, whole process groups stopped."""
    lines = [
        "[unix_http_server]",
        f"file={_esc(p.supervisor_sock)}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={_esc(p.logs / 'supervisord.log')}",
        f"pidfile={_esc(p.supervisor_pid)}",
        "logfile_maxbytes=10MB",
        "logfile_backups=1",
        "loglevel=info",
        f"directory={_esc(p.lab_dir)}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_esc(p.supervisor_sock)}",
        "",
    ]
    for svc in services:
        env = ",".join(f'{k}="{_esc(v)}"' for k, v in sorted(svc.env.items()))
        lines += [
            f"[program:{svc.name}]",
            "command=" + " ".join(_quote(a) for a in svc.command),
            f"directory={_esc(svc.cwd)}",
            f"environment={env}",
            "autostart=false",
            "autorestart=false",
            f"priority={svc.phase * 100}",  # supervisord stops the highest first: the hub before its database
            "startsecs=1",
            "startretries=0",
            "stopasgroup=true",
            "killasgroup=true",
            f"stopsignal={svc.stopsignal}",
            "stopwaitsecs=30",
            "redirect_stderr=true",
            f"stdout_logfile={_esc(p.log(svc.name))}",
            "stdout_logfile_maxbytes=50MB",
            "stdout_logfile_backups=1",
        ]
        if svc.user:
            lines.append(f"user={svc.user}")
        lines.append("")
    return "\n".join(lines)


def _esc(value: object) -> str:
    # supervisord expands %(name)s in its config: a literal percent is written twice.
    return str(value).replace("%", "%%")


def _quote(arg: str) -> str:
    arg = _esc(arg)
    if any(ch in arg for ch in " \t\"'"):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg
