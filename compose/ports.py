"""Is a port free, and if not, who holds it."""

from __future__ import annotations

import socket

import psutil


def holder(port: int) -> str | None:
    """A description of the process listening on ``port`` (any address), or ``None`` when the port is free."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return describe(conn.pid)
    if _bindable(port):
        return None
    return "a process this user cannot see"


def describe(pid: int | None) -> str:
    if pid is None:
        return "a process this user cannot see"
    try:
        proc = psutil.Process(pid)
        cmd = " ".join(proc.cmdline()[:4]) or proc.name()
        return f"pid {pid} ({cmd[:120]})"
    except psutil.Error:
        return f"pid {pid}"


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True
