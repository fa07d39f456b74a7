"""Merge reports: what a host's report on a merge run does to its entries (:func:`report`).

The outcomes (:data:`OUTCOMES`) are described with the queue they move
entries through (:mod:`coordhub.core.mergequeue`): a conflict or a red gate
gets a fix worker (:func:`fix`) up to its cap, a branch that moved off the
commit its gates passed on goes back to its gates (:func:`refuse_moved`), and
a report on a run that is not current changes nothing (:class:`StaleRun`).
An entry whose assignment is in the pipeline's ``merge`` stage hands its
failures to the pipeline's fix loop (:mod:`coordhub.core.stages`).
"""

from __future__ import annotations

import json
from typing import Any

from coordhub.core import assignments, coordinator, hosts, stages
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.core.mergeentries import State, render, transition
from coordhub.core.orchestrator_config import Config, escalate
from coordhub.core.redaction import redact, redact_opt
from coordhub.errors import Conflict, Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx

MAX_EVIDENCE_CHARS = 8000  # the output tail kept per entry
MAX_CUT_NAMES = 20  # names of left-out evidence values the stored evidence lists at most
OUTCOMES = ("landing", "merged", "conflict", "red", "policy", "retry", "moved", "error")


class StaleRun(Conflict):
    """A host reported on a run that is not the entries' current one (409); nothing changes."""

    code = "stale_run"


def _piped(tx: Tx, row: Row) -> bool:
    """Whether the entry's assignment is in the pipeline's ``merge`` stage (its failures go to the pipeline)."""
    a = tx.assignments.get(row["assignment_id"])
    return a is not None and a["stage"] == stages.Stage.MERGE.value


def _passed(tx: Tx, row: Row) -> bool:
    """Whether the entry's assignment is in stage ``passed``: it passed a pipeline without ``merge`` and came in by
    hand (`coord merge ID`, seed 003's way). Merged, it is ``merged`` too: left ``passed``, `coord status` showed
    a landed branch as waiting and `coord done` counted no merge."""
    a = tx.assignments.get(row["assignment_id"])
    return a is not None and a["stage"] == stages.Stage.PASSED.value


def report(tx: Tx, actor: Actor, now: float, *, machine: str, incarnation: int, batch_id: str, outcome: str,
           tip: str | None = None, sha: str | None = None, culprit: str | None = None, reason: str | None = None,
           evidence: dict[str, Any] | None = None, pr_number: int | None = None,
           pr_url: str | None = None, only: list[str] | None = None) -> dict[str, Any]:
    """Apply a host's report on run ``batch_id``; return ``{outcome, entries}`` (rendered, queue order).

    ``outcome`` is one of :data:`OUTCOMES` (see :mod:`coordhub.core.mergequeue`);
    ``landing`` needs ``tip`` (``retry`` may name one: the host's push to a PR's head), ``merged`` needs ``sha``,
    ``conflict`` names the ``culprit`` entry, ``moved`` sends the entries back to their gates
    (:func:`refuse_moved`, ``reason`` saying where the branch is); ``only`` limits the outcome to some of the run's
    entries (a host found some already merged). ``StaleRun`` (409, nothing changes) when the run
    is not current (its host was given up, or it ended); ``Invalid`` for a bad
    outcome or a missing field.
    """
    config = coordinator.require(tx)
    host = hosts.current(tx, actor, config, machine, incarnation)
    if outcome not in OUTCOMES:
        raise Invalid(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
    rows = [r for r in tx.merge_entries.batch(batch_id) if r["state"] == "running"]
    if not rows or any(r["machine"] != host["machine"] or r["host_incarnation"] != incarnation for r in rows):
        raise StaleRun(f"run {batch_id} is not running on {host['machine']} (incarnation {incarnation}) any more; "
                       "nothing changes", batch_id=batch_id)
    if only:
        rows = [r for r in rows if r["id"] in set(only)]
        if not rows:
            raise Invalid("only names none of the run's entries", field="only")
    by = actor.session_id
    reason = redact_opt(reason)  # a gate's output and reasons reach every session and the audit trail
    ev = _evidence(evidence)
    pr = {k: v for k, v in (("pr_number", pr_number), ("pr_url", pr_url)) if v is not None}
    if outcome == "landing":
        if not tip:
            raise Invalid("a landing report names the tip about to land", field="tip")
        for r in rows:
            tx.merge_entries.set(r["id"], {"tip": tip, "updated_at": now, **pr})
        emit(tx, "merge.landing", now, session_id=by, project_key=rows[0]["repo"], subject_id=batch_id,
             batch_id=batch_id, tip=tip, entries=[r["id"] for r in rows])
        out = [tx.merge_entries.get(r["id"]) or r for r in rows]
    elif outcome == "merged":
        if not sha:
            raise Invalid("a merged report names the commit the target now has", field="sha")
        out = [transition(tx, r, State.MERGED, now, by=by, merged_sha=sha, ended_at=now, reason=reason,
                          evidence=ev, **pr) for r in rows]
        for r in rows:
            if _piped(tx, r) or _passed(tx, r):
                stages.merged(tx, r["assignment_id"], now, by=by, commit=sha)
    elif outcome == "conflict":
        out = _conflict(tx, config, rows, culprit, reason, ev, now, by, pr)
    elif outcome == "red":
        out = _red(tx, config, rows, reason, ev, now, by, pr)
    elif outcome == "retry":
        # a tip here is the host's push of the gated commit to the PR's head (it stopped while the checks ran):
        # the next run takes that head as this queue's own (prior_tip), not as a push after the gates
        kept = {"tip": tip} if tip else {}
        out = [transition(tx, r, State.QUEUED, now, by=by, batch_id=None, reason=reason, **pr, **kept) for r in rows]
    elif outcome == "moved":
        detail = reason or "the branch is not at the commit its gates passed on"
        out = [refuse_moved(tx, r, detail, now, by=by, pr=pr) for r in rows]
    else:  # policy, error: a human decides
        why = reason or outcome
        out = [transition(tx, r, State.NEEDS_INPUT, now, by=by, batch_id=None, evidence=ev,
                          reason=f"{outcome}: {why}", **pr) for r in rows]
        for r in rows:
            if _piped(tx, r):
                stages.merge_failed(tx, r["assignment_id"], now, kind=outcome, reason=why, by=by)
    return {"outcome": outcome, "entries": [render(r) for r in out]}


def _evidence(evidence: dict[str, Any] | None) -> str | None:
    """The JSON text stored of a report's ``evidence`` (None for none): tokens masked, at most about
    ``2 * MAX_EVIDENCE_CHARS`` characters, always one JSON object.

    A long one keeps the end of its ``output`` (at most ``MAX_EVIDENCE_CHARS // 2`` characters, halved while
    its escapes keep the text over the bound: ``é`` is 6), masked before it is cut: a cut inside a token left its
    body without the ``coord_`` that makes it one, shown in clear. Other values too long to keep (a key counts with
    its value) are left out and named in ``cut`` (:func:`_cut_names`: the list is bounded too). The cut was of
    the JSON text: a non-ASCII output left it unreadable, and the report and every later read of the entry
    answered 500.
    """
    if not evidence:
        return None
    text = json.dumps(evidence)
    if len(text) > MAX_EVIDENCE_CHARS:
        big = MAX_EVIDENCE_CHARS // 8  # a key counts with its value: a long key is as long as a long value
        cut = sorted(k for k, v in evidence.items() if k != "output" and len(json.dumps({k: v})) > big)
        kept = {k: v for k, v in evidence.items() if k not in cut and k != "output"}
        if len(json.dumps(kept)) > MAX_EVIDENCE_CHARS:  # many short values: only the exit code stays
            cut = sorted(k for k in evidence if k != "output" and (k != "exit_code" or k in cut))
            kept = {k: evidence[k] for k in ("exit_code",) if k in evidence and k not in cut}
        named = _cut_names(cut)
        out = redact(str(evidence.get("output") or ""))[-(MAX_EVIDENCE_CHARS // 2):]
        while len(text := json.dumps({**kept, "output": out, **({"cut": named} if named else {})})) \
                > MAX_EVIDENCE_CHARS * 2 and out:
            out = out[len(out) // 2 + 1:]
    return redact(text)  # JSON escapes no token character, so masking the text masks the values


def _cut_names(cut: list[str]) -> list[str]:
    """The names ``cut`` lists: at most :data:`MAX_CUT_NAMES`, each masked, then cut to 100 characters, then how
    many more. Unbounded, 60,000 short keys (or one key of 500,000 characters) were stored whole in ``cut``."""
    named = [k if len(k) <= 100 else k[:100] + "…" for k in map(redact, cut[:MAX_CUT_NAMES])]
    return named + ([f"… and {len(cut) - MAX_CUT_NAMES} more"] if len(cut) > MAX_CUT_NAMES else [])


def _conflict(tx: Tx, config: Config, rows: list[Row], culprit: str | None, reason: str | None, ev: str | None,
              now: float, by: str, pr: dict[str, Any]) -> list[Row]:
    bad = next((r for r in rows if r["id"] == culprit), None)
    if bad is None:
        raise Invalid("a conflict report names the culprit: one of the run's entries", field="culprit")
    out = [transition(tx, r, State.QUEUED, now, by=by, batch_id=None, reason=None)
           for r in rows if r["id"] != bad["id"]]
    detail = reason or "the branch does not rebase cleanly onto the target"
    out.append(fix(tx, config, bad, "conflict", detail, ev, now, by, pr))
    return sorted(out, key=lambda r: r["seq"])


def _red(tx: Tx, config: Config, rows: list[Row], reason: str | None, ev: str | None, now: float, by: str,
         pr: dict[str, Any]) -> list[Row]:
    if len(rows) > 1:  # bisect (Bors): the next runs test halves of this batch until the culprit stands alone
        cap = (len(rows) + 1) // 2
        return [transition(tx, r, State.QUEUED, now, by=by, batch_id=None, batch_cap=cap,
                           reason=f"bisecting: a batch of {len(rows)} was red ({reason or 'the gate failed'})")
                for r in rows]
    return [fix(tx, config, rows[0], "red", reason or "the gate failed at the rebased tip", ev, now, by, pr)]


def fix(tx: Tx, config: Config, row: Row, kind: str, detail: str, ev: str | None, now: float, by: str | None,
        pr: dict[str, Any] | None = None) -> Row:
    """Queue a fix worker on the entry's branch (``kind`` ``conflict`` or ``red``), or stop at the cap.

    An assignment in the pipeline's ``merge`` stage goes to the pipeline's fix
    loop (``stages.merge_failed``: its rounds, its cap; entering ``merge``
    again re-queues the entry). Otherwise the assignment (done) is queued
    again with the queue's instructions beside its briefing (``guidance``),
    the model one step up ``models.escalation``; the entry waits in
    ``fixing`` until that worker ends
    (:func:`~coordhub.core.mergequeue.advance`). After
    ``merge.conflict_fixes`` / ``merge.red_fixes`` rounds, or when the
    assignment cannot be queued, the entry is ``needs_input`` with the reason.
    """
    pr = pr or {}
    count_col, cap = (("conflict_fixes", config.merge.conflict_fixes) if kind == "conflict"
                      else ("red_fixes", config.merge.red_fixes))
    a = tx.assignments.get(row["assignment_id"])
    if a is not None and a["stage"] == stages.Stage.MERGE.value:  # the pipeline's fix loop (its rounds, its cap)
        row = transition(tx, row, State.FIXING, now, by=by, batch_id=None, fix_attempt=a["attempt"], evidence=ev,
                         reason=f"{kind}: {detail}; handed to the pipeline's fix loop",
                         **{count_col: row[count_col] + 1}, **pr)
        stages.merge_failed(tx, a["id"], now, kind="conflict" if kind == "conflict" else "test", reason=detail,
                            by=by, findings=fix_instructions(kind, row, detail, ev))
        return tx.merge_entries.get(row["id"]) or row
    stop = None
    if row[count_col] >= cap:
        stop = f"{kind}: {detail} (after {row[count_col]} fix worker(s); merge.{count_col} is {cap})"
    elif a is None or a["state"] != "done":
        stop = f"{kind}: {detail} (no fix worker: the assignment is {a['state'] if a else 'gone'})"
    elif (other := tx.assignments.live_for_issue(a["repo"], a["issue"])) is not None:
        stop = f"{kind}: {detail} (no fix worker: the issue has assignment {other['id']} now)"
    if stop is not None or a is None:
        return transition(tx, row, State.NEEDS_INPUT, now, by=by, batch_id=None, evidence=ev, reason=stop, **pr)
    instructions = fix_instructions(kind, row, detail, ev)
    model, source = escalate(config.models, a["model"])
    assignments.transition(tx, a, assignments.State.QUEUED, now, by=by, guidance=instructions,
                           model=model, model_source=source,
                           reason=f"merge queue: {kind}", not_before=None, ended_at=None, queued_at=now,
                           resume_session=None, worktree=None, result=None, started_at=None)
    return transition(tx, row, State.FIXING, now, by=by, batch_id=None, fix_attempt=a["attempt"], evidence=ev,
                      reason=f"{kind}: {detail}; fix worker queued", **{count_col: row[count_col] + 1}, **pr)


def fix_instructions(kind: str, row: Row, detail: str, ev: str | None) -> str:
    """What a fix worker is told beside its original briefing: what the queue found and what to do (≤ 64 KiB).

    ``ev`` is the stored evidence (:func:`_evidence`), whose values are what the host sent: a ``files`` that is no
    list of names or an ``output`` that is no text is shown as text, never taken apart (it answered 500).
    """
    target = row["target"]
    found = json.loads(ev) if ev else {}
    if kind == "conflict":
        named = found.get("files")
        files = (", ".join(str(f) for f in named) if isinstance(named, list) else str(named or "")) \
            or "see git status"
        todo = (f"The merge queue could not rebase branch {row['branch']} onto origin/{target}: {detail}. "
                f"Conflicting files: {files}. Run `git fetch origin && git rebase origin/{target}`, resolve every "
                "conflict keeping the intent of both sides, run the tests, and commit (finish the rebase). The host "
                "pushes the branch.")
    else:
        output = str(found.get("output") or "")
        todo = (f"The merge queue's gate failed on branch {row['branch']} rebased onto origin/{target}: {detail}. "
                f"Fix the code on this branch (rebase onto origin/{target} first if the failure comes from there), "
                f"run the gate, and commit.\n\nThe gate's output (its end):\n{output[-4000:]}")
    text = f"Merge queue fix ({kind}) for #{row['issue']}.\n\n{todo}"
    return text.encode("utf-8")[:assignments.MAX_GUIDANCE_BYTES].decode("utf-8", "ignore")


def refuse_moved(tx: Tx, row: Row, detail: str, now: float, *, by: str | None,
                 pr: dict[str, Any] | None = None) -> Row:
    """The entry's branch is not at the commit its gates passed on (``detail`` says how): it does not merge, and
    its gates run again on the branch as it is now; return the entry.

    An assignment in the pipeline's ``merge`` stage goes back to its first gate (``stages.recheck``), its run
    queued at once; the entry waits in ``fixing`` and takes its old place in the queue when the branch enters
    ``merge`` again, as after a fix (no fix round is spent: nothing failed). Any other entry (entered by hand,
    ``merge.auto_queue``) stops at ``needs_input`` with the reason: a person runs the gates again
    (``coord test``, ``coord review``) and sends it back.
    """
    pr = pr or {}
    why = f"moved: {detail}"
    a = tx.assignments.get(row["assignment_id"])
    if a is not None and a["stage"] == stages.Stage.MERGE.value:
        row = transition(tx, row, State.FIXING, now, by=by, batch_id=None, fix_attempt=a["attempt"],
                         reason=f"{why}; its gates run again", **pr)
        stages.recheck(tx, a["id"], now, reason=f"merge refused: {detail}", by=by)
        return tx.merge_entries.get(row["id"]) or row
    return transition(tx, row, State.NEEDS_INPUT, now, by=by, batch_id=None,
                      reason=f"{why}; run its gates again (coord test, coord review) and send it back", **pr)
