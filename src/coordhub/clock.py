"""Time as a parameter.

The hub decides lease expiry, presence and ack deadlines on its own clock only
(never a client's). Everything that compares with "now" receives a ``now``
argument or a :class:`Clock`; tests pass a :class:`ManualClock` and move it
instead of sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """A source of the current time in seconds since the Unix epoch (UTC, float)."""

    def now(self) -> float: ...


class SystemClock:
    """The wall clock (``time.time()``)."""

    def now(self) -> float:
        return time.time()


class OffsetClock:
    """The wall clock corrected by an offset another authority measured (``offset`` seconds, added).

    On PostgreSQL the database's clock decides expiry for every hub process
    sharing it (issue 14): the store measures ``database time - local time``
    at the start of each write batch and sets :attr:`offset`, so a hub whose
    own clock is minutes off still stamps and compares the database's time.
    Reads use the offset of the last batch (or of the store's opening).
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset


class ManualClock:
    """A clock that only moves when told to; for tests.

    ``start`` is epoch seconds; :meth:`advance` moves forward by ``seconds``.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO 8601 / RFC 3339 timestamp (``Z`` or an offset; no offset means UTC).

    Raises ``ValueError`` for anything else, and for years before 2000 or after
    9999 (a bound on what a client may claim).
    """
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when.year < 2000:
        raise ValueError(f"{text!r} is before the year 2000")
    return when.timestamp()


_SECONDS: dict[int, str] = {}  # whole second → "YYYY-MM-DDTHH:MM:SS" (a hot answer renders several times a second)
_SECONDS_MAX = 4096


def isoformat(ts: float | None) -> str | None:
    """Render epoch seconds as an RFC 3339 UTC timestamp with microseconds, or None.

    The same text as ``datetime.fromtimestamp(ts, UTC).isoformat()`` with
    ``Z`` for ``+00:00`` (microseconds rounded half to even, and left out
    when they are 0), made from a per-second cache of the date and time:
    about a third of the cost, and every answer and event renders several
    timestamps (issue 15).
    """
    if ts is None:
        return None
    if not 0 <= ts < 253402300799:  # before 1970 or past 9999: the general path (and its errors)
        return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")
    second = int(ts)
    micro = round((ts - second) * 1e6)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    text = _SECONDS.get(second)
    if text is None:
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        text = _SECONDS[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{text}.{micro:06d}Z" if micro else text + "Z"
