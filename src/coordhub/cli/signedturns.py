"""``coord conv``'s signed turns: a turn built and signed here as ``cross-agent-send`` signs it (seed 004), so a
receiver that verifies signatures (``cross-agent-recv``) accepts it, and this client's own address.

The hub renders a field-form turn itself (:func:`coordhub.core.turns.draft`); a signed one must be rendered
here, since the signature covers the file's text, with the sequence the hub gives it now (never queued).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coordhub.cli.common import EXIT_CONFLICT, EXIT_REFUSED, EXIT_USAGE, fail
from coordhub.client import CoordClient, HubError, Unreachable


def me(c: CoordClient) -> tuple[str, str | None]:
    """``(machine, project)`` of this client (the hub is asked only for a token's session id)."""
    from coordhub.compat.crossagent.common import Me

    who = Me(c)
    return who.machine, who.project


SIGN_HELP = ("Sign the turn as cross-agent-send does (gpg --detach-sign --armor), so a receiver that verifies "
             "signatures (cross-agent-recv) accepts it; the hub checks it against your keys (`coord conv keys "
             "add`). Key: --key, else GPG_USER, else git config user.signingkey, else gpg's default key. A signed "
             "turn is never queued: the hub must be reachable.")
KEY_HELP = "Sign with this GPG key id (implies --sign)."
SIGN_ATTEMPTS = 4  # tries while another sender takes the sequence being signed (cross-agent-send's default)


def send_signed(c: CoordClient, to: str, text: str, key: str | None,
                taken: Callable[[int, int], None] | None = None) -> Any:
    """Send ``text`` (a seed-004 file's text) to ``to`` signed as cross-agent-send signs it
    (:func:`coordhub.compat.signedturn.send_signed`, the key by :func:`coordhub.compat.gpg.signing_key`, ``taken``
    as there); exit 1 with gpg's reason when it cannot sign, or when the sequence stayed taken; exit 4 (conflict:
    the conversation changed, look first) when a turn other than a release took a signed release's sequence,
    naming it (:class:`coordhub.compat.signedturn.ConversationChanged`): nothing is sent."""
    from coordhub.compat import gpg, signedturn

    machine, project = me(c)

    def post(content: str, signature: str, expect: int) -> Any:
        # never queued: a signed turn carries the sequence the hub gives it now
        return c.send_turn(to, content, signature=signature, expect_sequence=expect, queue=False,
                           from_machine=machine, from_project=project)

    try:
        return signedturn.send_signed(c, text, gpg.signing_key(key), SIGN_ATTEMPTS, post, taken=taken)
    except (gpg.GpgError, signedturn.SequenceStillTaken) as exc:
        fail(str(exc), EXIT_REFUSED)
    except signedturn.ConversationChanged as exc:
        fail(str(exc), EXIT_CONFLICT)


def field_text(conversation_id: str, type_: str, body: str, title: str | None = None,
               requires_tools: list[str] | None = None, release_status: str | None = None) -> str:
    """The seed-004 file the hub would render from a field-form send (:func:`coordhub.core.turns.draft`), stamped
    with this machine's clock: the text a signature covers. A usage error for a value the hub would refuse."""
    import time

    from coordhub.core import turns
    from coordhub.errors import Invalid

    try:
        return turns.draft(to="", conversation_id=conversation_id, type=type_, title=title, body=body,
                           requires_tools=requires_tools, release_status=release_status, now=time.time()).content
    except Invalid as exc:
        fail(exc.message, EXIT_USAGE)


def conversation_title(c: CoordClient, conversation_id: str) -> str | None:
    """The title of a conversation this session takes part in, None for a new one (or one it cannot read): what a
    turn built here names when given no ``--title``, as the hub does for one it builds."""
    try:
        title = c.conversation(conversation_id, limit=1).get("title")
    except HubError as exc:
        if exc.status != 404:
            raise
        return None
    return title if isinstance(title, str) else None


def signed_release(c: CoordClient, conversation_id: str, to: str | None, status: str, body: str | None,
                   key: str | None) -> Any:
    """``coord conv release --sign``: the release turn the hub would send, built and signed here.

    A conversation released already is answered by the hub's release route (``dedup``, nothing sent), as unsigned.
    When a turn other than a release took the sequence signed, nothing is sent (exit 4, by :func:`send_signed`).
    """
    from coordhub.core import orgturn, turns
    from coordhub.errors import Invalid

    try:
        orgturn.check_conversation_id(conversation_id)
    except Invalid as exc:
        fail(exc.message, EXIT_USAGE)
    conv = c.conversation(conversation_id, limit=1)  # 404 for a conversation you take no part in
    if conv.get("state") == "released":
        return c.release_conversation(conversation_id, to, status, body)
    if to is None:
        to = conv.get("release_to")  # the hub's default, the one its unsigned release takes
        if not isinstance(to, str):
            fail("no other party wrote in this conversation or was written to: give --to", EXIT_USAGE)
    text = field_text(conversation_id, "release", body or turns.RELEASE_BODY, title=conv.get("title"),
                      release_status=status)
    return send_signed(c, to, text, key)


def signing_configured(c: CoordClient) -> bool:
    """Whether this user signs: a key named for signing (GPG_USER, git config user.signingkey) or one registered
    at the hub for this session. For the inbox's hint only: a hub that cannot say counts as no."""
    from coordhub.compat import gpg

    if gpg.signing_key(None):
        return True
    try:
        return bool(c.keys(None))
    except (HubError, Unreachable):
        return False
