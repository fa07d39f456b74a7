"""``coord component``: set and list deploy states (seed 000/001)."""

from __future__ import annotations

import typer

from coordhub.cli.common import JSON_OPT, call, show
from coordhub.cli.output import console, table

app = typer.Typer(help="Component deploy states shared by the fleet.", no_args_is_help=True)


@app.command("set")
def set_(
    ctx: typer.Context,
    project: str = typer.Argument(..., help="Project key."),
    component: str = typer.Argument(..., help="Component name, e.g. dashboard."),
    state: str = typer.Argument(..., help="building, built, deploying, deployed, degraded, unknown (convention)."),
    version: str | None = typer.Option(None, "--version", help="Version or git SHA."),
    notes: str | None = typer.Option(None, "--notes", help="Free-text notes."),
    fence: int | None = typer.Option(None, "--fence", help="Fence of your lease on component:<name> (or the name "
                                                           "itself); refused if stale or not covering it."),
    as_json: bool = JSON_OPT,
) -> None:
    """Record a component's state (updated_by is you)."""
    fields = {k: v for k, v in (("version", version), ("notes", notes), ("fence", fence)) if v is not None}
    comp = call(ctx, lambda c: c.set_component(project, component, state, **fields))
    show(comp, as_json, lambda x: console.print(f"{x['project_key']}/{x['component']} = {x['state']}"
                                                f"{' ' + x['version'] if x['version'] else ''}"))


@app.command("list")
def list_(ctx: typer.Context, project: str | None = typer.Option(None, "--project", help="Only this project."),
          as_json: bool = JSON_OPT) -> None:
    """List component states."""
    rows = call(ctx, lambda c: c.components(project))
    if rows.more:
        typer.echo(f"coord: more components follow these {len(rows)}: narrow the list with --project", err=True)
    show(rows, as_json, lambda r: table(r, [("project_key", "project"), ("component", "component"),
                                            ("state", "state"), ("version", "version"),
                                            ("updated_by", "by"), ("updated_at", "updated")], "no components"))
