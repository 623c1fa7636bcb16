"""``CatalogBrowser``: the workspace's Iceberg tables as a tree in the notebook (ipywidgets).

    from agp.kernels import CatalogBrowser
    CatalogBrowser()

Namespaces open into tables, tables into columns. Selecting a table shows its schema, partition spec and snapshots
and prepares a ``SELECT … LIMIT`` for it; one click copies it. In a workspace server the browser reads the server's
catalog API (``/agp/catalog``, whose answers that server caches); elsewhere it reads the catalog directly.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any

import ipywidgets as w

from .credentials import BrokerClient
from .server import ServerCatalog


def direct_catalog(broker: BrokerClient | None = None) -> Any:
    """The workspace's catalog through the broker (outside a workspace server, e.g. a test or a script)."""
    from agp.kernels.catalog import CatalogReader

    from .credentials import load_catalog

    return CatalogReader(load_catalog(broker))


def select_statement(namespace: str, table: str, column: str | None = None, limit: int = 100) -> str:
    """``SELECT … LIMIT`` for a table (pure); names are quoted as Trino identifiers."""

    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    what = q(column) if column else "*"
    return f"SELECT {what} FROM {q(namespace)}.{q(table)} LIMIT {int(limit)}"  # noqa: S608 (quoted names)


def detail_html(detail: dict, max_snapshots: int = 20) -> str:
    """The table-detail pane (pure): schema, partition spec, snapshots with time and operation."""
    e = html.escape
    ident = ".".join(detail["identifier"])
    rows = "".join(
        f"<tr><td>{e(c['name'])}</td><td><code>{e(c['type'])}</code></td>"
        f"<td>{'required' if c['required'] else ''}</td></tr>"
        for c in detail["schema"]
    )
    parts = ", ".join(f"{e(p['transform'])}({e(p['name'])})" for p in detail["partition_spec"]) or "not partitioned"
    snaps = sorted(detail["snapshots"], key=lambda s: s["timestamp_ms"], reverse=True)
    snap_rows = "".join(
        f"<tr><td>{dt.datetime.fromtimestamp(s['timestamp_ms'] / 1000, dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC</td>"
        f"<td>{e(s['operation'] or '')}</td><td><code>{s['snapshot_id']}</code></td></tr>"
        for s in snaps[:max_snapshots]
    )
    more = f"<div>… and {len(snaps) - max_snapshots} older</div>" if len(snaps) > max_snapshots else ""
    return (
        f"<b>{e(ident)}</b><div><small>{e(detail['location'])}</small></div>"
        f"<h4>Schema</h4><table><tr><th>column</th><th>type</th><th></th></tr>{rows}</table>"
        f"<h4>Partitioning</h4><div>{parts}</div>"
        f"<h4>Snapshots ({len(snaps)})</h4><table><tr><th>time</th><th>operation</th><th>id</th></tr>"
        f"{snap_rows}</table>{more}"
    )


class CatalogBrowser(w.VBox):
    """A tree of namespaces, tables and columns with a search box and a table-detail pane."""

    def __init__(self, source: Any = None, limit: int = 100, **kwargs: Any):
        self.source = source or ServerCatalog.from_environment() or direct_catalog()
        self.limit = limit
        self.search = w.Text(placeholder="Search tables", continuous_update=False, layout=w.Layout(width="100%"))
        self.tree = w.Select(options=[], rows=16, layout=w.Layout(width="100%"))
        self.detail = w.HTML(value="<i>Select a table.</i>")
        self.query = w.Text(description="SQL", layout=w.Layout(width="100%"))
        self.copy = w.Button(description="Copy SELECT", icon="copy", disabled=True)
        self.status = w.HTML()
        self._clipboard = w.Output(layout=w.Layout(display="none"))
        self.expanded: set[str] = set()
        self.open_table: tuple[str, str] | None = None
        self._tables: dict[str, list[str]] = {}
        self._details: dict[tuple[str, str], dict] = {}
        self._rebuilding = False
        self.search.observe(lambda _: self.refresh(), names="value")
        self.tree.observe(self._on_select, names="value")
        self.copy.on_click(lambda _: self.copy_query())
        left = w.VBox([self.search, self.tree, self.status], layout=w.Layout(width="40%"))
        right = w.VBox([self.detail, self.query, self.copy, self._clipboard], layout=w.Layout(width="60%"))
        super().__init__([w.HBox([left, right])], **kwargs)
        self.refresh()

    # -- data ----------------------------------------------------------------------------------------------------
    def tables(self, namespace: str) -> list[str]:
        if namespace not in self._tables:
            self._tables[namespace] = self.source.tables(namespace)
        return self._tables[namespace]

    def table_detail(self, namespace: str, table: str) -> dict:
        if (namespace, table) not in self._details:
            self._details[(namespace, table)] = self.source.table(namespace, table)
        return self._details[(namespace, table)]

    def reload(self) -> None:
        """Forget what the browser has read and read the catalog again."""
        self._tables.clear()
        self._details.clear()
        self.refresh()

    # -- the tree ------------------------------------------------------------------------------------------------
    def nodes(self) -> list[tuple[str, tuple]]:
        """The visible rows of the tree: (label, key) with keys ('ns', n), ('table', n, t), ('column', n, t, c)."""
        term = self.search.value.strip().lower()
        rows: list[tuple[str, tuple]] = []
        for ns in self.source.namespaces():
            tables = self.tables(ns) if (term or ns in self.expanded) else []
            if term:
                tables = [t for t in tables if term in t.lower()]
                if not tables and term not in ns.lower():
                    continue
            is_open = bool(term) or ns in self.expanded
            rows.append((f"{'▾' if is_open else '▸'} {ns}", ("ns", ns)))
            if not is_open:
                continue
            for t in tables:
                opened = self.open_table == (ns, t)
                rows.append((f"    {'▾' if opened else '▸'} {t}", ("table", ns, t)))
                if opened:
                    rows += [
                        (f"        {c['name']}  {c['type']}", ("column", ns, t, c["name"]))
                        for c in self.table_detail(ns, t)["schema"]
                    ]
        return rows

    def refresh(self, keep: tuple | None = None) -> None:
        keep = self.tree.value if keep is None else keep
        try:
            rows = self.nodes()
        except Exception as e:
            self.status.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"
            return
        self._rebuilding = True
        try:
            self.tree.options = rows
            self.tree.value = keep if keep in {key for _, key in rows} else None
        finally:
            self._rebuilding = False
        n_tables = sum(1 for _, key in rows if key[0] == "table")
        self.status.value = f"<small>{n_tables} tables shown</small>"

    def _on_select(self, change: dict) -> None:
        if self._rebuilding or change["new"] is None:
            return
        key = change["new"]
        try:
            if key[0] == "ns":
                # Toggle, and leave nothing selected so that the next click on it toggles again.
                self.expanded ^= {key[1]}
                self.refresh(keep=())
            else:
                self.show(*key[1:])
        except Exception as e:
            self.status.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"

    def show(self, namespace: str, table: str, column: str | None = None) -> None:
        """Open ``namespace.table`` (as a click on it does): detail pane, columns in the tree, the SELECT."""
        detail = self.table_detail(namespace, table)
        self.expanded.add(namespace)
        self.open_table = (namespace, table)
        self.detail.value = detail_html(detail)
        self.query.value = select_statement(namespace, table, column, self.limit)
        self.copy.disabled = False
        key = ("column", namespace, table, column) if column else ("table", namespace, table)
        self.refresh(keep=key)

    def copy_query(self) -> None:
        """Copy the prepared SELECT to the browser's clipboard (the text stays in the SQL field too)."""
        from IPython.display import Javascript, display

        self._clipboard.clear_output()
        with self._clipboard:
            display(Javascript(f"navigator.clipboard.writeText({json.dumps(self.query.value)})"))
        self.status.value = "<small>SELECT copied; paste it after <code>%sql</code>.</small>"
