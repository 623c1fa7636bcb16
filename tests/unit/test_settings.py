from pathlib import Path

import pytest
from pydantic import ValidationError

from agp.core.settings import Ports, Settings


def test_defaults_spell_every_endpoint_once():
    s = Settings(lab_dir="/x/lab", cache_dir="/x/cache")
    assert s.s3_endpoint == "http://127.0.0.1:9000"
    assert s.catalog_uri == "http://127.0.0.1:8181"
    assert s.model_copy(update={"catalog": "nessie"}).catalog_uri == "http://127.0.0.1:19120/iceberg"
    assert s.trino_url == "http://127.0.0.1:8080"
    assert s.keycloak_issuer == "http://127.0.0.1:8180/realms/antigravity"
    assert s.postgres_dsn == "postgresql://agp:agp-lab-postgres@127.0.0.1:15432/postgres"


def test_environment_overrides_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("AGP_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.setenv("AGP_PORTS__TRINO", "8085")
    s = Settings()
    assert s.lab_dir == tmp_path / "lab"
    assert s.ports.trino == 8085
    assert s.trino_url == "http://127.0.0.1:8085"


def test_yaml_file_feeds_settings_below_the_environment(monkeypatch, tmp_path):
    config = tmp_path / "agp.yaml"
    config.write_text("ports:\n  trino: 8090\n  minio: 9100\nwarehouse_bucket: lakehouse\n")
    monkeypatch.setenv("AGP_CONFIG", str(config))
    monkeypatch.setenv("AGP_PORTS__MINIO", "9200")
    s = Settings()
    assert (s.ports.trino, s.ports.minio, s.warehouse_bucket) == (8090, 9200, "lakehouse")


def test_a_missing_config_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("AGP_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ValueError, match=r"AGP_CONFIG=.*nope.yaml does not name a readable YAML file"):
        Settings()


def test_two_services_on_one_port_are_refused(tmp_path):
    with pytest.raises(ValidationError, match=r"ports.keycloak and ports.trino are both 8080"):
        Settings(lab_dir=tmp_path, ports=Ports(keycloak=8080))


def test_services_on_hosts_of_their_own_may_share_a_port(tmp_path):
    s = Settings(lab_dir=tmp_path, ports=Ports(keycloak=8080), hosts={"keycloak": "keycloak"})
    assert s.url("keycloak") == "http://keycloak:8080" and s.url("trino") == "http://127.0.0.1:8080"


def test_a_port_out_of_range_is_refused():
    with pytest.raises(ValidationError, match=r"ports.minio=70000 is not a TCP port"):
        Ports(minio=70000)


def test_unknown_settings_are_refused():
    with pytest.raises(ValidationError):
        Settings(no_such_setting=1)


def test_relative_folders_become_absolute():
    s = Settings(lab_dir="rel/lab")
    assert s.lab_dir == Path.cwd() / "rel" / "lab"
