"""``cross-agent-discover [--json] [--peer NAME] [--enumerate-remote] [--no-cache]``: who can be sent to.

Seed 004 listed the projects under ``~/projects/*/.ai/`` and SSH-probed each
peer of ``peers.toml``. Here everything comes from the hub's addresses
(``GET …/conversations/addresses``): this machine's projects are "Local",
every other machine a peer, **reachable** when one of its sessions is present
(``active`` or ``idle``), else with the freshest presence state as the error.
A turn sent to an address nobody is at waits for it, so an unreachable peer
is still a valid destination. ``--enumerate-remote`` adds each peer's projects
(and sessions) to the table; the JSON always carries them. ``--no-cache`` is
accepted and changes nothing: the hub answers in milliseconds, so nothing is
cached. A halt is shown as a banner; discover is read-only and always runs.

``--peer`` naming no other machine at the hub lists no peer and exits 0, as
the seed did for a name not in ``peers.toml``, but says why (it said "no other
machines", as if the hub knew none): ``(no peer named X at the hub; peers:
…)``, or that X is this machine; with ``--json`` on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from coordhub.cli.entry import quiet_on_closed_stdout
from coordhub.compat.crossagent.common import Me, banner, connect, die, err, halt_or_unknown

PRESENT = ("active", "idle")
FRESHNESS = ("active", "idle", "stale", "offline")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cross-agent-discover", description="Discover cross-agent destinations.")
    p.add_argument("--enumerate-remote", action="store_true", help="List each peer's projects and sessions")
    p.add_argument("--no-cache", action="store_true", help="Accepted for compatibility (nothing is cached)")
    p.add_argument("--peer", help="Limit to one peer machine")
    p.add_argument("--json", action="store_true", help="Machine-readable output")
    return p


def machines(addresses: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Addresses grouped by machine: ``{machine: {"projects": [...], "sessions": [...]}}`` (names sorted)."""
    out: dict[str, dict[str, Any]] = {}
    for a in addresses:
        entry = out.setdefault(a["machine"], {"projects": [], "sessions": []})
        if a["project"] not in entry["projects"]:
            entry["projects"].append(a["project"])
        entry["sessions"] += [{**s, "address": a["address"]} for s in a.get("sessions", [])]
    for entry in out.values():
        entry["projects"].sort()
    return dict(sorted(out.items()))


def peer(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A peer in the seed's JSON shape (``name``, ``host``, ``reachable``, ``error``, ``projects``) plus sessions.

    The JSON always lists projects and sessions; the table only with ``--enumerate-remote``.
    """
    states = [s.get("state") for s in entry["sessions"]]
    reachable = any(s in PRESENT for s in states)
    out: dict[str, Any] = {"name": name, "host": name, "reachable": reachable}
    if not reachable:
        best = next((s for s in FRESHNESS if s in states), None)
        out["error"] = f"no session present (freshest: {best})" if best else "no session"
    out["projects"] = entry["projects"]
    out["sessions"] = entry["sessions"]
    return out


def no_such_peer(name: str, mine: str, known: list[str]) -> str:
    """Why ``--peer name`` lists no peer: it is this machine ``mine``, or none of the ``known`` peer machines."""
    if name.lower() == mine:
        return f"{name} is this machine: see Local"
    return f"no peer named {name} at the hub; peers: {', '.join(known) or '(none)'}"


def render(payload: dict[str, Any], enumerate_remote: bool, url: str, unknown_peer: str | None = None) -> list[str]:
    """The seed's layout: ``Local (<machine>):`` with its projects, then one line per peer; ``unknown_peer``: why
    ``--peer`` matched none (:func:`no_such_peer`)."""
    local = payload["local"]
    lines = [f"Local ({payload['machine']}):"]
    if local:
        lines.append(f"  {', '.join(local)} [{len(local)} project{'s' if len(local) != 1 else ''}]")
    else:
        lines.append("  (no projects declared at the hub)")
    lines.append("")
    lines.append(f"Peers (from the hub at {url}):")
    if not payload["peers"]:
        lines.append(f"  ({unknown_peer or 'no other machines'})")
    for p in payload["peers"]:
        count = len(p.get("sessions", []))
        marker = "✓ reachable" if p["reachable"] else f"✗ UNREACHABLE ({p.get('error', 'unknown')})"
        lines.append(f"  {p['name']:<16} {f'{count} session' + ('s' if count != 1 else ''):<24} {marker}")
        if enumerate_remote:
            lines.append(f"    projects: {', '.join(p.get('projects', []))}")
            lines.append("    sessions: " + ", ".join(f"{s['session_id']} ({s.get('state')})"
                                                     for s in p.get("sessions", [])))
    return lines


@quiet_on_closed_stdout
def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = parser().parse_args(argv)
    with connect() as client:
        from coordhub.client import HubError, Unreachable

        me = Me(client)
        try:
            grouped = machines(client.addresses())
            mine = me.machine
        except (HubError, Unreachable) as exc:
            die(f"cannot read addresses from the hub at {client.settings.url}: {exc}", 1)
        found, unknown = halt_or_unknown(client, mine, me.project)
        url = client.settings.url
    local = grouped.pop(mine, {"projects": [], "sessions": []})
    peers = [peer(name, entry) for name, entry in grouped.items()
             if not args.peer or name == args.peer.lower()]
    payload = {"scanned_at": dt.datetime.now(dt.UTC).isoformat(), "halt_active": bool(found or unknown),
               "machine": mine, "local": local["projects"], "local_sessions": local["sessions"], "peers": peers}
    missing = no_such_peer(args.peer, mine, list(grouped)) if args.peer and not peers else None
    for line in banner(found, unknown, clear_hint=False):
        print(line, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        if missing:
            err(missing)
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        print("\n".join(render(payload, args.enumerate_remote, url, missing)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
