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
    return target / "agp.json"
