"""``%sql --persist``, ``--persist-replace`` and ``--append``: the DataFrame goes to Iceberg in one commit.

jupysql persists with pandas' ``to_sql``; through the ``trino`` client that is one ``INSERT`` (and one Iceberg
commit) per row, minutes for a few hundred rows. jupysql still parses the line, checks the variable and names the
table (the variable's name, lower-cased; ``schema.df`` picks the schema) and prints its message; the kernel's
connection writes the frame itself: converted to Arrow once, typed as ``to_sql`` would type it on Trino, and written
through the workspace's catalog (:func:`agp.kernels.credentials.load_catalog`, the user's own brokered access) in
one commit. A frame that cannot be converted touches nothing; a table this call made and could not fill is dropped
again, so a failed persist leaves no empty table behind.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

IF_EXISTS = ("fail", "replace", "append")


def frame_to_arrow(frame: Any, index: bool = True) -> Any:
    """``frame`` (a pandas DataFrame or Series) as an Arrow table with the columns and types ``to_sql`` would write.

    The index becomes columns as pandas writes it (``index``, or its names, or ``level_0``...); column names are
    lower-cased, as Trino stores them; integers narrower than 32 bits widen to ``integer`` and timestamps are
    microseconds (Iceberg has neither smaller integers nor nanoseconds); time deltas are nanoseconds as integers
    (pandas does the same, with a warning); columns of nothing but missing values are text. Raises ``ValueError``
    with one sentence for what ``to_sql`` refuses too (unsigned 64-bit and complex numbers) and for two columns
    whose names differ in case only.
    """
    import pandas as pd
    import pyarrow as pa

    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if index:
        frame = frame.reset_index()
    names = [str(c).lower() for c in frame.columns]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"Column names must differ in more than case; {', '.join(twice)} is given twice.")
    arrays = []
    for name, (_, column) in zip(names, frame.items(), strict=True):
        arrays.append(_column(name, column, pd, pa))
    return pa.Table.from_arrays(arrays, names=names)


def _column(name: str, column: Any, pd: Any, pa: Any) -> Any:
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        column = column.astype(dtype.categories.dtype)
        dtype = column.dtype
    kind = getattr(dtype, "kind", "O")
    if kind == "c":
        raise ValueError(f"Column {name!r} holds complex numbers, which no SQL table can store.")
    if kind == "u" and dtype.itemsize == 8:
        raise ValueError(f"Column {name!r} holds unsigned 64-bit integers, which no SQL table can store.")
    if kind == "m":
        warnings.warn(
            f"the 'timedelta' type is not supported, and will be written as integer values (ns frequency) to the "
            f"database (column {name!r}).",
            UserWarning,
            stacklevel=4,
        )
        return pa.array(column.astype("timedelta64[ns]").to_numpy().view("int64"), pa.int64())
    array = pa.array(column, from_pandas=True) if kind != "O" else _objects(column, pa)
    t = array.type
    if pa.types.is_integer(t) and t.bit_width < 32:
        return array.cast(pa.int32())
    if t == pa.uint32():
        return array.cast(pa.int64())
    if pa.types.is_float16(t):
        return array.cast(pa.float32())
    if pa.types.is_timestamp(t):
        return array.cast(pa.timestamp("us", tz="UTC" if t.tz else None), safe=False)
    if pa.types.is_null(t):
        return array.cast(pa.string())
    if pa.types.is_dictionary(t):
        return array.dictionary_decode()
    if pa.types.is_large_string(t) and array.nbytes < 2**31:  # pandas' own strings; one type whatever made them
        return array.cast(pa.string())
    return array


def _objects(column: Any, pa: Any) -> Any:
    """An object column: Arrow's inference, or text where the values are of mixed kinds (``to_sql``'s ``TEXT``)."""
    try:
        return pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if _missing(v) else str(v) for v in column], pa.string())


def _missing(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def unfit_columns(table: Any, data: Any) -> list[str]:
    """Why rows of Arrow schema ``data`` cannot be appended to a table of Arrow schema ``table``, column by column
    (pure; empty when they can). Missing columns are allowed (they stay empty), as are the widenings Iceberg allows."""
    import pyarrow as pa

    def same(have: Any, want: Any) -> bool:
        if have == want:
            return True
        if pa.types.is_string(want) or pa.types.is_large_string(want):
            return pa.types.is_string(have) or pa.types.is_large_string(have)
        if pa.types.is_integer(want) and pa.types.is_integer(have):
            return have.bit_width <= want.bit_width
        if pa.types.is_floating(want) and pa.types.is_floating(have):
            return have.bit_width <= want.bit_width
        return False

    misfits = []
    for field in data:
        if field.name not in table.names:
            misfits.append(f"{field.name} is no column of the table")
        elif not same(field.type, table.field(field.name).type):
            misfits.append(f"{field.name} is {table.field(field.name).type} in the table but {field.type} here")
    return misfits


def write(
    catalog: Any, namespace: str, name: str, data: Any, if_exists: str, drop: Callable[[tuple], Any] | None = None
) -> str:
    """Write the Arrow table ``data`` to ``namespace.name`` in one commit; returns what was done.

    ``if_exists`` is pandas' word: ``fail`` refuses an existing table (``FileExistsError``), ``replace`` drops it
    first (with ``drop``, the catalog's ``drop_table`` unless given), ``append`` adds to it (its schema must take the
    rows). A table made here and not filled is dropped again.
    """
    drop = drop or catalog.drop_table
    if if_exists not in IF_EXISTS:
        raise ValueError(f"if_exists must be one of {', '.join(IF_EXISTS)}, not {if_exists!r}.")
    identifier = (namespace, name)
    exists = catalog.table_exists(identifier)
    if exists and if_exists == "fail":
        raise FileExistsError(name)
    if exists and if_exists == "append":
        table = catalog.load_table(identifier)
        misfits = unfit_columns(table.schema().as_arrow(), data.schema)
        if misfits:
            raise ValueError(f"The DataFrame does not fit table {name}: {'; '.join(misfits)}.")
        table.append(data)
        return "appended"
    if exists:
        drop(identifier)
    table = catalog.create_table(identifier, schema=data.schema)
    try:
        table.append(data)
    except BaseException:
        try:
            drop(identifier)
        except Exception:
            log.warning("could not drop %s.%s after a failed persist", namespace, name, exc_info=True)
        raise
    return "replaced" if exists else "created"


@functools.cache  # one class, so that isinstance() holds across connections
def persisting_connection_class() -> type:
    """jupysql's SQLAlchemy connection whose ``to_table`` (what ``--persist`` and friends call) writes with
    :func:`write` instead of pandas' ``to_sql``."""
    from sql import display, exceptions
    from sql.connection import SQLAlchemyConnection

    class PersistingConnection(SQLAlchemyConnection):
        """The workspace's Trino for queries; its Iceberg catalog, as the same user, for persisted DataFrames.

        ``catalog`` makes the pyiceberg catalog and ``namespace`` names the default schema, both at each persist.
        """

        def __init__(
            self,
            engine: Any,
            catalog: Callable[[], Any],
            namespace: Callable[[], str],
            alias: str | None = None,
            config: Any = None,
        ):
            super().__init__(engine, alias=alias, config=config)
            self._catalog, self._namespace = catalog, namespace

        def _get_database_information(self) -> dict[str, Any]:
            """jupysql's, without the server's version: the Trino dialect asks for it with a query of its own
            (``SELECT version()``, four HTTP round trips at the first ``%sql``), and jupysql uses only the dialect
            and driver names. ``dialect.server_version_info`` still answers when asked."""
            dialect = self._connection_sqlalchemy.dialect
            return {
                "dialect": getattr(dialect, "name", None),
                "driver": getattr(dialect, "driver", None),
                "server_version_info": None,
            }

        def drop_table(self, identifier: tuple) -> None:
            """Drop through the connection's database, as pandas' ``to_sql`` did (Trino removes the files too)."""
            quoted = ".".join('"' + part.replace('"', '""') + '"' for part in identifier)
            cursor = self._connection_sqlalchemy.connection.cursor()
            cursor.execute(f"DROP TABLE {quoted}")
            cursor.fetchall()

        def to_table(self, table_name: str, data_frame: Any, if_exists: str, index: bool, schema: str | None = None):
            try:
                data = frame_to_arrow(data_frame, index=index)
            except ValueError as e:
                raise exceptions.ValueError(str(e)) from None
            namespace = schema or self._namespace()
            try:
                write(self._catalog(), namespace, table_name, data, if_exists, drop=self.drop_table)
            except ValueError as e:  # the frame does not fit the table it is appended to
                raise exceptions.ValueError(" ".join(str(e).split())[:500]) from None
            except FileExistsError:
                raise exceptions.ValueError(
                    f"Table {table_name!r} already exists. Consider using --persist-replace to drop the table "
                    "before persisting the data frame"
                ) from None
            except Exception as e:
                log.info("persisting %s.%s failed", namespace, table_name, exc_info=True)
                reason = " ".join(str(e).split())[:300] or type(e).__name__
                raise exceptions.RuntimeError(f"Could not persist {table_name!r}: {reason}") from None
            finally:
                from .sql import invalidate_server_catalog

                invalidate_server_catalog()
            display.message_success(f"Success! Persisted {table_name} to the database.")

    return PersistingConnection


def connection(engine: Any, broker: Any, alias: str) -> Any:
    """The kernel's jupysql connection on ``engine`` (Trino as the user), persisting DataFrames into the workspace's
    schema with ``broker``'s catalog access."""
    from .credentials import load_catalog

    return persisting_connection_class()(
        engine, lambda: load_catalog(broker), lambda: broker.get("trino")["schema"], alias=alias
    )
