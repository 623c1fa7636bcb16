"""What the scheduler asks of the place where runs execute (a local process, a Kubernetes Job), and the runner's
contract with it.

The runner is ``python -m agp.kernels.jobrun`` in the notebook runtime. Its whole input is its environment
(:meth:`RunSpec.runner_env`): it fetches the job's notebook or script from the workspace service with the run's own
hub token, executes it on the Antigravity kernel (papermill) or with Python, uploads the executed notebook back, and
writes one line of JSON (``{"state": "succeeded"|"failed", "reason": "..."}``) to the file named by
``AGP_JOB_RESULT_FILE`` (a file descriptor the executor opened in the lab; the container's termination log on
Kubernetes). Its stdout and stderr are the run's log. Exit status 0 means succeeded.

The scheduler, not the executor, decides states: it enforces the timeout (by :meth:`Executor.cancel`), retries,
and records the :class:`Outcome` an executor reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import SecretStr

# What the runner writes to AGP_JOB_RESULT_FILE and the executors read back: at most this many bytes (a Kubernetes
# termination message is limited to 4096).
RESULT_LIMIT = 4096


@dataclass(frozen=True)
class RunSpec:
    """One attempt of one run: everything an executor needs, no database object."""

    run_id: int
    attempt: int
    workspace: str  # the workspace's slug
    owner: str  # the hub user the run runs as
    kind: str  # "notebook" | "script"
    filename: str
    timeout_seconds: int
    token: SecretStr  # the owner's hub API token made for this attempt (access to the workspace service only)
    environment: dict[str, str]  # the workspace server's variables (agp.spawner.workspace.workspace_env): no secret
    cpu_limit: float = 2.0
    memory_limit_gb: float = 4.0
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """A name unique to this attempt: every process of it carries it (``AGP_JOB_RUN``), a pod is named by it."""
        return f"agp-run-{self.run_id}-{self.attempt}"

    def runner_env(self, result_file: str) -> dict[str, str]:
        """The runner's environment (on top of what its OS user or image gives): the server's variables, the run's
        identity and its token. The token is the only secret; it reaches the workspace service and nothing else."""
        return {
            **self.environment,
            "JUPYTERHUB_API_TOKEN": self.token.get_secret_value(),
            "JUPYTERHUB_USER": self.owner,
            "AGP_JOB_RUN": self.tag,
            "AGP_JOB_RUN_ID": str(self.run_id),
            "AGP_JOB_ATTEMPT": str(self.attempt),
            "AGP_JOB_KIND": self.kind,
            "AGP_JOB_FILENAME": self.filename,
            "AGP_JOB_RESULT_FILE": result_file,
        }


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, as its executor saw it."""

    succeeded: bool
    reason: str | None = None  # one sentence for the user when it did not succeed
    exit_code: int | None = None


class Executor(Protocol):
    """Runs attempts somewhere. ``ref`` is the executor's own note of where an attempt runs (a short JSON text the
    scheduler keeps in ``job_runs.runner_ref``), so that a restarted service finds its runs again."""

    name: str

    async def start(self, spec: RunSpec) -> str:
        """Start the attempt and return its ref; raise :class:`ExecutorError` if it could not start."""

    async def poll(self, ref: str) -> Outcome | None:
        """``None`` while the attempt runs; its :class:`Outcome` once it ended (also if it vanished: then
        ``succeeded=False`` with the reason)."""

    async def cancel(self, ref: str, grace: float) -> None:
        """Stop the attempt for real: ask it to stop, and after ``grace`` seconds kill whatever of it is left
        (the runner, its kernel, the kernel's Spark JVM; on Kubernetes the pod). Idempotent."""

    async def log(self, ref: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """The attempt's log (stdout and stderr) from byte ``offset``, at most ``limit`` bytes; readable while it
        runs."""

    async def cleanup(self, ref: str) -> None:
        """Forget an ended attempt: remove what it left (files, the Kubernetes Job). Idempotent."""


class ExecutorError(RuntimeError):
    """An attempt could not be started; ``str()`` is the sentence for the run's reason, ``log_message`` the detail."""

    def __init__(self, message: str, log_message: str | None = None):
        super().__init__(message)
        self.log_message = log_message or message


def parse_result(text: str | bytes | None, exit_code: int | None) -> Outcome:
    """The runner's result line (pure), or what its exit status says when it wrote none."""
    import json

    if isinstance(text, bytes):
        text = text[:RESULT_LIMIT].decode("utf-8", "replace")
    data: dict[str, Any] = {}
    if text and text.strip():
        try:
            loaded = json.loads(text.strip().splitlines()[-1])
            data = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            data = {}
    if data.get("state") == "succeeded" and exit_code in (0, None):
        return Outcome(True, None, exit_code)
    reason = data.get("reason") if isinstance(data.get("reason"), str) else None
    if reason is None:
        reason = describe_exit(exit_code)
    return Outcome(False, reason[:2000], exit_code)


def describe_exit(exit_code: int | None) -> str:
    """One sentence for a runner that ended without saying why (pure)."""
    import signal

    if exit_code is None:
        return "The runner ended without a result."
    if exit_code < 0 or exit_code > 128:
        number = -exit_code if exit_code < 0 else exit_code - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"The runner was killed ({name}) before it finished."
    if exit_code == 0:
        return "The runner ended without a result."
    return f"The runner exited with status {exit_code} without a result."
