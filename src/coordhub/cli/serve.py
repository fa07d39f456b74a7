"""``coord serve``: run the hub. Every flag also reads its ``COORD_*`` variable (see coordhub.config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from coordhub import jsonlog
from coordhub.cli.common import EXIT_REFUSED, fail
from coordhub.cli.output import help_text
from coordhub.config import setting


def opt(name: str, **extra: Any) -> Any:
    """A Typer option built from the one definition of a setting."""
    s = setting(name)
    return typer.Option(s.default, s.flag, envvar=s.env, help=help_text(s.help), show_default=s.default is not None,
                        **extra)


def _proxies(value: str | None) -> str | None:
    """``--trusted-proxies`` checked: comma-separated IP addresses or networks without host bits (exit 2 on anything
    else: uvicorn reads ``10.0.0.2/24`` as a name no address matches, so it would trust nothing)."""
    if not value or not value.strip():
        return None
    import ipaddress

    parts = [p.strip() for p in value.split(",") if p.strip()]
    for p in parts:
        try:
            ipaddress.ip_network(p)
        except ValueError:
            fail(f"--trusted-proxies takes the balancers' IP addresses (10.0.0.2) or networks without host bits "
                 f"(10.0.0.0/30), not {p!r}", 2)
    return ",".join(parts)


def serve(
    host: str = opt("host"),
    port: int = opt("port", min=1, max=65535),
    data_dir: Path | None = opt("data_dir"),
    database_url: str | None = opt("database_url"),
    no_auth: bool = opt("no_auth"),
    allow_remote_no_auth: bool = opt("allow_remote_no_auth"),
    sqlite_synchronous: str = opt("sqlite_synchronous"),
    workers: int = opt("workers", min=1, max=64),
    writer_process: bool = opt("writer_process"),
    max_body_bytes: int = opt("max_body_bytes", min=1024),
    rate_limit: float = opt("rate_limit", min=0.0),
    rate_burst: int = opt("rate_burst", min=1),
    rate_limit_store: str | None = opt("rate_limit_store"),
    retry_after: int = opt("retry_after", min=1),
    event_detail_bytes: int = opt("event_detail_bytes", min=256),
    event_quota: int = opt("event_quota", min=1),
    event_ring_bytes: int = opt("event_ring_bytes", min=65_536),
    streams_per_token: int = opt("streams_per_token", min=1),
    stream_max_seconds: float = opt("stream_max_seconds", min=0.0),
    max_connections: int = opt("max_connections", min=0),
    header_timeout: float = opt("header_timeout", min=0.1),
    trusted_proxies: str | None = opt("trusted_proxies"),
    keepalive_timeout: int = opt("keepalive_timeout", min=1),
    sweep_seconds: float = opt("sweep_seconds", min=0.0),
    stale_after_hours: float = opt("stale_after_hours", min=0.0, max=24.0 * 365),
    retain_events_hours: float = opt("retain_events_hours", min=0.0),
    retain_messages_hours: float = opt("retain_messages_hours", min=0.0),
    retain_leases_hours: float = opt("retain_leases_hours", min=0.0),
    retain_idempotency_hours: float = opt("retain_idempotency_hours", min=0.0),
    retain_assignments_hours: float = opt("retain_assignments_hours", min=0.0),
    cursor_hold_hours: float = opt("cursor_hold_hours", min=0.0),
    cursor_max_hold_hours: float = opt("cursor_max_hold_hours", min=0.0),
    prune_seconds: float = opt("prune_seconds", min=0.0),
    prune_batch: int = opt("prune_batch", min=1, max=10_000),
    escalation_session: str | None = opt("escalation_session"),
    log_level: str = opt("log_level"),
    log_format: str = opt("log_format"),
    access_log: bool = opt("access_log"),
    metrics_address: str | None = opt("metrics_address"),
) -> None:
    """Run the hub (SQLite in the data dir by default). First start creates the data dir and admin.token."""
    from coordhub.core.retention import Policy
    from coordhub.server import ServerConfig, StartupError
    from coordhub.server import serve as run

    if log_level.lower() not in ("debug", "info", "warning", "error"):
        fail(f"--log-level must be debug, info, warning or error, not {log_level!r}", 2)
    if sqlite_synchronous.upper() not in ("FULL", "NORMAL"):
        fail(f"--sqlite-synchronous must be FULL or NORMAL, not {sqlite_synchronous!r}", 2)
    if log_format.lower() not in ("text", "json"):
        fail(f"--log-format must be text or json, not {log_format!r}", 2)
    metrics_at = None
    if metrics_address:
        host_part, sep, port_part = metrics_address.rpartition(":")
        if not sep or not host_part or not port_part.isdigit() or not 0 < int(port_part) < 65536:
            fail(f"--metrics-address must be HOST:PORT, not {metrics_address!r}", 2)
        metrics_at = (host_part.strip("[]"), int(port_part))
    jsonlog.configure(log_level, log_format.lower())
    cfg = ServerConfig(host=host, port=port, data_dir=data_dir, database_url=database_url, no_auth=no_auth,
                       allow_remote_no_auth=allow_remote_no_auth, sqlite_synchronous=sqlite_synchronous.upper(),
                       max_body_bytes=max_body_bytes, rate_limit=rate_limit, rate_burst=rate_burst,
                       rate_limit_store=rate_limit_store,
                       retry_after=retry_after, sweep_seconds=sweep_seconds, stale_after_hours=stale_after_hours,
                       event_detail_bytes=event_detail_bytes, event_quota=event_quota,
                       event_ring_bytes=event_ring_bytes, streams_per_token=streams_per_token,
                       stream_max_seconds=stream_max_seconds,
                       max_connections=max_connections, header_timeout=header_timeout,
                       trusted_proxies=_proxies(trusted_proxies),
                       keepalive_timeout=keepalive_timeout,
                       retention=Policy(events_hours=retain_events_hours, messages_hours=retain_messages_hours,
                                        leases_hours=retain_leases_hours,
                                        idempotency_hours=retain_idempotency_hours,
                                        assignments_hours=retain_assignments_hours,
                                        cursor_hold_hours=cursor_hold_hours,
                                        cursor_max_hold_hours=cursor_max_hold_hours, batch=prune_batch),
                       prune_seconds=prune_seconds,
                       escalation_session=escalation_session,
                       log_level=log_level.lower(), access_log=access_log, log_format=log_format.lower(),
                       metrics_address=metrics_at, workers=workers,
                       writer_process=writer_process)
    try:
        run(cfg)
    except StartupError as exc:
        fail(str(exc), EXIT_REFUSED)
