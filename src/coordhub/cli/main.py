"""The ``coord`` command: the entry point and the commands that are not per-noun."""

from __future__ import annotations

from typing import Any

import typer

from coordhub import __version__
from coordhub.cli import bench, components, hooks, locks, messages, todos, tokens, watch
from coordhub.cli.common import EXIT_UNREACHABLE, JSON_OPT, Options, call, client, show
from coordhub.cli.mcp import mcp, mcp_config
from coordhub.cli.output import console, heading, message_banner, table, verbatim
from coordhub.cli.serve import serve
from coordhub.config import setting
from coordhub.hooks.untrusted import one_line

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
app.command()(watch.watch)
app.command()(watch.presence)
app.command()(bench.bench)
app.command("mcp")(mcp)
app.command("mcp-config")(mcp_config)
app.command("install-hooks")(hooks.install_hooks)
app.command("uninstall-hooks")(hooks.uninstall_hooks)
app.command("install-git-hook")(hooks.install_git_hook)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"coord {__version__}")
        raise typer.Exit()


def _client_opt(name: str) -> Any:
    """A global client option from the one definition of its setting (env and identity.json are
    resolved by ``coordhub.client.settings``, which knows their precedence)."""
    s = setting(name)
    return typer.Option(None, s.flag, help=f"{s.help} (env {s.env})", show_default=False)


@app.callback()
def root(
    ctx: typer.Context,
    url: str | None = _client_opt("url"),
    token: str | None = _client_opt("token"),
    session: str | None = _client_opt("session"),
    queue_file: str | None = _client_opt("queue_file"),
    timeout: float | None = _client_opt("timeout"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Global options, given before the command."""
    ctx.obj = Options(url, token, session, queue_file, timeout)


@app.command()
def status(ctx: typer.Context, project: str | None = typer.Option(None, "--project", help="Only this project."),
           as_json: bool = JSON_OPT) -> None:
    """Fleet status: halt, live leases, components, active workflows, your unread count."""
    data = call(ctx, lambda c: c.status(project))

    def human(s: dict[str, Any]) -> None:
        if s["halt"]:
            h = s["halt"]
            console.print(one_line(f"HALTED by {h['halted_by']} at {h['halted_at']}: {h['reason']}"), style="bold red")
        console.print(f"unread messages: {s['unread_messages']}")
        heading("leases")
        table(s["active_locks"], locks.COLUMNS, "  none")
        heading("components")
        table(s["components"], [("project_key", "project"), ("component", "component"), ("state", "state"),
                                ("version", "version"), ("updated_at", "updated")], "  none")
        heading("active workflows")
        table(s["active_workflows"], [("id", "id"), ("project_key", "project"), ("name", "name"),
                                      ("status", "status")], "  none")

    show(data, as_json, human)


@app.command()
def halt(ctx: typer.Context, reason: str = typer.Argument(..., help="Why; every session will see it."),
         as_json: bool = JSON_OPT) -> None:
    """Halt the whole fleet (admin): every mutating call but resume is refused until `coord resume`."""
    data = call(ctx, lambda c: c.halt(reason))
    show(data, as_json, lambda h: console.print(one_line(f"fleet halted by {h['halted_by']}: {h['reason']}")))


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
            verbatim(message_banner(m))
    if left:
        raise typer.Exit(EXIT_UNREACHABLE)


def main() -> None:
    """Console-script entry point."""
    app()
