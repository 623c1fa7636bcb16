"""Secrets in the settings are ``SecretStr``: never in a repr, a log line or a settings dump, and handed out as plain
text only where they leave the settings object (a DSN, a child's environment, the hub's 0600 settings file)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from agp.compose import services
from agp.compose.java import Java
from agp.compose.services import LabPaths
from agp.core.settings import GENERATED_CREDENTIALS, Credentials, Settings, secret_settings_json

SECRET_NAME = re.compile(r"password|secret|token")
SECRET_FIELDS = [name for name in Credentials.model_fields if SECRET_NAME.search(name)]
NAME_FIELDS = [name for name in Credentials.model_fields if not SECRET_NAME.search(name)]


def distinctive(field: str) -> str:
    return f"Zq9-{field}-not-for-any-log"


@pytest.fixture
def s(tmp_path: Path) -> Settings:
    """Settings whose every secret is a value found nowhere else."""
    return Settings(lab_dir=tmp_path / "lab", credentials={f: distinctive(f) for f in SECRET_FIELDS})


def leaked(text: str) -> list[str]:
    return [f for f in SECRET_FIELDS if distinctive(f) in text]


def test_the_secret_fields_are_the_ones_named_so():
    assert len(SECRET_FIELDS) >= 18 and set(Credentials.secret_fields()) == set(SECRET_FIELDS)
    assert {"postgres_user", "s3_access_key", "keycloak_admin", "broker_access_key"} <= set(NAME_FIELDS)


@pytest.mark.parametrize("field", SECRET_FIELDS)
def test_every_password_secret_and_token_is_a_secret_str(field, s):
    assert Credentials.model_fields[field].annotation is SecretStr
    assert isinstance(getattr(Credentials(), field), SecretStr), f"{field}'s default is not a SecretStr"
    assert isinstance(getattr(s.credentials, field), SecretStr)
    assert getattr(s.credentials, field).get_secret_value() == distinctive(field)


@pytest.mark.parametrize("field", NAME_FIELDS)
def test_user_names_and_access_keys_stay_plain_text(field):
    assert isinstance(getattr(Credentials(), field), str)


def test_repr_str_and_dumps_show_no_secret(s):
    for what, text in {
        "repr(settings)": repr(s),
        "str(settings)": str(s),
        "repr(credentials)": repr(s.credentials),
        "f-string": f"{s} {s.credentials}",
        "model_dump_json": s.model_dump_json(),
        "str(model_dump())": str(s.model_dump()),
        "model_dump(mode=json)": str(s.model_dump(mode="json")),
        "the hub's settings, dumped": services.hub_settings(s).model_dump_json(),
    }.items():
        assert not leaked(text), f"{what} shows {leaked(text)}"


def test_a_log_record_of_the_settings_holds_no_secret(s, caplog):
    log = logging.getLogger("agp.test.secrets")
    with caplog.at_level(logging.DEBUG, logger="agp.test.secrets"):
        log.info("settings: %s", s)
        log.info("credentials: %r", s.credentials)
        log.info("dumped: %s", s.model_dump())
        try:
            raise RuntimeError(f"start-up failed with {s!r}")
        except RuntimeError:
            log.exception("the hub did not start")
    assert len(caplog.records) == 4
    assert not leaked(caplog.text), leaked(caplog.text)
    assert not leaked(" ".join(r.getMessage() for r in caplog.records))


def test_a_secret_from_the_secrets_folder_is_a_secret_str_with_the_files_value(tmp_path):
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / GENERATED_CREDENTIALS["catalog_token"]).write_text("token-from-the-mounted-secret\n")
    (folder / GENERATED_CREDENTIALS["hub_db_password"]).write_text("db-password-from-the-file")
    s = Settings(lab_dir=tmp_path / "lab", secrets_dir=folder)
    assert isinstance(s.credentials.catalog_token, SecretStr)
    assert s.credentials.catalog_token.get_secret_value() == "token-from-the-mounted-secret"
    assert s.hub_db_url == "postgresql+psycopg://jupyterhub:db-password-from-the-file@127.0.0.1:15432/jupyterhub"
    assert "token-from-the-mounted-secret" not in repr(s) + s.model_dump_json()


def test_a_secret_from_the_environment_is_a_secret_str(tmp_path, monkeypatch):
    monkeypatch.setenv("AGP_CREDENTIALS__HUB_CLIENT_SECRET", "client-secret-from-the-environment")
    s = Settings(lab_dir=tmp_path / "lab")
    assert s.credentials.hub_client_secret.get_secret_value() == "client-secret-from-the-environment"
    assert "client-secret-from-the-environment" not in repr(s) + s.model_dump_json()


def test_the_hubs_0600_settings_file_is_the_one_dump_with_the_values(s):
    written = secret_settings_json(services.hub_settings(s))
    # What the hub uses is in it, and reads back as itself; what it must not hold stays blank.
    assert distinctive("hub_client_secret") in written and distinctive("workspaces_db_password") in written
    assert distinctive("postgres_password") not in written and distinctive("s3_secret_key") not in written
    back = Settings.model_validate_json(written)
    assert back.credentials.catalog_token.get_secret_value() == distinctive("catalog_token")
    assert back.credentials.postgres_password.get_secret_value() == ""


def test_child_processes_get_plain_text_secrets_in_their_environment(s):
    p, jdk = LabPaths.of(s), Java(Path("/jdk"), 21)
    for svc in (
        services.postgres(s, p, None),
        services.minio(s, p),
        services.nessie(s, p, jdk),
        services.iceberg_rest(s, p, jdk),
        services.keycloak(s, p, jdk),
        services.trino(s, p, jdk, "internal", "spool"),
        services.jupyterhub(s, p, "crypt"),
    ):
        wrong = {k: type(v).__name__ for k, v in svc.env.items() if not isinstance(v, str)}
        assert not wrong, f"{svc.name}'s environment has values that are not text: {wrong}"
        assert "**********" not in "".join(svc.env.values()), f"{svc.name} got a masked secret"
        assert not leaked(str(svc.endpoints)), f"{svc.name}'s endpoints (printed by `agp lab status`) show a secret"
    env = services.keycloak(s, p, jdk).env
    assert env["KC_DB_PASSWORD"] == distinctive("keycloak_db_password")
    assert env["AGP_HUB_CLIENT_SECRET"] == distinctive("hub_client_secret")
    assert f"jdbc.password={distinctive('catalog_db_password')}" in services.catalog_properties(s, p)
