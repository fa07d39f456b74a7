"""Two machines' worth of seed-004 users on one real hub: agents, their keyrings, their drop-in commands.

A ``coord serve`` runs on the backend under test (PostgreSQL: a database of
its own per test). Machine ``velox`` has the project ``career``, machine
``ratio`` the project ``homelab``; each agent has its own token (session
``VELOX/career``, ``RATIO/homelab``), and each machine its own ``HOME`` (where
``~/projects/<project>/inbox/from-agents/`` is) and GnuPG home. Commands run
as real subprocesses: ``coord`` through :class:`tests.coordcli.Coord`, the
drop-ins as ``python -m coordhub.compat.crossagent NAME`` (what their console
scripts call).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import PG_BASE, LiveHub, _pg_admin_conn
from tests.conversations.conftest import GpgKey, make_key
from tests.coordcli import Coord, Result, git_init, isolated_env

# The drop-ins and `coord conv` reach the hub over HTTP only, so what differs between the backends (sequence
# allocation under concurrent writers, a transaction's isolation) is tested below them, on both backends, in
# tests/conversations and tests/api. Here PostgreSQL runs by default only for what races or walks the whole
# flow; the rest of this directory's PostgreSQL runs are `-m slow` (each is a few CLI subprocesses over a hub of
# its own: ~6 min of a suite run on a 2-core machine).
POSTGRES_BY_DEFAULT = ("test_release_race.py", "test_conv_cli.py::test_a_conversation_from_first_turn_to_release[")


@pytest.hookimpl(tryfirst=True)  # before -m 'not slow' deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark this directory's PostgreSQL runs slow but those :data:`POSTGRES_BY_DEFAULT` names."""
    here = Path(__file__).parent
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (callspec is not None and callspec.params.get("shared_hub") == "postgres" and item.path.parent == here
                and not any(name in item.nodeid for name in POSTGRES_BY_DEFAULT)):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, GpgKey]]:
    """Real ed25519 keys without passphrase, one GnuPG home each: the career agent's and a stranger's."""
    root = tmp_path_factory.mktemp("keys")
    made = {"career": make_key(root / "career", "Career Agent"), "stranger": make_key(root / "stranger", "Stranger")}
    yield made
    for k in made.values():
        subprocess.run(["gpgconf", "--homedir", str(k.home), "--kill", "all"], capture_output=True, check=False)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """One ``coord serve`` per test module and backend (PostgreSQL: a database of its own, dropped afterwards).

    Tests share it, so each test's :func:`world` has machines and a conversation of its own.
    """
    args: tuple[str, ...] = ()
    name = None
    if request.param == "postgres":
        request.getfixturevalue("pg_url")  # skips (or fails, when PostgreSQL is required) like every PG test
        name = f"coordhub_conv_{uuid.uuid4().hex[:10]}"
        with contextlib.closing(_pg_admin_conn()) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        args = ("--database-url", f"{PG_BASE}/{name}")
    hub = LiveHub(tmp_path_factory.mktemp("hub"), args=args).start(wait=False)
    try:
        hub.wait_ready(timeout=90)  # every test of the module needs it: be patient with a loaded machine
        yield hub
    finally:
        hub.stop()
        if name is not None:
            with contextlib.closing(_pg_admin_conn()) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


_WORLDS = itertools.count(1)


@dataclass(frozen=True)
class Agent:
    """One agent session: its project folder (a git repository) and the environment its commands run in."""

    session: str
    machine: str
    project: str
    home: Path
    cwd: Path
    env: dict[str, str]

    @property
    def address(self) -> str:
        return f"{self.machine}.{self.project}"

    @property
    def inbox(self) -> Path:
        """Where ``coord conv sync`` writes this project's turns on its machine."""
        return self.home / "projects" / self.project / "inbox" / "from-agents"

    def coord(self, *args: str, stdin: str | None = None) -> Result:
        return Coord(self.cwd, self.env)(*args, stdin=stdin)

    def drop(self, name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 90) -> Result:
        """Run ``cross-agent-NAME ARGS`` as this agent."""
        p = subprocess.run([sys.executable, "-m", "coordhub.compat.crossagent", name, *args], cwd=self.cwd,
                           env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        r = Result((name, *args), p.returncode, p.stdout, p.stderr)
        assert "Traceback" not in r.out + r.err, r
        return r

    def with_env(self, **extra: str) -> Agent:
        return Agent(self.session, self.machine, self.project, self.home, self.cwd, {**self.env, **extra})


@dataclass(frozen=True)
class World:
    hub: LiveHub
    career: Agent   # velox-<n>.career, signs with keys["career"]
    homelab: Agent  # ratio-<n>.homelab
    conv: str       # this test's conversation id
    admin_env: dict[str, str]

    def admin(self, *args: str) -> Result:
        return Coord(self.career.cwd, self.admin_env)(*args)

    def org(self, **kw: Any) -> str:
        """A message file of this test's conversation (see :func:`org`)."""
        return org(**{"conversation": self.conv, **kw})


def agent(hub: LiveHub, root: Path, session: str, project: str, gnupghome: Path) -> Agent:
    machine = session.split("/")[0].lower()
    env = isolated_env(root / machine)  # one HOME and XDG dirs per machine
    env.update(COORD_URL=hub.url, COORD_TOKEN=hub.token(session), COORD_PROJECT=project,
               GNUPGHOME=str(gnupghome))
    cwd = git_init(root / machine / "home" / "projects" / project)
    return Agent(session, machine, project, root / machine / "home", cwd, env)


@pytest.fixture
def world(shared_hub: LiveHub, tmp_path: Path, keys: dict[str, GpgKey]) -> Iterator[World]:
    """Two agents on machines of their own (velox-N, ratio-N), each with its address declared."""
    n = next(_WORLDS)
    ratio_keys = tmp_path / "ratio-gnupg"  # ratio's own keyring: it does not hold the career agent's key
    ratio_keys.mkdir(mode=0o700)
    career = agent(shared_hub, tmp_path, f"VELOX-{n}/career", "career", keys["career"].home)
    homelab = agent(shared_hub, tmp_path, f"RATIO-{n}/homelab", "homelab", ratio_keys)
    for a in (career, homelab):
        assert a.coord("conv", "profile").code == 0
    admin_env = {**career.env, "COORD_TOKEN": shared_hub.admin_token}
    try:
        yield World(shared_hub, career, homelab, f"prep-fixup-{os.getpid()}-{n}", admin_env)
    finally:
        # a key belongs to one session (409 key_taken): the next world's career registers the same key
        httpx2.delete(f"{shared_hub.url}/api/coord/conversations/keys/{keys['career'].fingerprint}",
                      headers={"Authorization": f"Bearer {career.env['COORD_TOKEN']}"}, timeout=30)
        subprocess.run(["gpgconf", "--homedir", str(ratio_keys), "--kill", "all"], capture_output=True, check=False)


def org(conversation: str = "prep-fixup", kind: str = "request", sequence: int | str = 1,
        timestamp: str = "2026-04-27T04:11:42-05:00", version: str = "5", tools: str | None = None,
        body: str = "Please fix the prep script.\n", title: str = "Prep fix-up", **extra: str) -> str:
    """A seed-004 message file's text, written here from the seed's documented format."""
    lines = [f"#+TITLE: {title}", f"#+CONVERSATION_ID: {conversation}", f"#+MESSAGE_TYPE: {kind}",
             f"#+SEQUENCE: {sequence}", f"#+TIMESTAMP: {timestamp}", f"#+PROTOCOL_VERSION: {version}"]
    if tools is not None:
        lines.append(f"#+REQUIRES_TOOLS: {tools}")
    lines += [f"#+{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n\n" + body


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def lines(r: Result) -> list[str]:
    return r.out.splitlines()


def fields(r: Result) -> dict[str, Any]:
    """``key: value`` lines of cross-agent-recv's human output."""
    return dict(line.split(": ", 1) for line in r.out.splitlines())

