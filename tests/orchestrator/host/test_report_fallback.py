"""A final report the hub cannot take still tells it what it must know: the branch was pushed.

The hub refuses a whole report for one field past its schema (a changed path over 1,024 characters, a
telemetry value over its bound). The host then sent the state and reason alone, and the hub, without
``pushed``, never lets a done assignment into the merge queue or opens its PR: a branch with one long path
name stopped its pipeline without a word.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from coordhub.api.orchestrator_schemas import AssignmentReport
from coordhub.orchestrator.link import Refused
from coordhub.orchestrator.worker import Worker
from tests.orchestrator.host.conftest import Repo
from tests.orchestrator.host.fakehub import FakeHub


class SchemaHub(FakeHub):
    """The fake hub, refusing a report as the real one does: 422 when its body fails ``AssignmentReport``."""

    def report(self, assignment: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            AssignmentReport.model_validate_json(json.dumps({**body, "host_incarnation": 1}))
        except ValidationError as exc:
            raise Refused(422, "invalid", str(exc).splitlines()[0]) from None
        return super().report(assignment, body)


@pytest.fixture
def fake_hub() -> FakeHub:
    return SchemaHub()


def test_a_done_report_refused_for_a_long_path_still_says_pushed(run_worker: Callable[..., Worker],
                                                                 fake_hub: FakeHub, repo: Repo) -> None:
    deep = "/".join(["d" * 200] * 6) + "/x.txt"  # 1,213 characters: the hub takes paths of up to 1,024
    run_worker(briefing=f"fake: success file={deep}")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "done", final
    assert final.get("pushed") is True, final  # else the hub never merges it nor opens its PR
    assert final.get("branch") == "issue-7-fix-it"
    assert "issue-7-fix-it" in repo.remote_branches()
