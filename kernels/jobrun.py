"""``python -m agp.kernels.jobrun``: one attempt of a job run, outside any notebook server.

Everything comes from the environment the executor set (see ``agp.hub.jobs.executor``): the workspace server's
variables, the run's own hub token (``JUPYTERHUB_API_TOKEN``, renewed credentials come from the broker with it, as
in a notebook) and the run's id. The runner fetches the job's notebook or script from the workspace service,
executes a notebook cell by cell on the Antigravity kernel with papermill (parameters injected as papermill does:
a cell after the one tagged ``parameters``), or a script with this Python (parameters as ``--name value``
arguments and ``AGP_PARAM_<NAME>`` variables), uploads the executed notebook, and writes its result line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import requests

from . import kernelspec

OUTPUT_EVERY = 10.0  # seconds between uploads of the notebook as it is executed
SCHEME = "agp-job://"  # papermill's output goes through our I/O handler, which also uploads it


class Service:
    """The workspace service's run endpoints, as this run's owner."""

    def __init__(self, env: dict[str, str]):
        self.base = env["AGP_WORKSPACE_SERVICE_URL"].rstrip("/") + "/api"
        self.run = f"/workspaces/{env['AGP_WORKSPACE']}/runs/{env['AGP_JOB_RUN_ID']}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {env['JUPYTERHUB_API_TOKEN']}"

    def input(self) -> dict[str, Any]:
        r = self.http.get(self.base + self.run + "/input", timeout=60)
        if r.status_code != 200:
            raise RuntimeError(f"The workspace service refused the run's input: {_detail(r)} (HTTP {r.status_code})")
        return r.json()

    def put_output(self, notebook: bytes) -> None:
        r = self.http.put(
            self.base + self.run + "/output",
            data=notebook,
            headers={"Content-Type": "application/x-ipynb+json"},
            timeout=120,
        )
        if r.status_code >= 300:
            print(f"agp: the executed notebook was not saved: {_detail(r)} (HTTP {r.status_code})", file=sys.stderr)


def _detail(r: requests.Response) -> str:
    try:
        return str(r.json().get("detail"))[:300]
    except ValueError:
        return r.text[:300]


def write_result(path: str, succeeded: bool, reason: str | None = None) -> None:
    line = json.dumps({"state": "succeeded" if succeeded else "failed", "reason": reason}) + "\n"
    m = re.fullmatch(r"/dev/fd/(\d+)", path)
    # A descriptor the executor opened for us is written as it is (re-opening /dev/fd/N would check the file's owner).
    with os.fdopen(int(m.group(1)), "w") if m else open(path, "w") as f:
        f.write(line[:4000])


def cell_error(exc: BaseException) -> str:
    """One sentence for a failed cell (papermill's PapermillExecutionError), else the exception's first line."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        count = getattr(exc, "exec_count", None)
        where = f"Cell {count}" if count else f"Cell {getattr(exc, 'cell_index', '?')}"
        return f"{where} raised {ename}: {str(evalue).strip().splitlines()[0] if evalue else ''}".rstrip(": ")
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def ensure_kernel() -> None:
    """The Antigravity kernel where papermill looks for it: the runtime and images have it; a runner from a plain
    environment (the lab without OS users) installs it into its own Jupyter data folder."""
    from jupyter_client.kernelspec import find_kernel_specs
    from jupyter_core.paths import jupyter_data_dir

    if kernelspec.NAME not in find_kernel_specs():
        kernelspec.install(Path(jupyter_data_dir()))


def run_notebook(job: dict, service: Service, workdir: Path) -> None:
    import nbformat
    import nbformat.validator
    import papermill as pm
    from papermill.iorw import papermill_io

    ensure_kernel()
    source = Path(workdir) / ".agp-job-input.ipynb"
    output = Path(workdir) / ".agp-job-output.ipynb"
    # Cells without ids (nbformat < 4.5) get them, as JupyterLab would on opening the notebook.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, nb = nbformat.validator.normalize(json.loads(job["source"]))
    source.write_text(json.dumps(nb))
    uploaded = [time.monotonic()]  # the first upload after OUTPUT_EVERY seconds of running, the last at the end

    class Uploading:
        """papermill's "write the output notebook" step, also sent to the service now and then while cells run."""

        def write(self, buf: str, path: str) -> None:
            Path(path.removeprefix(SCHEME)).write_text(buf)
            if time.monotonic() - uploaded[0] >= OUTPUT_EVERY:
                uploaded[0] = time.monotonic()
                service.put_output(buf.encode())

        def read(self, path: str) -> str:
            return Path(path.removeprefix(SCHEME)).read_text()

        def listdir(self, path: str) -> list[str]:
            return os.listdir(path.removeprefix(SCHEME))

        def pretty_path(self, path: str) -> str:
            return path

    papermill_io.register(SCHEME, Uploading())
    try:
        pm.execute_notebook(
            str(source),
            SCHEME + str(output),
            parameters=job.get("parameters") or {},
            kernel_name=kernelspec.NAME,
            language="python",
            log_output=True,
            progress_bar=False,
            cwd=str(workdir),
            # papermill's own timeout is per cell; the run's timeout is the scheduler's.
            kernel_manager_class=ipc_kernel_manager(),
        )
    except pm.PapermillExecutionError as e:
        executed = nbformat.read(output, as_version=4) if output.exists() else None
        raise CellFailed(failure_sentence(e, executed)) from e
    finally:
        if output.exists():
            nb = nbformat.read(output, as_version=4)
            service.put_output(nbformat.writes(nb).encode())
        for path in (source, output):
            path.unlink(missing_ok=True)


class CellFailed(Exception):
    """A cell raised; ``str()`` is the sentence for the run's reason."""


# The kernel's own short errors (agp.kernels.messages, spark_session): their message is the whole story.
SHORT_ERRORS = {"SqlError", "QueryInterrupted", "SparkStartError"}


def failure_sentence(e: Any, executed: Any) -> str:
    """Which cell failed and with what (pure): papermill names the exception; ``%sql``'s errors and Spark's start
    errors are said as the notebook shows them ("Cell 4 failed: SYNTAX_ERROR at line 1, column 1: …"); another
    magic's ``UsageError`` is shown on stderr, not as an error output, and papermill calls it
    ``CellExecutionError``, so the cell's last stderr line says it instead."""
    if getattr(e, "ename", None) in SHORT_ERRORS:
        count = getattr(e, "exec_count", None) or getattr(e, "cell_index", "?")
        lines = str(getattr(e, "evalue", "") or "").strip().splitlines()
        return f"Cell {count} failed: {lines[0] if lines else e.ename}"[:1000]
    if getattr(e, "ename", None) == "CellExecutionError" and executed is not None:
        count = getattr(e, "exec_count", None)
        # The failed cell by its execution count (papermill inserts note cells before it in the notebook it wrote).
        failed = [
            c for c in executed.get("cells", []) if c.get("cell_type") == "code" and c.get("execution_count") == count
        ]
        lines = [
            line
            for cell in failed[:1]
            for out in cell.get("outputs", [])
            if out.get("output_type") == "stream" and out.get("name") == "stderr"
            for line in "".join(out.get("text", "")).splitlines()
            if line.strip()
        ]
        if lines:
            return f"Cell {count} failed: {lines[-1].strip()}"[:1000]
    return cell_error(e)


def ipc_kernel_manager() -> type:
    """The kernel talks to the runner over unix sockets in the run's own 0700 folder, as a workspace server's
    kernels do: over loopback TCP any local user could subscribe to its output (the key signs, it does not hide)."""
    from jupyter_client.manager import AsyncKernelManager

    folder = Path(os.environ.get("AGP_JOB_HOME") or Path.home()) / ".k"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    run = os.environ.get("AGP_JOB_RUN", f"run-{os.getpid()}")

    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any):
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", str(folder / run.removeprefix("agp-run-")))
            super().__init__(**kwargs)

    return IpcKernelManager


def script_argv(parameters: dict[str, Any]) -> list[str]:
    """``--name value`` for each parameter (pure): what argparse reads."""
    out: list[str] = []
    for name, value in parameters.items():
        out += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
    return out


def run_script(job: dict, workdir: Path) -> None:
    params = job.get("parameters") or {}
    script = Path(workdir) / ".agp-job-script.py"
    script.write_text(job["source"])
    env = dict(os.environ)
    for name, value in params.items():
        env[f"AGP_PARAM_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}"] = (
            value if isinstance(value, str) else json.dumps(value)
        )
    try:
        proc = subprocess.Popen([sys.executable, str(script), *script_argv(params)], cwd=workdir, env=env)
        _forward_signals(proc)
        code = proc.wait()
    finally:
        script.unlink(missing_ok=True)
    if code != 0:
        raise ScriptFailed(code)


class ScriptFailed(Exception):
    def __init__(self, code: int):
        self.code = code
        super().__init__(
            f"The script exited with status {code}."
            if code > 0
            else f"The script was killed ({signal.Signals(-code).name})."
        )


def _forward_signals(proc: subprocess.Popen) -> None:
    def forward(sig: int, _frame: Any) -> None:
        proc.send_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)


def main() -> int:
    import logging

    # papermill reports each cell ("Executing Cell 3") and, with log_output, its outputs through its logger: into
    # the run's log, as they happen.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("papermill").addHandler(handler)
    logging.getLogger("papermill").setLevel(logging.INFO)
    env = dict(os.environ)
    result_file = env.get("AGP_JOB_RESULT_FILE", "/dev/termination-log")
    print(
        f"agp: run {env.get('AGP_JOB_RUN_ID')} attempt {env.get('AGP_JOB_ATTEMPT')} of {env.get('AGP_JOB_FILENAME')} "
        f"in workspace {env.get('AGP_WORKSPACE')} as {env.get('JUPYTERHUB_USER')}",
        flush=True,
    )
    try:
        service = Service(env)
        job = service.input()
        home = Path(env.get("AGP_JOB_HOME") or env.get("HOME") or ".")
        workdir = home / "workspaces" / env["AGP_WORKSPACE"]
        workdir.mkdir(parents=True, exist_ok=True)
        os.chdir(workdir)
        if job["kind"] == "notebook":
            run_notebook(job, service, workdir)
        else:
            run_script(job, workdir)
    except KeyboardInterrupt:
        write_result(result_file, False, "The run was interrupted.")
        return 130
    except (ScriptFailed, CellFailed) as e:
        write_result(result_file, False, str(e))
        return 1
    except Exception as e:  # every failure ends as one sentence in the result, with its traceback in the log
        import traceback

        traceback.print_exc()
        write_result(result_file, False, cell_error(e))
        return 1
    write_result(result_file, True)
    print("agp: run succeeded", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
