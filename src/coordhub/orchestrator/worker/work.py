"""An attempt's work in its git worktree: where it starts, what it changed, and how it is saved.

A resumed attempt (``resume-stuck``) continues in its parked worktree while
that is still there; any other gets a new one
(:mod:`~coordhub.orchestrator.worktree`). Before it starts, the repos it
depends on are checked for freshness (seed 003). At the end, work is saved
before anything is removed: a ``wip`` commit on the branch, or a
``refs/coordhub/wip/…`` commit beside a finished branch; a done branch is
pushed, and so is the branch of any other run the hub still counts (its
commits and its ``wip`` save, fast-forward only: :func:`share`), so the next
attempt continues from it on any machine; a stuck or needs-input worktree is kept (``parked``) for
``resume-stuck``, any other is removed — and never one whose work could not be
saved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordhub.orchestrator import worktree
from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.outcome import Verdict
from coordhub.orchestrator.worker.context import Context, EndEarly

log = logging.getLogger("coordhub.agent")

MAX_NOTES, MAX_NOTE_CHARS = 50, 500  # freshness notes in a report (the hub refuses more: AssignmentReport)


def open_worktree(ctx: Context, d: Dispatch, repo: Path) -> worktree.Worktree:
    """The attempt's worktree of ``repo``: a resumed attempt's parked one if it is still there, else a new one.

    A new worktree of a resumed attempt keeps the parked record's ``base`` (new
    commits are counted from where the first attempt started). ``EndEarly``
    ``failed`` (``git: …``) when git fails.
    """
    parked = ctx.state.get(d.id) if d.resume else None
    try:
        if parked and parked.get("worktree") and Path(parked["worktree"]).is_dir():
            return worktree.Worktree(repo, Path(parked["worktree"]), parked.get("branch") or d.branch,
                                     parked.get("base") or worktree.git(Path(parked["worktree"]), "rev-parse", "HEAD"))
        path = ctx.worktrees / safe(d.id)
        wt = worktree.create(repo, path, d.branch, d.default_branch, ctx.worktrees)
        if parked and parked.get("base"):
            wt = worktree.Worktree(repo, path, d.branch, parked["base"])
        return wt
    except worktree.GitError as exc:
        raise EndEarly("failed", f"git: {exc}") from None


def recorded_worktree(rec: dict[str, Any], ctx: Context, d: Dispatch) -> worktree.Worktree | None:
    """The worktree a previous host process recorded, or None when the record names none (or no base)."""
    repo = Path(rec["repo_path"]) if rec.get("repo_path") else ctx.repos.get(d.repo)
    if rec.get("worktree") and repo is not None and rec.get("base"):
        return worktree.Worktree(repo, Path(rec["worktree"]), rec.get("branch") or d.branch, rec["base"])
    return None


def freshness(ctx: Context, d: Dispatch, say: Callable[[list[str]], None]) -> list[str]:
    """Check the repos ``d`` depends on (seed 003's freshness check), each told to ``say`` as it is checked.

    Returns the notes for the first report, as many and as long as a report
    may carry; a repo this machine does not serve is ``not on this machine``.
    """
    notes = []
    for dep, branch in d.depends_on:
        dep_path = ctx.repos.get(dep)
        note = worktree.freshness(dep_path, branch, d.auto_pull) if dep_path is not None else \
            "not on this machine"
        notes.append(f"{dep}: {note}")
        say([f"[fresh] {dep}: {note}"])
    if d.skip_freshness:
        notes.append("skipped (coord approve --skip-freshness)")
        say(["[fresh] skipped (coord approve --skip-freshness)"])
    # reported with the first report (`coord approve` shows stale ones), within the report's limits
    return [n[:MAX_NOTE_CHARS] for n in notes][:MAX_NOTES]


def new_commits(wt: worktree.Worktree, d: Dispatch) -> int | None:
    """Commits on the branch since the run started; 0 when git cannot count them in a worktree that exists
    (logged). A worktree that is gone (a host killed while it removed a finished run's worktree) is counted
    on its branch in the repository; None when that cannot be counted either: never judged "no commit"."""
    if not wt.path.exists():
        try:
            return int(worktree.git(wt.repo, "rev-list", "--count", f"{wt.base}..refs/heads/{wt.branch}") or 0)
        except (worktree.GitError, ValueError) as exc:
            log.warning("worker %s: worktree %s is gone and its branch cannot be counted: %s", d.id, wt.path, exc)
            return None
    try:
        return worktree.new_commits(wt)
    except worktree.GitError as exc:
        log.warning("worker %s: cannot count commits: %s", d.id, exc)
        return 0


def changed_files(wt: worktree.Worktree, d: Dispatch) -> list[str] | None:
    """The files the branch changed, or None when git cannot list them (logged).

    They route the branch's smoke test (``smoke_tests.capability_rules``).
    """
    try:
        return worktree.changed_files(wt, d.default_branch)
    except worktree.GitError as exc:
        log.warning("worker %s: cannot list changed files: %s", d.id, exc)
        return None


@dataclass(frozen=True)
class Saved:
    """What :func:`save` did: the verdict it leaves, the wip commit (None: nothing to save), and what it kept."""

    verdict: Verdict
    pushed: bool = False
    wip: str | None = None
    keep: bool = False  # the worktree is kept (parked, or its work could not be saved)


def save(wt: worktree.Worktree, d: Dispatch, verdict: Verdict, stale: bool, machine: str,
         before_remove: Callable[[Saved], None] | None = None) -> Saved:
    """Save the work of an ended run, push a done branch, then keep or remove the worktree.

    ``before_remove`` is called with what was saved before the worktree is
    removed (the worker records its final report there, so a host killed
    during or after the removal delivers it instead of judging the run again).
    A worktree that is already gone (see :func:`new_commits`) has nothing left
    to save: a done branch is pushed from the repository.

    The verdict turns ``failed`` (``push_failed``) when the push of a done
    branch fails; the branch of a run that is not done is pushed too
    (:func:`share`: a refusal only adds to the reason); the reason says so
    when the work could not be saved (the worktree is then kept). A ``stale``
    attempt (given up by the hub) is never pushed or parked: its work stays on
    the branch.
    """
    state, reason = verdict.state, verdict.reason
    pushed, wip, keep = False, None, False
    if not wt.path.exists():
        if state == "done" and not stale:
            try:
                lease = [f"--force-with-lease=refs/heads/{wt.branch}:{wt.remote}"] if wt.remote else []
                worktree.with_origin(wt.repo, "push", "--quiet", *lease, "origin",
                                     f"refs/heads/{wt.branch}:refs/heads/{wt.branch}")
                pushed = True
            except worktree.GitError as exc:
                state, reason = "failed", f"push_failed: {exc}"
        elif not stale:
            pushed, reason = share(wt, d, machine, reason)
        saved = Saved(Verdict(state, reason), pushed)
        if before_remove is not None:
            before_remove(saved)
        return saved
    try:
        if state == "done" and not stale:
            wip = worktree.save_work(wt.path, f"wip: leftovers of assignment {d.id} attempt {d.attempt}",
                                     on_branch=False, ref_name=f"{safe(d.id)}-{d.attempt}", machine=machine)
            try:
                worktree.push(wt)
                pushed = True
            except worktree.GitError as exc:
                state, reason = "failed", f"push_failed: {exc}"
        else:
            wip = worktree.save_work(wt.path, f"wip: assignment {d.id} attempt {d.attempt} "
                                     f"({reason.split(':')[0]})", on_branch=True, machine=machine)
        keep = state in ("stuck", "needs_input") and not stale
    except worktree.GitError as exc:
        keep = True  # never remove a worktree whose work could not be saved
        reason += f" (work NOT saved: {exc}; worktree kept at {wt.path})"
    else:
        if state != "done" and not stale:
            pushed, reason = share(wt, d, machine, reason)
    saved = Saved(Verdict(state, reason), pushed, wip, keep)
    if before_remove is not None:
        before_remove(saved)
    if not keep:
        try:
            worktree.remove(wt.repo, wt.path)
        except worktree.GitError as exc:
            log.warning("worker %s: cannot remove %s: %s", d.id, wt.path, exc)
    return saved


def share(wt: worktree.Worktree, d: Dispatch, machine: str, reason: str) -> tuple[bool, str]:
    """Push the branch of a run that is not done (its commits and its ``wip`` save) to ``origin``, so the next
    attempt continues from it on whichever machine runs it; ``(pushed, reason)``.

    Fast-forward only, never forced: when ``origin``'s branch moved on (another attempt, a person) git refuses,
    the work stays on this machine's branch and ``reason`` says so. Nothing is pushed when the branch has no
    commit since the run started (no branch of ``origin/<default>``'s commit appears on ``origin``).
    """
    ref = f"refs/heads/{wt.branch}"
    try:
        if not int(worktree.git(wt.repo, "rev-list", "--count", f"{wt.base}..{ref}") or 0):
            return False, reason
        worktree.with_origin(wt.repo, "push", "--quiet", "origin", f"{ref}:{ref}")
    except (worktree.GitError, ValueError) as exc:
        log.warning("worker %s: the saved work of %s is not pushed: %s", d.id, wt.branch, exc)
        return False, f"{reason} (its work is saved on {machine or 'this machine'}'s branch only, not pushed: {exc})"
    return True, reason


def discard(wt: worktree.Worktree, d: Dispatch, machine: str) -> None:
    """Save what a worktree holds on its branch and remove it (claude never ran in it); kept when git fails (logged)."""
    try:
        worktree.save_work(wt.path, f"wip: assignment {d.id} (claude did not run)", on_branch=True, machine=machine)
        worktree.remove(wt.repo, wt.path)
    except worktree.GitError as exc:  # kept, and the record says so: a later restart saves it again
        log.warning("worker %s: worktree %s kept: %s", d.id, wt.path, exc)


def safe(name: str) -> str:
    """``name`` made safe for a path or a ref: letters, digits and ``-_.`` kept, others ``_``; at most 100."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100]
