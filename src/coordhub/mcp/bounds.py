"""How much of the hub's text one MCP tool result holds: long fields cut in listings, lists cut to a budget.

A tool's result goes whole into the agent's context. The hub bounds what it
stores (a message body: 512 KiB) and answers pages of about 4 MiB, far more
than an agent should read in one call: listings cut each long text to
:data:`LISTED_BODY` characters and answer about :data:`RESULT_CHARS` in all,
with a note saying how to read on (:mod:`coordhub.mcp.tools`), and a message
answered alone is cut only past the hub's own bound (:func:`bounded`).
"""

from __future__ import annotations

from typing import Any

import orjson
import pydantic_core

LISTED_BODY = 4000  # characters of each body a list of messages answers (the hook injects 4,000 in all)


def listed(items: list[Any], fields: tuple[str, ...] = ("body",), limit: int = LISTED_BODY) -> list[Any]:
    """``items`` (the hub's answer) each :func:`cut`: every one of their ``fields`` longer than ``limit`` characters
    cut to it.

    A body may hold 512 KiB (the hub's bound), so twenty of them, written by
    any session to yours, would put 10 MiB into your context in one call and
    push everything else out of it; ``read_message`` answers one whole.
    """
    return [cut(item, fields, limit) for item in items]


def cut(item: Any, fields: tuple[str, ...], limit: int) -> Any:
    """``item`` with each text of its ``fields`` longer than ``limit`` characters cut to its first ``limit``, the
    item then marked ``<field>_truncated: true`` with the text's whole length in ``<field>_chars``; ``item``
    itself when nothing is cut (or it is not an object)."""
    if not isinstance(item, dict):
        return item
    for field in fields:
        text = item.get(field)
        if isinstance(text, str) and len(text) > limit:
            item = {**item, field: text[:limit], f"{field}_truncated": True, f"{field}_chars": len(text)}
    return item


def left_out(item: dict[str, Any], fields: tuple[str, ...]) -> int:
    """How many characters :func:`cut` left out of ``item``'s ``fields``."""
    return sum(item[f"{field}_chars"] - len(item[field]) for field in fields if item.get(f"{field}_truncated"))


RESULT_CHARS = 50_000
"""About the most characters of records one call of a tool that lists (``inbox``, ``get_thread``,
``wait_for_messages``, ``conv_inbox``, ``conv_show``, ``list_leases``, ``list_todos``, ``list_components``,
``get_workflow``) answers (at least one record a call, cut if it is larger).

The hub's pages hold about 4 MiB, and a tool result goes whole into the
agent's context. By its documented defaults Claude Code puts a result of more
than 50,000 characters in a file instead, and holds one to 25,000 tokens
(``MAX_MCP_OUTPUT_TOKENS``; older versions refuse a larger one), so a call
answers about that much and says where to read on. Counted as the records
take in the result's text block, in UTF-8 (:func:`size`), at least their
characters; the answer's other keys (a count, a note) add a few hundred.
"""

def size(value: Any) -> int:
    """The length in UTF-8 bytes of ``value`` as the text block of a result shows it as one record of a list (what
    :data:`RESULT_CHARS` counts): its JSON indented by two, each line four spaces deeper, after a comma and a line
    break (:meth:`coordhub.mcp.server.CoordTool.text`).

    A message has some 25 short fields, so its indentation alone is about 250
    characters: counted as compact JSON, eleven messages made a result of 52,619
    characters for a budget of 50,000.
    """
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except TypeError:  # orjson.JSONEncodeError: an integer past 64 bits, as CoordTool.text falls back
        text = pydantic_core.to_json(value, fallback=str, indent=2)
    return len(text) + 4 * (text.count(b"\n") + 1) + 2


def within(items: list[Any], budget: int = RESULT_CHARS) -> list[Any]:
    """The first of ``items`` whose :func:`size` adds up to at most ``budget``; at least one (``[]`` for none)."""
    total = 0
    for n, item in enumerate(items):
        total += size(item)
        if total > budget and n:
            return items[:n]
    return items


MESSAGE_BODY = 524_288  # the hub's bound of a message body, in characters (coordhub.api.schemas.Text)



def bounded(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` as the hub answered it, its body whole up to :data:`MESSAGE_BODY` characters, the hub's own
    bound (every message a hub accepted), and :func:`cut` to it past that, with a ``note`` saying so.

    A hub answering more (a hostile or broken one) would otherwise put any
    amount into the agent's context in one call: every tool answering one
    message (``read_message``, ``ack_message``, ``send_message``, ``reply``)
    answers it through this.
    """
    kept: dict[str, Any] = cut(message, ("body",), MESSAGE_BODY)
    if kept is not message:
        kept["note"] = (f"The hub answered a body of {kept['body_chars']:,} characters, past its own bound of "
                        f"{MESSAGE_BODY:,} for a message: the first {MESSAGE_BODY:,} are shown.")
    return kept
