"""``compose/docker-compose.yml`` and the native lab run the same data plane: versions, config files, env, ports.

No service is started: the compose file is read with ``yaml.safe_load`` and compared with
:mod:`agp.core.versions`, :func:`agp.compose.services.shared_env`, the lab's defaults in
:mod:`agp.core.settings` and the shared config files under ``compose/config``.
"""

from __future__ import annotations

import functools
import json
import operator
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from agp.compose.services import CONFIG_DIR, catalog_policy, shared_env
from agp.core import versions
from agp.core.settings import DB_ROLES, Ports, Settings

COMPOSE_FILE = CONFIG_DIR.parent / "docker-compose.yml"

# `${AGP_X}` (Quarkus, Keycloak), `${ENV:AGP_X}` (Trino), either with an optional `:default`.
PLACEHOLDER = re.compile(r"\$\{(?:ENV:)?(AGP_[A-Z0-9_]+)(?::[^}]*)?\}")

# The files of compose/config the lab reads, selected as the lab selects them (services.trino_files,
# Lab._write_configs, Lab._bootstrap, the Nessie command line), each with the compose service that
# must mount it.
LAB_READS = {
    "trino/catalog/*.properties": "trino",
    "keycloak/*-realm.json": "keycloak",
    "postgres/init.sql": "postgres",
    "nessie/application.properties": "nessie",
}
# Files the lab reads that no compose service mounts yet: Compose still runs Nessie (AGP_CATALOG=nessie); the
# Iceberg REST catalog comes to Compose with the platform's own images.
LAB_ONLY = {"catalog/AgpRestCatalog.java"}

# Where each image reads such a file; Nessie reads it where JAVA_OPTS_APPEND points Quarkus.
READ_FROM = {
    "trino": "/etc/trino/catalog",
    "keycloak": "/opt/keycloak/data/import",
    "postgres": "/docker-entrypoint-initdb.d",
}

# Each lab port (a field of Ports) as compose serves it: (service, container port).
PORTS = {
    "postgres": ("postgres", 5432),
    "minio": ("minio", 9000),
    "minio_console": ("minio", 9001),
    "nessie": ("nessie", 19120),
    "nessie_management": ("nessie", 19121),
    "trino": ("trino", 8080),
    "keycloak": ("keycloak", 8180),
    "keycloak_management": ("keycloak", 9180),
}


# ---------------------------------------------------------------------------------------------------- helpers
@functools.cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def service(name: str) -> dict:
    services = compose().get("services") or {}
    assert name in services, f"{COMPOSE_FILE.name} has no service {name!r}"
    return services[name]


def image_tag(name: str) -> str:
    image = service(name).get("image", "")
    _, sep, tag = image.rpartition(":")
    assert sep and "/" not in tag, f"service {name!r}: image {image!r} names no tag"
    return tag


def environment(name: str) -> dict[str, str]:
    """The variables a service sets itself; a bare name (passed through from the host) sets nothing."""
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env if "=" in item)
    return {key: str(value) for key, value in env.items() if value is not None}


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str


def bind_mounts(name: str) -> list[Mount]:
    """A service's bind mounts, host paths resolved against the compose file's folder; named volumes left out."""
    mounts = []
    for volume in service(name).get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") != "bind":
                continue
            source, target = volume["source"], volume["target"]
        else:
            parts = volume.split(":")
            if len(parts) < 2 or not parts[0].startswith((".", "/", "~")):
                continue
            source, target = parts[:2]
        mounts.append(Mount((COMPOSE_FILE.parent / Path(source).expanduser()).resolve(), target))
    return mounts


@dataclass(frozen=True)
class Published:
    host_ip: str
    host_port: int


def published_ports(name: str) -> dict[int, Published]:
    """Container port -> where the host publishes it; a port without a host port is not published."""
    published = {}
    for spec in service(name).get("ports") or []:
        if isinstance(spec, dict):
            if spec.get("published") is None:
                continue
            host_ip, host, container = spec.get("host_ip", "0.0.0.0"), spec["published"], spec["target"]
        else:
            parts = str(spec).split("/")[0].rsplit(":", 2)
            if len(parts) == 1:
                continue
            host_ip, host, container = ("0.0.0.0", *parts) if len(parts) == 2 else parts
        published[int(container)] = Published(host_ip, int(host))
    return published


def all_services() -> list[str]:
    return sorted(compose().get("services") or {})


def quarkus_config_locations(env: dict[str, str]) -> set[str]:
    """The files Nessie's Quarkus reads, from ``-Dquarkus.config.locations`` or ``QUARKUS_CONFIG_LOCATIONS``."""
    values = [
        arg.partition("=")[2]
        for arg in env.get("JAVA_OPTS_APPEND", "").split()
        if arg.startswith("-Dquarkus.config.locations=")
    ]
    values.append(env.get("QUARKUS_CONFIG_LOCATIONS", ""))
    return {loc.strip().removeprefix("file:") for value in values for loc in value.split(",") if loc.strip()}


def expected_targets(name: str, file: Path) -> set[str]:
    if name == "nessie":
        return quarkus_config_locations(environment(name))
    return {f"{READ_FROM[name]}/{file.name}"}


def lab_config_files() -> dict[Path, str]:
    """The shared config files the lab reads -> the compose service that must mount each."""
    return {file: name for pattern, name in LAB_READS.items() for file in sorted(CONFIG_DIR.glob(pattern))}


def placeholders(file: Path) -> set[str]:
    return set(PLACEHOLDER.findall(file.read_text()))


def init_sql_databases() -> set[str]:
    # The same pattern Lab._bootstrap reads the file with.
    return set(re.findall(r"CREATE DATABASE (\w+);", (CONFIG_DIR / "postgres" / "init.sql").read_text()))


def rel(file: Path) -> str:
    return str(file.relative_to(CONFIG_DIR))


def placeholder_params() -> list:
    """(file, service that mounts it, placeholder) for every placeholder of the shared files."""
    return [
        pytest.param(
            file,
            name,
            var,
            id=f"{rel(file)}:{var}",
        )
        for file, name in lab_config_files().items()
        for var in sorted(placeholders(file))
    ]


@pytest.fixture
def lab_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The lab's default settings, whatever AGP_* variables this process was started with."""
    for key in [k for k in os.environ if k.startswith("AGP_")]:
        monkeypatch.delenv(key)
    # A lab folder of its own: a lab on this machine generated credentials of its own, compose has the defaults.
    monkeypatch.setenv("AGP_LAB_DIR", str(tmp_path / "lab"))
    return Settings()


# ------------------------------------------------------------------------------------------------- versions
@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("nessie", versions.NESSIE_VERSION),
        ("trino", versions.TRINO_VERSION),
        ("keycloak", versions.KEYCLOAK_VERSION),
    ],
)
def test_image_tag_is_the_pinned_version(name, version):
    assert image_tag(name) == version, f"service {name!r}: image tag {image_tag(name)!r}, versions.py pins {version!r}"


def test_postgres_major_is_the_pinned_one():
    major = image_tag("postgres").split("-")[0].split(".")[0]
    assert major == str(versions.POSTGRES_MAJOR), (
        f"service 'postgres': image tag {image_tag('postgres')!r}, versions.py pins major {versions.POSTGRES_MAJOR}"
    )


def test_minio_image_is_built_at_the_pinned_module_version():
    minio = service("minio")
    args = (minio.get("build") or {}).get("args") or {}
    assert args.get("MINIO_MODULE_VERSION") == versions.MINIO_MODULE_VERSION, (
        f"service 'minio': build arg MINIO_MODULE_VERSION={args.get('MINIO_MODULE_VERSION')!r}, "
        f"versions.py pins {versions.MINIO_MODULE_VERSION!r}"
    )
    assert versions.MINIO_RELEASE in image_tag("minio"), (
        f"service 'minio': image {minio.get('image')!r} does not name release {versions.MINIO_RELEASE}"
    )


def test_minio_image_carries_the_pinned_mc():
    build = service("minio")["build"]
    assert (build.get("args") or {}).get("MC_MODULE_VERSION") == versions.MC_MODULE_VERSION
    dockerfile = (COMPOSE_FILE.parent / build["context"] / build.get("dockerfile", "Dockerfile")).resolve()
    defaults = set(re.findall(r"^ARG MC_MODULE_VERSION=(\S+)", dockerfile.read_text(), re.MULTILINE))
    assert defaults == {versions.MC_MODULE_VERSION}, f"{dockerfile}: ARG MC_MODULE_VERSION defaults to {defaults}"
    assert service("minio-init").get("image") == service("minio").get("image"), "minio-init runs mc of that image"


def test_minio_init_gives_nessie_the_labs_user_and_policy(lab_settings):
    env = environment("minio-init")
    c = lab_settings.credentials
    assert (env["AGP_NESSIE_S3_ACCESS_KEY"], env["AGP_NESSIE_S3_SECRET_KEY"]) == (
        c.nessie_s3_access_key,
        c.nessie_s3_secret_key.get_secret_value(),
    )
    assert json.loads(env["AGP_NESSIE_POLICY"]) == catalog_policy(lab_settings.warehouse_bucket)


def test_minio_dockerfile_defaults_to_the_pinned_module_version():
    build = service("minio")["build"]
    dockerfile = (COMPOSE_FILE.parent / build["context"] / build.get("dockerfile", "Dockerfile")).resolve()
    assert dockerfile.is_file(), f"service 'minio': build file {dockerfile} does not exist"
    defaults = set(re.findall(r"^ARG MINIO_MODULE_VERSION=(\S+)", dockerfile.read_text(), re.MULTILINE))
    assert defaults == {versions.MINIO_MODULE_VERSION}, (
        f"{dockerfile}: ARG MINIO_MODULE_VERSION defaults to {sorted(defaults)}, "
        f"versions.py pins {versions.MINIO_MODULE_VERSION!r}"
    )


# --------------------------------------------------------------------------------------------- config files
def test_every_shared_config_file_is_one_the_lab_reads():
    unread = sorted(
        rel(f) for f in CONFIG_DIR.rglob("*") if f.is_file() and f not in lab_config_files() and rel(f) not in LAB_ONLY
    )
    assert not unread, f"compose/config holds files no rule of LAB_READS covers: {unread}"


@pytest.mark.parametrize(("file", "name"), lab_config_files().items(), ids=[rel(f) for f in lab_config_files()])
def test_config_file_is_mounted_where_the_service_reads_it(file, name):
    targets = {m.target for m in bind_mounts(name) if m.source == file}
    assert targets, f"service {name!r} does not mount {rel(file)}"
    wanted = expected_targets(name, file)
    assert targets & wanted, f"service {name!r} mounts {rel(file)} at {sorted(targets)}, reads it at {sorted(wanted)}"


@pytest.mark.parametrize("name", all_services())
def test_every_bind_mounted_host_path_exists(name):
    missing = [str(m.source) for m in bind_mounts(name) if not m.source.exists()]
    assert not missing, f"service {name!r} mounts host paths that do not exist: {missing}"


# -------------------------------------------------------------------------------------------- environment
@pytest.mark.parametrize(("file", "name", "var"), placeholder_params())
def test_placeholder_is_set_by_the_service_that_mounts_the_file(file, name, var):
    assert var in environment(name), f"{rel(file)} expands ${{{var}}}, which service {name!r} does not set"


@pytest.mark.parametrize(("file", "name", "var"), placeholder_params())
def test_placeholder_is_produced_by_the_lab(file, name, var, lab_settings):
    assert var in shared_env(lab_settings), f"{rel(file)} expands ${{{var}}}, which shared_env() does not produce"


def test_shared_environment_has_the_keys_of_the_lab(lab_settings):
    compose_keys, lab_keys = set(compose().get("x-agp-env") or {}), set(shared_env(lab_settings))
    assert compose_keys == lab_keys, (
        f"x-agp-env lacks {sorted(lab_keys - compose_keys)}, has extra {sorted(compose_keys - lab_keys)}"
    )


def test_shared_values_that_do_not_name_the_host_are_the_labs(lab_settings):
    ours = {key: str(value) for key, value in (compose().get("x-agp-env") or {}).items()}
    differ = {
        key: (ours.get(key), value)
        for key, value in shared_env(lab_settings).items()
        if lab_settings.host not in value and ours.get(key) != value
    }
    assert not differ, f"x-agp-env values differ from the lab's (compose, lab): {differ}"


@pytest.mark.parametrize(
    ("name", "var", "field"),
    [
        ("postgres", "POSTGRES_USER", "credentials.postgres_user"),
        ("postgres", "POSTGRES_PASSWORD", "credentials.postgres_password"),
        ("minio", "MINIO_ROOT_USER", "credentials.s3_access_key"),
        ("minio", "MINIO_ROOT_PASSWORD", "credentials.s3_secret_key"),
        ("minio", "MINIO_REGION", "s3_region"),
        ("minio-init", "AGP_ROOT_USER", "credentials.s3_access_key"),
        ("minio-init", "AGP_ROOT_PASSWORD", "credentials.s3_secret_key"),
        ("minio-init", "AGP_WAREHOUSE_BUCKET", "warehouse_bucket"),
        ("keycloak", "KC_DB_PASSWORD", "credentials.keycloak_db_password"),
        ("keycloak", "KC_BOOTSTRAP_ADMIN_USERNAME", "credentials.keycloak_admin"),
        ("keycloak", "KC_BOOTSTRAP_ADMIN_PASSWORD", "credentials.keycloak_admin_password"),
    ],
)
def test_service_setting_is_the_labs_default(name, var, field, lab_settings):
    value = operator.attrgetter(field)(lab_settings)
    want = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    got = environment(name).get(var)
    assert got == want, f"service {name!r}: {var}={got!r}, the lab's {field} is {want!r}"


@pytest.mark.parametrize(
    ("name", "var"),
    [
        ("nessie", "AGP_S3_ENDPOINT"),
        ("nessie", "AGP_NESSIE_JDBC_URL"),
        ("trino", "AGP_S3_ENDPOINT"),
        ("trino", "AGP_CATALOG_URI"),
        ("keycloak", "KC_DB_URL"),
    ],
)
def test_endpoint_is_a_compose_service_on_a_port_it_serves(name, var):
    value = environment(name).get(var, "")
    url = urlsplit(value.removeprefix("jdbc:"))
    assert url.hostname in all_services(), f"service {name!r}: {var}={value!r} names no compose service"
    assert url.port in published_ports(url.hostname), (
        f"service {name!r}: {var}={value!r}, but {url.hostname!r} serves {sorted(published_ports(url.hostname))}"
    )


def test_catalog_uri_has_the_labs_path(lab_settings):
    got = urlsplit(environment("trino")["AGP_CATALOG_URI"]).path
    nessie = lab_settings.model_copy(update={"catalog": "nessie"})  # Compose runs Nessie (see LAB_ONLY)
    assert got == urlsplit(nessie.catalog_uri).path, (
        f"service 'trino': AGP_CATALOG_URI path {got!r}, the lab's is {urlsplit(nessie.catalog_uri).path!r}"
    )


@pytest.mark.parametrize(("name", "var"), [("nessie", "AGP_NESSIE_JDBC_URL"), ("keycloak", "KC_DB_URL")])
def test_jdbc_url_names_a_database_of_init_sql(name, var):
    database = urlsplit(environment(name)[var].removeprefix("jdbc:")).path.lstrip("/")
    assert database in init_sql_databases(), (
        f"service {name!r}: {var} names database {database!r}, init.sql creates {sorted(init_sql_databases())}"
    )


def test_postgres_entrypoint_does_not_create_a_database_of_init_sql():
    # The image creates POSTGRES_DB (default: the user's name) unless it is `postgres`, then runs init.sql,
    # which stops at a CREATE DATABASE of a database that exists.
    env = environment("postgres")
    default_db = env.get("POSTGRES_DB") or env.get("POSTGRES_USER") or "postgres"
    assert default_db == "postgres" or default_db not in init_sql_databases(), (
        f"service 'postgres': the entrypoint creates database {default_db!r}, which init.sql creates again"
    )


def test_keycloak_connects_as_its_own_role():
    assert environment("keycloak").get("KC_DB_USERNAME") == DB_ROLES["keycloak"]


def test_init_sql_gives_each_database_the_labs_role_and_password(lab_settings):
    # Compose's PostgreSQL makes the roles from init.sql; the lab makes them with services.postgres_roles.
    sql = (CONFIG_DIR / "postgres" / "init.sql").read_text()
    passwords = dict(re.findall(r"CREATE ROLE (\w+) LOGIN [A-Z ]*PASSWORD '([^']*)';", sql))
    owners = dict(re.findall(r"ALTER DATABASE (\w+) OWNER TO (\w+);", sql))
    assert owners == DB_ROLES, f"init.sql: owners {owners}, the lab's DB_ROLES {DB_ROLES}"
    want = {role: lab_settings.db_password(role) for role in DB_ROLES.values()}
    assert passwords == want, f"init.sql: role passwords {passwords}, the lab's {want}"
    assert lab_settings.credentials.postgres_user not in passwords


# ------------------------------------------------------------------------------------------------------ ports
@pytest.mark.parametrize(("port", "target"), PORTS.items(), ids=list(PORTS))
def test_published_host_port_is_the_labs_default(port, target):
    name, container_port = target
    published = published_ports(name)
    assert container_port in published, f"service {name!r} does not publish container port {container_port}"
    want = getattr(Ports(), port)
    got = published[container_port].host_port
    assert got == want, f"service {name!r}: {container_port} published on {got}, the lab's ports.{port} is {want}"


@pytest.mark.parametrize("name", all_services())
def test_service_publishes_only_lab_ports_on_the_lab_host(name, lab_settings):
    known = {target for target in PORTS.values() if target[0] == name}
    for container_port, published in published_ports(name).items():
        assert (name, container_port) in known, f"service {name!r} publishes {container_port}, not a port of Ports"
        assert published.host_ip == lab_settings.host, (
            f"service {name!r}: {container_port} published on {published.host_ip}, the lab binds {lab_settings.host}"
        )


def test_init_sql_creates_the_databases_the_runtime_sets_up():
    from agp.hub.setup import DATABASES

    assert init_sql_databases() == set(DATABASES)
