"""``cross-agent-halt [reason] [--tailnet] [--no-stop-watcher]`` and ``cross-agent-resume [--tailnet]``.

Seed 004 halted by writing a HALT file on this machine (``--tailnet``: on
every peer over SSH, reporting each). Here the halt is one record at the hub,
which then refuses every write in its scope (423) and which every drop-in and
hook sees: ``machine:<this machine>``, or with ``--tailnet`` the fleet. A
session may halt or resume its own machine; the fleet needs an admin token
(or the hub's ``admin.token`` on its machine, as ``coord halt`` uses it).

As in the seed, halting also stops the ``cross-agent-watch.path`` systemd
user unit (unless ``--no-stop-watcher``) and resuming starts it, both best
effort; and resuming does not revive agents: sessions that were active under
the halt stay paused (the hub answers their writes with 423 ``paused``) until
each re-engages (``coord engage``), for the seed's two reasons (an
intentional kill is not silently undone; the operator may inspect first).

Halting again while halted gives the standing halt the new reason (the
seed rewrote the HALT file), keeping when it fell; a halt this session may not
lift (an admin's, or the fleet's) keeps its reason and is shown.

Exit codes: 0 done (a halt already standing counts: its reason is shown), 1
the hub refused or is unreachable. ``--tailnet`` without an admin token halts
this machine and exits 1 with ``PARTIAL HALT`` (the seed's local halt always
succeeded whatever its peers did, and a partial halt exited 1); likewise
``cross-agent-resume --tailnet`` lifts this machine's halt, then the fleet's,
and without an admin token exits 1 with ``PARTIAL RESUME``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from coordhub.cli.entry import quiet_on_closed_stdout
from coordhub.compat.crossagent.common import Me, connect, describe, die, err

WATCH_UNIT = "cross-agent-watch.path"


def _systemctl(verb: str) -> None:
    """``systemctl --user <verb> cross-agent-watch.path``, best effort (no systemd, no unit: nothing to do)."""
    try:
        subprocess.run(["systemctl", "--user", verb, WATCH_UNIT], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _machines(client: Any) -> int:
    try:
        return len({a["machine"] for a in client.addresses()})
    except Exception:  # noqa: BLE001 - a count for a summary line; the halt itself already stands
        return 0


def halt_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cross-agent-halt",
                                description="Halt cross-agent comms on this machine (or the whole fleet).")
    p.add_argument("reason", nargs="?", default="", help="Optional human-readable reason")
    p.add_argument("--tailnet", action="store_true", help="Halt the whole fleet, every machine")
    p.add_argument("--no-stop-watcher", action="store_true",
                   help=f"Do not stop the {WATCH_UNIT} systemd user unit")
    return p


def _record(client: Any, reason: str, scope: str) -> str:
    """``POST /halt`` of ``scope`` with ``refresh``; what to say of it. A halt standing there gets the new reason,
    as the seed's second halt rewrote the HALT file; one we may not refresh (an admin's, or a wider halt
    covering us) counts as done and is shown. Raises ``HubError`` for any other refusal, ``Unreachable``."""
    from coordhub.client import HubError

    try:
        answer = client.call("POST", "/api/coord/halt", body={"reason": reason, "scope": scope, "refresh": True},
                             queue=False)
        if isinstance(answer, dict) and answer.get("refreshed"):
            return f"halt at the hub for {scope} already stood; its reason is now: {answer.get('reason')}"
        return f"halt recorded at the hub for {scope}"
    except HubError as exc:
        if exc.status not in (409, 423):  # 409: this scope is halted; 423: a halt covers us already
            raise
        standing = exc.body.get("error", {}).get("halt") if isinstance(exc.body, dict) else None
        return f"already halted: {describe(standing)}" if isinstance(standing, dict) else "already halted"


def _partial(client: Any, me: Me, reason: str, refusal: Any, stop_watcher: bool) -> int:
    """``--tailnet`` the hub refused (a session's token may halt only its own machine): halt this machine, as the
    seed's local halt always succeeded whatever the peers did, and report a partial halt (exit 1, as the seed's)."""
    detail = _record(client, reason, f"machine:{me.machine}")
    if stop_watcher:
        _systemctl("stop")
    print(f"Halting locally ✓ ({detail})")
    print(f"Halting fleet    ✗ ({refusal.message} [{refusal.status} {refusal.code}])")
    print()
    print("PARTIAL HALT: only this machine is halted. Halting every machine needs an admin token: run "
          "cross-agent-halt --tailnet (or coord halt) with one.")
    return 1


@quiet_on_closed_stdout
def main_halt(argv: list[str] | None = None) -> int:
    """``cross-agent-halt`` entry point."""
    args = halt_parser().parse_args(argv)
    with connect() as client:
        from coordhub.client import HubError, Unreachable

        me = Me(client)
        try:
            scope = "fleet" if args.tailnet else f"machine:{me.machine}"
            # The seed wrote a blank reason as an empty HALT file (a re-halt erased the reason, and its banners left
            # the reason line out). The hub keeps no halt without a reason (POST /halt: reason of 1 character or
            # more, and core.halt.set_halt refuses a blank one), so a blank one says where the halt came from.
            reason = args.reason.strip() or f"cross-agent-halt on {me.machine}"
            try:
                detail = _record(client, reason, scope)
            except HubError as exc:
                if not args.tailnet or exc.status != 403:
                    raise
                return _partial(client, me, reason, exc, not args.no_stop_watcher)
            if not args.no_stop_watcher:
                _systemctl("stop")
            where = "fleet" if args.tailnet else "locally"
            print(f"Halting {where} ✓ ({detail})")
            print()
            if args.tailnet:
                print(f"Halt active across {_machines(client)} machine(s).")
            else:
                print("Halt active. Run cross-agent-resume to clear.")
            print("Every write by a session in scope is refused by the hub (423) until then; cross-agent-send and "
                  "cross-agent-recv exit 5.")
            return 0
        except HubError as exc:
            die(f"halt refused by the hub: {exc.message} [{exc.status} {exc.code}]", 1)
        except Unreachable as exc:
            die(f"cannot halt: hub at {client.settings.url} unreachable ({exc})", 1)


def resume_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cross-agent-resume", description="Resume cross-agent comms after a halt.")
    p.add_argument("--tailnet", action="store_true", help="Lift the fleet halt")
    return p


RE_ENGAGE = """
Halt cleared. Watcher restarted.

Agent polling does NOT auto-resume — per the failsafe asymmetry rule,
agents stay paused until you explicitly re-engage each session.
The hub answers writes of every session that was active under the halt
with 423 "paused" until it re-engages: open the relevant Claude session
and tell the agent to resume polling for its conversation (it runs
`coord engage`). `coord resume --engage-all` re-engages every session at once."""


def _lift(client: Any, scope: str) -> tuple[str, list[str]]:
    """``POST /resume`` of ``scope``: what to say of it and who stays paused. Raises ``HubError``, ``Unreachable``."""
    answer = client.call("POST", "/api/coord/resume", body={"scope": scope}, queue=False)
    answer = answer if isinstance(answer, dict) else {}
    paused = [str(p) for p in answer.get("paused") or []]
    return ("HALT cleared" if answer.get("was") else "no HALT was active"), paused


@quiet_on_closed_stdout
def main_resume(argv: list[str] | None = None) -> int:
    """``cross-agent-resume`` entry point.

    ``--tailnet`` lifts this machine's halt first and then the fleet's, as the seed cleared the local HALT file
    before its peers'; when the fleet's cannot be lifted (it needs an admin token) this machine's still is, and it
    reports ``PARTIAL RESUME`` and exits 1, as the seed did when a peer failed."""
    args = resume_parser().parse_args(argv)
    with connect() as client:
        from coordhub.client import HubError, Unreachable

        me = Me(client)
        try:
            detail, paused = _lift(client, f"machine:{me.machine}")
        except HubError as exc:
            die(f"resume refused by the hub: {exc.message} [{exc.status} {exc.code}]", 1)
        except Unreachable as exc:
            die(f"cannot resume: hub at {client.settings.url} unreachable ({exc})", 1)
        _systemctl("start")
        print(f"Resuming locally ✓ ({detail})")
        failed = None
        if args.tailnet:
            try:
                detail, more = _lift(client, "fleet")
                paused += [p for p in more if p not in paused]
                print(f"Resuming fleet   ✓ ({detail})")
            except HubError as exc:
                failed = exc
                print(f"Resuming fleet   ✗ ({exc.message} [{exc.status} {exc.code}])")
            except Unreachable as exc:
                die(f"cannot resume the fleet: hub at {client.settings.url} unreachable ({exc})", 1)
        if paused:
            print(f"Paused until each re-engages: {', '.join(paused)}")
        if args.tailnet:
            print()
            if failed is not None:
                print("PARTIAL RESUME: only this machine's halt is lifted. Lifting the fleet's needs an admin token: "
                      "run cross-agent-resume --tailnet (or coord resume) with one.")
            else:
                print(f"Resume complete across {_machines(client)} machine(s).")
        print(RE_ENGAGE)
        still_halted(client, me)
    return 1 if failed is not None else 0


def still_halted(client: Any, me: Me) -> None:
    """Say on stderr when a wider halt still covers this machine (a fleet or project halt is not lifted here)."""
    from coordhub.compat.crossagent.common import halt_or_unknown

    found, _ = halt_or_unknown(client, me.machine, me.project)
    for h in found:
        err(f"note: still halted: {describe(h)}")


if __name__ == "__main__":
    sys.exit(main_halt())
