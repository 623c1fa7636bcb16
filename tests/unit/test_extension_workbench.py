"""The server extension's workbench handlers: ``/agp/workspaces`` (identity bar and switcher), ``/agp/queries``
(Query history panel) and what the catalog handlers add for the Catalog panel (SQL types, row counts, the current
namespace). In-process with ``jp_fetch``; the workspace service is the jobs tests' small real HTTP server."""

from __future__ import annotations

import json

import pytest
from test_extension_jobs import TOKEN, FakeService, _error

from agp.extension.history import queries_query
from agp.extension.identity import identity, workspace_entry
from agp.extension.jobs import Refused

pytest_plugins = ["jupyter_server.pytest_plugin"]

API = "/services/workspaces/api"


@pytest.fixture
def service():
    fake = FakeService()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def jp_server_config(service, monkeypatch):
    monkeypatch.setenv("AGP_WORKSPACE_SERVICE_URL", service.url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    monkeypatch.setenv("AGP_WORKSPACE", "finance")
    monkeypatch.setenv("JUPYTERHUB_BASE_URL", "/")
    monkeypatch.setenv("AGP_CATALOG_NAMESPACE", "finance")
    return {"ServerApp": {"jpserver_extensions": {"agp.extension": True}}, "AgpExtension": {"catalog_warm_up": False}}


def ws(slug: str, role: str | None, name: str | None = None, state: str = "ready") -> dict:
    return {"slug": slug, "display_name": name or slug.title(), "your_role": role, "state": state}


# --- pure -------------------------------------------------------------------------------------------------------


def test_identity_puts_the_current_workspace_first_and_links_the_others():
    me = {"name": "alice", "admin": False, "groups": []}
    answer = identity(
        me, [ws("zeta", "owner"), ws("finance", "viewer", "Finance team"), ws("bad/slug", "owner")], "finance", "/"
    )
    assert (answer["display_name"], answer["role"], answer["read_only"]) == ("Finance team", "viewer", True)
    assert answer["hub_home"] == "/hub/home"
    assert [e["slug"] for e in answer["workspaces"]] == ["finance", "zeta"], "a malformed slug is dropped"
    zeta = answer["workspaces"][1]
    assert (zeta["lab_url"], zeta["spawn_url"]) == ("/user/alice/zeta/lab", "/hub/spawn/alice/zeta")


def test_an_admin_switches_only_among_their_own_workspaces():
    answer = identity(
        {"name": "admin", "admin": True}, [ws("finance", None), ws("ops", "editor")], "finance", "/hub-base/"
    )
    assert (answer["role"], answer["read_only"]) == ("admin", False)
    assert [e["slug"] for e in answer["workspaces"]] == ["ops"]
    assert answer["workspaces"][0]["spawn_url"] == "/hub-base/hub/spawn/admin/ops"


def test_a_user_name_is_quoted_in_links():
    entry = workspace_entry(ws("ops", "editor"), "a b@x", "/", "finance")
    assert entry["lab_url"] == "/user/a%20b%40x/ops/lab"
    assert workspace_entry(ws("ops", "superuser"), "alice", "/", "finance") is None


@pytest.mark.parametrize(
    "arguments, expected",
    [
        ({}, {"limit": "50"}),
        ({"1796229719439": ""}, {"limit": "50"}),  # JupyterLab's cache buster
        ({"mine": "1"}, {"limit": "50", "user": "alice"}),
        (
            {"user": "bob", "state": "failed", "q": " select ", "limit": "20", "offset": "40"},
            {"user": "bob", "state": "FAILED", "q": "select", "limit": "20", "offset": "40"},
        ),
        (
            {"since": "2026-12-02", "until": "2026-12-02T17:00:00+00:00"},
            {"limit": "50", "since": "2026-12-02T00:00:00", "until": "2026-12-02T17:00:00+00:00"},
        ),
    ],
)
def test_history_filters_become_the_services_query(arguments, expected):
    assert queries_query(arguments, "alice") == expected


@pytest.mark.parametrize(
    "arguments, words",
    [
        ({"owner": "bob"}, "Unknown filter"),
        ({"user": "bob/../x"}, "user is a user name"),
        ({"mine": "1", "user": "bob"}, "not both"),
        ({"state": "FINISHED;DROP"}, "state is one word"),
        ({"q": "a\nb"}, "one line"),
        ({"q": "x" * 201}, "200 characters"),
        ({"since": "yesterday"}, "ISO 8601"),
        ({"limit": "0"}, "limit is a whole number from 1 to 200"),
        ({"limit": "1000"}, "limit is a whole number from 1 to 200"),
        ({"offset": "-1"}, "offset is a whole number"),
    ],
)
def test_bad_history_filters_are_refused_with_one_sentence(arguments, words):
    with pytest.raises(Refused, match=words):
        queries_query(arguments, "alice")


def test_sql_types_and_stats_of_an_iceberg_table():
    from pyiceberg import types as t
    from pyiceberg.table.snapshots import Operation, Summary

    from agp.kernels.catalog import quote_name, snapshot_stats, sql_type

    assert sql_type(t.LongType()) == "bigint"
    assert sql_type(t.StringType()) == "varchar"
    assert sql_type(t.TimestamptzType()) == "timestamp(6) with time zone"
    assert sql_type(t.DecimalType(12, 2)) == "decimal(12, 2)"
    assert sql_type(t.ListType(1, t.IntegerType())) == "array(integer)"
    assert sql_type(t.MapType(1, t.StringType(), 2, t.DoubleType())) == "map(varchar, double)"
    row = t.StructType(t.NestedField(1, "a", t.FloatType()), t.NestedField(2, "Big Name", t.DateType()))
    assert sql_type(row) == 'row(a real, "Big Name" date)'
    assert (quote_name("kwh"), quote_name("Kwh"), quote_name('a"b')) == ("kwh", '"Kwh"', '"a""b"')
    summary = Summary(
        Operation.APPEND, **{"total-records": "1200", "total-files-size": "4096", "total-data-files": "3"}
    )
    assert snapshot_stats(summary) == {"rows": 1200, "data_files": 3, "size_bytes": 4096}
    assert snapshot_stats(Summary(Operation.APPEND)) == {"rows": None, "data_files": None, "size_bytes": None}


# --- in-process --------------------------------------------------------------------------------------------------


async def test_workspaces_are_asked_as_the_server_and_rebuilt(jp_fetch, service):
    service.answers[("GET", f"{API}/me")] = (200, {}, json.dumps({"name": "alice", "admin": False}).encode())
    listing = [
        ws("finance", "editor", "Finance"),
        ws("ops", "viewer"),
        {"slug": "x", "your_role": "owner", "secret": 1},
    ]
    service.answers[("GET", f"{API}/workspaces")] = (200, {}, json.dumps(listing).encode())
    body = json.loads((await jp_fetch("agp", "workspaces")).body)
    asked = [r for r in service.requests if r["path"].startswith(API)]
    assert {r["path"] for r in asked} == {f"{API}/me", f"{API}/workspaces"}
    assert {r["authorization"] for r in asked} == {f"token {TOKEN}"}
    probes = [r for r in service.requests if not r["path"].startswith(API)]
    assert sorted((p["path"], p["authorization"]) for p in probes) == [
        ("/user/alice/ops/api", None),
        ("/user/alice/x/api", None),
    ], "no token to probes"
    assert (body["user"], body["workspace"], body["role"], body["read_only"]) == ("alice", "finance", "editor", False)
    by_slug = {e["slug"]: e for e in body["workspaces"]}
    assert "secret" not in by_slug["x"], "fields are rebuilt, not passed through"
    # ops has no server here (the proxy is the fake service, which knows no /user/... path): the hub's spawn page.
    assert (by_slug["ops"]["running"], by_slug["ops"]["url"]) == (False, "/hub/spawn/alice/ops")
    assert by_slug["finance"]["url"] == "/user/alice/finance/lab"


async def test_a_workspace_service_error_keeps_its_sentence(jp_fetch, service):
    service.answers[("GET", f"{API}/me")] = (401, {}, json.dumps({"detail": "Your token has expired."}).encode())
    service.answers[("GET", f"{API}/workspaces")] = (200, {}, b"[]")  # asked at the same time: only /me fails
    code, error = await _error(jp_fetch, "agp", "workspaces")
    assert (code, error["message"]) == (401, "Your token has expired.")


async def test_queries_are_forwarded_for_this_workspace_with_checked_filters(jp_fetch, service):
    item = {"query_id": "20261202_1", "user": "alice", "query": "SELECT 1", "state": "FINISHED"}
    service.answer("GET", "queries", body={"items": [item], "total": 31})
    body = json.loads((await jp_fetch("agp", "queries", params={"q": "select", "limit": "10", "offset": "10"})).body)
    assert body == {"items": [item], "total": 31}
    sent = service.last()
    assert sent["path"] == f"{API}/workspaces/finance/queries"
    assert sent["query"] == {"q": ["select"], "limit": ["10"], "offset": ["10"]}
    assert sent["authorization"] == f"token {TOKEN}"

    code, error = await _error(jp_fetch, "agp", "queries", params={"workspace": "ops"})
    assert code == 400 and "Unknown filter(s): workspace" in error["message"]
    assert len(service.requests) == 1, "a refused filter is not forwarded"


async def test_a_history_answer_that_is_not_a_list_is_a_502(jp_fetch, service):
    service.answer("GET", "queries", body=["not", "a", "page"])
    code, error = await _error(jp_fetch, "agp", "queries")
    assert code == 502 and "does not understand" in error["message"]


def test_the_catalog_is_warmed_up_in_a_workspace_server_only():
    import logging

    from agp.extension.handlers import Backend

    backend = Backend(ttl=60)
    backend.environ = {"AGP_CATALOG_NAMESPACE": "finance", "AGP_WORKSPACE_SERVICE_URL": "http://service"}
    asked = []
    backend.namespaces = lambda: asked.append("namespaces") or ["finance", "ops"]
    backend.tables = lambda ns: asked.append(ns) or ["readings"]
    backend.warm_up(logging.getLogger("test")).join(timeout=30)
    assert asked == ["namespaces", "finance"]
    assert backend.cache.get(("tables", "finance"), lambda: ["not cached"]) == ["readings"]

    failing = Backend(ttl=60)
    failing.environ = dict(backend.environ)
    failing.namespaces = lambda: 1 / 0
    failing.warm_up(logging.getLogger("test")).join(timeout=30)  # logged, not raised
    outside = Backend(ttl=60)
    outside.environ = {}
    assert outside.warm_up(logging.getLogger("test")) is None


async def test_the_namespaces_answer_names_the_current_one_and_can_carry_its_tables(jp_fetch, jp_serverapp):
    backend = jp_serverapp.web_app.settings["agp_extension"]
    asked = []
    backend.namespaces = lambda: asked.append("namespaces") or ["finance", "ops"]
    backend.tables = lambda ns: asked.append(ns) or ["readings", "meters"]
    plain = json.loads((await jp_fetch("agp", "catalog", "namespaces")).body)
    assert (plain["items"], plain["current"], "current_tables" in plain) == (["finance", "ops"], "finance", False)
    both = json.loads((await jp_fetch("agp", "catalog", "namespaces", params={"with": "current_tables"})).body)
    assert both["current_tables"] == ["readings", "meters"]
    tables = json.loads((await jp_fetch("agp", "catalog", "namespaces", "finance", "tables")).body)
    assert tables["items"] == ["meters", "readings"]
    assert asked == ["namespaces", "finance"], "answers are cached: the panel's next reading asks nothing"
