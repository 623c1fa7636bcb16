"""Settings and hub configuration for a deployment where each service has a name of its own (Kubernetes)."""

import pytest
from pydantic import ValidationError
from traitlets.config import Config

from agp.core.settings import Settings
from agp.hub.config import configure, load_overrides

K8S = {
    "host": "agp-hub",
    "bind_host": "0.0.0.0",
    "hosts": {
        "postgres": "db.example.org",
        "trino": "agp-trino",
        "trino_https": "agp-trino",
        "minio": "s3.example.org",
        "keycloak": "sso.example.org",
        "proxy_api": "agp-proxy-api",
        "hub": "agp-proxy-public",
    },
    "public_url": "https://lab.example.org/",
    "spawner": "kubernetes",
}


def test_each_service_is_reached_on_its_own_host(tmp_path):
    s = Settings(lab_dir=tmp_path, **K8S)
    assert s.url("trino") == "http://agp-trino:8080"
    assert s.trino_https_url == "https://agp-trino:8443"
    assert s.s3_endpoint == "http://s3.example.org:9000"
    assert "@db.example.org:15432/agp" in s.db_url
    assert s.keycloak_issuer == "http://sso.example.org:8180/realms/antigravity"
    assert s.url("workspaces") == "http://agp-hub:8091"  # not in hosts: `host`
    assert s.browser_url == "https://lab.example.org"
    assert s.hub_url == "http://agp-proxy-public:8000"


def test_a_service_given_by_url(tmp_path):
    s = Settings(lab_dir=tmp_path, urls={"keycloak": "https://sso.example.org/", "minio": "https://s3.example.org"})
    assert s.keycloak_issuer == "https://sso.example.org/realms/antigravity"
    assert s.s3_endpoint == "https://s3.example.org"


def test_the_lab_keeps_one_host(tmp_path):
    s = Settings(lab_dir=tmp_path)
    assert s.url("trino") == "http://127.0.0.1:8080" and s.browser_url == s.hub_url
    assert s.bind_address == "127.0.0.1" and s.keys_dir == tmp_path / "secrets"


def test_an_unknown_service_name_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="hosts names no such service: trinoo"):
        Settings(lab_dir=tmp_path, hosts={"trinoo": "x"})


def test_hosts_and_secrets_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AGP_HOSTS__TRINO", "trino.svc")
    monkeypatch.setenv("AGP_SECRETS_DIR", str(tmp_path / "mounted"))
    (tmp_path / "mounted").mkdir()
    (tmp_path / "mounted" / "catalog.token").write_text("from-the-secret\n")
    s = Settings(lab_dir=tmp_path)
    assert s.url("trino") == "http://trino.svc:8080"
    assert s.keys_dir == tmp_path / "mounted"
    assert s.credentials.catalog_token.get_secret_value() == "from-the-secret"


def test_the_kubernetes_hub_spawns_pods_behind_a_proxy_of_its_own(tmp_path):
    c = Config()
    configure(c, Settings(lab_dir=tmp_path, **K8S), config_file="/etc/agp/settings.yaml")
    assert c.JupyterHub.spawner_class == "workspace-kube"
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.ConfigurableHTTPProxy.api_url == "http://agp-proxy-api:8001"
    assert c.JupyterHub.hub_bind_url == "http://0.0.0.0:8081"
    assert c.JupyterHub.hub_connect_url == "http://agp-hub:8081"
    assert c.KeycloakOAuthenticator.oauth_callback_url == "https://lab.example.org/hub/oauth_callback"
    assert c.KubeSpawner.cmd == ["jupyterhub-singleuser"]  # where z2jh's hub.config.KubeSpawner can change it
    env = c.WorkspaceKubeSpawner.data_plane_env
    assert env["AGP_TRINO_HOST"] == "agp-trino" and env["AGP_PUBLIC_URL"] == "https://lab.example.org"
    (service,) = c.JupyterHub.services
    assert service["url"] == "http://agp-hub:8091"
    assert service["environment"] == {"AGP_CONFIG": "/etc/agp/settings.yaml"}


def test_the_lab_hub_starts_its_own_proxy(tmp_path):
    c = Config()
    configure(c, Settings(lab_dir=tmp_path))
    assert c.JupyterHub.spawner_class == "workspace-local"
    assert "should_start" not in c.ConfigurableHTTPProxy
    assert "hub_connect_url" not in c.JupyterHub


def test_chart_overrides_apply_last(tmp_path):
    c = Config()
    configure(c, Settings(lab_dir=tmp_path, **K8S))
    overrides = tmp_path / "hub-config.yaml"
    overrides.write_text("KubeSpawner:\n  image: localhost/agp-notebook:dev\n  storage_capacity: 2Gi\n")
    load_overrides(c, str(overrides))
    assert c.KubeSpawner.image == "localhost/agp-notebook:dev"
    assert c.JupyterHub.spawner_class == "workspace-kube"  # untouched
    overrides.write_text("- not a mapping\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_overrides(c, str(overrides))
