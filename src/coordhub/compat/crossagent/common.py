"""What the seven ``cross-agent-*`` drop-ins share: the hub client, the caller's address, the halt they obey.

Seed 004's scripts found their state in files (``~/.config/cross-agent-comms/HALT``,
``peers.toml``); these find it at the hub named the way every coordhub client
finds it (``COORD_URL``, ``COORD_TOKEN``, ``.claude/identity.json``: see
docs/configuration.md). They take exactly the seed's arguments, so none of
those settings is a flag.

A halt covers this machine when the hub holds one for the fleet, for this
machine (``machine:<m>``) or for this machine's project (``project:<p>``), or
one the hub says applies to the caller's own session (the machine and project
of local settings may differ from the token's).
When the hub cannot be asked, the drop-ins that obey a halt treat the state
as halted, as the seed treated a HALT file it could not read (fail closed).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from coordhub.client import address

if TYPE_CHECKING:
    from coordhub.client.client import CoordClient

EXIT_HALT = 5  # seed 004: every command that obeys HALT exits 5


def err(message: str) -> None:
    """One line on stderr (the seed's scripts print their errors bare)."""
    print(message, file=sys.stderr)


def die(message: str, code: int) -> NoReturn:
    """Print ``message`` on stderr and exit with ``code``."""
    err(message)
    raise SystemExit(code)


@contextmanager
def connect(code: int = 1) -> Iterator[CoordClient]:
    """A client of the hub configured like ``coord`` (env and identity.json); exit ``code`` when it cannot be
    (bad settings, no credential, a token not trusted for this URL)."""
    from coordhub.client import CoordClient, resolve
    from coordhub.errors import CoordError

    try:
        settings = resolve()
    except CoordError as exc:
        die(f"coordhub settings: {exc.message}", code)
    with CoordClient(settings, heartbeat=True) as client:  # an agent running these is active, as with `coord`
        try:
            yield client
        except CoordError as exc:  # no credential, or a URL the token may not go to: nothing was sent
            die(f"coordhub: {exc.message}", code)


class Me:
    """This client's address, asked of the hub only when local settings cannot say (the session of a token)."""

    def __init__(self, client: CoordClient) -> None:
        self.client = client
        self._profile: dict[str, Any] | None = None
        self._machine: str | None = None
        self._project: str | None = None
        self._resolved = False

    def profile(self) -> dict[str, Any]:
        """``GET …/conversations/profile`` (once)."""
        if self._profile is None:
            self._profile = self.client.profile()
        return self._profile

    def _resolve(self) -> None:
        if self._resolved:
            return
        s = self.client.settings
        session = None
        if s.token and not s.session_named:  # the token decides who acts; its id names the machine
            session = self.profile().get("session_id")
        from coordhub.hooks.untrusted import one_line

        notes: list[str] = []
        self._machine, self._project = address.of(s, session, notes=notes)
        for note in notes:  # a repository's identity.json that wanted another address: say it was not taken
            err(f"note: {one_line(note)}")
        self._resolved = True

    @property
    def machine(self) -> str:
        """This machine, lower case (seed 004's ``local``)."""
        self._resolve()
        assert self._machine is not None
        return self._machine

    @property
    def project(self) -> str | None:
        """This client's project, lower case; None outside any project."""
        self._resolve()
        return self._project


def halt_state(client: CoordClient, machine: str, projects: list[str]) -> tuple[list[dict[str, Any]],
                                                                             dict[str, Any] | None]:
    """``(halts, pause)``: the halts standing over ``machine`` or one of ``projects`` (fleet, ``machine:<m>``,
    ``project:<p>``) or that the hub says apply to the caller's session, and the caller's own pause after a resume
    (None when it is not paused).

    Raises what the client raises (``Unreachable``, ``HubError``).
    """
    data = client.call("GET", "/api/coord/halt")
    records: list[Any] = []
    if isinstance(data, dict) and isinstance(data.get("halts"), list):
        records = data["halts"]
    elif isinstance(data, dict) and data.get("halted"):
        records = [data]
    wanted = {"fleet", "*", f"machine:{machine}"} | {f"project:{p}" for p in projects}
    # the hub marks each halt that covers the token's own session (``applies``): that one counts whatever machine
    # local settings name (a repository's .claude/identity.json may name another one)
    found = [h for h in records if isinstance(h, dict) and
             (h.get("applies") is True or str(h.get("scope", "fleet")).lower() in wanted)]
    paused = data.get("paused") if isinstance(data, dict) and isinstance(data.get("paused"), dict) else None
    return found, paused


def halts(client: CoordClient, machine: str, project: str | None) -> list[dict[str, Any]]:
    """The halts standing over ``machine`` and ``project`` (see :func:`halt_state`)."""
    return halt_state(client, machine, [project] if project else [])[0]


def halt_or_unknown(client: CoordClient, machine: str, project: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """``(halts, None)``, or ``([], why)`` when the hub could not say (the caller fails closed)."""
    from coordhub.client import HubError, Unreachable

    try:
        return halts(client, machine, project), None
    except Unreachable as exc:
        return [], f"hub at {client.settings.url} unreachable ({exc})"
    except HubError as exc:
        return [], f"the hub refused to say ({exc.status} {exc.code}: {exc.message})"


def paused_line(pause: dict[str, Any]) -> str:
    """What a session paused after a resume is told (it exits 5 where the seed's HALT file stopped it): the halt is
    gone, so ``cross-agent-resume`` would not help; ``coord engage`` does, once its user says so."""
    scope = pause.get("scope") or "a halt"
    since = f" since {pause['paused_at']}" if pause.get("paused_at") else ""
    return (f"paused{since}: this session was active under the halt of {scope}, which was lifted, and a resume "
            "does not revive sessions; re-engage with `coord engage` once your user says so")


def describe(halt: dict[str, Any]) -> str:
    """One halt in words: ``<reason> (machine:m, by S at T)``, on one line with every control character escaped
    (:func:`~coordhub.hooks.untrusted.one_line`): whoever may halt chose the reason, an orchestrator worker too,
    and it goes to a person's terminal, as ``coord status`` shows it."""
    from coordhub.hooks.untrusted import one_line

    scope = halt.get("scope") or "fleet"
    by = halt.get("halted_by")
    when = halt.get("halted_at")
    return one_line(f"{halt.get('reason') or ''} ({scope}" + (f", by {by}" if by else "")
                    + (f" at {when}" if when else "") + ")")


def banner(found: list[dict[str, Any]], unknown: str | None, clear_hint: bool) -> list[str]:
    """Seed 004's halt banner (status and discover print it before their normal output); [] when not halted."""
    if not found and unknown is None:
        return []
    lines = ["⚠ HALT ACTIVE — cross-agent comms paused"]
    lines += [f"  reason: {describe(h)}" for h in found]
    if unknown is not None:
        lines.append(f"  reason: (halt state unknown: {unknown}; treated as halted)")
    if clear_hint:
        lines.append("  clear: cross-agent-resume (or: coord resume)")
    return [*lines, ""]
