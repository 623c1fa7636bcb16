"""The server extension's REST handlers: the workspace, and its catalog (authenticated, read-only)."""

from __future__ import annotations

import asyncio
import json
import os
import threading

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from agp.kernels import catalog as cat
from agp.kernels.credentials import BrokerClient, BrokerError, load_catalog, trino_connect


class _Base(APIHandler):
    @property
    def ext(self):
        return self.settings["agp_extension"]

    def finish_page(self, names: list[str], **extra) -> None:
        """One page of ``names`` after the ``search``, ``offset`` and ``limit`` query arguments (and ``extra``)."""
        search = self.get_argument("search", "")
        try:
            offset, limit = int(self.get_argument("offset", "0")), int(self.get_argument("limit", "100"))
        except ValueError as e:
            raise web.HTTPError(400, reason="offset and limit are whole numbers") from e
        self.finish(json.dumps({**cat.page(names, search, offset, limit), **extra}))

    async def run(self, fn, *args):
        """Run ``fn`` off the event loop; what the catalog or Trino refuses keeps its meaning (404, 403), not 500."""
        from pyiceberg.exceptions import ForbiddenError, NoSuchNamespaceError, NoSuchTableError
        from trino.exceptions import TrinoUserError

        try:
            return await asyncio.to_thread(fn, *args)
        except BrokerError as e:
            raise web.HTTPError(503, reason=str(e)[:200]) from e
        except (NoSuchNamespaceError, NoSuchTableError) as e:
            raise web.HTTPError(404, reason="There is no such namespace or table in your workspaces.") from e
        except ForbiddenError as e:
            raise web.HTTPError(403, reason=_first_line(e)) from e
        except TrinoUserError as e:
            status = 403 if e.error_name == "PERMISSION_DENIED" else 404 if e.error_name.endswith("_NOT_FOUND") else 400
            raise web.HTTPError(status, reason=_first_line(e.message)) from e


class WorkspaceHandler(_Base):
    @web.authenticated
    def get(self):
        env = self.ext.environ
        self.finish(
            json.dumps(
                {
                    "workspace": env.get("AGP_WORKSPACE"),
                    "display_name": env.get("AGP_WORKSPACE_DISPLAY_NAME"),
                    "trino": {
                        "host": env.get("AGP_TRINO_HOST"),
                        "catalog": env.get("AGP_TRINO_CATALOG"),
                        "schema": env.get("AGP_TRINO_SCHEMA"),
                    },
                    "s3": {"endpoint": env.get("AGP_S3_ENDPOINT"), "bucket": env.get("AGP_S3_BUCKET")},
                    "catalog": {"namespace": env.get("AGP_CATALOG_NAMESPACE")},
                }
            )
        )


class NamespacesHandler(_Base):
    @web.authenticated
    async def get(self):
        names = await self.run(self.ext.cache.get, ("namespaces",), self.ext.namespaces)
        # ``current``: this server's workspace's namespace (the Catalog panel lists it first, the others marked);
        # ``?with=current_tables`` adds its tables, so the panel's first paint needs one round trip, not two.
        current = self.ext.environ.get("AGP_CATALOG_NAMESPACE")
        extra: dict = {"current": current}
        if self.get_argument("with", "") == "current_tables" and current in names:
            extra["current_tables"] = await self.run(
                self.ext.cache.get, ("tables", current), lambda: self.ext.tables(current)
            )
        self.finish_page(names, **extra)


class TablesHandler(_Base):
    @web.authenticated
    async def get(self, namespace: str):
        names = await self.run(self.ext.cache.get, ("tables", namespace), lambda: self.ext.tables(namespace))
        self.finish_page(names)


class TableHandler(_Base):
    @web.authenticated
    async def get(self, namespace: str, table: str):
        detail = await self.run(
            self.ext.cache.get,
            ("table", namespace, table),
            lambda: self.ext.reader().table(namespace, table),
        )
        self.finish(json.dumps(detail))


class InvalidateHandler(_Base):
    """``POST``: forget the cached catalog answers (the kernel calls it after a statement that changes the catalog)."""

    @web.authenticated
    def post(self):
        self.ext.cache.clear()
        self.log.info("agp: catalog cache cleared")
        self.set_status(204)
        self.finish()


class PreviewHandler(_Base):
    @web.authenticated
    async def get(self, namespace: str, table: str):
        try:
            limit = int(self.get_argument("limit", "20"))
        except ValueError as e:
            raise web.HTTPError(400, reason="limit is a whole number") from e
        rows = await self.run(lambda: cat.preview(trino_connect(self.ext.broker()), namespace, table, limit))
        self.finish(json.dumps(rows))


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else "Refused."


def handlers(base_url: str) -> list[tuple[str, type]]:
    name = r"([A-Za-z0-9_]+)"
    root = url_path_join(base_url, "agp")
    return [
        (url_path_join(root, "workspace"), WorkspaceHandler),
        (url_path_join(root, "catalog", "namespaces"), NamespacesHandler),
        (url_path_join(root, "catalog", "invalidate"), InvalidateHandler),
        (url_path_join(root, "catalog", "namespaces", name, "tables"), TablesHandler),
        (url_path_join(root, "catalog", "namespaces", name, "tables", name), TableHandler),
        (url_path_join(root, "catalog", "namespaces", name, "tables", name, "preview"), PreviewHandler),
    ]


class Backend:
    """The server's view of its workspace: one broker client, one catalog, one cache."""

    def __init__(self, ttl: float):
        self.environ = dict(os.environ)
        self.cache = cat.TTLCache(ttl)
        self._broker: BrokerClient | None = None
        self._reader: cat.CatalogReader | None = None
        self._lock = threading.Lock()  # the warm-up thread and the handlers' threads make them once

    def broker(self) -> BrokerClient:
        with self._lock:
            if self._broker is None:
                self._broker = BrokerClient.from_environment(self.environ)
            return self._broker

    def reader(self) -> cat.CatalogReader:
        broker = self.broker()
        with self._lock:
            if self._reader is None:
                self._reader = cat.CatalogReader(load_catalog(broker))
            return self._reader

    def warm_up(self, log) -> threading.Thread | None:
        """In a thread: import pyiceberg, load the catalog and cache the namespaces and the workspace's tables, so
        the Catalog panel's first paint does not wait for them (they took 2 s in a fresh server). Nothing outside a
        workspace server; a failure is only logged (the handlers try again and say what is wrong)."""
        current = self.environ.get("AGP_CATALOG_NAMESPACE")
        if not current or not self.environ.get("AGP_WORKSPACE_SERVICE_URL"):
            return None

        def run() -> None:
            try:
                names = self.cache.get(("namespaces",), self.namespaces)
                if current in names:
                    self.cache.get(("tables", current), lambda: self.tables(current))
            except Exception as e:  # a warm-up that failed changes nothing; the handlers report what is wrong
                log.info("agp: catalog warm-up did not finish: %s", str(e).splitlines()[0][:200] if str(e) else e)

        thread = threading.Thread(target=run, name="agp-catalog-warm-up", daemon=True)
        thread.start()
        return thread

    def namespaces(self) -> list[str]:
        return self.reader().namespaces()

    def tables(self, namespace: str) -> list[str]:
        return self.reader().tables(namespace)
