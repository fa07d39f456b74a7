"""``models.labels`` is used (seed 003 parsed and ignored it): ``coord assign`` reads the issue's labels with
``gh issue view --json labels,title`` (the fake gh on PATH) when the repo has ``github:``, and the hub picks the
model from them. A gh that is not logged in is a warning and the default model, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import httpx2

from tests.conftest import LiveHub
from tests.coordcli import Coord, git_init, isolated_env
from tests.fakes.ghstore import FakeGitHub
from tests.orchestrator.conftest import ORCH, config
from tests.orchestrator.host.conftest import make_repo


def test_labels_from_github_select_the_model(live_hub: LiveHub, tmp_path: Path) -> None:
    r = httpx2.put(live_hub.url + ORCH + "/config", headers={"Authorization": f"Bearer {live_hub.admin_token}"},
                   json=config())
    assert r.status_code == 200, r.text
    fake = FakeGitHub(tmp_path)
    repo = make_repo(tmp_path, "api")
    fake.setup_repo("acme/api", repo.origin)
    docs = fake.add_issue("acme/api", "Document the timeout", labels=["bug", "documentation"])
    arch = fake.add_issue("acme/api", "Split the auth layer", labels=["architecture"])
    plain = fake.add_issue("acme/api", "Something else", labels=["bug"])
    env = isolated_env(tmp_path, **fake.env, PATH=f"{fake.bin}{os.pathsep}{os.environ['PATH']}")
    coord = Coord(git_init(tmp_path / "work"), env, url=live_hub.url).as_token(live_hub.token("desk/claude-main"))
    a = coord.ok("assign", "laptop", "api", str(docs), "--json").json()
    assert (a["model"], a["model_source"], a["labels"]) == ("haiku", "label:documentation", ["bug", "documentation"])
    assert a["title"] == "Document the timeout" and a["branch"] == f"issue-{docs}-document-the-timeout"
    b = coord.ok("assign", "laptop", "api", str(arch), "--title", "Mine", "--json").json()
    assert (b["model"], b["model_source"], b["title"]) == ("opus", "label:architecture", "Mine")
    c = coord.ok("assign", "--any", "api", str(plain), "--dry-run", "--json").json()
    assert (c["model"], c["model_source"]) == ("sonnet", "default")
    # --label wins and gh is not asked; --model wins over labels
    calls = len(fake.calls())
    d = coord.ok("assign", "laptop", "api", "40", "--label", "architecture", "--model", "haiku", "--json").json()
    assert (d["model"], d["model_source"]) == ("haiku", "flag") and len(fake.calls()) == calls
    fake.set_auth(False)
    e = coord("assign", "laptop", "api", "41", "--json")
    assert e.code == 0, e
    assert "warning: no labels from GitHub for acme/api#41" in e.err and "Traceback" not in e.err
    assert e.json()["model_source"] == "default"
