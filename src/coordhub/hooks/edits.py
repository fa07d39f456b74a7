"""``pre-tool-use``: deny an edit of a file inside a lease held by another live session.

Runs before every Edit, Write, MultiEdit and NotebookEdit, so it does one
request, ``GET /locks/conflicts?project_key=&resource=<project-relative
path>``, which answers the live leases overlapping the path held by *other*
sessions (the caller's own leases never conflict). A file outside the
project root is checked in its own git repository (the key that
repository's guard uses, paths relative to it; see
:meth:`Invocation.project_of`), so ``cd``-ing elsewhere changes nothing; a
file outside the root and outside every git repository is never denied and
costs no request.

Halt and pause: while a halt covers the session (the fleet's, or one of its
machine or project) every edit inside the project is denied, since stopping
work is what a halt is for; so it is while a resume has left the session
paused, until it re-engages (``coord engage``, which the agent runs only once
its user says so). With ``COORD_HOOK_HALT_WAIT`` (set for the orchestrator's
workers) a halted edit first waits that long for the halt to lift, asking
again every second: the worker's host pauses it (SIGSTOP) under a halt, so an
edit caught between the halt and the pause goes on after the resume instead
of ending the worker as stuck on a permission denial. The hook learns of both only from the same answer
(``{"leases": […], "halt": {…}, "paused": {…}}``); when the hub answers a
bare list of leases, neither is checked (no second request).

Project keys: a key a project's identity.json names is asked about and so is
the repository's name beside it (:attr:`Project.also`, one more request per
name only then): a planted identity.json adds a key, never removes one.

Symlinks: a path is asked about under its lexical name and, when they
differ, under the name with symlinks resolved (both inside the project), so
``alias/a.py`` or ``link.py`` pointing at a leased ``src/a.py`` is denied.

A name the lease rules would misread or refuse is asked about as the glob
covering it that :func:`coordhub.hooks.project.asked_as` makes, as the git
guard asks (one implementation): ``src/a\\b.py`` (a backslash, which the
rules read as ``/``, though on POSIX it is one file in ``src/``) as ``src/*``,
``src/new<newline>line.py`` as ``src/new*line.py``, an over-long name as its
first segments plus ``**``. A lease of another session overlapping that glob
denies the edit (the reason says which glob was asked: it may be another
file's lease, never a missed one). A name with a backslash is then checked; a
name no lease resource can hold (control character, not UTF-8, over the
length limit) that no lease overlaps is still unchecked, as below.

When the hub cannot be asked (unreachable, refused, misconfigured), or the
path cannot be checked (a NUL byte; a name no lease resource can hold, above;
a name the hub refuses with 422), ``COORD_HOOK_FAIL_MODE`` decides: ``open``
(default) prints nothing, so the edit goes ahead, and says why in one line on
stderr; ``closed`` denies with that reason. Nothing is ever silently left
unchecked.

A 429 is not "cannot be asked" (:mod:`coordhub.hooks.hub`): the hook waits
the hub's ``Retry-After`` and asks again while :data:`RATE_LIMIT_WAIT` allows,
then denies in either fail mode, naming the rate limit and when to retry.
Were it let through, whoever can spend the session's token could lift its
leases and its halt.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, NamedTuple

from coordhub.hooks import halts, output
from coordhub.hooks import leases as leases_text
from coordhub.hooks.hub import HubError, HubRefused, RateLimitWait, misnamed, retry_after
from coordhub.hooks.invocation import Invocation
from coordhub.hooks.output import Answer
from coordhub.hooks.project import Project, as_resource, asked_as
from coordhub.hooks.untrusted import one_line

HALT_POLL_SECONDS = 1.0
# Seconds from the first request within which the hook may still start waiting out a 429: with the 2 s request
# timeout (COORD_HOOK_TIMEOUT) and Python's start-up it stays under the 5 s Claude Code gives the hook
# (hooks.install), whose expiry would let the edit through.
RATE_LIMIT_WAIT = 2.5
PATH_FIELDS = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path", "NotebookEdit": "notebook_path"}


def pre_tool_use(inv: Invocation) -> Answer | None:
    """PreToolUse: prints a ``permissionDecision: "deny"`` naming holder, purpose and end of each lease, or nothing.

    Nothing is also the answer for other tools, a missing path, a file outside
    the project, and a file free or leased only by this session. Printing
    nothing (rather than ``allow``) leaves Claude Code's own permission
    prompts in force. A path edited through a symlink is asked about under
    both its names (one more request only then); either conflicting denies.
    """
    try:
        edited = edited_names(inv)
    except HubError as exc:  # another repository's identity.json is unreadable: no key to ask under
        return cannot_check(inv, one_line(_path(inv) or "?"), f"its project cannot be named ({exc})")
    if edited is None:
        return None
    if isinstance(edited, Unguardable):
        return cannot_check(inv, edited.shown, edited.why)
    proj, names = edited
    found: dict[str, dict[str, Any]] = {}
    stand_ins: dict[str, str] = {}  # name → the glob asked about in its place (asked_as)
    unchecked: list[str] = []
    patience = RateLimitWait(RATE_LIMIT_WAIT, lambda wait, exc: output.log(
        inv.event, f"the hub is rate-limiting this session ({one_line(exc.message)}); asking again in {wait:g} s"))
    for rel in names:
        resource, checked = asked_as(rel)
        if not checked:
            unchecked.append(rel)
        if resource is None:
            continue
        if resource != as_resource(rel):
            stand_ins[rel] = resource
        for key in proj.keys:  # a key a project's identity.json named, and the repository's own beside it
            deadline = time.monotonic() + inv.settings.halt_wait
            while True:
                try:
                    data = patience.call(partial(inv.hub.get, "/locks/conflicts", project_key=key, resource=resource))
                except HubError as exc:
                    if retry_after(exc) is not None:
                        return rate_limited(one_line(names[0]), exc, patience.waited)
                    if (words := misnamed(exc)) is not None:
                        return refused_name(one_line(names[0]), words)
                    return cannot_check(inv, one_line(names[0]), _why(rel, exc))
                leases, halt, paused = _parse(data)
                if not halt or time.monotonic() >= deadline:
                    break
                time.sleep(min(HALT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            if halt:
                return output.deny(f"coord: {halts.halted_line(halt)}. No file edits until it is resumed (`coord "
                                   "resume`); tell the user.")
            if paused:
                return output.deny(f"coord: {halts.paused_line(paused)}. No file edits until you re-engage; tell "
                                   "the user, and run `coord engage` only once the user says to go on.")
            for lease in leases:
                found.setdefault(str(lease.get("id")), {"project_key": key, **lease})
    if found:
        shown = names[-1] + (f" (edited as {names[0]})" if len(names) > 1 else "")
        return output.deny(deny_reason(one_line(shown), proj.key, list(found.values())) + _asked_in_place(stand_ins))
    if unchecked:
        return cannot_check(inv, one_line(names[0]), _unnameable(unchecked[0], stand_ins.get(unchecked[0])))
    return None


def _asked_in_place(stand_ins: dict[str, str]) -> str:
    """What a deny adds when a name was asked about as a covering glob (it may be another file's lease)."""
    return "".join(f"\n({one_line(rel)} was checked as {one_line(glob)}, a glob covering it: lease rules read a "
                   "backslash as /, and no lease can name a control character or bytes that are not UTF-8, so a "
                   "lease of another file there counts too.)" for rel, glob in stand_ins.items())


def _unnameable(rel: str, glob: str | None) -> str:
    """Why the name ``rel``, asked about as ``glob`` (or not at all), is still unchecked: no lease can name it."""
    head = (f"no lease resource can name {one_line(rel)} (a control character, bytes that are not UTF-8, over the "
            "hub's length limit)")
    if glob is None:
        return head + ", and no glob covering it can be made"
    return head + f"; no other session's lease overlaps {one_line(glob)}, the glob covering it"


class Unguardable(NamedTuple):
    """An edit inside the project whose path no lease can be checked for: ``shown`` safely, and why."""

    shown: str
    why: str


def _path(inv: Invocation) -> str | None:
    """The path the tool call would change (``tool_input``'s path field), or None for other tools."""
    field = PATH_FIELDS.get(str(inv.payload.get("tool_name")))
    tool_input = inv.payload.get("tool_input")
    if field is None or not isinstance(tool_input, dict):
        return None
    path = tool_input.get(field) or tool_input.get("file_path")
    return path if isinstance(path, str) and path.strip() else None


def edited_names(inv: Invocation) -> tuple[Project, list[str]] | Unguardable | None:
    """The project the edited file is checked in and its names there (see :meth:`Invocation.project_of`).

    None when there is nothing to guard: not an edit tool, no path, a path
    outside the project and outside every git repository, or the project root
    itself. A path with a NUL byte cannot be made relative (no file system
    takes it) and cannot be asked about, so it is :class:`Unguardable` rather
    than silently unchecked. Raises ``NotConfigured`` when the file's own
    repository's identity.json is unreadable.
    """
    path = _path(inv)
    if path is None:
        return None
    if "\x00" in path:
        field = PATH_FIELDS[str(inv.payload.get("tool_name"))]
        return Unguardable(one_line(path), f"tool_input.{field} contains a NUL byte, which no lease can name")
    return inv.project_of(path)


def _parse(data: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None]:
    """(conflicting leases, halt covering the caller, its pause) from either answer shape (module docstring)."""
    if isinstance(data, list):
        return [x for x in data if isinstance(x, dict)], None, None
    if isinstance(data, dict):
        rows = data.get("leases", data.get("conflicts", []))
        return ([x for x in rows if isinstance(x, dict)] if isinstance(rows, list) else [], *halts.stop_of(data))
    return [], None, None


def deny_reason(rel: str, project_key: str, leases: list[dict[str, Any]]) -> str:
    """Why the edit is denied: who holds ``rel``, doing what, until when, and what to do instead."""
    rows = [{"project_key": project_key, **lease} for lease in leases]  # a lease's own key (Project.also) stays
    holders = sorted({str(lease.get("session_id")) for lease in rows})
    head = f"coord: {rel} is leased by " + (leases_text.held(rows[0]) if len(rows) == 1 else "other sessions:\n"
                                             + "\n".join(f"- {leases_text.held(x)}" for x in rows))
    return (f"{head}.\nDo not edit it now. Ask the holder (`coord msg send {holders[0]} \"<subject>\" \"<body>\"`), "
            "wait until the lease ends, or work on something else.")


def _why(rel: str, exc: HubError) -> str:
    """Why asking about ``rel`` failed: the hub refused the name itself (422), or it could not be asked."""
    if isinstance(exc, HubRefused) and exc.status == 422:
        return f"the hub refuses {one_line(rel)} as a lease resource ({one_line(exc.message)})"
    return f"the hub could not be asked ({exc})"


def rate_limited(rel: str, exc: HubError, waited: float) -> Answer:
    """The deny when the hub answered 429 to the lease check of ``rel`` after ``waited`` seconds of waiting: in
    either fail mode, since a rate-limited hub is up and answering (module docstring)."""
    wait = retry_after(exc) or 1.0
    message = one_line(exc.message) if isinstance(exc, HubRefused) else one_line(str(exc))
    slept = f", after waiting {waited:g} s" if waited else ""
    return output.deny(f"coord: cannot check whether {rel} is leased by another session: the hub is rate-limiting "
                       f"this session's token (429 rate_limited: {message}{slept}; Retry-After {wait:g} s). "
                       "The hub is up, so this is not the unreachable hub COORD_HOOK_FAIL_MODE=open lets edits "
                       f"through for: the edit is denied. Retry it in about {wait:g} s; if this repeats, something "
                       "is spending this session's requests (a loop, or another process using its token): tell "
                       "the user.")


def refused_name(rel: str, words: str) -> Answer:
    """The deny when the hub refused the lease check of ``rel`` for the session's name (:func:`misnamed`'s
    ``words``): in either fail mode, since the hub is up and answering (as for :func:`rate_limited`)."""
    return output.deny(f"coord: cannot check whether {rel} is leased by another session: the hub refuses this "
                       f"session's name (403 session_mismatch: {one_line(words)}). The hub is up, so this is not "
                       "the unreachable hub COORD_HOOK_FAIL_MODE=open lets edits through for: the edit is denied. "
                       "Tell the user: COORD_SESSION (or identity.json \"session\") and the token name two sessions.")


def cannot_check(inv: Invocation, rel: str, why: str) -> Answer | None:
    """The fail-mode answer when whether ``rel`` is leased could not be learnt (``why``): deny or report."""
    if inv.settings.fail_closed:
        return output.deny(f"coord: cannot check whether {rel} is leased by another session: {why}. "
                           "COORD_HOOK_FAIL_MODE=closed denies edits until the check can be made; "
                           "tell the user.")
    output.log(inv.event, f"cannot check {rel}: {why}; edit allowed (COORD_HOOK_FAIL_MODE=open)")
    return None
