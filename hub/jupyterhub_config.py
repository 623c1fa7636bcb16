# JupyterHub's config file for Antigravity: everything comes from agp.hub.config and the shared settings.
# The lab starts the hub with `jupyterhub -f <this file>` and AGP_CONFIG naming the lab's settings; on Kubernetes
# AGP_HUB_CONFIG also names the chart's traitlets config (its `hub.config` values), applied last; docker-compose
# passes its deployment's traits on the hub's command line (--DockerSpawner.image=...), which wins over both.
import os
import shutil

from agp.core.settings import Settings
from agp.hub.config import configure, load_overrides

c = get_config()  # noqa: F821 (provided by JupyterHub)
configure(
    c,
    Settings(),
    chp=shutil.which("configurable-http-proxy") or "configurable-http-proxy",
    config_file=os.environ.get("AGP_CONFIG"),
    # The service reads the settings from the same sources as the hub: its AGP_* variables too (JupyterHub gives a
    # managed service none of the hub's environment). Also what the Kubernetes job executor needs in a pod: the
    # hub's HOME (the hub's image runs as any uid, with no passwd entry, where Python finds no home without it and
    # kubernetes_asyncio fails at import) and the apiserver's address, which the in-cluster config reads from
    # KUBERNETES_SERVICE_HOST and _PORT.
    service_env={
        k: v
        for k, v in os.environ.items()
        if (k.startswith("AGP_") and k != "AGP_HUB_CONFIG")
        or k in ("HOME", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
    },
)
if os.environ.get("AGP_HUB_CONFIG"):
    load_overrides(c, os.environ["AGP_HUB_CONFIG"])
