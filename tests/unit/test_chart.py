"""The Helm chart agrees with the runtime without rendering it (rendering needs helm: tests/k8s/test_chart_render.py):
its copies of the lab's config files, the names of its Secret's keys, what each pod mounts of it."""

import re
from pathlib import Path

import yaml

from agp.core.settings import GENERATED_CREDENTIALS
from agp.core.tokens import KeyPaths

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "antigravity"


def test_shared_config_files_are_the_labs():
    for copy, original in [
        ("files/trino/iceberg.properties", "compose/config/trino/catalog/iceberg.properties"),
        ("files/keycloak/antigravity-realm.json", "compose/config/keycloak/antigravity-realm.json"),
    ]:
        assert (CHART / copy).read_text() == (ROOT / original).read_text(), (
            f"copy {original} to helm/antigravity/{copy}"
        )


def secret_keys() -> set[str]:
    text = (CHART / "templates" / "secret.yaml").read_text()
    listed = re.search(r"\$random := list(.*?)\}\}", text, re.S).group(1)
    keys = set(re.findall(r'"([^"]+)"', listed))
    keys |= set(re.findall(r'set \$data "([^"]+)"', text))
    return keys


def test_the_secret_holds_every_generated_credential_and_key():
    keys = secret_keys()
    assert set(GENERATED_CREDENTIALS.values()) <= keys
    paths = KeyPaths(Path("/k"))
    for name in ("broker_private", "trino_keystore", "trino_ca", "internal_secret", "spooling_key"):
        assert getattr(paths, name).name in keys, name


def test_pods_mount_only_keys_the_secret_has():
    keys = secret_keys()
    for template in (CHART / "templates").glob("*.yaml"):
        text = template.read_text()
        mounted = set(re.findall(r"\{key: ([\w.-]+), path:", text)) | set(re.findall(r"key: ([\w.-]+)\}\}", text))
        mounted |= {k for block in re.findall(r"range list (.*?) \}\}", text) for k in re.findall(r'"([^"]+)"', block)}
        assert mounted <= keys, f"{template.name} mounts {sorted(mounted - keys)}, which the Secret does not have"


def test_the_hub_never_mounts_the_superusers_or_other_services_secrets():
    text = (CHART / "templates" / "hub.yaml").read_text()
    hub_items = re.search(r"- name: hub-secrets.*?range list (.*?) \}\}", text, re.S).group(1)
    for forbidden in (
        "postgres-superuser.password",
        "minio-root.secret",
        "postgres-iceberg.password",
        "minio-agp-iceberg.secret",
        "minio-agp-trino.secret",
        "keycloak-admin.password",
    ):
        assert forbidden not in hub_items


def test_values_and_schema_agree():
    import json

    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    demo = {**values, "demo": {**values["demo"], "enabled": True}}
    jsonschema.validate(demo, schema)
    for ci in sorted((CHART / "ci").glob("*.yaml")):
        merged = _merge(values, yaml.safe_load(ci.read_text()))
        jsonschema.validate(merged, schema)
    try:
        jsonschema.validate({**values, "server": {"workerz": 1}}, schema)
    except jsonschema.ValidationError as e:
        assert "workerz" in e.message
    else:
        raise AssertionError("a misspelt value passed the schema")


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return out


def hub_role_rules() -> list[dict]:
    """The rules of the hub's Role, with every template line taken out (all of them, whatever their conditions)."""
    text = (CHART / "templates" / "hub.yaml").read_text()
    role = text[text.index("kind: Role") : text.index("kind: RoleBinding")].rsplit("---", 1)[0]
    return yaml.safe_load("\n".join(line for line in role.splitlines() if "{{" not in line))["rules"]


def test_the_hubs_service_account_reads_no_secret():
    rules = hub_role_rules()
    assert rules
    for rule in rules:
        assert "*" not in rule["resources"] and "*" not in rule["verbs"], rule
        if "secrets" in rule["resources"]:
            # Job runs' token Secrets are made and deleted; nothing of a Secret is ever read back.
            assert set(rule["verbs"]) <= {"create", "delete"}, rule


def test_servers_dns_goes_to_the_cluster_dns_only():
    text = (CHART / "templates" / "networkpolicy.yaml").read_text()
    dns = text[text.index("{port: 53, protocol: UDP}") :].split("\n")
    assert dns[1].strip() == "to:" and "singleuser.networkPolicy.dns" in dns[2]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["singleuser"]["networkPolicy"]["dns"], "an empty peer list would allow DNS to anywhere"
