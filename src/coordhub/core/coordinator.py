"""The active ``coordinator.yml`` on the hub, and the fleet-wide dispatch pause (issue 11 points 1 and 6).

The hub holds one active configuration (``coord config apply``), versioned,
so every host and the scheduler read the same one: a host learns of a new
version from its heartbeat answer. The stored form is the parsed config as
JSON with every default filled in; it is validated again on the way in by
the same model the CLI uses (:mod:`coordhub.core.orchestrator_config`), and every
problem is answered with its key path.

A rate-limit storm reported by a host pauses dispatch fleet-wide until its
reset time (:func:`pause`): subscription rate limits are per account, so one
machine hitting them means every machine would.
"""

from __future__ import annotations

import json
from typing import Any

from coordhub.clock import isoformat
from coordhub.core.events import emit
from coordhub.core.identity import Actor, require_admin
from coordhub.core.orchestrator_config import Config, ConfigError, validate
from coordhub.errors import Conflict, Invalid
from coordhub.store.tx import Tx

MAX_PAUSE_SECONDS = 6 * 3600.0  # a reported reset time further out than this is capped (a bad clock, a bad value)
_parsed: dict[str, Config] = {}  # stored JSON text -> its Config: validated once per process and version


class NotConfigured(Conflict):
    """No ``coordinator.yml`` was applied to the hub yet (409); ``coord config apply`` does it."""

    code = "not_configured"


def active(tx: Tx) -> Config | None:
    """The active config, or None before the first ``coord config apply``."""
    text = tx.orchestrator.get()["config"]
    if text is None:
        return None
    config = _parsed.get(text)
    if config is None:
        config = Config.model_validate(json.loads(text))
        if len(_parsed) > 16:
            _parsed.clear()
        _parsed[text] = config
    return config


def require(tx: Tx) -> Config:
    """The active config; ``NotConfigured`` (409) when there is none."""
    config = active(tx)
    if config is None:
        raise NotConfigured("no coordinator.yml is applied on this hub: an admin runs `coord config apply` first "
                            "(`coord init` writes one)")
    return config


def render(tx: Tx) -> dict[str, Any]:
    """``GET /orchestrator/config``: ``{version, applied_at, applied_by, config}`` (config null before any apply)."""
    row = tx.orchestrator.get()
    config = active(tx)
    return {"version": row["config_version"], "applied_at": isoformat(row["config_applied_at"]),
            "applied_by": row["config_applied_by"], "config": config.as_json() if config else None}


def apply(tx: Tx, actor: Actor, data: Any, now: float) -> dict[str, Any]:
    """Make ``data`` (the parsed config as JSON) the active config (admin only); return :func:`render`.

    Raises ``Invalid`` (422) with ``problems: [{path, message}]`` naming every
    problem's key path. Applying the same config again keeps its version.
    """
    require_admin(actor, "applying the orchestrator configuration")
    try:
        config = validate(data, "config")
    except ConfigError as exc:
        raise Invalid(str(exc), field="config", problems=[p.model_dump() for p in exc.problems]) from None
    text = json.dumps(config.as_json(), sort_keys=True, separators=(",", ":"))
    row = tx.orchestrator.get()
    if row["config"] != text:
        version = int(row["config_version"]) + 1
        tx.orchestrator.set({"config": text, "config_version": version, "config_applied_at": now,
                             "config_applied_by": actor.session_id})
        emit(tx, "orchestrator.config_applied", now, session_id=actor.session_id, version=version,
             repos=[r.name for r in config.repos], machines=[m.name for m in config.machines])
    return render(tx)


def paused_until(tx: Tx, now: float) -> float | None:
    """When the fleet-wide dispatch pause ends, or None when dispatch is not paused at ``now``."""
    until = tx.orchestrator.get()["paused_until"]
    return float(until) if until is not None and until > now else None


def pause(tx: Tx, until: float, reason: str, now: float, *, by: str | None) -> float | None:
    """Pause dispatch fleet-wide until ``until`` (capped at :data:`MAX_PAUSE_SECONDS` from now); extend only.

    Returns the pause's end, or None when ``until`` is not in the future. A
    pause that already reaches further is kept as it is.
    """
    until = min(until, now + MAX_PAUSE_SECONDS)
    if until <= now:
        return None
    current = paused_until(tx, now)
    if current is not None and current >= until:
        return current
    tx.orchestrator.set({"paused_until": until, "pause_reason": reason})
    emit(tx, "orchestrator.paused", now, session_id=by, paused_until=isoformat(until), reason=reason)
    return until


def unpause(tx: Tx, actor: Actor, now: float) -> dict[str, Any]:
    """Lift the fleet-wide dispatch pause now (admin only); ``{was}``: the pause lifted (:func:`pause_view`), or None.

    A rate-limit report sets the pause (:func:`pause`, at most
    :data:`MAX_PAUSE_SECONDS`); a report can be forged by a worker that
    writes into its own claude's output, and a reset can come early, so the
    operator lifts it. A later report pauses again.
    """
    require_admin(actor, "lifting the dispatch pause")
    was = pause_view(tx, now)
    if was is not None:
        tx.orchestrator.set({"paused_until": None, "pause_reason": None})
        emit(tx, "orchestrator.unpaused", now, session_id=actor.session_id, reason=was["reason"])
    return {"was": was}


def pause_view(tx: Tx, now: float) -> dict[str, Any] | None:
    """``{paused_until, reason}`` while dispatch is paused, else None."""
    row = tx.orchestrator.get()
    if row["paused_until"] is None or row["paused_until"] <= now:
        return None
    return {"paused_until": isoformat(row["paused_until"]), "reason": row["pause_reason"]}
