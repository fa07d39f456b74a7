"""Every setting, defined once.

Each :class:`Setting` has a name, a type, a default and help text. From it come
the ``COORD_*`` environment variable, the CLI flag (``coord serve --port``),
validation, and the settings table in ``docs/configuration.md`` (a test fails
when the table and this module disagree). Pattern from datasette's
``SETTINGS`` list.

Precedence, highest first: CLI flag, ``COORD_*`` environment variable,
``.claude/identity.json`` (client settings only), default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

DEFAULT_PORT = 8001  # the port the seed-001 protocol used


class Setting(NamedTuple):
    """One setting: ``scope`` is ``"server"`` (coord serve) or ``"client"`` (every other command).

    A NamedTuple rather than a dataclass: the hook script imports this module
    and ``dataclasses`` would add milliseconds to every edit.
    """

    name: str
    type: type
    default: Any
    help: str
    scope: str

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``COORD_DATABASE_URL``."""
        return "COORD_" + self.name.upper()

    @property
    def flag(self) -> str:
        """The CLI flag, e.g. ``--database-url``."""
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("host", str, "127.0.0.1", "Interface the hub listens on.", "server"),
    Setting("port", int, DEFAULT_PORT, "TCP port the hub listens on.", "server"),
    Setting("data_dir", str, None, "Directory for the SQLite database, admin.token and hub.id "
            "(default: $XDG_DATA_HOME/coordhub, else ~/.local/share/coordhub). Admin commands and --admin on "
            "the hub's machine read admin.token from COORD_DATA_DIR too.", "server"),
    Setting("database_url", str, None, "Database to use: a sqlite:///PATH or postgresql://… URL "
            "(default: SQLite file coord.db in the data dir).", "server"),
    Setting("no_auth", bool, False, "Trusted-network mode of seed 001: no tokens, identity taken "
            "from the request body. Refused on a non-loopback host without --allow-remote-no-auth. On loopback "
            "the hub then answers only loopback Host names (DNS-rebinding protection, see api.md).", "server"),
    Setting("allow_remote_no_auth", bool, False, "Permit --no-auth on a non-loopback --host "
            "(anyone who can reach the port can act as anyone).", "server"),
    Setting("sqlite_synchronous", str, "FULL", "SQLite durability: FULL (fsync every commit, "
            "the default) or NORMAL (WAL without fsync on commit; a power cut can lose the last commits).",
            "server"),
    Setting("workers", int, 1, "Serving processes (1 … 64): more use more cores. They share the socket and "
            "the database (writes stay serialised, events reach every worker at once); see docs/scaling.md.",
            "server"),
    Setting("writer_process", bool, False, "Also run one writer process that makes the hot and routine writes "
            "(sends, claims, releases, renewals, revocations, presence, marking read, acks) for the serving "
            "process(es) in shared batches, on a core of its own; the others run where they arrive. See "
            "docs/scaling.md.", "server"),
    Setting("max_body_bytes", int, 1_048_576, "Largest request body accepted; larger answers 413.", "server"),
    Setting("rate_limit", float, 100.0, "Requests per second each token may make on average; more answer 429 "
            "with Retry-After (0 turns the limit off).", "server"),
    Setting("rate_burst", int, 200, "Requests a token may make at once before the rate limit applies.", "server"),
    Setting("rate_limit_store", str, None, "Share the per-token rate limit between hubs through this Redis "
            "(redis://HOST:6379/0, optional ?prefix=KEYS:) instead of the PostgreSQL table; needs "
            "coordhub[redis]. While it is down each hub limits on its own (fail open, logged once); "
            "authentication never depends on it.", "server"),
    Setting("event_detail_bytes", int, 4096, "Largest detail of a client event (POST /api/coord/events), in bytes "
            "of JSON; larger answers 422 (events are metadata).", "server"),
    Setting("event_quota", int, 120, "Client events (POST /api/coord/events) each session may record per minute; "
            "more answer 429.", "server"),
    Setting("event_ring_bytes", int, 33_554_432, "Memory budget of the ring of recent events the hub keeps for "
            "streams (estimated bytes); a subscriber further behind reads the store.", "server"),
    Setting("streams_per_token", int, 64, "Event streams (SSE) and long-polls one session may hold open at once, "
            "across every serving process of `--workers`, and on PostgreSQL across every hub on the database; "
            "more answer 429.", "server"),
    Setting("stream_max_seconds", float, 21_600.0, "Longest an event stream (SSE) lives, in seconds, before the hub "
            "ends it and its client reconnects with Last-Event-ID, authenticating again (so a stream outlives no "
            "credential by more; revocation and sign-out end streams at once). 0: unbounded.", "server"),
    Setting("max_connections", int, 0, "Connections the hub holds at once (0: what the file descriptor limit "
            "allows, less a reserve of 128); past it the connection waiting longest for its request headers is "
            "closed. Streams and long-polls together get at most 7/8 of it.", "server"),
    Setting("trusted_proxies", str, None, "Comma-separated addresses of the load balancers whose X-Forwarded-For "
            "names the client (e.g. 10.0.0.2; a network such as 10.0.0.0/30 only if it holds balancers alone: a "
            "client inside it could name any address). Without it the hub takes every client as the address it "
            "connects from and ignores the header, so no client can claim another's address (failed sign-ins are "
            "limited per address). See docs/scaling.md.", "server"),
    Setting("header_timeout", float, 10.0, "Seconds a connection may take to send a request's headers, counted "
            "from connect or from the previous response (slower connections are closed), and again its body "
            "(slower answers 408).", "server"),
    Setting("keepalive_timeout", int, 5, "Seconds an idle keep-alive connection stays open between requests.",
            "server"),
    Setting("retry_after", int, 30, "Seconds sent in Retry-After when the database is unavailable (seed 001).",
            "server"),
    Setting("sweep_seconds", float, 5.0, "How often expired leases are recorded as expired and unacked "
            "messages redelivered.", "server"),
    Setting("retain_events_hours", float, 168.0, "Hours the event log is kept (0: forever); older events are "
            "pruned unless a live cursor still needs them (see retention.md).", "server"),
    Setting("retain_messages_hours", float, 720.0, "Hours a settled message is kept: a direct message read (and "
            "acked when an ack was required), a broadcast read by every live session; with its receipts (0: "
            "forever). Unread and unacked messages are never pruned.", "server"),
    Setting("retain_leases_hours", float, 168.0, "Hours an ended lease (released, expired, revoked) is kept (0: "
            "forever). Live leases are never pruned.", "server"),
    Setting("retain_idempotency_hours", float, 168.0, "Hours an Idempotency-Key's first response is kept; a retry "
            "after that runs again (0: forever). Keep it longer than any client queues writes offline.", "server"),
    Setting("retain_assignments_hours", float, 720.0, "Hours an orchestrator assignment that ended (done, failed, "
            "cancelled) is kept with its attempts and relayed log (0: forever).", "server"),
    Setting("cursor_hold_hours", float, 24.0, "A session seen within these hours is live: the events after its "
            "notification cursor and after where its last event stream ended are kept past retain_events_hours "
            "(0: every session holds its cursors forever).", "server"),
    Setting("cursor_max_hold_hours", float, 24.0, "Hours past retain_events_hours a cursor may hold an event: an "
            "older one is pruned even if a live cursor still needs it, and that reader is told of the gap (0: no "
            "bound, a live session holds its cursors as long as it stays live).", "server"),
    Setting("prune_seconds", float, 60.0, "How often the pruner removes what is past retention, in batches "
            "(0 turns the pruner off).", "server"),
    Setting("prune_batch", int, 200, "Most rows one pruning batch removes (one short transaction on the "
            "writer).", "server"),
    Setting("stale_after_hours", float, 2.0, "Hours without activity of its holder (no heartbeat, renewal or "
            "write) after which any session may release a no-expiry lease (ttl_hours 0) as a stale takeover: "
            "seed 001's stale-lock rule (0 turns takeovers off).", "server"),
    Setting("escalation_session", str, None, "Session told, with the sender, when an ack-required message is "
            "dead-lettered (unless the message names its own escalate_to).", "server"),
    Setting("log_level", str, "info", "Server log level: debug, info, warning, error.", "server"),
    Setting("log_format", str, "text", "Server log lines: text, or json (one object a line with time, level, "
            "logger, message, request_id, session and route).", "server"),
    Setting("metrics_address", str, None, "Also serve Prometheus /metrics WITHOUT a token on this HOST:PORT "
            "(keep it on loopback or a private network; /metrics on the main port needs an admin token).",
            "server"),
    Setting("access_log", bool, False, "Log one line per HTTP request (client, method, path, status) at info "
            "level; off by default.", "server"),
    Setting("url", str, None, "Hub base URL, e.g. http://10.0.0.5:8001 "
            "(default: identity.json coord_api, else http://127.0.0.1:8001).", "client"),
    Setting("token", str, None, "Bearer token of this session (`coord token create NAME`); sent only to "
            "the URL it was first used with or one trusted with `coord trust URL`. No default: the hub's "
            "admin.token is used only by admin commands and --admin.", "client"),
    Setting("session", str, None, "This session's id, e.g. HOWARD-HOME/claude-main: the identity on a "
            "--no-auth hub (default: identity.json session, else <identity.json machine>/claude-main, else seed 002's "
            "CLAUDE_INSTANCE_ID); refused on a hub that needs tokens unless it is the token's own.", "client"),
    Setting("queue_file", str, None, "Softfail queue of writes that could not reach the hub (seed 001) "
            "(default: .claude/coord-queue.jsonl at the project root: where identity.json is, else the git "
            "root, else $XDG_STATE_HOME/coordhub/coord-queue.jsonl).", "client"),
    Setting("timeout", float, 10.0, "Seconds the client waits for the hub before it queues a write "
            "(above 0, at most 86400).", "client"),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def setting(name: str) -> Setting:
    """Look up a setting by name; KeyError if there is none."""
    return _BY_NAME[name]


def env_value(name: str) -> str | None:
    """The raw ``COORD_*`` environment value of a setting, or None when unset or empty."""
    value = os.environ.get(setting(name).env)
    return value if value else None


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/coordhub``, else ``~/.local/share/coordhub`` (XDG Base Directory spec)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "coordhub"


def settings_table() -> str:
    """The Markdown table of every setting, as ``docs/configuration.md`` carries it (a test compares)."""
    rows = ["| setting | environment | flag | default | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        flag = f"`coord serve {s.flag}`" if s.scope == "server" else f"`coord {s.flag} …`"
        default = "" if s.default is None else f"`{s.default}`"
        rows.append(f"| `{s.name}` | `{s.env}` | {flag} | {default} | {s.help} |")
    return "\n".join(rows)
