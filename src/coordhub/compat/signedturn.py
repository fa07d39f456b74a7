"""Sending a signed turn: renumber to the hub's next sequence, sign with ``gpg``, send, retry when it was taken.

The hub numbers turns, and a signature covers a file's exact bytes, so a
signed turn must carry the hub's sequence in its own signed text: this asks
the hub for the conversation's next sequence, rewrites ``#+SEQUENCE`` when it
differs, signs that text (:func:`coordhub.compat.gpg.sign`, seed 004's
``gpg --detach-sign --armor``) and sends it expecting that sequence. When
another sender took the sequence meanwhile (409 ``sequence_taken``) it
renumbers, signs again and retries. ``cross-agent-send`` and ``coord conv
send/release --sign`` both send through :func:`send_signed`. A release whose
sequence an ordinary turn took is not signed again (:class:`ConversationChanged`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coordhub.compat import gpg
from coordhub.core import orgturn

# (content, signature, expect_sequence) -> the hub's answer; raises HubError as the client does
Post = Callable[[str, str, int], Any]


class SequenceStillTaken(Exception):
    """Every attempt met 409 ``sequence_taken``: other senders kept writing to the conversation."""

    def __init__(self, conversation_id: str, attempts: int) -> None:
        super().__init__(f"sequence still taken after {attempts} attempts (other senders keep writing to "
                         f"{conversation_id}); try again")


class ConversationChanged(Exception):
    """A turn that is no release took the sequence a release was signed at: nothing was sent.

    Signing the release at the next number would close the conversation over a turn its author never saw (review,
    seed-004 typed conversations). ``arrived`` holds those turns as the hub lists them (``sequence``, ``type``,
    ``author``, ``from``, ``title``); the message names at most five and says to read them and release again.
    """

    def __init__(self, conversation_id: str, arrived: list[dict[str, Any]]) -> None:
        from coordhub.hooks.untrusted import one_line

        self.arrived = arrived
        named = "; ".join(one_line(f"#{t['sequence']} {t.get('type')} by {t.get('author')} ({t.get('from')}): "
                                   f"{t.get('title') or '(no title)'}") for t in arrived[:5])
        more = f" and {len(arrived) - 5} more" if len(arrived) > 5 else ""
        super().__init__(f"{conversation_id} changed while the release was signed: turn {named}{more} arrived; "
                         f"nothing sent. Read it (coord conv show {conversation_id}) and release again")


def stop_for_arrived_turns(client: Any, conversation_id: str) -> Callable[[int, int], None]:
    """``taken`` of :func:`send_signed` for a release text (its default there): raises :class:`ConversationChanged`
    when a turn that is no release took a sequence from ``signed`` to ``next_sequence - 1``. A release that took it
    (another party's, or this user's own earlier one) goes on: the hub answers ``dedup`` (already released)."""

    def taken(signed: int, following: int) -> None:
        arrived = [t for t in client.conversation_turns(conversation_id)
                   if isinstance(t, dict) and type(t.get("sequence")) is int and signed <= t["sequence"] < following
                   and t.get("type") != "release"]
        if arrived:
            raise ConversationChanged(conversation_id, arrived)

    return taken


def next_sequence(client: Any, conversation_id: str) -> int:
    """The sequence the hub would give the conversation's next turn (1 for a new conversation)."""
    return int(client.next_sequence(conversation_id)["next_sequence"])


def send_signed(client: Any, text: str, key: str | None, attempts: int, post: Post,
                renumbered: Callable[[int | None, int], None] | None = None,
                taken: Callable[[int, int], None] | None = None) -> Any:
    """Send ``text`` (a seed-004 file's text) signed by ``key`` (None: gpg's default key) through ``post``.

    ``attempts`` (1 or more) bounds the tries while the sequence is taken; ``renumbered(file_sequence, sequence)``
    is told each time the signed text carries another sequence than ``text`` did; ``taken(signed, next_sequence)``
    each time another turn took the sequence signed, before signing again, and may raise to send nothing more;
    for a release it defaults to :func:`stop_for_arrived_turns` (a release must not close a conversation over a
    turn its author never saw), for ``cross-agent-send`` and ``coord conv`` alike. Answers what ``post`` answered.
    Raises :class:`~coordhub.compat.gpg.GpgError` when gpg cannot sign, :class:`ConversationChanged` (a release
    only, by default), :class:`SequenceStillTaken` after
    ``attempts`` answers of 409 ``sequence_taken``, any other ``HubError`` or ``Unreachable`` as ``post`` and the
    client raise them, and :class:`~coordhub.errors.Invalid` for a text that is not a turn (:func:`orgturn.parse`).
    """
    from coordhub.client import HubError

    turn = orgturn.parse(text)
    if taken is None and turn.type == "release":  # `conv release`, `conv send --type release`, cross-agent-send
        taken = stop_for_arrived_turns(client, turn.conversation_id)
    expect = next_sequence(client, turn.conversation_id)
    for _ in range(max(attempts, 1)):
        content = text
        if turn.sequence != expect:
            content = orgturn.with_key(text, "SEQUENCE", str(expect))
            if renumbered is not None:
                renumbered(turn.sequence, expect)
        signature = gpg.sign(content.encode("utf-8"), key)
        try:
            return post(content, signature, expect)
        except HubError as exc:
            if exc.code != "sequence_taken":
                raise
            hint = exc.body.get("error", {}).get("next_sequence") if isinstance(exc.body, dict) else None
            signed = expect
            expect = int(hint) if isinstance(hint, int) else next_sequence(client, turn.conversation_id)
            if taken is not None:
                taken(signed, expect)
    raise SequenceStillTaken(turn.conversation_id, max(attempts, 1))
