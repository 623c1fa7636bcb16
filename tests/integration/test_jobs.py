"""Jobs on the real lab: notebooks and scripts run by the workspace service's scheduler as their owner, outside any
notebook server (runner process as the owner's OS user, papermill on the Antigravity kernel, Trino, Spark, MinIO).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
import uuid

import psutil
import pytest
from conftest import query_rows, wait_until
from jobsapi import log_of, run_of, submit, wait_state

from agp.core import clients

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
ENDED = {"succeeded", "failed", "cancelled", "timed_out"}


def notebook(*cells: str, parameters: str | None = None) -> str:
    """A notebook's JSON: an optional cell tagged ``parameters`` (papermill's convention), then ``cells``."""
    out = []
    if parameters is not None:
        out.append(
            {
                "cell_type": "code",
                "metadata": {"tags": ["parameters"]},
                "source": parameters,
                "outputs": [],
                "execution_count": None,
            }
        )
    for src in cells:
        out.append({"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None})
    return json.dumps(
        {
            "cells": out,
            "metadata": {"kernelspec": {"name": "agp", "display_name": "agp", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


@pytest.fixture
def ws(new_workspace, admin_api, user_api, hub_url):
    """A workspace where alice and bob are editors, once Trino's rules let alice write in it."""
    from agp.kernels.credentials import BrokerClient, trino_connect

    made = new_workspace()
    slug = made["slug"]
    for user, role in (("alice", "editor"), ("bob", "editor")):
        r = admin_api("PUT", f"/workspaces/{slug}/members/{user}", json={"role": role})
        assert r.status_code == 200, r.text
    token = user_api("alice").http.headers["Authorization"].split()[1]
    alice = BrokerClient(f"{hub_url}/services/workspaces", token, slug)
    schema = slug.replace("-", "_")
    wait_until(lambda: query_rows(trino_connect(alice), f'CREATE TABLE "{schema}".probe AS SELECT 1 AS x'))
    query_rows(trino_connect(alice), f'DROP TABLE "{schema}".probe')
    return slug


def processes_of(run_id: int, attempt: int = 1) -> list[psutil.Process]:
    tag = f"agp-run-{run_id}-{attempt}"
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("AGP_JOB_RUN") == tag:
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_notebook_job_writes_with_sql_and_parameters_reach_it(ws, user_api, settings):
    alice = user_api("alice")
    schema = ws.replace("-", "_")
    source = notebook(
        f"%sql CREATE TABLE iceberg.{schema}.from_sql AS SELECT {{{{n}}}} AS n, '{{{{label}}}}' AS label",
        "print('rows', n * 2)",
        parameters="n = 1\nlabel = 'default'",
    )
    out = submit(alice, ws, source, parameters={"n": 21, "label": "nightly"})
    assert out["job"]["owner"] == "alice" and out["run"]["state"] == "queued"
    run = wait_state(alice, ws, out["run"]["id"], ENDED)
    assert run["state"] == "succeeded", (run, log_of(alice, ws, run["id"]))
    with clients.trino_connect(settings) as conn:
        assert query_rows(conn, f"SELECT n, label FROM iceberg.{schema}.from_sql") == [[21, "nightly"]]
    # The executed notebook has the injected parameters and the outputs.
    nb = alice("GET", f"/workspaces/{ws}/runs/{run['id']}/output").json()
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "n = 21" in "".join(injected[0]["source"])
    assert any("rows 42" in "".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", [])), nb
    assert "rows 42" in log_of(alice, ws, run["id"])
    # Nothing of it is left running, and its token is gone from the hub.
    assert processes_of(run["id"]) == []


def test_spark_job_writes_a_table_trino_reads(ws, user_api, settings):
    alice = user_api("alice")
    schema = ws.replace("-", "_")
    source = notebook(
        "from agp.kernels import spark\nsession = spark()",
        f"session.createDataFrame([(1, 'a'), (2, 'b')], 'id int, v string').writeTo('{schema}.from_spark').create()",
    )
    out = submit(alice, ws, source, timeout_seconds=600)
    run = wait_state(alice, ws, out["run"]["id"], ENDED, timeout=400)
    assert run["state"] == "succeeded", (run, log_of(alice, ws, run["id"])[-3000:])
    with clients.trino_connect(settings) as conn:
        assert query_rows(conn, f"SELECT id, v FROM iceberg.{schema}.from_spark ORDER BY id") == [[1, "a"], [2, "b"]]
    assert processes_of(run["id"]) == []


def test_a_failing_sql_cell_is_the_runs_reason_as_the_notebook_shows_it(ws, user_api):
    alice = user_api("alice")
    out = submit(alice, ws, notebook("x = 1", "%sql SELEC 1", "print('never')"))
    run = wait_state(alice, ws, out["run"]["id"], ENDED)
    assert run["state"] == "failed", run
    assert run["reason"].startswith(
        "Cell 2 failed: SYNTAX_ERROR at line 1, column 1: mismatched input 'SELEC'; expecting 'ALTER', "
    ), run["reason"]
    assert "UsageError" not in run["reason"]


def test_failing_cell_fails_the_run_and_retries_stop(ws, user_api, admin_api):
    alice = user_api("alice")
    out = submit(alice, ws, notebook("x = 1", "1 / 0", "print('never')"), max_retries=1)
    run = wait_state(alice, ws, out["run"]["id"], ENDED)
    assert run["state"] == "failed" and run["attempt"] == 2 and run["max_attempts"] == 2, run
    assert "ZeroDivisionError" in run["reason"] and run["reason"].startswith("Cell 2"), run["reason"]
    log = log_of(alice, ws, run["id"])
    assert log.count("attempt 1 of") == 1 and log.count("attempt 2 of") == 1, log[-2000:]
    events = admin_api("GET", f"/workspaces/{ws}/audit").json()
    assert [e for e in events if e["action"] == "run.retry"], events


def test_script_job_gets_parameters_and_its_exit_status(ws, user_api):
    alice = user_api("alice")
    script = (
        "import argparse, os, sys\n"
        "p = argparse.ArgumentParser(); p.add_argument('--day'); p.add_argument('--n', type=int)\n"
        "a = p.parse_args()\n"
        "print('day', a.day, 'n', a.n, os.environ['AGP_PARAM_DAY'])\n"
        "sys.exit(0 if a.n == 3 else 4)\n"
    )
    ok = submit(alice, ws, script, kind="script", parameters={"day": "2026-12-01", "n": 3})
    bad = submit(alice, ws, script, kind="script", parameters={"day": "x", "n": 5})
    run = wait_state(alice, ws, ok["run"]["id"], ENDED)
    assert run["state"] == "succeeded", (run, log_of(alice, ws, run["id"]))
    assert "day 2026-12-01 n 3 2026-12-01" in log_of(alice, ws, run["id"])
    failed = wait_state(alice, ws, bad["run"]["id"], ENDED)
    assert failed["state"] == "failed" and "status 4" in failed["reason"], failed


def test_viewer_cannot_submit_but_sees_runs(ws, user_api, admin_api):
    viewer, alice = user_api("bob"), user_api("alice")
    assert admin_api("PUT", f"/workspaces/{ws}/members/bob", json={"role": "viewer"}).status_code == 200
    r = viewer("POST", f"/workspaces/{ws}/jobs", json={"kind": "script", "filename": "a.py", "source": "print(1)"})
    assert r.status_code == 403 and "editor" in r.json()["detail"], r.text
    assert any(
        e["action"] == "job.create" and e["outcome"] == "denied"
        for e in admin_api("GET", f"/workspaces/{ws}/audit").json()
    )
    # A member who is not the run's owner (or an owner of the workspace) cannot cancel it; a viewer sees it.
    out = submit(alice, ws, "import time; time.sleep(60)", kind="script", filename="slow.py")
    assert viewer("GET", f"/workspaces/{ws}/runs/{out['run']['id']}").status_code == 200
    assert viewer("POST", f"/workspaces/{ws}/runs/{out['run']['id']}/cancel").status_code == 403
    assert alice("POST", f"/workspaces/{ws}/runs/{out['run']['id']}/cancel").status_code == 200
    wait_state(alice, ws, out["run"]["id"], {"cancelled"})


def test_cancel_stops_spark_and_trino(ws, user_api, settings):
    alice = user_api("alice")
    schema = ws.replace("-", "_")
    source = notebook(
        "from agp.kernels import spark\nsession = spark()\nprint('spark-up', flush=True)",
        # A long Spark job, then a long Trino query: cancel lands in one of them.
        "session.range(0, 10**12, numPartitions=2).selectExpr('sum(id * id)').collect()",
        "%sql SELECT count(*) FROM UNNEST(sequence(1, 100000)) a CROSS JOIN UNNEST(sequence(1, 100000)) b",
    )
    out = submit(alice, ws, source, timeout_seconds=900)
    run_id = out["run"]["id"]
    wait_until(lambda: _assert("spark-up" in log_of(alice, ws, run_id)), timeout=300)
    assert any("java" in p.name() for p in processes_of(run_id)), [p.cmdline()[:2] for p in processes_of(run_id)]
    time.sleep(3)
    r = alice("POST", f"/workspaces/{ws}/runs/{run_id}/cancel")
    assert r.status_code == 200, r.text
    run = wait_state(alice, ws, run_id, ENDED, timeout=120)
    assert run["state"] == "cancelled", run
    assert processes_of(run_id) == []  # runner, kernel and Spark's JVM are gone
    with clients.trino_connect(settings) as conn:
        running = query_rows(
            conn,
            "SELECT query_id FROM system.runtime.queries WHERE state IN ('RUNNING', 'QUEUED', "
            f"'PLANNING') AND \"user\" = 'alice' AND query LIKE '%{schema}%'",
        )
    assert running == []


def _assert(cond: bool) -> bool:
    assert cond
    return cond


def test_sigkill_of_the_runner_fails_the_run(ws, user_api):
    alice = user_api("alice")
    out = submit(alice, ws, notebook("print('sleeping', flush=True)\nimport time\ntime.sleep(600)"))
    run_id = out["run"]["id"]
    wait_until(lambda: _assert("sleeping" in log_of(alice, ws, run_id)), timeout=120)
    runners = [p for p in processes_of(run_id) if "agp.kernels.jobrun" in " ".join(p.cmdline())]
    assert len(runners) == 1
    os.kill(runners[0].pid, signal.SIGKILL)
    run = wait_state(alice, ws, run_id, ENDED, timeout=60)
    assert run["state"] == "failed" and "SIGKILL" in run["reason"], run
    wait_until(lambda: _assert(processes_of(run_id) == []), timeout=20)  # its kernel went with it


def test_timeout_stops_the_run(ws, user_api):
    alice = user_api("alice")
    out = submit(alice, ws, "import time; print('x', flush=True); time.sleep(300)", kind="script", timeout_seconds=5)
    run = wait_state(alice, ws, out["run"]["id"], ENDED, timeout=90)
    assert run["state"] == "timed_out" and "5 s" in run["reason"], run
    assert processes_of(run["id"]) == []


def service_process(settings) -> psutil.Process:
    """The lab's workspace service: the process listening on its port (a cluster on this machine runs another)."""
    port = settings.ports.workspaces
    found = {c.pid for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    assert len(found) == 1, found
    return psutil.Process(found.pop())


def test_schedule_fires_once_per_period_across_a_service_restart(ws, user_api, settings):
    alice = user_api("alice")
    out = submit(alice, ws, "print('tick')", kind="script", schedule="*/10 * * * * *", run_now=False)
    job_id = out["job"]["id"]
    assert out["run"] is None and out["job"]["next_fire_at"]

    def runs() -> list[dict]:
        return alice("GET", f"/workspaces/{ws}/runs", params={"job_id": job_id, "limit": 100}).json()

    wait_until(lambda: _assert(len(runs()) >= 2), timeout=60)
    # The service is frozen across a fire time, then killed; the hub starts it again.
    service = service_process(settings)
    service.suspend()
    stopped_at = time.time()
    time.sleep(12)
    service.kill()
    wait_until(lambda: _assert(service_process(settings).pid != service.pid), timeout=60)
    back_at = time.time()
    wait_until(lambda: _assert(alice("GET", "/me").status_code == 200), timeout=60)
    time.sleep(22)
    alice("PATCH", f"/workspaces/{ws}/jobs/{job_id}", json={"paused": True})
    done = runs()
    fired = sorted(r["scheduled_for"] for r in done)
    assert len(fired) == len(set(fired)), fired  # no period twice
    from datetime import datetime

    times = [datetime.fromisoformat(f).timestamp() for f in fired]
    # Every period before the stop and after the restart has its run; those missed while down have one between them.
    missed = [t for t in times if stopped_at < t < back_at]
    assert len(missed) == 1, (fired, stopped_at, back_at)
    after = [t for t in times if t >= back_at]
    assert len(after) >= 2, fired
    # Outside the stop, consecutive runs are exactly one period apart: none lost, none doubled.
    steady = [b - a for a, b in itertools.pairwise(times) if b <= stopped_at or a >= back_at]
    assert steady and all(abs(g - 10) < 0.001 for g in steady), fired
    for run in done:
        assert wait_state(alice, ws, run["id"], ENDED)["state"] == "succeeded"


def test_a_removed_member_s_schedule_is_refused(ws, user_api, admin_api):
    bob = user_api("bob")
    out = submit(bob, ws, "print('hi')", kind="script", schedule="*/5 * * * * *", run_now=False)
    job_id = out["job"]["id"]
    assert admin_api("DELETE", f"/workspaces/{ws}/members/bob").status_code == 200
    runs = wait_until(lambda: _refused_runs(admin_api, ws, job_id), timeout=60)
    assert "Refused" in runs[0]["reason"] and "bob" in runs[0]["reason"], runs
    events = admin_api("GET", f"/workspaces/{ws}/audit").json()
    assert any(e["action"] == "run.start" and e["outcome"] == "refused" and e["actor"] == "bob" for e in events)
    admin_api("PUT", f"/workspaces/{ws}/members/bob", json={"role": "editor"})
    bob("PATCH", f"/workspaces/{ws}/jobs/{job_id}", json={"paused": True})


def _refused_runs(api, ws: str, job_id: int) -> list[dict]:
    runs = [r for r in api("GET", f"/workspaces/{ws}/runs", params={"job_id": job_id}).json() if r["state"] == "failed"]
    assert runs
    return runs


def test_quota_holds_runs_in_the_queue(ws, user_api, admin_api):
    alice = user_api("alice")
    assert admin_api("PATCH", f"/workspaces/{ws}", json={"max_concurrent_runs": 2}).status_code == 200
    ids = [
        submit(alice, ws, "import time; time.sleep(4)", kind="script", filename=f"s{i}.py")["run"]["id"]
        for i in range(5)
    ]
    most = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        states = [run_of(alice, ws, i)["state"] for i in ids]
        most = max(most, states.count("running"))
        if all(s in ENDED for s in states):
            break
        time.sleep(0.3)
    assert states == ["succeeded"] * 5 and most == 2, (states, most)


def test_bad_input_is_one_sentence(ws, user_api):
    alice = user_api("alice")
    cases = [
        ({"kind": "notebook", "filename": "a.ipynb", "source": "not json"}, 422, "not a notebook"),
        ({"kind": "script", "filename": "../a.py", "source": "1"}, 422, "plain file name"),
        ({"kind": "script", "filename": "a.py", "source": "1", "schedule": "61 * * * *"}, 422, "cron"),
        (
            {"kind": "script", "filename": "a.py", "source": "1", "schedule": "* * * * *", "timezone": "Mars/Base"},
            422,
            "time zone",
        ),
    ]
    for body, status, words in cases:
        r = alice("POST", f"/workspaces/{ws}/jobs", json=body)
        assert r.status_code == status and words in r.json()["detail"], (body, r.text)
    assert alice("GET", f"/workspaces/{ws}/jobs").json() == []
    stranger = f"t-{uuid.uuid4().hex[:8]}"
    assert alice("GET", f"/workspaces/{stranger}/runs").status_code == 404


def test_racing_schedulers_fire_a_period_once(ws, user_api, settings):
    """Four schedulers (and the service's own) claim one due period at the same moment: one run is made."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime, timedelta

    from agp.core.models import Job
    from agp.hub import db as dbmod
    from agp.hub.jobs.scheduler import fire_due

    alice = user_api("alice")
    job_id = submit(alice, ws, "print(1)", kind="script", schedule="0 0 1 1 *", run_now=False)["job"]["id"]
    make_session = dbmod.sessions(dbmod.make_engine(settings.db_url))
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    with make_session() as db:
        db.get(Job, job_id).next_fire_at = due
        db.commit()
    barrier = threading.Barrier(4)

    def fire(_: int) -> list[int]:
        with make_session() as db:
            barrier.wait()
            return fire_due(db, datetime.now(UTC))

    with ThreadPoolExecutor(4) as pool:
        made = [run for runs in pool.map(fire, range(4)) for run in runs]
    runs = alice("GET", f"/workspaces/{ws}/runs", params={"job_id": job_id}).json()
    assert len(runs) == 1 and datetime.fromisoformat(runs[0]["scheduled_for"]) == due, runs
    assert len([r for r in made if r == runs[0]["id"]]) <= 1
    job = alice("GET", f"/workspaces/{ws}/jobs/{job_id}").json()
    assert datetime.fromisoformat(job["next_fire_at"]).month == 1 and datetime.fromisoformat(job["next_fire_at"]) > due
    assert wait_state(alice, ws, runs[0]["id"], ENDED)["state"] == "succeeded"


def test_cli_submits_follows_and_deleting_the_job_leaves_no_file(ws, user_api, settings, s3, tmp_path):
    import subprocess
    import sys

    from agp.core.names import WorkspaceNames

    alice = user_api("alice")
    token = alice.http.headers["Authorization"].split()[1]
    script = tmp_path / "meters.py"
    script.write_text(
        "import argparse\np = argparse.ArgumentParser(); p.add_argument('--day')\nprint('day', p.parse_args().day)\n"
    )
    env = {**os.environ, "AGP_TOKEN": token}
    env.pop("AGP_WORKSPACE_SERVICE_URL", None)
    cli = [sys.executable, "-m", "agp.compose.cli", "job", "-w", ws, "--hub-url", settings.hub_url]
    done = subprocess.run(
        [*cli, "submit", str(script), "-p", "day=2026-12-01", "--wait"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "day 2026-12-01" in done.stdout and "succeeded" in done.stdout + done.stderr, done.stdout + done.stderr
    listed = subprocess.run([*cli, "--json", "list"], env=env, capture_output=True, text=True, timeout=60)
    runs = json.loads(listed.stdout)
    assert [r["state"] for r in runs] == ["succeeded"], runs
    bucket = WorkspaceNames(ws).bucket
    prefix = f".agp-jobs/runs/{runs[0]['id']}/"
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount") == 1  # the log
    r = alice("DELETE", f"/workspaces/{ws}/jobs/{runs[0]['job_id']}")
    assert r.status_code == 204, r.text
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount") == 0
    assert alice("GET", f"/workspaces/{ws}/runs/{runs[0]['id']}").status_code == 404


def test_retention_prunes_old_runs_with_their_files(ws, user_api, settings, s3):
    from datetime import UTC, datetime, timedelta

    from agp.core.models import JobRun
    from agp.core.names import WorkspaceNames
    from agp.hub import db as dbmod
    from agp.hub.broker import Broker
    from agp.hub.jobs.scheduler import Scheduler
    from agp.hub.jobs.storage import RunStorage

    alice = user_api("alice")
    old, recent = (submit(alice, ws, "print(1)", kind="script")["run"]["id"] for _ in range(2))
    for run_id in (old, recent):
        assert wait_state(alice, ws, run_id, ENDED)["state"] == "succeeded"
    make_session = dbmod.sessions(dbmod.make_engine(settings.db_url))
    with make_session() as db:
        db.get(JobRun, old).ended_at = datetime.now(UTC) - timedelta(days=settings.jobs.retention_days, hours=1)
        db.commit()
    scheduler = Scheduler(settings, make_session, None, None, RunStorage(Broker(settings)))
    assert scheduler.prune() >= 1
    bucket = WorkspaceNames(ws).bucket
    assert alice("GET", f"/workspaces/{ws}/runs/{old}").status_code == 404
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f".agp-jobs/runs/{old}/").get("KeyCount") == 0
    assert alice("GET", f"/workspaces/{ws}/runs/{recent}").status_code == 200
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f".agp-jobs/runs/{recent}/").get("KeyCount") == 1
