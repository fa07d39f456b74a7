"""Request and response bodies of ``POST /api/coord/imports/seed002`` (issue 10), as pydantic models.

Times are ISO 8601 strings, as everywhere in the API. What is wrong with a
record's data skips its item, not the batch: session names are checked by
the core per item, and a value these models refuse (an id over 200
characters, a control character in a one-line field) makes its item an
:class:`Invalid` that the core reports as ``skipped`` with the reason. An
item of the wrong shape (a field missing, unknown or of the wrong JSON type,
an unknown ``kind``) is a client's bug, not data: the batch is refused (422).
The importer checks each item with :func:`problem` before sending it, so
what the hub would skip is reported (and counted by ``--dry-run``) up front.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

from pydantic import Field, TypeAdapter, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from coordhub.api.schemas import Line, Out, Strict, Subject, Text

Time = Annotated[str, Field(min_length=1, max_length=64, description="ISO 8601, e.g. 2026-01-23T10:00:00Z.")]
MAX_ITEMS = 1000
MAX_READERS = 1000


class ImportedMessage(Strict):
    """A message: its seed id, parties, original time, text and per-recipient state."""

    kind: Literal["message"]
    id: Line = Field(description="Its id in the source (seed 002: msg-1a2b3c4d); the hub id is derived from it.")
    from_session: Line
    to_session: Line | None = Field(description="The recipient; null: every session (seed 002's 'all').")
    subject: Subject
    body: Text
    message_type: Line | None = None
    requires_ack: bool
    created_at: Time
    read_by: list[Line] = Field([], max_length=MAX_READERS, description="Sessions that have seen it.")
    acked_by: Line | None = Field(None, description="Who acknowledged it (a direct message: its recipient).")
    acked_at: Time | None = None
    reply_to: Line | None = Field(None, description="Source id of a message imported before, which this answers.")
    reply_to_digest: Line | None = Field(
        None, description="coordhub.core.seed002.content_digest of the message reply_to names, which tells it "
                          "apart from another one with the same source id (two teams' Redis); without it a "
                          "source id that names more than one imported message skips the item.")


class ImportedPresence(Strict):
    """A session last seen at a time (kept as an ended incarnation: offline)."""

    kind: Literal["presence"]
    session_id: Line
    last_seen: Time
    client_session: Line | None = Field(None, description="The agent's own session id in the source.")


class ImportedNotification(Strict):
    """One entry of a session's offline notification queue (seed 002's NotificationEvent)."""

    kind: Literal["notification"]
    key: Line = Field(description="Derived from the source by the importer; importing the same key again "
                                  "writes nothing.")
    session_id: Line = Field(description="Whose queue it was in.")
    message_id: Line = Field(description="The message's id in the source.")
    message_type: Line | None = None
    from_session: Line
    to_session: Line | None = None
    requires_ack: bool
    sent_at: Time


ImportItem = Annotated[ImportedMessage | ImportedPresence | ImportedNotification, Field(discriminator="kind")]
# Errors of a value rather than of the item's shape: the record's data, so they skip the item.
VALUE_ERRORS = frozenset({"string_too_long", "string_too_short", "value_error", "too_long", "too_short"})
_ITEM: TypeAdapter[Any] = TypeAdapter(ImportItem)


class Invalid(NamedTuple):
    """An item whose values the models refuse: the core reports it ``skipped`` with ``reason``."""

    kind: str
    ref: str
    reason: str


def _reason(exc: ValidationError) -> str:
    """The errors of one item as one line, fields named within the item (``id: String should have …``)."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"][1:]]  # the first is the item's kind (the union's tag)
        parts.append(f"{'.'.join(loc) or 'item'}: {err['msg']}")
    return "; ".join(parts)


def _ref(value: dict[str, Any]) -> str:
    ref = value.get("id") or value.get("key") or value.get("session_id")
    text = ref if isinstance(ref, str) else repr(ref)
    return text if len(text) <= 200 else text[:199] + "…"


def _keep_or_skip(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError as exc:
        if not isinstance(value, dict) or any(e["type"] not in VALUE_ERRORS for e in exc.errors()):
            raise
        return Invalid(str(value.get("kind")), _ref(value), _reason(exc))


def problem(item: dict[str, Any]) -> str | None:
    """Why the hub would not take ``item`` (its values or its shape), None when it would: the importer's check."""
    try:
        _ITEM.validate_python(item)
    except ValidationError as exc:
        return _reason(exc)
    return None


class ImportBatch(Strict):
    """``POST /api/coord/imports/seed002``: items to write in one transaction, in order."""

    source: Line = Field(description="Where they come from, for the record (e.g. redis://host:6379/0 coord:*).")
    items: list[Annotated[ImportItem, WrapValidator(_keep_or_skip)]] = Field(
        max_length=MAX_ITEMS, description="An item whose values are refused (too long, a control character) is "
                                          "skipped with the reason; one of the wrong shape refuses the batch.")


class ImportResult(Out):
    """What became of one item."""

    kind: str
    ref: str
    outcome: Literal["imported", "already", "skipped"]
    id: str | None = Field(None, description="What it is on the hub: a message id, session id or event id.")
    reason: str | None = Field(None, description="Why it was skipped, or how it was mapped.")


class ImportOut(Out):
    """Per-item results, in the order sent, and their counts by outcome."""

    source: str
    results: list[ImportResult]
    counts: dict[str, int]
