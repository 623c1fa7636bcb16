"""Query history against the lab: real Trino with its HTTP event listener posting to the real workspace service.

alice runs queries with her workspace's credentials (as her kernel does); bob, a member of another workspace only,
tries every door to them; the ingest door refuses anyone without Trino's token, which no notebook user can read;
and a workspace service killed while a batch of queries runs loses none of their events.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import uuid
from pathlib import Path

import psutil
import pytest
import requests
from conftest import query_rows, wait_until

from agp.kernels.credentials import BrokerClient, trino_connect

pytestmark = pytest.mark.integration
ENDED = ("FINISHED", "FAILED")


@pytest.fixture(scope="module")
def spaces(admin_api, user_api, hub_url, settings):
    """Workspace A (alice editor) and B (bob editor), and alice's broker client in A once Trino lets her write."""
    from conftest import remove_workspace

    tag = uuid.uuid4().hex[:6]
    a, b = f"t-qh-a-{tag}", f"t-qh-b-{tag}"
    try:
        for slug, user in ((a, "alice"), (b, "bob")):
            assert admin_api("POST", "/workspaces", json={"slug": slug}).status_code == 201
            r = admin_api("PUT", f"/workspaces/{slug}/members/{user}", json={"role": "editor"})
            assert r.status_code == 200, r.text
        token = user_api("alice").http.headers["Authorization"].split()[1]
        alice = BrokerClient(f"{hub_url}/services/workspaces", token, a)
        sa = a.replace("-", "_")
        wait_until(lambda: query_rows(trino_connect(alice), f'CREATE TABLE "{sa}".probe AS SELECT 1 AS x'))
        query_rows(trino_connect(alice), f'DROP TABLE "{sa}".probe')
        yield {"a": a, "b": b, "sa": sa, "alice": alice}
    finally:
        for slug in (a, b):
            remove_workspace(settings, slug)


def run(broker: BrokerClient, sql: str) -> tuple[str, list | Exception]:
    """The query id and rows (or the error) of ``sql`` on a connection of the broker's."""
    cur = trino_connect(broker).cursor()
    try:
        cur.execute(sql)
        return cur.query_id, cur.fetchall()
    except Exception as e:
        return cur.query_id, e


def entries(api, slug: str, marker: str, expect: int) -> list[dict]:
    """The workspace's entries whose text has ``marker``, once ``expect`` of them have ended."""

    def ended() -> list[dict]:
        r = api("GET", f"/workspaces/{slug}/queries", params={"q": marker, "limit": 500})
        assert r.status_code == 200, r.text
        items = [i for i in r.json()["items"] if i["state"] in ENDED]
        assert len(items) >= expect, f"{len(items)} of {expect} entries of {marker} have ended"
        return items

    return wait_until(ended, timeout=120)


@pytest.fixture(scope="module")
def alices_queries(spaces, user_api):
    """alice's CTAS, SELECT and failing query in A, with their ids, as the history shows them to her."""
    marker = f"qh-{uuid.uuid4().hex[:8]}"
    sa, alice = spaces["sa"], spaces["alice"]
    ctas, _ = run(alice, f"CREATE TABLE t_{marker[3:]} AS SELECT x FROM UNNEST(sequence(1, 5)) AS u(x) -- {marker}")
    select, rows = run(alice, f"SELECT count(*) FROM t_{marker[3:]} WHERE x > 2 -- {marker}")
    assert rows == [[3]], rows
    failing, error = run(alice, f"SELECT x\nFROM t_{marker[3:]}\n  WHERE nope = 1 -- {marker}")
    assert isinstance(error, Exception)
    seen = {e["query_id"]: e for e in entries(user_api("alice"), spaces["a"], marker, 3)}
    return {
        "marker": marker,
        "table": f"iceberg.{sa}.t_{marker[3:]}",
        "ctas": ctas,
        "select": select,
        "failing": failing,
        "seen": seen,
    }


def test_a_query_appears_with_its_user_workspace_rows_and_tables(alices_queries, spaces):
    q = alices_queries
    entry = q["seen"][q["select"]]
    assert entry["user"] == "alice" and entry["workspace"] == spaces["a"]
    assert entry["state"] == "FINISHED" and entry["error"] is None
    assert entry["rows"] == 1  # one row: the count
    assert entry["tables_read"] == [q["table"]] and entry["tables_written"] == []
    assert entry["elapsed_ms"] is not None and entry["created"] and entry["ended"]
    assert q["marker"] in entry["query"]


def test_a_ctas_shows_the_table_it_wrote(alices_queries):
    entry = alices_queries["seen"][alices_queries["ctas"]]
    assert entry["tables_written"] == [alices_queries["table"]]
    assert entry["rows"] == 5 and entry["state"] == "FINISHED"


def test_a_failing_query_has_its_error_and_position(alices_queries, user_api, spaces):
    entry = alices_queries["seen"][alices_queries["failing"]]
    assert entry["state"] == "FAILED"
    error = entry["error"]
    assert error["name"] == "COLUMN_NOT_FOUND" and "nope" in error["message"]
    assert (error["line"], error["column"]) == (3, 9)
    one = user_api("alice")("GET", f"/workspaces/{spaces['a']}/queries/{alices_queries['failing']}")
    assert one.status_code == 200 and one.json()["error"] == error


def test_filters_and_paging(alices_queries, user_api, spaces):
    alice, a, marker = user_api("alice"), spaces["a"], alices_queries["marker"]
    failed = alice("GET", f"/workspaces/{a}/queries", params={"q": marker, "state": "failed"}).json()
    assert [i["query_id"] for i in failed["items"]] == [alices_queries["failing"]] and failed["total"] == 1
    page = alice("GET", f"/workspaces/{a}/queries", params={"q": marker, "limit": 2, "offset": 0}).json()
    rest = alice("GET", f"/workspaces/{a}/queries", params={"q": marker, "limit": 2, "offset": 2}).json()
    assert page["total"] == rest["total"] >= 3 and len(page["items"]) == 2
    ids = [i["query_id"] for i in page["items"] + rest["items"]]
    assert len(set(ids)) == len(ids) and set(alices_queries["seen"]) <= set(ids)
    created = [i["created"] for i in page["items"] + rest["items"]]
    assert created == sorted(created, reverse=True), "newest first"
    nobody = alice("GET", f"/workspaces/{a}/queries", params={"q": marker, "user": "bob"}).json()
    assert nobody == {"items": [], "total": 0}
    later = alice("GET", f"/workspaces/{a}/queries", params={"q": marker, "since": "2999-01-01T00:00:00Z"}).json()
    assert later["total"] == 0
    assert alice("GET", f"/workspaces/{a}/queries", params={"limit": 0}).status_code == 422


def test_the_pages_show_the_history_and_an_entry(alices_queries, user_api, spaces):
    alice = user_api("alice")
    pages = alice.base.removesuffix("/api")
    listing = alice.http.get(f"{pages}/w/{spaces['a']}/queries", params={"q": alices_queries["marker"]}, timeout=60)
    assert listing.status_code == 200 and alices_queries["failing"] in listing.text
    one = alice.http.get(f"{pages}/w/{spaces['a']}/queries/{alices_queries['failing']}", timeout=60)
    assert one.status_code == 200
    assert "COLUMN_NOT_FOUND" in one.text and "line 3, column 9" in one.text
    select = alice.http.get(f"{pages}/w/{spaces['a']}/queries/{alices_queries['select']}", timeout=60)
    assert select.status_code == 200 and f"<code>{alices_queries['table']}</code>" in select.text


def test_bob_sees_none_of_it_through_any_door(alices_queries, user_api, admin_api, spaces):
    bob, a, b, marker = user_api("bob"), spaces["a"], spaces["b"], alices_queries["marker"]
    for query_id in (alices_queries["select"], alices_queries["failing"], alices_queries["ctas"]):
        for slug in (a, b):
            r = bob("GET", f"/workspaces/{slug}/queries/{query_id}")
            assert r.status_code == 404 and marker not in r.text, (slug, r.status_code)
    assert bob("GET", f"/workspaces/{a}/queries").status_code == 404
    for params in ({"q": marker}, {"user": "alice"}, {"workspace": b, "q": marker}, {"limit": 500}):
        r = bob("GET", "/queries", params=params)
        assert r.status_code == 200 and marker not in r.text, params
    r = bob("GET", f"/workspaces/{b}/queries", params={"user": "alice"})
    assert r.status_code == 200 and marker not in r.text
    pages = bob.base.removesuffix("/api")
    for page in (
        f"/w/{a}/queries",
        f"/w/{a}/queries/{alices_queries['select']}",
        f"/w/{b}/queries/{alices_queries['select']}",
    ):
        r = bob.http.get(pages + page, allow_redirects=False, timeout=60)
        assert r.status_code == 404 and marker not in r.text, (page, r.status_code)
    # The platform admin sees them all.
    seen = admin_api("GET", "/queries", params={"q": marker}).json()
    assert set(alices_queries["seen"]) <= {i["query_id"] for i in seen["items"]}


def test_bobs_session_schema_does_not_file_his_queries_in_alices_workspace(spaces, user_api, admin_api, hub_url):
    token = user_api("bob").http.headers["Authorization"].split()[1]
    bob = BrokerClient(f"{hub_url}/services/workspaces", token, spaces["b"])
    marker = f"qh-schema-{uuid.uuid4().hex[:8]}"
    cur = trino_connect(bob, schema=spaces["sa"]).cursor()  # alice's schema as his session's
    cur.execute(f"SELECT 1 -- {marker}")
    cur.fetchall()

    def recorded() -> dict:  # the admin sees every entry: wait until bob's has arrived
        (item,) = [i for i in admin_api("GET", "/queries", params={"q": marker}).json()["items"] if i["ended"]]
        return item

    entry = wait_until(recorded, timeout=120)
    assert entry["user"] == "bob" and entry["workspaces"] == [] and entry["session_schema"] == spaces["sa"]
    hers = user_api("alice")("GET", f"/workspaces/{spaces['a']}/queries", params={"q": marker}).json()
    assert hers["total"] == 0, hers
    # bob still finds his own query among his.
    assert user_api("bob")("GET", "/queries", params={"q": marker}).json()["total"] == 1


# -- the ingest door
def test_the_ingest_door_refuses_without_the_token(settings, spaces):
    url = settings.query_history_ingest_uri
    fake = {
        "metadata": {
            "queryId": f"fake_{uuid.uuid4().hex[:8]}",
            "query": "SELECT 1",
            "queryState": "FINISHED",
            "tables": [{"catalog": "iceberg", "schema": spaces["sa"], "table": "x"}],
        },
        "context": {"user": "alice"},
        "statistics": {},
        "createTime": "2026-01-01T00:00:00Z",
    }
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "token wrong"},
        {"Authorization": "Bearer " + settings.credentials.query_history_token.get_secret_value()[:-1]},
    ):
        r = requests.post(url, json=fake, headers=headers, timeout=30)
        assert r.status_code == 401, (headers, r.status_code)
    # Through the hub's proxy, a hub user's login does not open it either.
    r = requests.post(f"{settings.hub_url}/services/workspaces/trino/events", json=fake, timeout=30)
    assert r.status_code == 401
    assert settings.credentials.query_history_token.get_secret_value(), "the lab has a token"


def _post(settings, body: dict) -> requests.Response:
    token = settings.credentials.query_history_token.get_secret_value()
    return requests.post(
        settings.query_history_ingest_uri, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_events_twice_and_out_of_order_end_in_one_entry(settings, spaces, user_api):
    # As Trino's retries can deliver them: the completed event first, then the created one, then both again.
    query_id = f"test_{uuid.uuid4().hex[:12]}"
    table = {"catalog": "iceberg", "schema": spaces["sa"], "table": "t"}
    context = {"user": "alice", "catalog": "iceberg", "schema": spaces["sa"], "source": "test"}
    created = {
        "metadata": {"queryId": query_id, "query": f"SELECT 1 -- {query_id}", "queryState": "QUEUED", "tables": []},
        "context": context,
        "createTime": "2026-01-02T03:04:05.123Z",
    }
    completed = {
        "metadata": {**created["metadata"], "queryState": "FINISHED", "tables": [table]},
        "context": context,
        "statistics": {"wallTime": 1.5, "cpuTime": 0.25, "queuedTime": 0.001, "outputRows": 7, "outputBytes": 70},
        "ioMetadata": {"inputs": [{"catalogName": "iceberg", "schema": spaces["sa"], "table": "t"}]},
        "createTime": "2026-01-02T03:04:05.123Z",
        "executionStartTime": "2026-01-02T03:04:05.200Z",
        "endTime": "2026-01-02T03:04:06.623Z",
    }
    for body in (completed, created, completed, created):
        assert _post(settings, body).status_code == 204
    listed = user_api("alice")("GET", f"/workspaces/{spaces['a']}/queries", params={"q": query_id}).json()
    assert listed["total"] == 1, listed
    (entry,) = listed["items"]
    assert entry["state"] == "FINISHED" and entry["rows"] == 7 and entry["elapsed_ms"] == 1500
    assert entry["tables_read"] == [f"iceberg.{spaces['sa']}.t"] and entry["created"].startswith("2026-01-02T03:04:05")
    # A created event of a query whose completed event is in changes nothing; the same completed event again neither.
    assert _post(settings, {**created, "context": {**context, "source": "other"}}).status_code == 204
    again = user_api("alice")("GET", f"/workspaces/{spaces['a']}/queries/{query_id}").json()
    assert again["source"] == "test" and again == {**entry, "page_url": again["page_url"]}
    # What is not an event is refused with one sentence, and Trino does not retry a 4xx.
    r = _post(settings, {"metadata": {"queryId": query_id}})
    assert r.status_code == 422 and "metadata' and 'context'" in r.json()["detail"]


def test_query_text_is_shown_as_text(alices_queries, spaces, user_api):
    evil = "<img src=x onerror=alert(1)>"
    id_, rows = run(spaces["alice"], f"SELECT '{evil}' AS x -- {alices_queries['marker']}-evil")
    assert rows == [[evil]]
    alice = user_api("alice")
    entries(alice, spaces["a"], f"{alices_queries['marker']}-evil", 1)
    pages = alice.base.removesuffix("/api")
    for page in (f"/w/{spaces['a']}/queries?q={alices_queries['marker']}-evil", f"/w/{spaces['a']}/queries/{id_}"):
        html = alice.http.get(pages + page, timeout=60).text
        assert evil not in html and "&lt;img src=x onerror=alert(1)&gt;" in html, page


def test_the_ingest_door_takes_no_more_than_its_limit(settings):
    token = settings.credentials.query_history_token.get_secret_value()
    r = requests.post(
        settings.query_history_ingest_uri,
        data=b"{" + b" " * (17 * 1024 * 1024) + b"}",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413
    r = requests.post(
        settings.query_history_ingest_uri, data=b"{not json", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert r.status_code == 400 and "not JSON" in r.json()["detail"]


def test_a_notebook_user_cannot_read_the_ingest_token(settings, lab):
    if not settings.run_as_os_users:
        pytest.skip("servers do not run as OS users here")
    try:
        user = pwd.getpwnam("agp-alice")
    except KeyError:
        pytest.skip("agp-alice has no OS account yet (made when alice's first server starts)")
    token = settings.credentials.query_history_token.get_secret_value()
    trino = psutil.Process(lab.status()["services"]["trino"]["pid"])
    service = [p for p in psutil.process_iter(["cmdline"]) if "agp.hub.service" in " ".join(p.info["cmdline"] or [])]
    places = [
        settings.keys_dir / "query-history.token",
        settings.lab_dir / "trino" / "etc" / "event-listener.properties",
        lab.paths.hub_settings,
        lab.paths.supervisor_conf,
        *(Path(f"/proc/{p.pid}/environ") for p in [trino, *trino.children(recursive=True), *service]),
    ]
    for place in places:
        r = subprocess.run(
            ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "cat", str(place)],
            capture_output=True,
        )
        assert r.returncode != 0 and token.encode() not in r.stdout, f"agp-alice reads {place}"
    for p in [trino, *service]:
        assert token not in " ".join(p.cmdline()), "the token is on a command line (world-readable)"


# -- nothing lost when the service restarts
def _service_pid(settings) -> int:
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == settings.ports.workspaces and conn.status == psutil.CONN_LISTEN:
            return conn.pid
    raise AssertionError("nothing listens on the workspace service's port")


def test_killing_the_service_during_a_batch_loses_no_event(spaces, settings, user_api):
    marker = f"qh-batch-{uuid.uuid4().hex[:8]}"
    alice = spaces["alice"]
    alice.get("trino")  # a credential before the service goes away (the queries need no catalog)
    count, killed = 30, None
    ids = []
    for i in range(count):
        if i == 8:
            killed = _service_pid(settings)
            os.kill(killed, signal.SIGKILL)
        query_id, rows = run(alice, f"SELECT {i} -- {marker}")
        assert query_id, rows
        ids.append(query_id)
    # The hub starts its managed service again; the listener's retries deliver what waited meanwhile.
    wait_until(
        lambda: requests.get(settings.url("workspaces", "/services/workspaces/health"), timeout=5).raise_for_status(),
        timeout=120,
    )
    assert _service_pid(settings) != killed, "the service did not come back as a new process"
    seen = entries(user_api("alice"), spaces["a"], marker, count)
    assert len(seen) == count, f"{len(seen)} entries for {count} queries"
    assert sorted(e["query_id"] for e in seen) == sorted(ids)
    assert all(e["user"] == "alice" and e["workspace"] == spaces["a"] for e in seen)


def test_entries_older_than_the_retention_are_pruned_and_newer_kept(settings, spaces, user_api):
    # The service deletes entries older than query_history_days once an hour; here its prune runs on the lab's
    # database at once, between an entry of a query that ended long ago and one of today's.
    from datetime import datetime, timezone

    from sqlalchemy.orm import Session

    from agp.hub import db
    from agp.hub.history import store as history_store

    context = {"user": "alice", "catalog": "iceberg", "schema": spaces["sa"], "source": "test"}
    old, new = f"test_old_{uuid.uuid4().hex[:10]}", f"test_new_{uuid.uuid4().hex[:10]}"
    today = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for query_id, when in ((old, "2019-03-04T05:06:07Z"), (new, today)):
        event = {
            "metadata": {"queryId": query_id, "query": f"SELECT 1 -- {query_id}", "queryState": "FINISHED"},
            "context": context,
            "createTime": when,
            "endTime": when,
        }
        assert _post(settings, event).status_code == 204
    alice = user_api("alice")
    assert alice("GET", f"/workspaces/{spaces['a']}/queries/{old}").status_code == 200
    engine = db.make_engine(settings.db_url)
    try:
        with Session(engine) as s:
            assert history_store.prune(s, settings.query_history_days) >= 1
    finally:
        engine.dispose()
    assert alice("GET", f"/workspaces/{spaces['a']}/queries/{old}").status_code == 404
    assert alice("GET", f"/workspaces/{spaces['a']}/queries/{new}").status_code == 200
