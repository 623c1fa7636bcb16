"""``agp job …``: submit, list, follow and cancel job runs; a thin client of the workspace service's API.

In a workspace server's terminal it needs no option: the server's token, the service's address and the workspace
come from the server's environment. Elsewhere give ``--token`` (a hub API token, from /hub/token) and
``--workspace``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from agp.core.settings import Settings

from ..cli import Client

ENDED = {"succeeded", "failed", "cancelled", "timed_out"}
COLOURS = {"succeeded": "green", "failed": "red", "timed_out": "red", "cancelled": "dim", "running": "blue"}


class JobClient(Client):
    def __init__(self, service_url: str | None, hub_url: str | None, token: str):
        super().__init__(hub_url or Settings().hub_url, token)
        if service_url:
            self.base = service_url.rstrip("/") + "/api"

    def text(self, path: str, **kw) -> tuple[str, dict]:
        try:
            r = self.http.get(self.base + path, timeout=120, **kw)
        except Exception as e:
            raise click.ClickException(
                f"The workspace service at {self.base} does not answer ({type(e).__name__})."
            ) from e
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text[:300]
            raise click.ClickException(f"{detail} (HTTP {r.status_code})")
        return r.text, dict(r.headers)


def parse_params(pairs: tuple[str, ...]) -> dict:
    """``name=value`` pairs; a value that reads as JSON (a number, true, a list) is taken as such (pure)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r} is not name=value", param_hint="--param")
        try:
            out[name.strip()] = json.loads(value)
        except ValueError:
            out[name.strip()] = value
    return out


@click.group()
@click.option("--token", envvar=["AGP_TOKEN", "JUPYTERHUB_API_TOKEN"], required=True, help="A hub API token.")
@click.option("--workspace", "-w", envvar="AGP_WORKSPACE", required=True, help="The workspace (in a server: its own).")
@click.option("--hub-url", default=None, help="The hub's URL; default from the settings.")
@click.option("--service-url", envvar="AGP_WORKSPACE_SERVICE_URL", default=None, hidden=True)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.pass_context
def job(ctx: click.Context, token, workspace, hub_url, service_url, as_json) -> None:
    """Run notebooks and scripts as jobs, on demand or on a schedule."""
    ctx.obj = {"client": JobClient(service_url, hub_url, token), "ws": workspace, "json": as_json}


def _runs_table(runs: list[dict]) -> Table:
    table = Table()
    for col in ("run", "job", "owner", "state", "attempt", "started", "reason"):
        table.add_column(col)
    for r in runs:
        colour = COLOURS.get(r["state"], "yellow")
        table.add_row(
            str(r["id"]),
            f"{r['job_name']} ({r['job_id']})",
            r["owner"],
            f"[{colour}]{r['state']}[/]",
            f"{r['attempt']}/{r['max_attempts']}",
            (r["started_at"] or "")[:19],
            r["reason"] or "",
        )
    return table


@job.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="default: the file's name")
@click.option("--param", "-p", "params", multiple=True, help="name=value (repeat); JSON values are typed")
@click.option("--timeout", default=3600, show_default=True, help="seconds an attempt may run")
@click.option("--retries", default=0, show_default=True, help="attempts after a failed one")
@click.option("--schedule", help="cron: 5 fields, or 6 with seconds first (e.g. '0 6 * * *')")
@click.option("--tz", "timezone", default="UTC", show_default=True, help="time zone of the schedule")
@click.option("--no-run", is_flag=True, help="with --schedule: do not also run it now")
@click.option("--wait", is_flag=True, help="follow the run's log until it ends; exit 1 unless it succeeded")
@click.pass_context
def submit(ctx, path: Path, name, params, timeout, retries, schedule, timezone, no_run, wait) -> None:
    """Submit a notebook (.ipynb) or script (.py) as a job and run it."""
    kind = {".ipynb": "notebook", ".py": "script"}.get(path.suffix)
    if kind is None:
        raise click.BadParameter("a job is a notebook (.ipynb) or a script (.py)", param_hint="PATH")
    body = {
        "name": name,
        "kind": kind,
        "filename": path.name,
        "source": path.read_text(),
        "parameters": parse_params(params),
        "timeout_seconds": timeout,
        "max_retries": retries,
        "schedule": schedule,
        "timezone": timezone,
        "run_now": not (no_run and schedule),
    }
    c, ws = ctx.obj["client"], ctx.obj["ws"]
    out = c.call("POST", f"/workspaces/{ws}/jobs", json=body)
    if ctx.obj["json"] and not wait:
        click.echo(json.dumps(out, indent=2))
        return
    job_, run = out["job"], out["run"]
    click.echo(f"Job {job_['id']} ({job_['name']}) in {ws}" + (f", schedule {schedule} {timezone}" if schedule else ""))
    if run:
        click.echo(f"Run {run['id']} queued; follow it with `agp job logs {run['id']} --follow`.")
        if wait:
            sys.exit(_follow(ctx, run["id"]))


@job.command("list")
@click.option("--runs/--jobs", "show_runs", default=True, help="runs (default) or the jobs themselves")
@click.option("--state", help="only runs in this state")
@click.option("--limit", default=20, show_default=True)
@click.pass_context
def list_(ctx, show_runs, state, limit) -> None:
    """The workspace's recent runs, or its jobs."""
    c, ws = ctx.obj["client"], ctx.obj["ws"]
    if show_runs:
        data = c.call("GET", f"/workspaces/{ws}/runs", params={"limit": limit, **({"state": state} if state else {})})
    else:
        data = c.call("GET", f"/workspaces/{ws}/jobs")
    if ctx.obj["json"]:
        click.echo(json.dumps(data, indent=2))
        return
    if show_runs:
        Console().print(_runs_table(data))
        return
    table = Table()
    for col in ("job", "name", "owner", "file", "schedule", "next"):
        table.add_column(col)
    for j in data:
        sched = f"{j['schedule']} {j['timezone']}" + (" (paused)" if j["paused"] else "") if j["schedule"] else "-"
        table.add_row(str(j["id"]), j["name"], j["owner"], j["filename"], sched, (j["next_fire_at"] or "")[:19])
    Console().print(table)


@job.command()
@click.argument("run_id", type=int)
@click.option("--follow", "-f", is_flag=True, help="keep printing until the run ends")
@click.pass_context
def logs(ctx, run_id: int, follow: bool) -> None:
    """A run's log (stdout and stderr of every attempt)."""
    if follow:
        sys.exit(_follow(ctx, run_id))
    text, _ = ctx.obj["client"].text(f"/workspaces/{ctx.obj['ws']}/runs/{run_id}/log")
    click.echo(text, nl=False)


def _follow(ctx, run_id: int) -> int:
    c, ws = ctx.obj["client"], ctx.obj["ws"]
    offset = 0
    while True:
        text, headers = c.text(f"/workspaces/{ws}/runs/{run_id}/log", params={"offset": offset})
        click.echo(text, nl=False)
        offset = int(headers.get("x-log-next-offset", offset + len(text.encode())))
        if headers.get("x-run-state") in ENDED:
            run = c.call("GET", f"/workspaces/{ws}/runs/{run_id}")
            if run["state"] in ENDED:
                reason = f": {run['reason']}" if run["reason"] else ""
                click.echo(f"Run {run_id} {run['state']}{reason}", err=run["state"] != "succeeded")
                return 0 if run["state"] == "succeeded" else 1
        time.sleep(1)


@job.command("cancel")
@click.argument("run_id", type=int)
@click.pass_context
def cancel(ctx, run_id: int) -> None:
    """Cancel a run: a queued one at once, a running one is stopped (its kernel, Spark and Trino queries too)."""
    run = ctx.obj["client"].call("POST", f"/workspaces/{ctx.obj['ws']}/runs/{run_id}/cancel")
    click.echo(f"Run {run_id}: {run['state']}" + (" (stopping)" if run["state"] == "running" else ""))


@job.command()
@click.argument("job_id", type=int)
@click.argument("cron", required=False)
@click.option("--tz", "timezone", help="time zone of the schedule")
@click.option("--off", is_flag=True, help="remove the schedule")
@click.option("--pause/--resume", default=None, help="stop or restart firing, keeping the schedule")
@click.pass_context
def schedule(ctx, job_id: int, cron: str | None, timezone: str | None, off: bool, pause: bool | None) -> None:
    """Set, change, pause or remove a job's schedule."""
    body: dict = {}
    if off:
        body["schedule"] = ""
    elif cron:
        body["schedule"] = cron
    if timezone:
        body["timezone"] = timezone
    if pause is not None:
        body["paused"] = pause
    if not body:
        raise click.UsageError("Give a cron expression, --off, --tz, or --pause/--resume.")
    j = ctx.obj["client"].call("PATCH", f"/workspaces/{ctx.obj['ws']}/jobs/{job_id}", json=body)
    click.echo(
        f"Job {j['id']}: "
        + (f"{j['schedule']} {j['timezone']}, next {j['next_fire_at']}" if j["schedule"] else "no schedule")
        + (" (paused)" if j["paused"] else "")
    )


@job.command()
@click.argument("job_id", type=int)
@click.option("--param", "-p", "params", multiple=True, help="name=value over the job's own")
@click.pass_context
def run(ctx, job_id: int, params) -> None:
    """Run a job now."""
    r = ctx.obj["client"].call(
        "POST", f"/workspaces/{ctx.obj['ws']}/jobs/{job_id}/runs", json={"parameters": parse_params(params)}
    )
    click.echo(f"Run {r['id']} queued.")
