"""``agp workspace …``: the admin CLI, a thin client of the workspace service's REST API."""

from __future__ import annotations

import json
import sys

import click
import requests
from rich.console import Console
from rich.table import Table

from agp.core.settings import Settings


class Client:
    def __init__(self, hub_url: str, token: str):
        self.base = hub_url.rstrip("/") + "/services/workspaces/api"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {token}"

    def call(self, method: str, path: str, **kw) -> dict | list:
        try:
            r = self.http.request(method, self.base + path, timeout=120, **kw)
        except requests.ConnectionError as e:
            raise click.ClickException(f"The hub at {self.base} does not answer; is the lab up (`agp lab up`)?") from e
        try:
            body = r.json()
        except ValueError:
            body = {"detail": r.text[:300]}
        if r.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else body
            if isinstance(detail, list):
                detail = "; ".join(d.get("msg", str(d)) for d in detail)
            raise click.ClickException(f"{detail} (HTTP {r.status_code})")
        return body


@click.group()
@click.option(
    "--token",
    envvar=["AGP_TOKEN", "JUPYTERHUB_API_TOKEN"],
    required=True,
    help="A hub API token (from /hub/token); or AGP_TOKEN.",
)
@click.option("--hub-url", default=None, help="The hub's URL; default from the settings.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.pass_context
def workspace(ctx: click.Context, token: str, hub_url: str | None, as_json: bool) -> None:
    """Create and manage workspaces through the workspace service."""
    ctx.obj = {"client": Client(hub_url or Settings().hub_url, token), "json": as_json}


def _show(ctx: click.Context, data) -> None:
    if ctx.obj["json"]:
        click.echo(json.dumps(data, indent=2))
        return
    rows = data if isinstance(data, list) else [data]
    table = Table()
    for col in ("workspace", "state", "members", "bucket / schema"):
        table.add_column(col)
    for ws in rows:
        members = ", ".join(f"{m['username']} ({m['role']})" for m in ws["members"])
        state = ws["state"] + (f": {ws['failure_reason']}" if ws.get("failure_reason") else "")
        table.add_row(ws["slug"], state, members, f"{ws['bucket'] or '-'} / {ws['trino_schema'] or '-'}")
    Console().print(table)


@workspace.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Workspaces you belong to (all of them for platform admins)."""
    _show(ctx, ctx.obj["client"].call("GET", "/workspaces"))


@workspace.command()
@click.argument("slug")
@click.option("--display-name")
@click.option("--description", default="")
@click.option("--group", "keycloak_group", help="Keycloak group whose members become members, e.g. /finance.")
@click.option("--group-role", default="editor", type=click.Choice(["viewer", "editor", "owner"]))
@click.pass_context
def create(ctx, slug, display_name, description, keycloak_group, group_role) -> None:
    """Create a workspace and provision its bucket, namespace and Trino schema."""
    body = {
        "slug": slug,
        "display_name": display_name,
        "description": description,
        "keycloak_group": keycloak_group,
        "group_role": group_role,
    }
    _show(ctx, ctx.obj["client"].call("POST", "/workspaces", json=body))


@workspace.command("add-member")
@click.argument("slug")
@click.argument("username")
@click.option("--role", default="editor", type=click.Choice(["viewer", "editor", "owner"]), show_default=True)
@click.pass_context
def add_member(ctx, slug, username, role) -> None:
    """Add a member to a workspace, or change their role."""
    _show(ctx, ctx.obj["client"].call("PUT", f"/workspaces/{slug}/members/{username}", json={"role": role}))


@workspace.command("remove-member")
@click.argument("slug")
@click.argument("username")
@click.pass_context
def remove_member(ctx, slug, username) -> None:
    _show(ctx, ctx.obj["client"].call("DELETE", f"/workspaces/{slug}/members/{username}"))


@workspace.command()
@click.argument("slug")
@click.pass_context
def retry(ctx, slug) -> None:
    """Run provisioning again for a workspace left failed."""
    _show(ctx, ctx.obj["client"].call("POST", f"/workspaces/{slug}/provision"))


@workspace.command()
@click.argument("slug")
@click.pass_context
def archive(ctx, slug) -> None:
    """Archive a workspace: its data stays, new servers are refused."""
    _show(ctx, ctx.obj["client"].call("POST", f"/workspaces/{slug}/archive"))


@workspace.command()
@click.argument("slug")
@click.pass_context
def unarchive(ctx, slug) -> None:
    """Bring an archived workspace back: servers may start in it again."""
    _show(ctx, ctx.obj["client"].call("POST", f"/workspaces/{slug}/unarchive"))


@workspace.command()
@click.argument("slug", required=False)
@click.option("--limit", default=50, show_default=True)
@click.option("--offset", default=0, show_default=True, help="events to skip, newest first")
@click.option("--action", help="actions that start with this (member. finds every member change)")
@click.option("--actor", help="who acted")
@click.pass_context
def audit(ctx, slug, limit, offset, action, actor) -> None:
    """The audit log: of one workspace, or all of it (admins)."""
    path = f"/workspaces/{slug}/audit" if slug else "/audit"
    params = {"limit": limit, "offset": offset, "action": action, "actor": actor}
    events = ctx.obj["client"].call("GET", path, params={k: v for k, v in params.items() if v})
    if ctx.obj["json"]:
        click.echo(json.dumps(events, indent=2))
        return
    for ev in events:
        click.echo(f"{ev['at']}  {ev['actor']:<12} {ev['action']:<20} {ev['target']:<20} {ev['outcome']}")


if __name__ == "__main__":
    sys.exit(workspace())
