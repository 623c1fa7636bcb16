"""What a running Trino query looks like in the notebook: live progress, cancel on interrupt, short errors.

Every cursor the kernel's ``%sql`` connection opens reports Trino's statistics (the ``trino`` client's
``stats_callback``) to :data:`TRACKER`. A query that runs longer than :attr:`Tracker.show_after` seconds gets a
progress bar (percent, rows, bytes, elapsed) in the cell that runs it. When the cell is interrupted, every query
still running is cancelled in Trino, not just abandoned by the client.
"""

from __future__ import annotations

import logging
import re
import time
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

TERMINAL = {"FINISHED", "FAILED"}


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def progress(stats: dict[str, Any]) -> tuple[int, str]:
    """Percent done and a one-line summary from the ``stats`` of a Trino statement response (pure)."""
    state = str(stats.get("state") or "QUEUED")
    percent = stats.get("progressPercentage")
    if percent is None:
        total, done = stats.get("totalSplits") or 0, stats.get("completedSplits") or 0
        percent = 100.0 * done / total if total else 0.0
    if state == "FINISHED":
        percent = 100.0
    rows, size = int(stats.get("processedRows") or 0), human_bytes(float(stats.get("processedBytes") or 0))
    elapsed = (stats.get("elapsedTimeMillis") or 0) / 1000
    text = f"{state.lower()} {percent:.0f}% · {rows:,} rows · {size} · {elapsed:.1f} s"
    if stats.get("queryId"):
        text += f" · {stats['queryId']}"
    return int(max(0.0, min(100.0, percent))), text


class ProgressBar:
    """One query's bar: an ipywidgets progress bar and a label, shown once, then updated in place."""

    def __init__(self) -> None:
        import ipywidgets as w
        from IPython.display import display

        self.bar = w.IntProgress(min=0, max=100, value=0, bar_style="info", layout=w.Layout(width="40%"))
        self.label = w.HTML()
        self.box = w.HBox([self.bar, self.label])
        display(self.box)

    def update(self, stats: dict[str, Any], cancelled: bool = False) -> None:
        percent, text = progress(stats)
        self.bar.value = percent
        state = stats.get("state")
        if cancelled:
            self.bar.bar_style, text = "warning", f"cancelled · {text}"
        elif state == "FAILED":
            self.bar.bar_style = "danger"
        elif state == "FINISHED":
            self.bar.bar_style = "success"
        self.label.value = f"<code>Trino {_escape(text)}</code>"

    def close(self) -> None:
        """Take the bar away (a cancelled query's cell says it in one line instead)."""
        for widget in (self.box, self.bar, self.label):
            for part in (getattr(widget, "layout", None), getattr(widget, "style", None), widget):
                if part is not None:
                    part.close()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


class Tracker:
    """The kernel's running Trino queries: their progress bars, and cancelling them on interrupt."""

    def __init__(
        self,
        show_after: float = 1.0,
        interval: float = 0.25,
        make_bar: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.show_after, self.interval = show_after, interval
        self.make_bar = make_bar or (ProgressBar if _in_kernel() else None)
        self.clock = clock
        self.cursors: weakref.WeakSet = weakref.WeakSet()
        self._bars: dict[str, tuple[Any, float]] = {}

    def watch(self, cursor: Any) -> None:
        self.cursors.add(cursor)

    def callback(self, stats: dict[str, Any]) -> None:
        """The ``stats_callback`` of every tracked cursor: shows and updates the bar; never raises."""
        try:
            self._on_stats(stats)
        except Exception:  # a display problem must not break the query
            log.debug("progress display failed", exc_info=True)

    def _on_stats(self, stats: dict[str, Any]) -> None:
        query_id, state = stats.get("queryId"), stats.get("state")
        if not query_id or self.make_bar is None:
            return
        now = self.clock()
        bar, last = self._bars.get(query_id, (None, 0.0))
        if bar is None:
            if state in TERMINAL or (stats.get("elapsedTimeMillis") or 0) < self.show_after * 1000:
                return
            bar = self.make_bar()
        elif state not in TERMINAL and now - last < self.interval:
            return
        bar.update(stats)
        self._bars[query_id] = (bar, now)
        if state in TERMINAL:
            self._bars.pop(query_id, None)

    def running(self) -> list[Any]:
        return [c for c in list(self.cursors) if _unfinished(c)]

    def cancel_running(self) -> list[str]:
        """Cancel every tracked query Trino still runs, and take their progress bars away; returns their ids."""
        cancelled = []
        for cursor in self.running():
            query = cursor._query
            try:
                cursor.cancel()
            except Exception as e:  # Trino gone: nothing left to cancel there
                log.warning("could not cancel Trino query %s: %s", query.query_id, e)
                continue
            cancelled.append(query.query_id)
            bar = self._bars.pop(query.query_id, (None, 0))[0]
            if bar is not None:
                try:
                    bar.close()
                except Exception:  # the display is a courtesy
                    log.debug("could not close the progress bar", exc_info=True)
            log.info("cancelled Trino query %s", query.query_id)
        return cancelled


def _unfinished(cursor: Any) -> bool:
    query = getattr(cursor, "_query", None)
    return query is not None and query.query_id is not None and not query.finished and not query.cancelled


TRACKER = Tracker()


# -- errors -----------------------------------------------------------------------------------------------------


def describe_error(error: BaseException, endpoint: str | None = None) -> str:
    """A few lines that name what went wrong with a query, for a notebook user (pure).

    A Trino error with a position (a syntax error, an unknown column) shows the statement's line with a caret under
    it (:func:`agp.kernels.messages.positioned`)."""
    from .credentials import BrokerError
    from .messages import positioned

    err = trino_error(error) or _innermost(error)
    where = f" at {endpoint}" if endpoint else ""
    if isinstance(err, BrokerError):
        return str(err)
    name = type(err).__name__
    if name == "TrinoConnectionError" or _is_connection_error(err):
        return (
            f"Trino{where} does not answer ({_reason(err)}); the query did not run. "
            "Try again in a moment, or ask your administrator whether Trino is up."
        )
    if name == "TrinoAuthError" or ("401" in str(err)[:200] and "Unauthorized" in str(err)):
        return f"Trino{where} refused the credential: {_first_line(str(err))}"
    if hasattr(err, "error_name") and hasattr(err, "message"):
        location = getattr(err, "error_location", None)
        query_id = getattr(err, "query_id", None)
        if location or _POSITION.match(err.message):
            return positioned(err.error_name, err.message, statement_of(error), query_id, location)
        text = f"{err.error_name}: {err.message}"
        if query_id:
            text += f" (query {query_id})"
        return text
    return f"{name}: {_first_line(str(err))}"


_POSITION = re.compile(r"^line \d+:\d+: ")


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and what it wraps: SQLAlchemy's ``orig``, then ``__cause__``."""
    seen: list[BaseException] = []
    err: BaseException | None = error
    while err is not None and err not in seen:
        seen.append(err)
        err = getattr(err, "orig", None) or err.__cause__
    return seen


def _innermost(error: BaseException) -> BaseException:
    from .credentials import BrokerError

    chain = _chain(error)
    return next((e for e in chain if isinstance(e, BrokerError)), chain[-1])


def trino_error(error: BaseException) -> BaseException | None:
    """The ``trino`` client's exception in ``error``'s chain, if any."""
    return next((e for e in _chain(error) if _is_trino(e)), None)


def statement_of(error: BaseException) -> str | None:
    """The statement as it was sent, where SQLAlchemy's wrapper of the error recorded it."""
    for err in _chain(error):
        statement = getattr(err, "statement", None)
        if isinstance(statement, str) and statement:
            return statement
    return None


def _is_trino(err: BaseException) -> bool:
    return type(err).__module__.startswith("trino")


def _is_connection_error(err: BaseException) -> bool:
    try:
        import requests

        return isinstance(err, requests.ConnectionError | ConnectionError)
    except ImportError:
        return isinstance(err, ConnectionError)


def _reason(err: BaseException) -> str:
    text = str(err)
    for pattern, reason in (
        (r"Connection refused", "connection refused"),
        (r"timed out|Timeout", "timed out"),
        (r"Name or service not known|nodename nor servname", "unknown host"),
        (r"Connection reset|RemoteDisconnected|Connection aborted", "connection closed"),
    ):
        if re.search(pattern, text):
            return reason
    return _first_line(text)[:120]


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
