"""Redaction: credentials masked in text that hosts and workers supply and every session may read.

A worker runs Bash in a repository anyone may have written to; an ``env``
that fails, or a prompt injection, puts its ``COORD_TOKEN`` into a tool
result, the human log the host relays, a ``STATUS:`` line or a smoke test's
output. Whatever a host or worker sends that other sessions can read (the
relayed log, report reasons and progress, a run's output tail, summary and
findings, the audit trail's post bodies) passes through :func:`redact` on
the hub, and the host masks its worker's own token in the stream it parses.

Token shapes (:data:`PATTERN`), and how much of one a candidate must show:

* the hub's own tokens (:mod:`coordhub.core.tokens`): ``coord_`` and 32
  random bytes in URL-safe base64 (43 characters, the last carrying 4 bits),
  then, since the tag, a dot and a 22-character tag. A candidate needs a
  body of at least :data:`MIN_COORD` (32) token characters, so a token cut
  short with 32 or more showing is still masked; one that shows 31 or fewer
  hides at least 12 of its 43 characters, 11 x 6 + 4 = 70 bits, which no one
  guesses through a hub that counts failed sign-ins (the tag is keyed by the
  hub: it checks nothing offline).
* GitHub's (its token formats, 2021): ``ghp_``/``gho_``/``ghu_``/``ghs_``/
  ``ghr_`` and 36 base-62 characters, 30 random and a 6-character CRC32
  checksum of them; no ``_`` or ``-`` inside. A candidate needs
  :data:`MIN_GITHUB` (20) base-62 characters: one showing 19 or fewer hides
  at least 11 random characters (11 x 5.95 = 65 bits) and the checksum that
  would let a guess be checked offline. (At 30, a cut token could show 29
  random characters and the checksum: 62 guesses, checked offline.)
  ``github_pat_`` and 82 characters (base 62 and one ``_``): at least
  :data:`MIN_PAT` (60).

A candidate also starts a word (no letter, digit or ``_`` before its prefix:
``test_coord_HubStatusReadsOffLoop`` and ``laughs_Count_2024`` are names), except
right after an escape whose last character is a letter or digit, where a token
printed at the start of a line or after a colour still is one: ``\\n``, ``\\t``
and the like (JSON, a ``repr``), ``\\u00e9``, ``\\x1b``, ``%3D`` (a URL) and a
terminal colour's ``...m`` (``\\x1b[1m``). And its body holds a capital letter
or a digit: random base64 or base 62 has one with certainty (no capital or digit
among 20 base-62 characters: (26/62)^20, below 1e-7; among 32 base64 ones:
(28/64)^32, about 3e-12), a ``coord_snake_case_name_of_any_length`` has
neither. What is left masked by mistake is a word that starts with a prefix and
runs 32 (20 for GitHub's, no ``_``) characters with a capital or digit.

Masking keeps the length (every masked character becomes ``*``, the prefix
stays, so a reader sees what kind of secret was there): the relayed log is
addressed by character offsets that the host and the hub must agree on.

Text that continues stored text (the relayed log arrives in chunks, cut
anywhere, even inside a token) is masked with :func:`redact_after`, which
sees the end of what is stored: there a masked character stands for the
token character it hid, so the rest of a token cut at a chunk's end is
masked in the next chunk, and at read time in a chunk stored before this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MIN_COORD = 32  # coord_ body characters a candidate shows (of 43, + "." + 22 when tagged)
MIN_GITHUB = 20  # base-62 characters after gh?_ (of 36: 30 random, 6 checksum)
MIN_PAT = 60  # characters after github_pat_ (of 82)
MASK = "*"
CONTEXT = 128  # characters of stored text that :func:`redact_after` looks at: a github_pat_ token is 93
# after a word character a prefix starts no token, except at the end of one of these escapes
_ESCAPE = re.compile(r"(?:\\[nrtbfv]|\\u[0-9A-Fa-f]{4}|\\x[0-9A-Fa-f]{2}|%[0-9A-Fa-f]{2}|[0-9;\[]m)\Z")
_WORD = re.compile(r"[A-Za-z0-9_]")


def _pattern(extra: str) -> re.Pattern[str]:
    """The token pattern; ``extra`` are further characters a body may hold (stored text: the mask)."""
    b64, b62 = r"A-Za-z0-9_\-" + extra, "A-Za-z0-9" + extra
    return re.compile(r"(?=[cg])(?:"  # the lookahead lets the scan skip to a c or g (five times faster)
                      rf"(coord_)([{b64}]{{{MIN_COORD},}}(?:\.[{b64}]*)?)"
                      rf"|(gh[pousr]_)([{b62}]{{{MIN_GITHUB},}})"
                      rf"|(github_pat_)([{b62}_]{{{MIN_PAT},}}))")


PATTERN = _pattern("")
STORED = _pattern(re.escape(MASK))  # in stored text a masked character is one of the token's
PREFIXES = ("coord_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")  # what PATTERN starts with
_RANDOM = re.compile(r"[A-Z0-9*]")


def _mask(m: re.Match[str]) -> str:
    body_at = m.lastindex or 0  # the body is the last group that took part; its prefix the one before
    prefix, body = m.group(body_at - 1), m.group(body_at)
    at, text = m.start(), m.string
    inside = at > 0 and _WORD.match(text, at - 1) is not None and _ESCAPE.search(text, max(0, at - 6), at) is None
    if inside or _RANDOM.search(body) is None:
        return m.group(0)
    return prefix + MASK * len(body)


def _scan(pattern: re.Pattern[str], text: str) -> str:
    # a substring test per prefix is cheaper than the scan, and most text (a file a tool read) has none
    return pattern.sub(_mask, text) if any(p in text for p in PREFIXES) else text


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every token-shaped string (:data:`PATTERN`) and every one of ``secrets`` masked.

    The answer has the same length as ``text`` (see the module docstring).
    Empty ``secrets`` are ignored; a text holding none of :data:`PREFIXES`
    is returned as it is, unscanned (about 0.1 s for a MiB at worst).
    """
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, MASK * len(secret))
    return _scan(PATTERN, text)


def redact_after(stored: str, text: str) -> str:
    """:func:`redact` of ``text`` that continues ``stored`` (what is kept before it, masked when it was stored).

    A token cut at the end of ``stored`` (its prefix there, and its body
    masked, or not yet long enough to be a candidate) has its rest masked at
    the start of ``text``; so has one whose prefix itself was cut. The end of
    ``stored`` (:data:`CONTEXT` characters) is scanned with ``text`` as one
    string, where a masked character counts as a token character
    (:data:`STORED`). Also for stored text read back, which may hold the
    unmasked rest of a token cut before this rule (``stored`` empty). Same
    length as ``text``.
    """
    before = stored[-CONTEXT:]
    return _scan(STORED, before + text)[len(before):]


def redact_opt(text: str | None) -> str | None:
    """:func:`redact` of ``text``, None for None (for optional report fields)."""
    return None if text is None else redact(text)
