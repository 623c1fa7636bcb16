"""Jobs' pure logic: schedules, the runner's result and failure sentences, parameters."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import pytest
from pydantic import SecretStr

from agp.hub.jobs import cron
from agp.hub.jobs.cli import parse_params
from agp.hub.jobs.executor import Outcome, RunSpec, describe_exit, parse_result
from agp.kernels.jobrun import cell_error, failure_sentence, script_argv


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        ("0 6 * * *", "UTC", t(2026, 12, 1, 5, 59), t(2026, 12, 1, 6, 0)),
        ("0 6 * * *", "UTC", t(2026, 12, 1, 6, 0), t(2026, 12, 2, 6, 0)),  # strictly after
        # 06:00 in Zurich: 05:00 UTC in winter, 04:00 UTC from the last Sunday of March on.
        ("0 6 * * *", "Europe/Zurich", t(2026, 3, 28, 12, 0), t(2026, 3, 29, 4, 0)),
        ("0 6 * * *", "Europe/Zurich", t(2026, 1, 10, 12, 0), t(2026, 1, 11, 5, 0)),
        # Six fields: seconds first (Quartz).
        ("*/15 * * * * *", "UTC", t(2026, 12, 1, 12, 0, 7), t(2026, 12, 1, 12, 0, 15)),
        ("30 0 9 * * 1", "UTC", t(2026, 12, 1, 0, 0), t(2026, 12, 7, 9, 0, 30)),  # Mondays 09:00:30
        ("0 0 1 * *", "America/New_York", t(2026, 12, 15, 0, 0), t(2027, 1, 1, 5, 0)),
    ],
)
def test_next_fire(expression, zone, after, expected):
    assert cron.next_fire(expression, zone, after) == expected


@pytest.mark.parametrize(
    ("expression", "zone", "words"),
    [
        ("* * *", "UTC", "5 fields"),
        ("61 * * * *", "UTC", "not a valid cron"),
        ("* * * * * * *", "UTC", "5 fields"),
        ("0 6 * * *", "Mars/Olympus", "not a time zone"),
        ("0 6 * * *", "../../etc/passwd", "not a time zone"),
        ("@reboot", "UTC", "5 fields"),
    ],
)
def test_bad_schedules_are_one_sentence(expression, zone, words):
    with pytest.raises(cron.InvalidSchedule, match=words):
        cron.check(expression, zone)


def test_result_line_decides_and_exit_status_speaks_when_it_is_missing():
    assert parse_result('{"state": "succeeded", "reason": null}\n', 0) == Outcome(True, None, 0)
    assert parse_result(b'{"state": "failed", "reason": "Cell 2 raised KeyError: x"}', 1) == Outcome(
        False, "Cell 2 raised KeyError: x", 1
    )
    # A "succeeded" line with a failing exit status is not success (the runner died after writing it).
    assert parse_result('{"state": "succeeded"}', -9).succeeded is False
    assert parse_result("", -9) == Outcome(False, "The runner was killed (SIGKILL) before it finished.", -9)
    assert parse_result("garbage", 137).reason == "The runner was killed (SIGKILL) before it finished."
    assert parse_result(None, None).reason == "The runner ended without a result."
    assert parse_result("[1, 2]", 3).reason == "The runner exited with status 3 without a result."
    assert len(parse_result('{"state": "failed", "reason": "' + "x" * 9000 + '"}', 1).reason) == 2000


def test_describe_exit():
    assert describe_exit(-15) == "The runner was killed (SIGTERM) before it finished."
    assert describe_exit(0) == "The runner ended without a result."
    assert describe_exit(-200).startswith("The runner was killed (signal 200)")


def test_runner_env_names_the_attempt_and_carries_the_token_alone():
    spec = RunSpec(
        run_id=7,
        attempt=2,
        workspace="grid",
        owner="alice",
        kind="notebook",
        filename="r.ipynb",
        timeout_seconds=60,
        token=SecretStr("s3cr3t-run-token"),
        environment={"AGP_WORKSPACE": "grid"},
    )
    env = spec.runner_env("/dev/fd/9")
    assert spec.tag == "agp-run-7-2"
    assert env["AGP_JOB_RUN"] == "agp-run-7-2" and env["AGP_JOB_RESULT_FILE"] == "/dev/fd/9"
    assert env["JUPYTERHUB_API_TOKEN"] == "s3cr3t-run-token" and env["AGP_WORKSPACE"] == "grid"
    assert "s3cr3t" not in repr(spec)  # a SecretStr


class _Err(Exception):
    def __init__(self, ename, evalue, exec_count, cell_index=0):
        super().__init__(ename)
        self.ename, self.evalue, self.exec_count, self.cell_index = ename, evalue, exec_count, cell_index


def test_failure_sentences():
    assert (
        cell_error(_Err("ZeroDivisionError", "division by zero", 3))
        == "Cell 3 raised ZeroDivisionError: division by zero"
    )
    assert cell_error(ValueError("bad\nsecond line")) == "ValueError: bad"
    executed = {
        "cells": [
            {"cell_type": "markdown", "source": "error note", "metadata": {}},
            {"cell_type": "code", "execution_count": 1, "outputs": []},
            {
                "cell_type": "code",
                "execution_count": 2,
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": "hello\n"},
                    {"output_type": "stream", "name": "stderr", "text": ["UsageError: SYNTAX_ERROR: line 1:1\n", "\n"]},
                ],
            },
        ]
    }
    # A magic's UsageError is on stderr; papermill calls it CellExecutionError.
    assert (
        failure_sentence(_Err("CellExecutionError", "", 2), executed)
        == "Cell 2 failed: UsageError: SYNTAX_ERROR: line 1:1"
    )
    assert failure_sentence(_Err("CellExecutionError", "", 1), executed) == "Cell 1 raised CellExecutionError"
    # %sql's errors and Spark's start errors are error outputs of their own, said as the notebook shows them.
    sql = "SYNTAX_ERROR at line 1, column 1: mismatched input 'SELEC'; expecting 'ALTER', … (query q)\n  SELEC 1\n  ^"
    assert failure_sentence(_Err("SqlError", sql, 4), executed) == (
        "Cell 4 failed: SYNTAX_ERROR at line 1, column 1: mismatched input 'SELEC'; expecting 'ALTER', … (query q)"
    )
    assert failure_sentence(_Err("QueryInterrupted", "Cancelled in Trino: query q · https://h/q", 5), None) == (
        "Cell 5 failed: Cancelled in Trino: query q · https://h/q"
    )
    assert failure_sentence(_Err("SparkStartError", "Spark did not start: x.", 6), None) == (
        "Cell 6 failed: Spark did not start: x."
    )
    assert failure_sentence(_Err("KeyError", "'x'", 2), executed) == "Cell 2 raised KeyError: 'x'"


def test_script_argv_and_cli_parameters():
    assert script_argv({"day": "2026-12-01", "n": 3, "flags": [1, 2]}) == [
        "--day",
        "2026-12-01",
        "--n",
        "3",
        "--flags",
        "[1, 2]",
    ]
    assert parse_params(("n=3", "day=2026-12-01", "ok=true", "s=a=b", "q=")) == {
        "n": 3,
        "day": "2026-12-01",
        "ok": True,
        "s": "a=b",
        "q": "",
    }
    with pytest.raises(click.BadParameter):
        parse_params(("novalue",))


def test_tagged_processes_are_those_of_the_runs_own_user():
    """Any process may carry a run's tag; cancelling the run signals only the run's own OS user's processes."""
    import os
    import subprocess

    from agp.hub.jobs.local import tagged

    tag = f"agp-run-test-{os.getpid()}"
    proc = subprocess.Popen(["sleep", "30"], env={"PATH": "/usr/bin:/bin", "AGP_JOB_RUN": tag})
    try:
        import time

        time.sleep(0.2)
        assert [p.pid for p in tagged(tag, uid=os.getuid())] == [proc.pid]
        assert tagged(tag, uid=os.getuid() + 4242) == []
    finally:
        proc.kill()
        proc.wait()
