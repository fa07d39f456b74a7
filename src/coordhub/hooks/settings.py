"""The settings of the Claude Code hooks and the git guard, each defined once.

They are read from ``COORD_*`` environment variables only (a hook has no
flags). The hub URL, token and session come from
:mod:`coordhub.client.settings` like every other client's, under the same
rules (issue 7 point 7): identity.json only inside the working directory's
git root and untracked, a token only to a URL trusted for it
(:mod:`coordhub.client.trust`), never the hub's admin token from the data dir (given as the session's token it
acts as the admin, and every run says so: :meth:`coordhub.hooks.invocation.Invocation.admin_note`). A value that does
not parse is reported on stderr and the default is used: a typo in a setting
must never block an agent.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

from coordhub.client.settings import MAX_TIMEOUT
from coordhub.config import Setting

FAIL_MODES = ("open", "closed")
MAX_HALT_WAIT = 50.0  # seconds: below Claude Code's default hook timeout (60 s), which would let the edit through
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")

HOOK_SETTINGS: tuple[Setting, ...] = (
    Setting("hook_fail_mode", str, "open", "What the edit hook and the git guard do when the hub cannot be "
            "asked: `open` allows (and says so on stderr), `closed` denies the edit or refuses the commit.",
            "hook"),
    Setting("hook_timeout", float, 2.0,
            "Seconds a hook waits for each answer from the hub (at most 86400: more waits a day).", "hook"),
    Setting("hook_halt_wait", float, 0.0, "Seconds the edit hook waits for a halt to lift before it denies "
            "an edit (at most 50, under Claude Code's hook timeout). `coord agent` sets 50 for its workers: "
            "their host pauses them under a halt, so an edit caught in between waits for the resume instead "
            "of ending the worker stuck.", "hook"),
    Setting("hook_max_items", int, 5, "Most messages one hook injects into the agent's context; the rest "
            "are counted with a pointer to `coord msg inbox`.", "hook"),
    Setting("hook_max_chars", int, 4000, "Most characters of messages one hook injects; longer bodies are "
            "truncated.", "hook"),
    Setting("hook_release_on_end", bool, False, "`session-end` also releases every lease of the session.",
            "hook"),
    Setting("project", str, None, "Project key of the leases hooks and the guard check (default: "
            "identity.json `project`, else the name of the git repository's main working tree).", "hook"),
    Setting("guard_bypass", bool, False, "`1` lets the git guard accept a refused commit or push; every "
            "bypass is recorded on the hub as a `guard.bypassed` event.", "hook"),
    Setting("guard_bypass_reason", str, None, "Why the guard was bypassed; goes into the event.", "hook"),
)
_BY_NAME = {s.name: s for s in HOOK_SETTINGS}


def _raw(name: str) -> str | None:
    value = os.environ.get(_BY_NAME[name].env)
    return value.strip() if value is not None else None


def _warn(name: str, value: str, expected: str) -> None:
    s = _BY_NAME[name]
    sys.stderr.write(f"coord-hook: ignoring {s.env}={value!r}: expected {expected}; using {s.default!r}\n")


def get_str(name: str) -> str | None:
    """A string setting: the environment value, or the default when unset or empty."""
    value = _raw(name)
    return value if value else _BY_NAME[name].default


def get_bool(name: str) -> bool:
    """A boolean setting: ``1/true/yes/on`` or ``0/false/no/off`` (case-insensitive); else the default."""
    value = _raw(name)
    if value is None:
        return bool(_BY_NAME[name].default)
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    _warn(name, value, "1 or 0")
    return bool(_BY_NAME[name].default)


def get_number(name: str, minimum: float) -> float:
    """A numeric setting (int or float per its definition), at least ``minimum``; else the default."""
    s = _BY_NAME[name]
    value = _raw(name)
    if not value:
        return float(s.default)
    try:
        number = float(s.type(value))
    except ValueError:
        number = float("nan")
    if not number >= minimum or number == float("inf"):  # also rejects NaN
        _warn(name, value, f"a {s.type.__name__} ≥ {minimum:g}")
        return float(s.default)
    return number


class HookSettings(NamedTuple):
    """The resolved hook settings of one run."""

    fail_mode: str
    timeout: float
    halt_wait: float
    max_items: int
    max_chars: int
    release_on_end: bool

    @property
    def fail_closed(self) -> bool:
        """Whether an unreachable hub denies edits and refuses commits."""
        return self.fail_mode == "closed"


def load() -> HookSettings:
    """Read every hook setting from the environment (bad values: a warning on stderr and the default)."""
    mode = (get_str("hook_fail_mode") or "open").lower()
    if mode not in FAIL_MODES:
        _warn("hook_fail_mode", mode, " or ".join(FAIL_MODES))
        mode = "open"
    return HookSettings(
        fail_mode=mode,
        # at most the client's own bound on a request's wait (a day), which refuses more: a longer wait is no
        # different to a hook, and refusing it left the hook unconfigured (edits let through with fail mode open)
        timeout=min(get_number("hook_timeout", 0.05), MAX_TIMEOUT),
        halt_wait=min(get_number("hook_halt_wait", 0.0), MAX_HALT_WAIT),
        max_items=int(get_number("hook_max_items", 1)),
        max_chars=int(get_number("hook_max_chars", 200)),
        release_on_end=get_bool("hook_release_on_end"),
    )


def settings_table() -> str:
    """The Markdown table of the hook settings, as ``docs/hooks.md`` carries it."""
    rows = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    for s in HOOK_SETTINGS:
        default = "" if s.default is None else f"`{s.default}`"
        rows.append(f"| `{s.name}` | `{s.env}` | {default} | {s.help} |")
    return "\n".join(rows)
