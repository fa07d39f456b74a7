"""``coord-hook git-pre-commit`` / ``git-pre-merge-commit`` / ``git-pre-push``: refuse a commit or push touching
paths leased by others.

``pre-merge-commit`` (the commit ``git merge`` makes) checks the staged paths
like ``pre-commit``: what the merge brings in relative to HEAD.

Exit status is git's: 0 accepts, 1 refuses. Everything is said on stderr,
prefixed ``coord guard:``: on refusal one line per problem (path, holder or
stale lease, lease id, purpose, time left) and what to do.

* A halt covers the committer or the project (or a resume left the
  committer paused) → 1, naming it, whatever the leases say: the hub's
  ``/locks/conflicts`` answers say so (``halt``, ``paused``), as they do to
  the edit hook (DESIGN.md, contract point 8: every hook shows a halt).
* A run that changes no path (a tag push, a branch deletion, a push of
  commits the remote has, ``git commit --allow-empty``) has no leases to
  check but is still stopped by a halt or a pause: it asks the hub one
  request, ``GET /locks/conflicts`` about :data:`NO_PATHS`, for the answer's
  ``halt`` and ``paused`` alone (:func:`_stop_only`), and then goes on as any
  other run (refusal, bypass, fail mode, 429). It once asked nothing, so
  such pushes went through a halt.
* A project key a project's identity.json names is checked together with the repository's name
  (:attr:`coordhub.hooks.project.Project.also`): leases and halts of either refuse, so an identity.json that
  came with an archive cannot take the repository's own leases out of the check.
* ``COORD_GUARD_BYPASS=1`` → 0 whatever the check finds, and a
  ``guard.bypassed`` event (``detail``: hook, paths, reason from
  ``COORD_GUARD_BYPASS_REASON``, the problems found, repository, HEAD) is
  recorded on the hub; if even that fails, stderr says the bypass was not
  recorded.
* The hub cannot be asked, or a path cannot be checked at all (a name that
  is no valid lease resource: a control character such as a newline, or
  over the length limit) → ``COORD_HOOK_FAIL_MODE``: ``open`` (default)
  accepts with a warning naming the paths, ``closed`` refuses. A hub that
  answers 401 to a guard without a token counts as not asked, and the line
  says how to give the guard a token (:func:`_unasked`).
* The hub answers 429 (this session's token is rate-limited) → the guard
  waits its ``Retry-After`` and asks again while :data:`RATE_LIMIT_WAIT`
  allows, then refuses in either fail mode, naming the rate limit: a
  rate-limited hub is up, not "cannot be asked" (:mod:`coordhub.hooks.hub`).
* The guard asks only about what can matter: for each :data:`check.BATCH`
  changed paths, the other sessions' leases overlapping them
  (``POST /locks/conflicts``, which the hub answers from its overlap index),
  and the committer's own live leases in the project (for fences and the
  ledger). How many leases other sessions hold does not matter (review: it
  once read every live lease of the project and refused every commit past
  20,000 of them, so one busy project blocked all commits).
* A hub from before ``POST /locks/conflicts`` (it answers 404 or 405) is
  asked the old way, ``GET /locks/conflicts?resource=`` one path per
  request, within the same :data:`RATE_LIMIT_WAIT` budget and 429 handling
  (review: the 405 counted as "the hub could not be asked", so
  ``COORD_HOOK_FAIL_MODE=open`` accepted a commit yesterday's guard
  refused). More than :data:`OLD_HUB_PATHS` paths, paths left unasked when
  the budget ends, or a hub that has neither endpoint → refused in either
  fail mode, asking to upgrade the hub: it is up, not "cannot be asked".
* The committer holds more than :data:`MAX_OWN` live leases in the project
  (the hub lets a session hold 1,000 in all, so only a hub with a higher
  bound gets there) → refused in either fail mode, naming the bound: a
  ledger or fence check on part of them could miss a lease of one's own that
  ended, and a hub that answered is up, not "cannot be asked".
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from coordhub.guard import check, git, ledger
from coordhub.hooks import halts
from coordhub.hooks import settings as hook_settings
from coordhub.hooks.hub import HubError, HubRefused, RateLimitWait, misnamed, retry_after
from coordhub.hooks.invocation import Invocation
from coordhub.hooks.untrusted import one_line

MAX_LINES = 50
WHAT = {"pre-commit": "commit", "pre-merge-commit": "merge commit", "pre-push": "push"}
COMMAND = {"pre-commit": "commit", "pre-merge-commit": "merge", "pre-push": "push"}
MAX_RECORDED_PATHS = 200
MAX_OWN = 1_000  # the committer's own live leases in the project the guard reads (2 pages; the hub's per-session
#                 bound, core.leases.MAX_LIVE_PER_SESSION); past it the run cannot be checked
RATE_LIMIT_WAIT = 5.0  # seconds within which the guard may still wait out a 429: git has no hook timeout, but a
#                        person (or an agent's Bash call) waits for the commit
TOKEN_WAYS = ("COORD_TOKEN in git's environment or identity.json \"token\" (the repository's .claude/identity.json, "
              "kept out of git, or ~/.claude/identity.json)")  # where the guard finds its token (hooks.invocation)
OLD_HUB_PATHS = 200  # paths the guard asks one request each of a hub without POST /locks/conflicts (within
#                      RATE_LIMIT_WAIT); past it the run cannot be checked
NO_PATHS = "coordhub-guard:no-paths"  # what a run changing no path asks GET /locks/conflicts about, for the halt
#   and pause the hub answers whatever the resource: a NAME resource (core.paths) overlaps only itself, so the hub
#   looks up one index key; the leases answered are not read. POST /locks/conflicts refuses an empty list (422).


class Stop:
    """The halt and the pause the hub's ``/locks/conflicts`` answers named (the first of each seen), if any."""

    def __init__(self) -> None:
        self.halt: dict[str, Any] | None = None
        self.paused: dict[str, Any] | None = None

    def note(self, answer: Any) -> None:
        """Keep the halt and the pause of ``answer`` unless one was seen already."""
        halt, paused = halts.stop_of(answer)
        self.halt, self.paused = self.halt or halt, self.paused or paused

    def line(self) -> str | None:
        """Why no commit may be made now (:mod:`coordhub.hooks.halts`' words), or None when nothing stops it."""
        return (halts.halted_line(self.halt) if self.halt else
                halts.paused_line(self.paused) if self.paused else None)


class TooManyLeases(HubError):
    """The hub answered, but the committer holds more live leases in the project than the guard reads
    (:data:`MAX_OWN`)."""


class OldHub(HubError):
    """The hub answered, but has no ``POST /locks/conflicts`` and could not be asked about every path the old way
    (``GET /locks/conflicts`` per path) within the guard's bounds."""


def say(text: str) -> None:
    """Write ``coord guard: TEXT`` on stderr."""
    sys.stderr.write(f"coord guard: {text}\n")
    sys.stderr.flush()


def main(event: str, args: list[str]) -> int:
    """Run the guard for ``git-pre-commit``, ``git-pre-merge-commit`` or ``git-pre-push`` (``args``: git's hook
    arguments)."""
    hook = event.removeprefix("git-")
    settings = hook_settings.load()
    bypass = hook_settings.get_bool("guard_bypass")
    try:
        top = git.toplevel()
        changed = (git.pushed_paths(args[0] if args else "origin", git.parse_push_updates(sys.stdin.read()), top)
                   if hook == "pre-push" else git.staged_paths(top))
        ledger_file = git.git_path("coordhub/leases.json", top)
    except git.GitError as exc:
        return _unchecked(settings.fail_closed, hook, f"cannot read what is being committed: {exc}")
    inv = Invocation(event, {}, settings, cwd=top, claude_project_dir=False)
    patience = RateLimitWait(RATE_LIMIT_WAIT, lambda wait, exc: say(
        f"the hub is rate-limiting this session ({one_line(exc.message)}); asking again in {wait:g} s"))
    stop = Stop()
    try:
        verdict, error = (_check(inv, changed, ledger_file, stop, accept_if_clean=not bypass, patience=patience)
                          if changed else _stop_only(inv, stop, patience)), None
    except HubError as exc:
        verdict, error = None, exc
    finally:
        inv.close()
    if (note := inv.admin_note()) is not None:  # the hub's admin token acts as the admin: said as the hooks say it
        say(note.removeprefix("coord: "))
    if bypass:
        return _bypass(inv, hook, changed, top, verdict, error, ledger_file, stop)
    if (halted := stop.line()) is not None:  # the hub said so: a request failing after that leaves it standing
        say(f"{WHAT.get(hook, hook)} refused: {halted}. No commits or pushes until it is resumed (`coord resume`; "
            "a paused session: `coord engage`), or, if you must, `COORD_GUARD_BYPASS=1 "
            f"COORD_GUARD_BYPASS_REASON=\"…\" git {COMMAND.get(hook, hook)} …`.")
        if verdict is not None and verdict.problems:
            _refuse(hook, inv.project.key, verdict.problems)
        return 1
    if isinstance(error, HubRefused) and retry_after(error) is not None:
        return _rate_limited(hook, error, patience.waited)
    if error is not None and (words := misnamed(error)) is not None:
        return _up_but_unchecked(hook, f"the hub refuses this session's name (403 session_mismatch: "
                                 f"{one_line(words)})", "Make COORD_SESSION (or identity.json \"session\") and the "
                                 "token name one session")
    if isinstance(error, TooManyLeases):
        return _up_but_unchecked(hook, str(error), "Release the leases of yours that are no longer needed (`coord "
                                 "lock list --project …`, `coord lock release <id>`; a directory or glob lease covers "
                                 "many files in one) and try again")
    if isinstance(error, OldHub):
        return _up_but_unchecked(hook, str(error), "Upgrade the hub to this guard's version (it answers POST "
                                 "/locks/conflicts), or commit fewer paths at a time")
    if error is not None:
        return _unchecked(settings.fail_closed, hook, _unasked(inv, error))
    assert verdict is not None
    if verdict.problems:
        _refuse(hook, inv.project.key, verdict.problems)
        return 1
    if verdict.unchecked:
        for p in verdict.unchecked[:MAX_LINES]:
            sys.stderr.write(f"  {one_line(p)}: not a valid lease resource (a control character, not UTF-8, or "
                             "too long)\n")
        return _unchecked(settings.fail_closed, hook, f"{len(verdict.unchecked)} path(s) cannot be checked "
                                                      "against leases (listed above)")
    return 0


def _check(inv: Invocation, changed: list[str], ledger_file: Path, stop: Stop, accept_if_clean: bool,
           patience: RateLimitWait) -> check.Verdict:
    """Ask the hub (each request through ``patience``) and decide; keep the ledger up to date (raises
    ``HubError`` when the hub cannot be asked, or still answers 429). The halt or pause the answers name goes
    into ``stop``; ended leases are settled only when neither leases nor a halt refuse."""
    hub, key, ask = inv.hub, inv.project.key, patience.call
    whoami = ask(partial(hub.get, "/whoami"))
    me = whoami.get("session_id") if isinstance(whoami, dict) else None
    held: check.Held = {}
    for other in inv.project.keys:  # a key a project's identity.json named, and the repository's own beside it
        for path, leases in _held(inv, other, check.split(changed)[0], ask, patience.deadline, stop).items():
            seen = {str(x.get("id")) for x in held.get(path, [])}
            held.setdefault(path, []).extend(x for x in leases if str(x.get("id")) not in seen)
    own: list[dict[str, Any]] = []
    if isinstance(me, str):  # every page: an own lease left out would look ended, or go unchecked
        listed = ask(partial(hub.pages, "/locks", MAX_OWN, project_key=key, session_id=me))
        if listed.more or len(listed.rows) > MAX_OWN:
            raise TooManyLeases(f"session {me} holds more than {MAX_OWN} live leases in project {key}, the most "
                                "the guard reads")
        own = [r for r in listed.rows if isinstance(r, dict) and r.get("session_id") == me]
    known = ledger.load(ledger_file)

    def fence_check(fence: int, resource: str | None) -> dict[str, Any]:
        answer = ask(partial(hub.get, "/locks/check", fence=fence, resource=resource, project_key=key))
        return answer if isinstance(answer, dict) else {}

    verdict = check.evaluate(changed, me, key, held, own, known, fence_check)
    ledger.record(known, own, time.time())
    if accept_if_clean and not verdict.problems and stop.line() is None:
        for lease_id in verdict.ended_ids:
            known.pop(lease_id, None)
    _save(ledger_file, known)
    return verdict


def _stop_only(inv: Invocation, stop: Stop, patience: RateLimitWait) -> check.Verdict:
    """The check of a run that changes no path: one ``GET /locks/conflicts?project_key=&resource=NO_PATHS``
    (through ``patience``), whose ``halt`` and ``paused`` go into ``stop``; the verdict has no problems. Raises
    what the request raises (``HubError``). That route, not ``GET /halt``, because its ``halt`` is the hub's own
    choice for work in the project (:func:`coordhub.core.halt.for_work`: the committer's, else the project's),
    the one the runs that change paths are refused for; a hub old enough to answer a bare list names no halt."""
    for key in inv.project.keys:
        stop.note(patience.call(partial(inv.hub.get, "/locks/conflicts", project_key=key, resource=NO_PATHS)))
    return check.Verdict([], [], [])


def _held(inv: Invocation, key: str, resources: dict[str, str], ask: Callable[[Callable[[], Any]], Any],
          deadline: float, stop: Stop) -> check.Held:
    """For each path of ``resources`` (path → resource), the other sessions' live leases in project ``key``
    overlapping it, as the hub
    answers ``POST /locks/conflicts`` (one request per :data:`check.BATCH` paths, more when the hub finds a batch
    too broad to compare at once: :func:`_overlaps_of`). ``HubError`` when an answer is
    not that endpoint's shape. Each answer lists at most 500 leases (the oldest); a path whose leases were all cut
    out is missing, but the commit is refused for the others that answer showed. A hub without that endpoint
    (404, 405) is asked per path (:func:`_held_one_by_one`, by ``deadline``, a ``time.monotonic()``). Each answer's
    halt and pause go into ``stop``."""
    held: check.Held = {}
    items = list(resources.items())
    for start in range(0, len(items), check.BATCH):
        batch = items[start:start + check.BATCH]
        try:
            rows, overlaps = _overlaps_of(inv, key, [r for _, r in batch], ask, stop)
        except HubRefused as exc:
            if exc.status not in (404, 405):
                raise
            held.update(_held_one_by_one(inv, key, items[start:], ask, deadline, stop))
            return held
        by_id = {str(r.get("id")): r for r in rows if isinstance(r, dict)}
        for (path, _), ids in zip(batch, overlaps, strict=True):
            # an id the answer does not list stands for a lease all the same: never drop a conflict
            found = [{"project_key": key, **by_id.get(str(i), {"id": i, "session_id": "?"})} for i in ids]
            if found:
                held[path] = found
    return held


def _overlaps_of(inv: Invocation, key: str, resources: list[str], ask: Callable[[Callable[[], Any]], Any],
                 stop: Stop) -> tuple[list[Any], list[list[Any]]]:
    """``POST /locks/conflicts`` in project ``key`` for ``resources``: the leases it lists and, per resource, the
    ids overlapping it.

    The hub bounds the candidate leases the resources after the first bring (422 with ``limit``): a changed file
    brings every lease filed at an ancestor of its path, so a project with a hundred globs such as ``*.gen`` (no
    literal prefix) passes that bound with a batch of 100 files. Such a batch is asked again in halves, down to
    one resource a request, which the hub compares whatever it brings: a 422 never leaves a path unasked (taken
    as "the hub could not be asked", ``COORD_HOOK_FAIL_MODE=open`` accepted the commit unchecked). ``HubError``
    when an answer is not that endpoint's shape; ``HubRefused`` otherwise as the hub refused.
    """
    try:
        answer = ask(partial(inv.hub.post, "/locks/conflicts", {"project_key": key, "resources": resources}))
    except HubRefused as exc:
        if exc.status != 422 or len(resources) < 2 or _limit_of(exc) is None:
            raise
        half = len(resources) // 2
        first = _overlaps_of(inv, key, resources[:half], ask, stop)
        second = _overlaps_of(inv, key, resources[half:], ask, stop)
        return first[0] + second[0], first[1] + second[1]
    stop.note(answer)
    rows = answer.get("leases") if isinstance(answer, dict) else None
    overlaps = answer.get("overlaps") if isinstance(answer, dict) else None
    if (not isinstance(rows, list) or not isinstance(overlaps, list) or len(overlaps) != len(resources)
            or not all(isinstance(ids, list) for ids in overlaps)):
        raise HubError("POST /locks/conflicts answered no per-path overlaps (a hub older than this guard?)")
    return rows, overlaps


def _limit_of(exc: HubRefused) -> Any:
    """The ``limit`` a 422 refusal's envelope names (the bound the request passed), else None."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    return error.get("limit") if isinstance(error, dict) else None


def _held_one_by_one(inv: Invocation, key: str, items: list[tuple[str, str]],
                     ask: Callable[[Callable[[], Any]], Any], deadline: float, stop: Stop) -> check.Held:
    """:func:`_held` of a hub from before ``POST /locks/conflicts``: ``GET /locks/conflicts?resource=`` (which
    hubs have answered since the edit hook used it) for each of ``items`` (path, resource), one request each
    through ``ask``. ``OldHub`` for more than :data:`OLD_HUB_PATHS` paths (nothing asked), for paths left when
    ``deadline`` (``time.monotonic()``) passes, or when the hub has neither endpoint (404, 405) or answers no
    lease list; what ``ask`` raises otherwise (a 429 past the budget, an unreachable hub)."""
    why = "the hub has no POST /locks/conflicts (a hub older than this guard)"
    if len(items) > OLD_HUB_PATHS:
        raise OldHub(f"{why}, and {len(items)} paths are more than the {OLD_HUB_PATHS} the guard asks such a hub "
                     "about one at a time")
    held: check.Held = {}
    for done, (path, resource) in enumerate(items):
        if time.monotonic() > deadline:
            raise OldHub(f"{why}, and asking it about each path one at a time took longer than {RATE_LIMIT_WAIT:g} s "
                         f"({len(items) - done} of {len(items)} paths not asked)")
        try:
            answer = ask(partial(inv.hub.get, "/locks/conflicts", project_key=key, resource=resource))
        except HubRefused as exc:
            if exc.status in (404, 405):
                raise OldHub(f"{why}, nor GET /locks/conflicts ({exc.status})") from exc
            raise
        stop.note(answer)
        rows = answer.get("leases") if isinstance(answer, dict) else None
        if not isinstance(rows, list):
            raise OldHub(f"{why}, and its GET /locks/conflicts answered no lease list")
        found = [{"project_key": key, **r} if isinstance(r, dict) else {"id": r, "session_id": "?"} for r in rows]
        if found:
            held[path] = found
    return held


def _save(path: Path, known: dict[str, ledger.Entry]) -> None:
    try:
        ledger.save(path, known)
    except OSError as exc:
        say(f"cannot write {path} ({exc}); leases of yours that end later may go unnoticed")


def _refuse(hook: str, project_key: str, problems: list[check.Problem]) -> None:
    what = WHAT.get(hook, hook)
    say(f"{what} refused: it touches paths leased in project {one_line(project_key)} by other sessions, or under a "
        "lease of yours that is no longer current:")
    for problem in problems[:MAX_LINES]:
        sys.stderr.write(f"  {problem.line()}\n")
    if len(problems) > MAX_LINES:
        sys.stderr.write(f"  … and {len(problems) - MAX_LINES} more\n")
    holders = sorted({str(p.lease.get("session_id")) for p in problems if p.kind == "held"})
    steps = []
    if holders:
        steps.append(f"ask the holder ({', '.join(holders)}) via `coord msg send`, or wait until the lease ends")
    if any(p.kind == "stale" for p in problems):
        steps.append("claim the paths again (`coord lock claim`) and check your work against changes made meanwhile")
    command = COMMAND.get(hook, what)
    steps.append(f"or, if you must, `COORD_GUARD_BYPASS=1 COORD_GUARD_BYPASS_REASON=\"…\" git {command} …` "
                 "(recorded on the hub)")
    say("; ".join(steps) + ".")
    sys.stderr.flush()


def _rate_limited(hook: str, exc: HubRefused, waited: float) -> int:
    """Refuse (in either fail mode) a run whose check the hub answered with 429 after ``waited`` seconds."""
    wait = retry_after(exc) or 1.0
    slept = f", after waiting {waited:g} s" if waited else ""
    return _up_but_unchecked(
        hook, f"the hub is rate-limiting this session's token (429 rate_limited: {one_line(exc.message)}{slept}; "
        f"Retry-After {wait:g} s)", f"Retry in about {wait:g} s; if this repeats, something is spending this "
        "session's requests (a loop, or another process using its token)")


def _up_but_unchecked(hook: str, why: str, todo: str) -> int:
    """Refuse (in either fail mode) a run the hub answered but whose paths could not be checked, because ``why``;
    ``todo`` says what to do about it."""
    say(f"{WHAT.get(hook, hook)} refused: {why}, so the paths could not be checked against leases. The hub is up, "
        f"so this is not the unreachable hub COORD_HOOK_FAIL_MODE=open accepts unchecked. {todo}. Or bypass with "
        "COORD_GUARD_BYPASS=1 (recorded on the hub).")
    return 1


def _unasked(inv: Invocation, error: HubError) -> str:
    """Why the hub could not be asked: ``error``, or, when it answered 401 to a guard that has no token, how to
    give the guard one, in the CLI's words (:func:`coordhub.client.credentials.needs_token`): the hub's own line says to
    send an ``Authorization`` header, which nobody committing writes."""
    if isinstance(error, HubRefused) and error.status == 401 and not inv.client.token:
        from coordhub.client.credentials import needs_token

        return f"the hub could not be asked without a token ({needs_token(inv.client.url, TOKEN_WAYS)})"
    return f"the hub could not be asked ({error})"


def _unchecked(fail_closed: bool, hook: str, why: str) -> int:
    what = WHAT.get(hook, hook)
    if fail_closed:
        say(f"{what} refused: {why}, and COORD_HOOK_FAIL_MODE=closed. Retry when the hub answers, "
            "or bypass with COORD_GUARD_BYPASS=1.")
        return 1
    say(f"warning: {why}; {what} accepted unchecked (COORD_HOOK_FAIL_MODE=open).")
    return 0


def _bypass(inv: Invocation, hook: str, changed: list[str], top: Path, verdict: check.Verdict | None,
            error: HubError | None, ledger_file: Path, stop: Stop) -> int:
    """Accept, record a ``guard.bypassed`` event, and say what was bypassed and whether it was recorded."""
    problems = verdict.problems if verdict else []
    halted = stop.line()
    reason = hook_settings.get_str("guard_bypass_reason")
    detail: dict[str, Any] = {
        "hook": hook, "paths": [_text(p) for p in changed[:MAX_RECORDED_PATHS]], "path_count": len(changed),
        "reason": _text(reason) if reason else reason, "problems": [_text(p.line()) for p in problems[:MAX_LINES]],
        "checked": error is None, "repository": _text(str(top)), "head": _head(top),
        "halt": _text(halted) if halted else None}
    found = (f"despite {len(problems)} problem(s)" + (" and a halt" if halted else "") if problems else
             "despite a halt" if halted else
             f"unchecked ({error})" if isinstance(error, TooManyLeases | OldHub) else
             "unchecked (the hub could not be asked)" if error else "with no problems found")
    say(f"COORD_GUARD_BYPASS=1: {hook} accepted {found}.")
    if halted:
        sys.stderr.write(f"  {halted}\n")
    for problem in problems[:MAX_LINES]:
        sys.stderr.write(f"  {problem.line()}\n")
    try:
        event = inv.hub.post("/events", {"kind": "guard.bypassed", "project_key": inv.project.key, "detail": detail})
        say(f"bypass recorded on the hub as event {event.get('id') if isinstance(event, dict) else '?'}.")
        if verdict is not None:  # the committer chose to go on: ended leases of these paths are settled
            known = ledger.load(ledger_file)
            for lease_id in verdict.ended_ids:
                known.pop(lease_id, None)
            _save(ledger_file, known)
    except HubError as exc:
        say(f"the bypass could NOT be recorded on the hub ({exc}); tell the fleet yourself.")
    finally:
        inv.close()
    return 0


def _text(name: str) -> str:
    """A name (or the environment's reason) as Unicode text the hub's JSON takes: a byte that is not UTF-8 (a lone
    surrogate here, as git's names and the environment are decoded) is written ``\\xe9``, so a bypass of a commit
    holding such a name is still recorded."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _head(top: Path) -> str | None:
    try:
        return git.git(["rev-parse", "--verify", "-q", "HEAD"], top).strip() or None
    except git.GitError:
        return None
