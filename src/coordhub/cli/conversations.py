"""``coord conv``: seed 004's conversations between projects, on the hub.

A conversation is a sequence of typed turns (request, progress, query,
pushback, complete, release, escalate) between addresses ``<machine>.<project>``
(``local.<project>`` is this machine). The hub numbers turns, decides on each
one as seed 004's receiver did (process, dedup, query, reject) and keeps a
turn pending for its destination until a ``release`` follows it.

Your address is your machine (identity.json ``machine``, else your session's
``MACHINE/…``, else the host name) and your project (``COORD_PROJECT``, else
identity.json ``project``, else the git root's name); every send declares it.

``coord conv sync`` and ``coord conv import``, which keep the org-file inbox
in step with the hub, are :mod:`coordhub.cli.orginbox`'s, registered here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from coordhub.cli import orginbox
from coordhub.cli.common import (
    EXIT_REFUSED,
    EXIT_USAGE,
    JSON_OPT,
    call,
    fail,
    read_text_arg,
    show,
)
from coordhub.cli.output import console, table, verbatim
from coordhub.cli.signedturns import (
    KEY_HELP,
    SIGN_HELP,
    conversation_title,
    field_text,
    me,
    send_signed,
    signed_release,
    signing_configured,
)
from coordhub.cli.views import seq_text, shown_time
from coordhub.client import CoordClient, HubError
from coordhub.client.address import PROJECT_ENV
from coordhub.core.vocab import ConversationState, ReleaseStatus, TurnType
from coordhub.hooks.untrusted import one_line

app = typer.Typer(
    help="Conversations between projects (seed 004): typed turns (request, progress, query, pushback, complete, "
         "release, escalate) between addresses MACHINE.PROJECT, numbered and decided by the hub.\n\n"
         "A typical exchange: `coord conv send ratio.homelab --conversation prep-fixup --type request --body '…'`; "
         "the other side sees it in `coord conv inbox`, answers with `coord conv send velox.career …`, and ends it "
         "with `coord conv release prep-fixup`. Your address: identity.json machine (else your session's MACHINE/, "
         "else the host name) and COORD_PROJECT (else identity.json project, else the git root's name); "
         "`coord conv profile` declares it.\n\n"
         "Agents that poll org files keep working: `coord conv sync --follow` writes turns into "
         "~/projects/<project>/inbox/from-agents/, `coord conv import` reads such files in, and seed 004's own "
         "commands (cross-agent-send, cross-agent-recv, …) are installed too.",
    no_args_is_help=True)
tools_app = typer.Typer(help="The tools you declare for REQUIRES_TOOLS (a turn needing others is answered 'query').",
                        no_args_is_help=True)
keys_app = typer.Typer(help="OpenPGP public keys the hub checks your signed turns against.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
app.add_typer(keys_app, name="keys")


def destination(c: CoordClient, to: str) -> str:
    """``to`` as an address, ``local`` made this machine; a usage error when it is not one."""
    from coordhub.client import address

    try:
        return str(address.parse(to, me(c)[0]))
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


def _refusal(turn: dict[str, Any]) -> None:
    """Exit 1 with the reason when the hub recorded the turn as query or reject (not delivered)."""
    if turn.get("decision") in ("query", "reject"):  # with --json the envelope carries the turn
        fail(f"not delivered: {turn['decision']}: {turn.get('reason')} (turn {turn.get('id')}, visible to you only)",
             EXIT_REFUSED, {"error": {"code": turn["decision"], "message": turn.get("reason"), "turn": turn}})


def turn_line(t: dict[str, Any]) -> str:
    """One turn in a line: id, conversation #sequence, type, from → to, decision when not process, title."""
    seq = seq_text(t.get("sequence"))
    decision = "" if t.get("decision") in (None, "process") else f" [{t['decision']}: {t.get('reason')}]"
    return one_line(f"{t['id']}  {t['conversation_id']} {seq}  {t['type']:<8} {t['from']} → {t['to']}  "
                    f"{t.get('title') or ''}{decision}")


@app.command()
def send(
    ctx: typer.Context,
    to: str = typer.Argument(..., help="Destination MACHINE.PROJECT (local.PROJECT: this machine)."),
    file: Path | None = typer.Argument(None, help="A seed-004 message file (org frontmatter + body); or give the "
                                                  "fields below instead.", show_default=False),
    type_: TurnType | None = typer.Option(None, "--type", help="The turn's type."),
    conversation: str | None = typer.Option(None, "--conversation", help="Conversation id, a slug such as "
                                                                         "prep-fixup (new or existing)."),
    title: str | None = typer.Option(None, "--title", help="Title (default: the conversation's)."),
    body: str | None = typer.Option(None, "--body", help="The turn's text."),
    body_file: Path | None = typer.Option(None, "--body-file", help="Read the text from a file ('-' = stdin)."),
    requires_tools: str | None = typer.Option(None, "--requires-tools", help="Comma-separated tools the "
                                                                            "receiver needs."),
    release_status: ReleaseStatus | None = typer.Option(None, "--release-status", help="With --type release: "
                                                        "how the conversation ended."),
    sign: bool = typer.Option(False, "--sign", help=SIGN_HELP),
    key: str | None = typer.Option(None, "--key", help=KEY_HELP),
    as_json: bool = JSON_OPT,
) -> None:
    """Send a turn: a message file as is (the hub numbers it), or built from --conversation, --type and --body.

    Exit 1 when the hub answers query or reject (the reason is shown; the turn is visible to you only).
    --sign (or --key KEYID) signs it as cross-agent-send does, with the hub's sequence in the signed text.
    """
    fields = (type_, conversation, title, body, body_file, requires_tools, release_status)
    if file is not None and any(f is not None for f in fields):
        fail("give a message FILE or the fields (--type, --conversation, --body …), not both", EXIT_USAGE)
    content = None
    extra: dict[str, Any] = {}
    if file is not None:
        content = read_text_arg(None, file, "file")
    else:
        if type_ is None or conversation is None:
            fail("without a FILE give --conversation and --type (and --body or --body-file)", EXIT_USAGE)
        extra = {"conversation_id": conversation, "type": type_, "title": title,
                 "body": read_text_arg(body, body_file, "body"), "release_status": release_status,
                 "requires_tools": [t.strip() for t in requires_tools.split(",") if t.strip()]
                 if requires_tools else None}

    def go(c: CoordClient) -> Any:
        if sign or key:
            text = content if content is not None else field_text(
                extra["conversation_id"], extra["type"], extra["body"],
                extra["title"] or conversation_title(c, extra["conversation_id"]), extra["requires_tools"],
                extra["release_status"])
            return send_signed(c, destination(c, to), text, key)
        machine, project = me(c)
        return c.send_turn(destination(c, to), content, from_machine=machine, from_project=project, **extra)

    turn = call(ctx, go)
    _refusal(turn)
    show(turn, as_json, lambda t: console.print(
        _already_released(t) if t["decision"] == "dedup" and t["type"] == "release" else
        ("identical retry: already delivered as " if t["decision"] == "dedup" else "sent ") +
        f"turn {t['id']}: {t['conversation_id']} #{t['sequence']} {t['type']} → {t['to']} ({t['file_name']})"))


def _already_released(t: dict[str, Any]) -> str:
    """The line for a release the hub did not record: the conversation was released already (by ``t``, which may
    be another party's release, not a retry of this one)."""
    by = f" (released by {t['author']})" if t.get("author") else ""
    return one_line(f"already released {t['conversation_id']} by turn {t['id']} #{t['sequence']} → {t['to']}{by}; "
                    "nothing sent")


@app.command()
def release(
    ctx: typer.Context,
    conversation_id: str = typer.Argument(..., help="The conversation to release."),
    status: ReleaseStatus = typer.Option("complete", "--status", help="How the conversation ended."),
    body: str | None = typer.Option(None, "--body", help="A closing note."),
    to: str | None = typer.Option(None, "--to", help="Address to release to (default: the other party of the "
                                                     "last turn)."),
    sign: bool = typer.Option(False, "--sign", help=SIGN_HELP),
    key: str | None = typer.Option(None, "--key", help=KEY_HELP),
    as_json: bool = JSON_OPT,
) -> None:
    """Send the release turn: the conversation's turns stop being pending (seed 004).

    A conversation released already is left as it is and said so ("already released", --json "decision":
    "dedup"; exit 0). A receiver that verifies signatures (cross-agent-recv) needs --sign (or --key KEYID). A
    turn (no release) that arrives while --sign signs stops it: nothing sent, exit 4; read it, release again.
    """
    def go(c: CoordClient) -> Any:
        dest = destination(c, to) if to else None
        if sign or key:
            return signed_release(c, conversation_id, dest, status, body, key)
        return c.release_conversation(conversation_id, dest, status, body)

    turn = call(ctx, go)
    _refusal(turn)
    show(turn, as_json, lambda t: console.print(
        _already_released(t) if t["decision"] == "dedup" else
        f"released {t['conversation_id']} ({status}) with turn {t['id']} #{t['sequence']} → {t['to']}"))


@app.command("show")
def show_(ctx: typer.Context, conversation_id: str = typer.Argument(..., help="Conversation id."),
          as_json: bool = JSON_OPT) -> None:
    """A whole conversation: its state and every turn in order, with bodies."""
    conv = call(ctx, lambda c: c.conversation(conversation_id))

    def human(v: dict[str, Any]) -> None:
        console.print(one_line(f"{v['conversation_id']}: {v['title']} [{v['state']}] project {v['project']}, "
                               f"{v['pending']} pending, participants {', '.join(v['participants'])}"))
        for t in v.get("turns", []):
            console.print("")
            console.print(turn_line(t) + one_line(f"  ({shown_time(t['created_at'])}, by {t['author']}"
                                                  f"{_stated_time(t)})"))
            for line in (t.get("body") or "").rstrip("\n").split("\n"):
                verbatim("    | " + one_line(line))

    show(conv, as_json, human)


def _stated_time(t: dict[str, Any]) -> str:
    """``; its TIMESTAMP says T`` when the author's stated time is further from the hub's (``created_at``) than it
    lets a time run ahead (:data:`~coordhub.core.turns.MAX_AHEAD`), else nothing: the time shown is the hub's, and a
    sender whose clock is behind (or a file written long before it was sent, or imported) would otherwise go unseen.
    A time at another offset than UTC is also given in UTC (``… says 2026-04-24T22:08:58+09:00 = 13:08:58Z``), the
    form of the hub's time beside it: the two are compared at a glance, not across a time zone (seed-004 files keep
    their author's offset)."""
    import datetime as dt

    from coordhub.core.orgturn import utc_text
    from coordhub.core.turns import MAX_AHEAD

    try:
        stated = dt.datetime.fromisoformat(str(t["stated_timestamp"]))
        hub = dt.datetime.fromisoformat(str(t["created_at"]))
        apart = abs((stated - hub).total_seconds())
    except (KeyError, TypeError, ValueError):
        return ""
    if apart <= MAX_AHEAD:
        return ""
    utc = "" if stated.utcoffset() == dt.timedelta(0) else f" = {utc_text(stated)}"
    return f"; its TIMESTAMP says {t['stated_timestamp']}{utc}"


@app.command("list")
def list_(ctx: typer.Context,
          state: ConversationState | None = typer.Option(None, "--state", help="Only conversations in this "
                                                                                 "state."),
          project: str | None = typer.Option(None, "--project", help="Only this project's."),
          as_json: bool = JSON_OPT) -> None:
    """Conversations you take part in (every one for an admin), most recently updated first."""
    rows = call(ctx, lambda c: c.conversations(state, project))
    show(rows, as_json, lambda r: table(r, [("conversation_id", "conversation"), ("state", "state"),
                                            ("project", "project"), ("last_sequence", "seq"),
                                            ("pending", "pending"), ("updated_at", "updated"), ("title", "title")],
                                        "no conversations"))


def own_inbox(c: CoordClient) -> Any:
    """Pending turns of this session's address: this folder's (:func:`coordhub.client.address.of`), else, when the
    hub refuses that one (403) as not the session's, the address the session declared, said so on stderr.

    A project's identity.json beside the user's own token does not name the project (the file may have come with
    a cloned repository), so in a folder ``career-wt`` this folder's address is ``<machine>.career-wt`` while the
    session declared ``<machine>.career`` (seed-004 user: the inbox was refused, exit 6, naming neither the
    declared address nor a way to it). The declared address is the session's own whatever the folder: the hooks
    inject its turns and ``conv_inbox`` (MCP) reads it. Its profile is asked only on that refusal; a session that
    declared none is told how to declare this folder's.
    """
    from coordhub.compat.crossagent.common import Me

    who = Me(c)
    if who.project is None:  # no project here: the hub answers for the declared address, or says there is none
        return c.conversation_inbox(None)
    here = f"{who.machine}.{who.project}"
    try:
        return c.conversation_inbox(here)
    except HubError as err:
        if err.status != 403:
            raise
        declared = who.profile().get("address")
        if not isinstance(declared, str):
            raise HubError(err.status, err.code, f"{err.message}; this session has declared no address: `coord "
                           f"conv profile` declares {here}", err.body) from None
        if declared == here:
            raise
    typer.echo(f"coord: note: {here} (this folder's address) is not this session's: showing the turns of the "
               f"address it declared, {declared} (name this folder's project with {PROJECT_ENV}=…, or declare "
               "it with `coord conv profile`)", err=True)
    return c.conversation_inbox(declared)


@app.command()
def inbox(ctx: typer.Context,
          address: str | None = typer.Option(None, "--address", help="Another address (default: yours)."),
          as_json: bool = JSON_OPT) -> None:
    """Turns pending for you (not yet released), oldest first."""
    def read(c: CoordClient) -> Any:
        if address:
            return c.conversation_inbox(destination(c, address))
        return own_inbox(c)

    signs = False

    def read_inbox(c: CoordClient) -> Any:
        nonlocal signs
        rows = read(c)
        # the hint names the signed release to a user who signs: an unsigned one is refused by a receiver that
        # verifies signatures ("signature file missing")
        signs = bool(rows) and not as_json and signing_configured(c)
        return rows

    rows = call(ctx, read_inbox)

    def human(r: list[dict[str, Any]]) -> None:
        if not r:
            console.print("no pending turns")
            return
        for t in r:
            console.print(turn_line(t))
        release = "coord conv release <conversation>" + (" --sign" if signs else "")
        console.print(f"{len(r)} pending. Read one with `coord conv show <conversation>`; end a conversation "
                      f"with `{release}`.")

    show(rows, as_json, human)


@app.command()
def status(ctx: typer.Context,
           machine: str | None = typer.Option(None, "--machine", help="Another machine (an admin token only; "
                                                                      "default: this one)."),
           as_json: bool = JSON_OPT) -> None:
    """Per project on this machine: pending turns and the most recent one (seed 004's cross-agent-status)."""
    from coordhub.compat.crossagent.status import table_lines

    data = call(ctx, lambda c: c.conversation_status(machine.lower() if machine else me(c)[0]))

    def human(d: dict[str, Any]) -> None:
        if d.get("halt_active"):
            console.print("⚠ HALT ACTIVE — cross-agent comms paused (see `coord status`)")
        rows = d.get("projects") or []
        console.print("\n".join(table_lines(rows)) if rows else "no projects with conversations — 0 pending")

    show(data, as_json, human)


@app.command()
def profile(ctx: typer.Context,
            machine: str | None = typer.Option(None, "--machine", help="Declare this machine (default: worked out "
                                                                      "as `coord conv --help` says)."),
            project: str | None = typer.Option(None, "--project", help="Declare this project (default: COORD_PROJECT, "
                                                                      "identity.json project (a project's file only "
                                                                      "beside its own token), the git root's name)."),
            show_only: bool = typer.Option(False, "--show", help="Only show what the hub has; declare nothing."),
            as_json: bool = JSON_OPT) -> None:
    """Declare your address MACHINE.PROJECT at the hub (so others can send to it) and show it."""
    from coordhub.client import address as addr

    def go(c: CoordClient) -> Any:
        if show_only:
            return c.profile()
        m, p = me(c)
        try:
            m = addr.part(machine) if machine else m
            p = addr.part(project) if project else p
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
        if p is None:
            fail("no project here (not in a git repository, no COORD_PROJECT or identity.json project): give "
                 "--project", EXIT_USAGE)
        return c.set_profile(machine=m, project=p)

    data = call(ctx, go)
    show(data, as_json, lambda d: console.print(one_line(
        f"{d['session_id']}: address {d.get('address') or '(none declared)'}, tools: {tools_text(d)}")))


@tools_app.command("set")
def tools_set(ctx: typer.Context,
              names: list[str] = typer.Argument(None, help="Tool names (none: declare no tools).", show_default=False),
              as_json: bool = JSON_OPT) -> None:
    """Declare the tools you have (replacing the list); REQUIRES_TOOLS is checked against them at send time.

    Until a session at an address declares, the hub checks no REQUIRES_TOOLS there: cross-agent-recv decides.
    """
    def go(c: CoordClient) -> Any:
        machine, project = me(c)
        return c.set_profile(machine=machine, project=project, tools=list(dict.fromkeys(names or [])))

    data = call(ctx, go)
    show(data, as_json, lambda d: console.print(one_line(f"tools of {d['session_id']}: {tools_text(d)}")))


@tools_app.command("show")
def tools_show(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """The tools you declared."""
    data = call(ctx, lambda c: c.profile())
    show(data, as_json, lambda d: console.print(one_line(f"tools of {d['session_id']}: {tools_text(d)}")))


def tools_text(profile: dict[str, Any]) -> str:
    """The tools of a profile the hub answered, for a line: the names, else whether an empty list was declared.

    ``(declared none)``: the hub checks a turn's REQUIRES_TOOLS at the address and finds nothing; ``(never
    declared)``: it checks nothing there (the receiver's cross-agent-recv decides). Both were ``(none)``, and
    ``--json`` said ``"tools": []`` for both; the hub now answers ``tools_declared``. ``(none)`` is left for a hub
    that does not say.
    """
    names = ", ".join(profile.get("tools") or [])
    if names:
        return names
    declared = profile.get("tools_declared")
    return "(none)" if not isinstance(declared, bool) else "(declared none)" if declared else "(never declared)"


@keys_app.command("add")
def keys_add(ctx: typer.Context,
             file: Path | None = typer.Argument(None, help="An armored public key file.", show_default=False),
             gpg_key: str | None = typer.Option(None, "--gpg", help="Export this key id from your keyring "
                                                                   "(`gpg --armor --export KEYID`)."),
             as_json: bool = JSON_OPT) -> None:
    """Register an OpenPGP public key: your signed turns are verified against your keys.

    The key's secret half must be in your keyring: gpg signs a statement naming the hub, your session and the key,
    which proves to the hub that the key is yours (anyone may hold a copy of a public key)."""
    from coordhub import openpgp
    from coordhub.compat import gpg
    from coordhub.core.signingkeys import proof_statement

    if (file is None) == (gpg_key is None):
        fail("give a key FILE or --gpg KEYID (one of them)", EXIT_USAGE)
    if gpg_key is not None:
        try:
            armored = gpg.export(gpg_key)
        except gpg.GpgError as exc:
            fail(str(exc), EXIT_USAGE)
    else:
        armored = read_text_arg(None, file, "file")
    try:
        fingerprint = openpgp.fingerprint(armored)
    except openpgp.BadKey as exc:
        fail(str(exc), EXIT_USAGE)

    def go(c: CoordClient) -> Any:
        hub_id = c.hub_health().get("hub_id")
        session = c.call("GET", "/api/coord/whoami")["session_id"]
        try:
            proof = gpg.sign(proof_statement(str(hub_id), str(session), fingerprint), fingerprint)
        except gpg.GpgError as exc:
            fail(f"cannot prove key {fingerprint} is yours: {exc} (its secret key must be in your keyring: "
                 "`gpg --list-secret-keys`)", EXIT_USAGE)
        return c.add_key(armored, proof)

    data = call(ctx, go)
    show(data, as_json, lambda d: console.print(f"registered key {d['fingerprint']} for {d['session_id']}"))


@keys_app.command("list")
def keys_list(ctx: typer.Context,
              session: str | None = typer.Option(None, "--session", help="Another session's keys."),
              as_json: bool = JSON_OPT) -> None:
    """Registered public keys (yours by default)."""
    rows = call(ctx, lambda c: c.keys(session))
    show(rows, as_json, lambda r: table(r, [("fingerprint", "fingerprint"), ("session_id", "session"),
                                            ("created_at", "registered")], "no keys"))


@keys_app.command("remove")
def keys_remove(ctx: typer.Context, fingerprint: str = typer.Argument(..., help="The key's fingerprint."),
                as_json: bool = JSON_OPT) -> None:
    """Remove one of your keys."""
    data = call(ctx, lambda c: c.delete_key(fingerprint))
    show(data, as_json, lambda d: console.print(f"removed {d.get('deleted', 0)} key(s)"))


app.command()(orginbox.sync)
app.command("import")(orginbox.import_)
