"""The jupyter_server extension, widgets, ``%sql`` and Spark helpers (filled by the notebook issue)."""
