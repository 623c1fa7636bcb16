"""Benchmarks of jobs on the lab, side by side in one run.

    python3 tests/bench/bench_jobs.py [--runs 5]

1. A trivial notebook job (one cell, ``print``): submit-to-start latency (the POST until the runner's first log line
   is readable through the API) and submit-to-end time, against papermill running the same notebook directly on the
   same kernel in a fresh process (``papermill in.ipynb out.ipynb -k agp``, the plain tool; as alice's OS user, as
   the runner runs), alternated, medians.
2. 20 runs submitted at once in a workspace with a quota of 4 concurrent runs: all complete, the most seen running
   at once, and the total time against 5 sequential batches of 4 (each batch submitted once the previous ended).

Needs the lab running (`agp lab up`). Makes a workspace of its own and removes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import remove_workspace
from hubclient import Api, HubSession

from agp.core.settings import Settings

ENDED = {"succeeded", "failed", "cancelled", "timed_out"}
NOTEBOOK = {
    "cells": [{"cell_type": "code", "metadata": {}, "source": "print('tick')", "outputs": [], "execution_count": None}],
    "metadata": {"kernelspec": {"name": "agp", "display_name": "Python 3 (Antigravity)", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def api(settings: Settings, user: str) -> Api:
    h = HubSession(settings.hub_url)
    h.login(user, settings.credentials.demo_password.get_secret_value())
    return Api(settings.hub_url, h.new_token(user))


def submit(alice: Api, ws: str, name: str = "tick.ipynb") -> tuple[int, float]:
    t0 = time.perf_counter()
    body = {"kind": "notebook", "filename": name, "source": json.dumps(NOTEBOOK)}
    r = alice("POST", f"/workspaces/{ws}/jobs", json=body)
    r.raise_for_status()
    return r.json()["run"]["id"], t0


def wait(alice: Api, ws: str, run_id: int, t0: float) -> tuple[float, float]:
    """(submit to the runner's first log line, submit to the end)."""
    started = None
    while True:
        log = alice("GET", f"/workspaces/{ws}/runs/{run_id}/log")
        if started is None and log.text.startswith("agp: run"):
            started = time.perf_counter() - t0
        if log.headers.get("x-run-state") in ENDED:
            run = alice("GET", f"/workspaces/{ws}/runs/{run_id}").json()
            if run["state"] != "succeeded":
                raise SystemExit(f"run {run_id} {run['state']}: {run['reason']}")
            return started if started is not None else float("nan"), time.perf_counter() - t0
        time.sleep(0.02)


def plain_papermill(settings: Settings) -> float:
    """papermill on the same notebook and kernel in a fresh process, as the runner runs it: the runtime's Python, as
    alice's OS user with her servers' environment when servers run as OS users."""
    import os
    import pwd

    from agp.spawner.osusers import ServerFolders, os_user_name, server_env

    folders = ServerFolders(settings.servers_root, settings.server_runtime_root)
    as_user = settings.run_as_os_users and folders.python.exists()
    python = str(folders.python) if as_user else sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.ipynb", Path(tmp) / "out.ipynb"
        src.write_text(json.dumps(NOTEBOOK))
        if as_user:
            entry = pwd.getpwnam(os_user_name("alice"))
            for path in (tmp, src):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        cmd = [python, "-m", "papermill", str(src), str(out), "-k", "agp", "--no-progress-bar", "--language", "python"]
        env = None
        if as_user:
            user = os_user_name("alice")
            env = server_env(Path(pwd.getpwnam(user).pw_dir), folders.venv, user)
            cmd = ["runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *cmd]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t0


def concurrency(alice: Api, admin: Api, ws: str) -> None:
    admin("PATCH", f"/workspaces/{ws}", json={"max_concurrent_runs": 4}).raise_for_status()
    t0 = time.perf_counter()
    ids = [submit(alice, ws, f"c{i}.ipynb")[0] for i in range(20)]
    most = 0
    while True:
        runs = alice("GET", f"/workspaces/{ws}/runs", params={"limit": 20}).json()
        states = [r["state"] for r in runs if r["id"] in ids]
        most = max(most, states.count("running"))
        if len(states) == 20 and all(s in ENDED for s in states):
            break
        time.sleep(0.1)
    together = time.perf_counter() - t0
    ok = states.count("succeeded")
    t0 = time.perf_counter()
    for batch in range(5):
        started = [submit(alice, ws, f"b{batch}-{i}.ipynb") for i in range(4)]
        for run_id, ts in started:
            wait(alice, ws, run_id, ts)
    batches = time.perf_counter() - t0
    print(f"\n20 runs, quota 4: {ok}/20 succeeded, at most {most} running at once")
    print(
        f"  all at once {together:6.1f} s   5 sequential batches of 4 {batches:6.1f} s   ratio {together / batches:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-concurrency", action="store_true")
    args = parser.parse_args()
    settings = Settings()
    admin, alice = api(settings, "admin"), api(settings, "alice")
    ws = f"bench-jobs-{uuid.uuid4().hex[:6]}"
    admin("POST", "/workspaces", json={"slug": ws}).raise_for_status()
    admin("PUT", f"/workspaces/{ws}/members/alice", json={"role": "editor"}).raise_for_status()
    try:
        plain_papermill(settings)  # warm the page cache once, for both sides
        starts, totals, plains = [], [], []
        for _ in range(args.runs):
            run_id, t0 = submit(alice, ws)
            start, total = wait(alice, ws, run_id, t0)
            starts.append(start)
            totals.append(total)
            plains.append(plain_papermill(settings))
        job, plain = statistics.median(totals), statistics.median(plains)
        print(f"trivial notebook job, median of {args.runs}:")
        print(
            f"  submit to start (runner's first log line) {statistics.median(starts):6.2f} s  (max {max(starts):.2f})"
        )
        print(f"  submit to end {job:6.2f} s   papermill directly {plain:6.2f} s   ratio {job / plain:.2f}")
        if not args.skip_concurrency:
            concurrency(alice, admin, ws)
    finally:
        remove_workspace(settings, ws)


if __name__ == "__main__":
    main()
