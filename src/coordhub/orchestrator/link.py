"""The host's calls to the hub (host → hub only: nothing listens on a worker machine).

Thin over :class:`coordhub.client.CoordClient`: one method per host endpoint
of the orchestrator contract (``/api/coord/orchestrator/…``), plus the file
leases a worker takes with its own token. Writes are never put in the
softfail queue (``queue=False``): the host keeps what it could not deliver in
its own state file and sends it again, so nothing it reports is lost and
nothing is replayed out of order. Errors become three exceptions the host
acts on: :class:`Stale` (409: this attempt or incarnation is no longer the
current one — stop working on it), :class:`Refused` (any other 4xx) and
:class:`~coordhub.client.Unreachable` (try again later: no answer, a 5xx, or
429 — a host with many busy workers may meet its token's rate limit, and a
final report must never be dropped for that).
"""

from __future__ import annotations

from typing import Any

from coordhub.client import CoordClient, HubError, Unreachable
from coordhub.client.settings import ClientSettings

BASE = "/api/coord/orchestrator"
LOG_CHUNK = 64 * 1024  # bytes of human log per request (the contract's limit)

__all__ = ["BASE", "Busy", "HubLink", "LogGap", "Refused", "Stale", "Unreachable", "WorkerLink"]


class Refused(Exception):
    """The hub refused a host request (4xx other than 409); ``code`` is the envelope's."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} [{status} {code}]")
        self.status, self.code, self.message = status, code, message


class Stale(Refused):
    """409: the attempt (or host incarnation) named is no longer current; its work must stop.

    ``current``: for ``stale_incarnation``, the machine's current host incarnation when the hub said."""

    current: int | None = None


class LogGap(Stale):
    """409 ``log_gap``: the hub holds ``size`` characters of the log; send from there."""

    def __init__(self, status: int, code: str, message: str, size: int) -> None:
        super().__init__(status, code, message)
        self.size = size


class Busy(Exception):
    """A file the worker needs is leased by another session; ``holder`` names it when the hub said."""

    def __init__(self, resource: str, holder: str | None, message: str) -> None:
        super().__init__(message)
        self.resource, self.holder = resource, holder


def _call(client: CoordClient, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
    try:
        return client.call(method, path, body=body, params=params, queue=False)
    except HubError as err:
        if err.status == 429:  # the token's rate limit: a moment later it goes through, so retry like a network error
            raise Unreachable(f"rate limited by the hub ({err.message})") from None
        if err.status == 409 and err.code == "log_gap":
            raise LogGap(err.status, err.code, err.message, int(_detail(err, "size") or 0)) from None
        if err.status == 409:
            stale = Stale(err.status, err.code, err.message)
            current = _detail(err, "current")
            if isinstance(current, int) and not isinstance(current, bool):
                stale.current = current
            raise stale from None
        raise Refused(err.status, err.code, err.message) from None


def _detail(err: HubError, key: str) -> Any:
    """A detail member of the error envelope (``{"error": {"code", "message", key: …}}``), or None."""
    body = err.body if isinstance(err.body, dict) else {}
    error = _obj(body.get("error"))
    return error.get(key)


class HubLink:
    """The host's session (``<machine>/agent``) talking to the hub.

    ``settings`` are the host's client settings; ``poll_timeout`` (seconds)
    bounds a long-poll of :meth:`next` (its ``wait`` plus a margin). Each
    method opens its own client on first use per thread role, so a long-poll
    never holds up a heartbeat.
    """

    def __init__(self, settings: ClientSettings, machine: str) -> None:
        self.settings = settings
        self.machine = machine
        self.incarnation: int | None = None  # what the last registration answered: every report names it
        self._clients: dict[str, CoordClient] = {}

    def _client(self, role: str, timeout: float | None = None) -> CoordClient:
        if role not in self._clients:
            s = self.settings if timeout is None else self.settings._replace(timeout=timeout)
            self._clients[role] = CoordClient(s)
        return self._clients[role]

    def close(self) -> None:
        """Close every connection pool."""
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def config(self) -> dict[str, Any]:
        """The hub's active configuration (``GET …/config``): ``{config: {...}, version}`` or the config itself."""
        data = _call(self._client("main"), "GET", f"{BASE}/config")
        return data if isinstance(data, dict) else {}

    def register(self, capabilities: list[str], repos: dict[str, str], slots: int, version: str,
                 recovered: list[dict[str, Any]], problems: list[str]) -> dict[str, Any]:
        """Register this host; ``{machine, host_incarnation, config, heartbeat_seconds, …}``.

        ``recovered`` (what a restart found and did) and ``problems`` are sent
        only when non-empty (contract amendment H1). The incarnation answered
        is kept (:attr:`incarnation`) and sent with every report after.
        """
        body: dict[str, Any] = {"machine": self.machine, "capabilities": capabilities, "repos": repos,
                                "slots": slots, "agent_version": version}
        if recovered:
            body["recovered"] = recovered
        if problems:
            body["problems"] = problems
        answer = dict(_call(self._client("main"), "POST", f"{BASE}/hosts/register", body))
        if isinstance(answer.get("host_incarnation"), int):
            self.incarnation = answer["host_incarnation"]
        return answer

    def heartbeat(self, incarnation: int, free_slots: int, running: list[str], stopping: bool = False,
                  role: str = "heartbeat") -> dict[str, Any]:
        """One heartbeat; ``{ok, config_version, paused, cancel: [ids]}``. ``stopping``: the host shuts down and
        takes no more work (sent only then, so a hub from before it still takes every other heartbeat); ``role``
        names the connection pool (a thread's own)."""
        body: dict[str, Any] = {"machine": self.machine, "host_incarnation": incarnation, "free_slots": free_slots,
                                "running": running}
        if stopping:
            body["stopping"] = True
        return dict(_call(self._client(role), "POST", f"{BASE}/hosts/heartbeat", body))

    def next(self, incarnation: int, wait: float) -> dict[str, Any] | None:
        """Long-poll for an assignment for at most ``wait`` seconds; its dispatch payload, or None."""
        client = self._client("poll", timeout=wait + 15.0)
        data = _call(client, "POST", f"{BASE}/hosts/next",
                     {"machine": self.machine, "host_incarnation": incarnation, "wait": wait})
        found = data.get("assignment") if isinstance(data, dict) else None
        return found if isinstance(found, dict) else None

    def _incarnated(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` naming this host's incarnation (the hub refuses a report from a replaced one: 409
        ``stale_incarnation``); as it is before the first registration."""
        return body if self.incarnation is None else {**body, "host_incarnation": self.incarnation}

    def report(self, assignment: str, body: dict[str, Any]) -> dict[str, Any]:
        """Report on an assignment (``{attempt, state?, reason?, telemetry?, …}``, sent with
        :attr:`incarnation`); the assignment as the hub has it."""
        data = _call(self._client("report"), "POST", f"{BASE}/assignments/{assignment}/report",
                     self._incarnated(body))
        return data if isinstance(data, dict) else {}

    def log(self, assignment: str, attempt: int, offset: int, text: str) -> int:
        """Append human-log ``text`` at character ``offset`` (contract A6: offsets count code points); the size the
        hub now holds. ``LogGap`` carries the hub's size when ``offset`` is past it."""
        data = _call(self._client("report"), "POST", f"{BASE}/assignments/{assignment}/log",
                     {"attempt": attempt, "offset": offset, "text": text})
        return int(data.get("size", offset + len(text))) if isinstance(data, dict) else offset + len(text)

    def next_run(self, incarnation: int, wait: float) -> dict[str, Any] | None:
        """Long-poll for a smoke test or review for at most ``wait`` seconds; its payload, or None."""
        client = self._client("runs", timeout=wait + 15.0)
        data = _call(client, "POST", f"{BASE}/hosts/next-run",
                     {"machine": self.machine, "host_incarnation": incarnation, "wait": wait})
        found = data.get("run") if isinstance(data, dict) else None
        return found if isinstance(found, dict) else None

    def merge_next(self, incarnation: int, wait: float) -> dict[str, Any] | None:
        """Long-poll for a merge run for at most ``wait`` seconds; the run, or None."""
        client = self._client("merge", timeout=wait + 15.0)
        data = _call(client, "POST", f"{BASE}/merges/next",
                     {"machine": self.machine, "host_incarnation": incarnation, "wait": wait})
        found = data.get("run") if isinstance(data, dict) else None
        return found if isinstance(found, dict) else None

    def report_run(self, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Report on a stage run (``{attempt, state, exit_code?, verdict?, …}``, sent with :attr:`incarnation`);
        the run as the hub has it."""
        data = _call(self._client("run-report"), "POST", f"{BASE}/stage-runs/{run_id}/report",
                     self._incarnated(body))
        return data if isinstance(data, dict) else {}

    def github_next(self, incarnation: int) -> list[dict[str, Any]]:
        """Audit-trail posts this host (capability ``github``) should make now."""
        data = _call(self._client("github"), "POST", f"{BASE}/github/next",
                     {"machine": self.machine, "host_incarnation": incarnation})
        posts = data.get("posts") if isinstance(data, dict) else None
        return [p for p in posts if isinstance(p, dict)] if isinstance(posts, list) else []

    def github_report(self, incarnation: int, body: dict[str, Any]) -> dict[str, Any]:
        """Report a post made (``{key, ok, url}``) or failed (``{key, ok: false, error}``)."""
        data = _call(self._client("github"), "POST", f"{BASE}/github/report",
                     {"machine": self.machine, "host_incarnation": incarnation, **body})
        return data if isinstance(data, dict) else {}

    def merge_report(self, incarnation: int, body: dict[str, Any]) -> dict[str, Any]:
        """Report on a merge run (``{batch_id, outcome, …}``); ``{outcome, entries}``."""
        data = _call(self._client("merge-report"), "POST", f"{BASE}/merges/report",
                     {"machine": self.machine, "host_incarnation": incarnation, **body})
        return data if isinstance(data, dict) else {}

    def assignment(self, assignment: str) -> dict[str, Any]:
        """The assignment as the hub has it (``GET …/assignments/{id}``)."""
        data = _call(self._client("main"), "GET", f"{BASE}/assignments/{assignment}")
        return data if isinstance(data, dict) else {}


class WorkerLink:
    """A worker's own session on the hub (the token minted for it): its file leases.

    The client is closed, and the token's trusted-URL record forgotten, by
    :meth:`close`: the token dies with the assignment.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.client = CoordClient(settings)
        self.token = settings.token

    def lease(self, project_key: str, path: str, ttl_hours: float, description: str) -> dict[str, Any]:
        """Lease ``path`` in ``project_key`` for the worker; ``Busy`` when another session holds it."""
        try:
            data = self.client.claim(project_key, path, description, ttl_hours)
        except HubError as err:
            if err.status == 409:
                holder = _detail(err, "holder")
                raise Busy(path, holder if isinstance(holder, str) else None, err.message) from None
            raise Refused(err.status, err.code, err.message) from None
        return data if isinstance(data, dict) else {}

    def release(self, lease_id: str) -> None:
        """Release one of the worker's leases (errors ignored: the hub revokes the token's leases anyway)."""
        try:
            self.client.call("DELETE", f"/api/coord/locks/{lease_id}", queue=False)
        except (HubError, Unreachable):
            pass

    def close(self) -> None:
        """Close the client and forget the token's trusted URL."""
        self.client.close()
        if self.token:
            from coordhub.client import trust

            trust.forget(self.token)


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (the wire format is the peer's, never trusted)."""
    return value if isinstance(value, dict) else {}
