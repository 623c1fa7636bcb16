"""Spark in one call, against the real catalog (through the workspace service), MinIO and Trino."""

from __future__ import annotations

import pytest

from agp.kernels.credentials import BrokerClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def alice(user_api, hub_url) -> BrokerClient:
    token = user_api("alice").http.headers["Authorization"].split()[1]
    return BrokerClient(f"{hub_url}/services/workspaces", token, "demo")


@pytest.fixture(scope="module")
def session(alice):
    from agp.kernels import spark

    s = spark(alice)
    yield s
    from agp.kernels.spark_session import _stop

    _stop()


def test_one_call_gives_a_session_on_the_workspace_namespace(session, alice):
    from agp.kernels import spark

    assert spark(alice) is session, "a second call returns the same session"
    assert session.catalog.currentDatabase() == "demo"
    assert session.sql("SELECT count(*) FROM meter_readings").collect()[0][0] == 5


def test_spark_writes_what_trino_reads_and_the_reverse(session, alice):
    from agp.kernels.credentials import trino_connect

    session.sql("DROP TABLE IF EXISTS spark_written")
    session.sql(
        "CREATE TABLE spark_written USING iceberg AS SELECT city, sum(reading_kwh) AS kwh "
        "FROM meter_readings GROUP BY city"
    ).collect()
    try:
        with trino_connect(alice) as conn:
            cur = conn.cursor()
            cur.execute("SELECT city, kwh FROM spark_written ORDER BY city")
            assert [r[0] for r in cur.fetchall()] == ["Bern", "Lima", "Oslo"]
            cur.execute("CREATE TABLE trino_written AS SELECT 42 AS answer")
            cur.fetchall()
        assert session.sql("SELECT answer FROM trino_written").collect()[0][0] == 42
    finally:
        session.sql("DROP TABLE IF EXISTS spark_written")
        session.sql("DROP TABLE IF EXISTS trino_written")


def test_another_workspace_is_out_of_reach(session, new_workspace):
    other = new_workspace()["namespace"]
    with pytest.raises(Exception) as err:
        session.sql(f"SELECT * FROM iceberg.`{other}`.anything").collect()
    assert "table_or_view_not_found" in str(err.value).lower()
