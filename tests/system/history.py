"""Record concurrent histories against a live hub and check them from the client side (contract §2.3, §2.5, §2.6).

A *history* is every HTTP request the test's processes made, one
:class:`Attempt` each: who sent it, which logical operation it belongs to (a
retry with the same ``Idempotency-Key`` is a second attempt of the same
operation), its inputs, its answer, and two clock readings: ``t0`` right
before the request was sent and ``t1`` right after the answer arrived.

**The clock.** Attempts are stamped with ``time.time()``, the very clock the
hub decides expiry on (``SystemClock``): the hub is a process on this machine,
so clients and hub read one system-wide clock. The hub reads it once per
mutation, inside the transaction, after the request arrived and before the
answer left; so the hub's time ``T`` of an effect lies in ``[t0, t1]`` of the
attempt that caused it. And an effect the hub committed before it started
another lies, in real time, before that other's answer. Nothing else is
assumed: not how long a request takes, not how the hub schedules or batches.
The one premise is that the wall clock is not stepped backwards during the
run (a forward step or NTP slewing is harmless); :func:`check_answers`
reports an attempt whose ``t1 < t0``, the visible trace of such a step.

**Replays.** An answer with ``Idempotent-Replayed: true`` is the stored answer
of an earlier attempt; its effect happened during *some* attempt of the
operation. So an operation's effect time lies in ``[invoked, answered]``:
``invoked`` = the earliest ``t0`` of its attempts, ``answered`` = the earliest
``t1`` of its successful attempts. Every bound below is built from those two.

The checks are pure functions of the history (and, where said, of the final
state read back from the hub). Each returns a list of :class:`Violation`; an
empty list means the check found nothing wrong. They only ever assert what
follows from the observations, so a reported violation is a real bug in the
hub (or a broken premise above), never an artefact of a slow machine.

Which resources overlap is decided by :data:`OVERLAPS`, a table written by
hand for the fixed resource set :data:`RESOURCES`, independent of
``coordhub.core.paths`` (the code under test).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import combinations
from typing import Any

import httpx2

CLOCK = time.time  # the hub's own clock (SystemClock); see the module docstring
INF = math.inf

# ---- the resource oracle -----------------------------------------------------------------------

RESOURCES = ("src/", "src/a.py", "SRC\\b.py", "src/*.py", "src/*.md", "docs/", "docs/{a,b}.md",
             "deploy:x", "deploy:y", "src/\u00fc.py", "Src/U\u0308.py", "./src/a.py.")
# Which pairs of RESOURCES share a file, by hand (contract §2.4 and docs/api.md "Leases"): a directory
# holds everything beneath it; comparison is case-insensitive and "\" is a separator, so "SRC\b.py" is
# "src/b.py"; "src/*.py" matches src/a.py and src/b.py but no file "src/*.md" matches (a name cannot end
# in both ".py" and ".md"); "docs/{a,b}.md" lies under docs/ only; a name overlaps only itself. One file
# under three spellings each (issue 7, point 12): "src/ü.py" in NFC and, case-changed, in NFD; "src/a.py"
# with Windows' dropped trailing dot.
# Every pair listed here must exclude; every pair not listed must not (all are decidable exactly).
OVERLAPS = frozenset(frozenset(pair) for pair in [
    ("src/", "src/a.py"), ("src/", "SRC\\b.py"), ("src/", "src/*.py"), ("src/", "src/*.md"),
    ("src/a.py", "src/*.py"), ("SRC\\b.py", "src/*.py"),
    ("docs/", "docs/{a,b}.md"),
    ("src/\u00fc.py", "Src/U\u0308.py"), ("src/", "src/\u00fc.py"), ("src/", "Src/U\u0308.py"),
    ("src/*.py", "src/\u00fc.py"), ("src/*.py", "Src/U\u0308.py"),
    ("./src/a.py.", "src/a.py"), ("./src/a.py.", "src/"), ("./src/a.py.", "src/*.py"),
] + [(r, r) for r in RESOURCES])


def overlaps(a: str, b: str) -> bool:
    """Whether leases on ``a`` and ``b`` (both in :data:`RESOURCES`) must exclude each other."""
    if a not in RESOURCES or b not in RESOURCES:
        raise KeyError(f"the oracle knows only RESOURCES, not {a!r} / {b!r}")
    return frozenset((a, b)) in OVERLAPS


# ---- the record ---------------------------------------------------------------------------------

class Kind(StrEnum):
    """What an attempt did."""

    CLAIM = "claim"        # POST /locks
    RENEW = "renew"        # POST /locks/{id}/renew
    RELEASE = "release"    # DELETE /locks/{id}
    FORCE = "force"        # DELETE /locks/{id}?force=true (admin)
    SEND = "send"          # POST /messages
    ACK = "ack"            # POST /messages/{id}/ack
    READ = "read"          # any GET


@dataclass(frozen=True)
class Attempt:
    """One HTTP request and its answer.

    ``op`` numbers the logical operations of one ``worker`` (a process or
    thread that runs them one after another); the attempts of a retried
    operation share it. ``status`` is None when no answer came (transport
    error): the outcome is unknown. ``body`` is the decoded answer (trimmed
    for reads). ``args`` are the inputs: ``resource``, ``ttl_hours``,
    ``lease_id``, ``to`` (None: broadcast), ``subject``, ``body``,
    ``message_id``, ``expect_refusal``.
    """

    worker: str
    session: str
    op: int
    kind: str
    key: str | None
    t0: float
    t1: float
    status: int | None
    replayed: bool
    body: Any
    args: dict[str, Any]

    @property
    def ok(self) -> bool:
        """The hub answered 2xx."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def code(self) -> str | None:
        """The error envelope's ``code`` of a non-2xx answer, else None."""
        if self.ok or not isinstance(self.body, dict):
            return None
        error = self.body.get("error")
        return error.get("code") if isinstance(error, dict) else None


@dataclass(frozen=True)
class Violation:
    """One broken guarantee: which check found it and the evidence."""

    check: str
    detail: str


class Retry(StrEnum):
    """How an operation is sent: without a key, with one, replayed in sequence, or raced by two threads."""

    NONE = "none"
    KEY = "key"
    AGAIN = "again"
    RACE = "race"


class Recorder:
    """Sends requests as one session through a live hub and records each as an :class:`Attempt`.

    Not thread-safe: one worker drives it; a :data:`Retry.RACE` runs its two
    attempts on two connections at once and records both.
    """

    def __init__(self, url: str, token: str, session: str, worker: str, *, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self.session, self.worker = session, worker
        self.clients = [httpx2.Client(base_url=url, headers=headers, timeout=timeout) for _ in range(2)]
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"rec-{worker}")
        self.history: list[Attempt] = []
        self.op = 0

    def close(self) -> None:
        """Close both connections and the thread pool."""
        self._pool.shutdown()
        for c in self.clients:
            c.close()

    def request(self, kind: Kind, method: str, path: str, *, args: dict[str, Any], body: Any = None,
                params: dict[str, Any] | None = None, retry: Retry = Retry.NONE,
                keep: Callable[[Any], Any] | None = None) -> list[Attempt]:
        """Run one operation (one or two attempts, per ``retry``); record and return its attempts."""
        self.op += 1
        key = None if retry is Retry.NONE else f"{self.worker}-{self.op}-{uuid.uuid4().hex[:8]}"

        def one(client: httpx2.Client) -> Attempt:
            return self._attempt(client, kind, method, path, body, params, key, args, keep)

        if retry is Retry.RACE:
            futures = [self._pool.submit(one, c) for c in self.clients]
            attempts = [f.result() for f in futures]
        elif retry is Retry.AGAIN:
            attempts = [one(self.clients[0])]
            attempts.append(one(self.clients[1]))
        else:
            attempts = [one(self.clients[0])]
        self.history += attempts
        return attempts

    def _attempt(self, client: httpx2.Client, kind: Kind, method: str, path: str, body: Any,
                 params: dict[str, Any] | None, key: str | None, args: dict[str, Any],
                 keep: Callable[[Any], Any] | None) -> Attempt:
        headers = {"Idempotency-Key": key} if key else {}
        t0 = CLOCK()
        try:
            r = client.request(method, path, json=body, params=params, headers=headers)
        except httpx2.TransportError as exc:
            return Attempt(self.worker, self.session, self.op, kind, key, t0, CLOCK(), None, False,
                           {"transport_error": f"{type(exc).__name__}: {exc}"}, args)
        t1 = CLOCK()
        try:
            data: Any = r.json()
        except ValueError:
            data = {"raw": r.text[:500]}
        if keep is not None and 200 <= r.status_code < 300:
            data = keep(data)
        return Attempt(self.worker, self.session, self.op, kind, key, t0, t1, r.status_code,
                       r.headers.get("Idempotent-Replayed") == "true", data, args)


# ---- operations and leases derived from the attempts -----------------------------------------

@dataclass(frozen=True)
class Op:
    """A logical operation: its attempts and the window ``[invoked, answered]`` its effect lies in."""

    attempts: tuple[Attempt, ...]

    @property
    def first(self) -> Attempt:
        return self.attempts[0]

    @property
    def kind(self) -> str:
        return self.first.kind

    @property
    def session(self) -> str:
        return self.first.session

    @property
    def args(self) -> dict[str, Any]:
        return self.first.args

    @property
    def invoked(self) -> float:
        """The earliest ``t0``: no effect of this operation happened before it."""
        return min(a.t0 for a in self.attempts)

    @property
    def ok(self) -> bool:
        """Some attempt was answered 2xx: the effect happened."""
        return any(a.ok for a in self.attempts)

    @property
    def answered(self) -> float:
        """The earliest ``t1`` of a 2xx attempt (the effect happened before it); inf if none."""
        return min((a.t1 for a in self.attempts if a.ok), default=INF)

    @property
    def unknown(self) -> bool:
        """No attempt succeeded and some got no answer: the effect may or may not have happened."""
        return not self.ok and any(a.status is None for a in self.attempts)

    @property
    def body(self) -> Any:
        """The body of the first 2xx attempt (None if there is none)."""
        return next((a.body for a in self.attempts if a.ok), None)


def operations(history: Iterable[Attempt]) -> list[Op]:
    """Group attempts into operations by ``(worker, op)``, in the order first seen."""
    groups: dict[tuple[str, int], list[Attempt]] = defaultdict(list)
    for a in history:
        groups[(a.worker, a.op)].append(a)
    return [Op(tuple(v)) for v in groups.values()]


def _ttl_seconds(ttl_hours: float) -> float:
    return INF if ttl_hours == 0 else ttl_hours * 3600.0


@dataclass
class Lease:
    """What the history says about one granted lease.

    ``granted`` .. ``certain_end`` is the *certain* holding interval: the
    holder surely held the lease at every instant of it (empty when
    ``certain_end <= granted``). ``invoked`` .. ``possible_end`` is the
    *possible* one: the lease surely did not exist before ``invoked`` nor
    was live after ``possible_end``. ``guaranteed_until`` is how long the
    hub promised the holder the lease, whatever the holder does: the
    certain end ignoring the holder's own releases.
    """

    id: str
    session: str
    resource: str
    fence: int
    grant: Op
    renews: list[Op] = field(default_factory=list)
    ends: list[Op] = field(default_factory=list)  # release and force operations, in any order
    since: float | None = None  # first known from a reclaim: when the claim whose answer was lost began

    @property
    def invoked(self) -> float:
        return self.grant.invoked if self.since is None else self.since

    @property
    def granted(self) -> float:
        return self.grant.answered

    def extensions(self, before: float = INF) -> list[Op]:
        """The grant and the successful renews invoked before ``before``, in the order the hub applied them."""
        exts = [self.grant] + [r for r in self.renews if r.ok and r.invoked < before]
        return sorted(exts, key=lambda o: o.invoked)  # one holder, one operation at a time

    def certain_expiry(self, before: float = INF) -> float:
        """A time the lease surely did not expire before, counting extensions invoked before ``before``.

        The hub sets ``expires_at = T + ttl`` at each grant or renew, ``T`` in
        ``[invoked, answered]`` of that operation; the last one counts. A
        holder issues its renews one after another, so the holder's last
        successful extension is the last one the hub applied, unless a later
        renew's answer was lost: it may have applied too, with its own TTL.
        """
        last = self.extensions(before)[-1]
        maybe = [r for r in self.renews if r.unknown and last.invoked < r.invoked < before]
        return min(o.invoked + _ttl_seconds(float(o.args["ttl_hours"])) for o in [last, *maybe])

    def possible_expiry(self, before: float = INF) -> float:
        """A time the lease surely expired by, unless released earlier; inf while a renew's outcome is unknown."""
        if any(r.unknown and r.invoked < before for r in self.renews):
            return INF
        last = self.extensions(before)[-1]
        return last.answered + _ttl_seconds(float(last.args["ttl_hours"]))

    def forced_from(self) -> float:
        """When the first force-release of the lease was invoked (inf if none)."""
        return min((o.invoked for o in self.ends if o.kind == Kind.FORCE), default=INF)

    @property
    def guaranteed_until(self) -> float:
        return min(self.certain_expiry(), self.forced_from())

    @property
    def certain_end(self) -> float:
        return min(self.guaranteed_until, min((o.invoked for o in self.ends), default=INF))

    @property
    def possible_end(self) -> float:
        return min(self.possible_expiry(), min((o.answered for o in self.ends), default=INF))


# Resources of RESOURCES that name the same file: a holder's claim of one renews its lease on the other.
SAME_FILE = [frozenset(r for r in RESOURCES if r in group) for group in (
    {"src/a.py", "./src/a.py."}, {"src/\u00fc.py", "Src/U\u0308.py"})]


def same_file(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` (both in :data:`RESOURCES`) are one resource under two spellings."""
    return a == b or any({a, b} <= group for group in SAME_FILE)


def leases_of(history: Sequence[Attempt]) -> dict[str, Lease]:
    """Every lease some client was told it was granted, by id, with its renews and ends.

    A holder's claim of a resource it already holds live is a renewal of that
    lease (same id and fence, ``renewed: true``): it counts as a renew, and a
    claim of the same file by the holder whose answer was lost may have been
    one.
    """
    ops = operations(history)
    leases: dict[str, Lease] = {}
    for op in ops:
        if op.kind == Kind.CLAIM and op.ok and not op.body.get("renewed"):
            body = op.body
            leases.setdefault(body["id"], Lease(body["id"], op.session, op.args["resource"], body["fence"], op))
    for op in ops:
        if op.kind != Kind.CLAIM:
            continue
        if op.ok and op.body.get("renewed"):
            body = op.body
            if body["id"] in leases:
                leases[body["id"]].renews.append(op)
            else:  # the grant's answer was lost: the lease is surely held from this answer on, and may exist
                # since the first claim of that file by the session that got no answer
                lost = [o.invoked for o in ops if o.kind == Kind.CLAIM and o.unknown and o.session == op.session
                        and same_file(o.args["resource"], op.args["resource"]) and o.invoked < op.invoked]
                leases[body["id"]] = Lease(body["id"], op.session, op.args["resource"], body["fence"], op,
                                           since=min(lost) if lost else None)
        elif op.unknown:
            leases_too = [x for x in leases.values() if x.session == op.session
                          and same_file(x.resource, op.args["resource"]) and x.invoked < op.invoked]
            for lease in leases_too:
                lease.renews.append(op)
    for op in ops:
        lease = leases.get(op.args.get("lease_id", ""))
        if lease is None:
            continue
        if op.kind == Kind.RENEW:
            lease.renews.append(op)
        elif op.kind in (Kind.RELEASE, Kind.FORCE):
            lease.ends.append(op)
    return leases


# ---- the checks ----------------------------------------------------------------------------------

# Every answer each kind may get from a healthy hub: status → the error codes allowed with it (None: a success).
EXPECTED: dict[Kind, dict[int, frozenset[str] | None]] = {
    Kind.CLAIM: {201: None, 409: frozenset({"lease_conflict"})},
    Kind.RENEW: {200: None, 409: frozenset({"stale_fence"})},
    Kind.RELEASE: {200: None},
    Kind.FORCE: {200: None},
    Kind.SEND: {201: None},
    Kind.ACK: {200: None},
    Kind.READ: {200: None},
}


def check_answers(history: Iterable[Attempt], *, unanswered_ok: bool = False) -> list[Violation]:
    """Every attempt got an answer its kind allows, and its clock readings are in order.

    An ack sent with ``expect_refusal`` (by a session that is not the
    recipient) must be refused with 403 or 404. ``unanswered_ok`` allows no
    answer (the hub was killed). A 2xx replay may come only
    for a request that carried a key. ``t1 < t0`` means the wall clock was
    stepped back, which voids every other check.
    """
    out = []
    for a in history:
        if a.t1 < a.t0:
            out.append(Violation("clock", f"wall clock stepped back during {a}"))
        if a.status is None:
            if not unanswered_ok:
                out.append(Violation("answers", f"no answer: {a}"))
            continue
        if a.kind == Kind.ACK and a.args.get("expect_refusal"):
            if a.status not in (403, 404):
                out.append(Violation("answers", f"ack by a non-recipient was not refused: {a}"))
            continue
        allowed = EXPECTED[Kind(a.kind)]
        codes = allowed.get(a.status, frozenset())
        if a.status not in allowed or (codes is not None and a.code not in codes):
            out.append(Violation("answers", f"unexpected answer {a.status} {a.code}: {a}"))
        if a.replayed and a.key is None:
            out.append(Violation("answers", f"replayed answer to a request without a key: {a}"))
    return out


def check_mutual_exclusion(history: Sequence[Attempt]) -> list[Violation]:
    """No two sessions certainly held overlapping leases at the same instant (contract §2.3, §2.4).

    Soundness: let g and h be grants to different sessions on overlapping
    resources, and say the hub applied g first. When it applied h, g was not
    live: either the hub's time ``T_h >= expires_at(g)``, or a release or
    force-release of g had been committed. A lease that stopped being live
    never lives again (a renew needs a live lease), so every successful renew
    of g came before ``T_h`` and ``expires_at(g) >= certain_expiry(g)``
    (:meth:`Lease.certain_expiry`); h's answer came after ``T_h``. A
    committed release was invoked before h's answer came. Either way
    ``granted(h) >= certain_end(g)``: the certain intervals ``[granted,
    certain_end)`` cannot intersect. If they do, the hub granted an
    overlapping lease while another was live. The same session may hold
    overlapping leases (its own leases never conflict), so such pairs are
    skipped.
    """
    out = []
    held = sorted((x for x in leases_of(history).values() if x.certain_end > x.granted), key=lambda x: x.granted)
    active: list[Lease] = []
    for h in held:
        active = [g for g in active if g.certain_end > h.granted]
        for g in active:
            if g.session != h.session and overlaps(g.resource, h.resource):
                out.append(Violation("mutual exclusion", (
                    f"{g.session} held {g.resource!r} (lease {g.id}, fence {g.fence}) from {g.granted:.6f} to at "
                    f"least {g.certain_end:.6f}, yet {h.session} was granted {h.resource!r} (lease {h.id}, "
                    f"fence {h.fence}) by {h.granted:.6f}")))
        active.append(h)
    return out


def check_fences(history: Sequence[Attempt], granted_events: Sequence[dict[str, Any]] = ()) -> list[Violation]:
    """Fences are unique, grow with grant order, and stay with their lease (contract §2.3).

    * Two leases never share a fence.
    * If g was answered before h was invoked, the hub committed g before it
      received h, and every grant takes the next value of one strictly
      increasing counter, so ``fence(g) < fence(h)``. Grants whose windows
      overlap are concurrent: either order is correct, nothing is asserted.
    * A renew answers with the lease's own id and fence.
    * With ``granted_events`` (the hub's ``lease.granted`` events, in event-id
      order, i.e. commit order): fences grow strictly along them, and each
      event's fence is the one its client was told.
    """
    out = []
    leases = list(leases_of(history).values())
    by_fence: dict[int, list[Lease]] = defaultdict(list)
    for x in leases:
        by_fence[x.fence].append(x)
    out += [Violation("fences", f"fence {f} granted to {len(xs)} leases: {[x.id for x in xs]}")
            for f, xs in by_fence.items() if len(xs) > 1]

    by_answer = sorted(leases, key=lambda x: x.granted)
    top: Lease | None = None
    i = 0
    for h in sorted(leases, key=lambda x: x.invoked):
        while i < len(by_answer) and by_answer[i].granted < h.invoked:
            if top is None or by_answer[i].fence > top.fence:
                top = by_answer[i]
            i += 1
        if top is not None and top.fence >= h.fence:
            out.append(Violation("fences", (
                f"lease {h.id} ({h.resource!r}) invoked at {h.invoked:.6f} got fence {h.fence}, but lease {top.id} "
                f"({top.resource!r}) answered at {top.granted:.6f}, before it, already had fence {top.fence}")))

    for x in leases:
        for r in x.renews:
            for a in r.attempts:
                if a.ok and (a.body["id"], a.body["fence"]) != (x.id, x.fence):
                    out.append(Violation("fences", f"renew of {x.id} (fence {x.fence}) answered {a.body}"))

    known = {x.id: x.fence for x in leases}
    for prev, nxt in zip(granted_events, granted_events[1:], strict=False):
        if nxt["payload"]["fence"] <= prev["payload"]["fence"]:
            out.append(Violation("fences", f"fence did not grow in commit order: {prev} then {nxt}"))
    for e in granted_events:
        if e["subject_id"] in known and known[e["subject_id"]] != e["payload"]["fence"]:
            out.append(Violation("fences", f"event {e} disagrees with the fence its client got"))
    return out


def check_conflicts(history: Sequence[Attempt]) -> list[Violation]:
    """Every 409 ``lease_conflict`` names a lease that could have been live and truly overlaps (contract §2.3).

    The hub decided the conflict at some ``T`` in ``[t0, t1]`` of the
    refused attempt. The named lease must be another session's, on a resource
    the oracle says overlaps, with the fence and resource its client was
    told, and possibly live then: granted before ``t1`` (its claim was
    invoked before) and not surely ended before ``t0`` (an expired or
    released lease stops conflicting at once). A named lease no client was
    told of is accepted only if its holder has a claim whose answer was lost.
    """
    out = []
    leases = leases_of(history)
    lost_claims = {op.session for op in operations(history) if op.kind == Kind.CLAIM and op.unknown}
    for a in history:
        if a.kind != Kind.CLAIM or a.code != "lease_conflict":
            continue
        err = a.body["error"]
        held = leases.get(err.get("lease_id"))
        if held is None:
            if err.get("holder") not in lost_claims:
                out.append(Violation("conflicts", f"409 names a lease no client was granted: {a}"))
            continue
        why = ("it is the claimant's own lease" if held.session == a.session else
               "the holder is misreported" if err.get("holder") != held.session else
               "fence or resource misreported" if (err.get("fence"), err.get("resource")) != (held.fence,
                                                                                             held.resource) else
               "the resources do not overlap" if not overlaps(a.args["resource"], held.resource) else
               "the lease was not yet granted" if held.invoked >= a.t1 else
               "the lease had surely ended" if held.possible_end <= a.t0 else None)
        if why is not None:
            out.append(Violation("conflicts", f"unjustified 409 ({why}): {a} names {held}"))
    return out


def check_lease_lifetimes(history: Sequence[Attempt]) -> list[Violation]:
    """A lease lives exactly as long as promised: not ended early, not found live after its end (contract §2.3).

    The holder's own renews and releases reveal the lease's state at the
    hub's time ``T`` of the operation, ``T`` in ``[invoked, answered]``:

    * a renew refused as ``stale_fence`` (at ``T <= t1`` of that attempt) or
      a release answered ``expired`` (at ``T <= answered``) shows it not
      live; that must not be before the promise: the certain expiry from
      the extensions invoked before, unless a force-release or another
      release was invoked before;
    * a release answered ``revoked`` needs a force-release invoked before
      its answer;
    * a successful renew, or a release answered ``released``, shows it live
      at ``T >= invoked``: it must not have surely expired (possible expiry
      from the extensions before) or been surely released or revoked (an
      end answered) before that.

    And the hub grants the TTL asked for: a grant or renew answers
    ``expires_in_seconds`` = ``ttl_hours`` × 3600 (None for 0), measured on
    the hub's clock at the grant; the bounds above rest on that.
    """
    out = []
    for x in leases_of(history).values():
        for op in x.extensions():
            ttl = float(op.args["ttl_hours"])
            want = None if ttl == 0 else round(ttl * 3600.0, 3)
            out += [Violation("lifetimes", f"asked for {ttl} h, the hub answered {a.body}")
                    for a in op.attempts if a.ok and a.body.get("expires_in_seconds") != want]
        for op in [*x.renews, *(o for o in x.ends if o.kind == Kind.RELEASE)]:
            others = [o for o in x.ends if o is not op]
            promised = min(x.certain_expiry(before=op.invoked), min((o.invoked for o in others), default=INF))
            gone = min(x.possible_expiry(before=op.invoked), min((o.answered for o in others), default=INF))
            state = op.body.get("state") if op.ok else None
            if state == "revoked":
                if x.forced_from() >= op.answered:
                    out.append(Violation("lifetimes", f"lease {x.id}: release answered revoked, but no "
                                                      f"force-release was invoked before: {op.attempts}"))
            elif (op.kind == Kind.RENEW and op.ok) or state == "released":
                if gone <= op.invoked:
                    out.append(Violation("lifetimes", (
                        f"lease {x.id} surely ended by {gone:.6f}, yet the {op.kind} invoked at {op.invoked:.6f} "
                        f"found it live: {op.attempts}")))
            elif state == "expired" and op.answered < promised:
                out.append(Violation("lifetimes", f"lease {x.id} expired before {promised:.6f}: {op.attempts}"))
            out += [Violation("lifetimes", f"lease {x.id} ended before {promised:.6f}: {a}")
                    for a in op.attempts if a.code == "stale_fence" and a.t1 < promised]
    return out


def check_idempotency(history: Iterable[Attempt]) -> list[Violation]:
    """One idempotency key, one effect, one answer (contract §2.5).

    For each (session, key): every 2xx answer has the same status and the
    same body (so at most one lease id or message id came of it), and at
    most one 2xx answer is *not* marked replayed: a second unmarked success
    means the request was applied twice. A key is used by one operation only.
    """
    out = []
    groups: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    for a in history:
        if a.key is not None:
            groups[(a.session, a.key)].append(a)
    for (session, key), attempts in groups.items():
        if len({(a.worker, a.op) for a in attempts}) > 1:
            out.append(Violation("idempotency", f"key {key!r} of {session} used by several operations"))
        ok = [a for a in attempts if a.ok]
        if len({(a.status, _canonical(a.body)) for a in ok}) > 1:
            out.append(Violation("idempotency", f"key {key!r} of {session} got different answers: "
                                                f"{[(a.status, a.body) for a in ok]}"))
        fresh = [a for a in ok if not a.replayed]
        if len(fresh) > 1:
            out.append(Violation("idempotency", f"key {key!r} of {session} applied {len(fresh)} times: {fresh}"))
    return out


def _canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True)


def check_delivery(history: Sequence[Attempt], inboxes: dict[str, dict[str, dict[str, Any]]]) -> list[Violation]:
    """Every acknowledged message is in each recipient's inbox; read/ack state is per recipient (contract §2.6).

    ``inboxes`` maps every session of the run to its whole inbox at the end
    (message id → message as that session sees it). A message answered 201
    must be in the inbox of its recipient, or for a broadcast of every
    session of the run but the sender, with the subject, body and sender
    that were sent. No inbox holds a message from a session of the run that
    no client was told was sent (a second effect of a replay, or a write
    applied though it failed), unless that send's answer was lost; no
    inbox holds another session's direct message. A successful ack shows
    ``acked_at`` for the acking session; ``acked_at`` and ``read`` show only
    where that session's own ack succeeded (or its answer was lost): the
    sessions of a run only peek and ack, and peeking never marks read. A
    session's own broadcast is read for it from the start (never unread),
    and acked too when it asks for acks (a sender owes itself none).
    """
    out = []
    ops = operations(history)
    sessions = set(inboxes)
    sent: dict[str, Op] = {}
    lost_subjects = {(op.session, op.args["subject"]) for op in ops if op.kind == Kind.SEND and op.unknown}
    for op in ops:
        if op.kind == Kind.SEND and op.ok:
            sent[op.body["id"]] = op
    for mid, op in sent.items():
        targets = [op.args["to"]] if op.args["to"] is not None else sorted(sessions - {op.session})
        for t in targets:
            got = inboxes.get(t, {}).get(mid)
            want = (op.session, op.args["subject"], op.args["body"])
            if got is None:
                out.append(Violation("delivery", f"message {mid} acknowledged to {op.session} is not in {t}'s inbox"))
            elif (got["from_session"], got["subject"], got["body"]) != want:
                out.append(Violation("delivery", f"message {mid} in {t}'s inbox is {got}, sent as {want}"))
    for who, inbox in inboxes.items():
        for mid, m in inbox.items():
            if m["from_session"] in sessions and mid not in sent and (m["from_session"], m["subject"]) not in \
                    lost_subjects:
                out.append(Violation("delivery", f"{who}'s inbox holds a message nobody was told was sent: {m}"))
            if not m["broadcast"] and m["to_session"] != who:
                out.append(Violation("delivery", f"{who}'s inbox holds {m['to_session']}'s direct message {mid}"))
    acked = {(op.session, op.args["message_id"]) for op in ops if op.kind == Kind.ACK and op.ok}
    maybe = {(op.session, op.args["message_id"]) for op in ops if op.kind == Kind.ACK and op.unknown}
    for who, mid in acked:
        seen = inboxes.get(who, {}).get(mid)
        if seen is None or seen["acked_at"] is None:
            out.append(Violation("delivery", f"{who} acked {mid} (200) but its inbox shows {seen}"))
    for who, inbox in inboxes.items():
        for mid, m in inbox.items():
            own = m["broadcast"] and m["from_session"] == who  # read (and acked) for its sender from the start
            if m["acked_at"] is not None and (who, mid) not in acked | maybe and not (own and m["requires_ack"]):
                out.append(Violation("delivery", f"{mid} shows acked_at for {who}, which never acked it"))
            if m["read"] and not own and (who, mid) not in acked | maybe:
                out.append(Violation("delivery", f"{mid} shows read for {who}, which only peeked at it"))
    return out


def check_unread(inboxes: dict[str, dict[str, dict[str, Any]]], unread: dict[str, list[dict[str, Any]]],
                 unread_counts: dict[str, int], page: int = 500) -> list[Violation]:
    """Each session's unread view agrees with its whole inbox (contract §2.6; docs/api.md "Messages").

    ``unread`` is the session's ``unread_only=true`` answer (at most
    ``page``, oldest first), ``unread_counts`` its ``unread-count``. Both must
    be exactly what its whole inbox marks unread, its own broadcasts left
    out: reading never consumes, one session's reads and acks never hide a
    message from another, and the hub's per-session broadcast cursor never
    skips an unread broadcast.
    """
    out = []
    for who, inbox in inboxes.items():
        expected = sorted((m for m in inbox.values() if not m["read"] and not (m["broadcast"] and
                                                                               m["from_session"] == who)),
                          key=lambda m: m["seq"])
        if unread_counts[who] != len(expected):
            out.append(Violation("delivery", f"{who}: unread-count says {unread_counts[who]}, its inbox has "
                                             f"{len(expected)} unread"))
        got, want = [m["id"] for m in unread[who]], [m["id"] for m in expected[:page]]
        if got != want:
            out.append(Violation("delivery", f"{who}: the unread list misses {sorted(set(want) - set(got))} and "
                                             f"adds {sorted(set(got) - set(want))} (or the order differs)"))
    return out


def check_server_grants(history: Sequence[Attempt], granted_events: Sequence[dict[str, Any]]) -> list[Violation]:
    """Every ``lease.granted`` the hub logged was answered to some client, unless that claim's answer was lost.

    A grant nobody heard of would be a second effect of a replayed claim (or
    a claim applied although it was refused).
    """
    known = set(leases_of(history))
    lost = {op.session for op in operations(history) if op.kind == Kind.CLAIM and op.unknown}
    return [Violation("idempotency", f"the hub granted a lease no client was told of: {e}")
            for e in granted_events if e["subject_id"] not in known and e["session_id"] not in lost]


def check_live_leases(live: Iterable[dict[str, Any]]) -> list[Violation]:
    """At most one session holds each overlapping set among the live leases the hub lists now."""
    return [Violation("mutual exclusion", f"two live holders at once: {a} and {b}")
            for a, b in combinations(list(live), 2)
            if a["session_id"] != b["session_id"] and overlaps(a["resource"], b["resource"])]


def check_all(history: Sequence[Attempt], *, inboxes: dict[str, dict[str, dict[str, Any]]] | None = None,
              granted_events: Sequence[dict[str, Any]] = (), unanswered_ok: bool = False) -> list[Violation]:
    """Every check above on one history but :func:`check_unread` (delivery only with ``inboxes``)."""
    out = check_answers(history, unanswered_ok=unanswered_ok)
    out += check_mutual_exclusion(history)
    out += check_fences(history, granted_events)
    out += check_conflicts(history)
    out += check_lease_lifetimes(history)
    out += check_idempotency(history)
    out += check_server_grants(history, granted_events)
    if inboxes is not None:
        out += check_delivery(history, inboxes)
    return out


def summary(history: Sequence[Attempt], violations: Sequence[Violation], expiries: int) -> dict[str, int]:
    """Counts for the one-line report: what happened and how much of it was checked."""
    ops = operations(history)
    return {
        "ops": len(ops),
        "attempts": len(history),
        "grants": len(leases_of(history)),
        "conflicts": sum(1 for a in history if a.code == "lease_conflict"),
        "expiries": expiries,
        "renews": sum(1 for op in ops if op.kind == Kind.RENEW and op.ok),
        "force_releases": sum(1 for op in ops if op.kind == Kind.FORCE and op.ok
                              and op.body.get("state") == "revoked"),
        "replays": sum(1 for a in history if a.replayed),
        "messages": sum(1 for op in ops if op.kind == Kind.SEND and op.ok),
        "acks": sum(1 for op in ops if op.kind == Kind.ACK and op.ok and not op.args.get("expect_refusal")),
        "violations": len(violations),
    }
