"""pyiceberg's documented ``load_catalog("default")`` finds the workspace's catalog in a workspace kernel."""

from agp.kernels import default_pyiceberg_catalog

SERVER = {"AGP_WORKSPACE_SERVICE_URL": "http://hub/services/workspaces/", "JUPYTERHUB_API_TOKEN": "t0k"}


def test_the_default_catalog_is_the_workspaces_through_the_service():
    env = dict(SERVER)
    default_pyiceberg_catalog(env)
    assert env["PYICEBERG_CATALOG__DEFAULT__URI"] == "http://hub/services/workspaces/iceberg"
    assert env["PYICEBERG_CATALOG__DEFAULT__TOKEN"] == "t0k"
    assert env["PYICEBERG_CATALOG__DEFAULT__TYPE"] == "rest"
    assert env["PYICEBERG_CATALOG__DEFAULT__WAREHOUSE"] == "warehouse"


def test_a_users_own_default_catalog_is_kept_and_nothing_is_set_outside_a_server():
    env = {**SERVER, "PYICEBERG_CATALOG__DEFAULT__URI": "http://mine"}
    default_pyiceberg_catalog(env)
    assert env == {**SERVER, "PYICEBERG_CATALOG__DEFAULT__URI": "http://mine"}
    bare: dict[str, str] = {}
    default_pyiceberg_catalog(bare)
    assert bare == {}
