"""The jupyter_server extension of workspace servers: ``/agp/workspace`` and ``/agp/catalog/...``."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float

from .handlers import Backend, handlers


class AgpExtension(ExtensionApp):
    name = "agp"
    catalog_ttl = Float(30.0, config=True, help="Seconds a catalog answer is cached in this server.")

    def initialize_settings(self) -> None:
        self.settings["agp_extension"] = Backend(self.catalog_ttl)

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers("/"))
