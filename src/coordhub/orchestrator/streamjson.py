"""Incremental parsing of ``claude -p --output-format stream-json`` output: telemetry and the human log.

The host feeds the worker's stdout to :meth:`Parser.feed` as bytes arrive, in
chunks of any size; a line split across chunks is joined, and nothing already
parsed is read again (seed 003 re-parsed the log's tail, or all of it, on
every status request). Every line is one JSON object (research
orchestrator.md §2): ``system/init`` first, ``assistant``/``user`` messages
with **one content block per line** repeating ``message.id``,
``system/api_retry``, ``rate_limit_event``, ``tool_progress`` heartbeats,
``result`` last. Unknown types and fields are ignored (the schema grows
additively). A line that is not JSON is plain text (a worker run with
``--output-format text``, or a wrapper's message) and is scanned too.

``STATUS:`` and ``STUCK:`` lines are found **wherever they appear**: in plain
text lines, in every assistant ``text`` block (seed 003 looked only in plain
text, so a stream-json worker's STUCK was lost), and in the ``result`` text.
Tool output is never scanned: a ``grep STUCK:`` of the source is not the
worker speaking.

Secrets: every line is masked before it is parsed
(:func:`coordhub.core.redaction.redact`: the worker's own token, given as
``secrets``, and any token-shaped string), so no field of the telemetry and
no human-log line carries one. A worker that runs ``env`` in a failing
command would otherwise put its ``COORD_TOKEN`` into a ``[tool-error]`` line
that the host relays and every session may read.

Bounds: a line longer than ``max_line`` bytes (a tool result holding a whole
file) is skipped up to its newline without being buffered, and counted; text
kept for the human log and the telemetry is cut to a few hundred characters.
Memory per worker is therefore O(``max_line``).

The lines are the worker's to write (any process of its user can append to
its output), so nothing in them is trusted: a number is used only when it is
one the CLI could print (finite, not absurdly large; Python's ``json`` takes
``Infinity``, ``NaN`` and integers of any size, which made the parser raise),
and terminal control characters (:func:`printable`) never reach the human
log or the telemetry, which ``coord log`` and ``coord status`` print on an
operator's terminal.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coordhub.core.redaction import redact

MAX_LINE = 1 << 20  # bytes; far above any event but a tool result carrying a file
MAX_TEXT = 4000  # characters kept of the last assistant text (question detection needs its end)
SHORT = 200  # characters of one human-log line's payload
STORM = 3  # consecutive-or-not 429 retries of one worker that count as a rate-limit storm

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but tab and newline, DEL, C1
MAX_NUMBER = 1e15  # larger numbers in an event are not the CLI's (ms since 1970 are about 2e12)
_MARKER = re.compile(r"^[\s>*_`#-]*(STATUS|STUCK)[*_`]*\s*:[*_`]*\s*(.*?)\s*$")

# USD per million tokens (input, output), for the host's own budget watchdog only: the CLI's
# `total_cost_usd` arrives with the result, too late to stop a run that overspends (cc#32956 shows
# limits being passed). Published list prices of the model families (Anthropic pricing page,
# 2026); an estimate that is only ever compared with a budget, never billed.
PRICES: tuple[tuple[str, float, float], ...] = (("opus", 5.0, 25.0), ("sonnet", 3.0, 15.0), ("haiku", 1.0, 5.0))


@dataclass
class Result:
    """The ``result`` event: how the run ended, as Claude Code reports it.

    Judge by ``is_error``, never by ``subtype``: an auth failure arrives as
    ``subtype: "success"`` with ``is_error: true`` and ``api_error_status: 401``.
    """

    is_error: bool
    subtype: str
    terminal_reason: str | None = None
    text: str | None = None
    num_turns: int | None = None
    cost_usd: float | None = None
    duration_ms: int | None = None
    api_error_status: int | None = None
    errors: list[str] = field(default_factory=list)

    def compact(self) -> dict[str, Any]:
        """The fields the hub keeps (``{is_error, subtype, terminal_reason}``)."""
        return {"is_error": self.is_error, "subtype": self.subtype, "terminal_reason": self.terminal_reason}


@dataclass
class Telemetry:
    """What is known about a worker so far; updated in place by :class:`Parser`.

    ``cost_usd`` is the CLI's own figure once the result is in, before that the
    estimate from token usage (``cost_estimated`` says which). Times are epoch
    seconds. ``permission_denials`` are ``{"tool_name", "target"}`` dicts.
    """

    session_id: str | None = None
    model: str | None = None
    cwd: str | None = None
    claude_version: str | None = None
    turns: int = 0
    cost_usd: float = 0.0
    cost_estimated: bool = True
    last_tool: str | None = None
    last_file: str | None = None
    status_line: str | None = None
    stuck: str | None = None
    last_text: str | None = None
    rate_limited_until: float | None = None
    rate_limit_local: bool = False  # rate_limited_until was computed from this host's clock (a 429 storm)
    rate_limit_rejections: int = 0
    api_retries: int = 0
    api_retries_429: int = 0
    permission_denials: list[dict[str, str]] = field(default_factory=list)
    result: Result | None = None
    lines: int = 0
    events: int = 0
    tool_progress: int = 0
    oversized_lines: int = 0
    commits: int = 0

    def compact(self) -> dict[str, Any]:
        """The telemetry object of a report (the contract's ``telemetry`` field), small and bounded."""
        out: dict[str, Any] = {
            "session_id": self.session_id, "model": self.model, "turns": self.turns,
            "cost_usd": round(self.cost_usd, 6), "last_tool": self.last_tool, "last_file": self.last_file,
            "progress": self.status_line, "status_line": self.status_line,
        }
        if self.rate_limited_until is not None:
            out["rate_limited_until"] = self.rate_limited_until  # what hubs before rate_limited_for read
            if self.rate_limit_local:  # from this host's clock: the hub adds its own clock to what is left
                out["rate_limited_for"] = round(max(0.0, self.rate_limited_until - time.time()), 3)
        if self.permission_denials:
            out["permission_denials"] = self.permission_denials[:20]
        if self.result is not None:
            out["result"] = self.result.compact()
        return out

    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON-ready data (kept in the host's state file, so a restarted host resumes parsing)."""
        return asdict(self)

    @classmethod
    def restore(cls, data: dict[str, Any]) -> Telemetry:
        """The inverse of :meth:`snapshot` (unknown keys ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        result = known.pop("result", None)
        t = cls(**known)
        if isinstance(result, dict):
            t.result = Result(**{k: v for k, v in result.items() if k in Result.__dataclass_fields__})
        return t


class Parser:
    """Feeds on a worker's stdout; keeps :attr:`telemetry` and returns new human-log lines.

    ``now`` is a clock (epoch seconds) used only to stamp nothing but the
    rate-limit reset when the event gives a relative one. ``message_ids`` seen
    are kept only for the current message (blocks of one message arrive on
    consecutive lines), so memory does not grow with the run. ``secrets``
    (the worker's token) are masked in every line, as is any token-shaped
    string, before the line is parsed.
    """

    def __init__(self, telemetry: Telemetry | None = None, max_line: int = MAX_LINE,
                 now: Any = time.time, secrets: Iterable[str] = ()) -> None:
        self.telemetry = telemetry or Telemetry()
        self.secrets = tuple(s for s in secrets if s)
        self.max_line = max_line
        self._now = now
        self._buf = bytearray()
        self._skipping = False
        self._message_id: str | None = None
        self._usage_in = 0
        self._usage_out = 0
        self._rate_status: str | None = None

    # -- bytes to lines -------------------------------------------------------------

    def feed(self, data: bytes) -> list[str]:
        """Parse what ``data`` completes; return the human-log lines it produced (maybe none)."""
        out: list[str] = []
        start = 0
        while start < len(data):
            nl = data.find(b"\n", start)
            piece = data[start:] if nl < 0 else data[start:nl]
            start = len(data) if nl < 0 else nl + 1
            if self._skipping:
                if nl >= 0:
                    self._skipping = False
                continue
            if len(self._buf) + len(piece) > self.max_line:
                self._buf.clear()
                self.telemetry.oversized_lines += 1
                out.append(f"[skip] a line over {self.max_line} bytes")
                self._skipping = nl < 0
                continue
            self._buf += piece
            if nl >= 0:
                line = bytes(self._buf)
                self._buf.clear()
                out.extend(self.line(line))
        return out

    def close(self) -> list[str]:
        """End of stream: parse a last line that had no newline."""
        if self._buf and not self._skipping:
            line = bytes(self._buf)
            self._buf.clear()
            return self.line(line)
        return []

    def line(self, raw: bytes) -> list[str]:
        """Parse one complete line (without its newline)."""
        text = redact(raw.decode("utf-8", errors="replace"), self.secrets).strip()
        if not text:
            return []
        self.telemetry.lines += 1
        try:
            event = json.loads(text) if text[0] == "{" else None
        except (ValueError, RecursionError):  # RecursionError: nested too deep ('{"a":' x 100,000)
            event = None
        if not isinstance(event, dict):
            return self._plain(text)
        self.telemetry.events += 1
        return self.event(event)

    # -- events ---------------------------------------------------------------------

    def event(self, ev: dict[str, Any]) -> list[str]:
        """Apply one stream-json event; unknown types change nothing."""
        kind = ev.get("type")
        if kind == "system":
            return self._system(ev)
        if kind == "assistant":
            return self._assistant(ev)
        if kind == "user":
            return self._user(ev)
        if kind == "result":
            return self._result(ev)
        if kind == "rate_limit_event":
            return self._rate_limit(ev)
        if kind == "tool_progress":
            self.telemetry.tool_progress += 1
        return []

    def _system(self, ev: dict[str, Any]) -> list[str]:
        t, sub = self.telemetry, ev.get("subtype")
        if sub == "init":
            t.session_id = _name(ev.get("session_id")) or t.session_id
            t.model = _name(ev.get("model")) or t.model
            t.cwd = _str(ev.get("cwd"))
            t.claude_version = _name(ev.get("claude_code_version"))
            version = f" (claude {t.claude_version})" if t.claude_version else ""
            return [f"[init] {t.model or '?'} session {(t.session_id or '?')[:8]}{version}"]
        if sub == "api_retry":
            t.api_retries += 1
            status = ev.get("error_status")
            delay = ev.get("retry_delay_ms")
            delay = _number(delay)
            if status == 429:
                t.api_retries_429 += 1
                if t.api_retries_429 >= STORM and t.rate_limited_until is None:
                    # a storm of 429 retries without a rate_limit_event: pause at least a minute (issue 11 point 6)
                    pause = delay / 1000 if delay is not None else 0.0
                    t.rate_limited_until = float(self._now()) + max(60.0, pause)
                    t.rate_limit_local = True
            retry = f", retrying in {delay / 1000:.0f}s" if delay is not None else ""
            return [_short(f"[retry] API error {status or ev.get('error') or '?'} (attempt {ev.get('attempt', '?')}/"
                           f"{ev.get('max_retries', '?')}){retry}")]
        if sub == "permission_denied":
            return self._denied(ev.get("tool_name"), ev.get("tool_input"))
        if sub == "status" and ev.get("status") == "compacting":
            return ["[compact] compacting the conversation"]
        return []

    def _assistant(self, ev: dict[str, Any]) -> list[str]:
        t = self.telemetry
        message = _obj(ev.get("message"))
        mid = _str(message.get("id"))
        main_thread = ev.get("parent_tool_use_id") is None
        if mid is not None and mid != self._message_id:
            self._message_id = mid
            if main_thread:
                t.turns += 1
            self._add_usage(message.get("usage"), _name(message.get("model")) or t.model)
        out: list[str] = []
        error = ev.get("error")
        if isinstance(error, str):
            out.append(f"[error] {_short(error)}")
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str) and main_thread:
                t.last_text = block["text"][-MAX_TEXT:]
                out.extend(self._markers(block["text"]))
            elif block.get("type") == "tool_use":
                out.append(self._tool(block, main_thread))
        return out

    def _tool(self, block: dict[str, Any], main_thread: bool) -> str:
        t = self.telemetry
        name = _name(block.get("name")) or "?"
        args = _obj(block.get("input"))
        target = _target(name, args)
        t.last_tool = name
        path = args.get("file_path") or args.get("notebook_path")
        if isinstance(path, str):
            t.last_file = printable(path)[-SHORT:]
        command = args.get("command")
        if name == "Bash" and isinstance(command, str) and re.search(r"\bgit\s+commit\b", command):
            t.commits += 1
        sub = "" if main_thread else " (subagent)"
        return f"[tool] {name}{sub}" + (f" {target}" if target else "")

    def _user(self, ev: dict[str, Any]) -> list[str]:
        message = _obj(ev.get("message"))
        content = message.get("content")
        out: list[str] = []
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result" and block.get("is_error"):
                body = block.get("content")
                text = body if isinstance(body, str) else json.dumps(body)[:SHORT] if body else ""
                out.append(f"[tool-error] {_short(text)}")
        return out

    def _result(self, ev: dict[str, Any]) -> list[str]:
        t = self.telemetry
        cost = next((c for k in ("total_cost_usd", "total_cost", "cost_usd") if (c := _number(ev.get(k))) is not None),
                    None)
        errors = [_short(str(e)) for e in ev.get("errors", []) if e] if isinstance(ev.get("errors"), list) else []
        text = ev.get("result") if isinstance(ev.get("result"), str) else None
        r = Result(is_error=bool(ev.get("is_error")), subtype=_str(ev.get("subtype")) or "?",
                   terminal_reason=_str(ev.get("terminal_reason")), text=text[-MAX_TEXT:] if text else None,
                   num_turns=_integer(ev.get("num_turns")), cost_usd=cost,
                   duration_ms=_integer(ev.get("duration_ms")), api_error_status=_integer(ev.get("api_error_status")),
                   errors=errors)
        t.result = r
        t.session_id = _name(ev.get("session_id")) or t.session_id
        if r.num_turns is not None:
            t.turns = r.num_turns
        if r.cost_usd is not None:
            t.cost_usd, t.cost_estimated = r.cost_usd, False
        out: list[str] = []
        denials = ev.get("permission_denials")
        for d in denials if isinstance(denials, list) else []:
            if isinstance(d, dict):
                out.extend(self._denied(d.get("tool_name"), d.get("tool_input")))
        if text:
            out.extend(self._markers(text))
        out.append(_result_line(r))
        return out

    def _rate_limit(self, ev: dict[str, Any]) -> list[str]:
        t = self.telemetry
        info = _obj(ev.get("rate_limit_info"))
        status = _name(info.get("status"))
        resets = _number(info.get("resetsAt"))
        if status == "rejected":
            t.rate_limit_rejections += 1
            if resets is not None:
                t.rate_limited_until = float(resets) / (1000.0 if resets > 1e11 else 1.0)  # ms or s
                t.rate_limit_local = False  # the API's own reset time, not this host's clock
        elif status in ("allowed", "allowed_warning"):
            t.rate_limited_until = None
            t.rate_limit_local = False
        if status == self._rate_status:
            return []  # one line per change, not one per event (seed 003 throttled the same way)
        self._rate_status = status
        until = ""
        if status == "rejected" and t.rate_limited_until:
            until = " until " + time.strftime("%H:%M:%SZ", time.gmtime(t.rate_limited_until))
        return [f"[rate_limit] {status or '?'}{until}"]

    def _plain(self, text: str) -> list[str]:
        found = self._markers(text)
        return found or [f"[text] {_short(text)}"]

    def _markers(self, text: str) -> list[str]:
        """``STATUS:``/``STUCK:`` lines of a text (each line on its own; markdown emphasis tolerated)."""
        out = []
        for line in text.splitlines():
            m = _MARKER.match(line)
            if not m:
                continue
            body = _short(m.group(2))
            if m.group(1) == "STUCK":
                self.telemetry.stuck = body or "(no reason given)"
                out.append(f"[stuck] {body}")
            else:
                self.telemetry.status_line = body
                out.append(f"[status] {body}")
        return out

    def _denied(self, tool: Any, args: Any) -> list[str]:
        name = _name(tool) or "?"
        target = _target(name, args if isinstance(args, dict) else {})
        entry = {"tool_name": name, "target": target}
        if entry not in self.telemetry.permission_denials and len(self.telemetry.permission_denials) < 100:
            self.telemetry.permission_denials.append(entry)
            return [f"[denied] {name}" + (f" {target}" if target else "")]
        return []

    def _add_usage(self, usage: Any, model: str | None) -> None:
        """Add one message's token usage to the running cost estimate (until the result gives the real cost)."""
        if not isinstance(usage, dict) or not self.telemetry.cost_estimated:
            return
        def n(key: str) -> int:
            v = _number(usage.get(key))
            return int(v) if v is not None else 0
        # cache writes cost 1.25x input, cache reads 0.1x (Anthropic prompt-caching prices)
        self._usage_in += n("input_tokens") + round(1.25 * n("cache_creation_input_tokens")
                                                    + 0.1 * n("cache_read_input_tokens"))
        self._usage_out += n("output_tokens")
        price_in, price_out = price(model)
        self.telemetry.cost_usd = (self._usage_in * price_in + self._usage_out * price_out) / 1e6


def spent(stream: Path, chunk: int = 1 << 20) -> float:
    """USD a ``claude -p`` run spent, read from its stream-json output file: the ``result``'s ``total_cost_usd``,
    else (a run stopped before its result) the estimate from the token usage of its messages so far, as a
    worker's telemetry has it. 0.0 when the file is missing. The file is read in ``chunk``-byte pieces (the
    caller bounds its size: smoke.OUTPUT_LIMIT)."""
    parser = Parser()
    try:
        with stream.open("rb") as f:
            while piece := f.read(chunk):
                parser.feed(piece)
    except FileNotFoundError:
        return 0.0
    parser.close()
    return parser.telemetry.cost_usd


def price(model: str | None) -> tuple[float, float]:
    """(input, output) USD per million tokens of a model name or alias; the dearest family when unknown."""
    name = (model or "").lower()
    for family, pin, pout in PRICES:
        if family in name:
            return pin, pout
    return PRICES[0][1], PRICES[0][2]


def ends_with_question(text: str | None) -> str | None:
    """The last non-empty line of ``text`` when it ends with a question mark (the worker asked), else None."""
    for line in reversed((text or "").splitlines()):
        stripped = line.strip().rstrip("*_`").strip()
        if stripped:
            return _short(stripped) if stripped.endswith("?") else None
    return None


def _target(name: str, args: dict[str, Any]) -> str:
    for key in ("file_path", "notebook_path", "path", "pattern", "url"):
        if isinstance(args.get(key), str):
            return _short(args[key])
    if isinstance(args.get("command"), str):
        return _short(args["command"].replace("\n", " "))
    return ""


def _result_line(r: Result) -> str:
    took = f" in {_duration(r.duration_ms / 1000)}" if r.duration_ms is not None else ""
    turns = f", {r.num_turns} turns" if r.num_turns is not None else ""
    cost = f", ${r.cost_usd:.2f}" if r.cost_usd is not None else ""
    if not r.is_error:
        return f"[result] completed{took}{turns}{cost}"
    why = r.terminal_reason or r.subtype
    detail = r.text or "; ".join(r.errors) or ""
    return f"[result] error {why}{took}{turns}{cost}" + (f": {_short(detail)}" if detail else "")


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m {s}s" if m else f"{s}s"


def _short(text: str) -> str:
    text = " ".join(printable(text).split())
    return text if len(text) <= SHORT else text[:SHORT - 1] + "…"


def printable(text: str) -> str:
    """``text`` without terminal control characters (C0 but tab and newline, DEL, C1): a worker's words are shown
    on operators' terminals (``coord log``, ``coord status``), where an escape sequence would act."""
    return _CONTROL.sub("", text)


def _name(value: Any) -> str | None:
    """A short name the CLI gives (a model, a tool, a session id): printable, at most :data:`SHORT` characters."""
    text = _str(value)
    return _short(text) or None if text is not None else None


def _number(value: Any) -> float | None:
    """``value`` as a number the CLI could have printed: finite and at most :data:`MAX_NUMBER`; else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        return float(value) if abs(value) <= MAX_NUMBER else None
    return value if math.isfinite(value) and abs(value) <= MAX_NUMBER else None


def _integer(value: Any) -> int | None:
    """``value`` when it is an integer the CLI could have printed (see :func:`_number`), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_NUMBER else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (the wire format is the peer's, never trusted)."""
    return value if isinstance(value, dict) else {}
