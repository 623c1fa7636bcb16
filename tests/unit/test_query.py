"""Progress text, the tracker's show/update/cancel rules and short error messages (pure logic)."""

from __future__ import annotations

import pytest
import requests
import trino

from agp.kernels import query
from agp.kernels.credentials import BrokerError


def test_progress_uses_trinos_percentage_then_splits():
    percent, text = query.progress(
        {
            "state": "RUNNING",
            "progressPercentage": 42.4,
            "processedRows": 1234567,
            "processedBytes": 3 * 1024**2,
            "elapsedTimeMillis": 2500,
            "queryId": "q1",
        }
    )
    assert percent == 42
    assert text == "running 42% · 1,234,567 rows · 3.0 MB · 2.5 s · q1"
    assert query.progress({"state": "RUNNING", "totalSplits": 8, "completedSplits": 2})[0] == 25
    assert query.progress({"state": "FINISHED", "progressPercentage": 99})[0] == 100
    assert query.progress({})[1].startswith("queued 0% · 0 rows · 0 B")


class Bar:
    def __init__(self):
        self.updates = []
        self.closed = False

    def update(self, stats, cancelled=False):
        self.updates.append((stats["state"], cancelled))

    def close(self):
        self.closed = True


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def test_the_bar_shows_only_for_long_queries_and_updates_at_most_every_interval():
    bars, clock = [], Clock()
    tracker = query.Tracker(show_after=1.0, interval=0.25, make_bar=lambda: bars.append(Bar()) or bars[-1], clock=clock)
    tracker.callback({"queryId": "fast", "state": "RUNNING", "elapsedTimeMillis": 200})
    tracker.callback({"queryId": "fast", "state": "FINISHED", "elapsedTimeMillis": 300})
    assert bars == [], "a quick query shows nothing"

    tracker.callback({"queryId": "slow", "state": "RUNNING", "elapsedTimeMillis": 1200})
    tracker.callback({"queryId": "slow", "state": "RUNNING", "elapsedTimeMillis": 1300})  # too soon
    clock.now = 0.3
    tracker.callback({"queryId": "slow", "state": "RUNNING", "elapsedTimeMillis": 1500})
    tracker.callback({"queryId": "slow", "state": "FINISHED", "elapsedTimeMillis": 1510})  # terminal: always
    assert len(bars) == 1
    assert bars[0].updates == [("RUNNING", False), ("RUNNING", False), ("FINISHED", False)]


def test_a_failing_display_never_breaks_the_query():
    def broken():
        raise RuntimeError("no frontend")

    tracker = query.Tracker(make_bar=broken)
    tracker.callback({"queryId": "q", "state": "RUNNING", "elapsedTimeMillis": 5000})  # does not raise


class Query:
    def __init__(self, query_id, finished=False):
        self.query_id, self.finished, self.cancelled, self.stats = query_id, finished, False, {"state": "RUNNING"}


class Cursor:
    def __init__(self, q):
        self._query = q

    def cancel(self):
        self._query.cancelled = True


def test_cancel_running_cancels_only_unfinished_queries_and_takes_their_bars_away():
    bars = []
    tracker = query.Tracker(make_bar=lambda: bars.append(Bar()) or bars[-1])
    running, done = Cursor(Query("running")), Cursor(Query("done", finished=True))
    tracker.watch(running)
    tracker.watch(done)
    tracker.callback({"queryId": "running", "state": "RUNNING", "elapsedTimeMillis": 5000})
    assert tracker.cancel_running() == ["running"]
    assert running._query.cancelled and not done._query.cancelled
    assert [b.closed for b in bars] == [True], "the cell's one line says it; no cancelled bar above it"
    assert tracker.cancel_running() == []


def test_trino_errors_are_named_in_one_line():
    err = trino.exceptions.TrinoUserError(
        {"errorName": "SYNTAX_ERROR", "errorType": "USER_ERROR", "message": "line 1:1: mismatched input 'SELEC'"},
        query_id="20261126_1",
    )
    wrapped = RuntimeError("If using snippets ...")
    wrapped.__cause__ = err
    assert (
        query.describe_error(wrapped) == "SYNTAX_ERROR at line 1, column 1: mismatched input 'SELEC' (query 20261126_1)"
    )


def test_an_error_with_a_position_shows_the_statement_sent_with_a_caret():
    from sqlalchemy.exc import ProgrammingError

    orig = trino.exceptions.TrinoUserError(
        {
            "errorName": "COLUMN_NOT_FOUND",
            "errorType": "USER_ERROR",
            "message": "line 2:10: Column 'kwhh' cannot be resolved",
            "errorLocation": {"lineNumber": 2, "columnNumber": 10},
        },
        query_id="q2",
    )
    wrapped = RuntimeError("jupysql's hints")
    wrapped.__cause__ = ProgrammingError("SELECT 1\nORDER BY kwhh", {}, orig)
    assert query.describe_error(wrapped).splitlines() == [
        "COLUMN_NOT_FOUND at line 2, column 10: Column 'kwhh' cannot be resolved (query q2)",
        "  ORDER BY kwhh",
        "           ^",
    ]


def test_sqlalchemy_wrappers_are_unwrapped():
    from sqlalchemy.exc import ProgrammingError

    orig = trino.exceptions.TrinoUserError(
        {"errorName": "PERMISSION_DENIED", "errorType": "USER_ERROR", "message": "Access Denied: Cannot select"},
        query_id="q9",
    )
    assert query.describe_error(ProgrammingError("SELECT 1", {}, orig)).startswith("PERMISSION_DENIED: Access Denied")


@pytest.mark.parametrize(
    "error",
    [
        trino.exceptions.TrinoConnectionError("failed to execute: HTTPSConnectionPool(...): Connection refused"),
        requests.ConnectionError("HTTPSConnectionPool(host='127.0.0.1', port=8443): [Errno 111] Connection refused"),
    ],
)
def test_a_dead_trino_is_one_sentence(error):
    text = query.describe_error(error, "127.0.0.1:8443")
    assert text.startswith("Trino at 127.0.0.1:8443 does not answer (connection refused); the query did not run.")
    assert "\n" not in text


def test_broker_errors_pass_through():
    assert query.describe_error(BrokerError("No trino credentials for workspace 'x'")) == (
        "No trino credentials for workspace 'x'"
    )


def test_human_bytes():
    assert [query.human_bytes(n) for n in (0, 1023, 1024, 5 * 1024**3)] == ["0 B", "1023 B", "1.0 KB", "5.0 GB"]
