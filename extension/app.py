"""The jupyter_server extension of workspace servers: ``/agp/workspace``, ``/agp/catalog/...`` and ``/agp/jobs/...``."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, TraitError, Unicode, validate

from . import history, identity, jobs
from .handlers import Backend, handlers


class AgpExtension(ExtensionApp):
    name = "agp"
    catalog_ttl = Float(30.0, config=True, help="Seconds a catalog answer is cached in this server.")
    catalog_warm_up = Bool(
        True,
        config=True,
        help="Load the catalog and cache the namespaces and the workspace's tables when the server starts, in a "
        "thread, so the Catalog panel opens at once; False loads them when first asked.",
    )
    jobs_timeout = Float(
        30.0,
        config=True,
        help="Seconds this server waits for the workspace service on a jobs request; after that the user gets a 503.",
    )
    job_outputs_folder = Unicode(
        "job-outputs",
        config=True,
        help="Folder, relative to the server's root, where a run's executed notebook is saved when the user opens it.",
    )

    @validate("job_outputs_folder")
    def _relative_folder(self, proposal):
        parts = [p for p in proposal["value"].split("/") if p not in ("", ".")]
        if not parts or ".." in parts or proposal["value"].startswith("/"):
            raise TraitError(
                f"AgpExtension.job_outputs_folder must be a folder inside the server's root, like 'job-outputs' "
                f"(got {proposal['value']!r})."
            )
        return "/".join(parts)

    def initialize_settings(self) -> None:
        backend = Backend(self.catalog_ttl)
        self.settings["agp_extension"] = backend
        if self.catalog_warm_up:
            backend.warm_up(self.log)
        self.settings["agp_jobs"] = jobs.JobsBackend(backend.environ, self.jobs_timeout, self.job_outputs_folder)

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers("/"))
        self.handlers.extend(jobs.handlers("/"))
        self.handlers.extend(identity.handlers("/"))
        self.handlers.extend(history.handlers("/"))
