"""Project keys compare case-insensitively (coordhub.core.projects), on both backends.

The field defect: a lease claimed under ``GuruRMM`` (a repository's directory
name, as the edit hook and the git guard derive the key) was invisible to a
claim or a conflict check under ``gururmm`` (seed 001's slug), and messages,
todos, workflows, components and events split the same way.
"""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordhub.core import components, events, fences, leasequeries, leases, messages, projects, todos, workflows
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.errors import LeaseConflict

A = Actor("A/claude-main")
B = Actor("B/claude-main")
B_ID = B.session_id


def op(hub: Hub, actor: Actor, fn: Any) -> Any:
    return hub.mutate_sync(actor, fn).body


def test_fold_lowers_ascii_letters_only() -> None:
    assert projects.fold("GuruRMM") == "gururmm"
    assert projects.fold("Dataforth-DOS_2.x") == "dataforth-dos_2.x"  # free-form: only case changes
    assert projects.fold("ÉTÉ") == "ÉtÉ"  # as both stores' SQL folds (migration 0028)
    assert projects.fold(projects.fold("GuruRMM")) == "gururmm"
    assert projects.fold(None) is None


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(["A", "Z", "a", "z", "0", "-", ".", "_", " ", "\x7f", "É", "é", "İ", "ß",
                                         "K", "Σ", "ǅ", "文"]), max_size=20))
def test_fold_is_the_ascii_table_on_any_text(key: str) -> None:
    """Whichever way a key is folded (an ASCII key by ``str.lower``, any other by the table), the result is the
    table's: ASCII letters lowered, every other character kept (the Kelvin sign, dotted capital I, ß, Σ, ǅ)."""
    assert projects.fold(key) == key.translate(str.maketrans(string.ascii_uppercase, string.ascii_lowercase))


def test_a_lease_under_one_spelling_holds_under_every_other(hub: Hub) -> None:
    held = op(hub, A, lambda tx, now: leases.claim(tx, A, project_key="GuruRMM", resource="server/src/",
                                                   description="A works", ttl_hours=2, now=now))
    assert held["project_key"] == "gururmm"
    with pytest.raises(LeaseConflict):
        op(hub, B, lambda tx, now: leases.claim(tx, B, project_key="gururmm", resource="server/src/api.rs",
                                                description=None, ttl_hours=2, now=now))
    # what the edit hook asks (GET /locks/conflicts) and the git guard (POST /locks/conflicts, GET /locks)
    (others, _), _ = hub.query_sync(lambda tx, now: leasequeries.conflicts(tx, now, "GURURMM", "server/src/a.rs", B_ID))
    assert [lease["id"] for lease in others] == [held["id"]]
    (others, _), _, hits = hub.query_sync(lambda tx, now: leasequeries.conflicts_of(
        tx, now, "gururmm", ["server/src/a"], B_ID))
    assert hits == [[held["id"]]]
    listed, _ = hub.query_sync(lambda tx, now: leasequeries.page(tx, now, "gUrUrMm"))
    assert [lease["id"] for lease in listed] == [held["id"]]
    check = hub.query_sync(lambda tx, now: fences.check_fence(tx, held["fence"], now, "server/src/x", "gururmm"))
    assert check["current"], check["reason"]
    assert leases.claim_scan("GuruRMM", "server/src/") == leases.claim_scan("gururmm", "server/src/")


def test_every_record_keeps_the_folded_key_and_filters_by_any_spelling(hub: Hub) -> None:
    sent = op(hub, A, lambda tx, now: messages.send(tx, A, to_session=B.session_id, subject="s", body="b",
                                                    project_key="GuruRMM", now=now))
    assert sent["project_key"] == "gururmm"
    todo = op(hub, A, lambda tx, now: todos.add(tx, A, text="t", project_key="GuruRMM", now=now))
    assert hub.query_sync(lambda tx, now: todos.page(tx, project_key="GURURMM"))[0] == [todo]
    flow = op(hub, A, lambda tx, now: workflows.create(tx, A, project_key="GuruRMM", name="n", now=now))
    assert hub.query_sync(lambda tx, now: workflows.page(tx, project_key="gururmm"))[0] == [flow]
    item = op(hub, A, lambda tx, now: workflows.add_item(tx, A, workflow_id=flow["id"], title="i",
                                                         project_key="GuruRMM", now=now))
    assert item["project_key"] == "gururmm"
    op(hub, A, lambda tx, now: components.set_state(tx, A, project_key="GuruRMM", component="server",
                                                    state="built", now=now))
    op(hub, A, lambda tx, now: components.set_state(tx, A, project_key="gururmm", component="server",
                                                    state="deployed", now=now))
    found = hub.query_sync(lambda tx, now: components.find(tx, "GURURMM"))
    assert [(c["project_key"], c["state"]) for c in found] == [("gururmm", "deployed")]
    # an orchestrator event names its repository as the project
    op(hub, A, lambda tx, now: events.emit(tx, "assignment.queued", now, session_id=None, project_key="GuruRMM"))
    keep = events.Filter(A.session_id, True, project_key="GuruRMM")
    rows = hub.query_sync(lambda tx, now: tx.events.page(0, 100, 1 << 20, project_key=keep.asked[1]))
    assert {r["kind"] for r in rows if keep(r)} >= {"message.sent", "todo.added", "workflow.created",
                                                    "component.set", "assignment.queued"}
