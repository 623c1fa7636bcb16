"""jupysql's own queries on Trino: GROUP BY an alias becomes GROUP BY its position; the hook in jupysql holds."""

from __future__ import annotations

import pytest

from agp.kernels.connection import group_by_position, speak_trino

# The queries jupysql 0.11's %sqlplot histogram sends, after its sqlglot translation to Trino.
HISTOGRAM = (
    'SELECT CEIL(CAST("kwh" AS DOUBLE) / 2.5 - 0.5) * 2.5 AS bin, COUNT(*) AS count FROM t '
    'WHERE NOT "kwh" IS NULL GROUP BY bin ORDER BY bin NULLS FIRST'
)
CATEGORIES = 'SELECT "city" AS col, COUNT("city") FROM t GROUP BY col ORDER BY col'


def test_a_group_by_alias_becomes_its_position():
    assert group_by_position(HISTOGRAM) == (
        'SELECT CEIL(CAST("kwh" AS DOUBLE) / 2.5 - 0.5) * 2.5 AS bin, COUNT(*) AS count FROM t '
        'WHERE NOT "kwh" IS NULL GROUP BY 1 ORDER BY bin NULLS FIRST'
    )
    assert group_by_position(CATEGORIES) == 'SELECT "city" AS col, COUNT("city") FROM t GROUP BY 1 ORDER BY col'


def test_a_subquery_that_groups_by_an_alias_is_rewritten_too():
    query = (
        "SELECT b.bin FROM (SELECT 1 AS bin) AS b LEFT JOIN "
        "(SELECT CASE WHEN x > 1 THEN 1.5 END AS bin, COUNT(*) AS count FROM t GROUP BY bin) AS c ON b.bin = c.bin"
    )
    assert "GROUP BY 1)" in group_by_position(query)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT city, count(*) FROM t GROUP BY city",  # a column, not an alias
        "SELECT x AS city, city FROM t GROUP BY city",  # both: Trino's reading (the column) stays
        "SELECT t.x AS y FROM t GROUP BY t.y",  # qualified: a column
        "SELEC nonsense (",  # sqlglot cannot read it: Trino will say what is wrong
    ],
)
def test_everything_else_is_left_as_written(query):
    assert group_by_position(query) == query


def test_jupysqls_own_queries_pass_through_the_hook():
    """Contract with jupysql's private ``_transpile_query``: ``execute`` (its plots' and profiles' path) calls it,
    ``raw_execute`` (``%sql``'s path) does not."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from sql.connection import ConnectionManager, SQLAlchemyConnection

    seen = []

    class Made(SQLAlchemyConnection):  # as agp.kernels.persist makes one: a subclass
        def raw_execute(self, query, parameters=None, with_=None):
            seen.append(query)
            return super().raw_execute(query, parameters=parameters, with_=with_)

    conn = Made(sqlalchemy.create_engine("sqlite://"), alias="contract-test")
    try:
        assert speak_trino(conn) is conn and ConnectionManager.connections["contract-test"] is conn
        assert speak_trino(conn)._transpile_query is conn._transpile_query, "once is enough"
        grouped = conn.execute("SELECT x AS bin, count(*) AS n FROM (SELECT 1 AS x UNION ALL SELECT 1) GROUP BY bin")
        assert grouped.fetchall() == [(1, 2)] and "GROUP BY 1" in seen[-1], seen
        conn.raw_execute("SELECT x AS bin FROM (SELECT 1 AS x) GROUP BY bin").fetchall()
        assert seen[-1].endswith("GROUP BY bin"), "the user's SQL is sent as written"
    finally:
        conn.close()
