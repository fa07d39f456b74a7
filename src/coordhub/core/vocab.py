"""The closed vocabularies of the hub's requests: one definition each, for the hub, MCP and the CLI.

Each is a ``Literal`` type, so the same definition checks a value on the hub
(:func:`values` gives the allowed tuple), types an MCP tool's parameter, and
makes a ``coord`` option a choice (Typer turns a ``Literal`` annotation into
one: a value outside it is a usage error, exit 2, before any request, and
``--help`` lists the values). Standard library only: the CLI imports it at
start-up (issue 7 point 18).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

TodoStatus = Literal["pending", "done"]  # seed 000
TodoFilter = Literal[TodoStatus, "all"]  # what `todo list --status` and GET /todos?status= take
Importance = Literal["low", "normal", "high", "urgent"]  # a message's
PresenceState = Literal["active", "idle", "stale", "offline"]
TurnType = Literal["request", "progress", "query", "pushback", "complete", "release", "escalate"]  # seed 004
ReleaseStatus = Literal["complete", "cancelled", "withdrawn-after-pushback", "abandoned-after-escalation"]  # seed 004
ConversationState = Literal["open", "released"]
MergeMethod = Literal["rebase", "squash", "merge"]  # seed 003


def values(vocabulary: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` vocabulary above, in their order (``typing`` flattens a nested ``Literal``)."""
    return tuple(get_args(vocabulary))


def one_of(vocabulary: Any) -> str:
    """``a, b or c``: the values of ``vocabulary`` as an error message lists them."""
    *rest, last = values(vocabulary)
    return f"{', '.join(rest)} or {last}" if rest else last
