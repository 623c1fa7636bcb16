"""The jupyter_server extension (workspace info and catalog REST handlers) of workspace servers."""

import shutil
from pathlib import Path


def _jupyter_server_extension_points():
    from .app import AgpExtension

    return [{"module": "agp.extension.app", "app": AgpExtension}]


def enable_for(home: "Path") -> "Path":
    """Copy the shipped ``jupyter_server_config.d/agp.json`` into a user's Jupyter config folder."""
    from pathlib import Path

    target = Path(home) / ".jupyter" / "jupyter_server_config.d"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).parent / "jupyter_server_config.d" / "agp.json", target / "agp.json")
    _lab_defaults(Path(home))
    return target / "agp.json"


# JupyterLab settings a workspace server starts with (the user may change them; an existing file is kept): an
# on-premise platform does not ask to fetch news or check for updates from the internet.
LAB_DEFAULTS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def _lab_defaults(home: "Path") -> None:
    import json

    settings = home / ".jupyter" / "lab" / "user-settings"
    for name, values in LAB_DEFAULTS.items():
        path = settings / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values, indent=2) + "\n")
