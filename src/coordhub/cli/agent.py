"""``coord agent``: run this machine's worker host (thin: the host lives in :mod:`coordhub.orchestrator.host`).

Which machine: ``--machine``, else this computer's host name, matched (case
insensitively) against the machines of the hub's active ``coordinator.yml``.
Its repos and their paths come from that configuration (``repo_paths``);
``--repo NAME=PATH`` overrides one. A path that is not a git repository is
reported (on the terminal and to the hub) and that repo is not offered.

The token is the machine's: an admin mints it once with ``coord token create
<machine>/agent`` and the host is started with ``--token`` / ``COORD_TOKEN``.
``--install-service`` writes a systemd user unit that runs this command at
login (or boot, with lingering) and restarts it on failure, as seed 003's
installer did; the token goes in a 0600 environment file beside it.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from coordhub.cli.common import EXIT_AUTH, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, fail, options
from coordhub.cli.output import console
from coordhub.client import Unreachable, project
from coordhub.client.credentials import check_url
from coordhub.client.queue import QueueUnusable
from coordhub.client.settings import resolve
from coordhub.errors import CoordError, Invalid

if TYPE_CHECKING:  # the orchestrator's modules load only when the agent runs (the CLI starts fast)
    from coordhub.orchestrator.host import HostConfig
    from coordhub.orchestrator.worker import Limits

log = logging.getLogger("coordhub.agent")

# seed 003's `coord agent [--host] [--port]` was a server (0.0.0.0:7433) the coordinator called; strings, so any value
# reaches the refusal rather than a type error
LISTENED_AT = "Seed 003's (where its agent server listened): refused, exit 2; this agent listens on nothing, it " \
              "connects out to the hub (--url / COORD_URL)."
HOST_OPT = typer.Option(None, "--host", metavar="HOST", help=LISTENED_AT, show_default=False)
PORT_OPT = typer.Option(None, "--port", metavar="PORT", help=LISTENED_AT, show_default=False)


def agent(
    ctx: typer.Context,
    machine: str | None = typer.Option(None, "--machine", help="This machine's name in coordinator.yml "
                                       "(default: the host name)."),
    slots: int | None = typer.Option(None, "--slots", min=1, max=64, help="Workers this host runs at once "
                                     "(default: concurrency.max_workers). The hub enforces max_workers too."),
    repo: list[str] = typer.Option([], "--repo", help="NAME=PATH: serve repo NAME from PATH (overrides "
                                   "repo_paths; repeatable)."),
    claude: str = typer.Option("claude", "--claude", help="The Claude Code CLI to run (a name on PATH or a path)."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Where the host keeps its state, logs and "
                                          "worktrees (default: $XDG_STATE_HOME/coordhub/agent/MACHINE)."),
    pass_env: list[str] = typer.Option([], "--pass-env", help="Also pass this environment variable to workers "
                                       "(repeatable; the rest is an allowlist, see docs/orchestrator.md)."),
    wall_clock: float | None = typer.Option(None, "--wall-clock", min=1, help="Default wall-clock limit of a "
                                            "worker, seconds (the config's workers.wall_clock_seconds wins)."),
    first_output: float | None = typer.Option(None, "--first-output", min=1, help="Seconds a worker may take to "
                                              "print its first line."),
    silence: float | None = typer.Option(None, "--silence", min=1, help="Seconds a worker may print nothing "
                                         "(tool_progress heartbeats count as output)."),
    linger: float = typer.Option(30.0, "--linger", min=0.1, help="Seconds a worker may keep running after its "
                                 "result before it is killed."),
    stop_grace: float = typer.Option(10.0, "--stop-grace", min=0.1, help="Seconds between SIGTERM and SIGKILL."),
    poll_wait: float = typer.Option(25.0, "--poll-wait", min=0.0, max=30.0, help="Seconds one long-poll for work "
                                    "may wait."),
    keep_logs: float = typer.Option(14.0, "--keep-logs", min=0.0, help="Days the logs of finished assignments are "
                                    "kept on this machine (checked at start)."),
    install_service: bool = typer.Option(False, "--install-service", help="Write a systemd user unit that runs "
                                         "this agent (with these options), then print how to enable it."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at debug level."),
    host: str | None = HOST_OPT,
    port: str | None = PORT_OPT,
) -> None:
    """Run this machine's worker host: connect out to the hub, take assignments, run `claude -p` workers.

    Nothing listens on this machine: the host registers, heartbeats and long-polls the hub with the machine's
    token (`coord token create MACHINE/agent`), and runs at most --slots workers in git worktrees. Seed 003's
    --host/--port (where its agent server listened) exit 2 saying so.
    """
    if host is not None or port is not None:
        fail("--host/--port: seed 003's `coord agent` was a server listening there (port 7433) for the coordinator "
             "to call; this agent has no port of its own: it connects out to the hub with the machine's token. Give "
             "it the hub's address instead: `coord --url http://HUB:PORT --token T agent` (or COORD_URL, "
             "COORD_TOKEN); only the hub listens, where `coord serve --host H --port P` says (docs/agent.md)",
             EXIT_USAGE)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s coord agent: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S")
    for noisy in ("httpx2", "httpx", "httpcore", "httpcore2"):  # one line per request would drown the rest
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    from coordhub.orchestrator import environment

    bad = [n for n in pass_env if environment.forbidden(n)]
    if bad:
        fail(f"--pass-env {', '.join(bad)}: it binds a process to another Claude Code session; never passed",
             EXIT_USAGE)
    overrides = _repo_overrides(repo)
    o = options(ctx)
    try:
        # The machine's token decides who acts (<machine>/agent). A session COORD_SESSION or identity.json names is
        # the user's own interactive one, no claim about that token: sent beside it, the hub refused every call
        # (403 session_mismatch, coordhub.api.auth.check_named_session) and no host started.
        settings = resolve(o.url, o.token, None, o.queue_file, o.timeout)._replace(session_claimed=False)
    except Invalid as exc:
        fail(exc.message, EXIT_USAGE)
    except CoordError as exc:
        fail(exc.message, EXIT_AUTH)
    name = machine or socket.gethostname().split(".")[0]
    if install_service:
        try:  # the unit names the hub in COORD_URL, which the service then trusts as the user's own choice
            check_url(settings)
        except CoordError as exc:
            fail(exc.message, EXIT_AUTH)
        _install_service(name, settings.url, settings.token, sys.argv)
        return
    _run(name, settings, slots, overrides, claude, state_dir, tuple(pass_env), wall_clock, first_output, silence,
         linger, stop_grace, poll_wait, keep_logs)


def _stop_during_start_up(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _repo_overrides(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            fail(f"--repo {item!r}: expected NAME=PATH", EXIT_USAGE)
        out[name] = Path(path).expanduser()
    return out


def _run(name: str, settings: Any, slots: int | None, overrides: dict[str, Path], claude: str,
         state_dir: Path | None, pass_env: tuple[str, ...], wall_clock: float | None, first_output: float | None,
         silence: float | None, linger: float, stop_grace: float, poll_wait: float, keep_logs: float) -> None:
    from coordhub.orchestrator.environment import seal_from_children
    from coordhub.orchestrator.host import Host
    from coordhub.orchestrator.hoststate import AlreadyRunning, HostState
    from coordhub.orchestrator.link import HubLink, Refused
    from coordhub.orchestrator.worker import Context

    # Until the host installs its own handlers, a stop asked during start-up ends the agent cleanly (exit 0, as
    # a stop does later) instead of by the signal's default action; nothing is held yet.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_during_start_up)
    link = HubLink(settings, name)
    try:
        answer = link.config()
    except Unreachable as exc:
        fail(f"hub at {settings.url} is unreachable: {exc}", EXIT_UNREACHABLE)
    except Refused as exc:
        fail(f"the hub refused to give its configuration: {exc}", EXIT_AUTH if exc.status in (401, 403)
             else EXIT_REFUSED)
    except QueueUnusable as exc:  # the softfail queue file (drained first) cannot be used: a local file, as coord's
        fail(exc.message, EXIT_REFUSED)
    except CoordError as exc:
        fail(exc.message, EXIT_AUTH)
    try:
        cfg, limits = _host_config(answer, name, slots, overrides, poll_wait, keep_logs, (wall_clock, first_output,
                                                                                          silence, linger, stop_grace))
    except NoConfig:
        fail(f"the hub at {settings.url} has no coordinator.yml applied: an admin runs `coord config apply` first",
             EXIT_REFUSED)
    except UnknownMachine as exc:
        fail(str(exc), EXIT_USAGE)
    name = cfg.machine
    base = (state_dir or project.state_dir() / "agent" / name).expanduser()
    state = HostState(base, name)
    host_settings = settings._replace(queue_file=base / "queue.jsonl")
    link = HubLink(host_settings, name)
    ctx = Context(machine=name, link=link, state=state, hub_settings=host_settings, repos=dict(cfg.repos),
                  worktrees=project.private_dir(base / "worktrees"), workers_dir=project.private_dir(base / "workers"),
                  limits=limits, claude=claude, host_env=dict(os.environ), pass_env=pass_env)

    def reload() -> tuple[HostConfig, Limits]:  # a heartbeat said the configuration changed
        return _host_config(link.config(), name, slots, overrides, poll_wait, keep_logs,
                            (wall_clock, first_output, silence, linger, stop_grace))

    log.info("machine %s: %d slot(s), state in %s, hub %s", name, cfg.slots, base, settings.url)
    if not seal_from_children():
        log.warning("could not make this process non-dumpable: its workers may read its environment")
    try:
        Host(cfg, ctx, reload).run()
    except AlreadyRunning as exc:
        fail(str(exc), EXIT_REFUSED)


class NoConfig(ValueError):
    """The hub has no coordinator.yml applied."""


class UnknownMachine(ValueError):
    """The machine is not in the hub's coordinator.yml."""


def _host_config(answer: dict[str, Any], name: str, slots: int | None, overrides: dict[str, Path],
                 poll_wait: float, keep_logs: float, flags: tuple[float | None, ...]) -> tuple[HostConfig, Limits]:
    """This machine's ``(HostConfig, Limits)`` from the hub's configuration answer and the command's flags.

    Flags win over the config (``slots``, ``--repo`` overrides, the watchdog seconds). Raises
    :class:`NoConfig` when no config is applied, :class:`UnknownMachine` when the machine is not in
    it. Used at start and again when a heartbeat says the configuration changed.
    """
    from coordhub.orchestrator.host import HostConfig
    from coordhub.orchestrator.worker import Limits
    from coordhub.orchestrator.worktree import GitError, check_repo

    config = answer.get("config") if isinstance(answer.get("config"), dict) or "config" in answer else answer
    if not isinstance(config, dict):
        raise NoConfig("the hub has no coordinator.yml applied")
    entry = next((m for m in config.get("machines") or [] if isinstance(m, dict)
                  and str(m.get("name", "")).lower() == name.lower()), None)
    if entry is None:
        known = ", ".join(str(m.get("name")) for m in config.get("machines") or [] if isinstance(m, dict))
        raise UnknownMachine(f"machine {name!r} is not in the hub's coordinator.yml (machines: {known or 'none'}); "
                         "pass --machine")
    name = str(entry["name"])
    paths = {str(k): Path(str(v)).expanduser() for k, v in (entry.get("repo_paths") or {}).items()}
    wanted = [str(r) for r in entry.get("repos") or []] or sorted(paths)
    paths.update(overrides)
    repos: dict[str, Path] = {}
    problems: list[str] = []
    for r in sorted(set(wanted) | set(overrides)):
        if r not in paths:
            problems.append(f"repo {r}: no path on {name} (repo_paths or --repo NAME=PATH)")
            continue
        try:
            repos[r] = check_repo(paths[r])
        except GitError as exc:
            problems.append(f"repo {r}: {exc}")
    for p in problems:
        log.warning("%s; not offered to the hub", p)
    concurrency = _obj(config.get("concurrency"))
    workers_cfg = _obj(config.get("workers"))
    wall_clock, first_output, silence, linger, stop_grace = flags
    assert linger is not None and stop_grace is not None
    limits = Limits(wall_clock=wall_clock or float(workers_cfg.get("wall_clock_seconds") or 3600),
                    first_output=first_output or float(workers_cfg.get("first_output_seconds") or 600),
                    silence=silence or float(workers_cfg.get("silence_seconds") or 900),
                    linger=linger, stop_grace=stop_grace,
                    raw_log_bytes=_mib(workers_cfg.get("stdout_log_mib"), Limits.raw_log_bytes),
                    stderr_log_bytes=_mib(workers_cfg.get("stderr_log_mib"), Limits.stderr_log_bytes))
    cfg = HostConfig(machine=name, slots=slots or int(concurrency.get("max_workers") or 2), repos=repos,
                     capabilities=[str(c) for c in entry.get("capabilities") or []], poll_wait=poll_wait,
                     problems=problems, keep_logs_days=keep_logs)
    return cfg, limits


UNIT = """[Unit]
Description=coordhub worker host (coord agent) for machine {machine}
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile={env_file}
ExecStart={command}
Restart=on-failure
RestartSec=5
# SIGTERM to the agent only: it stops its workers itself (work saved, reported) before the rest is killed
KillMode=mixed
TimeoutStopSec=90

[Install]
WantedBy=default.target
"""


def _install_service(machine: str, url: str, token: str | None, argv: list[str]) -> None:
    """Write ``~/.config/systemd/user/coord-agent-<machine>.service`` and its 0600 environment file."""
    if not token:
        fail("--install-service needs the machine's token (--token or COORD_TOKEN): the unit runs without you",
             EXIT_USAGE)
    units = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user"
    units.mkdir(parents=True, exist_ok=True)
    unit = units / f"coord-agent-{machine}.service"
    env_file = project.private_dir(project.config_dir()) / f"agent-{machine}.env"
    project.write_private(env_file, f"COORD_URL={url}\nCOORD_TOKEN={token}\n")
    args = _service_args(argv, machine)
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "coordhub", "agent", *args])
    unit.write_text(UNIT.format(machine=machine, env_file=env_file, command=command), encoding="utf-8")
    console.print(f"wrote {unit} (token in {env_file}, mode 0600). Enable it with:\n"
                  f"  systemctl --user daemon-reload && systemctl --user enable --now {unit.name}\n"
                  "and, to keep it running when you are logged out: loginctl enable-linger $USER")


def _service_args(argv: list[str], machine: str) -> list[str]:
    """This command's own options for the unit: without --install-service, the global ones and the token."""
    try:
        start = argv.index("agent") + 1
    except ValueError:
        start = len(argv)
    out: list[str] = ["--machine", machine]
    skip = False
    for a in argv[start:]:
        if skip:
            skip = False
            continue
        if a in ("--install-service",):
            continue
        if a == "--machine":
            skip = True
            continue
        if a.startswith("--machine="):
            continue
        out.append(a)
    return out


def _mib(value: Any, default: int) -> int:
    """Bytes of a config's ``*_mib`` value (validated by the hub: a whole number of MiB), else ``default``."""
    return int(value) << 20 if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (the wire format is the peer's, never trusted)."""
    return value if isinstance(value, dict) else {}
