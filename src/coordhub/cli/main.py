"""The ``coord`` command: the entry point and the commands that are not per-noun."""

from __future__ import annotations

from typing import Any, Optional

import typer

from coordhub import __version__
from coordhub.cli import components, locks, messages, todos, tokens
from coordhub.cli.common import JSON_OPT, EXIT_OK, Options, call, client, fail, show, EXIT_UNREACHABLE
from coordhub.cli.output import console, message_banner, table
from coordhub.cli.serve import serve
from coordhub.client import Unreachable

app = typer.Typer(
    name="coord",
    help="coordhub: messages, leases, todos and status for fleets of coding-agent sessions.\n\n"
         "Run the hub with `coord serve`; every other command talks to a hub found through --url / COORD_URL "
         "or .claude/identity.json (coord_api), as the session of --token / COORD_TOKEN.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(messages.app, name="msg")
app.add_typer(todos.app, name="todo")
app.add_typer(locks.app, name="lock")
app.add_typer(components.app, name="component")
app.add_typer(tokens.app, name="token")
app.command()(serve)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"coord {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: Optional[str] = typer.Option(None, "--url", help="Hub URL [env COORD_URL; identity.json coord_api; "
                                                           "default http://127.0.0.1:8001]."),
    token: Optional[str] = typer.Option(None, "--token", help="Bearer token [env COORD_TOKEN; identity.json "
                                                               "token; the local hub's admin.token]."),
    session: Optional[str] = typer.Option(None, "--session", help="Session id for a --no-auth hub "
                                                                   "[env COORD_SESSION; <machine>/claude-main]."),
    queue_file: Optional[str] = typer.Option(None, "--queue-file", help="Softfail queue [env COORD_QUEUE_FILE; "
                                                                         ".claude/coord-queue.jsonl]."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds to wait for the hub [env "
                                                                     "COORD_TIMEOUT; 10]."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Global options, given before the command."""
    ctx.obj = Options(url, token, session, queue_file, timeout)


@app.command()
def status(ctx: typer.Context, project: Optional[str] = typer.Option(None, "--project", help="Only this project."),
           as_json: bool = JSON_OPT) -> None:
    """Fleet status: halt, live leases, components, active workflows, your unread count."""
    data = call(ctx, lambda c: c.status(project))

    def human(s: dict[str, Any]) -> None:
        if s["halt"]:
            h = s["halt"]
            console.print(f"[bold red]HALTED[/] by {h['halted_by']} at {h['halted_at']}: {h['reason']}")
        console.print(f"unread messages: {s['unread_messages']}")
        console.print("[bold]leases[/]")
        table(s["active_locks"], locks.COLUMNS, "  none")
        console.print("[bold]components[/]")
        table(s["components"], [("project_key", "project"), ("component", "component"), ("state", "state"),
                                ("version", "version"), ("updated_at", "updated")], "  none")
        console.print("[bold]active workflows[/]")
        table(s["active_workflows"], [("id", "id"), ("project_key", "project"), ("name", "name"),
                                      ("status", "status")], "  none")

    show(data, as_json, human)


@app.command()
def halt(ctx: typer.Context, reason: str = typer.Argument(..., help="Why; every session will see it."),
         as_json: bool = JSON_OPT) -> None:
    """Halt the whole fleet (admin): every mutating call but resume is refused until `coord resume`."""
    data = call(ctx, lambda c: c.halt(reason))
    show(data, as_json, lambda h: console.print(f"fleet halted by {h['halted_by']}: {h['reason']}"))


@app.command()
def resume(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Lift the fleet halt (admin)."""
    data = call(ctx, lambda c: c.resume())
    show(data, as_json, lambda r: console.print("fleet resumed" if r["was"] else "fleet was not halted"))


@app.command()
def sync(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Send the writes queued while the hub was unreachable, in order, then show unread messages."""
    with client(ctx) as c:
        applied, rejected, left = c.sync()
        unread: list[Any] = []
        if not left:
            try:
                unread = c.inbox(unread_only=True)
            except Exception:  # the queue result matters more than the catch-up read
                unread = []
    result = {"applied": applied, "rejected": rejected, "pending": left, "unread": unread}
    if as_json:
        show(result, True, lambda r: None)
    else:
        console.print(f"sent {applied} queued write(s)" + (f", {rejected} refused by the hub (kept in "
                      f"{c.queue.rejected})" if rejected else "") + (f"; {left} still pending: hub unreachable"
                                                                     if left else ""))
        for m in unread:
            console.print(message_banner(m), markup=False)
    if left:
        raise typer.Exit(EXIT_UNREACHABLE)


def main() -> None:
    """Console-script entry point."""
    app()
