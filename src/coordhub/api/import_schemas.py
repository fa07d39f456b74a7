"""Request and response bodies of ``POST /api/coord/imports/seed002`` (issue 10), as pydantic models.

Times are ISO 8601 strings, as everywhere in the API; session names are
checked by the core per item, so one bad name skips its item, not the batch.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

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


class ImportBatch(Strict):
    """``POST /api/coord/imports/seed002``: items to write in one transaction, in order."""

    source: Line = Field(description="Where they come from, for the record (e.g. redis://host:6379/0 coord:*).")
    items: list[ImportItem] = Field(max_length=MAX_ITEMS)


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
