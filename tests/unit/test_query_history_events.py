"""Query history, pure parts: Trino's query events (as Trino 476's HTTP event listener posted them in the lab,
trimmed of plans and stack traces: trino_events.json) as rows, and the workspaces an entry belongs to."""

import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agp.compose import services
from agp.core.settings import Settings
from agp.hub.history import events
from agp.hub.history.events import BadEvent, attribute, parse
from agp.hub.service.trino_routes import refusal

EVENTS = json.loads((Path(__file__).parent / "trino_events.json").read_text())
WORKSPACES = {"demo": "demo", "grid_ops": "grid-ops", "finance": "finance"}


def event(name: str) -> dict:
    return copy.deepcopy(EVENTS[name])


def test_a_created_event_is_a_queued_row_without_statistics():
    e = parse(event("ctas-created"))
    assert not e.completed
    assert e.row["query_id"] == "20261202_161602_00007_v7f4f"
    assert e.row["user"] == "agp-service"
    assert e.row["state"] == "QUEUED"
    assert e.row["query"] == "CREATE TABLE iceberg.demo.hist_probe AS SELECT 1 AS a, 'x' AS b"
    assert e.row["created"] == datetime(2026, 12, 2, 16, 16, 2, 464000, tzinfo=timezone.utc)
    assert e.row["source"] == "trino-python-client"
    assert "ended" not in e.row and "rows" not in e.row and "tables_read" not in e.row


def test_a_completed_select_has_its_times_rows_and_tables_read():
    e = parse(event("select-completed"))
    assert e.completed and e.row["state"] == "FINISHED"
    assert e.row["tables_read"] == ["iceberg.demo.hist_probe"]
    assert e.row["tables_written"] == []
    assert e.row["rows"] == 1
    raw = EVENTS["select-completed"]["statistics"]
    assert e.row["elapsed_ms"] == int(raw["wallTime"] * 1000)
    assert e.row["cpu_ms"] == int(raw["cpuTime"] * 1000)
    assert e.row["queued_ms"] == int(raw["queuedTime"] * 1000)
    assert e.row["ended"] > e.row["started"] >= e.row["created"]
    assert e.row.get("error_name") is None
    assert e.table_namespaces == ("demo",)


def test_a_ctas_has_its_table_written_and_the_rows_it_wrote():
    e = parse(event("ctas-completed"))
    assert e.row["tables_written"] == ["iceberg.demo.hist_probe"]
    assert e.row["tables_read"] == []
    assert e.row["rows"] == 1 and e.row["bytes"] == EVENTS["ctas-completed"]["statistics"]["writtenBytes"]
    assert e.table_namespaces == ("demo",)


def test_a_failed_query_has_its_error_and_position():
    e = parse(event("fail-completed"))
    assert e.row["state"] == "FAILED"
    assert e.row["error_name"] == "COLUMN_NOT_FOUND" and e.row["error_code"] == 47
    assert e.row["error_type"] == "USER_ERROR"
    assert e.row["error_message"] == "line 3:7: Column 'nope' cannot be resolved"
    assert (e.row["error_line"], e.row["error_column"]) == (3, 7)
    syntax = parse(event("syntax-completed"))
    assert syntax.row["error_name"] == "SYNTAX_ERROR"
    assert (syntax.row["error_line"], syntax.row["error_column"]) == (1, 1)


def test_tables_behind_a_view_count_as_read():
    body = event("select-completed")
    body["ioMetadata"]["inputs"] = []
    body["metadata"]["tables"].append(
        {"catalog": "iceberg", "schema": "finance", "table": "ledger", "directlyReferenced": False}
    )
    assert parse(body).row["tables_read"] == ["iceberg.demo.hist_probe", "iceberg.finance.ledger"]


@pytest.mark.parametrize(
    "value, millis",
    [(0.973, 973), (8, 8000), ("PT1.5S", 1500), ("PT2M", 120000), ("1.50s", 1500), ("250.00ms", 250), (None, None)],
)
def test_durations_in_every_form_jackson_and_airlift_write(value, millis):
    assert events._millis(value) == millis


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "JSON object"),
        ({"metadata": {}}, "'metadata' and 'context'"),
        ({"metadata": {"queryId": "x;drop"}, "context": {"user": "a"}}, "queryId"),
        ({"metadata": {"queryId": "q1"}, "context": {}}, "context.user"),
    ],
)
def test_what_is_not_an_event_is_refused_with_one_sentence(body, message):
    with pytest.raises(BadEvent, match=message):
        parse(body)


def test_hostile_field_types_are_dropped_not_trusted():
    body = event("select-completed")
    body["statistics"]["outputRows"] = "1; DROP TABLE"
    body["context"]["clientTags"] = ["a" * 1000]
    body["metadata"]["tables"] = [{"catalog": "iceberg", "schema": ["x"], "table": "t"}]
    e = parse(body)
    assert e.row["rows"] is None
    assert e.row["client_tags"] == ["a" * 255]
    assert e.row["tables_read"] == ["iceberg.demo.hist_probe"]


# -- attribution
def _attribute(body, members=(), groups=()):
    e = parse(body)
    if groups:
        e = events.Event(e.completed, e.row, e.table_namespaces, e.session_namespace, frozenset(groups))
    return attribute(e, WORKSPACES.get, lambda slug, user: (slug, user) in set(members))


def _as(name: str, user: str, schema: str | None, catalog: str = "iceberg") -> dict:
    body = event(name)
    body["context"].update(user=user, schema=schema, catalog=catalog)
    return body


def test_tables_put_a_query_in_their_workspace_whoever_ran_it():
    # bob is no member of demo: his query read demo's table, so demo's members see it (a data-access audit).
    assert _attribute(_as("select-completed", "bob", None)) == ("demo", ["demo"])


def test_the_session_schema_counts_only_for_a_member():
    failing = _as("fail-completed", "alice", "finance")  # no table: analysis failed
    assert _attribute(failing, members=[("finance", "alice")]) == ("finance", ["finance"])
    # bob sets his session schema to finance, where he is no member: finance's history does not take his query.
    assert _attribute(_as("fail-completed", "bob", "finance")) == (None, [])
    # nor does a schema of another catalog, or one that is no workspace's
    assert _attribute(_as("fail-completed", "alice", "finance", catalog="system"), [("finance", "alice")]) == (None, [])
    assert _attribute(_as("fail-completed", "alice", "information_schema"), [("finance", "alice")]) == (None, [])


def test_a_query_across_workspaces_is_in_each_and_shown_under_its_session_schema():
    body = _as("select-completed", "alice", "finance")
    body["metadata"]["tables"].append({"catalog": "iceberg", "schema": "grid_ops", "table": "meters"})
    shown, visible = _attribute(body, members=[("finance", "alice")])
    assert shown == "finance" and visible == ["demo", "finance", "grid-ops"]


def test_what_the_client_sets_freely_decides_nothing():
    body = _as("select-completed", "bob", None)
    body["context"].update(source="finance", clientTags=["workspace=finance"], sessionProperties={"x": "finance"})
    assert _attribute(body) == ("demo", ["demo"])


# -- the listener's configuration and the ingest door's token check
def test_the_event_listener_posts_created_and_completed_events_with_the_token_and_retries():
    props = services.trino_event_listener("http://svc:8091/services/workspaces/trino/events")
    assert props["event-listener.name"] == "http"
    assert props["http-event-listener.log-created"] == props["http-event-listener.log-completed"] == "true"
    assert props["http-event-listener.connect-ingest-uri"] == "http://svc:8091/services/workspaces/trino/events"
    assert props["http-event-listener.connect-http-headers"] == "Authorization:Bearer ${ENV:AGP_QUERY_HISTORY_TOKEN}"
    # Trino's schedule (HttpEventListener.nextDelay): retry-delay, then times backoff-base, at most max-delay.
    delay, total = 1.0, 0.0
    for _ in range(int(props["http-event-listener.connect-retry-count"])):
        total += delay
        delay = min(delay * float(props["http-event-listener.connect-backoff-base"]), 10.0)
    assert props["http-event-listener.connect-max-delay"] == "10s"
    assert total >= 180, f"the listener gives up after {total} s: a restart of the service or its database loses events"


def test_the_lab_writes_the_listener_config_and_keeps_the_token_out_of_the_file(tmp_path):
    s = Settings(lab_dir=tmp_path / "lab", cache_dir=tmp_path / "cache")
    s.credentials.query_history_token = "tok-123"
    p = services.LabPaths.of(s)
    files = services.trino_files(s, p)
    text = files[p.trino / "etc" / "event-listener.properties"]
    assert "connect-ingest-uri=http://127.0.0.1:8091/services/workspaces/trino/events" in text
    assert "tok-123" not in "".join(files.values())


def test_the_ingest_token_is_compared_and_an_empty_one_refuses_all():
    assert refusal("Bearer tok", "tok") is None
    assert refusal("Bearer tok", "") is not None
    assert refusal("Bearer wrong", "tok") is not None
    assert refusal(None, "tok") is not None


ROOT = Path(__file__).resolve().parents[2]


def _keyvalues(lines) -> dict[str, str]:
    return dict(ln.strip().split("=", 1) for ln in lines if "=" in ln and not ln.strip().startswith("#"))


def test_compose_and_the_chart_configure_the_listener_as_the_lab():
    lab = services.trino_event_listener("URI")
    compose = _keyvalues((ROOT / "compose" / "docker" / "trino" / "event-listener.properties").read_text().splitlines())
    chart_text = (ROOT / "helm" / "antigravity" / "templates" / "trino-config.yaml").read_text()
    block = chart_text.split("event-listener.properties: |")[1].split("iceberg.properties: |")[0]
    chart = _keyvalues(block.splitlines())
    uri = "http-event-listener.connect-ingest-uri"
    assert compose[uri] == "http://hub:8091/services/workspaces/trino/events"
    assert chart[uri] == "http://{{ $hub }}:8091/services/workspaces/trino/events"
    for theirs in (compose, chart):
        assert {k: v for k, v in theirs.items() if k != uri} == {k: v for k, v in lab.items() if k != uri}
    # The coordinator has the token in its environment, from the chart's Secret; the hub mounts it.
    trino = (ROOT / "helm" / "antigravity" / "templates" / "trino.yaml").read_text()
    env = "name: AGP_QUERY_HISTORY_TOKEN\n              valueFrom: {secretKeyRef: {name: {{ $secret }}, key: "
    assert env + "query-history.token}}" in trino
    assert "/config/event-listener.properties /etc/trino/" in trino
    assert '"query-history.token"' in (ROOT / "helm" / "antigravity" / "templates" / "hub.yaml").read_text()


def test_the_trino_image_carries_the_listener_plugin():
    from agp.core import versions

    text = (ROOT / "images" / "trino" / "Dockerfile").read_text()
    assert versions.TRINO_SERVER_FULL.sha256 in text
    assert "trino-server/${TRINO_VERSION}/trino-server-${TRINO_VERSION}.tar.gz" in text
    assert versions.TRINO_HTTP_EVENT_LISTENER_DIR in text
