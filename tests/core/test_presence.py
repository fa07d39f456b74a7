"""Presence with incarnations (issue hub-agents §2) on both backends, on the hub's clock."""

from __future__ import annotations

from typing import Any

import pytest

from coordhub.clock import ManualClock
from coordhub.core import leasequeries, leases, messages, notifications, presence
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.core.presence import StaleIncarnation

A, B = Actor("A/claude-main"), Actor("B/claude-main")


def do(hub: Hub, actor: Actor, fn: Any) -> Any:
    return hub.mutate_sync(actor, fn).body


def state(hub: Hub, who: Actor) -> str:
    return str(hub.query_sync(lambda tx, now: presence.of(tx, who.session_id, now))["state"])


def test_states_follow_heartbeat_age(hub: Hub, clock: ManualClock) -> None:
    assert state(hub, A) == "offline"  # never registered
    first = do(hub, A, lambda tx, now: presence.register(tx, A, client="claude-code", client_session="abc",
                                                         cwd="/repo", now=now))
    assert first["incarnation"] == 1 and first["state"] == "active" and first["client_session"] == "abc"
    for advance, expected in ((120, "active"), (1, "idle"), (179, "idle"), (1, "stale"), (599, "stale"),
                              (1, "offline")):
        clock.advance(advance)
        assert state(hub, A) == expected, (advance, expected)
    do(hub, A, lambda tx, now: presence.heartbeat(tx, A, 1, now))
    assert state(hub, A) == "active"


def test_each_registration_is_a_new_incarnation_and_old_ones_are_refused(hub: Hub) -> None:
    assert do(hub, A, lambda tx, now: presence.register(tx, A, now=now))["incarnation"] == 1
    assert do(hub, A, lambda tx, now: presence.register(tx, A, now=now))["incarnation"] == 2
    with pytest.raises(StaleIncarnation) as err:
        do(hub, A, lambda tx, now: presence.heartbeat(tx, A, 1, now))
    assert err.value.status == 409 and err.value.details["current"] == 2
    assert do(hub, A, lambda tx, now: presence.heartbeat(tx, A, 2, now))["incarnation"] == 2


def test_deregister_goes_offline_and_can_release_leases(hub: Hub) -> None:
    do(hub, A, lambda tx, now: presence.register(tx, A, now=now))
    do(hub, A, lambda tx, now: leases.claim(tx, A, project_key="p", resource="src/", description=None,
                                            ttl_hours=2, now=now))
    out = do(hub, A, lambda tx, now: presence.deregister(tx, A, None, True, now))
    assert out["state"] == "offline" and out["released_leases"] == 1
    assert hub.query_sync(lambda tx, now: leasequeries.live(tx, now)) == []
    with pytest.raises(StaleIncarnation):  # the ended incarnation cannot heartbeat on
        do(hub, A, lambda tx, now: presence.heartbeat(tx, A, 1, now))
    again = do(hub, A, lambda tx, now: presence.heartbeat(tx, A, None, now))  # a new process: registers anew
    assert again["incarnation"] == 2 and again["state"] == "active"


def test_message_for_a_dead_incarnation_stays_unread_and_is_flagged_to_its_successor(hub: Hub) -> None:
    """Review: a direct message sent to a live incarnation vanished from its successor's inbox, unread count and
    hooks (and from `coord msg inbox` run in a shell, which registers one), though nobody had been shown it. Unread
    is unread (seed 000); what the hooks show a successor is flagged as its predecessor's (Gas Town #909)."""
    do(hub, B, lambda tx, now: presence.register(tx, B, now=now))
    sent = do(hub, A, lambda tx, now: messages.send(tx, A, to_session=B.session_id, subject="done with your request",
                                                    body="", requires_ack=True, now=now))
    assert sent["to_incarnation"] == 1
    do(hub, B, lambda tx, now: presence.deregister(tx, B, None, False, now))
    queued = do(hub, A, lambda tx, now: messages.send(tx, A, to_session=B.session_id, subject="while you were away",
                                                      body="", now=now))
    assert queued["to_incarnation"] is None  # nobody live: meant for whoever comes next
    do(hub, B, lambda tx, now: presence.register(tx, B, now=now))
    unread = hub.query_sync(lambda tx, now: messages.inbox(tx, B.session_id, unread_only=True))
    assert [m["subject"] for m in unread] == ["done with your request", "while you were away"]
    assert hub.query_sync(lambda tx, now: messages.unread_count(tx, B.session_id)) == 2
    shown = do(hub, B, lambda tx, now: messages.unshown(tx, B, 10, now))["messages"]
    assert [(m["subject"], m["earlier_incarnation"]) for m in shown] == [("done with your request", True),
                                                                        ("while you were away", False)]
    assert do(hub, B, lambda tx, now: messages.unshown(tx, B, 10, now))["messages"] == []  # shown once


def test_notifications_are_a_cursor_reading_never_destroys(hub: Hub) -> None:
    do(hub, A, lambda tx, now: messages.send(tx, A, to_session=B.session_id, subject="one", body="", now=now))
    do(hub, A, lambda tx, now: messages.send(tx, A, to_session=None, subject="all", body="", now=now))
    first = hub.query_sync(lambda tx, now: notifications.pending(tx, B.session_id))
    again = hub.query_sync(lambda tx, now: notifications.pending(tx, B.session_id))
    assert first == again and [e["kind"] for e in first["events"]] == ["message.sent", "message.sent"]
    assert hub.query_sync(lambda tx, now: notifications.pending(tx, A.session_id))["events"] == []  # own events
    do(hub, B, lambda tx, now: notifications.ack(tx, B, first["events"][0]["id"], now))
    rest = hub.query_sync(lambda tx, now: notifications.pending(tx, B.session_id))
    assert [e["payload"]["subject"] for e in rest["events"]] == ["all"]
    do(hub, B, lambda tx, now: notifications.ack(tx, B, 0, now))  # never backwards
    assert hub.query_sync(lambda tx, now: notifications.pending(tx, B.session_id)) == rest
