"""Sending a signed turn: renumber to the hub's next sequence, sign with ``gpg``, send, retry when it was taken.

The hub numbers turns, and a signature covers a file's exact bytes, so a
signed turn must carry the hub's sequence in its own signed text: this asks
the hub for the conversation's next sequence, rewrites ``#+SEQUENCE`` when it
differs, signs that text (:func:`coordhub.compat.gpg.sign`, seed 004's
``gpg --detach-sign --armor``) and sends it expecting that sequence. When
another sender took the sequence meanwhile (409 ``sequence_taken``) it
renumbers, signs again and retries. ``cross-agent-send`` and ``coord conv
send/release --sign`` both send through :func:`send_signed`.
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


def next_sequence(client: Any, conversation_id: str) -> int:
    """The sequence the hub would give the conversation's next turn (1 for a new conversation)."""
    return int(client.next_sequence(conversation_id)["next_sequence"])


def send_signed(client: Any, text: str, key: str | None, attempts: int, post: Post,
                renumbered: Callable[[int | None, int], None] | None = None,
                taken: Callable[[int, int], None] | None = None) -> Any:
    """Send ``text`` (a seed-004 file's text) signed by ``key`` (None: gpg's default key) through ``post``.

    ``attempts`` (1 or more) bounds the tries while the sequence is taken; ``renumbered(file_sequence, sequence)``
    is told each time the signed text carries another sequence than ``text`` did; ``taken(signed, next_sequence)``
    each time another turn took the sequence signed, before signing again, and may raise to send nothing more (a
    release must not close a conversation over a turn its author never saw). Answers what ``post`` answered.
    Raises :class:`~coordhub.compat.gpg.GpgError` when gpg cannot sign, :class:`SequenceStillTaken` after
    ``attempts`` answers of 409 ``sequence_taken``, any other ``HubError`` or ``Unreachable`` as ``post`` and the
    client raise them, and :class:`~coordhub.errors.Invalid` for a text that is not a turn (:func:`orgturn.parse`).
    """
    from coordhub.client import HubError

    turn = orgturn.parse(text)
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
