"""What the result grid asks of a result, computed on a pandas DataFrame (pure: no kernel, no display).

The grid (the lab extension's ``results.ts``, AG Grid's infinite row model) sorts and filters on the kernel's side,
over the whole result, and asks for windows of rows: :func:`view` gives the row positions of a sort and a filter
model as AG Grid sends them, :func:`json_rows` a window of rows as JSON values, :func:`chart_data` the few hundred
values a chart of the whole result needs, :func:`to_csv` and :func:`to_parquet` the downloads.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Sequence
from typing import Any

from .frames import unique_names

# JavaScript numbers are doubles: integers past 2**53 are sent as text so that they are shown as they are.
_SAFE_INT = 2**53
CHART_POINTS = 5000  # points of a line or scatter chart at most (a sample of the result beyond that)
CHART_GROUPS = 200  # bars of a bar chart at most (the largest)


# -- columns ----------------------------------------------------------------------------------------------------


def kind_of(sql_type: str) -> str:
    """How the grid filters and aligns a column of this Trino type: number, date, boolean or text (pure)."""
    t = sql_type.lower().split("(", 1)[0].strip()
    if t in {"tinyint", "smallint", "integer", "int", "bigint", "real", "double", "decimal", "float"}:
        return "number"
    if t in {"date", "timestamp"} or t.startswith("timestamp"):
        return "date"
    if t == "boolean":
        return "boolean"
    return "text"


def type_of_dtype(dtype: Any) -> str:
    """A SQL type name for a pandas dtype, for frames that carry no Trino types (pure)."""
    kind = getattr(dtype, "kind", "O")
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "bigint" if dtype.itemsize >= 8 else "integer"
    if kind == "f":
        return "double" if dtype.itemsize >= 8 else "real"
    if kind == "M":
        return "timestamp(6) with time zone" if getattr(dtype, "tz", None) is not None else "timestamp(6)"
    return "varchar"


# -- values -----------------------------------------------------------------------------------------------------


def json_value(v: Any) -> Any:
    """One value as the grid shows it: JSON's own types, text for the rest (pure)."""
    if v is None or v is getattr(_pd(), "NaT", None) or v is getattr(_pd(), "NA", None):
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v if -_SAFE_INT <= v <= _SAFE_INT else str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return None
        return v if math.isfinite(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, str):
        return v
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:  # numpy scalars
        return json_value(v.item())
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return "0x" + bytes(v).hex()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, dt.timedelta):
        return str(v)
    try:
        return json.dumps(v, default=str, ensure_ascii=False)  # arrays, maps and rows: as JSON text
    except (TypeError, ValueError):
        return str(v)


def _pd() -> Any:
    import pandas as pd

    return pd


def json_rows(frame: Any, positions: Sequence[int] | None = None) -> list[list]:
    """The rows of ``frame`` (those at ``positions``, in that order) as lists of JSON values (pure)."""
    part = frame if positions is None else frame.iloc[list(positions)]
    columns = [[json_value(v) for v in part.iloc[:, i].tolist()] for i in range(part.shape[1])]
    return [list(row) for row in zip(*columns, strict=True)] if columns else [[] for _ in range(len(part))]


# -- sort and filter ------------------------------------------------------------------------------------------


def view(frame: Any, sort: list[dict] | None = None, filters: dict[str, dict] | None = None) -> Any:
    """Positions (a numpy array) of the rows of ``frame`` that pass ``filters``, in the order of ``sort``.

    ``sort`` is AG Grid's sort model (``[{"colId": "c2", "sort": "desc"}]``), ``filters`` its filter model (``{"c0":
    {"filterType": "text", "type": "contains", "filter": "x"}}``); columns are named ``c<position>``. Missing values
    sort last either way, as Trino's ORDER BY puts NULLs by default. Raises ``ValueError`` with a sentence for a
    column or a filter it does not know.
    """
    import numpy as np

    pd = _pd()
    positions = np.arange(len(frame))
    if filters:
        mask = np.ones(len(frame), dtype=bool)
        for col_id, model in filters.items():
            mask &= np.asarray(_filter_mask(frame.iloc[:, _position(frame, col_id)], model), dtype=bool)
        positions = positions[mask]
    if sort:
        keys = [(_position(frame, s.get("colId", "")), s.get("sort") != "desc") for s in sort]
        part = pd.DataFrame({f"k{i}": _sortable(frame.iloc[positions, p]) for i, (p, _) in enumerate(keys)})
        part.index = positions
        part = part.sort_values(
            by=list(part.columns), ascending=[a for _, a in keys], kind="stable", na_position="last"
        )
        positions = part.index.to_numpy()
    return positions


def _position(frame: Any, col_id: str) -> int:
    if not (isinstance(col_id, str) and col_id.startswith("c") and col_id[1:].isdigit()):
        raise ValueError(f"There is no column {col_id!r} in this result.")
    p = int(col_id[1:])
    if p >= frame.shape[1]:
        raise ValueError(f"There is no column {col_id!r} in this result.")
    return p


def _sortable(series: Any) -> Any:
    """``series`` as values pandas can sort: objects of mixed or unorderable types sort as their text."""
    pd = _pd()
    series = series.reset_index(drop=True)
    if series.dtype != object:
        return series
    kinds = {type(v) for v in series if v is not None and v is not pd.NaT}
    if len(kinds) <= 1 and not kinds & {list, dict, tuple, bytes, bytearray}:
        return series
    return series.map(lambda v: None if v is None else json.dumps(json_value(v), ensure_ascii=False))


def _filter_mask(series: Any, model: dict) -> Any:
    if not isinstance(model, dict):
        raise ValueError("A filter must be an object.")
    if "conditions" in model or "operator" in model:
        conditions = model.get("conditions") or []
        masks = [_filter_mask(series, c) for c in conditions]
        if not masks:
            return _true(series)
        out = masks[0]
        for m in masks[1:]:
            out = (out | m) if str(model.get("operator", "AND")).upper() == "OR" else (out & m)
        return out
    kind = model.get("filterType", "text")
    if kind == "text":
        return _text_mask(series, model)
    if kind == "number":
        return _number_mask(series, model)
    if kind == "date":
        return _date_mask(series, model)
    raise ValueError(f"Filters of type {kind!r} are not known here.")


def _true(series: Any) -> Any:
    import numpy as np

    return np.ones(len(series), dtype=bool)


def _blank(series: Any) -> Any:
    pd = _pd()
    missing = series.isna().to_numpy(copy=True)
    if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
        missing |= series.map(lambda v: isinstance(v, str) and v.strip() == "").to_numpy(dtype=bool)
    return missing


def _text_mask(series: Any, model: dict) -> Any:
    op = model.get("type", "contains")
    if op == "blank":
        return _blank(series)
    if op == "notBlank":
        return ~_blank(series)
    needle = str(model.get("filter") or "").lower()
    text = series.map(lambda v: "" if v is None else str(json_value(v) if not isinstance(v, str) else v).lower())
    missing = series.isna().to_numpy()
    tests = {
        "contains": lambda s: s.str.contains(needle, regex=False),
        "notContains": lambda s: ~s.str.contains(needle, regex=False),
        "equals": lambda s: s == needle,
        "notEqual": lambda s: s != needle,
        "startsWith": lambda s: s.str.startswith(needle),
        "endsWith": lambda s: s.str.endswith(needle),
    }
    if op not in tests:
        raise ValueError(f"The text filter {op!r} is not known here.")
    out = tests[op](text).to_numpy(dtype=bool)
    # As AG Grid filters rows it holds itself: a missing value matches only the negative tests.
    return (out & ~missing) | (missing & (op in ("notContains", "notEqual")))


def _number_mask(series: Any, model: dict) -> Any:
    pd = _pd()
    op = model.get("type", "equals")
    if op == "blank":
        return series.isna().to_numpy()
    if op == "notBlank":
        return series.notna().to_numpy()
    values = pd.to_numeric(series, errors="coerce")
    a, b = _number(model.get("filter")), _number(model.get("filterTo"))
    tests = {
        "equals": lambda: values == a,
        "notEqual": lambda: values != a,
        "greaterThan": lambda: values > a,
        "greaterThanOrEqual": lambda: values >= a,
        "lessThan": lambda: values < a,
        "lessThanOrEqual": lambda: values <= a,
        "inRange": lambda: (values >= a) & (values <= b),
    }
    if op not in tests:
        raise ValueError(f"The number filter {op!r} is not known here.")
    return tests[op]().fillna(False).to_numpy(dtype=bool)


def _number(v: Any) -> float:
    if v is None or v == "":
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{v!r} is not a number.") from None


def _date_mask(series: Any, model: dict) -> Any:
    pd = _pd()
    op = model.get("type", "equals")
    if op == "blank":
        return series.isna().to_numpy()
    if op == "notBlank":
        return series.notna().to_numpy()
    values = pd.to_datetime(series.map(_naive), errors="coerce")
    a, b = _date(model.get("dateFrom")), _date(model.get("dateTo"))
    day = values.dt.normalize()  # AG Grid's date filter compares days
    tests = {
        "equals": lambda: day == a,
        "notEqual": lambda: day != a,
        "greaterThan": lambda: day > a,
        "lessThan": lambda: day < a,
        "inRange": lambda: (day > a) & (day < b),  # AG Grid's own inRange for dates excludes both ends
    }
    if op not in tests:
        raise ValueError(f"The date filter {op!r} is not known here.")
    return tests[op]().fillna(False).to_numpy(dtype=bool)


def _naive(v: Any) -> Any:
    """Timestamps with a time zone compare by their wall clock, as the grid shows them."""
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.replace(tzinfo=None)
    if hasattr(v, "tz") and getattr(v, "tz", None) is not None:
        return v.tz_localize(None)
    return v


def _date(v: Any) -> Any:
    pd = _pd()
    if not v:
        return pd.NaT
    try:
        return pd.Timestamp(str(v)).normalize()
    except ValueError:
        raise ValueError(f"{v!r} is not a date.") from None


# -- charts -----------------------------------------------------------------------------------------------------

CHART_KINDS = ("bar", "line", "scatter", "histogram")
AGGREGATES = ("count", "sum", "mean", "min", "max")


def chart_data(frame: Any, spec: dict, positions: Any = None) -> dict:
    """The values a chart of the whole result needs (pure): ``{"values": [...], "note": ...}``.

    ``spec``: ``kind`` (bar, line, scatter, histogram), ``x`` and ``y`` (``c<position>``; ``y`` may be absent for a
    count), ``agg`` for bars (count, sum, mean, min, max), ``bins`` for a histogram. Bars are grouped and aggregated
    here (the largest :data:`CHART_GROUPS`); a histogram is binned here (``bin0``, ``bin1``, ``count``); lines and
    scatters get their points (``x``, ``y``; lines sorted by x), sampled evenly beyond :data:`CHART_POINTS`.
    """
    import numpy as np

    pd = _pd()
    kind = spec.get("kind")
    if kind not in CHART_KINDS:
        raise ValueError(f"Charts are {', '.join(CHART_KINDS)}; {kind!r} is not one of them.")
    part = frame if positions is None else frame.iloc[positions]
    x = part.iloc[:, _position(part, spec.get("x", ""))].reset_index(drop=True)
    y = part.iloc[:, _position(part, spec["y"])].reset_index(drop=True) if spec.get("y") else None
    note = None
    if kind == "histogram":
        values = pd.to_numeric(x, errors="coerce").dropna().to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if not len(values):
            return {"values": [], "note": "The column has no numbers to count."}
        bins = max(1, min(int(spec.get("bins") or 30), 200))
        counts, edges = np.histogram(values, bins=bins)
        rows = [
            {"bin0": float(edges[i]), "bin1": float(edges[i + 1]), "count": int(counts[i])} for i in range(len(counts))
        ]
        return {"values": rows, "note": note}
    if kind == "bar":
        agg = spec.get("agg") or ("sum" if y is not None else "count")
        if agg not in AGGREGATES:
            raise ValueError(f"Bars aggregate with {', '.join(AGGREGATES)}; {agg!r} is not one of them.")
        keys = x.map(lambda v: "(null)" if v is None or v is pd.NaT else json_value(v))
        if agg == "count" or y is None:
            grouped = keys.value_counts(sort=False)
            agg = "count"
        else:
            numbers = pd.to_numeric(y, errors="coerce")
            grouped = numbers.groupby(keys, sort=False).agg(agg)
        grouped = grouped.dropna()
        if len(grouped) > CHART_GROUPS:
            note = f"The {CHART_GROUPS} largest of {len(grouped):,} groups."
            grouped = grouped.sort_values(ascending=False).head(CHART_GROUPS)
        rows = [{"x": k, "y": json_value(v)} for k, v in grouped.items()]
        return {"values": rows, "note": note, "agg": agg}
    if y is None:
        raise ValueError("A line or scatter chart needs a column for y.")
    points = pd.DataFrame({"x": x, "y": pd.to_numeric(y, errors="coerce")}).dropna()
    if kind == "line":
        points = points.sort_values("x", kind="stable")
    if len(points) > CHART_POINTS:
        note = f"{CHART_POINTS:,} of {len(points):,} points, evenly spaced."
        points = points.iloc[np.linspace(0, len(points) - 1, CHART_POINTS).astype(int)]
    rows = [{"x": json_value(a), "y": json_value(b)} for a, b in zip(points["x"], points["y"], strict=True)]
    return {"values": rows, "note": note}


# -- downloads --------------------------------------------------------------------------------------------------


def to_csv(frame: Any, positions: Any = None) -> bytes:
    """The rows (at ``positions``) as CSV in UTF-8, with the result's column names as its header (pure)."""
    part = frame if positions is None else frame.iloc[positions]
    return part.to_csv(index=False).encode("utf-8")


def to_parquet(frame: Any, positions: Any = None) -> bytes:
    """The rows (at ``positions``) as a Parquet file (pure). Columns pyarrow cannot type from their values (mixed
    objects) are written as their text; repeated column names get a suffix (Parquet requires distinct names)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    part = frame if positions is None else frame.iloc[positions]
    names = unique_names([str(c) for c in part.columns])
    arrays = []
    for i in range(part.shape[1]):
        column = part.iloc[:, i]
        try:
            arrays.append(pa.array(column, from_pandas=True))
        except (pa.ArrowException, TypeError, ValueError):
            arrays.append(pa.array([None if v is None else _text(v) for v in column.tolist()], pa.string()))
    table = pa.Table.from_arrays(arrays, names=names)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _text(v: Any) -> str:
    j = json_value(v)
    return j if isinstance(j, str) else json.dumps(j)
