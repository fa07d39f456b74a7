"""``coord lock``: claim, release, renew, list, check (seed 000 plus fences)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from coordhub.cli import views
from coordhub.cli.common import JSON_OPT, call, show
from coordhub.cli.output import console
from coordhub.client.client import MAX_LISTED
from coordhub.client.outcomes import Leases
from coordhub.hooks import project as projects
from coordhub.hooks.untrusted import one_line

app = typer.Typer(help="Leases on files, folders, globs and services, with fencing tokens.", no_args_is_help=True)


def resource_arg(text: str) -> str:
    """A resource as typed in the working directory, as the hooks will name it (issue 7, points 11 and 13).

    Paths, absolute or relative to the working directory, become
    project-relative (the hooks' project root: ``$CLAUDE_PROJECT_DIR``'s git
    working tree, else the working directory's), symlinks resolved, with a
    trailing ``/`` for an existing directory; NAMEs and globs are unchanged.
    See :meth:`coordhub.hooks.project.Project.claimed`.
    """
    cwd = Path.cwd()
    return projects.resolve(cwd).claimed(text, cwd)


def unguarded(project: str, resource: str) -> str | None:
    """Why a lease of ``resource`` (as sent) in ``project`` stops no edit or commit in the working directory's git
    working tree, or None.

    The edit hook and the git guard check that tree's files in one project: ``COORD_PROJECT``, else the trusted
    identity.json's ``project``, else the repository's name (:func:`coordhub.hooks.project.resolve`). A path or
    glob leased under another key overlaps none of their questions, and nothing said so: README's first steps
    claim ``gururmm server/src/`` wherever they are typed. None for a NAME (``deploy:staging``: no file), an
    absolute path or one above the project (``../x``), and outside a git working tree (no hook project to name).
    """
    from coordhub.client.project import git_root
    from coordhub.core import projects as project_keys
    from coordhub.core.paths import ResourceKind, classify
    from coordhub.errors import CoordError

    cwd = Path.cwd()
    if git_root(projects.start_dir(cwd)) is None or resource.startswith("/"):
        return None
    try:
        if classify(resource) is ResourceKind.NAME:
            return None
    except ValueError:  # invalid (the hub says why), or climbing above the project
        return None
    try:
        here = hooks_project(cwd)
    except CoordError:  # an unreadable identity.json: the command itself reports it
        return None
    if project_keys.fold(project) in here.keys:  # the hub's comparison: GuruRMM is gururmm
        return None
    return (f"the hooks and the git guard in {here.root} check leases of project {here.key!r} (COORD_PROJECT, "
            f"else identity.json \"project\", else the repository's name), not {project!r}: this lease stops no "
            f"edit or commit there; claim it as `coord lock claim {here.key} …` to guard those files")


def hooks_project(cwd: Path) -> projects.Project:
    """The project whose leases the edit hook and the git guard check for files in ``cwd``: its key
    (``COORD_PROJECT``, else the trusted identity.json's ``project``, else the repository's name) and root, as
    :func:`coordhub.hooks.project.resolve` computes them with the identity.json found where the hooks look
    (:func:`coordhub.hooks.project.start_dir`). Raises ``CoordError`` for an identity.json that cannot be read."""
    from coordhub.client.settings import find_identity, home_identity, load_identity

    found = find_identity(projects.start_dir(cwd))
    return projects.resolve(cwd, load_identity(found) if found else {}, own_identity=found == home_identity())


LEASE_HELP = "Lease id, as `coord lock claim` printed it (`coord lock list` shows every live one's)."


@app.command()
def claim(
    ctx: typer.Context,
    project: str = typer.Argument(..., help="Project key, e.g. gururmm."),
    resource: str = typer.Argument(..., help="Path (server/src/; absolute or relative to the working directory: "
                                             "sent project-relative, a directory with /), glob (src/**/*.py) or "
                                             "name (deploy:staging)."),
    description: str = typer.Argument(..., help="What you are doing."),
    ttl: float = typer.Option(2.0, "--ttl", help="Hours until it expires; 0 = never."),
    as_json: bool = JSON_OPT,
) -> None:
    """Claim a lease. Exit 4 if another session holds an overlapping one (its holder is named).

    Example: coord lock claim shop src/api/ "refactoring the API" --ttl 1

    Claiming what you already hold renews that lease (same id and fence) and says so. A path or glob claimed
    inside a git repository under another project than the one its hooks and git guard check (the repository's
    name unless COORD_PROJECT or identity.json "project" says otherwise) gets a warning on stderr: such a lease
    stops no edit or commit there.
    """
    target = resource_arg(resource)
    lease = call(ctx, lambda c: c.claim(project, target, description, ttl))
    note = unguarded(project, target)
    if note:
        typer.echo(f"coord: warning: {one_line(note)}", err=True)
    show(lease, as_json, lambda x: console.print(
        f"{'renewed your lease' if x.get('renewed') else 'claimed'} {x['id']} fence {x['fence']} on {x['resource']} "
        f"({'no expiry' if x['expires_at'] is None else 'expires ' + str(views.shown_time(x['expires_at']))})"))


@app.command()
def release(ctx: typer.Context, lease_id: str = typer.Argument(..., help=LEASE_HELP),
            force: bool = typer.Option(False, "--force", help="Admin: force-release another session's lease."),
            reason: str | None = typer.Option(None, "--reason", help="Why, when taking over a stale lease."),
            as_json: bool = JSON_OPT) -> None:
    """Release a lease you hold, or take over another session's stale one (seed 001's stale-lock rule).

    Stale: no expiry (ttl 0) and its holder inactive for the hub's stale_after_hours (default 2). A lease that had
    already ended is left as it is and said so ("already ended", --json "already": true; exit 0).
    """
    lease = call(ctx, lambda c: c.release(lease_id, force=force, reason=reason), admin=force)
    show(lease, as_json, lambda x: console.print(
        (f"already ended: {x['id']} is {x['state']}; nothing changed" if x.get("already")
         else f"{x['state']} {x['id']}")
        + (f" (was {x['session_id']}'s: {x['release_reason']})" if x["state"] == "stale_takeover" else "")))


@app.command()
def renew(ctx: typer.Context, lease_id: str = typer.Argument(..., help=LEASE_HELP),
          ttl: float | None = typer.Option(None, "--ttl", help="New TTL in hours from now."),
          as_json: bool = JSON_OPT) -> None:
    """Extend a live lease you hold."""
    lease = call(ctx, lambda c: c.renew(lease_id, ttl))
    show(lease, as_json, lambda x: console.print(
        f"renewed {x['id']} until {views.shown_time(x['expires_at']) or 'forever'}"))


@app.command("list")
def list_(ctx: typer.Context, project: str | None = typer.Option(None, "--project", help="Only this project."),
          resource: str | None = typer.Option(None, "--resource", help="Only leases overlapping this (a path is "
                                                                       "taken as for claim)."),
          after_fence: int = typer.Option(0, "--after-fence", min=0, help="Only leases granted after this fence "
                                                                          "(continues a list that was cut)."),
          max_leases: int = typer.Option(MAX_LISTED, "--max", min=1, help="List at most this many leases."),
          as_json: bool = JSON_OPT) -> None:
    """List live leases, oldest grant first: every one, page after page, up to --max (10,000).

    When more follow, the list (and --json's) holds the first --max and stderr says how to see the rest.
    """
    target = None if resource is None else resource_arg(resource)
    rows: Leases = call(ctx, lambda c: c.locks(project, target, after_fence=after_fence, max_leases=max_leases))
    show(rows, as_json, views.leases)
    if rows.next_after_fence is not None:
        typer.echo(f"coord: more live leases follow these {len(rows)}: `coord lock list --after-fence "
                   f"{rows.next_after_fence}` (with the same --project/--resource) lists the next", err=True)


@app.command()
def check(ctx: typer.Context, fence: int = typer.Argument(..., help="The fence to check."),
          resource: str | None = typer.Option(None, "--resource", help="Resource it must cover (a path is taken "
                                                                       "as for claim)."),
          project: str | None = typer.Option(None, "--project", help="Project it must be in."),
          as_json: bool = JSON_OPT) -> None:
    """Is this fence still the current holder's? Exit 4 if not."""
    target = None if resource is None else resource_arg(resource)
    result: Any = call(ctx, lambda c: c.check_fence(fence, target, project))
    show(result, as_json, lambda r: console.print("current" if r["current"] else f"stale: {r['reason']}"))
    if not result["current"]:
        raise typer.Exit(4)
