"""``coord web``: open the hub's dashboard in a browser, or print its URL (seed 003's ``web``)."""

from __future__ import annotations

import webbrowser

import typer

from coordhub.cli.common import EXIT_AUTH, EXIT_USAGE, fail, options
from coordhub.client.credentials import check_may_ask
from coordhub.client.settings import resolve
from coordhub.errors import CoordError, Invalid

PRINT_OPT = typer.Option(False, "--print", help="Print the dashboard's URL instead of opening it.")


def web(ctx: typer.Context, print_only: bool = PRINT_OPT) -> None:
    """Open the dashboard of the hub (--url / COORD_URL / identity.json) in a browser; sign in there with a token.

    The URL carries no token: the page asks for one and trades it for a
    browser session (docs/dashboard.md). Exit 2 for a bad URL or when no
    browser could be opened (the URL is printed either way).
    """
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
