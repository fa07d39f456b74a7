"""``coord serve``: open the store, make sure an admin token exists, and serve HTTP until signalled.

Start-up failures (port in use, database unreachable, data dir not writable,
``--no-auth`` on a public interface) raise :class:`StartupError` with a
one-line message; the CLI prints it without a traceback and exits 1.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from coordhub import __version__
from coordhub.api.hosts import is_loopback
from coordhub.config import DEFAULT_PORT, default_data_dir
from coordhub.core.identity import SYSTEM_SESSION, Actor, validate_session_id
from coordhub.core.retention import Policy
from coordhub.errors import Invalid, Unavailable
from coordhub.heap import settle_heap
from coordhub.store import files

log = logging.getLogger("coordhub")

ADMIN_TOKEN_FILE = "admin.token"
HUB_ID_FILE = "hub.id"  # beside admin.token: which hub that token belongs to (issue 7 point 2)
SYSTEM = Actor(SYSTEM_SESSION, is_admin=True)  # the hub itself, for start-up bookkeeping


@dataclass
class ServerConfig:
    """The resolved settings of one ``coord serve`` run."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path | None = None
    database_url: str | None = None
    no_auth: bool = False
    allow_remote_no_auth: bool = False
    sqlite_synchronous: str = "FULL"
    max_body_bytes: int = 1_048_576
    rate_limit: float = 100.0
    rate_burst: int = 200
    rate_limit_store: str | None = None  # a Redis URL (coordhub.store.redisbuckets); None: the database's table
    retry_after: int = 30
    event_detail_bytes: int = 4096
    event_quota: int = 120
    event_ring_bytes: int = 33_554_432
    streams_per_token: int = 64
    stream_max_seconds: float = 21_600.0
    max_connections: int = 0
    header_timeout: float = 10.0
    trusted_proxies: str | None = None
    keepalive_timeout: int = 5
    sweep_seconds: float = 5.0
    stale_after_hours: float = 2.0
    escalation_session: str | None = None
    retention: Policy = field(default_factory=Policy)
    prune_seconds: float = 60.0
    log_level: str = "info"
    access_log: bool = False
    log_format: str = "text"
    metrics_address: tuple[str, int] | None = None
    workers: int = 1
    writer_process: bool = False

    def resolved_data_dir(self) -> Path:
        """The data directory, defaulting per :func:`default_data_dir`."""
        return self.data_dir if self.data_dir is not None else default_data_dir()

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``sqlite:///<data-dir>/coord.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir() / 'coord.db'}"


class StartupError(Exception):
    """The hub cannot start; the message says why in one line."""


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the caught signal after a graceful shutdown, ending open streams at once.

    uvicorn re-sends SIGTERM/SIGINT to the process once it has stopped, which
    kills it before the store is closed (exit -15) or turns into a
    KeyboardInterrupt (exit 130). A signal here means "stop cleanly": the
    store closes and ``coord serve`` exits 0.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()
        self._on_exit()  # open event streams end now, not at the end of the shutdown's grace


def prepare_data_dir(path: Path) -> None:
    """Create the data dir (0700, as every directory made for it) and prove it is writable, or raise ``StartupError``.

    An existing data dir that group or others may read is tightened to 0700,
    with a warning line on stderr (issue 7, point 6): it holds ``admin.token``
    and, by default, the database.
    """
    try:
        files.private_dir(path)
    except OSError as exc:
        raise StartupError(f"cannot create data dir {path}: {exc.strerror or exc}") from exc
    try:
        old = files.tighten_dir(path)
    except OSError as exc:
        raise StartupError(f"data dir {path} is open to group or others and cannot be made private (0700): "
                           f"{exc.strerror or exc}; fix its mode or pick another --data-dir") from exc
    if old is not None:
        print(f"coordhub: warning: data dir {path} was open to group or others (mode {old:o}); "
              "tightened to 0700", file=sys.stderr)
    try:
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"data dir {path} is not writable: {exc.strerror or exc}") from exc


def write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` with mode 0600, atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket now, so a busy port is a clear error rather than a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"port {port} on {host} is already in use (another hub? pick one with --port)") from exc
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _rate_limit_store(url: str | None) -> Any:
    """The Redis buckets of ``--rate-limit-store`` (None without one); ``StartupError`` for a bad URL or no driver."""
    if not url:
        return None
    from coordhub.store.redisbuckets import RedisBuckets

    try:
        return RedisBuckets(url)
    except (ValueError, RuntimeError) as exc:
        raise StartupError(f"--rate-limit-store: {exc}") from exc


def serve(cfg: ServerConfig) -> None:
    """Run the hub in the foreground until SIGINT/SIGTERM; raise ``StartupError`` if it cannot start.

    With ``cfg.workers`` > 1 this process prepares the database and the
    listening socket, then supervises that many serving processes
    (:mod:`coordhub.workers`).
    """
    if cfg.escalation_session is not None:
        try:
            validate_session_id(cfg.escalation_session, "--escalation-session")
        except Invalid as exc:
            raise StartupError(exc.message) from exc
    if cfg.no_auth and not is_loopback(cfg.host) and not cfg.allow_remote_no_auth:
        raise StartupError(f"refusing --no-auth on {cfg.host}: anyone who reaches it could act as any session; "
                           "bind to 127.0.0.1 or add --allow-remote-no-auth")
    checked = _rate_limit_store(cfg.rate_limit_store)  # a bad URL or a missing driver stops the start here
    if checked is not None:
        checked.close()  # each serving process opens its own (run_app)
    data_dir = cfg.resolved_data_dir()
    prepare_data_dir(data_dir)
    if cfg.writer_process:
        from coordhub.workers import check_link_dir

        check_link_dir()
    sock = bind(cfg.host, cfg.port)
    try:
        store, hub, new_token = _open_hub(cfg)
    except StartupError:
        sock.close()
        raise
    _announce(cfg, store.name, store.durability, data_dir / ADMIN_TOKEN_FILE, new_token)
    if cfg.workers > 1 or cfg.writer_process:
        from coordhub import workers

        store.close()  # each worker opens its own; this process only supervises
        try:
            workers.supervise(cfg, sock)
        finally:
            sock.close()
        return
    try:
        run_app(cfg, store, hub, sock)
    finally:
        store.close()
        sock.close()


def _open_hub(cfg: ServerConfig, worker: int | None = None) -> tuple[Any, Any, bool]:
    """Open (and migrate) the store; make sure the admin token and hub id exist. ``(store, hub, new_token)``.

    ``worker`` is the serving process's number under ``--workers`` (the
    supervisor has written the admin token already; a worker only reads it).
    """
    from coordhub.core import tokens
    from coordhub.core.halt import Exempt
    from coordhub.core.hub import Hub
    from coordhub.store import open_store

    try:
        store = open_store(cfg.resolved_database_url(), sqlite_synchronous=cfg.sqlite_synchronous,
                           shared=cfg.workers > 1 or cfg.writer_process)
        store.open()
    except Unavailable as exc:
        raise StartupError(f"database unreachable: {exc.message}") from exc
    except (OSError, ValueError, RuntimeError) as exc:
        raise StartupError(f"cannot open the database {cfg.resolved_database_url()}: {exc}") from exc
    hub = Hub(store, escalation_session=cfg.escalation_session, stale_after_hours=cfg.stale_after_hours)
    new = None
    if worker is None:
        token_path = cfg.resolved_data_dir() / ADMIN_TOKEN_FILE
        existing = token_path.read_text().strip() if token_path.exists() else None
        new = hub.mutate_sync(SYSTEM, lambda tx, now: tokens.ensure_admin(tx, existing, now),
                              during_halt=Exempt.BOOTSTRAP).body
        if new:
            write_secret(token_path, new)
    hub.hub_id = hub.query_sync(lambda tx, now: tx.meta.get("hub_id"))
    if worker is None:
        write_secret(cfg.resolved_data_dir() / HUB_ID_FILE, hub.hub_id or "")
    return store, hub, bool(new)


def run_app(cfg: ServerConfig, store: Any, hub: Any, sock: socket.socket, worker: int | None = None) -> None:
    """Build the app on ``hub`` and serve it on the listening ``sock`` until signalled (one process)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from coordhub.api.app import build_routes, create_app
    from coordhub.api.connections import connection_budget, guarded_protocol, raise_fd_limit
    from coordhub.api.limits import Limits

    fd_limit = raise_fd_limit()
    connections, streams = connection_budget(fd_limit, cfg.max_connections)
    limits = Limits(event_detail_bytes=cfg.event_detail_bytes, event_quota=cfg.event_quota,
                    event_ring_bytes=cfg.event_ring_bytes, streams_per_token=cfg.streams_per_token,
                    max_streams=streams, header_timeout=cfg.header_timeout,
                    stream_max_seconds=cfg.stream_max_seconds)
    app = create_app(hub, no_auth=cfg.no_auth, max_body_bytes=cfg.max_body_bytes, sweep_seconds=cfg.sweep_seconds,
                     retry_after=cfg.retry_after, rate_limit=cfg.rate_limit, rate_burst=cfg.rate_burst, limits=limits,
                     loopback_only=cfg.no_auth and is_loopback(cfg.host), retention=cfg.retention,
                     prune_seconds=cfg.prune_seconds,
                     metrics_address=cfg.metrics_address if worker in (None, 1) else None,
                     rate_buckets=_rate_limit_store(cfg.rate_limit_store))
    app.state.max_connections = connections
    app.state.worker = worker
    database_slots = hub.store.stream_slots(cfg.streams_per_token)
    if database_slots is not None:  # one session's streams_per_token across every hub on the database
        app.state.streams.share_database(database_slots)
    elif worker is not None:  # across the serving processes of this hub
        app.state.streams.share(cfg.resolved_data_dir())
    log.info("file descriptors: %d; connections at once: %d; streams and long-polls: %d", fd_limit, connections,
             streams)
    http = guarded_protocol(AutoHTTPProtocol, header_timeout=cfg.header_timeout, max_connections=connections)
    # JSON lines: uvicorn's loggers propagate to the root logger `coord serve` configured, not to uvicorn's own
    log_config: Any = None if cfg.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    # uvicorn trusts X-Forwarded-For from loopback unless told otherwise: any local process (or a proxy on the
    # host passing the header through) could then claim any address, and spend another client's sign-in budget
    config = uvicorn.Config(app, log_level=cfg.log_level, access_log=cfg.access_log, timeout_graceful_shutdown=5,
                            http=http, timeout_keep_alive=cfg.keepalive_timeout, log_config=log_config,
                            proxy_headers=bool(cfg.trusted_proxies), forwarded_allow_ips=cfg.trusted_proxies or "")
    build_routes(app)
    settle_heap()
    _Server(config, on_exit=app.state.streams.stop_streams).run(sockets=[sock])


def _redacted(url: str) -> str:
    """A database URL with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(":" + parts.password + "@", ":***@")).geturl()


def _announce(cfg: ServerConfig, backend: str, durability: str, token_path: Path, new_token: bool) -> None:
    out = sys.stderr
    where = f"http://{cfg.host}:{cfg.port}" if ":" not in cfg.host else f"http://[{cfg.host}]:{cfg.port}"
    print(f"coordhub {__version__} serving on {where}", file=out)
    print(f"  database: {_redacted(cfg.resolved_database_url())} ({durability})", file=out)
    print(f"  admin token: {token_path}{' (new)' if new_token else ''}", file=out)
    if cfg.workers > 1 or cfg.writer_process:
        extra = " and one writer process" if cfg.writer_process else ""
        print(f"  workers: {cfg.workers} serving processes{extra}", file=out)
    if cfg.no_auth:
        print("  WARNING: --no-auth: NO AUTHENTICATION. Any client can act as any session, read every "
              "message and release any lease. Use only on a trusted network.", file=out)
    out.flush()
