"""A notebook's kernel in a hub-started workspace server, driven as JupyterLab drives it: REST and the websocket."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
import websocket

WIDGET = "application/vnd.jupyter.widget-view+json"  # progress bars and browsers: not text


def gather(msg: dict, text: list[str], errors: list[dict]) -> None:
    """Add what an IOPub message shows as text to ``text`` and its error to ``errors`` (widgets are not text)."""
    kind, content = msg["header"]["msg_type"], msg["content"]
    if kind == "stream":
        text.append(content["text"])
    elif kind == "error":
        errors.append(content)
    elif kind in ("execute_result", "display_data") and WIDGET not in content["data"]:
        text.append(content["data"].get("text/plain", ""))


@contextmanager
def workspace_kernel(folder: Path, hub_url: str, token: str, **env: str) -> Iterator:
    """A real "Python 3 (Antigravity)" kernel, started here with the environment a demo workspace server of the
    token's user gives it (plus ``env``); yields its client."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    from agp.kernels import kernelspec

    kernelspec.install(folder)
    km = KernelManager(
        kernel_name=kernelspec.NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(folder / "kernels")])
    )
    km.start_kernel(
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(folder),
            "AGP_WORKSPACE_SERVICE_URL": f"{hub_url}/services/workspaces",
            "JUPYTERHUB_API_TOKEN": token,
            "AGP_WORKSPACE": "demo",
            **env,
        }
    )
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@dataclass
class Reply:
    text: str
    errors: list[dict]
    messages: list[dict]

    def comms(self, model_name: str | None = None) -> dict[str, dict]:
        """The widget models opened in this reply: comm id -> state."""
        found = {}
        for m in self.messages:
            if m["msg_type"] == "comm_open":
                state = m["content"]["data"].get("state", {})
                if model_name is None or state.get("_model_name") == model_name:
                    found[m["content"]["comm_id"]] = state
        return found

    def updates(self, comm_id: str) -> dict:
        """Every state change the kernel sent for one widget model, merged."""
        state: dict = {}
        for m in self.messages:
            if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id:
                state.update(m["content"]["data"].get("state", {}))
        return state


@dataclass
class NotebookKernel:
    http: requests.Session
    server_url: str  # .../user/<name>/<server>
    kernel_id: str
    session: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def new_notebook(cls, http: requests.Session, server_url: str, path: str) -> NotebookKernel:
        """Create ``path`` as an empty notebook and start its kernel as JupyterLab does (the server's default)."""
        r = http.put(f"{server_url}/api/contents/{path}", json={"type": "notebook"}, timeout=30)
        assert r.status_code in (200, 201), r.text
        r = http.post(
            f"{server_url}/api/sessions",
            json={"path": path, "type": "notebook", "name": path, "kernel": {}},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        return cls(http, server_url, r.json()["kernel"]["id"])

    @property
    def kernel(self) -> dict:
        return self.http.get(f"{self.server_url}/api/kernels/{self.kernel_id}", timeout=30).json()

    def _connect(self) -> websocket.WebSocket:
        url = self.server_url.replace("http", "ws", 1) + f"/api/kernels/{self.kernel_id}/channels"
        return websocket.create_connection(
            url, header=[f"Authorization: {self.http.headers['Authorization']}"], timeout=300
        )

    def _message(self, msg_type: str, content: dict) -> dict:
        return {
            "header": {
                "msg_id": uuid.uuid4().hex,
                "username": "test",
                "session": self.session,
                "msg_type": msg_type,
                "version": "5.3",
                "date": dt.datetime.now(dt.timezone.utc).isoformat(),
            },
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }

    def execute(self, code: str) -> Reply:
        request = self._message(
            "execute_request",
            {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False},
        )
        return self._roundtrip(request)

    def comm_update(self, comm_id: str, state: dict) -> Reply:
        """What a click does in the browser: the frontend sends the widget's new state to the kernel."""
        request = self._message(
            "comm_msg", {"comm_id": comm_id, "data": {"method": "update", "state": state, "buffer_paths": []}}
        )
        return self._roundtrip(request)

    def _roundtrip(self, request: dict) -> Reply:
        ws = self._connect()
        try:
            ws.send(json.dumps(request))
            text, errors, messages = [], [], []
            while True:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
                    continue
                messages.append(msg)
                gather(msg, text, errors)
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    return Reply("".join(text), errors, messages)
        finally:
            ws.close()

    def shutdown(self) -> None:
        self.http.delete(f"{self.server_url}/api/kernels/{self.kernel_id}", timeout=30)
