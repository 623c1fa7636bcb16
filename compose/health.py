"""Health checks: one call per service that says whether it serves, never raising."""

from __future__ import annotations

import logging

import psycopg
import requests

from .services import Health

log = logging.getLogger(__name__)


def check(health: Health, timeout: float = 3.0) -> tuple[bool, str]:
    """``(healthy, detail)`` for one service."""
    try:
        if health.kind == "postgres":
            with psycopg.connect(health.target, connect_timeout=max(1, int(timeout))) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]
            return True, f"PostgreSQL {version}"
        r = requests.get(health.target, timeout=timeout)
        if health.kind == "trino":
            if r.status_code != 200:
                return False, f"HTTP {r.status_code}"
            info = r.json()
            if info.get("starting", True):
                return False, "starting"
            return True, f"Trino {info.get('nodeVersion', {}).get('version', '?')}"
        return (200 <= r.status_code < 300), f"HTTP {r.status_code}"
    except (requests.RequestException, psycopg.Error, OSError, ValueError) as e:
        log.debug("health check %s failed: %s", health.target, e)
        return False, type(e).__name__
