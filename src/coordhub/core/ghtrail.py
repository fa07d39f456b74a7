"""The GitHub audit trail: comments on the issue for what happened to its assignment, each exactly once, PRs on
request, merged issues closed (issue 12 point 5).

Seed 003 posted briefing, completion, failure and stuck comments with a
``<!-- coord:event=… -->`` marker and kept a JSON ledger that lost writes;
its stuck comments never fired. Here:

* The trail is made from the hub's event log (:func:`collect`, in every
  reconciler pass and on ``coord notify``): each attempt's dispatch
  (``briefing``: where, which model — the briefing text itself stays on the
  hub), its end (``completion``, ``failure``, ``stuck`` for stuck or needs
  input), each review verdict (``review``), the merge (``merged``) and, with
  ``merge.close_issues``, closing the issue (``closed``). ``coord pr`` adds a
  ``pr`` post (open the pull request).
* Each post is a row keyed ``<assignment>:<attempt>:<event>``: made once,
  whatever replays or retries happen (a primary key, inserted only if absent).
* A host with capability ``github`` (``gh`` logged in; workers never get
  GitHub credentials) takes pending posts (:func:`claim`) and, before
  posting, looks for the key's marker among the issue's comments: a post
  whose host died after posting is found and recorded, never posted twice.
* Repos without ``github:`` get no posts: the trail stays in the hub's events.
"""

from __future__ import annotations

import json
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import assignments, coordinator, hosts
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.core.orchestrator_config import Config
from coordhub.core.redaction import redact
from coordhub.errors import Conflict, Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx

EVENTS = {"assignment.dispatched": "briefing", "assignment.done": "completion", "assignment.failed": "failure",
          "assignment.stuck": "stuck", "assignment.needs_input": "stuck", "merge.merged": "merged"}
SCAN = 2000  # events one pass reads
CLAIM_AGAIN_SECONDS = 120.0  # a post claimed this long ago by a host that never reported is offered again
MAX_TRIES = 5
MARKER = "<!-- coord:post key={key} -->"


class NotOnGitHub(Conflict):
    """The assignment's repo has no ``github:`` (409): its trail stays on the hub."""

    code = "not_on_github"


def marker(key: str) -> str:
    """The machine-readable marker an audit-trail post carries, and is found by (``<assignment>:<attempt>:<event>``).

    The hub writes it at the post's end (:func:`add`); the host's poster finds a post it made before by it."""
    return MARKER.format(key=key)


def render(row: Row) -> dict[str, Any]:
    """The JSON form of a post."""
    return {"key": row["key"], "assignment_id": row["assignment_id"], "attempt": row["attempt"],
            "event": row["event"], "repo": row["repo"], "github": row["github"], "issue": row["issue"],
            "kind": row["kind"], "body": row["body"], "state": row["state"], "machine": row["machine"],
            "url": row["url"], "tries": row["tries"], "last_error": row["last_error"],
            "created_at": isoformat(row["created_at"]), "posted_at": isoformat(row["posted_at"])}


def add(tx: Tx, config: Config, a: Row, attempt: int, event: str, kind: str, text: str, now: float) -> Row | None:
    """Make the post ``<assignment>:<attempt>:<event>`` unless it exists; None for a repo without ``github:``.

    ``text`` (a host's reason, a reviewer's findings) is posted with its tokens masked
    (:func:`~coordhub.core.redaction.redact`): issues may be public; and with its HTML comments made inert
    (:func:`inert`).
    """
    repo = config.repo(a["repo"])
    if repo is None or not repo.github:
        return None
    key = f"{a['id']}:{attempt}:{event}"
    found = tx.github_posts.get(key)
    if found is not None:
        return found
    row: Row = {"key": key, "assignment_id": a["id"], "attempt": attempt, "event": event, "repo": a["repo"],
                "github": repo.github, "issue": a["issue"], "kind": kind,
                "body": f"{inert(redact(text))}\n\n{marker(key)}", "state": "pending", "machine": None, "url": None,
                "tries": 0, "last_error": None, "created_at": now, "posted_at": None, "updated_at": now}
    tx.github_posts.add(row)
    emit(tx, "github.post_queued", now, session_id=None, project_key=a["repo"], subject_id=a["id"], key=key,
         event=event, post_kind=kind)
    return row


def inert(text: str) -> str:
    """``text`` with every HTML comment opener and closer escaped (``<!--`` → ``&lt;!--``, ``-->`` → ``--&gt;``;
    GitHub shows them as typed). A worker's STUCK line or a reviewer's findings reach a post verbatim, and a
    marker planted there (``<!-- coord:post key=… -->`` of a later post) made the poster take that later post
    as made and never make it (review)."""
    return text.replace("<!--", "&lt;!--").replace("-->", "--&gt;")


def _text(event: str, a: Row, p: dict[str, Any]) -> str:
    who = f"assignment `{a['id']}` attempt {p.get('attempt') or a['attempt']}"
    where = p.get("machine") or a["ran_on"] or "a machine"
    reason = p.get("reason") or a["reason"] or ""
    if event == "briefing":
        return f"**coordhub**: {who} started on `{where}` with model `{p.get('model') or a['model']}`, branch " \
               f"`{a['branch']}`."
    if event == "completion":
        return f"**coordhub**: {who} finished on `{where}`: {reason or 'done'}. Branch `{a['branch']}` pushed."
    if event == "failure":
        return f"**coordhub**: {who} failed on `{where}`: {reason or 'no reason given'}."
    if event == "stuck":
        return f"**coordhub**: {who} is waiting for a human ({p.get('state')}): {reason or 'no reason given'}."
    if event == "merged":
        return f"**coordhub**: branch `{a['branch']}` merged into `{p.get('target')}` as {p.get('merged_sha')}."
    return f"**coordhub**: {event} for {who}."


def collect(tx: Tx, now: float) -> int:
    """Read the event log from the trail's cursor and make the posts it calls for; return how many were made."""
    config = coordinator.active(tx)
    row = tx.github_posts.cursor()
    events = tx.events.after(row, SCAN)
    made = 0
    for ev in events:
        kind = ev["kind"]
        event = EVENTS.get(kind) or ("review" if kind in ("stage_run.passed", "stage_run.failed") else None)
        if event is None or config is None:
            continue
        p = json.loads(ev["payload"])
        a = tx.assignments.get(p.get("assignment_id") or ev["subject_id"] or "")
        if a is None:
            continue
        if event == "review":
            if p.get("stage") != "review":
                continue
            run = tx.stage_runs.get(p.get("run_id") or "")
            findings = json.loads(run["findings"]) if run and run["findings"] else []
            lines = "".join(f"\n- `{f.get('file')}:{f.get('line')}` ({f.get('severity')}): {f.get('message')}"
                            for f in findings[:20] if isinstance(f, dict))
            text = f"**coordhub** review of branch `{a['branch']}`: **{p.get('verdict')}**" + \
                   (f" — {run['summary']}" if run and run["summary"] else "") + lines
            made += add(tx, config, a, int(p.get("attempt") or 0), f"review-{p.get('run_id')}", "comment", text,
                        now) is not None
            continue
        attempt = int(p.get("attempt") or a["attempt"])
        made += add(tx, config, a, attempt, event, "comment", _text(event, a, p), now) is not None
        if event == "merged" and config.merge.close_issues:
            made += add(tx, config, a, attempt, "closed", "close", f"Closed by coordhub: merged as "
                        f"{p.get('merged_sha')}.", now) is not None
    if events:
        tx.github_posts.set_cursor(int(events[-1]["id"]))
    return made


def request_pr(tx: Tx, actor: Actor, assignment_id: str, now: float, review: bool = True) -> dict[str, Any]:
    """``coord pr``: queue opening the pull request of a done assignment's pushed branch (a ``pr`` post).

    ``review`` false asks for no review run (``--no-review``); with the
    pipeline's review gate it runs anyway. ``NotOnGitHub`` (409) for a repo
    without ``github:``; ``assignments.InvalidTransition`` (409) unless done
    and pushed; ``Forbidden`` (403) for an orchestrator worker or host.
    """
    assignments.may_direct(actor)  # a person's verb: a worker's token opens no pull requests
    config = coordinator.require(tx)
    a = assignments.get_row(tx, assignment_id)
    if a["state"] != "done" or not a["pushed"]:
        raise assignments.InvalidTransition(f"assignment {a['id']} is {a['state']}; a PR is opened for a done "
                                            "assignment with a pushed branch", state=a["state"])
    repo = config.repo(a["repo"])
    text = f"{a['title'] or a['branch']}\n\nCloses #{a['issue']}\n\nBranch `{a['branch']}` of assignment `{a['id']}`."
    row = add(tx, config, a, int(a["attempt"]), "pr", "pr", text, now)
    if row is None:
        raise NotOnGitHub(f"repo {a['repo']} has no github: in coordinator.yml; its branches merge through the "
                          "local origin (`coord merge`)")
    out = render(row)
    out["base"] = repo.default_branch if repo else "main"
    out["review"] = review
    return out


def notify(tx: Tx, now: float) -> dict[str, Any]:
    """``coord notify``: collect now; answer ``{made, pending}`` (the posts waiting for a host)."""
    made = collect(tx, now)
    return {"made": made, "pending": [render(r) for r in tx.github_posts.pending(100)]}


def claim(tx: Tx, actor: Actor, now: float, *, machine: str, incarnation: int, limit: int = 10) -> list[dict[str, Any]]:
    """Posts for ``machine``'s host to make now (it must have capability ``github``); marked running there."""
    config = coordinator.require(tx)
    host = hosts.current(tx, actor, config, machine, incarnation)
    if "github" not in json.loads(host["capabilities"]):
        return []
    collect(tx, now)
    out = []
    for row in tx.github_posts.pending(limit * 3):
        if row["state"] == "running" and now - row["updated_at"] < CLAIM_AGAIN_SECONDS:
            continue
        changes = {"state": "running", "machine": host["machine"], "tries": row["tries"] + 1, "updated_at": now}
        tx.github_posts.set(row["key"], changes)
        repo = config.repo(row["repo"])
        out.append({**render({**row, **changes}), "branch": (tx.assignments.get(row["assignment_id"]) or {}).get(
            "branch"), "base": repo.default_branch if repo else "main"})
        if len(out) >= limit:
            break
    return out


def report(tx: Tx, actor: Actor, now: float, *, machine: str, incarnation: int, key: str, ok: bool,
           url: str | None = None, error: str | None = None) -> dict[str, Any]:
    """A host made a post (``ok``, its ``url``) or failed (``error``: pending again, failed after
    :data:`MAX_TRIES`). ``Invalid`` for an unknown key; a post already made stays made; ``Conflict`` (409)
    unless the reporting machine claimed the post (``github/next``) and it is still running."""
    config = coordinator.require(tx)
    host = hosts.current(tx, actor, config, machine, incarnation)
    row = tx.github_posts.get(key[:200])
    if row is None:
        raise Invalid(f"no audit-trail post {key[:80]!r}", field="key")
    if row["state"] == "posted":
        return render(row)
    if row["state"] != "running" or row["machine"] != host["machine"]:
        # only the machine that claimed it may say how it went: another host could hide a PR or plant a link
        raise Conflict(f"audit-trail post {key[:80]!r} is {row['state']}"
                       + (f", claimed by machine {row['machine']!r}" if row["machine"] else "")
                       + f", not {host['machine']!r}'s to report", field="key")
    if ok:
        changes: Row = {"state": "posted", "url": url, "posted_at": now, "updated_at": now, "last_error": None,
                        "machine": host["machine"]}
        emit(tx, "github.posted", now, session_id=actor.session_id, project_key=row["repo"],
             subject_id=row["assignment_id"], key=key, url=url, post_kind=row["kind"])
    else:
        failed = row["tries"] >= MAX_TRIES
        changes = {"state": "failed" if failed else "pending", "last_error": (error or "")[:1000], "updated_at": now}
    tx.github_posts.set(row["key"], changes)
    return render({**row, **changes})


def of_assignment(tx: Tx, assignment_id: str) -> list[dict[str, Any]]:
    """The trail of one assignment, oldest first."""
    return [render(r) for r in tx.github_posts.of_assignment(assignments.check_id(assignment_id))]
