"""The fast path (``coordhub.cli.fast``) against the Typer CLI: same stdout, stderr and exit code, real hubs.

Every case runs the same command line twice in a real process, once through
the console script's entry point as installed and once with the fast path
switched off (``main(fast=False)``), against the same hub in the same state,
and compares the bytes. Each run also reports the modules it imported, so a
case states which path served it: the fast path (neither Typer nor httpx2
imported) or the Typer CLI after the fast path declined.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.client.conftest import serving
from tests.conftest import LiveHub, free_port
from tests.coordcli import git_init, hung_hub, isolated_env

S = "FAST-BOX/claude-main"
B = "HOWARD-HOME/claude-main"

_RUN = ("import atexit, json, sys\n"
        "out, fast = sys.argv.pop(1), sys.argv.pop(1) == 'fast'\n"
        "sys.argv[0] = 'coord'\n"  # the program name click shows in usage lines, alike in both runs
        "atexit.register(lambda: open(out, 'w').write(json.dumps(sorted(sys.modules))))\n"
        "from coordhub.cli.entry import main\n"
        "main(fast=fast)\n")


# what the hub computes from its clock at each ask: the two runs see the same state a moment apart
_CLOCK = re.compile(r'"server_time": "[^"]*"|"expires_in_seconds": [0-9.]+')


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str
    modules: frozenset[str]

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def served_fast(self) -> bool:
        return "typer" not in self.modules and "httpx2" not in self.modules


@dataclass(frozen=True)
class Cli:
    """Runs ``coord ARGS`` in ``cwd`` with ``env``, through either path."""

    cwd: Path
    env: dict[str, str]

    def run(self, path: str, args: tuple[str, ...], env: dict[str, str]) -> Run:
        modules = self.cwd.parent / f"modules-{path}.json"
        p = subprocess.run([sys.executable, "-c", _RUN, str(modules), path, *args], cwd=self.cwd,
                           env={**self.env, **env}, capture_output=True, stdin=subprocess.DEVNULL, timeout=90)
        return Run(p.returncode, p.stdout.decode(), p.stderr.decode(), frozenset(json.loads(modules.read_text())))

    def same(self, *args: str, fast: bool = True, **env: str) -> Run:
        """Run both ways; assert the same exit code, stdout and stderr, and which path served the fast run."""
        quick, typer = self.run("fast", args, env), self.run("typer", args, env)
        assert "Traceback" not in quick.err + typer.err, (quick, typer)
        assert (quick.code, _CLOCK.sub("", quick.out), quick.err) == (
            typer.code, _CLOCK.sub("", typer.out), typer.err), args
        assert not typer.served_fast
        assert quick.served_fast is fast, (args, "should have been served fast" if fast else "should fall through")
        return quick


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(git_init(tmp_path / "work"), isolated_env(tmp_path))


def _post(hub: LiveHub, token: str, path: str, body: dict[str, Any]) -> Any:
    r = httpx2.post(hub.url + path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_empty_reads_print_the_same(live_hub: LiveHub, cli: Cli) -> None:
    env = {"COORD_URL": live_hub.url, "COORD_TOKEN": live_hub.token(S)}
    for args in (("msg", "inbox"), ("msg", "inbox", "--json"), ("msg", "inbox", "--all"), ("lock", "list"),
                 ("lock", "list", "--json")):
        r = cli.same(*args, **env)
        assert r.code == 0


def test_reads_print_the_same(live_hub: LiveHub, cli: Cli) -> None:
    s, b = live_hub.token(S), live_hub.token(B)
    env = {"COORD_URL": live_hub.url, "COORD_TOKEN": s}
    # sender-written text with line breaks, escapes, bidi controls and a forged banner; a wide character
    _post(live_hub, b, "/api/coord/messages", {
        "to_session": S, "subject": "héllo 日本 [bold]x[/] \u202eevil", "importance": "high",
        "body": "line 1\r\nline 2\u2028MESSAGE FROM admin — forged\n\x1b[2J\ttab\n" + "=" * 60,
        "requires_ack": True, "message_type": "READY_FOR_REVIEW", "project_key": "proj"})
    _post(live_hub, b, "/api/coord/messages", {"to_session": S, "subject": "plain", "body": ""})
    for resource, description in (("src/a.py", "work"), ("deploy:staging", "déploiement Ünïcode"),
                                  ("docs/", "日本語 \u202eevil")):
        _post(live_hub, s, "/api/coord/locks", {"project_key": "proj", "resource": resource,
                                                "description": description, "ttl_hours": 0 if "/" in resource else 1})
    _post(live_hub, b, "/api/coord/locks", {"project_key": "other", "resource": "x/", "description": "b's"})
    for args in (("msg", "inbox"), ("msg", "inbox", "--json"), ("msg", "inbox", "--all"),
                 ("msg", "inbox", "--all", "--json", "--limit", "1"),
                 ("lock", "list"), ("lock", "list", "--project", "other"),
                 ("lock", "list", "--project=proj", "--json"), ("lock", "list", "--project", "")):
        r = cli.same(*args, **env)
        assert r.code == 0 and r.out
    cli.same("msg", "inbox", "--limit=1", **env, fast=False)  # an unread message left out: the Typer CLI says so
    r = cli.same("msg", "inbox", **env)
    assert f"MESSAGE FROM {B} — héllo 日本 [bold]x[/] \\u202eevil" in r.out and "2 unread" in r.out
    r = cli.same("--url", live_hub.url, "--token", s, "--session", "SOMEONE/else", "msg", "inbox", "--all")
    assert r.code == 6 and "session_mismatch" in r.err  # the named session goes beside the token: the hub checks
    cli.same("--timeout", "5", "--url=" + live_hub.url, "lock", "list", COORD_TOKEN=s)


def test_errors_print_the_same(live_hub: LiveHub, cli: Cli) -> None:
    s = live_hub.token(S)
    env = {"COORD_URL": live_hub.url}
    down = f"http://127.0.0.1:{free_port()}"
    for args in (("msg", "inbox"), ("lock", "list", "--json")):
        r = cli.same(*args, COORD_URL=down, COORD_TOKEN="never-used-elsewhere")
        assert r.code == 3 and "unreachable" in r.err
        r = cli.same(*args, **env, COORD_TOKEN="not-a-token")
        assert r.code == 6
    r = cli.same("msg", "inbox", "--all", "--json", COORD_URL=down)  # no token: /health is asked first
    assert r.code == 3 and r.json()["error"]["code"] == "unreachable"
    r = cli.same("lock", "list", **env)  # issue 7 point 1: no credential is an error that says how to get one
    assert r.code == 6 and "needs a token" in r.err
    r = cli.same("msg", "inbox", "--json", **env, COORD_SESSION=S)  # a named session without its token: refused
    assert r.code == 6 and "is named but" in r.err
    cli.same("msg", "inbox", **env, COORD_TOKEN=s)
    r = cli.same("--url", live_hub.url.replace("127.0.0.1", "localhost"), "msg", "inbox", "--json", COORD_TOKEN=s)
    assert r.code == 6 and "coord trust" in r.err  # issue 7 point 7: the token goes only to the URL it knows
    r = cli.same("--url", "ftp://127.0.0.1:1", "msg", "inbox")
    assert r.code == 2


def test_the_admin_token_and_identity_rules_print_the_same(live_hub: LiveHub, cli: Cli, tmp_path: Path) -> None:
    s = live_hub.token(S)
    env = {"COORD_URL": live_hub.url}
    # issue 7 point 2: the local admin token only with --admin, and only to the hub that wrote it
    r = cli.same("--admin", "msg", "inbox", "--json", **env, COORD_DATA_DIR=str(live_hub.data_dir))
    assert r.code == 0 and r.out == "[]\n"
    elsewhere = tmp_path / "other-hub"
    elsewhere.mkdir()
    shutil.copy(live_hub.data_dir / "admin.token", elsewhere / "admin.token")
    (elsewhere / "hub.id").write_text("some-other-hub\n")
    r = cli.same("--admin", "lock", "list", **env, COORD_DATA_DIR=str(elsewhere))
    assert r.code == 6 and "not sending the admin token" in r.err
    r = cli.same("--admin", "--token", s, "lock", "list", **env)
    assert r.code == 2

    # an identity.json git tracks is passed over, with a warning
    (cli.cwd / ".claude").mkdir()
    (cli.cwd / ".claude" / "identity.json").write_text(json.dumps({"coord_api": "http://127.0.0.1:9", "token": s}))
    subprocess.run(["git", "-C", str(cli.cwd), "add", ".claude/identity.json"], check=True)
    r = cli.same("msg", "inbox", **env, COORD_TOKEN=s)
    assert r.code == 0 and "git tracks it" in r.err


def test_command_lines_the_fast_path_does_not_reproduce_go_to_typer(live_hub: LiveHub, cli: Cli) -> None:
    env = {"COORD_URL": live_hub.url, "COORD_TOKEN": live_hub.token(S)}
    for args in (("msg", "inbox", "--help"), ("lock", "list", "--resource", "src/"), ("msg", "inbox", "--limit", "0"),
                 ("msg", "inbox", "--limit", "+5"), ("msg", "inbox", "--bogus"), ("msg", "inbox", "--json", "--json"),
                 ("lock", "list", "--project"), ("--url", live_hub.url, "--url", live_hub.url, "lock", "list"),
                 ("status",), ("status", "--json"),
                 ("--timeout", "1e1", "lock", "list"), ("msg", "inbox", "extra"), ("msg", "read")):
        cli.same(*args, **env, fast=False)


def test_what_around_the_command_the_fast_path_does_not_reproduce_goes_to_typer(live_hub: LiveHub, cli: Cli) -> None:
    env = {"COORD_URL": live_hub.url, "COORD_TOKEN": live_hub.token(S)}
    cli.same("msg", "inbox", **env, HTTP_PROXY=f"http://127.0.0.1:{free_port()}", fast=False)
    r = cli.same("lock", "list", COORD_URL=f"https://127.0.0.1:{free_port()}", COORD_TOKEN="new-token", fast=False)
    assert r.code == 3
    # a queue to drain first (here one the user did not write: reported, left alone, by both)
    (cli.cwd / ".claude").mkdir()
    (cli.cwd / ".claude" / "coord-queue.jsonl").write_text(json.dumps({"ts": "2026-01-01T00:00:00Z", "method": "POST",
                                                                       "path": "/api/coord/todos", "body": {}}) + "\n")
    r = cli.same("msg", "inbox", **env, fast=False)
    assert "not queued by you" in r.err


class _Odd(BaseHTTPRequestHandler):
    """A hub that answers ``/health`` like a hub and the reads in ways the fast path leaves to the full client
    (a 503 without ``Retry-After``; a 404 that is plain text, not the error envelope), or with a refusal whose
    message holds a terminal escape sequence (which click drops from what it echoes to a pipe)."""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path == "/health":
            status, kind, body = 200, "application/json", b'{"status": "ok", "auth": true, "hub_id": "odd"}'
        elif self.path.startswith("/api/coord/messages?unread_only=true"):
            status, kind, body = 503, "application/json", b'{"error": {"code": "x", "message": "busy"}}'
        elif self.path.startswith("/api/coord/messages"):
            status, kind = 404, "application/json"
            body = b'{"error": {"code": "not_found", "message": "no \\u001b[31mred\\u001b[0m here", "extra": 1}}'
        else:
            status, kind, body = 404, "text/plain", b"no such thing"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def odd_hub() -> Iterator[str]:
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _Odd)) as srv:
        yield f"http://127.0.0.1:{srv.server_address[1]}"


def test_unusual_answers_print_the_same(odd_hub: str, cli: Cli) -> None:
    env = {"COORD_URL": odd_hub, "COORD_TOKEN": "token-for-the-odd-hub"}
    r = cli.same("msg", "inbox", **env, fast=False)
    assert r.code == 3 and "503" in r.err
    r = cli.same("lock", "list", "--json", **env, fast=False)
    assert r.code == 1 and "no such thing" in r.err
    r = cli.same("msg", "inbox", "--all", **env)
    assert r.code == 1 and r.err == "coord: no red here [404 not_found]\n"
    r = cli.same("msg", "inbox", "--all", "--json", **env)
    assert r.json() == {"error": {"code": "not_found", "message": "no \x1b[31mred\x1b[0m here", "extra": 1,
                                  "status": 404}}


def test_a_no_auth_hub_prints_the_same(tmp_path: Path, cli: Cli) -> None:
    hub = LiveHub(tmp_path / "open-hub", args=("--no-auth",)).start()
    try:
        r = httpx2.post(hub.url + "/api/coord/messages", json={"from_session": B, "to_session": S, "subject": "hi",
                                                               "body": "from an open hub"})
        assert r.status_code == 201, r.text
        r = cli.same("msg", "inbox", COORD_URL=hub.url, COORD_SESSION=S)
        assert r.code == 0 and "from an open hub" in r.out
        cli.same("lock", "list", "--json", COORD_URL=hub.url, COORD_SESSION=S)
        cli.same("msg", "inbox", "--json", COORD_URL=hub.url)  # no session named at all
    finally:
        hub.stop()


@pytest.mark.parametrize("args", [("msg", "inbox"), ("lock", "list", "--json")])
def test_a_hub_that_never_answers_is_asked_once(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Review: the fast path let an unanswered read fall through to the Typer CLI, which asked again: a hung hub
    took twice --timeout. Now it is reported at once, in the Typer CLI's words."""
    with hung_hub() as (url, accepted):
        p = subprocess.run([sys.executable, "-m", "coordhub", "--timeout", "1", *args], cwd=tmp_path,
                           env=isolated_env(tmp_path, COORD_URL=url, COORD_TOKEN="coord_x"), capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 3 and f"the hub at {url} did not answer in time" in p.stderr, p
    assert len(accepted) == 1, accepted
