"""Query results into DataFrames column by column, without the per-value Python work that dominates large results.

jupysql builds ``%sql``'s DataFrame by iterating rows through SQLAlchemy; the ``trino`` client maps every value
through a Python mapper first. For a million rows that is most of the time. jupysql asks a connection that has a
``df()`` (or ``pl()``) method for the frame instead (DuckDB's way); :class:`FrameConnection` gives the Trino
connection those methods. They take over the query jupysql already started (it is never run twice), keep the rows
jupysql already read, read the rest without per-value mapping where Trino's JSON already is the Python value
(numbers, strings, booleans) and convert the other columns once per column.
"""

from __future__ import annotations

import gc
import itertools
import logging
import weakref
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

HEAD = 64  # rows a cursor remembers having handed out (jupysql reads two before it asks for the frame)

# Trino types whose JSON value is already the Python value.
_AS_IS = {"boolean", "tinyint", "smallint", "integer", "bigint", "varchar", "char", "json"}
_FLOAT = {"double", "real"}  # JSON numbers, or the strings "NaN", "Infinity", "-Infinity"
_NESTED = {"array", "map", "row"}


class Cursor:
    """A ``trino`` cursor that remembers the first rows it handed out (everything else is the cursor's own)."""

    def __init__(self, cursor: Any):
        self._cursor = cursor
        self.head: list = []
        self.handed_out = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self):
        return self

    def __next__(self):
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def _remember(self, rows: list) -> list:
        if self.handed_out + len(rows) <= HEAD:
            self.head.extend(rows)
        self.handed_out += len(rows)
        return rows

    def fetchone(self):
        row = self._cursor.fetchone()
        if row is not None:
            self._remember([row])
        return row

    def fetchmany(self, size: int | None = None):
        return self._remember(self._cursor.fetchmany(size))

    def fetchall(self):
        return self._remember(self._cursor.fetchall())


class FrameConnection:
    """Mixed into the kernel's ``trino`` connection: ``execute``/``df``/``pl`` as jupysql's DataFrame path uses them."""

    _last: weakref.ref | None = None
    _adopted: Cursor | None = None

    def remember(self, cursor: Cursor) -> None:
        self._last = weakref.ref(cursor)

    def execute(self, statement: str) -> Any:
        """Adopt the query jupysql just ran for ``statement`` (if it is still whole); run it again otherwise."""
        last = self._last() if self._last is not None else None
        if last is not None and _same(last._query, statement) and last.handed_out == len(last.head):
            self._adopted = last
        else:
            cursor = self.cursor()  # type: ignore[attr-defined]
            cursor.execute(statement)
            self._adopted = cursor
        return self._adopted

    def _take(self) -> tuple[list[str], list[list]]:
        cursor, self._adopted = self._adopted, None
        if cursor is None:
            cursor = self._last() if self._last is not None else None
        if cursor is None or cursor._query is None:
            raise RuntimeError("There is no query to make a DataFrame of.")
        if cursor.handed_out != len(cursor.head):
            raise RuntimeError("The query's rows were already read; run it again.")
        return columns(cursor), read_columns(cursor)

    def df(self) -> Any:
        import pandas as pd

        names, data = self._take()
        # Built by position, then named: repeated column names stay as they are, as in pandas.DataFrame(rows, ...).
        frame = pd.DataFrame(dict(enumerate(data)))
        frame.columns = names if len(frame.columns) == len(names) else frame.columns
        return frame

    def pl(self) -> Any:
        import polars as pl

        names, data = self._take()
        return pl.DataFrame(dict(zip(_unique(names), data, strict=True)), strict=False)


def _same(query: Any, statement: str) -> bool:
    def norm(sql: str) -> str:
        return " ".join(sql.split()).rstrip(";").strip()

    return query is not None and norm(query.query) == norm(statement)


def _unique(names: list[str]) -> list[str]:
    """Column names made distinct (``x``, ``x_1``, ...), as polars requires."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}_{n}")
    return out


def columns(cursor: Any) -> list[str]:
    return [d[0] for d in cursor.description or []]


def read_columns(cursor: Cursor) -> list[list]:
    """Every column of the cursor's result: the rows it already handed out, then the rest read raw and converted
    once per column."""
    import trino.mapper

    query = cursor._query
    raw_types = [c["typeSignature"]["rawType"] for c in (query.columns or [])]
    mapper = query._row_mapper
    nested = any(t in _NESTED for t in raw_types)
    if mapper is not None and not nested and isinstance(mapper, trino.mapper.RowMapper):
        # Segments and pages fetched from now on come as Trino's JSON values; the batch in hand keeps its mapping.
        query._row_mapper = trino.mapper.RowMapperFactory.NO_OP_ROW_MAPPER
    # Read in chunks and turn each into columns at once: the rows of one chunk, not of the whole result, are held
    # beside the columns.
    data: list[list] = [[] for _ in raw_types]
    chunks = itertools.chain([cursor.head], _chunks(cursor._cursor._iterator))
    # Millions of new objects and no garbage among them: the cyclic collector would only walk them, again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for chunk in chunks:
            if chunk:
                for column, values in zip(data, zip(*chunk, strict=True), strict=True):
                    column.extend(values)
            if chunk is not cursor.head:
                cursor.handed_out += len(chunk)
    finally:
        if collecting:
            gc.enable()
    if mapper is None or nested or not isinstance(mapper, trino.mapper.RowMapper):
        return data
    for i, (raw_type, value_mapper) in enumerate(zip(raw_types, mapper.columns, strict=True)):
        if raw_type in _AS_IS:
            continue
        if raw_type in _FLOAT:
            # Only the special values come as strings.
            if any(type(v) is str for v in data[i]):
                data[i] = [value_mapper.map(v) if type(v) is str else v for v in data[i]]
            continue
        # Dates, times, decimals, binary, UUIDs...: raw values are strings; the first rows are mapped already.
        data[i] = [value_mapper.map(v) if type(v) is str else v for v in data[i]]
    return data


def _chunks(rows: Iterator | None, size: int = 100_000) -> Iterator[list]:
    if rows is None:
        return
    while chunk := list(itertools.islice(rows, size)):
        yield chunk
