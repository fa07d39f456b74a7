"""The ``coord`` command: the Typer app, its lazily loaded subcommands, and the commands that are not per-noun.

Start-up is part of every command's cost (issue 7 point 18), so a subcommand's
module (and what it imports: the server, MCP, Rich tables, the HTTP stack) is
imported only when that subcommand runs or ``--help`` lists it
(:mod:`coordhub.cli.group`): the root group knows each one by name and the
``module:attribute`` that defines it (:data:`LAZY_COMMANDS`, :data:`LAZY_GROUPS`).
The console script itself is :mod:`coordhub.cli.entry`.
"""

from __future__ import annotations

from typing import Any

import typer

from coordhub.cli.common import EXIT_UNREACHABLE, JSON_OPT, Options, call, client, show
from coordhub.cli.group import lazy_group
from coordhub.cli.output import console, heading, message_banner, table, verbatim
from coordhub.config import setting
from coordhub.hooks.untrusted import one_line

# name → "module:attribute": a function (one command) or a Typer app (a group). The order is --help's.
LAZY_COMMANDS = {
    "serve": "coordhub.cli.serve:serve", "watch": "coordhub.cli.watch:watch",
    "presence": "coordhub.cli.watch:presence", "bench": "coordhub.cli.bench:bench", "mcp": "coordhub.cli.mcp:mcp",
    "mcp-config": "coordhub.cli.mcp:mcp_config", "install-hooks": "coordhub.cli.hooks:install_hooks",
    "uninstall-hooks": "coordhub.cli.hooks:uninstall_hooks", "install-git-hook": "coordhub.cli.hooks:install_git_hook",
}
LAZY_GROUPS = {
    "msg": "coordhub.cli.messages:app", "todo": "coordhub.cli.todos:app", "lock": "coordhub.cli.locks:app",
    "component": "coordhub.cli.components:app", "token": "coordhub.cli.tokens:app",
}


def _root() -> typer.Typer:
    return app


app = typer.Typer(
    name="coord",
    help="coordhub: messages, leases, todos and status for fleets of coding-agent sessions.\n\n"
         "Run the hub with `coord serve`; every other command talks to a hub found through --url / COORD_URL "
         "or .claude/identity.json (coord_api), as the session of --token / COORD_TOKEN.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=lazy_group(_root, first=LAZY_COMMANDS, last=LAZY_GROUPS),
)


def _version(value: bool) -> None:
    if value:
        from coordhub.cli.entry import version_line

        typer.echo(version_line())
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
        from coordhub.cli.locks import COLUMNS

        table(s["active_locks"], COLUMNS, "  none")
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
    """The console script's entry point (kept for installs made before :mod:`coordhub.cli.entry`)."""
    from coordhub.cli.entry import main as entry_main

    entry_main()
