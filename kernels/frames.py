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
import re
import weakref
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

# Rows a cursor remembers having handed out: jupysql reads two before it asks for the frame, and the result grid
# the rows it embeds (agp.kernels.grid, ResultGrid.embed_rows), so that a frame made after it takes the query over.
HEAD = 256

# Trino types whose JSON value is already the Python value.
_AS_IS = {"boolean", "tinyint", "smallint", "integer", "bigint", "varchar", "char", "json"}
_FLOAT = {"double", "real"}  # JSON numbers, or the strings "NaN", "Infinity", "-Infinity"
_NESTED = {"array", "map", "row"}


# Statements that only read: a result a DataFrame took over may be run again for the rows jupysql asks for after.
_READS = re.compile(r"^\s*(\(\s*)*(select|with|values|table|show|describe|explain)\b", re.I)


class Cursor:
    """A ``trino`` cursor that remembers the first rows it handed out (everything else is the cursor's own).

    Once a DataFrame has taken over its result (:func:`read_columns`), the rows jupysql's ResultSet asks for
    afterwards (``len(result)``, iterating it, ``result.dict()``) come from the same query run again, past the rows
    it already has, if the statement only reads; as jupysql's own native path (DuckDB's) runs it again.
    """

    def __init__(self, cursor: Any):
        self._cursor = cursor
        self.head: list = []
        self.handed_out = 0
        self.taken_at: int | None = None  # rows handed out when a DataFrame took the result over
        self._again: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    operation: str | None = None  # what was executed, with its bind markers, and its parameters
    params: Any = None

    def execute(self, operation: str, params: Any = None) -> Any:
        self.operation, self.params = operation, params
        self._cursor.execute(operation, params) if params else self._cursor.execute(operation)
        return self

    def _rest(self) -> Any:
        """The cursor the remaining rows come from: this one, or the query run again once a frame took it."""
        if self.taken_at is None:
            return self._cursor
        if self._again is None:
            query = self._cursor._query
            text = query.query if query is not None else ""
            if not _READS.match(text or ""):
                return _Exhausted()
            import trino

            # A plain cursor of the same connection: not the kernel's latest query, which jupysql may adopt next.
            again = trino.dbapi.Connection.cursor(self._cursor.connection)
            again.execute(text)
            for _ in range(self.taken_at):
                if again.fetchone() is None:
                    break
            self._again = again
        return self._again

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
        row = self._rest().fetchone()
        if row is not None:
            self._remember([row])
        return row

    def fetchmany(self, size: int | None = None):
        return self._remember(self._rest().fetchmany(size))

    def fetchall(self):
        return self._remember(self._rest().fetchall())


class _Exhausted:
    """What a result that wrote something has left after a DataFrame took it: nothing."""

    def fetchone(self):
        return None

    def fetchmany(self, size: int | None = None):
        return []

    def fetchall(self):
        return []


class FrameConnection:
    """Mixed into the kernel's ``trino`` connection: ``execute``/``df``/``pl`` as jupysql's DataFrame path uses them."""

    _last: weakref.ref | None = None
    _adopted: Cursor | None = None
    # jupysql's ``autolimit`` (0: none), read when a frame is made: jupysql applies it only to the rows it fetches.
    row_limit: Callable[[], int] | None = None
    last_types: list[str] = []  # Trino's types of the columns of the last frame made

    def remember(self, cursor: Cursor) -> None:
        self._last = weakref.ref(cursor)

    def execute(self, statement: str) -> Any:
        """Adopt the query jupysql just ran for ``statement`` (if it is still whole); run it again otherwise."""
        last = self._last() if self._last is not None else None
        bound = last is not None and last.params and _same_bound(last.operation, statement)
        if last is not None and (_same(last._query, statement) or bound) and last.handed_out == len(last.head):
            self._adopted = last
        else:
            cursor = self.cursor()  # type: ignore[attr-defined]
            if bound:  # jupysql's statement has named parameters (``:rating``): run it with the values it had
                cursor.execute(last.operation, last.params)
            else:
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
        limit = self.row_limit() if self.row_limit is not None else 0
        self.last_types = [str(d[1]) for d in cursor.description or []]
        return columns(cursor), read_columns(cursor, limit)

    def df(self) -> Any:
        import pandas as pd

        names, data = self._take()
        # Built by position, then named: repeated column names stay as they are, as in pandas.DataFrame(rows, ...).
        frame = pd.DataFrame(dict(enumerate(data)))
        frame.columns = names if len(frame.columns) == len(names) else frame.columns
        if len(self.last_types) == len(frame.columns):
            frame.attrs["trino_types"] = list(self.last_types)  # the result grid shows them (agp.kernels.grid)
        return frame

    def pl(self) -> Any:
        import polars as pl

        names, data = self._take()
        return pl.DataFrame(dict(zip(unique_names(names), data, strict=True)), strict=False)


def _same(query: Any, statement: str) -> bool:
    def norm(sql: str) -> str:
        return " ".join(sql.split()).rstrip(";").strip()

    return query is not None and norm(query.query) == norm(statement)


_MARKER = re.compile(r"(?<![:\w]):\w+|%\(\w+\)s|\?")


def _same_bound(operation: str | None, statement: str) -> bool:
    """Whether ``operation`` (as the driver got it, ``?`` for each value) is ``statement`` (as jupysql has it,
    ``:name`` for each value), bind markers aside (pure)."""

    def norm(sql: str) -> str:
        return " ".join(_MARKER.sub("?", sql).split()).rstrip(";").strip()

    return operation is not None and norm(operation) == norm(statement)


def unique_names(names: list[str]) -> list[str]:
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


def read_columns(cursor: Cursor, limit: int = 0) -> list[list]:
    """Every column of the cursor's result: the rows it already handed out, then the rest read raw and converted
    once per column. With a ``limit``, its first ``limit`` rows, and the query is cancelled in Trino if it has
    more."""
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
    head, rest = cursor.head, _chunks(cursor._cursor._iterator)
    if limit:
        head, rest = head[:limit], _limited(rest, limit - len(head[:limit]))
    chunks = itertools.chain([head], rest)
    # Millions of new objects and no garbage among them: the cyclic collector would only walk them, again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for chunk in chunks:
            if chunk:
                for column, values in zip(data, zip(*chunk, strict=True), strict=True):
                    column.extend(values)
            if chunk is not head:
                cursor.handed_out += len(chunk)
    finally:
        if collecting:
            gc.enable()
    if limit and not query.finished:
        try:
            cursor.cancel()  # the rest is not wanted
        except Exception:
            log.debug("could not cancel the rest of a limited query", exc_info=True)
    cursor.taken_at = len(cursor.head) if cursor.handed_out > len(cursor.head) or limit else None
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


def _limited(chunks: Iterator[list], limit: int) -> Iterator[list]:
    """The chunks, cut after their first ``limit`` rows (pure)."""
    left = limit
    while left > 0:  # checked before a chunk is read: none is read past the limit
        chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk if len(chunk) <= left else chunk[:left]
        left -= len(chunk)


def _chunks(rows: Iterator | None, size: int = 100_000) -> Iterator[list]:
    if rows is None:
        return
    while chunk := list(itertools.islice(rows, size)):
        yield chunk
