"""Per-token rate budgets shared through Redis, for a fleet that already runs it (issue 14 point 2, optional).

The same buckets as :mod:`coordhub.store.ratebuckets` (PostgreSQL), with the
same arithmetic and the same interface (:meth:`RedisBuckets.charge`), so the
hub's charging task (``coordhub.api.app._share_rate_limits``) uses either: a
few times a second each hub charges what it let through, one script call for
every key it saw, and adopts the levels it reads back. What Redis adds: the
database is spared the charges (an UNLOGGED table's UPDATE four times a second
per hub), and a bucket expires by itself once it would be full again, so idle
tokens leave nothing behind. What it costs: one more server to run; when it
is down the hubs limit on their own (fail open, logged once by the caller),
and authentication is not affected (it never touches Redis).

Each bucket is a hash ``<prefix><key>`` with fields ``tokens`` (may go below
zero: a debt, never past one burst) and ``at`` (the time of its last charge,
epoch seconds of the caller's clock: the hubs pass the database's time, so
they agree).

Requires the ``redis`` package: ``pip install 'coordhub[redis]'``.
"""

from __future__ import annotations

import math
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

INSTALL_HINT = "pip install 'coordhub[redis]'"
DEFAULT_PREFIX = "coordhub:rate:"
SCHEMES = ("redis", "rediss", "unix")
TIMEOUT = 1.0  # seconds to connect or answer: a Redis that does not answer must not hold up the charging task

# KEYS: the buckets; ARGV: rate, burst, now, ttl, then what each key spent. Refill each bucket for the time since
# its last charge (capped at the burst), take what was spent, never let the debt pass one burst; a key met for the
# first time starts full. Levels go back as strings: Redis would truncate Lua numbers to integers.
_CHARGE = """
local rate, burst, now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i, key in ipairs(KEYS) do
  local spent = tonumber(ARGV[4 + i])
  local held = redis.call('HMGET', key, 'tokens', 'at')
  local tokens, at = burst, now
  if held[1] then
    at = tonumber(held[2])
    tokens = math.min(burst, tonumber(held[1]) + math.max(0, now - at) * rate)
    at = math.max(at, now)
  end
  tokens = math.max(-burst, tokens - spent)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(at))
  redis.call('EXPIRE', key, ttl)
  out[i] = tostring(tokens)
end
return out
"""


class RedisBuckets:
    """Charges spent requests to buckets in Redis (thread-safe, blocking); the interface of ``SharedBuckets``.

    ``url`` is a redis-py URL (``redis://host:6379/0``, ``rediss://…`` for
    TLS, ``unix:///path.sock``); an extra query parameter ``prefix`` names the
    keys' prefix (default ``coordhub:rate:``), so several fleets can share one
    Redis. Raises ``ValueError`` for another scheme and ``RuntimeError`` (with
    the install command) when the ``redis`` package is missing. Connecting is
    lazy: a Redis that is down fails :meth:`charge`, not the constructor.
    """

    where = "Redis"  # named in the hub's log when the charge fails

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"a rate-limit store is a redis://, rediss:// or unix:// URL, not {url!r}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        self.prefix = next((v for k, v in query if k == "prefix"), DEFAULT_PREFIX)
        plain = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "prefix"])))
        try:
            import redis
        except ImportError:
            raise RuntimeError(f"a Redis rate-limit store needs the redis package: {INSTALL_HINT}") from None
        self._client: Any = redis.Redis.from_url(plain, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
        self._script: Any = self._client.register_script(_CHARGE)
        self._lock = threading.Lock()

    def charge(self, rate: float, burst: int, now: float, spent: dict[str, int]) -> dict[str, float]:
        """Charge ``spent`` (key → requests let through since the last charge); return each key's level now.

        Atomic for all keys (one script). ``now`` is the hubs' shared clock
        (epoch seconds). A bucket expires once it would have refilled from the
        deepest debt to full (``2 × burst / rate`` seconds), when it is the
        same as a new one. Raises redis-py's ``RedisError`` (e.g.
        ``ConnectionError``) when Redis cannot be reached: the caller fails
        open.
        """
        if not spent:
            return {}
        keys = list(spent)
        ttl = max(1, math.ceil(2 * burst / rate)) if rate > 0 else 1
        with self._lock:
            levels = self._script(keys=[self.prefix + k for k in keys],
                                  args=[repr(float(rate)), repr(float(burst)), repr(float(now)), ttl,
                                        *(spent[k] for k in keys)])
        return {k: float(level) for k, level in zip(keys, levels, strict=True)}

    def close(self) -> None:
        """Close the connections."""
        with self._lock:
            self._client.close()
