"""The Spark progress bar's pure parts (what to show, in which cell) and the Spark UI's address behind the proxy."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from agp.kernels import spark_progress as sp
from agp.kernels import spark_session as ss


def running(job_id: int, *stages: sp.Stage) -> sp.Job:
    return sp.Job(job_id, sp.RUNNING, stages)


def test_percent_counts_the_completed_tasks_of_active_stages():
    assert sp.percent([running(1, sp.Stage(2, num_tasks=4, completed=1, active=2))]) == 25
    both = [running(1, sp.Stage(2, 4, 4, 0)), running(3, sp.Stage(4, 6, 1, 2))]
    assert sp.percent(both) == 50
    assert sp.percent([running(1)]) == 0, "a job between stages has no tasks yet"
    assert sp.percent([running(1, sp.Stage(2, 0, 0, 0))]) == 0


def test_texts_name_jobs_stages_and_tasks():
    assert sp.running_text([running(3, sp.Stage(5, 4, 2, 2))]) == "job 3, stage 5: 2/4 tasks done, 2 running (50%)"
    two = [running(3, sp.Stage(5, 4, 1, 1, failed=1)), running(4, sp.Stage(6, 4, 0, 1))]
    assert sp.running_text(two) == "jobs 3, 4, stages 5, 6: 1/8 tasks done, 2 running, 1 failed (12%)"
    assert sp.running_text([running(7)]) == "job 7: starting"
    assert sp.finished_text({3: sp.SUCCEEDED}) == "job 3 succeeded"
    assert sp.finished_text({4: sp.FAILED, 3: sp.SUCCEEDED, 5: sp.SUCCEEDED}) == "3 jobs: 2 succeeded, 1 failed"


def test_bundle_has_a_bar_a_label_and_a_link_to_the_job():
    data = sp.bundle("job 3: <x> & y", 40, "/user/alice/demo/proxy/4041", job_id=3)
    assert data["text/plain"] == "[Spark] job 3: <x> & y"
    assert '<progress max="100" value="40"' in data["text/html"]
    assert "job 3: &lt;x&gt; &amp; y" in data["text/html"], "labels are escaped"
    assert 'href="/user/alice/demo/proxy/4041/jobs/job/?id=3"' in data["text/html"]
    no_bar = sp.bundle("job 3 failed", None, None)
    assert "<progress" not in no_bar["text/html"] and "Spark UI" not in no_bar["text/html"]


def test_a_quick_job_shows_nothing():
    bars = sp.CellBars(show_after=0.5)
    job = running(0, sp.Stage(0, 2, 0, 2))
    assert bars.step(10.0, "cell-1", [job]) == []
    assert bars.step(10.3, "cell-1", [sp.Job(0, sp.SUCCEEDED)]) == []
    assert bars.watched() == set()


def test_a_long_job_gets_one_bar_updated_until_it_ends():
    bars = sp.CellBars("/p", show_after=0.5)
    assert bars.step(0.0, "c1", [running(0, sp.Stage(0, 4, 0, 2))]) == []
    [shown] = bars.step(0.6, "c1", [running(0, sp.Stage(0, 4, 1, 2))])
    assert (shown.kind, shown.cell) == ("display", "c1")
    assert "1/4 tasks done" in shown.data["text/plain"] and 'value="25"' in shown.data["text/html"]
    assert bars.watched() == {0}
    assert bars.step(0.9, "c1", [running(0, sp.Stage(0, 4, 1, 2))]) == [], "nothing changed, nothing sent"
    [update] = bars.step(1.2, "c1", [running(0, sp.Stage(0, 4, 3, 1))])
    assert (update.kind, update.display_id) == ("update", shown.display_id)
    [done] = bars.step(1.5, "c1", [sp.Job(0, sp.SUCCEEDED)])
    assert (done.kind, done.display_id) == ("update", shown.display_id)
    assert done.data["text/plain"] == "[Spark] job 0 succeeded" and 'value="100"' in done.data["text/html"]
    assert bars.watched() == set()


def test_later_jobs_of_the_same_cell_reuse_its_bar_and_a_new_cell_gets_its_own():
    bars = sp.CellBars(show_after=0)
    [first] = bars.step(0, "c1", [running(0, sp.Stage(0, 2, 0, 2))])
    bars.step(1, "c1", [sp.Job(0, sp.SUCCEEDED)])
    [again] = bars.step(2, "c1", [running(1, sp.Stage(1, 2, 0, 2))])
    assert (again.kind, again.display_id) == ("update", first.display_id)
    assert again.data["text/plain"].startswith("[Spark] job 1, stage 1")
    [failed] = bars.step(3, "c1", [sp.Job(1, sp.FAILED)])
    assert failed.data["text/plain"] == "[Spark] 2 jobs: 1 succeeded, 1 failed"
    assert "<progress" not in failed.data["text/html"]
    [other] = bars.step(4, "c2", [running(2, sp.Stage(2, 2, 0, 2))])
    assert (other.kind, other.cell) == ("display", "c2") and other.display_id != first.display_id


def test_a_bar_is_finished_in_its_own_cell_after_the_next_cell_started():
    bars = sp.CellBars(show_after=0)
    [shown] = bars.step(0, "c1", [running(0, sp.Stage(0, 2, 1, 1))])
    [done] = bars.step(1, "c2", [sp.Job(0, sp.SUCCEEDED)])
    assert (done.kind, done.display_id, done.cell) == ("update", shown.display_id, "c1")
    assert bars.cells() == set(), "a finished bar of an earlier cell is forgotten"
    assert bars.step(2, "c2", []) == []


def test_a_job_the_tracker_forgot_ends_its_bar():
    bars = sp.CellBars(show_after=0)
    bars.step(0, "c1", [running(0, sp.Stage(0, 2, 1, 1))])
    [done] = bars.step(1, "c1", [sp.Job(0, sp.UNKNOWN)])
    assert done.data["text/plain"] == "[Spark] job 0 unknown"
    assert bars.watched() == set()


class Tracker:
    """A stand-in for pyspark's StatusTracker with a fixed state."""

    def __init__(self, jobs, stages, active_jobs, active_stages):
        self.jobs, self.stages, self.active_jobs, self.active_stages = jobs, stages, active_jobs, active_stages

    def getActiveJobsIds(self):
        return list(self.active_jobs)

    def getActiveStageIds(self):
        return list(self.active_stages)

    def getJobInfo(self, job_id):
        return self.jobs.get(job_id)

    def getStageInfo(self, stage_id):
        return self.stages.get(stage_id)


def test_read_jobs_keeps_active_stages_and_asks_for_watched_jobs():
    stage = SimpleNamespace(
        stageId=7, currentAttemptId=0, name="count", numTasks=4, numActiveTasks=2, numCompletedTasks=1,
        numFailedTasks=0,
    )  # fmt: skip
    pending = SimpleNamespace(stageId=6, numTasks=9, numActiveTasks=0, numCompletedTasks=0, numFailedTasks=0)
    tracker = Tracker(
        jobs={
            3: SimpleNamespace(jobId=3, stageIds=[6, 7], status="RUNNING"),
            1: SimpleNamespace(jobId=1, stageIds=[2], status="SUCCEEDED"),
        },
        stages={7: stage, 6: pending},
        active_jobs=[3],
        active_stages=[7],
    )
    jobs = sp.read_jobs(tracker, watched={1, 2})
    assert jobs == [
        sp.Job(1, "SUCCEEDED"),
        sp.Job(2, sp.UNKNOWN),
        sp.Job(3, "RUNNING", (sp.Stage(7, num_tasks=4, completed=1, active=2, failed=0),)),
    ]


def test_outside_a_kernel_there_is_no_shell():
    assert sp.kernel_shell() is None


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("/user/alice/demo/", {"spark.ui.port": "4041", "spark.ui.proxyBase": "/user/alice/demo/proxy/4041"}),
        ("/user/alice/demo", {"spark.ui.port": "4041", "spark.ui.proxyBase": "/user/alice/demo/proxy/4041"}),
        (None, {"spark.ui.port": "4041"}),
        ("", {"spark.ui.port": "4041"}),
    ],
)
def test_ui_conf_behind_the_proxy_and_without_it(prefix, expected):
    assert ss.ui_conf(4041, prefix) == expected


def test_ui_url_is_the_proxied_jobs_page_in_a_hub_server_and_sparks_own_elsewhere():
    assert ss.ui_url("/user/alice/demo/", 4041, "http://host:4041") == "/user/alice/demo/proxy/4041/jobs/"
    assert ss.ui_url(None, 4041, "http://host:4041") == "http://host:4041"
    assert ss.ui_url("/user/alice/demo/", None, None) is None, "the UI is off"


def test_ui_link_names_the_application():
    link = ss.ui_link("/user/a/b/proxy/1/jobs/", "agp-<demo>")
    assert link["text/plain"] == "Spark UI: /user/a/b/proxy/1/jobs/"
    assert '<a href="/user/a/b/proxy/1/jobs/" target="_blank"' in link["text/html"]
    assert "agp-&lt;demo&gt;" in link["text/html"]


def test_free_port_is_free():
    port = ss.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_the_catalog_is_reached_with_the_servers_token_as_iceberg_1_10_names_it():
    assert ss.catalog_auth_conf("https://hub/services/workspaces/iceberg/", "tok") == {
        "spark.sql.catalog.iceberg.rest.auth.type": "oauth2",
        "spark.sql.catalog.iceberg.token": "tok",
        "spark.sql.catalog.iceberg.oauth2-server-uri": "https://hub/services/workspaces/iceberg/v1/oauth/tokens",
        "spark.sql.catalog.iceberg.token-refresh-enabled": "false",
    }


def test_children_started_in_a_captured_kernel_write_to_the_kernels_own_stderr(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    log = (tmp_path / "server.log").open("w+b")

    class Captured:  # ipykernel's stderr: fd 2 is a pipe to the cell, fileno() the stream it came from
        def fileno(self):
            return log.fileno()

        def flush(self):
            pass

    cell = tmp_path / "cell"
    saved = os.dup(2)
    try:
        with cell.open("wb") as f:
            os.dup2(f.fileno(), 2)
            monkeypatch.setattr(sys, "stderr", Captured())
            with ss._children_write_to_the_log():
                subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('jvm says hi')"], check=True)
            subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('later')"], check=True)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    log.seek(0)
    assert log.read() == b"jvm says hi"
    assert cell.read_bytes() == b"later", "fd 2 is the cell's again afterwards"
