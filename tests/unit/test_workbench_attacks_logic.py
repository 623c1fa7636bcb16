"""Attacks on the workbench's pure logic (issue 12): what a hostile client can make the query history keep."""

import copy
import json
from pathlib import Path

from agp.hub.history.events import parse

EVENTS = json.loads((Path(__file__).parent / "trino_events.json").read_text())


def test_a_prepared_statement_keeps_its_text_not_just_execute():
    """A client that PREPAREs its SELECT and runs ``EXECUTE st USING …`` must not leave only that line in the
    workspace's history (the data-access audit): the statement's text is in the event's ``preparedQuery``."""
    body = copy.deepcopy(EVENTS["select-completed"])
    secret = "SELECT secret FROM iceberg.demo.t WHERE secret > ?"
    body["metadata"].update(query="EXECUTE st_2bd4 USING 1", preparedQuery=secret)
    text = parse(body).row["query"]
    assert text.startswith(secret)
    assert "EXECUTE st_2bd4 USING 1" in text


def test_without_a_prepared_statement_the_text_is_the_query():
    body = copy.deepcopy(EVENTS["select-completed"])
    body["metadata"]["preparedQuery"] = None
    assert parse(body).row["query"] == EVENTS["select-completed"]["metadata"]["query"]
