"""Conversations: seed 004's typed, sequenced, signed turns between projects, held by the hub.

Seed 004's agents talk by dropping org-mode files into each other's
``inbox/from-agents/`` folders; every receiver then runs the same checks on
every file. Here a turn is sent to the hub once, the checks run once, at
send time, and the outcome is recorded with the turn (issue 9):

====================================================  ===========
check (seed 004's receiver order)                      decision
====================================================  ===========
frontmatter missing or malformed, unknown type         refused (422, nothing recorded)
a ``release`` when the newest turn is one (hub's rule)  ``dedup`` (the standing release: released once)
``PROTOCOL_VERSION`` other than :data:`~coordhub.core.orgturn.PROTOCOL_VERSION`   ``query``
a signature that does not verify against the author's registered keys   ``reject``
an identical retry (same conversation, author, content hash, destination)   ``dedup`` (the first turn's answer)
``REQUIRES_TOOLS`` the destination has not declared    ``query`` (only when it declared its tools)
otherwise                                              ``process``
====================================================  ===========

``query`` and ``reject`` turns are recorded, visible to their author (with
the reason) and admins, and never shown to the receiver as work. Accepted
(``process``) turns take the conversation's next **sequence** in the same
transaction as the insert, so sequences are gapless and unique however many
senders race (the seed let authors choose them, and two writers collided).

**Addressing** is seed 004's ``<machine>.<project>``
(:mod:`coordhub.core.addressing`); signatures are checked against the
author's registered keys (:mod:`coordhub.core.signingkeys`); what a
conversation and a session may store is bounded
(:mod:`coordhub.core.turnbounds`); a turn's form and JSON shape are
:mod:`coordhub.core.turns`.

**Pending** (seed 004): a turn is pending for its destination until a
``release`` turn follows it in its conversation.

**Parties.** Anyone may open a conversation (its first turn); after that it
accepts turns, releases and reads only from its parties: the sessions whose
address sent or received one of its accepted turns, the session that opened
it, and admins. A party brings a new address in by sending it a turn (seed
004: a file reaches whoever it is addressed to). Anyone else's turns and
releases are answered 404, and its reads exactly as for an id nobody used
(``next-sequence`` 1 included). Ids are first come, first served (seed 004):
whoever sends an id's first turn opens that conversation.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import addressing, events, orgturn, paging, turnbounds, turns
from coordhub.core.events import emit
from coordhub.core.hub import WithStatus
from coordhub.core.identity import Actor, orchestrator_role
from coordhub.core.turns import DEDUP, PROCESS, QUERY, REJECT, Draft
from coordhub.core.vocab import ConversationState, one_of, values
from coordhub.errors import Conflict, Forbidden, Invalid, NotFound
from coordhub.openpgp import Verdict
from coordhub.store.base import Row
from coordhub.store.tables.records import Key
from coordhub.store.tx import Tx

MAX_PAGE = 1000
SHOW_PAGE = 100                         # turns per page of a conversation, by default
SHOW_BYTES = 4 * 2**20                  # about this much stored text per page (at least one turn)
UNSHOWN_TEXT = ("title", "body", "content", "signature", "reason", "requires_tools")  # what paging counts of a turn
BY_ID: Key = (("id", int, False),)     # the order of the machine's turns and of an inbox: by id, oldest first
_LONE_CR = re.compile(r"\r(?!\n)")     # a line end of an unsigned file that is not CRLF's
VERIFIES = Verdict(valid=True)          # what a screen assumes of a signature it has not checked (screen)


class SequenceTaken(Conflict):
    """``expect_sequence`` is not the sequence the hub would assign (409; ``next_sequence`` says which it is)."""

    code = "sequence_taken"


def _own_address(tx: Tx, actor: Actor, d: Draft, now: float, *, declare: bool = True) -> tuple[str, str]:
    """The actor's address after the send's declaration (``from_machine``/``from_project``), which ``declare``
    writes; without it, only what it would be."""
    if d.from_machine is not None or d.from_project is not None:
        if declare:
            p = addressing.set_profile(tx, actor, machine=d.from_machine, project=d.from_project, now=now)
        else:
            _, machine, project = addressing.declared(tx, actor, machine=d.from_machine, project=d.from_project)
            p = {"machine": machine, "project": project}
    else:
        p = addressing.profile(tx, actor)
    if p["machine"] is None or p["project"] is None:
        raise Invalid(f"{actor.session_id} has no conversation address yet: declare its machine and project "
                      "(`coord conv profile`, or from_machine/from_project on the send)", field="from_project")
    return p["machine"], p["project"]


def _pending(tx: Tx, row: Row) -> bool:
    if row["decision"] != PROCESS or row["type"] == "release":
        return False
    conv = tx.conversations.get(row["conversation_id"])
    return conv is not None and row["sequence"] > conv["last_release"]


def _decide(tx: Tx, d: Draft, author: str, verdict: Verdict | None, to: tuple[str, str],
            own: Row | None = None) -> tuple[str, str | None]:
    """The decision for a well-formed turn, in seed 004's receiver order (see the module docstring).

    ``own``: the author's session row as the send would leave it, when not yet written (:func:`screen`)."""
    turn = d.turn
    if turn.protocol_version != orgturn.PROTOCOL_VERSION:
        return QUERY, f"PROTOCOL_VERSION mismatch: expected {orgturn.PROTOCOL_VERSION}, got {turn.protocol_version}"
    if verdict is not None and not verdict.valid:
        return REJECT, f"signature does not verify against {author}'s registered keys: {verdict.reason}"
    if turn.requires_tools:
        rows = tx.conversations.at_address(*to)
        if own is not None:
            rows = [r for r in rows if r["session_id"] != author]
            rows += [own] if (own.get("machine"), own.get("project")) == to else []
        # Only a declaration says what a machine lacks: where no session declared its tools (`coord conv tools
        # set`) the hub cannot tell, and the turn is delivered for the receiver's `cross-agent-recv` to decide, as
        # seed 004's receiver did (review, seed-004 user run: git installed but never declared was refused at send).
        lists = [addressing.tools_of(row) for row in rows if row.get("tools") is not None]
        declared = {t for tools in lists for t in tools}
        missing = [t for t in turn.requires_tools if t not in declared]
        if lists and missing:
            return QUERY, f"required tools unavailable: {', '.join(missing)}"
    return PROCESS, None


@dataclasses.dataclass(frozen=True)
class _Checked:
    """A send that passed its checks: what recording it takes."""

    machine: str
    project: str
    conv: Row | None
    to_machine: str
    to_project: str
    sha: str
    decision: str
    reason: str | None
    sequence: int | None
    content: str
    body: str
    body_in_content: int
    size: int
    first_today: bool  # the author's first turn stored this UTC day (turnbounds.check)


def _check(tx: Tx, actor: Actor, d: Draft, verdict: Verdict | None, now: float, *,
           declare: bool = True) -> _Checked | WithStatus:
    """The checks of :func:`send`, in its order: what to record, or the answer of a retry (200, ``dedup``).

    Raises what :func:`send` raises. Without ``declare`` it writes nothing (the send's declaration of its
    address is assumed, not written)."""
    _worker_may_not_send(actor)
    turns.check_clock(d.turn, now)
    machine, project = _own_address(tx, actor, d, now, declare=declare)
    own = None if declare else {**(tx.sessions.get(actor.session_id) or {}), "machine": machine, "project": project}
    turn = d.turn
    conv = tx.conversations.get(turn.conversation_id)
    if conv is not None and not _takes_part(tx, actor, conv, f"{machine}.{project}"):
        raise NotFound(_unseen(turn.conversation_id, actor))
    if turn.type == "release" and conv is not None and 0 < conv["last_sequence"] == conv["last_release"]:
        # Released already: the release that did it, not a second one, whatever form this one came in and whoever
        # sent it. Checked here, in the write's transaction (one writer at a time, on PostgreSQL across hubs), so
        # two releases racing end as they would one after the other: `coord conv release --sign` read the
        # conversation open, signed sequence N, met 409 sequence_taken from the other release, re-signed N+1 and
        # recorded a second release (review, seed-004 user run).
        done = tx.conversations.at_sequence(turn.conversation_id, conv["last_release"])
        if done is not None:
            return WithStatus(200, turns.render(done, pending=False, decision=DEDUP))
    to_machine, to_project = addressing.split_address(d.to)
    if to_machine == addressing.LOCAL:
        to_machine = machine
    to = f"{to_machine}.{to_project}"
    # the author's own address is always declared once the send wrote it; a screen has not written it yet
    if (to_machine, to_project) != (machine, project) and not tx.conversations.declared(to_machine, to_project):
        known = addressing.known(tx)
        raise addressing.UnknownDestination(f"destination {to} not found; known destinations: "
                                            f"{', '.join(known) or '(none)'}", field="to", known=known)
    sha = turn.sha256()
    decision, reason = _decide(tx, d, actor.session_id, verdict, (to_machine, to_project), own)
    if decision == PROCESS and (verdict is None or verdict.valid):
        # the same file to another address is a new turn for that address, not a retry (review)
        first = tx.conversations.same_content(turn.conversation_id, actor.session_id, sha, to)
        if first is not None:
            return WithStatus(200, turns.render(first, pending=_pending(tx, first), decision=DEDUP))
    sequence = None
    content = d.content
    if decision == PROCESS:
        sequence = (conv["last_sequence"] if conv else 0) + 1
        if d.expect_sequence is not None and d.expect_sequence != sequence:
            raise SequenceTaken(f"sequence {d.expect_sequence} of {turn.conversation_id} is not next: the hub "
                                f"assigns {sequence}; renumber (and re-sign) and send again",
                                next_sequence=sequence)
        if d.signature is not None and turn.sequence != sequence:
            raise SequenceTaken(f"the signed file says SEQUENCE {turn.sequence}, but the hub assigns {sequence} in "
                                f"{turn.conversation_id}: a signed file is kept byte for byte, so its SEQUENCE must be "
                                "the one it gets; renumber, re-sign and send again", field="SEQUENCE",
                                next_sequence=sequence, stated_sequence=turn.sequence)
        if d.signature is None:  # unsigned: the stored file says what the hub decided
            # a lone CR ends a line for the parser (orgturn.split) but not for with_key, which then took the
            # frontmatter for one line and appended SEQUENCE after the body: the file kept the sender's (review)
            content = orgturn.with_key(orgturn.with_key(_LONE_CR.sub("\n", content), "SEQUENCE", str(sequence)),
                                       "TIMESTAMP", turn.timestamp_utc)
    body, body_in_content = turns.body_storage(content, turn.body)
    size = len(content.encode("utf-8")) + len(body.encode("utf-8"))
    first_today = turnbounds.check(tx, actor, conv, size, now, release=decision == PROCESS and turn.type == "release")
    return _Checked(machine, project, conv, to_machine, to_project, sha, decision, reason, sequence, content, body,
                    body_in_content, size, first_today)


def _worker_may_not_send(actor: Actor) -> None:
    """Refuse (403) a turn from an orchestrator worker.

    A turn goes to an address (``machine.project``), and every session declared there, other workers included,
    has it put into its agent's context by its hooks: one prompt-injected worker could instruct them all, as a
    broadcast could (review; :func:`coordhub.core.messages.send` holds workers to the same rule for messages).
    Conversations are the parties' sessions' business; a worker reports through its assignment.
    """
    if orchestrator_role(actor.session_id) == "worker":
        raise Forbidden("an orchestrator worker may not send conversation turns: every session at the address "
                        "would have it put into its agent's context; report through the assignment, or message "
                        "a person's session", field="to", acting_as=actor.session_id)


def screen(tx: Tx, actor: Actor, d: Draft, now: float) -> None:
    """Raise what :func:`send` would refuse the turn with were its signature to verify; read only.

    What a signed send runs before ``gpg`` (``POST …/turns``): a turn refused for any reason but its signature
    (no address, not a party, an unknown destination, a sequence that is not next, a bound passed) is refused
    without checking the signature, with that reason's error. A turn that also fails the signature so gets the
    other check's error (a turn recorded as ``reject`` passed every other check). When it raises nothing,
    :func:`send` still makes every check itself, in the write's transaction.
    """
    _check(tx, actor, d, VERIFIES, now, declare=False)


def send(tx: Tx, actor: Actor, d: Draft, verdict: Verdict | None, now: float) -> WithStatus:
    """Record a turn from the actor and decide it; return the turn with its HTTP status.

    ``verdict`` is the signature check made before the transaction
    (:func:`coordhub.openpgp.verify` against
    :func:`~coordhub.core.signingkeys.armored_keys` of the actor), None when
    the turn is unsigned or the actor registered no key. Status 201 for a
    recorded turn (any decision), 200 for a dedup (the body is the first
    turn, ``decision`` ``dedup``). Raises
    :class:`~coordhub.core.addressing.UnknownDestination`,
    :class:`SequenceTaken`, ``Invalid``.
    """
    checked = _check(tx, actor, d, verdict, now)
    if isinstance(checked, WithStatus):
        return checked
    c, turn = checked, d.turn
    machine, project, to_machine, to_project, sequence = c.machine, c.project, c.to_machine, c.to_project, c.sequence
    to, decision, reason = f"{to_machine}.{to_project}", c.decision, c.reason
    pending = False
    if sequence is not None:
        if c.conv is None:
            tx.conversations.create({"conversation_id": turn.conversation_id, "title": turn.title,
                                     "project": project, "created_by": actor.session_id, "created_at": now,
                                     "updated_at": now, "last_sequence": 0, "last_release": 0})
        tx.conversations.advance(turn.conversation_id, sequence, turn.type == "release", now, c.size)
        pending = turn.type != "release"  # nothing released it yet: it is the newest turn
    row: Row = {"conversation_id": turn.conversation_id, "sequence": sequence, "type": turn.type,
                "author": actor.session_id, "from_address": f"{machine}.{project}", "to_address": to,
                "to_machine": to_machine, "created_at": now, "stated_timestamp": turn.timestamp,
                "stated_sequence": turn.sequence, "protocol_version": turn.protocol_version,
                "requires_tools": json.dumps(list(turn.requires_tools)), "title": turn.title, "body": c.body,
                "content": c.content, "content_sha256": c.sha, "signature": d.signature,
                "signer": verdict.fingerprint if verdict is not None and verdict.valid else None,
                "decision": decision, "reason": reason, "size": c.size, "body_in_content": c.body_in_content}
    row["id"] = tx.conversations.add_turn(row)
    if c.conv is not None and sequence is None:  # a refused turn of an existing conversation (advance counts the rest)
        tx.conversations.count_turn(turn.conversation_id, c.size)
    tx.turn_quota.charge(actor.session_id, int(now // turnbounds.DAY), c.size, first=c.first_today)
    # seen by the parties only: the author, and the sessions of the machine it is addressed to (which read that
    # machine's turns anyway: GET …/turns), not by every session (ids and titles are the parties' business)
    parties = events.MACHINE_TARGET + to_machine
    if decision == PROCESS:
        emit(tx, "conversation.turn", now, session_id=actor.session_id, project_key=to_project,
             subject_id=turn.conversation_id, target=parties, id=row["id"], conversation_id=turn.conversation_id,
             sequence=sequence, type=turn.type, to=to, **{"from": row["from_address"]},
             file_name=turns.file_name(row), title=turn.title)
        if turn.type == "release":
            emit(tx, "conversation.released", now, session_id=actor.session_id, project_key=to_project,
                 subject_id=turn.conversation_id, target=parties, conversation_id=turn.conversation_id,
                 sequence=sequence)
    else:
        emit(tx, "conversation.refused", now, session_id=actor.session_id, project_key=to_project,
             subject_id=turn.conversation_id, target=actor.session_id, id=row["id"],
             conversation_id=turn.conversation_id, decision=decision, reason=reason, to=to)
    return WithStatus(201, turns.render(row, pending=pending))


def send_unverified(tx: Tx, actor: Actor, *, now: float, draft: dict[str, Any]) -> WithStatus:
    """:func:`send` of a turn with no signature verdict (unsigned, or its author registered no key), from the draft
    as plain data (:meth:`Draft.plain`): the form a :class:`~coordhub.core.calls.Call` carries to the writer
    process (issue 15). A verdict is an object the link does not carry, so a verified turn stays a closure."""
    return send(tx, actor, Draft.from_plain(draft), None, now)


# ---- parties and reads ------------------------------------------------------------------------

def _takes_part(tx: Tx, actor: Actor, conv: Row, address: str | None) -> bool:
    """Whether the actor is a party to an existing conversation: an admin, the session that opened it, or a
    session whose ``address`` sent or received one of its accepted turns."""
    if actor.is_admin or conv["created_by"] == actor.session_id:
        return True
    return address is not None and tx.conversations.takes_part(conv["conversation_id"], address)


def _unseen(conversation_id: str, actor: Actor) -> str:
    """The one 404 message for a conversation that does not exist and one the actor takes no part in."""
    return f"no conversation {conversation_id[:140]!r} for {actor.session_id}"


def _may_see(tx: Tx, actor: Actor, row: Row) -> bool:
    if actor.is_admin or row["author"] == actor.session_id:
        return True
    if row["decision"] != PROCESS:
        return False
    mine = addressing.address_of(tx, actor.session_id)
    return mine is not None and tx.conversations.takes_part(row["conversation_id"], mine)


def turn(tx: Tx, actor: Actor, turn_id: int) -> dict[str, Any]:
    """One turn the actor may see (its author, a participant address, an admin); 404 otherwise."""
    row = tx.conversations.turn(turn_id)
    if row is None or not _may_see(tx, actor, row):
        raise NotFound(f"no turn {turn_id} for {actor.session_id}")
    return turns.render(row, pending=_pending(tx, row))


def _render_conversation(tx: Tx, conv: Row, participants: list[str] | None = None,
                         pending: int | None = None) -> dict[str, Any]:
    """A conversation's summary: its row, its participants and its pending count, all without reading a turn's
    text. A listing passes ``participants`` and ``pending`` read for the whole page at once (two reads, not two per
    conversation: the dashboard reads the list again on every conversation event)."""
    released = conv["last_release"] == conv["last_sequence"]
    cid = conv["conversation_id"]
    return {"conversation_id": cid, "title": conv["title"], "project": conv["project"],
            "state": "released" if released else "open",
            "participants": tx.conversations.participants(cid) if participants is None else participants,
            "last_sequence": conv["last_sequence"],
            "pending": tx.conversations.pending_in(cid, int(conv["last_release"])) if pending is None else pending,
            "created_by": conv["created_by"],
            "created_at": isoformat(conv["created_at"]), "updated_at": isoformat(conv["updated_at"])}


def listing(tx: Tx, actor: Actor, *, state: str | None = None, project: str | None = None,
            limit: int = 100) -> list[dict[str, Any]]:
    """Conversations the actor takes part in (all for an admin), most recently updated first."""
    if state is not None and state not in values(ConversationState):
        raise Invalid(f"state must be {one_of(ConversationState)}", field="state")
    party = None if actor.is_admin else (actor.session_id, addressing.address_of(tx, actor.session_id))
    rows = tx.conversations.listing(min(max(limit, 1), MAX_PAGE), state, project, party)
    ids = [str(conv["conversation_id"]) for conv in rows]
    participants, pending = tx.conversations.participants_of(ids), tx.conversations.pending_of(ids)
    return [_render_conversation(tx, conv, participants[cid], pending[cid])
            for conv, cid in zip(rows, ids, strict=True)]


def show(tx: Tx, actor: Actor, conversation_id: str, *, after: int = 0, limit: int = SHOW_PAGE) -> dict[str, Any]:
    """A conversation and one page of its turns: accepted ones and the actor's own refused ones, by id (the order
    the hub recorded them, which is sequence order for accepted turns), those with id above ``after``.

    At most ``limit`` turns and about :data:`SHOW_BYTES` of text per page (at least one turn);
    ``next_after`` is the cursor of the next page (the last id answered), None on the last page;
    ``release_to`` the address the actor's release goes to by default (:func:`release_draft`; a client that
    signs its release turn sends it there), None when there is none. 404 when
    the conversation does not exist or the actor is no party to it, unless it wrote refused turns under that
    id before anyone opened it (it sees those).
    """
    limit = min(max(limit, 1), MAX_PAGE)
    conv = tx.conversations.get(conversation_id)
    if conv is None:  # only refused turns so far: their author sees them
        if not tx.conversations.authored(conversation_id, actor.session_id):
            raise NotFound(_unseen(conversation_id, actor))
        rows, more = tx.conversations.page(conversation_id, actor.session_id, after, limit, SHOW_BYTES,
                                           only_author=True)
        first = tx.conversations.page(conversation_id, actor.session_id, 0, 1, SHOW_BYTES, only_author=True)[0]
        return {"conversation_id": conversation_id, "title": first[0]["title"] if first else conversation_id,
                "project": None, "state": "open", "participants": [], "last_sequence": 0, "pending": 0,
                "created_by": actor.session_id, "created_at": isoformat(first[0]["created_at"]) if first else None,
                "updated_at": isoformat(rows[-1]["created_at"]) if rows else None,
                "turns": [turns.render(r) for r in rows], "next_after": rows[-1]["id"] if more and rows else None,
                "release_to": None}
    mine = addressing.address_of(tx, actor.session_id)
    if not _takes_part(tx, actor, conv, mine):
        raise NotFound(_unseen(conversation_id, actor))
    rows, more = tx.conversations.page(conversation_id, actor.session_id, after, limit, SHOW_BYTES)
    return {**_render_conversation(tx, conv), "release_to": tx.conversations.last_other_party(conversation_id, mine),
            "turns": [turns.render(r, pending=r["decision"] == PROCESS and r["type"] != "release"
                                   and r["sequence"] > conv["last_release"]) for r in rows],
            "next_after": rows[-1]["id"] if more and rows else None}


def title(tx: Tx, actor: Actor, conversation_id: str) -> str | None:
    """The conversation's title (its first turn's ``#+TITLE``) for a party to it, else None, as for an unused id: the
    title a field-form turn that names none takes (seed 004's agents repeat a conversation's title in each file)."""
    conv = tx.conversations.get(conversation_id)
    if conv is None or not _takes_part(tx, actor, conv, addressing.address_of(tx, actor.session_id)):
        return None
    return str(conv["title"])


def next_sequence(tx: Tx, actor: Actor, conversation_id: str) -> int:
    """The sequence the next accepted turn of a conversation will get: 1 for a new one, and 1 for a conversation
    the actor is no party to, exactly as for an id nobody used.

    A read must not tell an outsider which ids exist (review: it answered 404 for a conversation and 1 for an
    unused id, a free existence oracle); an outsider's send into the id is still refused (404), as ids are
    first come, first served (seed 004).
    """
    conv = tx.conversations.get(orgturn.check_conversation_id(conversation_id))
    if conv is None or not _takes_part(tx, actor, conv, addressing.address_of(tx, actor.session_id)):
        return 1
    return int(conv["last_sequence"]) + 1


def _address_for(tx: Tx, actor: Actor, address: str | None) -> str:
    if address is None:
        mine = addressing.address_of(tx, actor.session_id)
        if mine is None:
            raise Invalid(f"{actor.session_id} has no conversation address: declare one (`coord conv profile`) "
                          "or name it", field="address")
        return mine
    machine, project = addressing.split_address(address, "address")
    if machine == addressing.LOCAL:
        own = tx.sessions.get(actor.session_id) or {}
        machine = own.get("machine") or machine
    addr = f"{machine}.{project}"
    if not actor.is_admin and addr != addressing.address_of(tx, actor.session_id):
        raise Forbidden(f"{addr} is not {actor.session_id}'s address: only its own sessions (or an admin) "
                        "read its inbox", field="address")
    return addr


def inbox(tx: Tx, actor: Actor, address: str | None = None, limit: int = 100,
          after: int = 0) -> tuple[list[dict[str, Any]], int | None]:
    """Pending turns to the actor's address (or, for an admin, any address) with id above ``after``, oldest first,
    and the ``after`` of the next page (None: none follows).

    At most ``limit`` turns and about :data:`~coordhub.core.paging.PAGE_BYTES` of their :data:`UNSHOWN_TEXT` as
    encoded (at least one), read in batches (:func:`~coordhub.core.paging.take`): a turn may be 256 KiB, and
    1,000 of them made one answer of 300 MB (review).
    """
    if address is None and actor.is_admin and addressing.address_of(tx, actor.session_id) is None:
        return [], None  # an admin without an address has no inbox of its own; it names one with ``address``
    addr = _address_for(tx, actor, address)

    def find(k: int, last: tuple[Any, ...] | None) -> list[Row]:
        return [turns.render(r, pending=True) for r in tx.conversations.pending_to(addr, k, int(last[0]) if last
                                                                                    else 0)]

    return _paged(find, min(max(limit, 1), MAX_PAGE), after)


def _paged(find: Callable[[int, tuple[Any, ...] | None], list[Row]], limit: int,
           after: int) -> tuple[list[dict[str, Any]], int | None]:
    """One page of rendered turns by id after ``after`` (``find(k, (last id,))``), and the next page's ``after``."""
    rows, more = paging.take(paging.keyed(find, BY_ID, (after,)), limit, UNSHOWN_TEXT, paging.PAGE_BYTES)
    return rows, (int(rows[-1]["id"]) if more and rows else None)


def unshown(tx: Tx, actor: Actor, limit: int, now: float, budget: int = paging.PAGE_BYTES, *,
            first: bool = True) -> dict[str, Any]:
    """Pending turns to the actor's address its agent has not been shown yet (oldest first), now marked shown.

    What the prompt and post-tool-use hooks inject, under their cap, with the
    unread messages (``POST /messages/unshown``). At most ``limit`` turns
    (0: none) and about ``budget`` bytes of their :data:`UNSHOWN_TEXT` as
    encoded, read in batches (:func:`~coordhub.core.paging.take`); at least
    one unless ``first`` is false (the messages of the same answer used its
    budget). Only what is answered is marked shown; ``more`` counts the ones
    left for next time, still unshown (at most :data:`MAX_PAGE` are counted;
    no turn text is read to count them).
    """
    row = tx.sessions.get(actor.session_id)
    addr = addressing.address_of(tx, actor.session_id)
    if row is None or addr is None:
        return {"turns": [], "more": 0}
    cursor = int(row["turns_shown"])

    def fetch(k: int, last: Row | None) -> list[Row]:
        after = cursor if last is None else int(last["id"])
        return [turns.render(r, pending=True) for r in tx.conversations.pending_to(addr, k, after)]

    shown, more = paging.take(fetch, limit, UNSHOWN_TEXT, budget, first=first) if limit > 0 else ([], True)
    if shown:
        cursor = int(shown[-1]["id"])
        tx.conversations.set_turns_shown(actor.session_id, cursor)
    # no count when nothing was left out
    return {"turns": shown, "more": tx.conversations.pending_count(addr, cursor, MAX_PAGE) if more else 0}


def for_machine(tx: Tx, actor: Actor, machine: str | None, after: int,
                limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """Accepted turns to any project on ``machine`` (default: the actor's) with id above ``after``, oldest first,
    and the ``after`` of the next page (None: none follows).

    What ``coord conv sync`` pages through. At most ``limit`` turns and about
    :data:`~coordhub.core.paging.PAGE_BYTES` of their :data:`UNSHOWN_TEXT` as
    encoded (at least one), read in batches: 600 turns of 256 KiB made one
    answer of 302 MB (review). A non-admin reads only its own declared machine.
    """
    own = (tx.sessions.get(actor.session_id) or {}).get("machine")
    want = own if machine is None or machine == addressing.LOCAL else addressing.name(machine, "to_machine")
    if want is None and not actor.is_admin:
        raise Invalid(f"{actor.session_id} has no machine declared: declare one (`coord conv profile`)",
                      field="to_machine")
    if not actor.is_admin and want != own:
        raise Forbidden(f"machine {want!r} is not {actor.session_id}'s", field="to_machine")
    releases: dict[str, int] = {}

    def find(k: int, last: tuple[Any, ...] | None) -> list[Row]:
        after_id = int(last[0]) if last else 0
        # an admin naming no machine (and declaring none) reads every machine's turns
        rows = tx.conversations.to_machine(want, after_id, k) if want else tx.conversations.accepted(after_id, k)
        out = []
        for r in rows:
            if r["conversation_id"] not in releases:
                conv = tx.conversations.get(r["conversation_id"])
                releases[r["conversation_id"]] = conv["last_release"] if conv else 0
            out.append(turns.render(r, pending=r["type"] != "release"
                                    and r["sequence"] > releases[r["conversation_id"]]))
        return out

    return _paged(find, min(max(limit, 1), MAX_PAGE), after)


def status(tx: Tx, actor: Actor, machine: str | None, now: float, halt_active: bool) -> dict[str, Any]:
    """Seed 004's ``cross-agent-status --json``: per project on ``machine`` (default: the actor's), pending first.

    ``most_recent`` is the newest pending turn's file name and age in seconds. A non-admin asks of its own
    declared machine only (403 for another, as ``GET …/turns``: :func:`addressing.sees_pending`); a session with
    none declared gets the empty answer of no machine.
    """
    own = (tx.sessions.get(actor.session_id) or {}).get("machine")
    want = own if machine is None or machine == addressing.LOCAL else addressing.name(machine, "machine")
    if want is not None and not addressing.sees_pending(tx, actor, want):
        mine = f"whose machine is {own!r}" if own else "which declared no machine"
        raise Forbidden(f"the pending turns of machine {want!r} are seen only by its own sessions and admins; this "
                        f"token acts as {actor.session_id!r}, {mine}", field="machine")
    projects = sorted({r["project"] for r in tx.conversations.addresses() if r["machine"] == want})
    counts = {r["to_address"]: r for r in tx.conversations.pending_counts([f"{want}.{p}" for p in projects])}
    rows = []
    for p in projects:
        c = counts.get(f"{want}.{p}")
        newest = tx.conversations.turn(int(c["newest"])) if c else None
        rows.append({"name": p, "pending_count": int(c["pending"]) if c else 0,
                     "most_recent": {"filename": turns.file_name(newest),
                                     "age_seconds": int(now - newest["created_at"])}
                     if newest else None})
    rows.sort(key=lambda r: (-r["pending_count"], r["name"]))
    return {"scanned_at": isoformat(now), "machine": want, "halt_active": halt_active, "projects": rows}


def release_draft(tx: Tx, actor: Actor, conversation_id: str, *, to: str | None, release_status: str | None,
                  body: str | None, now: float) -> Draft:
    """A release turn for a conversation (field form); ``to`` defaults to the other party of its last turn that
    has one (its sender, or the address it was sent to: an unanswered request is released to its destination).
    A conversation released already answers its release (200 ``dedup``) whatever ``to`` says."""
    conv = tx.conversations.get(orgturn.check_conversation_id(conversation_id))
    mine = addressing.address_of(tx, actor.session_id)
    if conv is None or not _takes_part(tx, actor, conv, mine):
        raise NotFound(_unseen(conversation_id, actor))
    if to is None:
        to = tx.conversations.last_other_party(conversation_id, mine)
        if to is None:
            raise Invalid("no other party wrote in this conversation or was written to: name the destination "
                          "(`to`)", field="to")
    return turns.draft(to=to, conversation_id=conversation_id, type="release", title=conv["title"],
                       body=body or turns.RELEASE_BODY, release_status=release_status or "complete", now=now)
