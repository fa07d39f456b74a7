"""coordinator.yml: seed 003's schema validated, every problem named by its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordhub.core import orchestrator_config as cfg

GOOD = """
repos:
  - name: api-gateway
    github: acme/api-gateway
    depends_on: []
    default_branch: main
    build_command: "npm run build"
    test_command: "npm test"
  - name: user-service
    github: acme/user-service
    depends_on: [shared-lib]
  - name: shared-lib
    github: acme/shared-lib
machines:
  - name: laptop
    host: localhost
    capabilities: [python, node]
    repos: [api-gateway, user-service]
    repo_paths:
      api-gateway: ~/src/api-gateway
      user-service: ~/src/user-service
  - name: server
    host: server.tailnet
    capabilities: [docker, python]
    repos: [user-service, shared-lib]
concurrency:
  max_workers: 2
  stagger_seconds: 30
  backoff_base: 60
  max_retries: 3
  auto_reassign: false
  stale_threshold: 3
models:
  default: sonnet
  escalation: [haiku, sonnet, opus]
  labels:
    documentation: haiku
    architecture: opus
hooks:
  on_round_complete: [summary_report]
  on_session_end: [summary_report]
reviews:
  enabled: false
  auto_dispatch: true
  require_approval: false
  checklist: ["Did the worker add tests?"]
  repo_overrides:
    api-gateway: ["Check rate limiting on new endpoints"]
smoke_tests:
  auto_queue: false
  default_command: "make smoke"
  timeout_seconds: 600
  capability_rules:
    - files: [src/gtk/]
      requires: [gtk]
"""


def problems(text: str) -> dict[str, str]:
    with pytest.raises(cfg.ConfigError) as info:
        cfg.parse_yaml(text)
    return {p.path: p.message for p in info.value.problems}


def test_seed_003_full_reference_parses() -> None:
    c = cfg.parse_yaml(GOOD)
    assert [r.name for r in c.repos] == ["api-gateway", "user-service", "shared-lib"]
    assert c.machine("LAPTOP") is c.machines[0]
    assert c.concurrency.max_workers == 2 and c.concurrency.stale_after_seconds == 15.0
    assert c.smoke_tests.capability_rules[0].requires == ["gtk"]
    assert c.workers.disallowed_tools == ["AskUserQuestion"]
    assert cfg.validate(c.as_json()) == c  # the JSON form the hub stores validates to the same config


def test_shape_errors_name_their_key_paths() -> None:
    found = problems("""
repos:
  - name: api
    github: not-a-slug
machines:
  - name: laptop
    repos: [api]
    capabilites: [python]
concurrency:
  max_workers: 0
  stagger_seconds: "30"
workers:
  permission_mode: yolo
""")
    assert set(found) == {"repos[0].github", "machines[0].capabilites", "concurrency.max_workers",
                          "concurrency.stagger_seconds", "workers.permission_mode"}
    assert "unknown key" in found["machines[0].capabilites"]
    assert "greater than or equal to 1" in found["concurrency.max_workers"]
    assert "yolo" in found["workers.permission_mode"] and "acceptEdits" in found["workers.permission_mode"]


def test_cross_reference_errors_name_their_key_paths() -> None:
    found = problems("""
repos:
  - name: api
    depends_on: [lib, ghost]
  - name: lib
    depends_on: [api]
  - name: api
machines:
  - name: laptop
    repos: [api, nope]
    repo_paths: {lib: ~/src/lib}
  - name: LAPTOP
reviews:
  repo_overrides: {elsewhere: [x]}
""")
    assert found["repos[0].depends_on[1]"].startswith("unknown repo 'ghost'")
    assert "cycle" in found["repos"] and "api -> lib -> api" in found["repos"]
    assert "already the name of repos[0]" in found["repos[2].name"]
    assert "already the name of machines[0]" in found["machines[1].name"]
    assert found["machines[0].repos[1]"].startswith("unknown repo 'nope'")
    assert "not in this machine's repos" in found["machines[0].repo_paths.lib"]
    assert "reviews.repo_overrides.elsewhere" in found


def test_missing_sections_and_non_mappings() -> None:
    assert problems("repos: []\n") == {"repos": "List should have at least 1 item after validation, not 0",
                                       "machines": "required key is missing"}
    assert problems("") == {"": "expected a mapping with repos and machines, got an empty file"}
    assert list(problems("- a\n- b\n").values()) == ["expected a mapping with repos and machines, got a list"]


def test_yaml_syntax_error_names_line_and_column() -> None:
    found = problems("repos:\n  - name: api\n   machines: [\n")
    (where, what), = found.items()
    assert where.startswith("line ") and "column" in where and what.startswith("not valid YAML")


def test_load_refuses_unreadable_and_huge_files(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigError, match="cannot read"):
        cfg.load(tmp_path / "missing.yml")
    big = tmp_path / "big.yml"
    big.write_text("#" * (cfg.MAX_FILE_BYTES + 1))
    with pytest.raises(cfg.ConfigError, match="the limit is"):
        cfg.load(big)
    good = tmp_path / "coordinator.yml"
    good.write_text(GOOD)
    assert cfg.load(good).repos[0].name == "api-gateway"


def test_model_resolution_and_escalation() -> None:
    models = cfg.parse_yaml(GOOD).models
    assert cfg.model_for(models, "opus", ["documentation"]) == ("opus", "flag")
    assert cfg.model_for(models, None, ["bug", "documentation", "architecture"]) == ("haiku", "label:documentation")
    assert cfg.model_for(models, None, ["bug"]) == ("sonnet", "default")
    assert [cfg.next_model(models, m) for m in ("haiku", "sonnet", "opus")] == ["sonnet", "opus", "opus"]
    assert cfg.next_model(models, "claude-haiku-4-5") == "sonnet"  # a full id climbs from its alias
    assert cfg.next_model(models, "gpt-x") == "gpt-x"  # not on the ladder: unchanged


def test_reviews_model_is_a_model_name_and_defaults_to_none() -> None:
    found = problems("""
repos: [{name: api}]
machines: [{name: laptop, repos: [api]}]
reviews: {enabled: true, model: "opus; rm -rf /"}
""")
    assert set(found) == {"reviews.model"} and "not a model name" in found["reviews.model"]
    assert cfg.Reviews().model is None and cfg.Reviews(model="claude-opus-4-5").model == "claude-opus-4-5"
    found = problems("""
repos: [{name: api}]
machines: [{name: laptop, repos: [api]}]
reviews: {enabled: true, model: "--claude-opus"}
""")
    assert set(found) == {"reviews.model"} and "not a model name" in found["reviews.model"]  # read as an option


def test_yaml_nested_too_deep_is_a_problem_not_a_recursion_error(tmp_path: Path) -> None:
    """A repository's coordinator.yml nesting thousands of flow sequences made PyYAML's recursive composer raise
    RecursionError, which ``coord config`` did not catch (a traceback), as d5430da found for the JSON files a
    repository brings."""
    for text in ("[" * 5000 + "]" * 5000, "repos: " + "[" * 5000 + "]" * 5000 + "\n"):
        (where, what), = problems(text).items()
        assert what.startswith("not valid YAML") and "nested too deep" in what, what
    deep = tmp_path / "coordinator.yml"
    deep.write_text("machines: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n")
    with pytest.raises(cfg.ConfigError, match="nested too deep"):
        cfg.load(deep)
