"""``compose/docker-compose.yml`` runs the platform as the lab and the Helm chart configure it: the images as
images/build.py tags them, the runtime's settings (``compose/docker/settings.yaml`` loaded as real Settings), Trino's
and the catalog's configuration compared with the lab's builders and the chart's, the secrets folder's names, the
published ports, and no secret in the file.

No service is started: the file is read with ``yaml.safe_load``, ``${VAR:-default}`` taken at its default (what a
plain ``docker compose up`` uses). ``tests/compose`` runs it for real (``-m compose``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from agp.compose import secrets as compose_secrets
from agp.compose.services import CONFIG_DIR, LabPaths, catalog_properties, trino_files
from agp.core import versions
from agp.core.settings import DB_ROLES, GENERATED_CREDENTIALS, Credentials, Ports, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = CONFIG_DIR.parent
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKER_DIR = COMPOSE_DIR / "docker"
CHART = ROOT / "helm" / "antigravity"
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")
# `${ENV:AGP_X}` (Trino) or `${AGP_X:default}` (Keycloak's realm import).
PLACEHOLDER = re.compile(r"\$\{(?:ENV:)?(AGP_[A-Z0-9_]+)(?::[^}]*)?\}")

# What each service listens on inside the compose networks (the images' and this file's own settings).
SERVES = {
    "postgres": {5432},
    "minio": {9000},
    "catalog": {8181},
    "keycloak": {8080, 9000},
    "hub": {8081, 8091},
    "proxy": {8000, 8001},
    "trino": {8080, 8443},
}
# Settings port name -> the compose service that serves it (hosts of docker/settings.yaml).
SERVICE_OF = {
    "postgres": "postgres",
    "minio": "minio",
    "catalog": "catalog",
    "trino": "trino",
    "trino_https": "trino",
    "keycloak": "keycloak",
    "keycloak_management": "keycloak",
    "hub": "proxy",
    "proxy_api": "proxy",
    "hub_api": "hub",
    "workspaces": "hub",
}
# The only ports published on the host: settings port name -> (service, container port).
PUBLISHED = {"hub": ("proxy", 8000), "keycloak": ("keycloak", 8080)}
# Where workspace servers are, and who they may reach (the chart's NetworkPolicies, as far as networks go).
SERVERS_REACH = {"hub", "proxy", "trino", "minio"}


# ---------------------------------------------------------------------------------------------------- helpers
def _load_build():
    spec = importlib.util.spec_from_file_location("agp_images_build_for_compose", ROOT / "images" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    sys.path.insert(0, str(ROOT / "images"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "images"))
    return module


build = _load_build()


def expand(value: object, env: dict[str, str] | None = None) -> object:
    """``${VAR:-default}`` as compose reads it with ``env`` (default: no variable set)."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: (env or {}).get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, list):
        return [expand(v, env) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, env) for k, v in value.items()}
    return value


@functools.cache
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@functools.cache
def compose() -> dict:
    return expand(raw())


def all_services() -> list[str]:
    return sorted(compose()["services"])


def service(name: str) -> dict:
    services = compose()["services"]
    assert name in services, f"{COMPOSE_FILE.name} has no service {name!r}"
    return services[name]


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env if "=" in item)
    return {k: str(v) for k, v in env.items() if v is not None}


def secret_env(name: str) -> dict[str, str]:
    """The variables docker/secret-env sets from secrets files: NAME -> secret name."""
    entry = service(name).get("entrypoint") or []
    if entry[:2] != ["/bin/sh", "/etc/agp/secret-env"]:
        return {}
    pairs = entry[2 : entry.index("--")]
    return dict(p.split("=", 1) for p in pairs)


def wrapped_command(name: str) -> list[str]:
    """What a service runs once its wrapper (secret-env, catalog.py) is done."""
    entry = service(name).get("entrypoint") or []
    if entry[:2] == ["/bin/sh", "/etc/agp/secret-env"]:
        return entry[entry.index("--") + 1 :]
    if entry[:2] == ["python3", "/etc/agp/catalog.py"]:
        return entry[2:]
    return entry


def bind_mounts(name: str) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts of the repository's files (not the host's socket)."""
    mounts = {}
    for volume in service(name).get("volumes") or []:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (COMPOSE_DIR / source).resolve()
    return mounts


def named_volumes(name: str) -> dict[str, str]:
    """Container path -> volume name."""
    out = {}
    for volume in service(name).get("volumes") or []:
        source, target = volume.split(":")[:2]
        if not source.startswith((".", "/")):
            out[target] = source
    return out


def published(name: str, env: dict[str, str] | None = None) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, host port)."""
    out = {}
    for spec in raw()["services"][name].get("ports") or []:
        host_ip, host_port, container = str(expand(spec, env)).rsplit(":", 2)
        out[int(container)] = (host_ip, int(host_port))
    return out


def networks_of(name: str) -> set[str]:
    nets = service(name).get("networks") or []
    return set(nets if isinstance(nets, list) else nets.keys())


def dockerfile(image_name: str) -> Path:
    return ROOT / "images" / image_name / "Dockerfile"


def image_entrypoint(image_name: str) -> list[str]:
    steps = build.instructions(dockerfile(image_name).read_text())
    last_from = max(i for i, (w, _) in enumerate(steps) if w == "FROM")
    (entry,) = [json.loads(rest) for w, rest in steps[last_from:] if w == "ENTRYPOINT"]
    return entry


def image_of(name: str) -> str:
    """The images/ folder a service's image is built from (localhost/agp-<folder>:dev)."""
    m = re.fullmatch(r"localhost/agp-([a-z]+):dev", service(name).get("image", ""))
    assert m, f"service {name!r}: image {service(name).get('image')!r} is not localhost/agp-<name>:dev"
    return m.group(1)


def properties(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#")
    )


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """docker/settings.yaml as the hub and its workspace service load it, with the hub's environment."""
    for key in [k for k in os.environ if k.startswith("AGP_")]:
        monkeypatch.delenv(key)
    hub_env = environment("hub")
    for key, value in hub_env.items():
        if key.startswith("AGP_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("AGP_CONFIG", str(bind_mounts("hub")[hub_env["AGP_CONFIG"]]))
    return Settings()


# ------------------------------------------------------------------------------------------------------ images
def test_every_service_runs_an_image_of_images_build_py():
    for name in all_services():
        folder = image_of(name)
        assert folder in build.ORDER, f"service {name!r}: images/build.py builds no image {folder!r}"


@pytest.mark.parametrize("name", all_services())
def test_each_image_is_built_from_its_folder_on_the_local_base(name):
    folder = image_of(name)
    b = service(name)["build"]
    assert (COMPOSE_DIR / b["context"]).resolve() == ROOT, f"service {name!r}: build context is not the repository"
    assert b["dockerfile"] == f"images/{folder}/Dockerfile" and dockerfile(folder).is_file()
    assert b["args"]["BASE"] == build.BASE, f"service {name!r}: BASE defaults to {b['args']['BASE']!r}"


def test_services_of_one_image_build_it_alike():
    by_image: dict[str, list[dict]] = {}
    for name in all_services():
        by_image.setdefault(service(name)["image"], []).append(service(name)["build"])
    for image, builds in by_image.items():
        assert all(b == builds[0] for b in builds), f"{image} is built in different ways"


def test_minio_is_built_at_the_pinned_versions():
    args = service("minio")["build"]["args"]
    assert args["MINIO_MODULE_VERSION"] == versions.MINIO_MODULE_VERSION
    assert args["MC_MODULE_VERSION"] == versions.MC_MODULE_VERSION
    text = dockerfile("minio").read_text()
    assert f"ARG MINIO_MODULE_VERSION={versions.MINIO_MODULE_VERSION}" in text


@pytest.mark.parametrize("name", ["keycloak", "hub", "proxy", "trino", "catalog"])
def test_a_wrapped_entrypoint_runs_the_images_own(name):
    # secret-env and catalog.py run what the image would have run: a changed Dockerfile must change this file.
    assert wrapped_command(name) == image_entrypoint(image_of(name)), name


def test_the_hub_image_carries_the_docker_spawner():
    assert "[hub,kubernetes,docker]" in dockerfile("hub").read_text()


# ---------------------------------------------------------------------------------------------------- settings
def test_the_settings_file_is_valid_runtime_settings(settings):
    assert settings.spawner == "docker" and settings.bind_address == "0.0.0.0"
    assert settings.keys_dir == Path("/run/secrets")
    assert settings.server_os_users is False
    assert settings.browser_url == f"http://127.0.0.1:{Ports().hub}"
    assert settings.keycloak_public_url == f"http://127.0.0.1:{Ports().keycloak}"


def test_the_set_up_and_the_hub_read_the_same_settings():
    for name in ("setup", "hub"):
        path = environment(name)["AGP_CONFIG"]
        assert bind_mounts(name)[path] == DOCKER_DIR / "settings.yaml", name


def test_every_settings_host_is_the_service_that_serves_the_port(settings):
    for port_name, svc in SERVICE_OF.items():
        assert settings.host_of(port_name) == svc, f"{port_name}: settings name {settings.host_of(port_name)!r}"
        port = getattr(settings.ports, port_name)
        assert port in SERVES[svc], f"ports.{port_name}={port}, but {svc} serves {sorted(SERVES[svc])}"
    assert set(SERVES) <= set(all_services())


def _urls(text: str) -> list[tuple[str, int]]:
    return [(h, int(p)) for h, p in re.findall(r"(?:https?|jdbc:postgresql)://([a-z][\w-]*):(\d+)", text)]


def test_every_url_between_services_names_a_service_on_a_port_it_serves():
    texts = [COMPOSE_FILE.read_text()] + [p.read_text() for p in DOCKER_DIR.rglob("*") if p.is_file()]
    found = [u for text in texts for u in _urls(text) if u[0] not in {"localhost"}]
    assert found
    for host, port in found:
        assert host in SERVES, f"{host}:{port} is no service of docker-compose.yml"
        assert port in SERVES[host], f"{host}:{port}: {host} serves {sorted(SERVES[host])}"


def test_endpoints_in_the_environment_are_the_settings(settings):
    trino, catalog = environment("trino"), environment("catalog")
    assert trino["AGP_TRINO_CATALOG_URI"] == settings.trino_catalog_uri
    assert trino["AGP_KEYCLOAK_TOKEN_URL"] == settings.keycloak_token_url
    assert trino["AGP_S3_ENDPOINT"] == catalog["AGP_S3_ENDPOINT"] == settings.s3_endpoint
    assert trino["AGP_S3_REGION"] == catalog["AGP_S3_REGION"] == settings.s3_region
    assert trino["AGP_TRINO_S3_ACCESS_KEY"] == settings.credentials.trino_s3_access_key
    assert catalog["AGP_CATALOG_WAREHOUSE"] == f"s3://{settings.warehouse_bucket}/"
    assert catalog["AGP_CATALOG_JDBC_URL"] == (
        f"jdbc:postgresql://{settings.host_of('postgres')}:{settings.ports.postgres}/iceberg"
    )
    assert environment("minio")["MINIO_ROOT_USER"] == settings.credentials.s3_access_key
    assert environment("postgres")["POSTGRES_USER"] == settings.credentials.postgres_user
    assert environment("keycloak")["KC_DB_USERNAME"] == DB_ROLES["keycloak"]
    assert environment("keycloak")["KC_DB_URL"].endswith(f"{settings.ports.postgres}/keycloak")


def test_trino_and_its_rules_follower_use_the_workspace_services_doors(settings):
    service_url = f"http://{settings.host_of('workspaces')}:{settings.ports.workspaces}/services/workspaces"
    config = properties(DOCKER_DIR / "trino" / "config.properties")
    assert config["http-server.authentication.jwt.key-file"] == f"{service_url}/jwks.json"
    assert f"--url={service_url}/trino/rules.json" in service("trino-rules")["command"]


def test_keycloak_has_the_browser_address_the_hub_sends_users_to(settings):
    kc = environment("keycloak")
    assert kc["KC_HOSTNAME"] == settings.keycloak_public_url
    assert kc["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] == "true"
    assert kc["AGP_HUB_URL"] == settings.browser_url  # the realm's redirect URIs
    assert settings.keycloak_issuers == (
        f"http://keycloak:{settings.ports.keycloak}/realms/antigravity",
        f"{settings.keycloak_public_url}/realms/antigravity",
    )


def test_the_hub_is_configured_for_docker(settings, tmp_path):
    from traitlets.config import Config

    from agp.hub.config import configure

    c = Config()
    configure(c, settings.model_copy(update={"lab_dir": tmp_path}), config_file="/etc/agp/settings.yaml")
    assert c.JupyterHub.spawner_class == "workspace-docker"
    assert c.JupyterHub.hub_connect_url == "http://hub:8081"
    assert c.ConfigurableHTTPProxy.api_url == "http://proxy:8001" and c.ConfigurableHTTPProxy.should_start is False
    assert c.WorkspaceDockerSpawner.data_plane_env["AGP_TRINO_HOST"] == "trino"
    assert c.DockerSpawner.cmd == ["jupyterhub-singleuser"] and c.DockerSpawner.remove is True
    # The service's environment: the hub's settings file (and the hub's AGP_* variables, from jupyterhub_config.py).
    (svc,) = c.JupyterHub.services
    assert svc["environment"]["AGP_CONFIG"] == "/etc/agp/settings.yaml"


def test_the_hub_starts_servers_from_the_notebook_image_on_the_servers_network():
    args = dict(a.removeprefix("--").split("=", 1) for a in service("hub")["command"])
    assert args["DockerSpawner.image"] == service("notebook")["image"]
    assert args["DockerSpawner.network_name"] == compose()["networks"]["servers"]["name"]
    assert service("hub")["volumes"][-1].endswith(":/var/run/docker.sock")
    assert environment("hub")["DOCKER_HOST"] == "unix:///var/run/docker.sock"


def test_servers_network_holds_only_what_servers_reach(settings):
    # What a server is handed (agp.spawner.data_plane_env, the broker's Trino address) is on its network.
    for url in (settings.hub_url, settings.s3_endpoint, settings.trino_https_url):
        assert urlsplit(url).hostname in SERVERS_REACH, url
    on_servers = {name for name in all_services() if "servers" in networks_of(name)}
    assert on_servers == SERVERS_REACH
    for name in ("postgres", "keycloak", "catalog"):
        assert networks_of(name) == {"platform"}, name
    # and it has no route out (a notebook reached the internet, the host and every host port before)
    assert compose()["networks"]["servers"]["internal"] is True


# ------------------------------------------------------------------------------------------- Trino and catalog
def test_trino_mounts_every_config_file_where_it_reads_it():
    mounts = bind_mounts("trino")
    for f in sorted((DOCKER_DIR / "trino").iterdir()):
        assert mounts.get(f"/etc/trino/{f.name}") == f, f"trino does not mount docker/trino/{f.name}"
    for f in sorted((CONFIG_DIR / "trino" / "catalog").glob("*.properties")):
        assert mounts.get(f"/etc/trino/catalog/{f.name}") == f, f"trino does not mount {f.name}"


def test_trino_reads_the_rules_its_follower_writes():
    rules_file = properties(DOCKER_DIR / "trino" / "access-control.properties")["security.config-file"]
    trino_volume = named_volumes("trino")[str(Path(rules_file).parent)]
    out = next(a.split("=", 1)[1] for a in service("trino-rules")["command"] if a.startswith("--out="))
    assert named_volumes("trino-rules")[str(Path(out).parent)] == trino_volume
    assert Path(out).name == Path(rules_file).name
    assert service("trino")["depends_on"]["trino-rules"]["condition"] == "service_healthy"
    assert out in service("trino-rules")["healthcheck"]["test"]


def test_trino_is_configured_as_in_the_lab(tmp_path):
    s = Settings(lab_dir=tmp_path)
    lab = {p.name: t for p, t in trino_files(s, LabPaths.of(s)).items()}
    ours = {p.name: p.read_text() for p in (DOCKER_DIR / "trino").iterdir()}
    assert set(ours) == set(lab) - {"iceberg.properties"}

    def keyvalues(text: str) -> dict[str, str]:
        return dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln and not ln.startswith("#"))

    # Paths, addresses, sizes and node names differ by nature; every setting that decides behaviour is the lab's.
    local = {
        "http-server.https.keystore.path",
        "discovery.uri",
        "http-server.authentication.jwt.key-file",
        "query.max-memory",
        "query.max-memory-per-node",
        "node.environment",
        "node.id",
        "node.data-dir",
        "node.internal-address",
        "security.config-file",
    }
    for name in ("config.properties", "access-control.properties", "spooling-manager.properties", "node.properties"):
        mine, theirs = keyvalues(ours[name]), keyvalues(lab[name])
        assert {k: v for k, v in mine.items() if k not in local and k in theirs} == {
            k: v for k, v in theirs.items() if k not in local and k in mine
        }, name
        assert set(theirs) - local - {"node.internal-address"} <= set(mine), name
    assert ours["log.properties"] == lab["log.properties"]
    lab_jvm = [a for a in lab["jvm.config"].split() if "HeapDump" not in a]
    assert ours["jvm.config"].split() == lab_jvm


def test_trino_is_configured_as_in_the_chart():
    text = (CHART / "templates" / "trino-config.yaml").read_text()
    block = text.split("config-coordinator.properties: |")[1].split("{{- $wheap")[0]
    chart = dict(ln.strip().split("=", 1) for ln in block.splitlines() if "=" in ln and "{{" not in ln)
    mine = properties(DOCKER_DIR / "trino" / "config.properties")
    local = {"http-server.https.keystore.path", "discovery.uri"}
    assert {k: v for k, v in chart.items() if k not in local} == {
        k: v for k, v in mine.items() if k in chart and k not in local
    }
    assert set(chart) <= set(mine)


def test_the_catalog_properties_are_the_labs(tmp_path, settings):
    spec = importlib.util.spec_from_file_location("agp_compose_catalog", DOCKER_DIR / "catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("postgres-iceberg.password", "minio-agp-iceberg.secret"):
        (tmp_path / name).write_text(f"value of {name}\n")
    ours = module.properties(environment("catalog"), tmp_path)
    lab_settings = Settings(lab_dir=tmp_path / "lab")
    lab = properties_text(catalog_properties(lab_settings, LabPaths.of(lab_settings)))
    assert set(ours) == set(lab)
    assert ours["jdbc.password"] == "value of postgres-iceberg.password"
    assert ours["agp.port"] == str(settings.ports.catalog)
    assert settings.keys_dir == module.SECRETS  # where compose mounts the secrets the script reads
    assert ours["agp.token-file"] == str(tmp_path / GENERATED_CREDENTIALS["catalog_token"])
    assert ours["jdbc.user"] == DB_ROLES["iceberg"]
    assert ours["s3.access-key-id"] == settings.credentials.catalog_s3_access_key
    same = {"jdbc.schema-version", "retryable_status_codes", "io-impl", "s3.path-style-access"}
    assert {k: ours[k] for k in same} == {k: lab[k] for k in same}


def properties_text(text: str) -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln and not ln.startswith("#"))


# --------------------------------------------------------------------------------------- mounts and placeholders
@pytest.mark.parametrize("name", all_services())
def test_every_bind_mounted_host_path_exists(name):
    missing = [str(p) for p in bind_mounts(name).values() if not p.exists()]
    assert not missing, f"service {name!r} mounts host paths that do not exist: {missing}"


def test_keycloak_imports_the_labs_realm():
    realm = CONFIG_DIR / "keycloak" / "antigravity-realm.json"
    assert bind_mounts("keycloak")["/opt/keycloak/data/import/antigravity-realm.json"] == realm
    assert service("keycloak")["command"] == ["start", "--optimized", "--import-realm"]


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("keycloak", CONFIG_DIR / "keycloak" / "antigravity-realm.json"),
        *[("trino", f) for f in sorted((DOCKER_DIR / "trino").iterdir())],
        ("trino", CONFIG_DIR / "trino" / "catalog" / "iceberg.properties"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
def test_every_placeholder_of_a_mounted_file_is_set(name, file):
    have = set(environment(name)) | set(secret_env(name))
    missing = sorted(set(PLACEHOLDER.findall(file.read_text())) - have)
    assert not missing, f"{file.name} expands {missing}, which service {name!r} does not set"


# ------------------------------------------------------------------------------------------------------ secrets
def secrets_of(name: str) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in service(name).get("secrets") or []}


def chart_items(template: str, volume: str) -> set[str]:
    text = (CHART / "templates" / template).read_text()
    block = re.search(rf"- name: {volume}\n.*?range list (.*?) \}}\}}", text, re.S).group(1)
    return set(re.findall(r'"([^"]+)"', block))


def test_the_secrets_folder_holds_every_declared_secret():
    declared = raw()["secrets"]
    assert set(declared) <= set(compose_secrets.names())
    for name, spec in declared.items():
        assert spec == {"file": "${AGP_SECRETS_DIR:-./secrets}/" + name}, name
    used = set().union(*(secrets_of(n) for n in all_services()))
    assert used == set(declared), f"declared but unused: {sorted(set(declared) - used)}"


def test_the_secrets_folder_has_the_charts_secret_keys():
    text = (CHART / "templates" / "secret.yaml").read_text()
    chart = set(re.findall(r'"([^"]+)"', re.search(r"\$random := list(.*?)\}\}", text, re.S).group(1)))
    chart |= set(re.findall(r'set \$data "([^"]+)"', text))
    assert chart <= set(compose_secrets.names()), sorted(chart - set(compose_secrets.names()))


def test_each_service_mounts_what_its_chart_pod_mounts():
    assert secrets_of("setup") == chart_items("hub.yaml", "setup-secrets")
    assert secrets_of("catalog") == chart_items("catalog.yaml", "secrets")
    # The hub's environment secrets come from the same folder here (the chart sets them from its Secret).
    assert secrets_of("hub") == chart_items("hub.yaml", "hub-secrets") | {
        "hub-cookie-secret",
        "hub-crypt-key",
        "proxy-token",
    }


def test_the_hub_never_mounts_the_superusers_or_other_services_secrets():
    for forbidden in (
        "postgres-superuser.password",
        "minio-root.secret",
        "postgres-iceberg.password",
        "minio-agp-iceberg.secret",
        "minio-agp-trino.secret",
        "keycloak-admin.password",
        "postgres-keycloak.password",
    ):
        assert forbidden not in secrets_of("hub") | secrets_of("trino-rules") | secrets_of("proxy"), forbidden


@pytest.mark.parametrize("name", all_services())
def test_secret_env_reads_only_mounted_secrets(name):
    missing = set(secret_env(name).values()) - secrets_of(name)
    assert not missing, f"service {name!r} reads {sorted(missing)}, which it does not mount"


def _secret_defaults() -> set[str]:
    values = set()
    for field, info in Credentials.model_fields.items():
        default = info.default
        value = default.get_secret_value() if hasattr(default, "get_secret_value") else default
        if isinstance(value, str) and value and re.search(r"password|secret|token", field):
            values.add(value)
    return values


def test_no_secret_is_written_in_the_file():
    texts = {COMPOSE_FILE.name: COMPOSE_FILE.read_text()}
    texts |= {str(p.relative_to(COMPOSE_DIR)): p.read_text() for p in DOCKER_DIR.rglob("*") if p.is_file()}
    defaults = _secret_defaults()
    assert defaults, "no default credential found to look for"
    for name, text in texts.items():
        leaked = sorted(v for v in defaults if v in text)
        assert not leaked, f"{name} holds lab credentials {leaked}"
    for svc in all_services():
        for key, value in environment(svc).items():
            if re.search(r"PASSWORD|SECRET|TOKEN(_FILE)?$|CRYPT_KEY|SPOOLING_KEY", key):
                assert value.startswith("/run/secrets/") and key.endswith("_FILE"), (
                    f"service {svc!r}: {key} is set in the file; read it from the secrets folder"
                )


def test_the_secrets_command_makes_every_file(tmp_path):
    folder = tmp_path / "secrets"
    made = compose_secrets.ensure(folder, demo_password="demo-pass")
    assert set(made) == set(compose_secrets.names()) == {p.name for p in folder.iterdir()}
    assert (folder / "demo-user.password").read_text() == "demo-pass"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert all((folder / n).stat().st_mode & 0o777 == 0o444 for n in made)
    assert len((folder / "hub-crypt-key").read_text()) == 64  # hex of 32 bytes, as JupyterHub wants
    before = {n: (folder / n).read_bytes() for n in made}
    assert compose_secrets.ensure(folder) == []
    assert before == {n: (folder / n).read_bytes() for n in made}, "a second run changed a secret"
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((folder / "trino-ca.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "trino" in names  # the name the servers' kernels reach Trino by


# -------------------------------------------------------------------------------------------------------- ports
def test_only_the_hub_and_keycloak_are_published():
    publishing = {name: published(name) for name in all_services() if published(name)}
    assert {(n, p) for n, ports in publishing.items() for p in ports} == set(PUBLISHED.values())


@pytest.mark.parametrize("port_name", PUBLISHED)
def test_a_published_port_is_the_labs_default_on_loopback_and_overridable(port_name):
    name, container = PUBLISHED[port_name]
    assert published(name)[container] == ("127.0.0.1", getattr(Ports(), port_name))
    moved = published(name, {"AGP_HUB_PORT": "18000", "AGP_KEYCLOAK_PORT": "18180", "AGP_PUBLISH_ADDRESS": "0.0.0.0"})
    assert moved[container] == ("0.0.0.0", {"hub": 18000, "keycloak": 18180}[port_name])


def test_public_urls_follow_the_published_ports():
    env = {"AGP_HUB_PORT": "18000", "AGP_KEYCLOAK_PORT": "18180", "AGP_PUBLIC_HOST": "lab.example.org"}
    hub = expand(raw()["services"]["hub"]["environment"], env)
    kc = expand(raw()["services"]["keycloak"]["environment"], env)
    assert hub["AGP_PUBLIC_URL"] == kc["AGP_HUB_URL"] == "http://lab.example.org:18000"
    assert hub["AGP_KEYCLOAK_PUBLIC_URL"] == kc["KC_HOSTNAME"] == "http://lab.example.org:18180"


# ------------------------------------------------------------------------------------------------ start order
def test_depends_on_names_services_and_has_no_cycle():
    graph = {n: set(service(n).get("depends_on") or {}) for n in all_services()}
    for name, deps in graph.items():
        assert deps <= set(graph), f"service {name!r} depends on {sorted(deps - set(graph))}"

    def reaches(a: str, goal: str, seen: frozenset) -> bool:
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d})) for d in graph[a])

    assert not [n for n in graph if reaches(n, n, frozenset({n}))]


def test_one_shots_run_before_what_needs_them():
    for name in ("catalog", "keycloak"):
        assert service(name)["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert service("hub")["depends_on"]["notebook"]["condition"] == "service_completed_successfully"
    for name in ("setup", "notebook"):
        assert service(name)["restart"] == "no"


@pytest.mark.parametrize("name", [n for n in all_services() if n not in {"setup", "notebook"}])
def test_each_long_running_service_has_a_healthcheck(name):
    assert service(name).get("healthcheck", {}).get("test"), name


# ------------------------------------------------------------------------------------------ init.sql (the lab's)
def init_sql_databases() -> set[str]:
    return set(re.findall(r"CREATE DATABASE (\w+);", (CONFIG_DIR / "postgres" / "init.sql").read_text()))


def test_init_sql_creates_the_databases_the_runtime_sets_up():
    from agp.hub.setup import DATABASES

    assert init_sql_databases() == set(DATABASES)


def test_init_sql_gives_each_database_its_role():
    sql = (CONFIG_DIR / "postgres" / "init.sql").read_text()
    owners = dict(re.findall(r"ALTER DATABASE (\w+) OWNER TO (\w+);", sql))
    assert owners == DB_ROLES, f"init.sql: owners {owners}, the runtime's DB_ROLES {DB_ROLES}"
