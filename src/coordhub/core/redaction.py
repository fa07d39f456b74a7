"""Redaction: credentials masked in text that hosts and workers supply and every session may read.

A worker runs Bash in a repository anyone may have written to; an ``env``
that fails, or a prompt injection, puts its ``COORD_TOKEN`` into a tool
result, the human log the host relays, a ``STATUS:`` line or a smoke test's
output. Whatever a host or worker sends that other sessions can read (the
relayed log, report reasons and progress, a run's output tail, summary and
findings, the audit trail's post bodies) passes through :func:`redact` on
the hub, and the host masks its worker's own token in the stream it parses.

Token shapes (:data:`PATTERN`):

* the hub's own tokens (:mod:`coordhub.core.tokens`): ``coord_`` and 32
  random bytes in URL-safe base64 (43 characters), then, since the tag, a
  dot and a 22-character tag; a token cut short is still masked;
* GitHub's: ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_`` and 36 base-62
  characters, ``github_pat_`` and 82 (GitHub's token formats, 2021).

A candidate needs at least :data:`MIN_BODY` characters after its prefix and
a digit or a capital letter among them (random base64 has them with
certainty; a long ``coord_snake_case_name`` has neither and is left alone).

Masking keeps the length (every masked character becomes ``*``, the prefix
stays, so a reader sees what kind of secret was there): the relayed log is
addressed by character offsets that the host and the hub must agree on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MIN_BODY = 20  # characters after the prefix; far below any real token, far above an identifier's digits
MASK = "*"
PATTERN = re.compile(r"(coord_|gh[pousr]_|github_pat_)([A-Za-z0-9_-]{" + str(MIN_BODY) + r",}(?:\.[A-Za-z0-9_-]*)?)")
PREFIXES = ("coord_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")  # what PATTERN starts with
_RANDOM = re.compile(r"[A-Z0-9]")


def _mask(m: re.Match[str]) -> str:
    prefix, body = m.group(1), m.group(2)
    if _RANDOM.search(body) is None:
        return m.group(0)
    return prefix + MASK * len(body)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every token-shaped string (:data:`PATTERN`) and every one of ``secrets`` masked.

    The answer has the same length as ``text`` (see the module docstring).
    Empty ``secrets`` are ignored; a text holding none of :data:`PREFIXES`
    is returned as it is, unscanned (about 20 ms for a MiB at worst).
    """
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, MASK * len(secret))
    # a substring test per prefix is cheaper than the scan, and most text (a file a tool read) has none
    return PATTERN.sub(_mask, text) if any(p in text for p in PREFIXES) else text


def redact_opt(text: str | None) -> str | None:
    """:func:`redact` of ``text``, None for None (for optional report fields)."""
    return None if text is None else redact(text)
