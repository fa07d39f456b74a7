"""What ``coord lock claim/list/check`` send for a path typed in a working directory (issue 7, points 11 and 13).

A real ``coord`` process against a recording TCP server, so the exact
resource on the wire is seen, whatever the hub later does with it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.client.test_wire import Canned, json_answer
from tests.coordcli import Coord, isolated_env

LEASE = {"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "fence": 1, "project_key": "shop", "resource": "x",
         "session_id": "A", "description": "d", "expires_at": None, "state": "active"}


@pytest.fixture
def hub() -> Iterator[Canned]:
    server = Canned()
    server.answer = json_answer(json.dumps(LEASE).encode())
    yield server
    server.close()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "shop"
    (path / "src" / "api").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "link").symlink_to("src/api")
    return path


def sent(hub: Canned) -> list[str]:
    """The resource of each recorded lease request: the JSON body's, else the query's."""
    out = []
    for raw in hub.requests:
        head, _, body = raw.partition(b"\r\n\r\n")
        target = head.split(b" ")[1].decode()
        if "/api/coord/locks" not in target:
            continue  # e.g. a /health check
        if body:
            out.append(json.loads(body)["resource"])
        else:
            out.append(parse_qs(urlsplit(target).query)["resource"][0])
    return out


def test_claim_sends_project_relative_paths_and_directories_with_a_slash(hub: Canned, repo: Path,
                                                                          tmp_path: Path) -> None:
    coord = Coord(repo / "src", isolated_env(tmp_path), url=hub.url, token="tok")
    for typed in ("api", str(repo / "src" / "api"), "../link", "a.py", str(repo / "src" / "a.py"),
                  "deploy:staging", "**/*.py"):
        coord.ok("lock", "claim", "shop", typed, "work")
    assert sent(hub) == ["src/api/", "src/api/", "src/api/", "src/a.py", "src/a.py", "deploy:staging", "**/*.py"]


def test_list_and_check_take_paths_the_same_way(hub: Canned, repo: Path, tmp_path: Path) -> None:
    coord = Coord(repo / "src", isolated_env(tmp_path), url=hub.url, token="tok")
    hub.answer = json_answer(b"[]")
    coord.ok("lock", "list", "--resource", "api")
    hub.answer = json_answer(b'{"current": true, "reason": null}')
    coord.ok("lock", "check", "1", "--resource", str(repo / "src" / "a.py"))
    assert sent(hub) == ["src/api/", "src/a.py"]
