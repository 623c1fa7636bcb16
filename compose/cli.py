"""The ``agp`` command: ``agp lab up|down|status|logs`` and ``agp doctor``."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import click
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from agp.core.settings import Settings

console = Console(stderr=True)


def _settings() -> Settings:
    try:
        return Settings()
    except (ValidationError, ValueError) as e:
        raise click.ClickException(f"The settings are invalid: {e}") from e


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log details to stderr.")
def main(verbose: bool) -> None:
    """Antigravity: the on-premise, Jupyter-centric data platform."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@main.group()
def lab() -> None:
    """The mini-lab: the whole platform as local processes on one machine."""


def _lab():
    from .lab import Lab

    return Lab(_settings(), console)


def _fail(e: Exception) -> None:
    raise click.ClickException(str(e)) from e


@lab.command()
def up() -> None:
    """Start the lab (fetching what is missing) and print where to go."""
    from .lab import LabError

    lab_ = _lab()
    try:
        lab_.up()
    except LabError as e:
        _fail(e)
    except KeyboardInterrupt:
        console.print("Interrupted; the lab is stopped.")
        sys.exit(130)
    _print_where(lab_.status())


@lab.command()
@click.option("--purge", is_flag=True, help="Also delete the lab's state (data, logs); the download cache stays.")
def down(purge: bool) -> None:
    """Stop every process of the lab; its data stays unless --purge."""
    lab_ = _lab()
    if purge:
        lab_.purge()
        return
    killed = lab_.down()
    for who in killed:
        console.print(f"[yellow]killed stray lab process {who}[/yellow]")


@lab.command()
@click.argument("service")
def restart(service: str) -> None:
    """Restart one service of the running lab and wait until it is healthy."""
    from .lab import LabError

    try:
        _lab().restart(service)
    except LabError as e:
        _fail(e)


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def status(as_json: bool) -> None:
    """Each service's state, health and endpoints, with the lab's credentials and demo users."""
    st = _lab().status()
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    _print_where(st)
    if not st["healthy"]:
        sys.exit(1)


@lab.command()
@click.argument("service")
@click.option("-n", "--lines", default=80, show_default=True, help="How many lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the log grows.")
def logs(service: str, lines: int, follow: bool) -> None:
    """Print the log of one lab service."""
    from .lab import LabError

    try:
        path = _lab().log_path(service)
    except LabError as e:
        _fail(e)
    if not path.exists():
        raise click.ClickException(f"{service} has not written a log yet ({path}).")
    cmd = ["tail", f"-n{lines}", *(["-F"] if follow else []), str(path)]
    sys.exit(subprocess.call(cmd))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def doctor(as_json: bool) -> None:
    """Check every service for real and list the MinIO buckets."""
    from .doctor import run_checks

    results = run_checks(_settings())
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        table = Table(title="agp doctor")
        for col in ("check", "ok", "detail"):
            table.add_column(col)
        for r in results["checks"]:
            table.add_row(r["name"], "[green]yes[/green]" if r["ok"] else "[red]no[/red]", r["detail"])
        Console().print(table)
        Console().print("MinIO buckets: " + (", ".join(results["buckets"]) or "(none)"))
    if not results["ok"]:
        sys.exit(1)


def _print_where(st: dict) -> None:
    out = Console()
    table = Table(title=f"Antigravity lab ({st['lab_dir']})")
    for col in ("service", "state", "endpoints"):
        table.add_column(col)
    for svc in st["services"].values():
        state = "[green]healthy[/green]" if svc["healthy"] else f"[red]{svc['state']}[/red]"
        table.add_row(svc["title"], state, "\n".join(f"{k}: {v}" for k, v in svc["endpoints"].items()))
    out.print(table)
    users = ", ".join(f"{u['username']} ({u['role']})" for u in st["demo_users"])
    password = st["demo_users"][0]["password"]
    kc = st["services"]["keycloak"]["endpoints"]
    hub = st["services"]["jupyterhub"]["endpoints"]["hub"]
    out.print(f"Log in at [bold]{hub}[/bold] as {users}; password {password}")
    # The admin's password is the lab's own (generated): a pointer, not the value, goes to the terminal and its logs.
    out.print(
        f"Keycloak admin console: {kc['admin_console']} (user {st['credentials']['keycloak_admin']['user']}; "
        "password: agp lab status --json)"
    )
    out.print("Machine-readable: agp lab status --json   Stop: agp lab down")


def _register_workspace_cli() -> None:
    from agp.hub.cli import workspace
    from agp.hub.jobs.cli import job

    main.add_command(workspace)
    main.add_command(job)


_register_workspace_cli()

if __name__ == "__main__":
    main()
