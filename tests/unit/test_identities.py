"""Pure builders of the services' own identities: realm client hardening, PostgreSQL roles, the catalog's S3
policy, what the hub's settings file holds, and command lines without secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from agp.compose import services
from agp.compose.java import Java
from agp.compose.realm import hardening
from agp.compose.services import LabPaths
from agp.core.settings import Credentials, Settings, secret_settings_json


@pytest.fixture
def s() -> Settings:
    return Settings(lab_dir="/lab", cache_dir="/cache")


# ------------------------------------------------------------------------------------------------ realm
def test_a_client_the_platform_does_not_use_is_disabled_and_loses_the_password_grant():
    client = {"clientId": "admin-cli", "enabled": True, "publicClient": True, "directAccessGrantsEnabled": True}
    assert hardening(client) == {
        "enabled": False,
        "directAccessGrantsEnabled": False,
    }


def test_a_compliant_client_is_left_alone():
    client = {
        "clientId": "jupyterhub",
        "enabled": True,
        "standardFlowEnabled": True,
        "attributes": {"oauth2.device.authorization.grant.enabled": "false", "oidc.ciba.grant.enabled": "false"},
    }
    assert hardening(client) == {}


def test_the_hubs_client_keeps_its_code_flow_only_and_other_attributes():
    changes = hardening(
        {
            "clientId": "jupyterhub",
            "enabled": True,
            "standardFlowEnabled": True,
            "implicitFlowEnabled": True,
            "directAccessGrantsEnabled": True,
            "attributes": {"pkce.code.challenge.method": "S256", "oauth2.device.authorization.grant.enabled": "true"},
        }
    )
    assert changes["directAccessGrantsEnabled"] is False and changes["implicitFlowEnabled"] is False
    assert changes["attributes"]["oauth2.device.authorization.grant.enabled"] == "false"
    assert changes["attributes"]["pkce.code.challenge.method"] == "S256"  # other attributes are kept
    assert "standardFlowEnabled" not in changes and "enabled" not in changes


@pytest.mark.parametrize("client_id", ["account-console", "account", "security-admin-console", "broker"])
def test_built_ins_the_platform_does_not_use_are_disabled(client_id):
    assert hardening({"clientId": client_id, "enabled": True, "publicClient": True})["enabled"] is False


def test_the_services_client_gets_client_credentials_only():
    changes = hardening({"clientId": "agp-services", "enabled": True, "standardFlowEnabled": True})
    assert changes["standardFlowEnabled"] is False and changes["serviceAccountsEnabled"] is True


# ------------------------------------------------------------------------------------------------ PostgreSQL
def test_each_database_gets_its_own_unprivileged_role(s):
    sql = services.postgres_roles(s)
    cluster = "\n".join(sql["postgres"])
    for database, role in {"nessie": "nessie", "keycloak": "keycloak", "jupyterhub": "jupyterhub"}.items():
        assert f'ALTER DATABASE "{database}" OWNER TO "{role}"' in cluster
        assert f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC' in cluster
    assert 'ALTER DATABASE "agp" OWNER TO "agp_workspaces"' in cluster
    assert (
        'ALTER ROLE "nessie" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS '
        "PASSWORD 'agp-lab-nessie-db'" in cluster
    )
    assert 'GRANT CONNECT ON DATABASE "agp" TO "jupyterhub"' in cluster
    assert "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC" in cluster


def test_objects_of_the_superuser_move_to_each_databases_role_and_the_hub_reads_the_workspace_db(s):
    sql = services.postgres_roles(s)
    assert set(sql) == {"postgres", "nessie", "iceberg", "keycloak", "jupyterhub", "agp"}
    assert "relowner = 'agp'::regrole" in sql["nessie"][0] and 'OWNER TO "nessie"' in sql["nessie"][0]
    assert sql["agp"][1:] == [
        'GRANT USAGE ON SCHEMA public TO "jupyterhub"',
        'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "jupyterhub"',
        'ALTER DEFAULT PRIVILEGES FOR ROLE "agp_workspaces" IN SCHEMA public GRANT SELECT ON TABLES TO "jupyterhub"',
    ]


def test_a_password_is_quoted_and_a_hostile_role_name_refused(s):
    s.credentials.nessie_db_password = "it's"
    assert "PASSWORD 'it''s'" in "\n".join(services.postgres_roles(s)["postgres"])
    s.credentials.postgres_user = 'agp"; DROP ROLE x; --'
    with pytest.raises(ValueError, match="not a plain PostgreSQL name"):
        services.postgres_roles(s)


def test_services_connect_as_their_own_roles(s):
    assert s.db_url == "postgresql+psycopg://agp_workspaces:agp-lab-workspaces-db@127.0.0.1:15432/agp"
    assert s.hub_db_url == "postgresql+psycopg://jupyterhub:agp-lab-hub-db@127.0.0.1:15432/jupyterhub"
    assert s.hub_workspaces_db_url == "postgresql+psycopg://jupyterhub:agp-lab-hub-db@127.0.0.1:15432/agp"
    assert s.postgres_dsn == "postgresql://agp:agp-lab-postgres@127.0.0.1:15432/postgres"


# ------------------------------------------------------------------------------------------------ Nessie
def test_the_catalogs_s3_policy_reaches_the_warehouse_and_workspace_buckets_only():
    policy = services.catalog_policy("agp-warehouse")
    resources = {r for st in policy["Statement"] for r in st["Resource"]}
    assert resources == {
        "arn:aws:s3:::agp-warehouse",
        "arn:aws:s3:::agp-ws-*",
        "arn:aws:s3:::agp-warehouse/*",
        "arn:aws:s3:::agp-ws-*/*",
    }
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert not [a for a in actions if a.endswith("*")]
    assert not actions & {"s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketPolicy", "s3:ListAllMyBuckets"}


def test_nessie_gets_its_own_keys_and_role_not_the_root_ones(s):
    svc = services.nessie(s, LabPaths.of(s), Java(Path("/jdk"), 21))
    assert svc.env["AGP_NESSIE_S3_ACCESS_KEY"] == "agp-nessie"
    assert svc.env["AGP_NESSIE_DB_USER"] == "nessie"
    assert s.credentials.s3_secret_key.get_secret_value() not in svc.env.values()
    assert s.credentials.postgres_password.get_secret_value() not in svc.env.values()


# ------------------------------------------------------------------------------------------------ command lines
def test_keycloak_gets_its_database_password_in_the_environment_not_on_the_command_line(s):
    svc = services.keycloak(s, LabPaths.of(s), Java(Path("/jdk"), 21))
    assert not [a for a in svc.command if "password" in a.lower()]
    assert s.credentials.keycloak_db_password.get_secret_value() not in " ".join(svc.command)
    assert (svc.env["KC_DB_USERNAME"], svc.env["KC_DB_PASSWORD"]) == ("keycloak", "agp-lab-keycloak-db")


def test_no_service_has_a_credential_on_its_command_line(s):
    p, jdk = LabPaths.of(s), Java(Path("/jdk"), 21)
    values = [getattr(s.credentials, k).get_secret_value() for k in Credentials.secret_fields()]
    secret = [v for v in values if v]  # the rules token is empty by default
    assert len(secret) >= 15
    for svc in (
        services.postgres(s, p, None),
        services.minio(s, p),
        services.nessie(s, p, jdk),
        services.keycloak(s, p, jdk),
        services.trino(s, p, jdk, "internal", "spool"),
        services.jupyterhub(s, p, "crypt"),
    ):
        line = " ".join(svc.command)
        assert not [v for v in [*secret, "internal", "spool", "crypt"] if v in line], svc.name


def test_the_hubs_settings_hold_no_superuser_nor_other_services_secrets(s):
    c = services.hub_settings(s).credentials
    blanked = (c.postgres_password, c.nessie_db_password, c.keycloak_db_password, c.nessie_s3_secret_key)
    assert [v.get_secret_value() for v in blanked] == [""] * 4
    assert c.workspaces_db_password.get_secret_value() and c.hub_db_password.get_secret_value()
    assert c.services_client_secret.get_secret_value()
    assert s.credentials.postgres_password.get_secret_value() == "agp-lab-postgres"  # the lab's own: untouched


# ------------------------------------------------------------------------------------------------ generated secrets
def test_a_lab_uses_the_credentials_it_generated_and_an_explicit_one_wins(tmp_path, monkeypatch):
    from agp.compose import keys
    from agp.core.settings import GENERATED_CREDENTIALS

    s = Settings(lab_dir=tmp_path / "lab", cache_dir=tmp_path / "cache")
    assert s.credentials.nessie_db_password.get_secret_value() == "agp-lab-nessie-db"  # nothing generated yet
    keys.ensure_secrets(s.keys_dir, list(GENERATED_CREDENTIALS.values()))
    files = {f: (s.keys_dir / n) for f, n in GENERATED_CREDENTIALS.items()}
    assert {oct(p.stat().st_mode & 0o777) for p in files.values()} == {"0o600"}
    again = Settings(lab_dir=tmp_path / "lab", cache_dir=tmp_path / "cache")
    for field, path in files.items():
        assert getattr(again.credentials, field).get_secret_value() == path.read_text() and len(path.read_text()) >= 40
    assert again.db_url.startswith(
        f"postgresql+psycopg://agp_workspaces:{files['workspaces_db_password'].read_text()}@"
    )
    keys.ensure_secrets(s.keys_dir, list(GENERATED_CREDENTIALS.values()))  # made once: kept on the next up
    assert Settings(lab_dir=tmp_path / "lab").credentials == again.credentials
    monkeypatch.setenv("AGP_CREDENTIALS__NESSIE_DB_PASSWORD", "from-the-environment")
    assert (
        Settings(lab_dir=tmp_path / "lab").credentials.nessie_db_password.get_secret_value() == "from-the-environment"
    )


def test_the_hubs_settings_file_keeps_its_blanks_when_read_back(tmp_path):
    from agp.compose import keys
    from agp.core.settings import GENERATED_CREDENTIALS

    s = Settings(lab_dir=tmp_path / "lab", cache_dir=tmp_path / "cache")
    keys.ensure_secrets(s.keys_dir, list(GENERATED_CREDENTIALS.values()))
    s.load_generated_credentials()
    read_back = Settings.model_validate_json(secret_settings_json(services.hub_settings(s)))
    c = read_back.credentials
    assert c.nessie_db_password.get_secret_value() == "" and c.nessie_s3_secret_key.get_secret_value() == ""
    assert c.workspaces_db_password.get_secret_value() == s.credentials.workspaces_db_password.get_secret_value()
