"""``python -m agp.hub.service``: run the workspace service where the hub says (JUPYTERHUB_SERVICE_URL)."""

from __future__ import annotations

import gc
import logging
import os
from urllib.parse import urlparse

import uvicorn

from agp.core.settings import Settings

from .app import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The hub hands a managed service its address and prefix in these variables; they are read here, at the edge.
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8091"))
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/workspaces/")
    settings = Settings()
    app = create_app(settings, prefix)
    # A list answer allocates many short-lived objects; the default gen-0 threshold (700) then runs full
    # collections mid-request, which tripled the p95 of listing 200 workspaces. Freeze what start-up made
    # and collect less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    # bind_host when set (0.0.0.0 in a pod, where the service's URL names a Kubernetes Service, not an address here)
    host = settings.bind_host or url.hostname or "127.0.0.1"
    # The hub's proxy (configurable-http-proxy) keeps idle upstream connections open without a limit of its own:
    # with uvicorn's default 5 s keep-alive, a request sent as uvicorn closes the connection was reset (a 503 on
    # a POST, seen on Kubernetes). An hour, as Tornado's servers (the hub, Jupyter) keep them.
    uvicorn.run(app, host=host, port=url.port or 8091, log_level="info", access_log=True, timeout_keep_alive=3600)


if __name__ == "__main__":
    main()
