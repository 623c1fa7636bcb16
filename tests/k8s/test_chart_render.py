"""The chart rendered with helm (the cluster tier builds it) for each of its ci/ values files: it lints; the
apiserver of the test cluster accepts every object (server-side dry run: the version we run), and every object
validates against the published JSON schemas of the oldest Kubernetes the chart supports (Chart.yaml's kubeVersion)
and of the newest there is a schema for, rendered for that version; the settings it renders are valid runtime
settings; Trino's configuration is the lab's; every pod passes restricted Pod Security; secrets never appear outside
the Secret."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from agp.core.settings import Settings

pytestmark = pytest.mark.kubernetes

CHART = Path(__file__).resolve().parents[2] / "helm" / "antigravity"
VALUES = sorted((CHART / "ci").glob("*.yaml"))


def render(helm, values: Path, *extra: str) -> list[dict]:
    out = helm("template", "agp", str(CHART), "-n", "agp", "-f", str(values), *extra)
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_lint(helm, values):
    out = helm("lint", str(CHART), "-f", str(values), "--strict")
    assert "0 chart(s) failed" in out


def test_missing_endpoints_are_named(helm):
    out = helm("lint", str(CHART), check=False)
    assert "postgresql/host" in out and "s3/endpoint" in out and "keycloak/issuer" in out


@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_the_apiserver_accepts_every_object(helm, kubectl, namespace, values):
    ns = namespace()
    docs = render(helm, values, "-n", ns)
    for d in docs:
        d["metadata"]["namespace"] = ns
    out = kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        ns,
        "-f",
        "-",
        "-o",
        "name",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
    )
    assert len(out.split()) == len(docs)


def _oldest_supported() -> str:
    """The lowest version Chart.yaml's kubeVersion admits (">=1.29.0-0" -> "1.29")."""
    constraint = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    major, minor = constraint.lstrip(">= ").split(".")[:2]
    return f"{major}.{minor}"


# major.minor: latest_version() says "1.37.0", and helm's --kube-version v1.37.0.0 is no version
SCHEMA_VERSIONS = [_oldest_supported(), ".".join(kubernetes_validate.latest_version().split(".")[:2])]


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_every_object_validates_against_the_schemas_of_the_oldest_and_newest_kubernetes(helm, values, version):
    docs = render(helm, values, "--kube-version", f"v{version}.0")
    errors = []
    for d in docs:
        try:
            # strict: a field the version does not know is an error (an apiserver would drop it silently)
            kubernetes_validate.validate(d, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{d['kind']}/{d['metadata']['name']}: {e.message} at {'/'.join(map(str, e.path))}")
    assert not errors, f"Kubernetes {version}: " + "; ".join(errors)
    assert {"Deployment", "Service", "NetworkPolicy", "Role", "ConfigMap"} <= {d["kind"] for d in docs}


@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_rendered_settings_are_valid_runtime_settings(helm, values, tmp_path, monkeypatch):
    (config,) = [
        d for d in render(helm, values) if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config")
    ]
    path = tmp_path / "settings.yaml"
    path.write_text(config["data"]["settings.yaml"])
    monkeypatch.setenv("AGP_CONFIG", str(path))
    s = Settings()
    assert s.spawner == "kubernetes" and s.bind_address == "0.0.0.0"
    assert s.trino_https_url == "https://agp-antigravity-trino:8443"
    assert s.hub_url.startswith("http://agp-antigravity-proxy-public")
    hub_config = yaml.safe_load(config["data"]["hub-config.yaml"])
    assert hub_config["KubeSpawner"]["image"].endswith("agp-notebook:dev")
    if values.stem == "workers-values":  # hub.config of the values merged into the same section
        assert hub_config["KubeSpawner"]["node_selector"] == {"pool": "notebooks"}
        assert hub_config["KubeSpawner"]["volumes"][0]["emptyDir"] == {}


def test_trino_is_configured_as_in_the_lab(helm, tmp_path):
    from agp.compose.services import LabPaths, trino_files

    docs = render(helm, CHART / "ci" / "demo-values.yaml")
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-trino")]
    chart = dict(line.split("=", 1) for line in cm["data"]["config-coordinator.properties"].splitlines() if "=" in line)
    s = Settings(lab_dir=tmp_path)
    lab_files = trino_files(s, LabPaths.of(s))
    lab = dict(
        line.split("=", 1)
        for path, text in lab_files.items()
        if path.name == "config.properties"
        for line in text.splitlines()
        if "=" in line
    )
    # Paths, addresses and sizes differ by nature; every setting that decides behaviour is the lab's.
    local = {
        "http-server.http.port",
        "http-server.https.port",
        "http-server.https.keystore.path",
        "discovery.uri",
        "http-server.authentication.jwt.key-file",
        "query.max-memory",
        "query.max-memory-per-node",
        "node-scheduler.include-coordinator",
        "task.concurrency",
    }
    assert {k: v for k, v in lab.items() if k not in local} == {
        k: v for k, v in chart.items() if k not in local and k in lab
    }
    assert set(lab) - local <= set(chart)
    for name in ("spooling-manager.properties", "access-control.properties"):
        (lab_text,) = [t for p, t in lab_files.items() if p.name == name]
        lab_keys = {ln.split("=", 1)[0] for ln in lab_text.splitlines() if "=" in ln}
        chart_keys = {ln.split("=", 1)[0] for ln in cm["data"][name].splitlines() if "=" in ln}
        assert lab_keys == chart_keys, name
    assert cm["data"]["iceberg.properties"].strip() == (CHART / "files/trino/iceberg.properties").read_text().strip()


@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_every_pod_is_restricted_and_secrets_stay_in_the_secret(helm, values):
    docs = render(helm, values)
    secrets = [d for d in docs if d["kind"] == "Secret"]
    for d in docs:
        spec = d.get("spec", {}).get("template", {}).get("spec")
        if not spec:
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True, d["metadata"]["name"]
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], c["name"]
            for env in c.get("env", []):
                parts = set(env["name"].split("_"))
                secret_like = parts & {"SECRET", "PASSWORD", "TOKEN", "KEY"} and not parts & {"URL", "ACCESS", "FILE"}
                assert not secret_like or "valueFrom" in env, f"{c['name']}: {env['name']} is not from the Secret"
    rendered = yaml.safe_dump_all([d for d in docs if d["kind"] != "Secret"])
    for secret in secrets:
        for value in secret.get("data", {}).values():
            plain = base64.b64decode(value).decode(errors="replace")
            assert plain not in rendered
