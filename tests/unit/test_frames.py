"""The pure parts of building DataFrames column by column: names, statement matching, chunking, head tracking."""

from __future__ import annotations

from agp.kernels import frames


def test_duplicate_column_names_are_kept_apart():
    assert frames.unique_names(["x", "y", "x", "x"]) == ["x", "y", "x_1", "x_2"]


def test_a_statement_matches_the_query_whatever_its_spacing_and_semicolon():
    class Query:
        query = "SELECT a,\n  b FROM t;"

    assert frames._same(Query(), "SELECT a, b FROM t")
    assert not frames._same(Query(), "SELECT a FROM t")
    assert not frames._same(None, "SELECT 1")


def test_chunks_cover_every_row_once():
    rows = iter([[i] for i in range(250)])
    chunks = list(frames._chunks(rows, size=100))
    assert [len(c) for c in chunks] == [100, 100, 50]
    assert [r[0] for c in chunks for r in c] == list(range(250))
    assert list(frames._chunks(None)) == []


class RawCursor:
    def __init__(self, rows):
        self.rows = list(rows)

    def fetchone(self):
        return self.rows.pop(0) if self.rows else None

    def fetchmany(self, size=None):
        out, self.rows = self.rows[: size or 1], self.rows[size or 1 :]
        return out

    def fetchall(self):
        out, self.rows = self.rows, []
        return out


def test_the_cursor_remembers_only_a_small_head():
    rows = frames.HEAD + 36
    cursor = frames.Cursor(RawCursor([[i] for i in range(rows)]))
    assert cursor.fetchmany(2) == [[0], [1]] and cursor.head == [[0], [1]] and cursor.handed_out == 2
    assert next(iter(cursor)) == [2]
    cursor.fetchall()
    assert cursor.handed_out == rows and len(cursor.head) == 3, "past HEAD rows, nothing more is kept"
    assert cursor.fetchone() is None


def test_a_row_limit_cuts_the_chunks_and_reads_none_past_it():
    read = []

    def chunks():
        for i in range(5):
            read.append(i)
            yield [[i * 10 + j] for j in range(10)]

    assert [len(c) for c in frames._limited(chunks(), 25)] == [10, 10, 5]
    assert read == [0, 1, 2]
    read.clear()
    assert list(frames._limited(chunks(), 0)) == [] and read == [], "nothing is read once the head has the limit"


def test_only_statements_that_read_are_run_again_for_a_result_set():
    for sql in ("SELECT 1", " with x AS (SELECT 1) SELECT * FROM x", "(SELECT 1)", "SHOW TABLES", "VALUES 1"):
        assert frames._READS.match(sql), sql
    for sql in ("INSERT INTO t SELECT 1", "CREATE TABLE t AS SELECT 1", "DELETE FROM t", "EXECUTE IMMEDIATE 'x'"):
        assert not frames._READS.match(sql), sql


def test_a_statement_with_named_parameters_matches_what_the_driver_ran():
    assert frames._same_bound("SELECT * FROM t WHERE x > ? AND y = ?", "SELECT * FROM t\nWHERE x > :x AND y = :y;")
    assert not frames._same_bound("SELECT * FROM t WHERE x > ?", "SELECT * FROM u WHERE x > :x")
    assert not frames._same_bound(None, "SELECT 1")
    assert frames._same_bound("SELECT CAST(x AS varchar) FROM t", "SELECT CAST(x AS varchar) FROM t")
