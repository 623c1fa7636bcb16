"""``%sql`` results as an interactive grid in JupyterLab, the value of the cell unchanged.

What ``%sql`` returns (jupysql's ResultSet, or the DataFrame it makes with ``autopandas``/``autopolars``) stays what
jupysql documents. Only its display gains a MIME type, :data:`MIME`: the column names and Trino types, the first
rows and the row count, which the lab extension's grid renders (``extension/labextension/src/results.ts``); the
bundle keeps ``text/html`` and ``text/plain`` (nbconvert, GitHub and the jobs' output pages show those). Frames that
did not come from ``%sql`` keep pandas' display: the grid takes only objects :func:`mark` registered (by identity,
not by ``DataFrame.attrs``, which pandas copies to every frame derived from one) and jupysql's ResultSets.

Rows past the embedded ones, sorting and filtering over the whole result, charts and the CSV and Parquet downloads
come from the kernel over a Comm (:data:`COMM_TARGET`), by the result's id. The kernel keeps results by weak
reference (what the user's variables and IPython's output history hold), the last :attr:`ResultGrid.keep` of them;
a grid whose result is gone (the kernel restarted, the result freed) shows what was embedded and says so.

``%config ResultGrid.enabled = False`` gives jupysql's and pandas' own tables back.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import weakref
from collections import OrderedDict
from typing import Any

from traitlets import Bool, Int
from traitlets.config import Configurable

from . import grid_data

log = logging.getLogger(__name__)

MIME = "application/vnd.agp.table.v1+json"
COMM_TARGET = "agp.table.v1"
# A result id names this kernel process too, so that a restarted kernel never serves another result by the same id.
_KERNEL = secrets.token_hex(6)
_COUNTER = itertools.count(1)


class ResultGrid(Configurable):
    """How ``%sql`` results are shown: ``%config ResultGrid.enabled = False`` for jupysql's and pandas' tables."""

    enabled = Bool(
        True,
        help="Show %sql results in the interactive grid (sort, filter, download, chart) in JupyterLab. False: "
        "jupysql's and pandas' own HTML tables, as without Antigravity.",
    ).tag(config=True)
    embed_rows = Int(
        200,
        help="Rows of a result stored in the notebook with its grid (shown without a kernel, and where the grid is "
        "not installed the HTML table shows jupysql's displaylimit). More rows come from the kernel as the grid "
        "scrolls.",
    ).tag(config=True)
    max_rows = Int(
        1_000_000,
        help="Rows of a ResultSet the grid reads from Trino at most to sort, filter, chart or download the whole "
        "result (the rest stays unread; the grid says so). 0: no limit.",
    ).tag(config=True)
    keep = Int(
        20,
        help="Results the kernel keeps serving to their grids (the most recent); older grids show what they "
        "embedded. Results are held weakly: one no variable or output history holds is freed as before.",
    ).tag(config=True)


# -- the results a grid can ask for -------------------------------------------------------------------------------


class Source:
    """One result behind one or more grids: its rows as a DataFrame, read from the ResultSet as they are needed."""

    def __init__(self, value: Any, settings: ResultGrid):
        self.id = f"{_KERNEL}-{next(_COUNTER)}"
        self.settings = settings
        self._ref = weakref.ref(value)
        self._frame: Any = None  # the whole result as a pandas DataFrame, once something needed it
        self._view_key: Any = None
        self._view: Any = None
        self._described: tuple[list[str], list[str]] | None = None

    @property
    def names(self) -> list[str]:
        return self._describe()[0]

    @property
    def types(self) -> list[str]:
        return self._describe()[1]

    def _describe(self) -> tuple[list[str], list[str]]:
        if self._described is None:
            value = self.value()
            if value is None:
                raise LookupError("gone")
            self._described = _describe(value)
        return self._described

    def value(self) -> Any:
        return self._ref()

    # A ResultSet's rows are read by jupysql's own fetchmany, into the ResultSet: no query runs twice, and what
    # ``len(result)``, ``result.DataFrame()`` and the rest need finds them read already.
    def rows(self, offset: int, limit: int, ahead: int = 0) -> tuple[list[list], int | None]:
        """Rows ``offset`` to ``offset + limit`` as they come, as JSON values, and the row count if known; a
        ResultSet reads at least ``ahead`` rows more when it reads (a grid scrolled down asks for one block after
        the other)."""
        value = self.value()
        if value is None:
            raise LookupError("gone")
        if not _is_resultset(value):
            frame = self.frame()
            return grid_data.json_rows(frame.iloc[offset : offset + limit]), len(frame)
        self._read(value, offset + limit + 1, ahead)
        rows = [[grid_data.json_value(v) for v in row] for row in value._results[offset : offset + limit]]
        return rows, self._count(value)

    def _read(self, rs: Any, want: int | None, ahead: int = 0) -> None:
        """Read rows of the ResultSet until it holds ``want`` (all: None), up to :attr:`ResultGrid.max_rows`."""
        cap = self.settings.max_rows or None
        if cap is not None:
            want = cap if want is None else min(want, cap)
        have = len(rs._results)
        while not rs._done_fetching() and (want is None or have < want):
            rs.fetchmany(100_000 if want is None else max(want - have, ahead, 1))
            if len(rs._results) == have:
                break
            have = len(rs._results)

    def _count(self, rs: Any) -> int | None:
        if rs._done_fetching():
            return len(rs._results) if not self.settings.max_rows else min(len(rs._results), self.settings.max_rows)
        return None

    def frame(self) -> Any:
        """The whole result as a pandas DataFrame (a ResultSet's first :attr:`ResultGrid.max_rows` rows)."""
        value = self.value()
        if value is None:
            raise LookupError("gone")
        if not _is_resultset(value):
            if not type(value).__module__.startswith("polars"):
                return value  # held by the user, not by the grid
            if self._frame is None:
                self._frame = value.to_pandas()
            return self._frame
        import pandas as pd

        self._read(value, None)
        results = value._results if not self.settings.max_rows else value._results[: self.settings.max_rows]
        if self._frame is None or len(self._frame) != len(results):
            frame = pd.DataFrame.from_records([tuple(r) for r in results], columns=range(len(self.names)))
            frame.columns = self.names  # as they are, repeated names too
            self._frame = frame
        return self._frame

    def capped(self) -> bool:
        """Whether rows past :attr:`ResultGrid.max_rows` were left unread (or read and left out)."""
        value, cap = self.value(), self.settings.max_rows
        if value is None or not _is_resultset(value) or not cap:
            return False
        return len(value._results) > cap or (len(value._results) >= cap and not value._done_fetching())

    def view(self, sort: list | None, filters: dict | None) -> Any:
        """Row positions for a sort and filter model (None: the rows as they are); the last one is cached."""
        if not sort and not filters:
            return None
        frame = self.frame()
        key = (repr(sort), repr(sorted((filters or {}).items())), len(frame))
        if key != self._view_key:
            self._view, self._view_key = grid_data.view(frame, sort, filters), key
        return self._view


def _is_resultset(value: Any) -> bool:
    return type(value).__name__ == "ResultSet" and type(value).__module__.startswith("sql.")


def _as_pandas(value: Any) -> Any:
    if type(value).__module__.startswith("polars"):
        return value.to_pandas()
    return value


def _describe(value: Any) -> tuple[list[str], list[str]]:
    """Column names and SQL types of a result: Trino's types where the result carries them, else from dtypes."""
    if _is_resultset(value):
        names = [str(k) for k in value.keys]
        description = _description(value)
        types = [str(d[1]) if d[1] is not None else "" for d in description] if description else []
        if len(types) != len(names) or not all(isinstance(t, str) and t for t in types):
            # Not Trino (another connection of jupysql, SQLite's gives no types): guessed from the rows read.
            import pandas as pd

            sample = pd.DataFrame.from_records([tuple(r) for r in value._results[:1000]], columns=range(len(names)))
            types = [grid_data.type_of_dtype(sample[i].infer_objects().dtype) for i in range(len(names))]
        return names, types
    frame = _as_pandas(value)
    names = [str(c) for c in frame.columns]
    marked = getattr(frame, "attrs", {}).get("trino_types")
    if isinstance(marked, list) and len(marked) == len(names):
        return names, [str(t) for t in marked]
    return names, [grid_data.type_of_dtype(dtype) for dtype in frame.dtypes]


def _description(rs: Any) -> Any:
    """The DBAPI description of a ResultSet's cursor (jupysql keeps a cursor or SQLAlchemy's result)."""
    proxy = rs._sqlaproxy
    for holder in (proxy, getattr(proxy, "cursor", None)):
        try:
            description = getattr(holder, "description", None)
        except Exception:  # a closed result
            description = None
        if description:
            return description
    return None


class Registry:
    """The results grids may ask for: by result id and by the object's identity, each held weakly, the last
    ``keep`` of them (a ResultSet's rows read for its grid go with its entry)."""

    def __init__(self, settings: ResultGrid):
        self.settings = settings
        self._by_id: OrderedDict[str, Source] = OrderedDict()
        self._by_object: dict[int, Source] = {}

    def source(self, value: Any) -> Source:
        """The source of ``value``, registered now if it is new."""
        known = self.find(value)
        if known is not None:
            self._by_id.move_to_end(known.id)
            return known
        source = Source(value, self.settings)
        self._by_id[source.id] = source
        self._by_object[id(value)] = source
        weakref.finalize(value, self._forget, source.id, id(value))
        while len(self._by_id) > max(1, self.settings.keep):
            _, old = self._by_id.popitem(last=False)
            self._by_object = {k: s for k, s in self._by_object.items() if s is not old}
        return source

    def find(self, value: Any) -> Source | None:
        source = self._by_object.get(id(value))
        return source if source is not None and source.value() is value else None

    def get(self, result_id: str) -> Source | None:
        source = self._by_id.get(result_id)
        if source is None or source.value() is None:
            return None
        self._by_id.move_to_end(result_id)
        return source

    def _forget(self, result_id: str, object_id: int) -> None:
        self._by_id.pop(result_id, None)
        if self._by_object.get(object_id) is not None and self._by_object[object_id].id == result_id:
            del self._by_object[object_id]

    def __len__(self) -> int:
        return len(self._by_id)


# -- display ----------------------------------------------------------------------------------------------------


def bundle(source: Source) -> dict:
    """The grid's MIME payload of a result: names, types, the first rows, the row count if known (pure but for
    reading the result's first rows)."""
    settings = source.settings
    rows, total = source.rows(0, settings.embed_rows)
    return {
        "version": 1,
        "result": source.id,
        "columns": [
            {"name": name, "type": sql_type, "kind": grid_data.kind_of(sql_type)}
            for name, sql_type in zip(source.names, source.types, strict=True)
        ],
        "rows": rows,
        "total": total,
        "embedded": len(rows),
    }


class Display:
    """The IPython mimebundle formatters of the grid, for ResultSets and for the frames :func:`mark` registered."""

    def __init__(self, settings: ResultGrid, registry: Registry):
        self.settings, self.registry = settings, registry

    def resultset(self, rs: Any, include: Any = None, exclude: Any = None) -> Any:
        if not self.settings.enabled or not _columns(rs):
            return None
        try:
            # jupysql's own table and text first: they read the rows of its displaylimit, which the grid reuses.
            html, text = rs._repr_html_(), repr(rs)
            payload = bundle(self.registry.source(rs))
        except Exception:  # the grid is an addition: never lose the table jupysql shows over it
            log.warning("the result grid could not show a ResultSet", exc_info=True)
            return None
        return {MIME: payload, "text/html": html, "text/plain": text}

    def frame(self, frame: Any, include: Any = None, exclude: Any = None) -> Any:
        if not self.settings.enabled:
            return None
        source = self.registry.find(frame)
        if source is None:  # not a %sql result: pandas' (or polars') own display
            return None
        try:
            return {MIME: bundle(source)}
        except Exception:
            log.warning("the result grid could not show a DataFrame", exc_info=True)
            return None


def _columns(rs: Any) -> bool:
    try:
        return bool(rs.keys)
    except Exception:
        return False


# -- the comm ---------------------------------------------------------------------------------------------------

ROWS_PER_REQUEST = 5000
READ_AHEAD = 2000  # rows a ResultSet reads at least when a grid scrolls past what it has read


def answer(registry: Registry, request: dict) -> tuple[dict, list[bytes]]:
    """The answer to one message of a grid (pure but for reading the result): a dict and binary buffers."""
    source = registry.get(str(request.get("result", "")))
    if source is None:
        return {"error": "gone"}, []
    op = request.get("op")
    sort, filters = request.get("sort") or None, request.get("filter") or None
    try:
        if op == "rows":
            offset = max(0, int(request.get("offset") or 0))
            limit = max(0, min(int(request.get("limit") or 100), ROWS_PER_REQUEST))
            positions = source.view(sort, filters)
            if positions is None:
                rows, total = source.rows(offset, limit, ahead=READ_AHEAD)
            else:
                frame = source.frame()
                rows = grid_data.json_rows(frame, positions[offset : offset + limit])
                total = len(positions)
            return {"rows": rows, "total": total, "capped": source.capped()}, []
        if op == "download":
            fmt = request.get("format")
            if fmt not in ("csv", "parquet"):
                return {"error": f"Downloads are CSV or Parquet, not {fmt!r}."}, []
            frame, positions = source.frame(), source.view(sort, filters)
            data = grid_data.to_csv(frame, positions) if fmt == "csv" else grid_data.to_parquet(frame, positions)
            rows = len(frame) if positions is None else len(positions)
            return {"format": fmt, "rows": rows, "bytes": len(data), "capped": source.capped()}, [data]
        if op == "chart":
            frame, positions = source.frame(), source.view(sort, filters)
            chart = grid_data.chart_data(frame, request.get("chart") or {}, positions)
            return {**chart, "capped": source.capped()}, []
    except ValueError as e:  # a request the grid should not have made: one sentence back
        return {"error": str(e)}, []
    return {"error": f"The grid asked for {op!r}, which the kernel does not know."}, []


def open_comm(registry: Registry, comm: Any, open_msg: dict) -> None:
    """A grid opened its comm: answer each of its requests (tagged with its ``request`` number)."""

    def on_msg(msg: dict) -> None:
        data = msg["content"]["data"] or {}
        number = data.get("request")
        try:
            reply, buffers = answer(registry, data)
        except LookupError:
            reply, buffers = {"error": "gone"}, []
        except Exception as e:  # reading the rest of the result failed (Trino gone, ...): say so in the grid
            log.warning("the result grid's request failed", exc_info=True)
            reply, buffers = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"}, []
        comm.send({"reply": number, **reply}, buffers=buffers)

    comm.on_msg(on_msg)
    result = (open_msg["content"]["data"] or {}).get("result")
    comm.send({"reply": None, "ready": registry.get(str(result)) is not None})


# -- installation -----------------------------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def install(ip: Any) -> ResultGrid:
    """Add the grid's formatters and comm target to ``ip`` (idempotent); ``%config ResultGrid.*`` configures it."""
    if "settings" in _STATE and _STATE.get("shell") is ip:
        return _STATE["settings"]
    settings = ResultGrid(parent=ip)
    if settings not in ip.configurables:
        ip.configurables.append(settings)
    registry = Registry(settings)
    display = Display(settings, registry)
    formatter = ip.display_formatter.mimebundle_formatter
    formatter.for_type_by_name("sql.run.resultset", "ResultSet", display.resultset)
    # By the module a class says it is in (pandas 3 says "pandas", pandas 2 "pandas.core.frame"): nothing is imported.
    for module in ("pandas", "pandas.core.frame", "polars", "polars.dataframe.frame"):
        formatter.for_type_by_name(module, "DataFrame", display.frame)
    manager = _comm_manager(ip)
    if manager is not None:
        manager.register_target(COMM_TARGET, lambda comm, msg: open_comm(registry, comm, msg))
    _STATE.update(shell=ip, settings=settings, registry=registry)
    return settings


def _comm_manager(ip: Any) -> Any:
    if getattr(ip, "kernel", None) is None:
        return None
    try:
        import comm

        return comm.get_comm_manager()
    except Exception:  # an old ipykernel
        return getattr(ip.kernel, "comm_manager", None)


def mark(value: Any) -> Any:
    """Register what ``%sql`` returned, so that a DataFrame of it shows in the grid; returns ``value`` itself."""
    registry = _STATE.get("registry")
    if registry is None or value is None or _is_resultset(value):
        return value
    module = type(value).__module__
    if type(value).__name__ == "DataFrame" and (module.startswith("pandas") or module.startswith("polars")):
        try:
            registry.source(value)
        except TypeError:  # an object that cannot be referenced weakly: shown as before
            log.debug("cannot register %r for the grid", type(value), exc_info=True)
    return value
