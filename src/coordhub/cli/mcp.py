"""``coord mcp`` (the stdio MCP server) and ``coord mcp-config`` (how to register it with Claude Code).

The ``mcp`` SDK is imported inside :func:`mcp` only, so ``coord --help`` and
every other command start without it.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import typer

from coordhub.cli.common import EXIT_AUTH, EXIT_USAGE, fail, options
from coordhub.client.settings import ClientSettings, resolve
from coordhub.errors import CoordError
from coordhub.mcp import PROFILE_ENV, PROFILE_NAMES

TOKEN_PLACEHOLDER = "${COORD_TOKEN}"  # expanded by Claude Code from its environment in .mcp.json
TOOLS_HELP = f"Tool set: {', '.join(PROFILE_NAMES)} (seed 002's coord_* tools; all = both)."


def _settings(ctx: typer.Context, url: str | None = None) -> ClientSettings:
    o = options(ctx)
    try:
        return resolve(url or o.url, o.token, o.session, o.queue_file, o.timeout)
    except CoordError as exc:
        fail(exc.message, EXIT_USAGE)
        raise  # unreachable: fail() exits


def _profile(tools: str) -> str:
    if tools not in PROFILE_NAMES:
        fail(f"--tools must be one of {', '.join(PROFILE_NAMES)}, not {tools!r}", EXIT_USAGE)
    return tools


def mcp(ctx: typer.Context,
        tools: str = typer.Option("default", "--tools", envvar=PROFILE_ENV, help=TOOLS_HELP)) -> None:
    """Run the MCP server on stdin/stdout (what Claude Code launches), acting as this session.

    The hub and identity come from --url/--token (COORD_URL/COORD_TOKEN) or .claude/identity.json.
    """
    profile = _profile(tools)
    settings = _settings(ctx)
    from coordhub.client.credentials import check_url

    try:  # a token goes only to a URL trusted for it, and a repository's hub only once trusted (client.trust)
        check_url(settings)
    except CoordError as exc:
        fail(exc.message, EXIT_AUTH)
    from coordhub.mcp.stdio import main

    main(profile, settings)


def mcp_config(
    ctx: typer.Context,
    url: str | None = typer.Option(None, "--url", help="The hub's URL as Claude Code will reach it (default: the "
                                                       "global --url, COORD_URL or identity.json)."),
    scope: str = typer.Option("local", "--scope", help="Claude Code scope: local, project (.mcp.json, "
                                                       "committed) or user."),
    http: bool = typer.Option(False, "--http", help="Connect to the hub's /mcp over HTTP instead of "
                                                    "launching `coord mcp`."),
    tools: str = typer.Option("default", "--tools", envvar=PROFILE_ENV, help=TOOLS_HELP),
    name: str = typer.Option("coord", "--name", help="Server name in Claude Code (tools appear as "
                                                     "mcp__NAME__TOOL)."),
    show_token: bool = typer.Option(False, "--show-token", help="Put the literal token in the output "
                                                                "instead of $COORD_TOKEN."),
) -> None:
    """Print the `claude mcp add …` command and the .mcp.json entry that connect Claude Code to this hub."""
    if scope not in ("local", "project", "user"):
        fail(f"--scope must be local, project or user, not {scope!r}", EXIT_USAGE)
    if show_token and scope == "project":
        fail("refusing --show-token with --scope project: .mcp.json is committed; keep the token in "
             "COORD_TOKEN", EXIT_USAGE)
    profile = _profile(tools)
    settings = _settings(ctx, url)
    from coordhub.client.credentials import check_may_ask

    try:  # the printed command names the hub in COORD_URL, which Claude Code's server then takes as chosen
        check_may_ask(settings)
    except CoordError as exc:
        fail(exc.message, EXIT_AUTH)
    token = settings.token if show_token else None
    if show_token and not token:
        fail("no token found (--token, COORD_TOKEN or identity.json)", EXIT_USAGE)
    command, entry = (_http_form if http else _stdio_form)(name, scope, settings, profile, token)
    typer.echo("# Claude Code: run this in your project directory")
    typer.echo(command)
    typer.echo("")
    typer.echo("# or the same as JSON: the entry for .mcp.json (project scope) or `claude mcp add-json`"
               + ("" if token else "; Claude Code expands ${COORD_TOKEN} from its environment"))
    typer.echo(json.dumps({"mcpServers": {name: entry}}, indent=2))
    if not token:
        typer.echo("")
        typer.echo("# COORD_TOKEN must hold this session's token (`coord token create NAME` as an admin); "
                   "--show-token prints it instead")
    if http:
        typer.echo("# note: some Claude Code versions send ${VAR} in HTTP headers literally; "
                   "the stdio form (without --http) avoids that")


def _stdio_form(name: str, scope: str, settings: ClientSettings, profile: str,
                token: str | None) -> tuple[str, dict[str, Any]]:
    launch = _coord_command() + ["mcp"] + ([] if profile == "default" else ["--tools", profile])
    env_token = f"COORD_TOKEN={shlex.quote(token)}" if token else '"COORD_TOKEN=$COORD_TOKEN"'
    command = " ".join(["claude", "mcp", "add", "--scope", scope, "-e", shlex.quote(f"COORD_URL={settings.url}"),
                        "-e", env_token, shlex.quote(name), "--", *map(shlex.quote, launch)])
    entry = {"command": launch[0], "args": launch[1:],
             "env": {"COORD_URL": settings.url, "COORD_TOKEN": token or TOKEN_PLACEHOLDER}}
    return command, entry


def _http_form(name: str, scope: str, settings: ClientSettings, profile: str,
               token: str | None) -> tuple[str, dict[str, Any]]:
    url = settings.url + "/mcp" + ("" if profile == "default" else f"?tools={profile}")
    header = f"Authorization: Bearer {token}" if token else "Authorization: Bearer $COORD_TOKEN"
    command = " ".join(["claude", "mcp", "add", "--transport", "http", "--scope", scope, shlex.quote(name),
                        shlex.quote(url), "--header", shlex.quote(header) if token else f'"{header}"'])
    entry = {"type": "http", "url": url,
             "headers": {"Authorization": f"Bearer {token or TOKEN_PLACEHOLDER}"}}
    return command, entry


def _coord_command() -> list[str]:
    """An absolute command that runs this installation's ``coord``: the script beside this Python
    (a venv's bin), else ``coord`` on PATH, else ``python -m coordhub``."""
    beside = Path(sys.executable).parent / "coord"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("coord")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "coordhub"]
