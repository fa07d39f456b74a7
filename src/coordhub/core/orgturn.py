"""Seed 004's message files: org-mode frontmatter, a body, and the rules a turn must meet.

A seed-004 message is a UTF-8 text file whose first lines are org keywords
(``#+KEY: value``), ended by a blank line or the first line that is not one;
the rest is the body::

    #+TITLE: Prep fix-up
    #+CONVERSATION_ID: prep-fixup
    #+MESSAGE_TYPE: request
    #+SEQUENCE: 1
    #+TIMESTAMP: 2026-04-27T04:11:42-05:00
    #+PROTOCOL_VERSION: 5
    #+REQUIRES_TOOLS: rg, jq

    Please fix the prep script.

This module parses and checks such files and renders them; it is shared by
the hub (turns sent as ``content``), the CLI's drop-in ``cross-agent-*``
commands, sync and import, so every front end applies one set of rules.
Parsing follows the seed's receiver: keys are ``[A-Z_]+``, and every line
before the first keyword line is skipped, blank or not (an Emacs mode line
``# -*- mode: org -*-`` or a comment there; seed 004's ``parse_frontmatter``
ends the frontmatter at a non-keyword line only once a key was read). The
seed's receiver let a later key of the same name win;
:func:`parse` refuses a key written twice instead (the hub renumbered the
first ``#+SEQUENCE`` of such a file while every reader took the last, so one
file said two things, review); honest files, which the seed's tools write
with each key once, are unaffected. A leading UTF-8 byte-order mark (some
editors write one) is skipped: the seed's parser lost the first line to it
(``\ufeff#+TITLE:`` is no keyword line), so such a file was refused for a
missing ``TITLE`` (review, seed-004 user run). It stays in the stored text.

The **canonical form** of a turn (what its ``content_sha256`` covers, and so
what an identical retry is recognised by) is the frontmatter without
``SEQUENCE`` (the hub owns sequence numbers, so a retry renumbered by its
sender is still the same turn), with ``TIMESTAMP`` in UTC, followed by the
body with ``\\n`` line ends and no trailing blank lines.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field

from coordhub.errors import Invalid

PROTOCOL_VERSION = "5"  # seed 004's current protocol; other versions get decision "query"
TYPES = ("request", "progress", "query", "pushback", "complete", "release", "escalate")  # seed 004
RELEASE_STATUSES = ("complete", "cancelled", "withdrawn-after-pushback", "abandoned-after-escalation")  # seed 004
REQUIRED = ("TITLE", "CONVERSATION_ID", "MESSAGE_TYPE", "SEQUENCE", "TIMESTAMP", "PROTOCOL_VERSION")
MAX_CONTENT_BYTES = 256 * 1024   # one turn's org text; a conversation turn is prose, not an attachment
MAX_SIGNATURE_BYTES = 16 * 1024  # an armored detached signature is well under 2 KiB
MAX_TITLE = 200
MAX_TOOLS = 32
MAX_SEQUENCE = 2**31 - 1         # a stated #+SEQUENCE, either sign (stored as a 32-bit INTEGER)
MAX_KEYS = 64                    # frontmatter lines; the seed's files carry about eight
CONVERSATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# The one-segment routes beside /api/coord/conversations/{id}: a conversation of such a name could never be read
# there (tests/conversations and tests/mcp/test_ids.py check this list against the hub's routes)
RESERVED_IDS = frozenset({"addresses", "inbox", "keys", "profile", "status", "turns"})
TOOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+@/-]{0,63}")
_KEY_LINE = re.compile(r"#\+([A-Z_]+):[ \t]*(.*)")
BOM = "\ufeff"  # a UTF-8 byte-order mark, skipped before the first line (see the module docstring)
_SIGNATURE = ("-----BEGIN PGP SIGNATURE-----", "-----END PGP SIGNATURE-----")


@dataclass(frozen=True)
class Turn:
    """A parsed, checked message file.

    ``keys`` holds every frontmatter value as written (by key, in file order);
    the typed fields are the ones the hub acts on. ``sequence`` is the
    author's ``#+SEQUENCE`` (advisory: the hub assigns the real one).
    """

    conversation_id: str
    type: str
    title: str
    sequence: int | None
    timestamp: str                     # as written
    protocol_version: str
    requires_tools: tuple[str, ...]
    body: str
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def timestamp_utc(self) -> str:
        """``timestamp`` as UTC in the one fixed form ``YYYY-MM-DDTHH:MM:SSZ`` (seed tools compare it as text)."""
        return utc_text(parse_timestamp(self.timestamp))

    def canonical(self) -> str:
        """The canonical form (see the module docstring)."""
        lines = [f"#+{k}: {utc_text(parse_timestamp(v)) if k == 'TIMESTAMP' else v}"
                 for k, v in self.keys.items() if k != "SEQUENCE"]
        return "\n".join(lines) + "\n\n" + normalize_body(self.body)

    def sha256(self) -> str:
        """Hex SHA-256 of :meth:`canonical` as UTF-8."""
        return hashlib.sha256(self.canonical().encode("utf-8")).hexdigest()


def normalize_body(body: str) -> str:
    """``body`` with ``\\n`` line ends and no trailing blank lines (ending in one ``\\n`` when not empty)."""
    text = body.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    return text + "\n" if text else ""


def decode(data: bytes, what: str = "message file") -> str:
    """The text of a message file's bytes; ``Invalid`` when it is too large or not UTF-8."""
    if len(data) > MAX_CONTENT_BYTES:
        raise Invalid(f"{what} is {len(data)} bytes; the limit is {MAX_CONTENT_BYTES}", field="content",
                      limit=MAX_CONTENT_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"{what} is not UTF-8 (byte {exc.start}): seed-004 files are UTF-8 text",
                      field="content") from None
    if "\x00" in text:
        raise Invalid(f"{what} holds a NUL character: seed-004 files are text", field="content")
    return text


def split(text: str, *, unique: bool = False) -> tuple[dict[str, str], str]:
    """``(frontmatter, body)`` of a message file's text, parsed the way the seed's receiver does (a later key of
    the same name wins; lines before the first keyword line are skipped, see the module docstring).

    Raises ``Invalid`` for more than :data:`MAX_KEYS` keyword lines, for a line before the frontmatter that holds a
    line separator Python's readers split at (seed 004's would read a key there), and with ``unique`` for a key
    written twice (422 naming it; ``repeated``).
    """
    keys: dict[str, str] = {}
    lines = text.removeprefix(BOM).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    while i < len(lines):
        raw = lines[i]
        line = raw.rstrip()
        if not line:
            i += 1
            if keys:
                break
            continue
        m = _KEY_LINE.fullmatch(line)
        if m is None and keys:
            break
        if m is None:  # before the frontmatter: skipped, as seed 004's parser does
            if len(f"{raw}x".splitlines()) > 1:
                raise Invalid(f"a line before the frontmatter holds a line separator ({_breaks(raw)}): a reader "
                              "that splits lines as Python does would read keys in it (seed 004's does)",
                              field="content")
            i += 1
            continue
        # U+2028, U+0085, \v, \f …: one line here, several to Python's readers; tested on the line as written,
        # since rstrip() drops a trailing one (review)
        if len(f"{raw}x".splitlines()) > 1:
            raise Invalid(f"frontmatter line {m.group(1)} holds a line separator ({_breaks(raw)}): a reader that "
                          "splits lines as Python does would read more keys in it (seed 004's does)",
                          field=m.group(1))
        if unique and m.group(1) in keys:
            raise Invalid(f"frontmatter key {m.group(1)} is written twice: write each key once",
                          field=m.group(1), repeated=m.group(1))
        keys[m.group(1)] = m.group(2).strip()
        if len(keys) > MAX_KEYS:
            raise Invalid(f"more than {MAX_KEYS} frontmatter lines", field="content")
        i += 1
    return keys, "\n".join(lines[i:])


def parse(text: str, *, need_sequence: bool = True) -> Turn:
    """Parse and check a message file's text; raise ``Invalid`` naming the first problem.

    Checks, in the seed's order: each key written once (the seed let the last win), every :data:`REQUIRED` key
    present
    (``SEQUENCE`` only when ``need_sequence``), ``MESSAGE_TYPE`` one of
    :data:`TYPES`, ``SEQUENCE`` an integer, ``TIMESTAMP`` ISO 8601 with an
    explicit offset, plus the hub's bounds (conversation id, title and tool
    names). ``PROTOCOL_VERSION`` is not compared here: a mismatch is a
    receiver's *query*, not malformed input.
    """
    if len(text.encode("utf-8")) > MAX_CONTENT_BYTES:
        raise Invalid(f"message is over {MAX_CONTENT_BYTES} bytes", field="content", limit=MAX_CONTENT_BYTES)
    keys, body = split(text, unique=True)
    missing = [k for k in REQUIRED if k not in keys and (need_sequence or k != "SEQUENCE")]
    if missing:
        raise Invalid(f"frontmatter missing required fields: {', '.join(missing)}", field="content",
                      missing=missing)
    return build(keys, body)


def build(keys: dict[str, str], body: str) -> Turn:
    """A :class:`Turn` from frontmatter values and a body; ``Invalid`` when a value is malformed."""
    kind = keys.get("MESSAGE_TYPE", "")
    if kind not in TYPES:
        raise Invalid(f"invalid MESSAGE_TYPE: {kind!r}; expected one of {', '.join(TYPES)}", field="MESSAGE_TYPE",
                      allowed=list(TYPES))
    conversation_id = check_conversation_id(keys.get("CONVERSATION_ID", ""))
    sequence = None
    if "SEQUENCE" in keys:
        raw = keys["SEQUENCE"]
        # the seed read it with int(): a sign is allowed, -3 too (the hub numbers turns itself, so a stated number
        # is advisory); bounded by the stored column (a 32-bit INTEGER in PostgreSQL)
        if not re.fullmatch(r"[+-]?[0-9]{1,10}", raw) or abs(int(raw)) > MAX_SEQUENCE:
            raise Invalid(f"SEQUENCE must be an integer from {-MAX_SEQUENCE} to {MAX_SEQUENCE} (digits, an optional "
                          f"sign; the hub numbers turns 1, 2, 3… itself); got {raw[:40]!r}", field="SEQUENCE")
        sequence = int(raw)
    parse_timestamp(keys.get("TIMESTAMP", ""))
    title = keys.get("TITLE", "")
    if not title or len(title) > MAX_TITLE:
        raise Invalid(f"TITLE must be 1 to {MAX_TITLE} characters", field="TITLE")
    version = keys.get("PROTOCOL_VERSION", "")
    if not version or len(version) > 16:
        raise Invalid("PROTOCOL_VERSION must be a short version such as 5", field="PROTOCOL_VERSION")
    status = keys.get("RELEASE_STATUS")
    if status is not None and (kind != "release" or status not in RELEASE_STATUSES):
        raise Invalid(f"RELEASE_STATUS is for release turns and is one of {', '.join(RELEASE_STATUSES)}; "
                      f"got {status!r} on a {kind}", field="RELEASE_STATUS")
    return Turn(conversation_id=conversation_id, type=kind, title=title, sequence=sequence,
                timestamp=keys["TIMESTAMP"], protocol_version=version,
                requires_tools=parse_tools(keys.get("REQUIRES_TOOLS", "")), body=body, keys=dict(keys))


def check_conversation_id(value: str) -> str:
    """``value`` if it is a conversation slug (letters, digits, ``. _ -``; at most 128) and not one of
    :data:`RESERVED_IDS`; ``Invalid`` otherwise."""
    if not CONVERSATION_ID.fullmatch(value):
        raise Invalid(f"CONVERSATION_ID {value[:140]!r} is not a slug such as prep-fixup "
                      "(letters, digits, . _ -; at most 128 characters)", field="CONVERSATION_ID")
    if value in RESERVED_IDS:
        raise Invalid(f"CONVERSATION_ID {value!r} is the name of a hub route (GET /api/coord/conversations/{value}); "
                      "choose another", field="CONVERSATION_ID")
    return value


def parse_tools(value: str) -> tuple[str, ...]:
    """The tool names of a ``REQUIRES_TOOLS`` value (comma-separated, seed 004); ``Invalid`` when malformed."""
    tools = tuple(dict.fromkeys(t.strip() for t in value.split(",") if t.strip()))
    check_tools(tools, "REQUIRES_TOOLS")
    return tools


def check_tools(tools: tuple[str, ...] | list[str], field_name: str = "tools") -> None:
    """Raise ``Invalid`` unless ``tools`` are at most :data:`MAX_TOOLS` well-formed tool names."""
    if len(tools) > MAX_TOOLS:
        raise Invalid(f"{field_name} names {len(tools)} tools; at most {MAX_TOOLS}", field=field_name)
    bad = [t for t in tools if not TOOL.fullmatch(t)]
    if bad:
        raise Invalid(f"{field_name}: {bad[0][:80]!r} is not a tool name (letters, digits, . _ : + @ / -)",
                      field=field_name)


def parse_timestamp(value: str) -> dt.datetime:
    """An ISO 8601 time with an explicit offset (``Z``, ``±HH:MM``): seed 004's ``#+TIMESTAMP``; else ``Invalid``.

    The time must also be one in UTC (:func:`utc_text`): ``0001-01-01T00:00:00+01:00`` is not, and its conversion
    raised ``OverflowError`` inside the send's transaction (500, review)."""
    try:
        when = dt.datetime.fromisoformat(value.strip()) if len(value) <= 64 else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise Invalid(f"TIMESTAMP must be ISO 8601 with an explicit offset, such as 2026-04-27T04:11:42-05:00; "
                      f"got {value[:64]!r}", field="TIMESTAMP")
    try:
        when.astimezone(dt.UTC)
    except OverflowError:
        raise Invalid(f"TIMESTAMP {value[:64]!r} is outside the years 1 to 9999 in UTC", field="TIMESTAMP") from None
    return when


def _breaks(line: str) -> str:
    """The line-break characters ``str.splitlines`` finds in ``line``, as U+XXXX."""
    found = {ch for ch in line if len(f"a{ch}b".splitlines()) > 1}
    return ", ".join(f"U+{ord(ch):04X}" for ch in sorted(found))


def utc_text(when: dt.datetime) -> str:
    """``when`` as UTC ``YYYY-MM-DDTHH:MM:SSZ``."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(keys: dict[str, str], body: str) -> str:
    """The text of a message file: ``keys`` as frontmatter lines, a blank line, the normalized body."""
    for k, v in keys.items():
        if not re.fullmatch(r"[A-Z_]+", k) or len(f"a{v}b".splitlines()) > 1:
            raise Invalid(f"frontmatter {k!r} cannot be written on one line", field=k)
    return "".join(f"#+{k}: {v}\n" for k, v in keys.items()) + "\n" + normalize_body(body)


def with_key(text: str, key: str, value: str) -> str:
    """``text`` with frontmatter ``key`` set to ``value`` (replaced in place, else appended to the frontmatter).

    Only the keyword line changes, so a sender can renumber ``SEQUENCE``
    before signing without touching anything else it wrote. A leading
    byte-order mark is kept (and not taken for part of the first line).
    """
    if text.startswith(BOM):
        return BOM + with_key(text.removeprefix(BOM), key, value)
    lines = text.split("\n")
    last = -1
    for i, line in enumerate(lines):
        stripped = line.rstrip()
        if not stripped:
            if last >= 0:
                break
            continue
        m = _KEY_LINE.fullmatch(stripped)
        if m is None and last >= 0:
            break
        if m is None:  # before the frontmatter (as split skips it)
            continue
        last = i
        if m.group(1) == key:
            lines[i] = f"#+{key}: {value}" + ("\r" if line.endswith("\r") else "")
            return "\n".join(lines)
    lines.insert(last + 1, f"#+{key}: {value}")
    return "\n".join(lines)


def check_signature(armored: str) -> str:
    """``armored`` if it looks like one ASCII-armored detached OpenPGP signature; ``Invalid`` otherwise."""
    text = armored.strip()
    if len(text) > MAX_SIGNATURE_BYTES or not (text.startswith(_SIGNATURE[0]) and text.endswith(_SIGNATURE[1])):
        raise Invalid("signature must be one ASCII-armored detached OpenPGP signature "
                      f"({_SIGNATURE[0]} … {_SIGNATURE[1]}, at most {MAX_SIGNATURE_BYTES} bytes), "
                      "as `gpg --detach-sign --armor` writes", field="signature")
    return armored
