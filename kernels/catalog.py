"""What the catalog handlers answer, built from a pyiceberg catalog and a Trino connection (no HTTP here)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any


class TTLCache:
    """A small per-server cache of catalog answers, ``ttl`` seconds long; cleared when this server commits."""

    def __init__(self, ttl: float = 30.0):
        self.ttl = ttl
        self._data: dict[tuple, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, make: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
            if hit and hit[0] > now:
                return hit[1]
        value = make()
        with self._lock:
            self._data[key] = (now + self.ttl, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class CatalogReader:
    """What the catalog handlers and the notebook's browser read from a pyiceberg catalog: names (every page of
    them, sorted) and a table's detail."""

    def __init__(self, catalog: Any):
        self.catalog = catalog

    def namespaces(self) -> list[str]:
        return sorted(".".join(ns) for ns in self.catalog.list_namespaces())

    def tables(self, namespace: str) -> list[str]:
        return sorted(ident[-1] for ident in self.catalog.list_tables(namespace))

    def table(self, namespace: str, table: str) -> dict:
        return table_detail(self.catalog.load_table(f"{namespace}.{table}"))


def page(items: list[str], search: str = "", offset: int = 0, limit: int = 100) -> dict:
    """One page of ``items`` (sorted, filtered by a case-insensitive substring), with the total for paging."""
    matched = sorted(i for i in items if search.lower() in i.lower())
    limit = max(1, min(limit, 1000))
    offset = max(0, offset)
    return {"items": matched[offset : offset + limit], "total": len(matched), "offset": offset, "limit": limit}


def sql_type(field_type: Any) -> str:
    """The Trino SQL type of an Iceberg type, as ``DESCRIBE`` in Trino shows it (pure; Trino's Iceberg connector's
    mapping: ``long`` is ``bigint``, ``string`` is ``varchar``, ``struct`` is ``row`` ...)."""
    from pyiceberg import types as t

    simple = {
        t.BooleanType: "boolean",
        t.IntegerType: "integer",
        t.LongType: "bigint",
        t.FloatType: "real",
        t.DoubleType: "double",
        t.DateType: "date",
        t.TimeType: "time(6)",
        t.TimestampType: "timestamp(6)",
        t.TimestamptzType: "timestamp(6) with time zone",
        t.StringType: "varchar",
        t.UUIDType: "uuid",
        t.BinaryType: "varbinary",
        t.FixedType: "varbinary",
    }
    for kind, name in simple.items():
        if isinstance(field_type, kind):
            return name
    if isinstance(field_type, t.DecimalType):
        return f"decimal({field_type.precision}, {field_type.scale})"
    if isinstance(field_type, t.ListType):
        return f"array({sql_type(field_type.element_type)})"
    if isinstance(field_type, t.MapType):
        return f"map({sql_type(field_type.key_type)}, {sql_type(field_type.value_type)})"
    if isinstance(field_type, t.StructType):
        return "row(" + ", ".join(f"{quote_name(f.name)} {sql_type(f.field_type)}" for f in field_type.fields) + ")"
    return str(field_type)  # a type newer than this mapping: Iceberg's own name


PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def quote_name(name: str) -> str:
    """A SQL identifier as Trino reads it: plain lower-case names as they are, others double-quoted (pure)."""
    return name if PLAIN_NAME.match(name) else '"' + name.replace('"', '""') + '"'


def snapshot_stats(summary: Any) -> dict:
    """Rows, data files and bytes of a table from its current snapshot's summary (pure; None where not recorded)."""
    values = dict(summary.additional_properties) if summary is not None else {}

    def number(key: str) -> int | None:
        try:
            return int(values[key])
        except (KeyError, TypeError, ValueError):
            return None

    return {
        "rows": number("total-records"),
        "data_files": number("total-data-files"),
        "size_bytes": number("total-files-size"),
    }


def table_detail(table: Any) -> dict:
    """Schema (with SQL types), partition spec, snapshots (time and operation), row count and size from the current
    snapshot, and properties of a pyiceberg table."""
    metadata = table.metadata
    schema = table.schema()
    current = table.current_snapshot()
    names = {f.field_id: f.name for f in schema.fields}
    return {
        "identifier": list(table.name()),
        "location": table.location(),
        "schema": [
            {
                "id": f.field_id,
                "name": f.name,
                "type": str(f.field_type),
                "sql_type": sql_type(f.field_type),
                "required": f.required,
                "doc": f.doc,
            }
            for f in schema.fields
        ],
        "partition_spec": [
            {
                "source_id": p.source_id,
                "source": names.get(p.source_id),
                "name": p.name,
                "transform": str(p.transform),
            }
            for p in table.spec().fields
        ],
        "stats": snapshot_stats(current.summary if current else None)
        if current
        else {"rows": 0, "data_files": 0, "size_bytes": 0},
        "snapshots": [
            {
                "snapshot_id": s.snapshot_id,
                "timestamp_ms": s.timestamp_ms,
                "operation": str(s.summary.operation.value) if s.summary else None,
            }
            for s in metadata.snapshots
        ],
        "current_snapshot_id": metadata.current_snapshot_id,
        "properties": dict(metadata.properties),
    }


def preview(conn: Any, namespace: str, table: str, limit: int = 20) -> dict:
    """The first rows of a table through Trino, as the logged-in user (so Trino's rules apply)."""
    limit = max(1, min(limit, 500))
    cur = conn.cursor()
    # Names come from the catalog's own listing and are quoted; the limit is an int.
    ident = '"' + namespace.replace('"', '""') + '"."' + table.replace('"', '""') + '"'
    cur.execute(f"SELECT * FROM iceberg.{ident} LIMIT {limit}")  # noqa: S608
    rows = cur.fetchall()
    columns = [d[0] for d in cur.description]
    return {"columns": columns, "rows": [[_jsonable(v) for v in row] for row in rows]}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
