"""What a write becomes for a hub from before one of its fields: the request asked again without it.

A newer client sends a bare machine name as a message's ``to_machine``, and the
hub picks the machine's session (:func:`coordhub.core.identity.machine_recipient`).
A hub from before that field refuses it (422 ``invalid``, a problem naming the
field as unknown); the same message then goes to seed 000's session of the
machine, ``MACHINE/claude-main`` (:func:`coordhub.core.identity.main_session`).
One rule for every path a write takes: a live send
(:meth:`~coordhub.client.calls.FleetCalls.send_message`) and a replay of the
softfail queue (:meth:`~coordhub.client.softfail.Softfail.replay`, with the
entry's idempotency key: a refused request is not stored by the hub, so the
key still names one message).
"""

from __future__ import annotations

from typing import Any

from coordhub.client.outcomes import HubError
from coordhub.core.identity import main_session

MESSAGES = "/api/coord/messages"
TO_MACHINE = "to_machine"


def downgraded(method: str, path: str, body: Any, err: HubError) -> dict[str, Any] | None:
    """The body to send again after ``err`` refused ``method path`` with ``body``, or None (``err`` stands).

    Only a message sent to a machine (``POST /api/coord/messages`` whose body
    names ``to_machine``) that the hub refused with 422 naming ``to_machine`` an
    unknown field is asked again: the same body without ``to_machine`` and with
    ``to_session`` ``MACHINE/claude-main``. Any other refusal, a 422 about
    another field included, is the hub's last word.
    """
    if method != "POST" or path != MESSAGES or not isinstance(body, dict) or TO_MACHINE not in body:
        return None
    if err.status != 422 or not unknown_field(err, TO_MACHINE):
        return None
    again = {k: v for k, v in body.items() if k != TO_MACHINE}
    again["to_session"] = main_session(body[TO_MACHINE])
    return again


def unknown_field(err: HubError, field: str) -> bool:
    """Whether the hub's refusal ``err`` names ``field`` as a field it does not know (its 422 envelope's
    ``error.problems``, each ``{"field": …, "problem": "unknown field '…'"}``)."""
    error = err.body.get("error") if isinstance(err.body, dict) else None
    problems = error.get("problems") if isinstance(error, dict) else None
    return isinstance(problems, list) and any(
        isinstance(p, dict) and p.get("field") == field and "unknown field" in str(p.get("problem"))
        for p in problems)
