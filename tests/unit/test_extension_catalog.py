import pytest

from agp.kernels.catalog import TTLCache, page


def test_page_filters_sorts_and_counts():
    items = [f"t{i:03d}" for i in range(250)] + ["Readings"]
    first = page(items, "", 0, 100)
    assert first["total"] == 251 and first["items"][0] == "Readings" and len(first["items"]) == 100
    assert page(items, "READ", 0, 10) == {"items": ["Readings"], "total": 1, "offset": 0, "limit": 10}
    assert page(items, "", 250, 100)["items"] == ["t249"]
    assert page(items, "", -5, 10_000)["limit"] == 1000


def test_ttl_cache_reuses_then_clears():
    calls = []
    cache = TTLCache(ttl=60)
    assert cache.get(("k",), lambda: calls.append(1) or "v") == "v"
    assert cache.get(("k",), lambda: calls.append(1) or "w") == "v"
    cache.clear()
    assert cache.get(("k",), lambda: calls.append(1) or "w") == "w"
    assert len(calls) == 2


def test_vended_table_config_and_the_credentials_path():
    from agp.hub.service.catalog_proxy import vend
    from agp.hub.service.catalog_routes import Refused, parse

    cred = {"access_key_id": "AK", "secret_access_key": "SK", "session_token": "ST", "expires_at": 1800000000}
    doc = vend(
        {"metadata": {}, "config": {"s3.endpoint": "http://minio"}}, cred, "v1/main/namespaces/d/tables/t/credentials"
    )
    assert doc["config"] == {
        "s3.endpoint": "http://minio",
        "s3.access-key-id": "AK",
        "s3.secret-access-key": "SK",
        "s3.session-token": "ST",
        "s3.session-token-expires-at-ms": "1800000000000",
        "client.refresh-credentials-endpoint": "v1/main/namespaces/d/tables/t/credentials",
        "client.refresh-credentials-enabled": "true",
    }
    assert parse("GET", "v1/main/namespaces/d/tables/t/credentials").route.action == "table.credentials"
    assert parse("GET", "v1/main/namespaces/d/tables/t").route.action == "table.load"
    with pytest.raises(Refused):
        parse("GET", "v1/main/namespaces/d/views/t/credentials")


def test_enabling_the_extension_also_sets_lab_defaults_once(tmp_path):
    import json

    from agp.extension import enable_for

    config = enable_for(tmp_path)
    assert json.loads(config.read_text())["ServerApp"]["jpserver_extensions"] == {"agp.extension": True}
    settings = tmp_path / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    assert json.loads(settings.read_text()) == {"fetchNews": "false", "checkForUpdates": False}
    settings.write_text('{"fetchNews": "true"}')
    enable_for(tmp_path)
    assert json.loads(settings.read_text()) == {"fetchNews": "true"}, "the user's own choice stays"
