"""A progress bar for Spark jobs, shown in the notebook cell that runs them.

One daemon thread polls the SparkContext's status tracker and shows, per cell, one display that it updates while
jobs run (``display_data`` then ``update_display_data`` with the same ``display_id``: no widget library needed, and
a saved notebook keeps the last state as plain HTML). What to show is decided by :class:`CellBars` and rendered by
:func:`bundle`, both pure; the thread only reads the tracker and publishes. Outside an IPython kernel nothing starts.
"""

from __future__ import annotations

import contextvars
import html
import logging
import sys
import threading
import time
import uuid
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Stage:
    """An active stage of a job, as the status tracker reports it."""

    stage_id: int
    num_tasks: int
    completed: int
    active: int
    failed: int = 0


@dataclass(frozen=True)
class Job:
    """A job with its status (``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``UNKNOWN``) and its active stages."""

    job_id: int
    status: str
    stages: tuple[Stage, ...] = ()


def percent(jobs: Iterable[Job]) -> int:
    """Completed tasks of the jobs' active stages, in percent of their tasks (0 when there are none)."""
    stages = [s for j in jobs for s in j.stages]
    total = sum(s.num_tasks for s in stages)
    return min(100, 100 * sum(s.completed for s in stages) // total) if total else 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _ids(word: str, ids: Sequence[int]) -> str:
    return f"{word} {ids[0]}" if len(ids) == 1 else f"{word}s {', '.join(map(str, ids))}"


def running_text(jobs: Sequence[Job]) -> str:
    """One line for running jobs, e.g. ``job 3, stage 5: 2/4 tasks done, 2 running (50%)``."""
    stages = [s for j in jobs for s in j.stages]
    text = _ids("job", [j.job_id for j in jobs])
    if not stages:
        return f"{text}: starting"
    total = sum(s.num_tasks for s in stages)
    done = sum(s.completed for s in stages)
    active = sum(s.active for s in stages)
    failed = sum(s.failed for s in stages)
    text += f", {_ids('stage', [s.stage_id for s in stages])}: {done}/{total} tasks done, {active} running"
    if failed:
        text += f", {failed} failed"
    return f"{text} ({percent(jobs)}%)"


def finished_text(statuses: dict[int, str]) -> str:
    """One line for jobs that ended, e.g. ``job 3 succeeded`` or ``3 jobs: 2 succeeded, 1 failed``."""
    ids = sorted(statuses)
    counts: dict[str, int] = {}
    for job_id in ids:
        counts[statuses[job_id].lower()] = counts.get(statuses[job_id].lower(), 0) + 1
    if len(ids) == 1:
        return f"job {ids[0]} {statuses[ids[0]].lower()}"
    return f"{_plural(len(ids), 'job')}: " + ", ".join(f"{n} {status}" for status, n in counts.items())


def bundle(text: str, value: int | None, ui_root: str | None, job_id: int | None = None) -> dict[str, str]:
    """The MIME bundle of a bar: ``text/plain`` for any front end, ``text/html`` with a ``<progress>`` and UI link.

    ``value`` is the percent (``None``: no bar, e.g. after a failure); ``ui_root`` is the Spark UI's root (the
    proxied path in a hub server), linked to the page of ``job_id`` when given.
    """
    plain = f"[Spark] {text}"
    parts = ['<div class="agp-spark-progress" style="display:flex;align-items:center;gap:0.6em">']
    if value is not None:
        parts.append(f'<progress max="100" value="{int(value)}" style="width:16em"></progress>')
    parts.append(f"<span>Spark {html.escape(text)}</span>")
    if ui_root:
        root = ui_root.rstrip("/")
        href = f"{root}/jobs/job/?id={job_id}" if job_id is not None else f"{root}/jobs/"
        parts.append(f'<a href="{html.escape(href, quote=True)}" target="_blank" rel="noopener">Spark UI</a>')
    parts.append("</div>")
    return {"text/plain": plain, "text/html": "".join(parts)}


@dataclass
class _Bar:
    cell: Hashable
    display_id: str
    statuses: dict[int, str] = field(default_factory=dict)
    shown: dict[str, str] | None = None


@dataclass(frozen=True)
class Action:
    """Show (``display``) or replace (``update``) the display ``display_id`` in ``cell``."""

    kind: str
    display_id: str
    cell: Hashable
    data: dict[str, str]


class CellBars:
    """Which bar to show or update (pure): one bar per cell, for the jobs that started while the cell was current.

    A job gets a bar once it has run ``show_after`` seconds (quick jobs stay quiet, like Spark's console bar); a
    bar keeps being updated until all its jobs ended, then shows how they ended.
    """

    def __init__(self, ui_root: str | None = None, show_after: float = 0.5) -> None:
        self.ui_root = ui_root
        self.show_after = show_after
        self._bars: list[_Bar] = []
        self._first_seen: dict[int, float] = {}

    def cells(self) -> set[Hashable]:
        """The cells whose bars may still change."""
        return {bar.cell for bar in self._bars}

    def watched(self) -> set[int]:
        """Jobs that have a bar and have not ended yet (the tracker is asked for them even once inactive)."""
        return {j for bar in self._bars for j, status in bar.statuses.items() if status == RUNNING}

    def step(self, now: float, cell: Hashable, jobs: Iterable[Job]) -> list[Action]:
        """Take one poll of the tracker (``jobs``: the active ones and the watched ones); say what to publish."""
        jobs = {j.job_id: j for j in jobs}
        for job_id in list(self._first_seen):
            if job_id not in jobs or jobs[job_id].status != RUNNING:
                del self._first_seen[job_id]
        actions: list[Action] = []
        for job in jobs.values():
            if job.status != RUNNING or any(job.job_id in bar.statuses for bar in self._bars):
                continue
            if now - self._first_seen.setdefault(job.job_id, now) < self.show_after:
                continue
            bar = next((b for b in self._bars if b.cell == cell), None)
            if bar is None:
                bar = _Bar(cell, uuid.uuid4().hex)
                self._bars.append(bar)
            bar.statuses[job.job_id] = RUNNING
        for bar in list(self._bars):
            for job_id, status in bar.statuses.items():
                if status == RUNNING and job_id in jobs:
                    bar.statuses[job_id] = jobs[job_id].status
            data = self._render(bar, jobs)
            if data != bar.shown:
                actions.append(Action("display" if bar.shown is None else "update", bar.display_id, bar.cell, data))
                bar.shown = data
            if bar.cell != cell and RUNNING not in bar.statuses.values():
                self._bars.remove(bar)
        return actions

    def _render(self, bar: _Bar, jobs: dict[int, Job]) -> dict[str, str]:
        running = [jobs[j] for j, status in bar.statuses.items() if status == RUNNING and j in jobs]
        if running:
            return bundle(running_text(running), percent(running), self.ui_root, running[0].job_id)
        ended = {j: s for j, s in bar.statuses.items() if s != RUNNING}
        value = 100 if all(s == SUCCEEDED for s in ended.values()) else None
        last = max(ended) if ended else None
        return bundle(finished_text(ended), value, self.ui_root, last)


def read_jobs(tracker: Any, watched: Iterable[int] = ()) -> list[Job]:
    """The active jobs and the ``watched`` ones from a pyspark ``StatusTracker``, with their active stages."""
    active_stages = set(tracker.getActiveStageIds())
    jobs = []
    for job_id in sorted(set(tracker.getActiveJobsIds()) | set(watched)):
        info = tracker.getJobInfo(job_id)
        if info is None:  # forgotten by the tracker (spark.ui.retainedJobs)
            jobs.append(Job(job_id, UNKNOWN))
            continue
        stages = []
        for stage_id in sorted(set(info.stageIds) & active_stages):
            s = tracker.getStageInfo(stage_id)
            if s is not None:
                stages.append(Stage(s.stageId, s.numTasks, s.numCompletedTasks, s.numActiveTasks, s.numFailedTasks))
        jobs.append(Job(job_id, str(info.status), tuple(stages)))
    return jobs


def kernel_shell() -> Any:
    """The IPython shell of the kernel this code runs in, or ``None`` (plain Python, terminal IPython)."""
    if "IPython" not in sys.modules:
        return None
    try:
        shell = sys.modules["IPython"].get_ipython()
    except Exception:
        return None
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


class ProgressMonitor:
    """The polling thread: reads the tracker every ``interval`` seconds and publishes into the running cell.

    It never raises into user code and ends with the SparkContext (or :meth:`stop`).
    """

    def __init__(self, sc: Any, shell: Any, ui_root: str | None, interval: float = 0.3) -> None:
        self.sc = sc
        self.shell = shell
        self.interval = interval
        self.bars = CellBars(ui_root)
        self._parents: dict[Hashable, dict] = {}
        self._cell: Hashable = None
        self._stopping = threading.Event()
        # A fresh context: ipykernel's parent header is a context variable, and a thread without a value of its own
        # reads the kernel's latest one, which is the cell that is running now.
        self._thread = threading.Thread(
            target=contextvars.Context().run, args=(self._run,), name="agp-spark-progress", daemon=True
        )

    def start(self) -> ProgressMonitor:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        tracker = None
        while not self._stopping.wait(self.interval):
            if getattr(self.sc, "_jsc", None) is None:
                break  # the session was stopped
            try:
                tracker = tracker or self.sc.statusTracker()
                self._tick(tracker)
            except Exception:
                log.debug("Spark progress poll failed", exc_info=True)
        log.debug("Spark progress monitor stopped")

    def _current_cell(self) -> Hashable:
        parent = getattr(self.shell, "parent_header", None) or {}
        header = parent.get("header", parent)
        if header.get("msg_type") == "execute_request":
            self._cell = header.get("msg_id")
            self._parents[self._cell] = parent
        return self._cell

    def _tick(self, tracker: Any) -> None:
        cell = self._current_cell()
        actions = self.bars.step(time.monotonic(), cell, read_jobs(tracker, self.bars.watched()))
        for action in actions:
            self._publish(action)
        live = self.bars.cells() | {cell}
        for key in [k for k in self._parents if k not in live]:
            del self._parents[key]

    def _publish(self, action: Action) -> None:
        pub = self.shell.display_pub
        set_parent = getattr(pub, "set_thread_parent", None)
        parent = self._parents.get(action.cell)
        if set_parent is not None and parent:
            set_parent(parent)  # this thread only: updates go to the bar's cell even after the next cell started
        pub.publish(
            data=action.data,
            metadata={},
            transient={"display_id": action.display_id},
            update=action.kind == "update",
        )


# -- the session's start ------------------------------------------------------------------------------------------

# The phases of a first ``spark()``: what is shown while each runs, and once it is done.
START_PHASES = {
    "jars": ("resolving Iceberg's jars", "jars ready"),
    "jvm": ("starting the JVM", "JVM up"),
    "catalog": ("opening the workspace catalog", "catalog open"),
}


def start_text(phase: str, elapsed: float, detail: dict[str, str] | None = None) -> str:
    """One line for the session's start (pure): the phases done, the one running, the seconds so far; ``phase``
    ``"ready"`` or ``"failed"`` once it ended. ``detail`` adds a word to a done phase (``{"jars": "2"}``) or, for
    ``"failed"``, the ``phase`` it failed in and the ``log`` file to read."""
    detail = detail or {}
    seconds = f"{elapsed:.0f} s"
    if phase == "ready":
        return f"session ready in {seconds}"
    if phase == "failed":
        failed_in = START_PHASES.get(detail.get("phase", ""), ("starting",))[0]
        log_file = f" · its log: {detail['log']}" if detail.get("log") else ""
        return f"did not start ({failed_in}, after {seconds}){log_file}"
    parts = []
    for name, (running, done) in START_PHASES.items():
        if name == phase:
            parts.append(f"{running}…")
            break
        parts.append(f"{done} ({detail[name]})" if detail.get(name) else done)
    return "starting · " + " · ".join(parts) + f" · {seconds}"


def start_bundle(text: str, state: str, ui_url: str | None = None) -> dict[str, str]:
    """The MIME bundle of the start line (pure): an indeterminate ``<progress>`` while ``state`` is
    ``"running"``, a full one when ``"ready"`` (with the Spark UI's link), none when ``"failed"``."""
    plain = f"[Spark] {text}" + (f" · Spark UI: {ui_url}" if ui_url else "")
    parts = ['<div class="agp-spark-start" style="display:flex;align-items:center;gap:0.6em">']
    if state == "running":
        parts.append('<progress style="width:16em"></progress>')
    elif state == "ready":
        parts.append('<progress max="100" value="100" style="width:16em"></progress>')
    parts.append(f"<span>Spark {html.escape(text)}</span>")
    if ui_url:
        href = html.escape(ui_url, quote=True)
        parts.append(f'<a href="{href}" target="_blank" rel="noopener">Spark UI</a>')
    parts.append("</div>")
    return {"text/plain": plain, "text/html": "".join(parts)}
