"""``coord web``: open the hub's dashboard in a browser, or print its URL (seed 003's ``web``)."""

from __future__ import annotations

import webbrowser

import typer

from coordhub.cli.common import EXIT_AUTH, EXIT_USAGE, fail, options
from coordhub.client.credentials import check_may_ask
from coordhub.client.settings import resolve
from coordhub.errors import CoordError, Invalid

PRINT_OPT = typer.Option(False, "--print", help="Print the dashboard's URL instead of opening it.")
# seed 003's `coord web [--host] [--port]` served the dashboard itself; strings, so any value reaches the refusal
SERVED_AT = "Seed 003's (where its dashboard listened): refused, exit 2; the hub serves the dashboard, so choose " \
            "where with `coord serve --host H --port P`."
HOST_OPT = typer.Option(None, "--host", metavar="HOST", help=SERVED_AT, show_default=False)
PORT_OPT = typer.Option(None, "--port", metavar="PORT", help=SERVED_AT, show_default=False)


def web(ctx: typer.Context, print_only: bool = PRINT_OPT, host: str | None = HOST_OPT,
        port: str | None = PORT_OPT) -> None:
    """Open the dashboard of the hub (--url / COORD_URL / identity.json) in a browser; sign in there with a token.

    The URL carries no token: the page asks for one and trades it for a
    browser session (docs/dashboard.md). Exit 2 for a bad URL, when no
    browser could be opened (the URL is printed either way), or for seed
    003's `--host`/`--port`: this command starts no server, so where one
    listens is `coord serve`'s to say.
    """
    if host is not None or port is not None:
        fail("--host/--port: seed 003's `coord web` started a dashboard server there; here the hub serves the "
             "dashboard at its own address, so give them to the hub: `coord serve --host H --port P` "
             "(docs/dashboard.md). `coord web` then opens it, or `coord --url http://H:P web` for a hub elsewhere",
             EXIT_USAGE)
    o = options(ctx)
    try:
        settings = resolve(o.url, None, o.session, o.queue_file, o.timeout)
        check_may_ask(settings)  # the page asks for a token: never one of a hub a repository chose
    except Invalid as exc:
        fail(exc.message, EXIT_USAGE)
    except CoordError as exc:
        fail(exc.message, EXIT_AUTH)
    url = settings.url + "/"
    typer.echo(url)
    if not print_only and not webbrowser.open(url):
        fail("no browser could be opened here: open the URL above yourself", EXIT_USAGE)
