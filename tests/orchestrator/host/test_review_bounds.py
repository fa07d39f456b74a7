"""A review reads bounded amounts of what the branch under review holds and of what its reviewer printed.

The branch is anyone's writing (a worker's, prompted by an issue): a generated file of a few hundred MB in it
made ``git diff`` print all of it, and the host read the whole diff into memory (several times over, as bytes
and text) to put its first :data:`~coordhub.orchestrator.review.MAX_DIFF_CHARS` characters in the prompt. The
reviewer's output file was read a line at a time with no bound on a line.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from coordhub.orchestrator import review
from tests.orchestrator.host.conftest import Repo, review_branch

MiB = 1024 * 1024
VERDICT = {"verdict": "approve", "summary": "fine", "findings": []}


def _stub_claude(tmp_path: Path) -> Path:
    """A reviewer that reads its prompt and answers with a verdict (the fake's own review mode runs git diff)."""
    stub = tmp_path / "claude-stub"
    result = {"type": "result", "subtype": "success", "is_error": False, "structured_output": VERDICT,
              "result": "ok", "total_cost_usd": 0.01}
    stub.write_text(f"#!/bin/sh\ncat > /dev/null\necho '{json.dumps(result)}'\n")
    stub.chmod(0o755)
    return stub


def test_a_huge_diff_is_read_only_as_far_as_the_prompt_takes_it(tmp_path: Path, repo: Repo) -> None:
    def generated(clone: Path) -> None:
        line = b"x" * 99 + b"\n"
        with open(clone / "data.csv", "wb") as f:  # 120 MiB of text: git diff prints all of it
            for _ in range(120):
                f.write(line * (MiB // 100))

    def measured(review_run: Callable[[], review.Review]) -> tuple[review.Review, int]:
        tracemalloc.start()
        try:
            got = review_run()
            return got, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    got, peak = review_branch(tmp_path, repo, "issue-1", 1, generated, _stub_claude(tmp_path), measured)
    assert got.verdict is not None and got.verdict["verdict"] == "approve", got
    assert peak < 24 * MiB, f"the host held {peak // MiB} MiB to review a 120 MiB diff"


def test_a_huge_line_in_the_reviewers_output_is_skipped_not_held(tmp_path: Path) -> None:
    stream = tmp_path / "review.jsonl"
    result = {"type": "result", "subtype": "success", "is_error": False, "result": "ok"}
    with open(stream, "wb") as f:
        f.write(b'{"type": "user", "x": "' + b"y" * (100 * MiB) + b'"}\n')
        f.write(json.dumps(result).encode() + b"\n")
        f.write(b'{"type": "result", "result": "' + b"z" * (100 * MiB))  # and a last one without its end
    tracemalloc.start()
    try:
        found = review.final_result(stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == result
    assert peak < 24 * MiB, f"the host held {peak // MiB} MiB to read the reviewer's result"
