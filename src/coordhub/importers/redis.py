"""Seed 002's Redis data, read (never written) and mapped to the hub's import items (issue 10).

The layout, under a prefix ``P`` (``COORD_KEY_PREFIX``, default ``coord``), as
seed 002's README documents it and its client wrote it:

=============================  ======  =====================================================
``P:msg:{id}``                 hash    ``id type from to timestamp requires_ack acknowledged
                                       subject description`` (+ ``ack_by ack_timestamp
                                       ack_comment``); booleans ``"1"``/``"0"``
``P:timeline``                 zset    message ids scored by Unix time (the newest 1000)
``P:inbox:{instance}``         set     ids of the messages to that instance (``all``: broadcasts)
``P:pending``                  set     ids of messages that need an ack and have none
``P:presence``                 hash    ``{instance}.active``, ``.last_heartbeat``, ``.session_id``
``P:notifications:{instance}`` list    JSON ``NotificationEvent``s, newest first
=============================  ======  =====================================================

Only read commands are sent (``PING SCAN TYPE HGETALL GET ZRANGE SMEMBERS
LRANGE``). The value encoding beyond the README is undocumented, so it is
read leniently: a message may also be a JSON string, fields go by several
names (``from``/``from_instance``, ``payload`` as JSON …), times may be ISO
8601 or Unix seconds, booleans any common spelling. What cannot be mapped
is reported (:class:`Problem`) and left out; what was mapped with a change
(a subject cut to the hub's 500 characters, a timestamp taken from the
timeline) is reported as a note. Nothing here raises for bad data.
See :mod:`coordhub.importers.seed002map` for how what is read becomes import items.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from coordhub.core import seed002env
from coordhub.importers.seed002map import Snapshot, decode_json, map_snapshot

INSTALL_HINT = "pip install 'coordhub[redis]'"
PIPELINE = 500         # commands per round trip


class MissingDriver(Exception):
    """The ``redis`` package is not installed; the message says how to install it."""


class RedisUnavailable(Exception):
    """Redis could not be reached or refused the connection; the message is one line."""


def redis_url(url: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The Redis URL: ``url``, else seed 002's ``REDIS_HOST``, ``REDIS_PORT`` and ``REDIS_DB`` read by
    :mod:`coordhub.core.seed002env`'s rules (the Python API's ``CoordinationConfig.from_env`` reads them too).

    Raises ``ValueError`` naming the variable when ``REDIS_PORT`` is no port or ``REDIS_DB`` no database number
    (:func:`~coordhub.core.seed002env.redis_port`, :func:`~coordhub.core.seed002env.redis_db`): a URL built from
    them would read another port or database 0. An IPv6 ``REDIS_HOST`` is put in brackets.
    """
    if url:
        return url
    e = os.environ if env is None else env
    host = seed002env.redis_host(e)
    try:
        port, db = seed002env.redis_port(e), seed002env.redis_db(e)
    except ValueError as exc:
        raise ValueError(f"{exc}: fix it, or give --url redis://HOST:PORT/DB") from None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"redis://{host}:{port}/{db}"


def key_prefix(prefix: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The key prefix: ``prefix``, else seed 002's ``COORD_KEY_PREFIX``, else ``coord``; blanks and a trailing ``:``
    dropped from either (:func:`coordhub.core.seed002env.key_prefix`)."""
    e = os.environ if env is None else env
    return seed002env.key_prefix({"COORD_KEY_PREFIX": prefix} if prefix else e)


def shown_url(url: str) -> str:
    """``url`` as it may be shown and recorded: scheme, host, port and db only (a socket's path for ``unix://``).

    No user name, password (``user:pass@`` or redis-py's ``?password=``),
    other query parameters or fragment: the result is printed, sent as the
    import's ``source`` and kept in its ``import.applied`` event, which every
    session can read. A ``redis://`` db given as ``?db=N`` is shown as ``/N``. Never raises:
    a URL that cannot be parsed, or is not ``redis://``, ``rediss://`` or
    ``unix://``, is shown as a placeholder.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(an unparsable Redis URL)"
    if parts.scheme.lower() not in ("redis", "rediss", "unix"):
        return "(not a redis://, rediss:// or unix:// URL)"
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    db = parse_qs(parts.query).get("db", [""])[-1]
    if parts.scheme.lower() == "unix":
        path = parts.path
    else:
        path = parts.path if re.fullmatch(r"/\d+", parts.path) else (f"/{db}" if db.isdigit() else "")
    return f"{parts.scheme.lower()}://{netloc}{path}"


def db_number(url: str) -> int | None:
    """The database ``url`` names (``/N``, or redis-py's ``?db=N``); 0 for a ``redis://`` URL naming none
    (redis-py's default); None for a URL that cannot be read or names no Redis database (``unix://``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("redis", "rediss"):
        return None
    if re.fullmatch(r"/\d+", parts.path):
        return int(parts.path[1:])
    db = parse_qs(parts.query).get("db", [""])[-1]
    return int(db) if db.isdigit() else 0


def hints(url: str, prefix: str, keys_found: int) -> list[str]:
    """What the user may have missed where the data was looked for (``url``, ``prefix``), one sentence each.

    * Nothing under the prefix: the database or the prefix is likely not the one the team used.
    * A database other than 0: seed 002's bash scripts (publish-message.sh, ack-message.sh) connected to
      ``redis://HOST:PORT`` whatever ``REDIS_DB`` said, so what they wrote is in database 0, while its
      Python client and MCP server used ``REDIS_DB``; both databases may hold part of the history.
    """
    out = []
    shown = shown_url(url)
    if keys_found == 0:
        out.append(f"nothing under {prefix}:* at {shown}: check the database (--url redis://HOST:PORT/DB, else "
                   "REDIS_DB) and the prefix (--prefix, else COORD_KEY_PREFIX) the team's scripts used")
    db = db_number(url)
    if db:
        zero = re.sub(r"/\d+$", "/0", shown) if re.search(r"/\d+$", shown) else shown + "/0"
        out.append(f"seed 002's bash scripts wrote to database 0 whatever REDIS_DB said (its Python client and "
                   f"MCP tools used REDIS_DB={db}): if the team used them, import {zero} too (--url {zero}): "
                   "both databases can be imported into the hub")
    return out


def scrubbed(text: str, url: str) -> str:
    """``text`` (an error's message) with ``url`` as :func:`shown_url` shows it, and any user name, password or
    query value of ``url`` (of three characters or more) replaced by ``***``; for a URL :func:`shown_url`
    cannot show, a placeholder instead of ``text``."""
    shown = shown_url(url)
    if shown.startswith("("):
        return "details withheld: they may quote the URL"
    parts = urlsplit(url)
    secrets = [parts.username, parts.password] + [v for vs in parse_qs(parts.query).values() for v in vs]
    text = text.replace(url, shown)
    for secret in sorted({s for s in secrets if s and len(s) > 2}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def connect(url: str) -> Any:
    """A connected ``redis.Redis`` (bytes in, bytes out); ``RedisUnavailable`` if it does not answer PING.

    Raises :class:`MissingDriver` when the optional ``redis`` package is
    missing, ``ValueError`` for a URL that is not a Redis URL (also one whose
    options the connection refuses when made, such as ``ssl_cert_reqs`` in a
    ``redis://`` URL).
    """
    try:
        import redis
    except ImportError:
        raise MissingDriver(f"the Redis importer needs the redis package: {INSTALL_HINT}") from None
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=60, decode_responses=False)
    except ValueError as exc:
        raise ValueError(f"not a Redis URL: {shown_url(url)} ({scrubbed(str(exc), url)})") from None
    try:
        client.ping()
    except (TypeError, ValueError) as exc:  # an option redis-py parsed but its connection does not take (ssl_*)
        client.close()
        raise ValueError(f"not a Redis URL: {shown_url(url)} ({scrubbed(str(exc), url)})") from None
    except redis.RedisError as exc:
        client.close()
        reason = scrubbed(str(exc).splitlines()[0], url) if str(exc) else type(exc).__name__
        raise RedisUnavailable(f"cannot use Redis at {shown_url(url)}: {reason}") from None
    return client


def parse_renames(pairs: Iterable[str]) -> dict[str, str]:
    """``OLD=NEW`` pairs as a mapping (``ValueError`` naming a pair without ``=`` or with an empty side)."""
    out = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ValueError(f"--rename {pair!r}: expected OLD=NEW, e.g. --rename 'qa team=qa-team'")
        out[old.strip()] = new.strip()
    return out


# ---- reading ---------------------------------------------------------------------------------------------

def read(client: Any, prefix: str, renames: dict[str, str] | None = None,
         progress: Callable[[int], None] | None = None) -> Snapshot:
    """Read everything under ``prefix`` and map it to import items (see the module docstring).

    ``progress`` is called with the number of keys read so far. Raises the
    ``redis`` package's ``RedisError`` when Redis goes away mid-read (nothing
    has been written then).
    """
    snap = Snapshot()
    raw = RawKeys.load(client, prefix, snap, progress or (lambda n: None))
    return map_snapshot(raw, prefix, renames or {}, snap)


class RawKeys:
    """Decoded contents of the keys under a prefix, by layout role."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, str]] = {}
        self.timeline: dict[str, float] = {}
        self.pending: set[str] = set()
        self.inboxes: dict[str, set[str]] = {}
        self.presence: dict[str, str] = {}
        self.queues: dict[str, list[str]] = {}
        self.unreadable: set[str] = set()  # message ids whose key is there but could not be read

    @property
    def inbox_ids(self) -> set[str]:
        return set().union(*self.inboxes.values()) if self.inboxes else set()

    @classmethod
    def load(cls, client: Any, prefix: str, snap: Snapshot, progress: Callable[[int], None]) -> RawKeys:
        raw = cls()
        keys = list(client.scan_iter(match=_glob_escape(prefix) + b":*", count=1000))
        names = [_text(key, snap, "key", "a key name") for key in keys]
        kinds = [_text(t, snap, "key", "a type") for t in _pipelined(client, [("TYPE", key) for key in keys])]
        roles = [_role(name[len(prefix) + 1:]) for name in names]
        for start in range(0, len(keys), PIPELINE):
            window = range(start, min(start + PIPELINE, len(keys)))
            replies = _pipelined(client, [_read_command(keys[i], kinds[i], roles[i][0]) for i in window])
            for i, reply in zip(window, replies, strict=True):
                raw._take(names[i], roles[i][0], roles[i][1], kinds[i], reply, snap)
            progress(window.stop)
        return raw

    def _take(self, key: str, role: str, name: str, kind: str, reply: Any, snap: Snapshot) -> None:
        snap.keys[role] += 1
        expected = {"msg": ("hash", "string"), "timeline": ("zset", "set", "list"), "pending": ("set", "list", "zset"),
                    "inbox": ("set", "list", "zset"), "presence": ("hash",), "notifications": ("list", "set", "zset")}
        if role == "other":
            snap.note("key", key, "not part of seed 002's layout: left alone")
            return
        if kind not in expected[role] or isinstance(reply, Exception):
            if role == "msg":
                self.unreadable.add(name)
            why = f"is a Redis {kind}" if not isinstance(reply, Exception) else f"could not be read ({reply})"
            snap.skip("key", key, f"{why}, not a {' or '.join(expected[role])} as seed 002's {role} key is: "
                                  "left out")
            return
        if role == "msg":
            fields = _fields(reply, kind, key, snap)
            if fields is None:
                self.unreadable.add(name)
            else:
                self.messages[name] = fields
        elif role == "timeline":
            self.timeline = _scored(reply, kind, key, snap)
        elif role == "pending":
            self.pending = set(_members(reply, kind, key, snap))
        elif role == "inbox":
            self.inboxes[name] = set(_members(reply, kind, key, snap))
        elif role == "presence":
            self.presence = {_text(k, snap, "presence", key): _text(v, snap, "presence", key)
                             for k, v in reply.items()}
        else:
            self.queues[name] = _members(reply, kind, key, snap)


def _glob_escape(prefix: str) -> bytes:
    """``prefix`` with Redis glob characters escaped, for SCAN MATCH."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix).encode()


def _role(rest: str) -> tuple[str, str]:
    """``(role, name)`` of a key from what follows the prefix (``msg:ID`` → ``("msg", "ID")``)."""
    head, _, name = rest.partition(":")
    if rest in ("timeline", "pending", "presence"):
        return rest, ""
    if head in ("msg", "inbox", "notifications") and name:
        return head, name
    return "other", rest


def _read_command(key: bytes, kind: str, role: str) -> tuple[Any, ...]:
    """The one read command that fetches a key of Redis type ``kind`` whole (scores only for the timeline)."""
    if kind == "zset":
        return ("ZRANGE", key, 0, -1, "WITHSCORES") if role == "timeline" else ("ZRANGE", key, 0, -1)
    return {"hash": ("HGETALL", key), "string": ("GET", key), "set": ("SMEMBERS", key),
            "list": ("LRANGE", key, 0, -1)}.get(kind, ("TYPE", key))


def _pipelined(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Run read commands in round trips of :data:`PIPELINE` (no MULTI); a command's error is its reply."""
    out: list[Any] = []
    for start in range(0, len(commands), PIPELINE):
        pipe = client.pipeline(transaction=False)
        for command in commands[start:start + PIPELINE]:
            pipe.execute_command(*command)
        out += pipe.execute(raise_on_error=False)
    return out


def _text(value: Any, snap: Snapshot, kind: str, ref: str) -> str:
    """A Redis reply as text: UTF-8, or with invalid bytes replaced (and a note)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    data = bytes(value)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        snap.note(kind, ref, "not UTF-8: invalid bytes replaced by U+FFFD")
        return data.decode("utf-8", "replace")


def _fields(reply: Any, kind: str, key: str, snap: Snapshot) -> dict[str, str] | None:
    """A message's fields: a hash as is, a string parsed as a JSON object (nested ``payload`` kept as JSON)."""
    if kind == "hash":
        return {_text(k, snap, "message", key): _text(v, snap, "message", key) for k, v in reply.items()}
    text = _text(reply, snap, "message", key)
    data, why = decode_json(text)
    if why is not None:
        snap.skip("message", key, f"a string that is not JSON ({why}): left out")
        return None
    if not isinstance(data, dict):
        snap.skip("message", key, "a JSON value that is not an object: left out")
        return None
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def _members(reply: Any, kind: str, key: str, snap: Snapshot) -> list[str]:
    """The members of a set, list or (unscored) sorted set, as text."""
    return [_text(m, snap, "key", key) for m in reply]


def _scored(reply: Any, kind: str, key: str, snap: Snapshot) -> dict[str, float]:
    """Timeline ids and their scores (0 when the timeline is not a sorted set)."""
    if kind != "zset":
        return dict.fromkeys(_members(reply, kind, key, snap), 0.0)
    return {_text(m, snap, "key", key): float(score) for m, score in reply}
