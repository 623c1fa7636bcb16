"""Shared fixtures of the test suite.

Fixtures
--------
settings        the lab's :class:`~agp.core.settings.Settings` as this process sees them (session)
lab             the running mini-lab: started once if it is not running, reused if it is (session); its notebook
                runtime is brought up to the source tree first (servers run agp as installed there)
s3              a boto3 S3 client on the lab's MinIO, root keys (session)
catalog         a pyiceberg REST catalog on the lab's catalog, as the platform (session)
trino_conn      a ``trino`` DBAPI connection on the lab's Trino, ``iceberg`` catalog (session)
new_namespace   factory: a unique Iceberg namespace, dropped with its tables after the test
free_port       factory: a TCP port nothing listens on
spare_settings  factory: settings of a second, throw-away lab in ``tmp_path`` on free ports
hub_url         the lab's JupyterHub URL
login           factory: a :class:`~hubclient.HubSession` of a demo user, logged in through Keycloak's form
admin_api       the workspace API with a hub token of the demo platform admin (session)
user_api        factory: the workspace API with a hub token of one demo user
new_workspace   factory: a workspace made through the API by the admin; removed with its data after the test
keycloak_admin  Keycloak's admin REST API for the lab realm

Helpers for test modules (``from conftest import ...``): ``remove_workspace``, ``wait_until``, ``query_rows``.

Integration tests are marked ``integration``; when one fails, the tail of each lab service's log is printed.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hubclient import Api, HubSession, KeycloakAdmin

from agp.compose import runtime
from agp.compose.lab import Lab, LabError
from agp.core import clients
from agp.core.settings import Ports, Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def lab(settings: Settings) -> Lab:
    lab = Lab(settings)
    if not lab.status()["healthy"]:
        try:
            lab.up()
        except LabError as e:
            pytest.fail(f"the mini-lab did not start: {e}", pytrace=False)
    elif settings.run_as_os_users:
        # Servers run agp as installed in the notebook runtime: bring it up to the source tree (quick if it is).
        runtime.ensure(settings, lab.console)
    return lab


@pytest.fixture(scope="session")
def s3(lab: Lab):
    return clients.s3_client(lab.settings)


@pytest.fixture(scope="session")
def catalog(lab: Lab):
    return clients.load_catalog(lab.settings)


@pytest.fixture(scope="session")
def trino_conn(lab: Lab) -> Iterator:
    conn = clients.trino_connect(lab.settings)
    yield conn
    conn.close()


@pytest.fixture
def new_namespace(catalog) -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        catalog.create_namespace(name)
        made.append(name)
        return name

    yield make
    for ns in made:
        for table in catalog.list_tables(ns):
            catalog.purge_table(table)
        catalog.drop_namespace(ns)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _distinct_free_ports(n: int) -> list[int]:
    """``n`` different free ports: all sockets are held open together, so none is handed out twice."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def free_port() -> Callable[[], int]:
    return _free_port


@pytest.fixture
def spare_settings(tmp_path: Path, settings: Settings) -> Iterator[Callable[..., Settings]]:
    """Settings of a second lab that shares the artifact cache but nothing else; purged after the test."""
    made: list[Settings] = []

    def make(**overrides) -> Settings:
        ports = dict(zip(Ports.model_fields, _distinct_free_ports(len(Ports.model_fields)), strict=True))
        ports.update(overrides.pop("ports", {}))
        made.append(
            Settings(
                lab_dir=tmp_path / f"lab{len(made)}",
                cache_dir=settings.cache_dir,
                ports=Ports(**ports),
                start_timeout=120,
                **overrides,
            )
        )
        return made[-1]

    yield make
    for st in made:
        Lab(st).purge()


@pytest.fixture(scope="session")
def hub_url(lab: Lab) -> str:
    return lab.settings.hub_url


@pytest.fixture(scope="session")
def login(hub_url: str, settings: Settings) -> Callable[..., HubSession]:
    def make(username: str, password: str | None = None) -> HubSession:
        session = HubSession(hub_url)
        session.login(username, password or settings.credentials.demo_password.get_secret_value())
        return session

    return make


@pytest.fixture(scope="session")
def _tokens(login) -> dict[str, str]:
    return {}


@pytest.fixture(scope="session")
def user_api(login, hub_url, _tokens) -> Callable[[str], Api]:
    def make(username: str) -> Api:
        if username not in _tokens:
            _tokens[username] = login(username).new_token(username)
        return Api(hub_url, _tokens[username])

    return make


@pytest.fixture(scope="session")
def admin_api(user_api) -> Api:
    return user_api("admin")


@pytest.fixture
def new_workspace(admin_api: Api, settings: Settings) -> Iterator[Callable[..., dict]]:
    made: list[str] = []

    def make(expect: int = 201, **body) -> dict:
        body.setdefault("slug", f"t-{uuid.uuid4().hex[:10]}")
        made.append(body["slug"])
        r = admin_api("POST", "/workspaces", json=body)
        assert r.status_code == expect, r.text
        return r.json()

    yield make
    for slug in made:
        remove_workspace(settings, slug)


def wait_until(fn, timeout: float = 30.0):
    """``fn()``'s result once it stops raising (rules, caches and grants take effect after a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def query_rows(conn, sql: str) -> list:
    """Every row of ``sql`` on a DBAPI connection."""
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchall()


@contextlib.contextmanager
def two_workspaces(prefix: str, admin_api, user_api, settings: Settings, hub_url: str) -> Iterator[dict]:
    """Workspaces A (alice, editor) and B (bob, editor), each with a table ``secrets`` holding its own value, for
    attacks across a workspace boundary; removed again afterwards, also when making them failed half-way. Yields
    the slugs ``a``/``b``, the schemas ``sa``/``sb``, alice's hub ``token`` and her ``alice`` broker client."""
    from agp.kernels.credentials import BrokerClient
    from agp.kernels.credentials import trino_connect as broker_trino

    tag = uuid.uuid4().hex[:6]
    a, b = f"{prefix}-a-{tag}", f"{prefix}-b-{tag}"
    sa, sb = a.replace("-", "_"), b.replace("-", "_")
    try:
        for slug, user in ((a, "alice"), (b, "bob")):
            assert admin_api("POST", "/workspaces", json={"slug": slug}).status_code == 201
            assert admin_api("PUT", f"/workspaces/{slug}/members/{user}", json={"role": "editor"}).status_code == 200
            with clients.trino_connect(settings) as conn:
                cur = conn.cursor()
                cur.execute(f"CREATE TABLE iceberg.\"{slug.replace('-', '_')}\".secrets AS SELECT '{slug}-secret' AS v")
                cur.fetchall()
        token = user_api("alice").http.headers["Authorization"].split()[1]
        alice = BrokerClient(f"{hub_url}/services/workspaces", token, a)
        wait_until(lambda: query_rows(broker_trino(alice), f'SELECT v FROM "{sa}".secrets'))
        yield {"a": a, "b": b, "sa": sa, "sb": sb, "alice": alice, "token": token}
    finally:
        for slug in (a, b):
            remove_workspace(settings, slug)


def remove_workspace(settings: Settings, slug: str) -> None:
    """Tests only: delete a workspace with its bucket and namespace (the product archives instead)."""
    from sqlalchemy import delete

    from agp.core.models import Workspace
    from agp.core.names import WorkspaceNames
    from agp.hub import db

    names = WorkspaceNames(slug)
    catalog = clients.load_catalog(settings)
    if (names.namespace,) in catalog.list_namespaces():
        for table in catalog.list_tables(names.namespace):
            catalog.purge_table(table)
        catalog.drop_namespace(names.namespace)
    s3 = clients.s3_client(settings)
    if names.bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        for obj in s3.list_objects_v2(Bucket=names.bucket).get("Contents", []):
            s3.delete_object(Bucket=names.bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=names.bucket)
    engine = db.make_engine(settings.db_url)
    with engine.begin() as conn:
        conn.execute(delete(Workspace).where(Workspace.slug == slug))
    engine.dispose()
    from agp.hub.shared_sync import shared_root

    shutil.rmtree(shared_root(settings) / slug, ignore_errors=True)  # its shared folder, as the service made it
    (shared_root(settings) / f".{slug}.lock").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def keycloak_admin(lab: Lab) -> KeycloakAdmin:
    s = lab.settings
    return KeycloakAdmin(
        s.url("keycloak"),
        s.realm,
        s.credentials.keycloak_admin,
        s.credentials.keycloak_admin_password.get_secret_value(),
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed and item.get_closest_marker("integration"):
        lab = Lab(Settings())
        sections = []
        for name, svc in lab.status()["services"].items():
            log = Path(svc["log"])
            if log.exists():
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                sections.append(f"--- {name} ({svc['state']}, healthy={svc['healthy']}) {log}\n{tail}")
        report.sections.append(("lab service logs", "\n".join(sections)))
    return report
