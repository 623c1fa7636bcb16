"""``%sql`` results shown as HTML without running what the data says.

jupysql 0.11 renders a ResultSet with prettytable, which escapes every header and cell, and then unescapes the
whole table "to create clickable links": a value such as ``<img src=x onerror=...>`` (or a column named so) ran as
script in the browser of whoever queried it, on the hub's origin, where it can act as that user. Workspaces are
shared, so one user's row could take over another's account. Here the table stays escaped, links are made only
from cells that are a plain http(s) URL, and jupysql's own footer (its fixed text) is kept.

A private hook of jupysql (``ResultSet._repr_html_``): the version range is pinned in pyproject.toml and
tests/unit/test_safe_html.py fails when the hook changes.
"""

from __future__ import annotations

import re
from typing import Any

_URL_CELL = re.compile(r"<td>(https?://[^\s<>\"']+)</td>")
_MARK = "\x00agp-table\x00"


def table_html(result: Any) -> str:
    """A ResultSet's HTML: the escaped table, safe links, then jupysql's footer."""
    result.fetch_for_repr_if_needed()
    table = result._pretty_table.get_html_string(escape_header=True, escape_data=True)
    # jupysql's links are made by a table subclass before escaping: undo them (escaped), then make them safely.
    table = re.sub(r"<td>&lt;a href=(.+?)&gt;\1&lt;/a&gt;</td>", r"<td>\1</td>", table)
    table = _URL_CELL.sub(r'<td><a href="\1" target="_blank" rel="noopener noreferrer">\1</a></td>', table)
    # The footer is jupysql's own text (row counts, hints); build it around a mark and put the table in its place.
    page = result._add_footer(_MARK, html=True)
    return page.replace(_MARK, table, 1)


def install() -> None:
    """Render every jupysql ResultSet through :func:`table_html` (idempotent)."""
    from sql.run.resultset import ResultSet

    if getattr(ResultSet._repr_html_, "__agp__", False):
        return

    def _repr_html_(self: Any) -> str:
        return table_html(self)

    _repr_html_.__agp__ = True  # type: ignore[attr-defined]
    _repr_html_.__wrapped__ = ResultSet._repr_html_  # type: ignore[attr-defined]  # jupysql's own, for the test
    ResultSet._repr_html_ = _repr_html_
