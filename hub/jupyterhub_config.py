# JupyterHub's config file for Antigravity: everything comes from agp.hub.config and the shared settings.
# The lab starts the hub with `jupyterhub -f <this file>` and AGP_CONFIG naming the lab's settings.
import shutil

from agp.core.settings import Settings
from agp.hub.config import configure

c = get_config()  # noqa: F821 (provided by JupyterHub)
configure(c, Settings(), chp=shutil.which("configurable-http-proxy") or "configurable-http-proxy")
