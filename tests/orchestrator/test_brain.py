"""The planning brain's reading of ``claude -p --output-format json`` (``coordhub.orchestrator.brain``): the plan is
the validated ``structured_output``, else the last fenced json block; a failed run, prose, or a proposal for an
issue that was not gathered is an error, never a guess."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coordhub.orchestrator import brain


def _result(**kw: Any) -> str:
    base = {"type": "result", "subtype": "success", "is_error": False, "num_turns": 1, "total_cost_usd": 0.01,
            "session_id": "s", "result": ""}
    return json.dumps({**base, **kw}) + "\n"


PLAN = {"proposals": [{"kind": "assign", "repo": "api", "issue": 1, "rationale": "x"}]}


def test_the_plan_is_structured_output_else_the_last_json_block() -> None:
    assert brain.parse(_result(structured_output=PLAN, result="prose"), 0) == PLAN
    text = "First idea:\n```json\n{\"proposals\": []}\n```\nBetter:\n```json\n" + json.dumps(PLAN) + "\n```\n"
    assert brain.parse(_result(result=text), 0) == PLAN


@pytest.mark.parametrize("stdout, why", [
    ("", "ended without a result"),
    ("Error: Input must be provided\n", "ended without a result"),
    (_result(is_error=True, result="Not logged in · Please run /login", api_error_status=401),
     "failed: success: Not logged in"),
    (_result(subtype="error_max_structured_output_retries", is_error=True, errors=["Failed after 3 attempts"]),
     "error_max_structured_output_retries: Failed after 3 attempts"),
    (_result(result="Start with issue 1 on the laptop."), "no ```json block"),
    (_result(result="```json\n{\"proposals\": \n```"), "is not JSON"),
    (_result(structured_output=[1, 2]), "not a JSON object with a proposals list"),
])
def test_anything_else_is_an_error(stdout: str, why: str) -> None:
    with pytest.raises(brain.BrainError) as err:
        brain.parse(stdout, 1)
    assert why in err.value.message


def test_proposals_must_name_gathered_issues_and_take_their_title() -> None:
    s = brain.Situation(config={"repos": [{"name": "api"}]}, machines=[], in_flight=[],
                        issues={"api": [brain.clean_issue({"number": 1, "title": "Real title", "body": "b" * 5000,
                                                           "labels": [{"name": "bug"}]})]})
    assert len(s.issues["api"][0]["body"]) < brain.MAX_BODY_CHARS + 10
    (p,) = brain.check({"proposals": [{**PLAN["proposals"][0], "title": "made up", "labels": ["x"]}]}, s)
    assert (p["title"], p["labels"]) == ("Real title", ["bug"])
    with pytest.raises(brain.BrainError, match="api#2, which is not an open issue"):
        brain.check({"proposals": [{"kind": "assign", "repo": "api", "issue": 2}]}, s)
    with pytest.raises(brain.BrainError, match="proposal 0 is not an object"):
        brain.check({"proposals": ["api#1"]}, s)


def test_a_planning_reply_nested_too_deep_is_an_error_not_a_crash() -> None:
    """The planner's output is text a prompt can steer; json raises RecursionError for '[' x 100,000."""
    with pytest.raises(brain.BrainError):
        brain.parse("[" * 100_000, 0)
    with pytest.raises(brain.BrainError, match="nested too deep"):
        brain.parse(_result(result="```json\n" + "[" * 100_000 + "\n```"), 0)
