"""The seed-002 API's check of each hub answer before it is read (:mod:`coordhub.client.seed002`).

A hostile listener, a proxy's error page or a broken hub may answer anything.
Each answer is checked for the fields the API reads and the JSON types a hub
sends for them (:mod:`coordhub.api.schemas`); one of another shape raises the
calling API's error type with code :data:`BAD_ANSWER` and status 0, naming the
request and the field, never the value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, TypeVar

BAD_ANSWER = "bad_response"  # the client's code for a hub answer it cannot read (coordhub.client.transport.decoded)
E = TypeVar("E", bound=Exception)


def iso_time(value: str | None) -> datetime | None:
    """An ISO 8601 time as the hub writes it (``2026-05-28T20:26:40Z``); None for none; ``ValueError`` for no time."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class Time:
    """Marks a field that holds an ISO 8601 time (``2026-05-28T20:26:40Z``)."""


NULL = type(None)


class Fields(NamedTuple):
    """The fields of one kind of hub record that this API reads, each with the JSON types a hub sends for it
    (coordhub.api.schemas); an ``optional`` one may be missing."""

    what: str
    required: dict[str, tuple[type, ...]]
    optional: dict[str, tuple[type, ...]]


MESSAGE = Fields("a message", {
    "id": (str,), "seq": (int,), "from_session": (str,), "to_session": (str,), "broadcast": (bool,),
    "subject": (str,), "body": (str,), "message_type": (str, NULL), "requires_ack": (bool,), "created_at": (Time,),
}, {"read": (bool,), "acked_at": (Time, NULL), "origin_id": (str, NULL)})
PRESENCE = Fields("a presence", {"session_id": (str,), "state": (str,)}, {
    "incarnation": (int, NULL), "last_heartbeat": (Time, NULL), "client_session": (str, NULL),
    "seconds_since_heartbeat": (float, NULL)})
WHOAMI = Fields("a caller", {"session_id": (str, NULL)}, {})
NOTIFICATIONS = Fields("a notification page", {"events": (list,)}, {})
EVENT = Fields("an event", {"id": (int,), "kind": (str,), "session_id": (str, NULL), "subject_id": (str, NULL),
                             "created_at": (Time,)}, {"payload": (dict, NULL)})
SENT = Fields("a message.sent event's payload", {}, {
    "to_session": (str, NULL), "origin_id": (str, NULL), "message_type": (str, NULL), "requires_ack": (bool, NULL),
    "subject": (str, NULL), "sent_at": (Time, NULL)})
JSON_NAMES: dict[type, str] = {dict: "an object", list: "a list", str: "a string", bool: "true or false",
                                int: "an integer", float: "a number", NULL: "null", Time: "an ISO 8601 time"}


def json_name(value: Any) -> str:
    """What ``value`` is in JSON's words (never the value: it may be huge, or written to mislead)."""
    return next((name for kind, name in JSON_NAMES.items() if isinstance(value, kind)), type(value).__name__)


def is_json(value: Any, types: tuple[type, ...]) -> bool:
    """Whether ``value`` is of one of the JSON ``types``: true and false are no numbers, an integer is a number."""
    if isinstance(value, bool):
        return bool in types
    if Time in types and isinstance(value, str):
        try:
            return iso_time(value) is not None
        except ValueError:
            return False
    return isinstance(value, types) or (float in types and isinstance(value, int))


def bad_answer(kind: type[E], answer: str, what: str) -> E:
    """``kind`` (status 0, code :data:`BAD_ANSWER`) saying the hub answered ``answer`` with ``what``."""
    return kind(f"the hub answered {answer} with {what}, which no hub answers [{BAD_ANSWER}]", 0, BAD_ANSWER)


def record(value: Any, fields: Fields, answer: str, kind: type[E]) -> dict[str, Any]:
    """``value`` when it is a JSON object whose ``fields`` are there (the required ones) with the types a hub sends;
    else ``kind`` with code :data:`BAD_ANSWER`, naming the first field found wrong. ``answer`` names the request
    (``GET /api/coord/messages``) for the message."""
    if not isinstance(value, dict):
        raise bad_answer(kind, answer, f"{json_name(value)} where {fields.what} belongs")
    missing = next((name for name in fields.required if name not in value), None)
    if missing is not None:
        raise bad_answer(kind, answer, f"{fields.what} without {missing!r}")
    for name, types in (fields.required | fields.optional).items():
        if name in value and not is_json(value[name], types):
            wanted = " or ".join(JSON_NAMES[t] for t in types)
            raise bad_answer(kind, answer, f"{fields.what} whose {name!r} is {json_name(value[name])}, not {wanted}")
    return value


def records(value: Any, fields: Fields, answer: str, kind: type[E]) -> list[dict[str, Any]]:
    """``value`` when it is a JSON list of records :func:`record` takes; else ``kind`` (code :data:`BAD_ANSWER`)."""
    if not isinstance(value, list):
        raise bad_answer(kind, answer, f"{json_name(value)} where a list belongs")
    return [record(v, fields, answer, kind) for v in value]


def events(value: Any, answer: str, kind: type[E]) -> list[dict[str, Any]]:
    """The events of a notification page, each checked (a sent message's payload too); ``kind`` (code
    :data:`BAD_ANSWER`) for any other shape."""
    found = records(record(value, NOTIFICATIONS, answer, kind)["events"], EVENT, answer, kind)
    for e in found:
        if e["kind"] == "message.sent" and e.get("payload") is not None:
            record(e["payload"], SENT, answer, kind)
    return found
