"""The merge queue end to end (issue 12 "Show it"): a real ``coord serve``, a real ``coord agent``, a real git
repository with a bare origin, the fake ``claude`` doing the work and the conflict fix.

* three branches merge in FIFO order, each exactly once;
* a conflict between two queued branches → a conflict-fix worker rebases → merged;
* a red gate never merges (and the queue goes on); a policy refusal (a hook declining pushes to main) stops with
  the reason;
* a batch of four with one bad branch bisects to it; the other three land.
"""

from __future__ import annotations

import collections

from tests.orchestrator.host.conftest import run
from tests.orchestrator.merge.conftest import MergeFleet


def test_three_branches_merge_in_fifo_order_each_exactly_once(mfleet: MergeFleet) -> None:
    mfleet.start("m1")
    ids = mfleet.done([1, 2, 3], lambda n: f"fake: success file=f{n}.txt")
    before = mfleet.main_subjects()
    entered = mfleet.enter(ids)
    assert len(entered["entered"]) == 3 and [e["assignment_id"] for e in entered["queue"]] == ids
    finals = [mfleet.wait_entry(e, ("merged", "needs_input")) for e in entered["entered"]]
    assert [e["state"] for e in finals] == ["merged"] * 3, finals
    assert mfleet.main_files() == ["README.md", "f1.txt", "f2.txt", "f3.txt"]
    work = [s for s in mfleet.main_subjects() if s.startswith("issue work")]
    assert len(work) == 3 and len(set(work)) == 3 and len(mfleet.main_subjects()) == len(before) + 3
    assert [e["ended_at"] for e in finals] == sorted(e["ended_at"] for e in finals)
    assert finals[-1]["merged_sha"] == run(mfleet.repo.origin, "git", "rev-parse", "main")
    # entering again is idempotent for live entries and refused for nothing: a merged one gets a new entry only
    # if asked, and then it is found merged without a second commit
    again = mfleet.enter([ids[0]])
    e = mfleet.wait_entry(again["entered"][0], ("merged", "needs_input"))
    assert e["state"] == "merged" and len(mfleet.main_subjects()) == len(before) + 3


def test_a_conflict_gets_a_conflict_fix_worker_then_merges(mfleet: MergeFleet) -> None:
    mfleet.start("m1")
    ids = mfleet.done([4, 5], lambda n: "fake: success file=shared.txt")
    entered = mfleet.enter(ids)
    first, second = entered["entered"]
    assert mfleet.wait_entry(first, ("merged", "needs_input"))["state"] == "merged"
    e = mfleet.wait_entry(second, ("merged", "needs_input"), timeout=120)
    assert e["state"] == "merged", e
    assert e["conflict_fixes"] == 1
    a = mfleet.get(ids[1])
    assert a["attempt"] == 2 and a["model_source"] == "escalation" and a["model"] == "opus"
    prompts = [r["prompt"] for r in mfleet.runs()]  # on claude's stdin, not in its argv
    assert sum("Merge queue fix (conflict)" in p and "shared.txt" in p for p in prompts) == 1
    shared = run(mfleet.repo.origin, "git", "show", "main:shared.txt").splitlines()
    assert len(shared) == 2 and not any(x.startswith(("<<<", "===", ">>>")) for x in shared)


def test_a_red_gate_never_merges_and_the_queue_goes_on(mfleet: MergeFleet) -> None:
    mfleet.set_merge(gate_command="test ! -e bad.txt")
    mfleet.start("m1")
    ids = mfleet.done([6, 7], lambda n: f"fake: success file={'bad' if n == 6 else 'good'}.txt")
    bad, good = mfleet.enter(ids)["entered"]
    e = mfleet.wait_entry(bad, ("needs_input", "merged"))
    assert e["state"] == "needs_input" and e["reason"].startswith("red: the gate `test ! -e bad.txt` exited 1")
    assert e["evidence"]["exit_code"] == 1 and e["evidence"]["command"] == "test ! -e bad.txt"
    assert mfleet.wait_entry(good, ("merged", "needs_input"))["state"] == "merged"
    assert "bad.txt" not in mfleet.main_files() and "good.txt" in mfleet.main_files()


def test_a_policy_refusal_stops_with_the_reason(mfleet: MergeFleet) -> None:
    hook = mfleet.repo.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read old new ref; do\n  if [ \"$ref\" = refs/heads/main ]; then\n"
                    "    echo 'protected branch: main needs an approving review' >&2; exit 1\n  fi\ndone\n")
    hook.chmod(0o755)
    mfleet.start("m1")
    ids = mfleet.done([8], lambda n: "fake: success file=p.txt")
    (entry,) = mfleet.enter(ids)["entered"]
    e = mfleet.wait_entry(entry, ("needs_input", "merged"))
    assert e["state"] == "needs_input" and e["reason"].startswith("policy: push refused by the remote")
    assert "protected branch: main needs an approving review" in e["reason"]
    assert "p.txt" not in mfleet.main_files()


def test_a_batch_with_one_bad_branch_bisects_to_it(mfleet: MergeFleet) -> None:
    mfleet.set_merge(gate_command="test ! -e bad.txt", batch=4)
    mfleet.start("m1")
    ids = mfleet.done([10, 11, 12, 13], lambda n: f"fake: success file={'bad' if n == 11 else f'g{n}'}.txt")
    entered = mfleet.enter(ids)["entered"]  # one transaction: the first run takes the whole batch
    finals = [mfleet.wait_entry(e, ("merged", "needs_input"), timeout=120) for e in entered]
    assert [e["state"] for e in finals] == ["merged", "needs_input", "merged", "merged"], finals
    assert finals[1]["reason"].startswith("red:")
    assert sorted(f for f in mfleet.main_files() if f != "README.md") == ["g10.txt", "g12.txt", "g13.txt"]
    # bisection: 4 (red) → 2 (red) → 1 green + the culprit alone; the last two land together
    attempts = collections.Counter(e["attempt"] for e in finals)
    assert finals[0]["attempt"] == 3 and finals[1]["attempt"] == 3 and finals[2]["attempt"] == 2, attempts
    assert finals[2]["batch_id"] == finals[3]["batch_id"]


def test_the_pipeline_hands_passed_branches_to_the_queue_in_fifo_order(mfleet: MergeFleet) -> None:
    """work → test (the smoke test's exit code) → merge: three issues land on main in the order they passed,
    each exactly once, and each assignment's stage ends ``merged``; nobody runs `coord merge`."""
    import httpx2

    from tests.orchestrator.merge.conftest import API

    config = httpx2.get(mfleet.hub.url + f"{API}/config", headers=mfleet.admin).json()["config"]
    config["repos"][0]["test_command"] = "test -f README.md"
    config["smoke_tests"]["auto_queue"] = True
    httpx2.put(mfleet.hub.url + f"{API}/config", json=config, headers=mfleet.admin).raise_for_status()
    mfleet.set_merge(pipeline=["test", "merge"], gate_command=None)  # the queue's gate: the repo's test_command
    mfleet.start("m1")
    before = len(mfleet.main_subjects())
    ids = [mfleet.assign(n, f"fake: success file=p{n}.txt") for n in (40, 41, 42)]
    finals = [mfleet.wait(aid, lambda a: a.get("stage") in ("merged", "needs_input"), timeout=150) for aid in ids]
    assert [a["stage"] for a in finals] == ["merged"] * 3, [a.get("stage_reason") for a in finals]
    queue = httpx2.get(mfleet.hub.url + f"{API}/merges", headers=mfleet.admin).json()
    merged = sorted((e for e in queue["recent"] if e["state"] == "merged"), key=lambda e: e["seq"])
    assert sorted(e["assignment_id"] for e in merged) == sorted(ids)
    landed = [f for f in mfleet.main_files() if f.startswith("p")]
    assert landed == [f"p{next(a['issue'] for a in finals if a['id'] == e['assignment_id'])}.txt" for e in merged]
    assert len(mfleet.main_subjects()) == before + 3
