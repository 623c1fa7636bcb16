"""The pure parts of building DataFrames column by column: names, statement matching, chunking, head tracking."""

from __future__ import annotations

from agp.kernels import frames


def test_duplicate_column_names_are_kept_apart():
    assert frames._unique(["x", "y", "x", "x"]) == ["x", "y", "x_1", "x_2"]


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
    cursor = frames.Cursor(RawCursor([[i] for i in range(100)]))
    assert cursor.fetchmany(2) == [[0], [1]] and cursor.head == [[0], [1]] and cursor.handed_out == 2
    assert next(iter(cursor)) == [2]
    cursor.fetchall()
    assert cursor.handed_out == 100 and len(cursor.head) == 3, "past HEAD rows, nothing more is kept"
    assert cursor.fetchone() is None
