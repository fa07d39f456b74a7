"""``coord conv import``: seed-004 message files (an inbox's history, a machine not yet migrated) into the hub.

Each ``.org`` file is checked here first (:func:`coordhub.core.orgturn.parse`:
a file that is not a message gets an ``error`` naming the problem and is never
sent), then sent as a file-form turn with its ``<file>.asc`` when present, so
the hub runs its receiver checks and answers a decision: ``process``,
``dedup`` (already imported: importing the same files again changes nothing),
``query`` or ``reject`` with the reason. A file that already is a turn at the
hub, sent by its author (one ``coord conv sync`` wrote into the inbox), is not
sent again: it is ``dedup`` naming that turn (:class:`HubTurns`).

**Destination.** A file found in project P's inbox on this machine was sent to
this machine's P, so that is its ``to``: the project is the one whose inbox
folder holds it (:meth:`coordhub.compat.inboxes.Inboxes.project_of`: a
configured ``inbox_path``, else ``…/<P>/inbox/from-agents/``), else the
caller's own project; ``--to`` overrides. The author is the caller (identity
comes from the token), so a signed file is accepted only if its key is one the
caller registered (``coord conv keys add``); ``--unsigned`` imports the text
without the ``.asc``.

In a folder every regular file is looked at, in name order, except staging
files (``.tmp.*``) and the ``.asc`` beside a ``.org``; anything else is
reported as an ``error`` and left alone, a symbolic link too (message or
``.asc``): it may lead out of the folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from coordhub.client import address
from coordhub.compat.inboxes import Inboxes
from coordhub.compat.orgfiles import TMP_PREFIX, read_capped
from coordhub.core import orgturn
from coordhub.errors import Invalid

DECISIONS = ("process", "dedup", "query", "reject", "error")
# A symlink in an inbox (rsync keeps them) could point at any file of the user's, another project's messages
# too, which an import would send to the hub as theirs; the seed's senders only ever wrote regular files.
REGULAR_ONLY = "(seed-004 senders write regular files)"


@dataclass(frozen=True)
class Outcome:
    """What became of one file."""

    file: str
    decision: str  # one of DECISIONS
    reason: str | None = None
    to: str | None = None
    turn_id: int | None = None
    conversation_id: str | None = None
    sequence: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def files_in(path: Path) -> list[Path]:
    """The files an import of ``path`` looks at (see the module docstring); ``FileNotFoundError`` if none is there."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or directory")
    names = {p.name for p in path.iterdir()}
    return [p for p in sorted(path.iterdir()) if (p.is_file() or p.is_symlink()) and not p.name.startswith(TMP_PREFIX)
            and not (p.name.endswith(".org.asc") and p.name.removesuffix(".asc") in names)]


def read(path: Path, unsigned: bool) -> tuple[str, str | None]:
    """``(text, signature)`` of a message file, checked; ``Invalid`` saying why it cannot be imported."""
    if path.name.endswith(".asc"):
        raise Invalid("a signature without its .org message file")
    if path.suffix != ".org":
        raise Invalid("not a seed-004 message file (*.org)")
    if path.is_symlink():
        raise Invalid(f"a symbolic link: not imported {REGULAR_ONLY}")
    try:
        text = orgturn.decode(read_capped(path, orgturn.MAX_CONTENT_BYTES, "message file"))
    except OSError as exc:
        raise Invalid(f"cannot read: {exc.strerror or exc}") from None
    orgturn.parse(text)
    sig_path = path.with_name(path.name + ".asc")
    if not unsigned and sig_path.is_symlink():
        raise Invalid(f"{sig_path.name} is a symbolic link: not imported {REGULAR_ONLY}")
    if unsigned or not sig_path.is_file():
        return text, None
    try:
        signature = read_capped(sig_path, orgturn.MAX_SIGNATURE_BYTES, "signature file").decode("utf-8")
    except Invalid as exc:
        raise Invalid(f"{sig_path.name}: {exc.message}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid(f"cannot read its signature {sig_path.name}: {exc}") from None
    try:
        orgturn.check_signature(signature)
    except Invalid as exc:
        raise Invalid(f"{sig_path.name}: {exc.message}") from None
    return text, signature


def destination(path: Path, inboxes: Inboxes, machine: str, own_project: str | None, to: str | None) -> str:
    """The address a file is imported to (see the module docstring); ``Invalid`` when none can be told."""
    if to:
        try:
            return str(address.parse(to, machine))
        except ValueError as exc:
            raise Invalid(str(exc)) from None
    found = inboxes.project_of(path.parent)
    try:
        project = address.part(found) if found else own_project
    except ValueError:
        project = own_project
    if not project:
        raise Invalid("cannot tell which project's inbox this is: not in …/<project>/inbox/from-agents/ nor a "
                      "configured inbox_path, and you are in no project; give --to MACHINE.PROJECT")
    return f"{machine}.{project}"


class HubTurns:
    """The accepted turns the hub already holds, by conversation: what an import must not send a second time.

    An inbox that ``coord conv sync`` wrote into (or that a migrated machine
    rsynced from one) holds files that *are* turns at the hub, sent by their
    authors. Sent again by the importer they would be new turns (the hub's
    dedup is per author), so the conversation would hold each one twice and
    its receiver would see them pending again. A file is such a turn when an
    accepted turn of its conversation has its canonical SHA-256
    (:meth:`coordhub.core.orgturn.Turn.sha256`, the hub's ``content_sha256``)
    and its destination. ``read(conversation_id)`` is the client's
    :meth:`~coordhub.client.conversations.ConversationCalls.conversation_turns`;
    each conversation is read once (a conversation the caller takes no part
    in, 404, has none the caller could be sending again).
    """

    def __init__(self, read: Callable[[str], list[Any]]) -> None:
        self._read = read
        self._known: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}

    def _of(self, conversation_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        from coordhub.client import HubError

        known = self._known.get(conversation_id)
        if known is None:
            try:
                turns = self._read(conversation_id)
            except HubError as exc:
                if exc.status != 404:
                    raise
                turns = []
            known = {}
            for t in turns:
                self.add(t, known)
            self._known[conversation_id] = known
        return known

    @staticmethod
    def add(turn: Any, known: dict[tuple[str, str], dict[str, Any]]) -> None:
        """Remember ``turn`` (an answer of the hub) in ``known`` when it is accepted (it has a sequence)."""
        if isinstance(turn, dict) and turn.get("sequence") is not None and isinstance(turn.get("content_sha256"), str):
            known.setdefault((turn["content_sha256"], str(turn.get("to"))), turn)

    def find(self, conversation_id: str, sha256: str, to: str) -> dict[str, Any] | None:
        """The accepted turn of ``conversation_id`` with canonical hash ``sha256`` sent to ``to``, else None."""
        return self._of(conversation_id).get((sha256, to))

    def sent(self, turn: Any) -> None:
        """Remember a turn this import just sent."""
        if isinstance(turn, dict) and isinstance(turn.get("conversation_id"), str):
            self.add(turn, self._of(turn["conversation_id"]))


def import_files(paths: list[Path], send: Callable[[str, str, str | None], Any],
                 where: Callable[[Path], str], unsigned: bool, held: HubTurns | None = None) -> list[Outcome]:
    """Import each file: ``send(to, text, signature)`` is the client's file-form send (it raises ``HubError``).

    A file that is a turn the hub already holds (``held``, see
    :class:`HubTurns`) is not sent: it is ``dedup``, naming that turn.

    A refusal by the hub (4xx) is that file's ``error``; ``Unreachable`` is
    not caught (nothing more can be imported). A signed file refused for its
    ``SEQUENCE`` (409 ``sequence_taken``) is history its author signed, whose
    numbers the hub's cannot follow (an inbox holds one side's turns only):
    its error says to import it with ``--unsigned`` (review: it said to
    re-sign, which an importer cannot do for another's file).
    """
    from coordhub.client import HubError

    out = []
    for path in paths:
        try:
            text, signature = read(path, unsigned)
            to = where(path)
        except Invalid as exc:
            out.append(Outcome(str(path), "error", exc.message))
            continue
        if held is not None:
            parsed = orgturn.parse(text)
            there = held.find(parsed.conversation_id, parsed.sha256(), to)
            if there is not None:
                out.append(Outcome(str(path), "dedup", f"already at the hub as turn {there.get('id')} from "
                                   f"{there.get('from')} (not sent again)", to, there.get("id"),
                                   parsed.conversation_id, there.get("sequence")))
                continue
        try:
            turn = send(to, text, signature)
        except HubError as exc:
            why = f"{exc.message} [{exc.status} {exc.code}]"
            if exc.code == "sequence_taken" and signature is not None:
                why = (f"its signed SEQUENCE is not the hub's next [{exc.status} {exc.code}]: a signed file's "
                       "number cannot be changed without its author's key; import history with --unsigned, "
                       "which the hub numbers as it comes")
            out.append(Outcome(str(path), "error", why, to))
            continue
        if held is not None:
            held.sent(turn)
        reason = turn.get("reason")
        if turn.get("decision") == "dedup" and turn.get("type") == "release" and reason is None:
            # a conversation is released once: the seed let both parties release (and a race left two releases)
            reason = (f"released already by turn {turn.get('id')} (released by {turn.get('author')}); this release "
                      "was not recorded")
        out.append(Outcome(str(path), str(turn.get("decision")), reason, to, turn.get("id"),
                           turn.get("conversation_id"), turn.get("sequence")))
    return out
