"""The host side of the merge queue: a ``coord agent`` thread that runs what ``…/merges/next`` hands it.

One run is one or more entries of one (repo, target) queue, in order
(:mod:`coordhub.core.mergequeue` decides). In a scratch worktree of the
host's clone, detached at ``origin/<target>``:

1. **Already merged?** An entry whose recorded tip (write-ahead, from a run
   whose host or hub died) is contained in the target, or whose commit is,
   or whose every commit is already there by patch id, is only reported
   ``merged``: nothing merges twice.
2. **The commit that passed.** An entry's commit is its ``gated_sha``, the
   one its test and review passed on (the hub pins it when the run starts).
   When ``origin/<branch>`` is not that commit, someone pushed after the
   gates: the entry is reported ``moved`` (its gates run again) and nothing
   of it is stacked. Without a pin, the commit ``origin/<branch>`` points at
   when the run fetched.
3. **Stack** each entry's commit (never the branch name: a push during the
   run changes nothing) on the current tip: rebase (``git rebase --onto``),
   squash (``git merge --squash``, one commit ``title (#N)``) or merge
   (``--no-ff``), the host's ``wip:`` saves folded into the worker's own
   commits (:func:`fold_wip`). A conflict names its files and the culprit entry.
4. **Gate** at the tip: the configured command (``sh -c``, its own process
   group, a timeout), run as a smoke test is (:func:`~.smoke.run_command`: it
   ends when its main process exits, what it left in its group is killed, and
   only its output's tail is read); its exit code is the verdict, the tail the
   evidence. It runs the branch's code in the worktree: a gate that moves
   HEAD (commits, checks out) or changes a tracked file is ``red`` whatever
   its exit code, since its verdict is about other code than the tip.
5. **Landing** is reported (the tip, read before the gate) and must be
   acknowledged before anything is pushed; then ``git push origin
   <tip>:<target>`` — never forced: a target that moved refuses it
   (``retry``), a hook or protection that declines it is a ``policy`` refusal.
6. On GitHub (the repo has ``github:``; only a host with capability
   ``github`` gets such runs) the gate runs once at the stacked tip of the
   batch, then each PR lands alone, in order: its commit rebased onto the
   target as the PRs before it left it (landing only when that tree is the
   one the gate passed at its place in the stack, and the branch is still at
   its commit or at this host's own earlier push of it), pushed to the PR's
   head (``--force-with-lease``), the PR opened if there is none, its CI
   checks awaited (required with ``merge.require_checks``), the PR's head
   checked to be that push (else ``moved``), and ``gh pr merge
   --match-head-commit`` lands it (GitHub refuses it if the head moves still).

Reports are delivered until the hub answers (a hub that is down is waited
for); a 409 means the run was given up, and the host stops without pushing.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordhub.client import Unreachable
from coordhub.orchestrator import smoke, worktree
from coordhub.orchestrator.dispatch import check_id
from coordhub.orchestrator.environment import worker_env
from coordhub.orchestrator.github import GitHub, GitHubError
from coordhub.orchestrator.link import HubLink, Refused, Stale
from coordhub.orchestrator.worktree import GitError, git

log = logging.getLogger("coordhub.agent.merge")

POLL_WAIT = 20.0
OUTPUT_TAIL = 6000  # characters of the gate's output kept as evidence
CHECKS_POLL = 1.0  # seconds between two reads of a PR's checks
GATE_LOG = "gate.log"  # the gate's output file in <logs>/gate-<batch>/, there only while the gate runs
_SCRUB = ("COORD_TOKEN",)


class Abandoned(Exception):
    """The hub gave the run up (409): stop, push nothing."""


class HostStopped(Exception):
    """The host stops (SIGTERM) during the run: push nothing, and report ``retry`` saying so (``host_stopped``),
    which queues the entries again at once, rather than leave the hub to find the run lost."""


@dataclass
class Outcome:
    """How a run (or part of it) ended: a report body without the host's fields."""

    outcome: str
    fields: dict[str, Any]


class MergeRunner:
    """Polls for merge runs and executes them, one at a time, until ``stopping`` is set.

    ``repos`` and ``incarnation`` are read when a run starts (the host
    follows config changes and re-registers; a run reports with the
    incarnation it started under).
    """

    def __init__(self, link: HubLink, machine: str, repos: Callable[[], dict[str, Path]], scratch: Path,
                 env: dict[str, str], stopping: threading.Event, incarnation: Any, poll_wait: float = POLL_WAIT,
                 checks_poll: float = CHECKS_POLL, pass_env: Iterable[str] = (), logs: Path | None = None) -> None:
        self.link, self.machine, self.repos, self.scratch = link, machine, repos, scratch
        self.logs = logs or scratch  # where a gate's output file goes while it runs (the host's workers directory)
        self.env = {k: v for k, v in env.items() if k not in _SCRUB}  # git and gh (GH_TOKEN on a github host)
        # The gate runs the branch's own code: a worker's allowlisted environment, as smoke tests get (no GitHub
        # or hub credential, nothing else of the host's), never the host's.
        self.gate_env = worker_env(env, {}, pass_env)
        self.stopping = stopping
        self.current = incarnation
        self.poll_wait = poll_wait
        self.checks_poll = checks_poll
        self.idle = threading.Event()  # no run in progress: a stopping host waits for it, not for a long-poll
        self.idle.set()

    def loop(self) -> None:
        """Poll and run until stopped (the thread's target)."""
        delay = 1.0
        while not self.stopping.is_set():
            inc = self.current()
            if inc is None:
                self.stopping.wait(1.0)
                continue
            try:
                run = self.link.merge_next(inc, self.poll_wait)
            except (Unreachable, Refused) as exc:
                log.warning("merges/next: %s; again in %.0f s", exc, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            if run is not None:
                self.idle.clear()
                try:
                    self.execute(run, inc)
                except Abandoned as exc:
                    log.warning("merge run %s abandoned: %s", run.get("batch_id"), exc)
                except Exception:  # a bug must not kill the thread; the hub requeues the run when we re-register
                    log.exception("merge run %s failed", run.get("batch_id"))
                finally:
                    self.idle.set()

    # -- one run -------------------------------------------------------------------------------

    def execute(self, run: dict[str, Any], inc: int) -> None:
        """Run one merge job and report it (see the module docstring)."""
        batch = str(run["batch_id"])
        try:
            check_id(batch, "batch_id")  # it names the run's scratch worktree, removed first when it is there
        except ValueError as exc:
            self._report(inc, batch, Outcome("error", {"reason": str(exc)[:1000]}))
            return
        repo = self.repos().get(str(run["repo"]))
        if repo is None:
            self._report(inc, batch, Outcome("error", {"reason": f"machine {self.machine} has no path for repo "
                                                                 f"{run['repo']}"}))
            return
        log.info("merge run %s: %s into %s/%s (%s)", batch, ", ".join(e["branch"] for e in run["entries"]),
                 run["repo"], run["target"], run["method"])
        path = self.scratch / f"merge-{batch}"
        try:
            with worktree.repo_lock(repo):
                git(repo, "fetch", "--quiet", "--prune", "origin")
                git(repo, "worktree", "prune")
                if path.exists():
                    worktree.remove_worktree(repo, path)
                path.parent.mkdir(parents=True, exist_ok=True)
                git(repo, "worktree", "add", "--quiet", "--detach", str(path), f"origin/{run['target']}")
        except GitError as exc:
            self._report(inc, batch, Outcome("retry", {"reason": f"git: {exc}"[:1000]}))
            return
        try:
            if run.get("github"):
                self._github(run, inc, batch, path)
            else:
                self._local(run, inc, batch, path)
        except GitError as exc:  # _github reports its own; here it left the run unreported until the hub's deadline
            self._report(inc, batch, Outcome("error", {"reason": f"git: {exc}"[:1000]}))
        except HostStopped as exc:
            self._report(inc, batch, Outcome("retry", {"reason": f"host_stopped: {self.machine} was stopped during "
                                                                  f"the merge run ({exc}); queued again"}))
        finally:
            try:
                worktree.remove(repo, path)
            except GitError as exc:
                log.warning("merge run %s: cannot remove %s: %s", batch, path, exc)

    def _already(self, run: dict[str, Any], inc: int, batch: str, wt: Path) -> list[dict[str, Any]]:
        """Report the entries the target already contains, and those whose branch moved off its gated commit;
        return the others, each with ``source``: the commit to stack (its ``gated_sha``, else the branch's
        commit now)."""
        target = f"origin/{run['target']}"
        left = []
        for e in run["entries"]:
            branch = f"origin/{e['branch']}"
            tip = e.get("prior_tip")
            pin = e.get("gated_sha")
            if tip and _ancestor(wt, tip, target):
                self._report(inc, batch, Outcome("merged", {"sha": tip, "only": [e["id"]],
                                                            "reason": "found landed by an earlier run"}))
            elif not _exists(wt, branch):
                self._report(inc, batch, Outcome("error", {"only": [e["id"]], "reason": f"branch {e['branch']} is not "
                                                           "on origin"}))
            elif pin and not _exists(wt, pin):  # force-pushed away before this clone ever fetched it
                self._report(inc, batch, _moved(e, git(wt, "rev-parse", branch)))
            elif _ancestor(wt, pin or branch, target) or not _unmerged(wt, target, pin or branch):
                sha = git(wt, "rev-parse", target)
                self._report(inc, batch, Outcome("merged", {"sha": sha, "only": [e["id"]],
                                                            "reason": "every commit of the branch is on the target"}))
            elif pin and (head := git(wt, "rev-parse", branch)) != pin and not (run.get("github") and head == tip):
                # on GitHub the branch may hold this host's own rebase of the pin (pushed by a run that did not
                # finish: its landing recorded that tip); anything else was pushed after the gates
                self._report(inc, batch, _moved(e, head))
            else:
                left.append({**e, "source": pin or git(wt, "rev-parse", branch)})
        return left

    def _local(self, run: dict[str, Any], inc: int, batch: str, wt: Path) -> None:
        entries = self._already(run, inc, batch, wt)
        if not entries:
            return
        only = [e["id"] for e in entries]
        for e in entries:
            problem = self._apply(run, e, wt)
            if problem is not None:
                self._report(inc, batch, Outcome("conflict", {"culprit": e["id"], **problem}))
                return
        tip = git(wt, "rev-parse", "HEAD")  # read before the gate: what it does to the worktree never lands
        gate = self._gate(run, wt)
        if gate is not None:
            self._report(inc, batch, Outcome("red", {**gate, "only": only}))
            return
        self._report(inc, batch, Outcome("landing", {"tip": tip, "only": only}))
        with worktree.repo_lock(wt):
            p = worktree.run_git(wt, "push", "--porcelain", "origin", f"{tip}:refs/heads/{run['target']}")
        if p.returncode != 0:
            self._report(inc, batch, _push_refused(p.stdout + p.stderr, only))
            return
        self._report(inc, batch, Outcome("merged", {"sha": tip, "only": only}))
        if run.get("delete_branch"):
            for e in entries:
                worktree.with_origin(wt, "push", "--quiet", "origin", f":refs/heads/{e['branch']}", check=False)

    def _apply(self, run: dict[str, Any], e: dict[str, Any], wt: Path) -> dict[str, Any] | None:
        """Put entry ``e``'s commit (``e["source"]``, see :meth:`_already`) on top of the worktree's HEAD; None,
        or ``{reason, evidence}`` on a conflict."""
        ident = worktree.commit_identity(wt, self.machine)
        stack = git(wt, "rev-parse", "HEAD")
        branch = str(e["source"])
        method = run["method"]
        title = f"{e.get('title') or e['branch']} (#{e['issue']})"
        if method == "rebase":
            fork = git(wt, "merge-base", f"origin/{run['target']}", branch)
            git(wt, "checkout", "--quiet", "--detach", branch)
            p = worktree.run_git(wt, *ident, "rebase", "--quiet", "--onto", stack, fork)
            undo: tuple[str, ...] = ("rebase", "--abort")
            if p.returncode == 0:
                fold_wip(wt, stack, ident, title)
        elif method == "squash":
            p = worktree.run_git(wt, "merge", "--squash", branch)
            undo = ("reset", "--hard", "--quiet", stack)
        else:
            git(wt, "checkout", "--quiet", "--detach", branch)  # the branch's side of the merge, wip saves folded
            fold_wip(wt, git(wt, "merge-base", f"origin/{run['target']}", branch), ident, title)
            branch = git(wt, "rev-parse", "HEAD")
            git(wt, "checkout", "--quiet", "--detach", stack)
            p = worktree.run_git(wt, *ident, "merge", "--no-ff", "--no-edit", "-m",
                                 f"Merge branch '{e['branch']}' (#{e['issue']})", branch)
            undo = ("merge", "--abort")
        if p.returncode != 0:
            files = git(wt, "diff", "--name-only", "--diff-filter=U", check=False).splitlines()
            git(wt, *undo, check=False)
            git(wt, "checkout", "--quiet", "--force", "--detach", stack, check=False)
            return {"reason": f"{e['branch']} does not {method} cleanly onto {run['target']}: conflicts in "
                              f"{', '.join(files) or 'the tree'}"[:1000],
                    "evidence": {"files": files, "output": (p.stdout + p.stderr)[-OUTPUT_TAIL:]}}
        if method == "squash":
            git(wt, *ident, "commit", "--quiet", "--no-verify", "-m", title)
        return None

    def _gate(self, run: dict[str, Any], wt: Path) -> dict[str, Any] | None:
        """Run the gate at the tip; None when green (or no gate), else ``{reason, evidence}``.

        Red also when the gate moved HEAD or changed a tracked file (untracked build output is fine): its
        exit code then speaks of other code than the tip it was given. The caller pushes the tip it read
        before the gate, never HEAD after it.
        """
        cmd = run.get("gate_command")
        if not cmd:
            return None
        before = git(wt, "rev-parse", "HEAD", check=False)
        timeout = float(run.get("gate_timeout_seconds") or 1800)
        # Run as a smoke test is (smoke.run_command): output to a file outside the worktree, bounded on disk
        # (smoke.OUTPUT_LIMIT), only its tail read back; ended when its main process exits (the group then
        # killed, its pipe read for smoke.DRAIN_SECONDS at most), or at the timeout. Captured whole, as
        # subprocess.run does, the host held all the gate printed and waited on any process left holding the pipe.
        # The file is <logs>/gate-<batch>/gate.log, beside the workers' logs, not in the worktrees directory: a
        # host killed mid-gate left it there, and the next one moved it to lost+found as a stray; now recovery
        # reports it (recovery.Recovery: interrupted_gates). A gate that ends, however, leaves nothing.
        out_dir = self.logs / f"gate-{run['batch_id']}"
        out_dir.mkdir(parents=True, exist_ok=True)
        out_path = out_dir / GATE_LOG
        os.close(os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # the branch's output: private
        try:
            ended = smoke.run_command(cmd, wt, self.gate_env, timeout, out_path, self.stopping)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        if ended.killed == "stopped":
            raise HostStopped("the gate was stopped with the host")
        code = ended.exit_code
        tail = ended.tail[-OUTPUT_TAIL:]
        after = git(wt, "rev-parse", "HEAD", check=False)
        changed = git(wt, "status", "--porcelain", "--untracked-files=no", check=False).splitlines()
        if after != before or changed:
            what = (f"moved HEAD from {before[:12]} to {(after or 'nothing')[:12]}" if after != before
                    else f"changed tracked files ({', '.join(x.split(maxsplit=1)[-1] for x in changed[:5])})")
            return {"reason": f"the gate `{cmd[:200]}` {what}: its verdict is not about the tip it was given, "
                              "and nothing it made lands",
                    "evidence": {"command": cmd, "exit_code": code, "output": tail, "tip": before,
                                 "head_after": after, "changed": changed[:50]}}
        if code == 0:
            return None
        why = "timed out" if code == 124 else f"exited {code}"
        return {"reason": f"the gate `{cmd[:200]}` {why}",
                "evidence": {"command": cmd, "exit_code": code, "output": tail}}

    # -- GitHub ----------------------------------------------------------------------------------------

    def _github(self, run: dict[str, Any], inc: int, batch: str, wt: Path) -> None:
        """A run on GitHub: one gate for the whole batch at its stacked tip, then each PR lands alone, in order.

        GitHub merges one PR at a time and pins only its head (``--match-head-commit``), so a batch cannot land
        as one push. Each entry is therefore rebased onto the target as it stands after the PRs before it
        landed, and lands only if that tree is the very tree the gate passed at its place in the stack (the
        gate's verdict covers exactly that code); otherwise the rest goes back to the queue (``retry``).
        """
        gh = GitHub(str(run["github"]), env=self.env)
        try:
            pending = self._merged_prs(gh, run, inc, batch, wt)
            entries = self._already({**run, "entries": [e for e, _ in pending]}, inc, batch, wt)
            prs = {e["id"]: pr for e, pr in pending}
            if not entries:
                return
            trees: list[str] = []
            for e in entries:
                problem = self._apply({**run, "method": "rebase"}, e, wt)
                if problem is not None:
                    self._report(inc, batch, Outcome("conflict", {"culprit": e["id"], **problem}))
                    return
                trees.append(git(wt, "rev-parse", "HEAD^{tree}"))
            gate = self._gate(run, wt)
            if gate is not None:
                self._report(inc, batch, Outcome("red", {**gate, "only": [e["id"] for e in entries]}))
                return
            for k, e in enumerate(entries):
                rest = [x["id"] for x in entries[k + 1:]]
                if not self._land_pr(gh, run, inc, batch, wt, e, prs.get(e["id"]), trees[k]):
                    if rest:
                        self._report(inc, batch, Outcome("retry", {"only": rest, "reason": "an earlier PR of the "
                                                                   "batch did not land; queued again"}))
                    return
        except GitHubError as exc:
            self._report(inc, batch, Outcome("error", {"reason": f"gh: {exc.message}"[:1000]}))
        except GitError as exc:
            self._report(inc, batch, Outcome("retry", {"reason": f"git: {exc}"[:1000]}))

    def _merged_prs(self, gh: GitHub, run: dict[str, Any], inc: int, batch: str,
                    wt: Path) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Report the entries whose PR GitHub already merged (a run that died after ``gh pr merge``); the others
        with their PR (None: none yet)."""
        out = []
        for e in run["entries"]:
            pr = gh.pr_view(int(e["pr_number"]), "number,url,state,mergeCommit") if e.get("pr_number") else \
                gh.pr_for(e["branch"], run["target"])
            if pr and pr.get("state") == "MERGED":
                sha = (pr.get("mergeCommit") or {}).get("oid") or git(wt, "rev-parse", f"origin/{run['target']}")
                self._report(inc, batch, Outcome("merged", {"sha": sha, "pr_number": pr.get("number"),
                                                            "only": [e["id"]], "reason": "the PR was merged already"}))
            else:
                out.append((e, pr))
        return out

    def _land_pr(self, gh: GitHub, run: dict[str, Any], inc: int, batch: str, wt: Path, e: dict[str, Any],
                 pr: dict[str, Any] | None, gated_tree: str) -> bool:
        """Land entry ``e``'s PR: its branch rebased onto the target now (after the PRs before it), checked
        against ``gated_tree``, pushed to the PR's head, the PR opened, its checks awaited, ``gh pr merge``
        pinned to that head. Whether it merged (every other ending is reported here)."""
        only = [e["id"]]
        target = run["target"]
        # stacked alone on the target as it is now (after the PRs before it landed, as GitHub left them)
        worktree.with_origin(wt, "fetch", "--quiet", "origin")
        old = git(wt, "rev-parse", f"origin/{e['branch']}")
        pin = e.get("gated_sha")
        if pin and old not in (pin, e.get("prior_tip")):  # pushed to during the batch: not what the gates saw
            self._report(inc, batch, _moved(e, old))
            return False
        git(wt, "checkout", "--quiet", "--force", "--detach", f"origin/{target}")
        problem = self._apply({**run, "method": "rebase"}, e, wt)
        if problem is not None:
            self._report(inc, batch, Outcome("conflict", {"culprit": e["id"], "only": only, **problem}))
            return False
        if git(wt, "rev-parse", "HEAD^{tree}") != gated_tree:
            self._report(inc, batch, Outcome("retry", {"only": only, "reason": f"{target} moved during the batch: "
                                                       "the code differs from what the gate passed"}))
            return False
        tip = git(wt, "rev-parse", "HEAD")
        if tip != old and old == e.get("prior_tip") and _ancestor(wt, f"origin/{target}", old) \
                and git(wt, "rev-parse", f"{old}^{{tree}}") == gated_tree:
            tip = old  # this queue's own earlier push of this very code onto this target: pushed again, CI reran
        if tip != old:
            # write-ahead, as before a push to the target: the hub records this head as the queue's own (the next
            # run's prior_tip), so after a kill -9 from here on it is not taken for a push after the gates (moved)
            self._report(inc, batch, Outcome("landing", {"tip": tip, "only": only, "pr_number": (pr or {}).get(
                "number"), "pr_url": (pr or {}).get("url")}))
            worktree.with_origin(wt, "push", "--quiet", f"--force-with-lease=refs/heads/{e['branch']}:{old}",
                                 "origin", f"{tip}:refs/heads/{e['branch']}")
        if not pr or pr.get("state") != "OPEN":
            url = gh.pr_create(e["branch"], target, e.get("title") or e["branch"],
                               f"Closes #{e['issue']}\n\n<!-- coord:pr entry={e['id']} -->")
            pr = {"number": int(url.rstrip("/").rsplit("/", 1)[-1]), "url": url}
        number = int(pr["number"])
        info = {"pr_number": number, "pr_url": pr.get("url"), "only": only}
        try:
            red = self._checks(gh, number, run)
        except HostStopped as exc:  # queued again with the PR and this push: the next run goes on from them
            self._report(inc, batch, Outcome("retry", {**info, "tip": tip, "reason": f"host_stopped: {self.machine} "
                                                       f"was stopped during the merge run ({exc}); queued again"}))
            return False
        if red is not None:
            self._report(inc, batch, Outcome("red", {**red, **info}))
            return False
        head = str(gh.pr_view(number, "headRefOid").get("headRefOid") or "")
        if head != tip:  # pushed to while the checks ran: GitHub would merge code no gate saw
            self._report(inc, batch, Outcome("moved", {**info, "reason": f"the PR's head is {head[:12] or 'gone'}, "
                                                       f"not {tip[:12]} (the gated commit as pushed for it): pushed "
                                                       "to after the gates; they run again"}))
            return False
        self._report(inc, batch, Outcome("landing", {"tip": tip, **info}))
        try:
            gh.merge(number, run["method"], tip, bool(run.get("delete_branch")))
        except GitHubError as exc:
            refused = _gh_refused(exc, e["id"], info)
            self._report(inc, batch, refused)
            return False
        merged = gh.pr_view(number, "mergeCommit")
        sha = (merged.get("mergeCommit") or {}).get("oid") or tip
        self._report(inc, batch, Outcome("merged", {"sha": sha, **info}))
        return True

    def _checks(self, gh: GitHub, number: int, run: dict[str, Any]) -> dict[str, Any] | None:
        """Wait for the PR's checks; None when they passed (or none are required), else ``{reason, evidence}``.
        ``HostStopped`` when the host stops meanwhile: checks still running are no verdict (they read as a red
        gate before, which queued a fix worker for checks that had not failed)."""
        if not run.get("require_checks", True):
            return None
        deadline = time.monotonic() + float(run.get("checks_timeout_seconds") or 3600)
        while True:
            checks = gh.checks(number)
            if checks.failed:
                return {"reason": f"CI checks failed: {', '.join(checks.failed)}", "evidence": {"checks": checks.rows}}
            if not checks.pending:
                return None
            if self.stopping.is_set():
                raise HostStopped(f"PR #{number}'s CI checks were still running")
            if time.monotonic() > deadline:
                return {"reason": "CI checks still pending at checks_timeout_seconds", "evidence": {"checks":
                                                                                                      checks.rows}}
            self.stopping.wait(self.checks_poll)

    # -- reports ---------------------------------------------------------------------------------------

    def _report(self, inc: int, batch: str, out: Outcome) -> dict[str, Any]:
        """Deliver a report, waiting for the hub as long as it takes; ``Abandoned`` on a 409 or a refusal."""
        body = {"batch_id": batch, "outcome": out.outcome, **{k: v for k, v in out.fields.items() if v is not None}}
        delay = 0.5
        while True:
            try:
                return self.link.merge_report(inc, body)
            except Stale as exc:
                raise Abandoned(f"{out.outcome}: {exc}") from None
            except Refused as exc:
                raise Abandoned(f"{out.outcome} refused: {exc}") from None
            except Unreachable as exc:
                if self.stopping.is_set() and out.outcome != "landing":
                    log.warning("merge run %s: report %s not delivered (stopping): %s", batch, out.outcome, exc)
                    raise Abandoned("stopping") from None
                log.warning("merge run %s: hub unreachable (%s); report %s again in %.1f s", batch, exc,
                            out.outcome, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)


def fold_wip(wt: Path, base: str, ident: list[str], title: str) -> None:
    """Rewrite the commits ``base..HEAD`` of the (clean, detached) worktree ``wt`` without the host's ``wip:``
    saves (those with the :data:`~coordhub.orchestrator.worktree.SAVE_TRAILER` trailer), leaving HEAD at the
    result; nothing when there is none, or when the range holds a merge commit (its history is the branch's to keep).

    A save is a stopped run's uncommitted work, which the next attempt continued from: it is part of the
    worker's next commit, so it folds into that one (its tree is a snapshot that already holds the save);
    a trailing save folds into the commit before it; a range of saves alone becomes one commit ``title``.
    Each kept commit keeps its message and author (``git commit -C``); the final tree is HEAD's, so what the
    gate runs on is what it was. ``ident`` is :func:`~coordhub.orchestrator.worktree.commit_identity`'s.
    """
    # a save is told by its trailer (worktree.SAVE_TRAILER), not its subject: a worker's or a person's own commit
    # may start 'wip: ' too, and folding it would drop its message and give its change to another commit's author
    listed = git(wt, "log", "--reverse", f"--format=%H %P%x09%(trailers:key={worktree.SAVE_TRAILER},valueonly)%x00",
                 f"{base}..HEAD").split("\x00")
    rows = [(head.split(), bool(saved.strip())) for head, _, saved in
            (line.strip("\n").partition("\t") for line in listed) if head.strip()]
    if not any(saved for _, saved in rows) or any(len(ids) > 2 for ids, _ in rows):
        return
    kept: list[list[str | None]] = []  # [commit whose message and author to reuse (None: title), commit of its tree]
    trailing = False
    for (sha, *_), saved in rows:
        trailing = saved
        if not trailing:
            kept.append([sha, sha])
    if trailing:
        if kept:
            kept[-1][1] = rows[-1][0][0]
        else:
            kept.append([None, rows[-1][0][0]])
    git(wt, "checkout", "--quiet", "--detach", base)
    for meta, tree in kept:
        git(wt, "read-tree", "--reset", "-u", str(tree))
        how = ("-C", meta) if meta else ("-m", title)
        git(wt, *ident, "commit", "--quiet", "--no-verify", "--allow-empty", "--allow-empty-message", *how)


def _ancestor(wt: Path, commit: str, of: str) -> bool:
    return worktree.run_git(wt, "merge-base", "--is-ancestor", commit, of).returncode == 0


def _exists(wt: Path, ref: str) -> bool:
    return worktree.run_git(wt, "rev-parse", "--verify", "--quiet", ref + "^{commit}").returncode == 0


def _unmerged(wt: Path, target: str, branch: str) -> bool:
    """Whether ``branch`` has a commit whose change is not on ``target`` (``git cherry``: ``+`` lines)."""
    return any(line.startswith("+") for line in git(wt, "cherry", target, branch).splitlines())


def _moved(e: dict[str, Any], head: str) -> Outcome:
    """Entry ``e``'s branch is at ``head``, not at the commit its gates passed on: refused, its gates run again."""
    return Outcome("moved", {"only": [e["id"]], "reason": f"branch {e['branch']} is at {head[:12]}, not at "
                                                          f"{str(e['gated_sha'])[:12]}, the commit its test and "
                                                          "review passed on: pushed to after its gates; they run "
                                                          "again on it"})


def _push_refused(output: str, only: list[str]) -> Outcome:
    """Classify a refused push: the target moved (retry) or a hook/protection declined it (policy)."""
    text = " ".join(output.split())[:1000]
    if "[remote rejected]" in output or "declined" in output or "protected" in output:
        return Outcome("policy", {"reason": f"push refused by the remote: {text}", "only": only})
    return Outcome("retry", {"reason": f"the target moved or the push failed: {text}", "only": only})


def _gh_refused(exc: GitHubError, entry: str, info: dict[str, Any]) -> Outcome:
    """Classify a refused ``gh pr merge`` (GitHub's own messages, research orchestrator.md §6)."""
    msg = exc.message
    if "cannot be cleanly created" in msg or "CONFLICTING" in msg:
        return Outcome("conflict", {"culprit": entry, "reason": f"GitHub: {msg}"[:1000], **info})
    # before the policy test: GitHub's "… was modified. Review and try the merge again." says "review" too
    if "Head branch was modified" in msg:  # --match-head-commit: pushed to after the host's check
        return Outcome("moved", {"reason": f"GitHub: {msg} (pushed to after its gates; they run again)"[:1000],
                                 **info})
    if "was modified" in msg:
        return Outcome("retry", {"reason": f"GitHub: {msg}"[:1000], **info})
    if "policy prohibits" in msg or "review" in msg.lower() or "protected" in msg:
        return Outcome("policy", {"reason": f"GitHub: {' '.join(msg.split())}"[:1000], **info})
    return Outcome("error", {"reason": f"gh pr merge: {msg}"[:1000], **info})
