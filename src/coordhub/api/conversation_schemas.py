"""Request and response bodies of ``/api/coord/conversations`` (issue 9, seed 004), as pydantic models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from coordhub.api.schemas import Line, Out, Strict, Text
from coordhub.core import orgturn
from coordhub.core.vocab import ConversationState, ReleaseStatus, TurnType

Name = Annotated[str, Field(min_length=1, max_length=64, description="Letters, digits, _ and -; lower-cased.")]
Address = Annotated[str, Field(min_length=3, max_length=129, description="`<machine>.<project>`; "
                                                                          "`local.<project>` is your machine.")]
Tool = Annotated[str, Field(min_length=1, max_length=64)]


class ProfileSet(Strict):
    """``PUT /api/coord/conversations/profile``: declare your address and tools (omitted fields keep their value)."""

    machine: Name | None = None
    project: Name | None = None
    tools: list[Tool] | None = Field(None, max_length=orgturn.MAX_TOOLS)


class ProfileOut(Out):
    """A session's conversation address and declared tools."""

    session_id: str
    machine: str | None
    project: str | None
    address: str | None
    tools: list[str]
    tools_declared: bool = Field(description="Whether the session declared a list of tools (an empty one "
                                             "included); until it does, REQUIRES_TOOLS is not checked for it")


class AddressSession(Out):
    """A session at an address, with its presence."""

    session_id: str
    state: str
    tools: list[str]


class AddressOut(Out):
    """A declared address, its sessions and how many turns wait for it (null: another machine's, to a non-admin)."""

    address: str
    machine: str
    project: str
    sessions: list[AddressSession]
    pending: int | None


class KeyAdd(Strict):
    """``POST /api/coord/conversations/keys``: register an armored OpenPGP public key."""

    armored: Annotated[str, Field(min_length=1, max_length=65_536)]
    proof: Annotated[str, Field(max_length=16_384, description=(
        "A detached armored signature by this key over the statement `coordhub key registration\\nhub: HUB_ID"
        "\\nsession: SESSION_ID\\nfingerprint: FINGERPRINT\\n` (proof that you hold the key). Without one, "
        "the 422 carries the statement to sign."))] = ""


class KeyOut(Out):
    """A registered key (``armored`` in listings)."""

    session_id: str
    fingerprint: str
    created_at: str
    armored: str | None = None


class TurnSend(Strict):
    """``POST /api/coord/conversations/turns``: a seed-004 file (``content``) or the fields of a turn."""

    to: Address
    content: Annotated[str, Field(max_length=orgturn.MAX_CONTENT_BYTES)] | None = Field(
        None, description="A seed-004 org file's text (frontmatter + body).")
    signature: Annotated[str, Field(max_length=orgturn.MAX_SIGNATURE_BYTES)] | None = Field(
        None, description="Armored detached OpenPGP signature over `content` as UTF-8.")
    expect_sequence: int | None = Field(None, ge=1, le=2**62, description="Refuse (409 sequence_taken) unless this "
                                        "is the sequence the hub assigns: a signed file carries its own.")
    from_machine: Name | None = None
    from_project: Name | None = None
    conversation_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    type: TurnType | None = None
    title: Line | None = None
    body: Text | None = None
    requires_tools: list[Tool] | None = Field(None, max_length=orgturn.MAX_TOOLS)
    release_status: ReleaseStatus | None = None
    protocol_version: Annotated[str, Field(min_length=1, max_length=16)] | None = None


class TurnRelease(Strict):
    """``POST /api/coord/conversations/{id}/release``."""

    to: Address | None = Field(None, description="Default: the last other address that wrote in it.")
    release_status: ReleaseStatus | None = None
    body: Text | None = None


class TurnOut(Out):
    """A turn as its author or a participant sees it."""

    id: int
    conversation_id: str
    sequence: int | None = Field(description="Assigned by the hub; null for a refused (query/reject) turn.")
    stated_sequence: int | None
    type: str
    title: str
    author: str
    from_: str = Field(alias="from")
    to: str
    created_at: str
    timestamp: str
    stated_timestamp: str
    protocol_version: str
    requires_tools: list[str]
    body: str
    content: str
    content_sha256: str
    signature: str | None
    signer: str | None
    verified: bool | None
    decision: Literal["process", "dedup", "query", "reject"]
    reason: str | None
    pending: bool
    file_name: str


class ConversationOut(Out):
    """A conversation's summary."""

    conversation_id: str
    title: str
    project: str | None
    state: ConversationState
    participants: list[str]
    last_sequence: int
    pending: int
    created_by: str
    created_at: str | None
    updated_at: str | None


class ConversationDetailOut(ConversationOut):
    """A conversation with one page of its turns."""

    turns: list[TurnOut]
    next_after: int | None = Field(None, description="`after` for the next page of turns; null on the last page.")
    release_to: str | None = Field(None, description="Where your release goes when it names no `to`: the other "
                                   "party of the newest accepted turn that has one; null when there is none.")


class StatusProject(Out):
    """One project's row of ``cross-agent-status``."""

    name: str
    pending_count: int
    most_recent: dict[str, str | int] | None


class StatusOut(Out):
    """Seed 004's ``cross-agent-status --json`` for one machine."""

    scanned_at: str
    machine: str | None
    halt_active: bool
    projects: list[StatusProject]


class NextSequenceOut(Out):
    """The sequence the next accepted turn of a conversation gets."""

    conversation_id: str
    next_sequence: int
