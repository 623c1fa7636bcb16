"""The first ``%sql`` of a fresh kernel does only what it must: one statement in Trino, no plotting or Spark loaded.

How fast it is against the raw ``trino`` client is ``tests/bench/bench_notebook.py --first-query``.
"""

from __future__ import annotations

import pytest
from kernelclient import gather, workspace_kernel

pytestmark = pytest.mark.integration

# Records every statement the kernel's trino client sends (the client's own method, wrapped; nothing is mocked).
RECORD = """
import sys, trino.client
sent = []
_post = trino.client.TrinoRequest.post
def _recording_post(self, sql, *args, **kwargs):
    sent.append(sql)
    return _post(self, sql, *args, **kwargs)
trino.client.TrinoRequest.post = _recording_post
"""


def ok(kc, code: str) -> str:
    text: list[str] = []
    errors: list[dict] = []
    kc.execute_interactive(code, output_hook=lambda msg: gather(msg, text, errors), timeout=120)
    assert not errors, (code, [e["evalue"] for e in errors])
    return "".join(text)


def test_the_first_sql_sends_its_statement_alone_and_loads_no_plotting_or_spark(tmp_path, user_api, hub_url):
    token = user_api("alice").http.headers["Authorization"].split()[1]
    with workspace_kernel(tmp_path, hub_url, token) as kc:
        ok(kc, RECORD)
        assert "1234" in ok(kc, "%sql SELECT 1234 AS n")
        # The Trino dialect's SELECT version() (asked by jupysql when it connects) is not sent.
        assert ok(kc, "print(sent)").strip() == "['SELECT 1234 AS n']"
        loaded = ok(kc, "print(sorted(m for m in ('pyspark', 'matplotlib') if m in sys.modules))")
        assert loaded.strip() == "[]"
        # They come when used: %sqlplot draws with matplotlib, as jupysql documents.
        ok(kc, "%sqlplot histogram --table meter_readings --column reading_kwh")
        assert ok(kc, "print('matplotlib' in sys.modules)").strip() == "True"
