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


def test_the_jvm_writes_into_its_log_file_not_into_the_cell(tmp_path):
    import os
    import subprocess
    import sys

    log_file = ss.jvm_log_file(tmp_path)
    assert log_file == tmp_path / ".cache" / "agp" / "spark" / f"driver-{os.getpid()}.log"
    assert (log_file.parent.stat().st_mode & 0o777, log_file.stat().st_mode & 0o777) == (0o700, 0o600)
    cell = tmp_path / "cell"  # ipykernel's capture: what is written to fds 1 and 2 reaches the cell
    saved = [os.dup(1), os.dup(2)]
    try:
        with cell.open("wb") as f:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            with ss._jvm_output_to(log_file):
                subprocess.run(
                    [sys.executable, "-c", "import sys; print('out'); sys.stderr.write('WARN x')"], check=True
                )
            subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('later')"], check=True)
            with ss._jvm_output_to(None):  # verbose: the cell's
                subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write(' verbose')"], check=True)
    finally:
        for fd, saved_fd in zip((1, 2), saved, strict=True):
            os.dup2(saved_fd, fd)
            os.close(saved_fd)
    assert log_file.read_text() == "out\nWARN x"
    assert cell.read_bytes() == b"later verbose", "fds 1 and 2 are the cell's again afterwards"


def test_an_unwritable_home_gets_a_private_temporary_log(tmp_path):
    (tmp_path / ".cache").write_text("not a folder")
    path = ss.jvm_log_file(tmp_path)
    try:
        assert path.name.startswith("agp-spark-driver-") and path.stat().st_mode & 0o777 == 0o600
    finally:
        path.unlink()


def test_the_start_line_names_each_phase_then_the_ready_session():
    from agp.kernels.spark_progress import start_bundle, start_text

    assert start_text("jars", 0.2) == "starting · resolving Iceberg's jars… · 0 s"
    assert start_text("jvm", 12.4, {"jars": "2"}) == "starting · jars ready (2) · starting the JVM… · 12 s"
    assert start_text("catalog", 31, {"jars": "2"}) == (
        "starting · jars ready (2) · JVM up · opening the workspace catalog… · 31 s"
    )
    assert start_text("ready", 33.2) == "session ready in 33 s"
    assert start_text("failed", 20, {"phase": "jvm", "log": "/h/driver-1.log"}) == (
        "did not start (starting the JVM, after 20 s) · its log: /h/driver-1.log"
    )
    running = start_bundle("starting · <x>", "running")
    assert running["text/plain"] == "[Spark] starting · <x>"
    assert '<progress style="width:16em"></progress>' in running["text/html"] and "&lt;x&gt;" in running["text/html"]
    ready = start_bundle("session ready in 3 s", "ready", "/user/a/b/proxy/1/jobs/")
    assert ready["text/plain"] == "[Spark] session ready in 3 s · Spark UI: /user/a/b/proxy/1/jobs/"
    assert (
        'value="100"' in ready["text/html"]
        and '<a href="/user/a/b/proxy/1/jobs/" target="_blank"' in ready["text/html"]
    )
    assert "<progress" not in start_bundle("did not start", "failed")["text/html"]


def test_a_failed_start_is_one_sentence_that_names_the_log():
    from pathlib import Path

    from agp.kernels.credentials import BrokerError

    log_file = Path("/home/a/.cache/agp/spark/driver-7.log")
    gateway = RuntimeError("[JAVA_GATEWAY_EXITED] Java gateway process exited before sending its port number.")
    assert ss.start_failure(gateway, "jvm", log_file) == (
        "Spark did not start: its JVM exited before it was ready; its log: /home/a/.cache/agp/spark/driver-7.log."
    )
    assert ss.start_failure(OSError("Could not download x.jar from Maven Central: timeout"), "jars", None) == (
        "Spark did not start: Iceberg's jars are missing (Could not download x.jar from Maven Central: timeout)."
    )
    catalog = RuntimeError("[SCHEMA_NOT_FOUND] The schema `demo` cannot be found.\nJVM stacktrace:\n\tat ...")
    assert ss.start_failure(catalog, "catalog", log_file) == (
        "Spark started, but the workspace's catalog did not open: [SCHEMA_NOT_FOUND] The schema `demo` cannot be "
        "found; its log: /home/a/.cache/agp/spark/driver-7.log."
    )
    assert ss.start_failure(BrokerError("No s3 credentials for workspace 'x': gone (HTTP 403)"), "jars", None) == (
        "No s3 credentials for workspace 'x': gone (HTTP 403)."
    )
    err = ss.SparkStartError("Spark did not start: x.")
    assert isinstance(err, RuntimeError) and err._render_traceback_() == ["Spark did not start: x."]
