"""The result grid's kernel side through a real "Python 3 (Antigravity)" kernel on the lab's Trino: a %sql result's
output carries the grid's MIME type beside jupysql's table, and the grid's comm serves a later row range, a sorted
and filtered view and a Parquet file that pyarrow reads back; the value of the cell stays what jupysql returns."""

from __future__ import annotations

import io
import uuid

import pyarrow.parquet as pq
import pytest
from kernelclient import workspace_kernel

from agp.kernels.grid import COMM_TARGET, MIME

pytestmark = pytest.mark.integration

QUERY = (
    "SELECT x, 'n' || CAST(x % 7 AS varchar) AS name, x * 0.5 AS half, date '2024-01-01' + x * interval '1' day AS day "
    "FROM UNNEST(sequence(1, 5000)) AS t(x)"
)


@pytest.fixture
def kc(tmp_path_factory, user_api, hub_url):
    token = user_api("alice").http.headers["Authorization"].split()[1]
    with workspace_kernel(tmp_path_factory.mktemp("jupyter-data"), hub_url, token) as client:
        yield client


def execute(kc, code: str) -> list[dict]:
    """Run ``code``; every IOPub message of it (an error fails the test)."""
    messages: list[dict] = []
    kc.execute_interactive(code, output_hook=messages.append, timeout=300)
    errors = [m["content"]["evalue"] for m in messages if m["msg_type"] == "error"]
    assert not errors, errors
    return messages


def result_of(messages: list[dict]) -> dict:
    return next(m["content"]["data"] for m in messages if m["msg_type"] == "execute_result")


class GridComm:
    """The grid's side of the comm, as results.ts speaks it."""

    def __init__(self, kc, result: str):
        self.kc, self.comm_id, self.number = kc, uuid.uuid4().hex, 0
        ready = self._send(
            "comm_open", {"comm_id": self.comm_id, "target_name": COMM_TARGET, "data": {"result": result}}
        )
        self.ready = ready["data"]["ready"]

    def _send(self, kind: str, content: dict) -> dict:
        msg = self.kc.session.msg(kind, content)
        self.kc.shell_channel.send(msg)
        while True:  # the kernel's answer is a comm_msg on IOPub, a child of this message
            reply = self.kc.get_iopub_msg(timeout=300)
            ours = (
                reply["msg_type"] == "comm_msg" and reply["content"]["comm_id"] == self.comm_id
            )  # not a progress bar's
            if ours and reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return {**reply["content"], "buffers": reply.get("buffers", [])}

    def request(self, **data) -> dict:
        self.number += 1
        reply = self._send("comm_msg", {"comm_id": self.comm_id, "data": {**data, "request": self.number}})
        assert reply["data"]["reply"] == self.number
        return reply


def test_a_sql_result_shows_in_the_grid_and_its_comm_serves_the_rest(kc):
    data = result_of(execute(kc, f"%sql {QUERY}"))
    assert {MIME, "text/html", "text/plain"} <= set(data)  # jupysql's table stays for nbconvert and GitHub
    assert "<table>" in data["text/html"]
    table = data[MIME]
    assert [(c["name"], c["type"], c["kind"]) for c in table["columns"]] == [
        ("x", "bigint", "number"),
        ("name", "varchar", "text"),
        ("half", "decimal(20, 1)", "number"),
        ("day", "date", "date"),
    ]
    assert table["embedded"] == len(table["rows"]) == 200 and table["total"] is None
    assert table["rows"][0] == [1, "n1", "0.5", "2024-01-02"]

    comm = GridComm(kc, table["result"])
    assert comm.ready
    later = comm.request(op="rows", result=table["result"], offset=4990, limit=50)["data"]
    assert [r[0] for r in later["rows"]] == list(range(4991, 5001)) and later["total"] == 5000
    view = comm.request(
        op="rows",
        result=table["result"],
        offset=0,
        limit=2,
        sort=[{"colId": "c3", "sort": "desc"}],
        filter={"c1": {"filterType": "text", "type": "equals", "filter": "n3"}},
    )["data"]
    assert view["rows"] == [[4994, "n3", "2497.0", "2037-09-03"], [4987, "n3", "2493.5", "2037-08-27"]]
    assert view["total"] == 714
    parquet = comm.request(op="download", format="parquet", result=table["result"])
    read = pq.read_table(io.BytesIO(parquet["buffers"][0]))
    assert read.num_rows == 5000 and read.column_names == ["x", "name", "half", "day"]
    assert read.column("x").to_pylist()[:3] == [1, 2, 3]

    # The value of the cell is jupysql's ResultSet, whole: what the grid read is read in it.
    assert "5000" in "".join(m["content"].get("text", "") for m in execute(kc, "print(len(_))"))
    assert not GridComm(kc, "not-a-result").ready


def test_an_autopandas_frame_is_still_a_dataframe_and_only_it_gets_the_grid(kc):
    execute(kc, "%config SqlMagic.autopandas = True")
    execute(kc, f"df = %sql {QUERY} LIMIT 3")
    types = "".join(m["content"].get("text", "") for m in execute(kc, "print(type(df).__name__, df.attrs)"))
    assert types.startswith("DataFrame {'trino_types': ['bigint', 'varchar', 'decimal(20, 1)', 'date']}"), types
    shown = result_of(execute(kc, "df"))
    assert shown[MIME]["total"] == 3 and shown[MIME]["columns"][2]["type"] == "decimal(20, 1)"
    assert MIME not in result_of(execute(kc, "df.head(2)"))  # a frame derived from it: pandas' own display
    execute(kc, "%config ResultGrid.enabled = False")
    assert set(result_of(execute(kc, "df"))) == {"text/html", "text/plain"}
