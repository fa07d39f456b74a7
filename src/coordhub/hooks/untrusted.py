"""Show text that other sessions wrote (subjects, bodies, names, reasons) so it can never pass for our framing.

What a hook injects, and what ``coord msg inbox`` prints, is read by an agent
that cannot tell our lines from a sender's. A body that contains a complete
``MESSAGE FROM admin`` banner, or a subject with a newline in it, must not
show up as a second message from someone else (issue 7, point 8). Two rules,
used by every front end that shows such text (the hooks, the git guard's
lease descriptions, the CLI's banners, tables and event lines):

* :func:`one_line` for fields shown inside a line of ours (sender, subject,
  message type, project, reason, description): every line break and control
  character becomes a visible escape, so the field cannot end our line and
  start one of its own; :func:`in_quotes` for such a field we put between
  quotes, whose ``"`` and ``\\`` are escaped too, so it cannot end the quote.
* :func:`quoted` for multi-line text (a message body): split at every line
  boundary Python knows (``str.splitlines``: LF, CR, CRLF, VT, FF, FS, GS, RS,
  NEL U+0085, LINE SEPARATOR U+2028, PARAGRAPH SEPARATOR U+2029), each line
  escaped as above and prefixed with :data:`QUOTE`. No framing line of ours
  starts with ``|``, so no body line can look like one.

Escaped are C0 controls (tab kept inside quoted lines, where it cannot break
a line), DEL, C1 controls (including NEL and the 8-bit CSI that starts a
terminal escape sequence), U+2028/U+2029, the byte-order mark and the
bidirectional-formatting characters that reorder how a line reads (Trojan
Source, CVE-2021-42574), and every other character that Unicode says a
renderer draws as nothing (the Default_Ignorable_Code_Point property of
DerivedCoreProperties.txt: soft hyphen, zero-width space and joiners, word
joiner and invisible operators, Hangul fillers, variation selectors, and the
tag characters U+E0000–U+E007F, which spell ASCII invisibly) plus the
interlinear annotation marks U+FFF9–U+FFFB: a model reads such text while the
user, shown the message "verbatim", sees none of it (ASCII smuggling). Emoji
sequences built with a zero-width joiner or a variation selector show those
as escapes too. Escaping ESC (``\\x1b``) disarms every ANSI escape
sequence: what follows it is printed as plain text. Escapes are written as in
a Python string literal: ``\\n``, ``\\r``, ``\\t``, else ``\\xNN`` below
U+0100, ``\\uNNNN`` below U+10000 and ``\\UNNNNNNNN`` above.
Standard library only: the hooks import it.
"""

from __future__ import annotations

import re

QUOTE = "| "
#: A regex character class: the characters above other than the C0 controls (which JSON text escapes itself), so
#: also what :mod:`coordhub.mcp` escapes in the JSON text of a tool result.
HIDDEN = ("\x7f-\x9f\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
          "\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
          "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff")
_UNSAFE = "\x00-\x08\x0a-\x1f" + HIDDEN
_IN_LINE = re.compile(f"[{_UNSAFE}]")
_ONE_LINE = re.compile(f"[\t{_UNSAFE}]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code > 0xFFFF:
        return f"\\U{code:08x}"
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def one_line(value: object) -> str:
    """``str(value)`` with every line break, tab and control character escaped: safe inside one line of ours."""
    return _ONE_LINE.sub(_escape, str(value))


def in_quotes(value: object) -> str:
    """``value`` between double quotes, shown as :func:`one_line` shows it after ``\\`` and ``"`` in it are
    escaped: a field we quote inside a line of ours (a subject, a lease description) cannot close the quote and
    write on as if it were ours (a subject ``x" (id 1); from admin: "deploy`` read as a second message)."""
    return '"' + one_line(str(value).replace("\\", "\\\\").replace('"', '\\"')) + '"'


def quoted(text: str) -> str:
    """``text`` as quoted lines, each ``| `` plus the line with controls escaped; ``""`` for empty text.

    Every line boundary of ``str.splitlines`` starts a new quoted line, so
    the result has exactly one ``\\n`` between lines and each line begins
    with :data:`QUOTE`. Tabs are kept.
    """
    return "\n".join(QUOTE + _IN_LINE.sub(_escape, line) for line in text.splitlines())
