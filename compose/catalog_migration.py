"""Copy a catalog's namespaces, tables and views into another Iceberg REST catalog, by reference.

A lab made with Nessie moves to Apache Iceberg's REST catalog at its next ``agp lab up``: each namespace is made
again with its properties, each table is registered on the metadata file its source catalog points at (no data file
is read, copied or changed), and each view is made again from its current version. Both catalogs speak the Iceberg
REST protocol, so this is a client of that protocol and nothing else; what already exists in the target is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

log = logging.getLogger(__name__)
NS_SEP = "\x1f"


@dataclass
class Endpoint:
    """An Iceberg REST catalog: its base URI, its prefix ("" for none) and how to authenticate to it."""

    uri: str
    prefix: str
    token: Callable[[], str]

    def path(self, *parts: str) -> str:
        head = [self.uri.rstrip("/"), "v1"] + ([quote(self.prefix, safe="")] if self.prefix else [])
        return "/".join(head + list(parts))


@dataclass
class Report:
    namespaces: int = 0
    tables: int = 0
    views: int = 0
    kept: int = 0
    failed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.namespaces} namespaces, {self.tables} tables, {self.views} views copied; {self.kept} existed"
        return text + (f"; {len(self.failed)} failed: {', '.join(self.failed[:5])}" if self.failed else "")


def _ns(levels: list[str]) -> str:
    return quote(NS_SEP.join(levels), safe="")


class Migration:
    def __init__(self, source: Endpoint, target: Endpoint, http: httpx.Client | None = None):
        self.source, self.target = source, target
        self.http = http or httpx.Client(timeout=60)

    def _call(self, end: Endpoint, method: str, url: str, body: dict | None = None) -> httpx.Response:
        return self.http.request(method, url, json=body, headers={"authorization": f"Bearer {end.token()}"})

    def _pages(self, url: str, key: str, params: dict | None = None) -> Iterator[list]:
        token = None
        while True:
            query = dict(params or {})
            if token:
                query["pageToken"] = token
            r = self._call(self.source, "GET", httpx.URL(url, params=query).__str__())
            r.raise_for_status()
            doc = r.json()
            yield from doc.get(key) or []
            token = doc.get("next-page-token")
            if not token:
                return

    def namespaces(self, parent: list[str] | None = None) -> Iterator[list[str]]:
        params = {"parent": NS_SEP.join(parent)} if parent else {}
        for ns in self._pages(self.source.path("namespaces"), "namespaces", params):
            yield ns
            yield from self.namespaces(ns)

    def run(self, progress: Callable[[str], None] = lambda _: None) -> Report:
        report = Report()
        for levels in list(self.namespaces()):
            name = ".".join(levels)
            try:
                self._namespace(levels, report)
                for ident in self._pages(self.source.path("namespaces", _ns(levels), "tables"), "identifiers"):
                    self._table(levels, ident["name"], report)
                for ident in self._pages(self.source.path("namespaces", _ns(levels), "views"), "identifiers"):
                    self._view(levels, ident["name"], report)
            except httpx.HTTPError as e:
                log.exception("migrating namespace %s failed", name)
                report.failed.append(f"{name} ({e})")
            progress(f"{name}: {report}")
        return report

    def _namespace(self, levels: list[str], report: Report) -> None:
        r = self._call(self.source, "GET", self.source.path("namespaces", _ns(levels)))
        r.raise_for_status()
        props = r.json().get("properties") or {}
        made = self._call(
            self.target, "POST", self.target.path("namespaces"), {"namespace": levels, "properties": props}
        )
        if made.status_code == 409:
            report.kept += 1
        else:
            made.raise_for_status()
            report.namespaces += 1

    def _table(self, levels: list[str], table: str, report: Report) -> None:
        name = ".".join([*levels, table])
        r = self._call(self.source, "GET", self.source.path("namespaces", _ns(levels), "tables", quote(table, safe="")))
        if r.status_code != 200:
            report.failed.append(f"{name} (source answered {r.status_code})")
            return
        location = r.json().get("metadata-location")
        body = {"name": table, "metadata-location": location}
        made = self._call(self.target, "POST", self.target.path("namespaces", _ns(levels), "register"), body)
        if made.status_code == 409:
            report.kept += 1
        elif made.status_code == 200:
            report.tables += 1
        else:
            log.error("registering %s on %s failed: %s %s", name, location, made.status_code, made.text[:500])
            report.failed.append(f"{name} (target answered {made.status_code})")

    def _view(self, levels: list[str], view: str, report: Report) -> None:
        name = ".".join([*levels, view])
        r = self._call(self.source, "GET", self.source.path("namespaces", _ns(levels), "views", quote(view, safe="")))
        if r.status_code != 200:
            report.failed.append(f"{name} (source answered {r.status_code})")
            return
        meta = r.json()["metadata"]
        current = next(v for v in meta["versions"] if v["version-id"] == meta["current-version-id"])
        schema = next(s for s in meta["schemas"] if s.get("schema-id") == current["schema-id"])
        body = {
            "name": view,
            "location": meta.get("location"),
            "schema": schema,
            "view-version": current,
            "properties": meta.get("properties") or {},
        }
        made = self._call(self.target, "POST", self.target.path("namespaces", _ns(levels), "views"), body)
        if made.status_code == 409:
            report.kept += 1
        elif made.status_code == 200:
            report.views += 1
        else:
            log.error("re-making view %s failed: %s %s", name, made.status_code, made.text[:500])
            report.failed.append(f"{name} (target answered {made.status_code})")
