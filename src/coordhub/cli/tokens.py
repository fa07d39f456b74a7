"""``coord token``: create, list, revoke (admin)."""

from __future__ import annotations

import typer

from coordhub.cli.common import EXIT_REFUSED, JSON_OPT, call, fail, show
from coordhub.cli.output import console, table

app = typer.Typer(help="Bearer tokens (needs an admin token).", no_args_is_help=True)


@app.command()
def create(ctx: typer.Context, name: str = typer.Argument(..., help="Session id it acts as, "
                                                                    "e.g. HOWARD-HOME/claude-main."),
           admin: bool = typer.Option(False, "--admin", help="Make it an admin token.")) -> None:
    """Create a token and print just the token on stdout (it is not shown again).

    Exit 3 when the hub is unreachable: never queued for later, since the hub shows a token only in the answer to
    the request that made it, and a queued request's answer reaches nobody.
    """
    result = call(ctx, lambda c: c.create_token(name, admin), admin=True)
    if not result.get("token"):  # an idempotent replay: the hub never stores a token, so it cannot repeat it
        fail(str(result.get("message") or "the hub did not return the token"), EXIT_REFUSED)
    typer.echo(result["token"])


@app.command("list")
def list_(ctx: typer.Context, include_revoked: bool = typer.Option(False, "--revoked", help="Include revoked."),
          as_json: bool = JSON_OPT) -> None:
    """List tokens (never the tokens themselves)."""
    rows = call(ctx, lambda c: c.tokens(include_revoked), admin=True)
    show(rows, as_json, lambda r: table(r, [("name", "name"), ("admin", "admin"), ("created_at", "created"),
                                            ("revoked_at", "revoked"), ("id", "id")], "no tokens"))


@app.command()
def revoke(ctx: typer.Context, name: str = typer.Argument(..., help="Session id whose tokens to revoke."),
           keep_leases: bool = typer.Option(False, "--keep-leases", help="Leave the session's leases live."),
           as_json: bool = JSON_OPT) -> None:
    """Revoke every token of a session and release (as revoked) the leases it holds."""
    result = call(ctx, lambda c: c.revoke_token(name, keep_leases), admin=True)
    show(result, as_json, lambda r: console.print(
        f"revoked {r['revoked']} token(s) of {r['name']}; "
        + ("its leases were kept" if r.get("kept_leases") else f"released {r.get('released_leases', 0)} lease(s)")))
