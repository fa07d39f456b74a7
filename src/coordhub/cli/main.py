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

from coordhub.cli import exits, views
from coordhub.cli.common import (
    EXIT_AUTH,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    JSON_OPT,
    Options,
    call,
    client,
    expired_note,
    fail,
    foreign_note,
    gave_up_note,
    hub_envelope,
    options,
    show,
    url_hint,
)
from coordhub.cli.group import lazy_group
from coordhub.cli.output import console, heading, message_banner, table, verbatim
from coordhub.client import CoordClient, HubError, Unreachable
from coordhub.client.queue import FAILED, MAX_FAILED_REPLAYS, Entry, safe_target
from coordhub.client.settings import is_local_admin_token, resolve
from coordhub.config import setting
from coordhub.errors import CoordError, Invalid
from coordhub.hooks.leases import when
from coordhub.hooks.untrusted import one_line

# name → "module:attribute": a function (one command) or a Typer app (a group). The order is --help's.
LAZY_COMMANDS = {
    "serve": "coordhub.cli.serve:serve", "watch": "coordhub.cli.watch:watch",
    "presence": "coordhub.cli.watch:presence", "bench": "coordhub.cli.bench:bench", "mcp": "coordhub.cli.mcp:mcp",
    "mcp-config": "coordhub.cli.mcp:mcp_config", "install-hooks": "coordhub.cli.hooks:install_hooks",
    "uninstall-hooks": "coordhub.cli.hooks:uninstall_hooks", "install-git-hook": "coordhub.cli.hooks:install_git_hook",
    "agent": "coordhub.cli.agent:agent", "web": "coordhub.cli.web:web",
    # the orchestrator (seed 003's verbs)
    "init": "coordhub.cli.orchestrator:init", "assign": "coordhub.cli.orchestrator:assign",
    "stop": "coordhub.cli.orchestrator:stop", "wait": "coordhub.cli.orchestrator:wait",
    "retry": "coordhub.cli.orchestrator:retry", "resume-stuck": "coordhub.cli.orchestrator:resume_stuck",
    "log": "coordhub.cli.orchestrator:log", "reconcile": "coordhub.cli.orchestrator:reconcile",
    "unpause": "coordhub.cli.orchestrator:unpause",
    "test": "coordhub.cli.pipeline:test", "review": "coordhub.cli.pipeline:review", "fix": "coordhub.cli.pipeline:fix",
    "accept": "coordhub.cli.pipeline:accept", "stages": "coordhub.cli.pipeline:stages",
    "done": "coordhub.cli.pipeline:done",
    "merge": "coordhub.cli.merging:merge", "pr": "coordhub.cli.merging:pr", "notify": "coordhub.cli.merging:notify",
    "plan": "coordhub.cli.brain:plan", "approve": "coordhub.cli.brain:approve", "split": "coordhub.cli.brain:split",
}
LAZY_GROUPS = {
    "msg": "coordhub.cli.messages:app", "todo": "coordhub.cli.todos:app", "lock": "coordhub.cli.locks:app",
    "component": "coordhub.cli.components:app", "token": "coordhub.cli.tokens:app",
    "import": "coordhub.cli.imports:app", "compat": "coordhub.cli.compat:app",
    "config": "coordhub.cli.orchestrator:config_app", "conv": "coordhub.cli.conversations:app",
    "archive": "coordhub.cli.archive:app",
}

# what --help lists first: a session's day-one commands (review: they came last, after the orchestrator's ~30)
FRONT = ("status", "whoami", "msg", "lock", "todo", "component", "conv", "halt", "resume", "engage", "sync", "serve",
         "token", "install-hooks", "install-git-hook")

# names that are no command, and what a newcomer who typed one looks for (instead of Typer's spelling guesses)
_HOOKS = ("Claude Code and git run the hooks as `coord-hook EVENT`, a command of its own; put them in place with "
          "`coord install-hooks` and `coord install-git-hook` (docs/hooks.md)")
MISNAMED = {"hook": _HOOKS, "hooks": _HOOKS, "message": "Did you mean 'msg'?", "messages": "Did you mean 'msg'?",
            "lease": "Did you mean 'lock'?", "leases": "Did you mean 'lock'?",
            "help": "Run `coord --help`, or `coord COMMAND --help` for one command."}


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
    cls=lazy_group(_root, first=LAZY_COMMANDS, last=LAZY_GROUPS, misnamed=MISNAMED, front=FRONT),
)


def _version(value: bool) -> None:
    if value:
        from coordhub.cli.entry import version_line

        typer.echo(version_line())
        raise typer.Exit()


@app.command("version")
def version_command() -> None:
    """Print the version, as --version does (seed 003's `coord version`)."""
    _version(True)


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
    admin: bool = typer.Option(False, "--admin", help="Act as the hub's admin with the admin.token of the hub on "
                               "this machine (COORD_DATA_DIR, else the default data dir); sent only to the hub "
                               "that wrote it. Admin commands use it without this flag when no token is given."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Global options, given before the command."""
    ctx.obj = Options(url, token, session, queue_file, timeout, admin)


@app.command()
def status(ctx: typer.Context, project: str | None = typer.Option(None, "--project", help="Only this project."),
           machine: str | None = typer.Option(None, "--machine", help="Only this machine's orchestrator view."),
           freshness: bool = typer.Option(False, "--freshness", help="Also what each machine's last freshness check "
                                          "found of its dependency repos (seed 003's flag; checked on the machine "
                                          "when a worker starts; in --json: each assignment's freshness)."),
           as_json: bool = JSON_OPT) -> None:
    """Fleet status: your session and the hub asked, halts, your pause, live leases, components, active workflows,
    your unread count; and the orchestrator's machines, queue, assignments and costs once a coordinator.yml is
    applied."""
    from coordhub.cli.fleet import orchestrator_view, show_orchestrator

    you: list[str] = []  # the people's first line: who asked which hub (the JSON answer is the hub's own)

    def ask(c: CoordClient) -> dict[str, Any]:
        answer = {**c.status(project), "orchestrator": orchestrator_view(c, machine)}
        you.append(_you(c, answer.get("session_id")))
        return answer

    data = call(ctx, ask)

    def human(s: dict[str, Any]) -> None:
        console.print(you[0])
        for h in s.get("halts") or ([s["halt"]] if s["halt"] else []):
            console.print(halt_line(h), style="bold red")
        if s.get("paused"):
            console.print(pause_line(s["paused"]), style="bold yellow")
        # a --no-auth hub asked by no session counts no inbox: its 0 said "nothing waits" (seed 001's hub-wide count)
        console.print(f"unread messages: {s['unread_messages']}" if s.get("session_id") else
                      "unread messages: not counted (no session is named: --session or COORD_SESSION)")
        heading("leases")
        table(views.lease_rows(s["active_locks"]), views.LEASE_COLUMNS, "  none")
        if s.get("active_locks_more"):
            console.print(f"  … more live leases than these {len(s['active_locks'])}: `coord lock list` lists all")
        heading("components")
        table(s["components"], [("project_key", "project"), ("component", "component"), ("state", "state"),
                           ("version", "version"), ("updated_at", "updated")], "  none")
        heading("active workflows")
        table(s["active_workflows"], [("id", "id"), ("project_key", "project"), ("name", "name"),
                                      ("status", "status")], "  none")
        show_orchestrator(s["orchestrator"], freshness)

    show(data, as_json, human)


@app.command()
def whoami(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Who you act as: your session and whether its token is admin (the hub's answer), the hub asked and where
    the token and its URL came from (as `coord status`'s first line says), the identity.json read, and the
    project whose leases this repository's hooks and git guard check.

    --json: the hub's answer (session_id, admin, presence) with url, url_source, token_source, identity_file and
    project ({key, root}; null when the identity.json the hooks read cannot be read) added. Exit 3 when the hub
    is unreachable or answers what no hub would, 6 without a token it accepts.
    """
    you: list[str] = []

    def ask(c: CoordClient) -> dict[str, Any]:
        s = c.settings
        me = _whoami_answer(c.call("GET", "/api/coord/whoami"))
        you.append(_you(c, me.get("session_id")))
        return {**me, "url": s.url, "url_source": s.url_source, "token_source": s.token_source,
                "identity_file": None if s.identity_file is None else str(s.identity_file),
                "project": _hooks_project()}

    def human(me: dict[str, Any]) -> None:
        console.print(you[0])
        console.print(f"admin: {'yes' if me.get('admin') else 'no'}")
        console.print(one_line(f"identity.json: {me['identity_file'] or 'none'}"))
        project = me["project"]
        also = "".join(f" and {k}, the repository's name" for k in project["also"]) if project else ""
        console.print(one_line(f"lease project: {project['key']}{also} (checked by the hooks and the git guard in "
                               f"{project['root']})" if project else
                               "lease project: unknown (the identity.json the hooks read cannot be read)"))

    show(call(ctx, ask), as_json, human)


def _whoami_answer(me: Any) -> dict[str, Any]:
    """``me``, the hub's ``GET /api/coord/whoami`` answer, when it is an object whose ``session_id`` is a string or
    null and whose ``admin`` is a boolean; ``Unreachable`` otherwise (as the client treats any answer no hub gives,
    e.g. a list of leases that is no list)."""
    if isinstance(me, dict) and "session_id" in me and isinstance(me["session_id"], str | None) \
            and isinstance(me.get("admin"), bool):
        return me
    raise Unreachable("its answer to GET /api/coord/whoami is not an object with session_id (a string or null) and "
                      "admin (true or false)")


def _hooks_project() -> dict[str, Any] | None:
    """``{key, also, root}`` of :func:`coordhub.cli.locks.hooks_project` for the working directory (``also``: the
    keys checked beside ``key``, :attr:`coordhub.hooks.project.Project.also`); None when the identity.json the hooks
    read cannot be read."""
    from pathlib import Path

    from coordhub.cli.locks import hooks_project

    try:
        here = hooks_project(Path.cwd())
    except CoordError:
        return None
    return {"key": here.key, "also": list(here.also), "root": str(here.root)}


def _you(c: CoordClient, session: str | None) -> str:
    """``session S (token from T) on URL (from U)``: which session a command acted as, on which hub, and where the
    token and the URL came from (a flag, a variable, an identity.json, the hub's admin.token, the default)."""
    s = c.settings
    token = f" (token from {s.token_source})" if s.token_source else ""
    return one_line(f"session {session or '(none)'}{token} on {s.url} (from {s.url_source or 'the default URL'})")


def halt_line(h: dict[str, Any]) -> str:
    """One standing halt in a line: ``HALTED (machine:m) by … at …: reason``, marked when it covers you."""
    scope = h.get("scope") or "fleet"
    mine = " — covers you" if h.get("applies") and scope != "fleet" else ""
    return one_line(f"HALTED{'' if scope == 'fleet' else f' ({scope})'} by {h['halted_by']} at {when(h['halted_at'])}: "
                    f"{h['reason']}{mine}")


def pause_line(p: dict[str, Any]) -> str:
    """The caller's pause in a line, saying how to end it."""
    return one_line(f"PAUSED since {when(p['paused_at'])} (the halt of {p.get('scope')} was lifted): your writes are "
                    "refused until you run `coord engage`")


def _scope(machine: str | None, project: str | None) -> str | None:
    """The ``scope`` of --machine / --project (None: the fleet); both at once is a usage error.

    The project is made a name as the client makes the project it declares (``coord.hub`` → ``coord-hub``,
    :func:`~coordhub.core.identity.address_part`), so the halt covers the sessions working in that directory.
    """
    if machine is not None and project is not None:
        fail("give --machine or --project, not both", EXIT_USAGE)
    if machine is not None:
        return f"machine:{machine}"
    if project is None:
        return None
    from coordhub.core.identity import address_part

    try:
        return f"project:{address_part(project)}"
    except ValueError as exc:
        fail(f"--project: {exc}", EXIT_USAGE)


MACHINE_OPT = typer.Option(None, "--machine", metavar="M", show_default=False,
                           help="Only machine M: sessions that declared machine M, or whose id is M/…")
PROJECT_OPT = typer.Option(None, "--project", metavar="P", show_default=False,
                           help="Only project P: sessions that declared project P (their conversation address), "
                                "written as the client writes it (coord.hub is coord-hub).")


@app.command()
def halt(ctx: typer.Context, reason: str = typer.Argument(..., help="Why; every session will see it."),
         machine: str | None = MACHINE_OPT, project: str | None = PROJECT_OPT,
         kill: bool = typer.Option(False, "--kill", help="Stop the orchestrator's running workers in the scope "
                                   "instead of pausing them; their assignments go back to the queue (work saved "
                                   "on their branches) and run again after the resume."),
         refresh: bool = typer.Option(False, "--refresh", help="When the scope is halted already, give that halt "
                                      "this reason (it still dates from when it fell) instead of refusing; "
                                      "needs the right to resume it. Without a standing halt, halts as usual."),
         as_json: bool = JSON_OPT) -> None:
    """Halt the fleet, one machine or one project: the hub refuses their writes (exit 5) until `coord resume`.

    Without --machine or --project the whole fleet stops. Reads, presence, reading messages and releasing
    leases still work. The fleet and a project need an admin token; any session may halt its own machine
    (the M of its id M/name), e.g. `coord halt "runaway loop" --machine $(hostname)`. Workers that
    `coord agent` runs in the scope are paused (SIGSTOP) until the resume, or stopped with --kill.

    A scope halted already is refused (exit 4, or 5 when that halt covers you); `coord halt "new reason"
    --refresh` (same scope options) says the standing halt's reason anew, as running cross-agent-halt again does.
    """
    where = _scope(machine, project)

    def go(c: CoordClient) -> Any:
        try:
            return c.halt(reason, where, kill, refresh)
        except HubError as err:
            if not refresh and _stands(err, where):  # tell the way to say a standing halt's reason anew
                fail(exits.refusal(err.message, err.status, err.code) + " (to give it this reason instead, add "
                     "--refresh)", exits.exit_code(err.status), hub_envelope(err))
            raise

    data = call(ctx, go, admin=True)

    def human(h: dict[str, Any]) -> None:
        if h.get("refreshed"):
            console.print(one_line(f"{_words(h.get('scope'))} was halted already "
                                   f"(since {views.shown_time(h.get('halted_at'))}); "
                                   f"its reason is now: {h['reason']} (by {h.get('refreshed_by') or h['halted_by']})"))
        else:
            console.print(one_line(f"{_words(h.get('scope'))} halted by {h['halted_by']}: {h['reason']}"))
        if h.get("killed") is not None:
            killed = h["killed"]
            console.print(one_line(f"stopping {len(killed)} worker(s), re-queued: {', '.join(killed)}"
                                   if killed else "no worker was running in the scope"))

    show(data, as_json, human)


@app.command()
def resume(ctx: typer.Context, machine: str | None = MACHINE_OPT, project: str | None = PROJECT_OPT,
           engage_all: bool = typer.Option(False, "--engage-all", help="Let every session in the scope write "
                                           "again at once, instead of pausing the ones that were active."),
           as_json: bool = JSON_OPT) -> None:
    """Lift the halt of the fleet, a machine or a project (the same rights as `coord halt`).

    Resuming does not revive sessions: each one that was active under the halt stays paused (its writes
    exit 5) until it runs `coord engage` — tell each agent when it may go on. That way a session stopped on
    purpose does not come back unnoticed, and you can look around first. --engage-all lets them all go on.

    Not seed 003's `coord resume` (the board's recovery after a crash): that is automatic here, the
    reconciler of `coord serve`; `coord reconcile` runs a pass now.
    """
    data = call(ctx, lambda c: _resume(c, _scope(machine, project), project, engage_all), admin=True)

    def human(r: dict[str, Any]) -> None:
        where = _words(r.get("scope"))
        console.print(f"{where} resumed" if r["was"] else f"{where} was not halted")
        if r.get("paused"):
            console.print(one_line(f"paused {len(r['paused'])} session(s) active under the halt: "
                                   f"{', '.join(r['paused'])}"))
            console.print("each writes again after `coord engage` (tell its agent when), or resume with "
                          "--engage-all")
        if r.get("engaged"):
            console.print(one_line(f"engaged {len(r['engaged'])} session(s): {', '.join(r['engaged'])}"))

    show(data, as_json, human)


def _resume(c: CoordClient, scope: str | None, project: str | None, engage_all: bool) -> Any:
    """Resume ``scope``, and when ``project`` as typed is another spelling (``api_``, or ``coord.hub`` that an
    older hub or CLI stored), that too: the hub keeps a halt under the name it was given, each covers the same
    sessions (:func:`coordhub.core.scope.project_of`), and a halted session's refusal names it. The first answer
    that lifted a halt (with the sessions both paused or engaged), else the first."""
    data = c.resume(scope, engage_all)
    typed = f"project:{project.strip().lower()}" if project is not None else None
    if typed is None or typed == scope or not isinstance(data, dict):
        return data
    try:
        other = c.resume(typed, engage_all)
    except HubError as err:
        if err.status != 422:  # 422: no hub stores a halt under that name
            raise
        return data
    if not isinstance(other, dict) or not other.get("was"):
        return data
    if not data.get("was"):
        return other
    for key in ("paused", "engaged"):
        data[key] = list(dict.fromkeys([*(data.get(key) or []), *(other.get(key) or [])]))
    return data


@app.command()
def engage(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Re-engage your session after a resume paused it, so its writes go through again.

    A session that was active when a halt fell stays paused after `coord resume` (writes exit 5, "paused").
    An agent runs this only when its user says to go on. A halt that still stands keeps refusing writes.
    """
    data = call(ctx, lambda c: c.engage())
    show(data, as_json, lambda r: console.print(one_line(
        f"{r['session_id']} engaged: its writes go through again" if r["was"] else
        f"{r['session_id']} was not paused")))


def _stands(err: HubError, scope: str | None) -> bool:
    """Whether the hub refused a halt of ``scope`` (None: the fleet) because that very scope is halted already:
    409 (another's halt there), or 423 ``halted`` by it (the halt covers the caller, whose writes it refuses)."""
    if err.status == 409:
        return True
    error = err.body.get("error", {}) if isinstance(err.body, dict) else {}
    halt = error.get("halt") if isinstance(error, dict) else None
    return err.code == "halted" and isinstance(halt, dict) and \
        str(halt.get("scope") or "").lower() == (scope or "fleet").lower()


def _words(scope: str | None) -> str:
    """``fleet`` → ``fleet``; ``machine:m`` → ``machine m``."""
    return "fleet" if not scope or scope == "fleet" else scope.replace(":", " ", 1)


@app.command()
def sync(ctx: typer.Context,
         review_foreign: bool = typer.Option(False, "--review-foreign", help="Also show each queued entry you did "
                                             "not write (a seed-001 queue written by hand, or one that came with a "
                                             "repository) and send it only if you confirm."),
         as_json: bool = JSON_OPT) -> None:
    """Send the writes you queued while the hub was unreachable, in order, then show unread messages.

    Works from anywhere in the project: the queue is at the project root. Exits 3 if the hub is unreachable, or
    while a queued write stays pending because the hub answered it 5xx.
    """
    with client(ctx) as c:
        try:
            c.hub_health()
        except Unreachable as err:
            fail(f"hub at {c.settings.url} is unreachable ({err}); {len(c.queue)} queued write(s) stay in "
                 f"{c.queue.path}" + url_hint(ctx, c.settings.url_source), EXIT_UNREACHABLE)
        d = c.sync()
        # with --json the review talks on stderr: stdout holds the one JSON document
        reviewed = _review_foreign(c, to_stderr=as_json) if review_foreign else None
        stuck = d.left - d.foreign - d.elsewhere  # own entries for this hub the drain had to stop at
        unread: list[Any] = []
        if not stuck:
            try:
                unread = c.inbox(unread_only=True)
            except (HubError, Unreachable):  # the queue result matters more than the catch-up read
                unread = []
    answered = d.stopped == FAILED  # the hub answered, with a 5xx, the queued write the drain stopped at
    why = (f"the hub answered 5xx to a queued write ({c.stop_reason}); it is retried by the next command, and "
           f"moved to {c.queue.rejected} after {MAX_FAILED_REPLAYS} such answers" if answered
           else c.stop_reason or "hub unreachable, halted or rate-limiting")
    settled = sum(reviewed or (0, 0))  # foreign entries the review took out of the queue (sent or refused)
    result = {"applied": d.applied, "rejected": d.rejected, "pending": d.left - settled,
              "foreign": d.foreign - settled, "elsewhere": d.elsewhere, "expired": d.expired, "gave_up": d.gave_up,
              "unread": unread}
    if reviewed is not None:
        result["foreign_sent"], result["foreign_rejected"] = reviewed
    if d.expired:
        result["expired_file"] = str(c.queue.expired)
    if d.gave_up:
        result["rejected_file"] = str(c.queue.rejected)
    if stuck:
        result["stopped"] = why
    if as_json:
        show(result, True, lambda r: None)
    else:
        console.print(f"sent {d.applied} queued write(s)" + (f", {d.rejected} refused by the hub (kept in "
                      f"{c.queue.rejected})" if d.rejected else "") + (f"; {stuck} still pending: {why}"
                                                                     if stuck else ""))
        if reviewed is not None and settled:  # else "sent 0" right after the review said "sent" reads as a loss
            console.print(f"sent {reviewed[0]} entr{'y' if reviewed[0] == 1 else 'ies'} not queued by you, as "
                          "confirmed" + (f", {reviewed[1]} refused by the hub (kept in {c.queue.rejected})"
                                         if reviewed[1] else ""))
        if d.elsewhere:  # else "sent 0" over a queue that is not empty reads as a lost write
            console.print(one_line(f"{d.elsewhere} queued write(s) for another hub or token stay in "
                                   f"{c.queue.path}: sent by the first command that reaches that hub with that "
                                   "token"))
        if d.foreign and reviewed is None:
            typer.echo(foreign_note(c, d.foreign), err=True)
    if d.expired:
        typer.echo(expired_note(c, d.expired), err=True)
    if d.gave_up:
        typer.echo(gave_up_note(c, d.gave_up), err=True)
    if not as_json:
        for m in unread:
            verbatim(message_banner(m))
    if stuck:
        raise typer.Exit(EXIT_UNREACHABLE)


REVIEW_LINE_CHARS = 2000  # of a foreign queue line shown before asking
REVIEW_FIELD_CHARS = 600  # of each of its params and body shown in the question


def _clip(text: str, limit: int) -> str:
    """``text`` escaped (:func:`one_line`), cut at ``limit`` characters with the cut said, never silently."""
    shown = one_line(text[:limit])
    return shown if len(text) <= limit else f"{shown} … [{len(text) - limit} more characters not shown]"


def _described(entry: Entry) -> list[str]:
    """The lines that show what replaying a foreign ``entry`` would send: method, path, params and body."""
    import json

    def field(value: Any) -> str:
        return _clip(json.dumps(value, ensure_ascii=False), REVIEW_FIELD_CHARS)

    return [f"    method: {one_line(entry.method)}", f"    path:   {_clip(entry.path, REVIEW_FIELD_CHARS)}",
            f"    params: {field(entry.params)}", f"    body:   {field(entry.body)}"]


def _review_foreign(c: CoordClient, *, to_stderr: bool = False) -> tuple[int, int]:
    """Show each foreign queue entry and replay those the user confirms; return how many were (sent, refused).

    Everything shown comes from a file a repository may have written, so it
    is escaped (:func:`one_line`: no terminal escape sequence reaches the
    terminal) and cut visibly; before asking, the parsed method, path,
    params and body that would be sent are shown one per line. ``to_stderr``
    (``--json``): the entries and the questions go to stderr.
    """

    def say(text: str) -> None:
        verbatim(text, err=to_stderr)

    sent = refused = 0
    s = c.settings
    # The hub's admin token given with --token or COORD_TOKEN acts as the admin whatever session the identity names:
    # the question must say so (settings know it only when a name would have been sent beside it).
    admin = bool(s.admin_hub_id or s.token_is_admin
                 or (s.token and s.data_dir is not None and is_local_admin_token(s.token, s.data_dir)))
    who = "the admin" if admin else (s.session or "this token's session")
    for item in c.queue.foreign(c.settings.url, c.actor):
        entry = item.entry
        say(f"{one_line(c.queue.path)}: {one_line(item.reason)}:")
        say("  " + _clip(item.line, REVIEW_LINE_CHARS))
        why = "not a queue entry" if entry is None else safe_target(entry.method, entry.path)
        if why or entry is None:
            say(f"  never sent: {one_line(why)}; left in the queue")
            continue
        say("  it would send:")
        for line in _described(entry):
            say(line)
        try:
            yes = typer.confirm(f"  send this {one_line(entry.method)} to {one_line(c.settings.url)} as "
                                f"{one_line(who)}?", default=False, err=to_stderr)
        except typer.Abort:
            yes = False
        if not yes:
            say("  left in the queue")
            continue
        outcome = c.replay(entry)
        if outcome not in ("applied", "rejected"):
            say("  hub unreachable, halted or rate-limiting; left in the queue")
            break
        c.queue.settle(item.line, outcome)
        sent += outcome == "applied"
        refused += outcome == "rejected"
        say("  sent" if outcome == "applied" else f"  refused by the hub; moved to {c.queue.rejected}")
    return sent, refused


@app.command("trust")
def trust_url(ctx: typer.Context,
              url: str = typer.Argument(..., help="The hub URL, e.g. http://10.0.0.5:8001.")) -> None:
    """Allow your token to be sent to URL. A token goes only to the URL it was first used with, unless trusted here.

    A hub named by a project's .claude/identity.json (other than your own, in ~/.claude/identity.json) is asked
    only once trusted here, with the token or, without one, as a session of a --no-auth hub: a repository's files
    never choose your hub. Recorded per token fingerprint (never the token) in
    ~/.config/coordhub/trusted-urls.json. With the global --admin, for the local admin.token: then a project's
    identity.json may name URL for admin commands.
    """
    from coordhub.client import trust

    o = options(ctx)
    try:
        settings = resolve(url, o.token, o.session, o.queue_file, o.timeout, admin="always" if o.admin else "never")
    except Invalid as exc:
        fail(exc.message, EXIT_USAGE)
    except CoordError as exc:
        fail(exc.message, EXIT_AUTH)
    added = trust.trust(settings.trust_key(), settings.url)
    who = (f"the token from {settings.token_source}" if settings.token
           else f"session {settings.session} (named by {settings.session_source}) without a token"
           if settings.session_from_project() else "a session without a token")
    console.print(f"{who} may {'now' if added else 'already'} ask {trust.origin(settings.url)}")


def main() -> None:
    """The console script's entry point (kept for installs made before :mod:`coordhub.cli.entry`)."""
    from coordhub.cli.entry import main as entry_main

    entry_main()
