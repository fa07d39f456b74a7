"""``coord compat``: drop-in files for the users of the seed systems (``coord compat seed002-scripts DIR``)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from coordhub.cli.common import EXIT_REFUSED, EXIT_USAGE, fail
from coordhub.cli.output import console
from coordhub.client import project

app = typer.Typer(help="Drop-in files for teams moving from the seed systems.", no_args_is_help=True)

_HEADER = """#!/usr/bin/env bash
# Seed 002's {name}, backed by coordhub: written by `coord compat seed002-scripts`.
# Usage: {usage}
# Runs `coord msg {verb}` ($COORD_BIN, default: coord on PATH). The sender is this session: its token
# (COORD_TOKEN or identity.json), named by COORD_SESSION or CLAUDE_INSTANCE_ID where nothing else names it.
# Exit codes: 0 ok (or queued while the hub is unreachable), 1 refused or a usage error (seed 002's scripts
# exited 1 for both; coord's own usage exit 2 becomes 1 here), 3 hub unreachable, 6 no credential; 127 when
# coord cannot be found.
set -euo pipefail
coord_bin="${{COORD_BIN:-coord}}"
if ! command -v "$coord_bin" >/dev/null 2>&1; then
    echo "{name}: $coord_bin (coordhub's CLI) not found: install coordhub where this runs, so that" \
         "coord is on PATH, or set COORD_BIN to its coord" >&2
    exit 127
fi
run_coord() {{  # coord's usage error (exit 2) is the seed's exit 1
    rc=0
    "$coord_bin" "$@" || rc=$?
    if [ "$rc" -eq 2 ]; then rc=1; fi
    exit "$rc"
}}
"""

# Each wrapper reads its arguments as seed 002's script did: its options anywhere among the positional arguments
# (`--to X` first or last), -h/--help teaching (exit 0), anything else positional, so a subject that starts with
# "-" stays a subject; it hands the positional ones to coord after "--". --json and --seed-output are coord's:
# the seed's own lines ("  ID: msg-…") unless --json is asked for. A usage error of the wrapper's own is exit 1,
# as the seed's scripts said, with, under --json, coord's error envelope on stdout (its text fixed here: nothing
# in it needs escaping).
# `${a[@]+"${a[@]}"}` keeps an empty array from tripping `set -u` in bash before 4.4 (macOS's).
_USAGE_ERROR = """json=""
for arg in "$@"; do if [ "$arg" = --json ]; then json=1; fi; done
usage_error() {{  # $1: what is wrong (fixed text)
    echo "{name}: $1" >&2
    echo "usage: {usage} [--json]  ({name} --help: every option)" >&2
    if [ -n "$json" ]; then
        printf '{{"error": {{"code": "usage", "message": "%s"}}}}\\n' "{name}: $1"
    fi
    exit 1
}}
"""

SCRIPTS = {
    "publish-message.sh": ("publish", "publish-message.sh <type> <subject> <description> [--to <instance>] [--no-ack]",
                           """args=() opts=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) exec "$coord_bin" msg publish --help ;;
        --to)
            [ "$#" -ge 2 ] || usage_error "--to needs an <instance>"
            opts+=(--to "$2")
            shift 2 ;;
        --no-ack|--json) opts+=("$1"); shift ;;
        *) args+=("$1"); shift ;;
    esac
done
[ "${#args[@]}" -eq 3 ] || usage_error "<type> <subject> <description> expected, ${#args[@]} given"
run_coord msg publish --seed-output ${opts[@]+"${opts[@]}"} -- "${args[@]}"
"""),
    "check-messages.sh": ("check", "check-messages.sh [--pending] [--all] [--from <instance>] [--type <type>]",
                          """skip=""
for arg in "$@"; do  # the seed's -h (coord knows --help only); not the value of --from/--type
    if [ -n "$skip" ]; then skip=""; continue; fi
    case "$arg" in
        -h) exec "$coord_bin" msg check --help ;;
        --from|--type|--limit) skip=1 ;;
    esac
done
run_coord msg check --seed-output "$@"
"""),
    "ack-message.sh": ("ack", "ack-message.sh <message-id> [--comment <comment>]",
                       """id="" have_id="" opts=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) exec "$coord_bin" msg ack --help ;;
        --comment)
            [ "$#" -ge 2 ] || usage_error "--comment needs a <comment>"
            opts+=(--comment "$2")
            shift 2 ;;
        --json) opts+=("$1"); shift ;;
        *)
            if [ -n "$have_id" ]; then
                echo "ack-message.sh: unexpected argument: $1" >&2
                usage_error "one <message-id> only"
            fi
            id="$1" have_id=1
            shift ;;
    esac
done
[ -n "$id" ] || usage_error "<message-id> expected"
run_coord msg ack --seed-output ${opts[@]+"${opts[@]}"} -- "$id"
"""),
}


# The seed's other files in its scripts/coordination/, which still speak to Redis: what takes their place.
LEFT_ALONE = {
    "watch-notifications.sh": "it still subscribes to Redis; `coord watch` shows the hub's messages live "
                              "(--notify: desktop notifications)",
    "mcp-server.sh": "it still serves the Redis tools; `coord mcp-config --tools seed002` prints the line that "
                     "serves the same coord_* tools from the hub",
}


def script(name: str) -> str:
    """The text of one wrapper script (a key of :data:`SCRIPTS`)."""
    verb, usage, body = SCRIPTS[name]
    own_usage = _USAGE_ERROR.format(name=name, usage=usage) if "usage_error" in body else ""
    return _HEADER.format(name=name, usage=usage, verb=verb) + own_usage + body


def _linked_dir(directory: Path) -> Path | None:
    """The first component of ``directory`` below the current directory that is a symlink, or None.

    Those are the repository's, which a clone may have made symlinks to anywhere; what lies above the current
    directory, or a directory outside it that the user named, is the user's own choice.
    """
    here = Path.cwd()
    try:  # not normalised: in scripts/../x the OS goes through scripts, so scripts is checked too
        parts = (here / directory).relative_to(here).parts
    except ValueError:
        return None
    path = here
    for part in parts:
        path = path / part
        if path.is_symlink():
            return path
    return None


@app.command("seed002-scripts")
def seed002_scripts(
    directory: Path = typer.Argument(..., help="Where to write them, e.g. scripts/coordination (created if "
                                     "missing)."),
    force: bool = typer.Option(False, "--force", help="Replace scripts already there (the seed's own)."),
) -> None:
    """Write publish-message.sh, check-messages.sh and ack-message.sh: seed 002's scripts as wrappers over coord.

    A repository's existing ./scripts/coordination/*.sh calls keep working, with the hub's guarantees.
    Each is written to a new temp file and renamed into place; a script name that is a symlink, or a directory
    on the way below the current one that is, is refused. The seed's watch-notifications.sh and mcp-server.sh
    are left as they are, with a note on what replaces them.
    """
    hop = _linked_dir(directory)
    if hop is not None:  # even with --force: it takes the scripts out of the project (scripts -> ~/.bashrc.d)
        fail(f"{hop} is a symlink (a repository may have put it there): not writing the scripts through it, even "
             "with --force; name a directory of the project itself, or an absolute path outside it", EXIT_REFUSED)
    if directory.exists() and not directory.is_dir():
        fail(f"{directory} is not a directory", EXIT_USAGE)
    linked = [n for n in SCRIPTS if (directory / n).is_symlink()]
    if linked:  # even with --force: the user may not know the repository put them there, nor where they point
        it = "it" if len(linked) == 1 else "them"
        fail(f"{', '.join(linked)} in {directory}: {'a symlink' if it == 'it' else 'symlinks'} (a repository may "
             f"have put {it} there), not replaced even with --force; move {it} away and run this again", EXIT_REFUSED)
    present = [n for n in SCRIPTS if os.path.lexists(directory / n)]
    if present and not force:
        fail(f"{', '.join(present)} already in {directory}: add --force to replace them", EXIT_REFUSED)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name in SCRIPTS:
            # a new temp file (O_EXCL|O_NOFOLLOW), its mode set on the descriptor, then renamed over the name:
            # nothing a repository planted (a .tmp symlink to ~/.bashrc) is written through or chmodded
            project.write_private(directory / name, script(name), mode=0o755)
    except OSError as exc:
        fail(f"cannot write the scripts in {directory}: {exc}", EXIT_REFUSED)
    for name in SCRIPTS:
        console.print(f"wrote {directory / name}")
    for name, instead in LEFT_ALONE.items():  # a user who stops Redis next would find them failing
        if os.path.lexists(directory / name):
            typer.echo(f"coord: note: left {directory / name} as it is: {instead}", err=True)
