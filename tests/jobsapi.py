"""Jobs through the workspace service's API, for the jobs tests: submit, read a run, wait for a state, read a log."""

from __future__ import annotations

import time


def submit(api, slug: str, source: str, kind: str = "notebook", expect: int = 201, **body) -> dict:
    body.setdefault("filename", "job.ipynb" if kind == "notebook" else "job.py")
    r = api("POST", f"/workspaces/{slug}/jobs", json={"kind": kind, "source": source, **body})
    assert r.status_code == expect, r.text
    return r.json()


def run_of(api, slug: str, run_id: int) -> dict:
    r = api("GET", f"/workspaces/{slug}/runs/{run_id}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_state(api, slug: str, run_id: int, states: set[str], timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = run_of(api, slug, run_id)
        if run["state"] in states:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['state']} after {timeout} s: {run}"
        time.sleep(0.5)


def log_of(api, slug: str, run_id: int) -> str:
    r = api("GET", f"/workspaces/{slug}/runs/{run_id}/log")
    assert r.status_code == 200, r.text
    return r.text
