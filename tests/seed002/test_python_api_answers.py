"""Seed 002's Python API against a hub that answers shapes no hub gives: the call's own error, never a traceback.

The hub is :class:`tests.fakes.scripted_hub.ScriptedHub` on loopback (real
HTTP), answering what a hub answers except for the one request a test
scripts: an object where a list belongs and the reverse, ``null``, a body
that is not JSON, a record without its fields, a field of another JSON type
(a time that is no time, a number in quotes, ``true`` for a number). Before
the answers were checked each was a ``KeyError``, ``TypeError``,
``AttributeError`` or ``ValueError`` out of the call, or, for a field of the
wrong type, a value of that type passed on in a ``CoordinationMessage``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from coordhub.client import seed002 as api
from coordhub.client.seed002 import (
    AcknowledgeError,
    CoordinationClient,
    CoordinationError,
    MessageType,
    PresenceError,
    PublishError,
)
from tests.fakes.scripted_hub import API, ME, MESSAGE_ID, PEER, ScriptedHub, hub_answers

MESSAGES = f"{API}/messages"
Call = Callable[[CoordinationClient], Awaitable[Any]]


pytestmark = pytest.mark.usefixtures("api_isolation")


@pytest.fixture
def hub() -> Iterator[ScriptedHub]:
    server = ScriptedHub()
    yield server
    server.close()


def run(hub: ScriptedHub, call: Call, instance_id: str | None = None) -> Any:
    """``call`` on a fresh client of ``hub`` (token ``coord_test``), the clients closed afterwards."""
    async def main() -> Any:
        try:
            client = await api.get_coordination_client(instance_id, url=hub.url, token="coord_test")
            return await call(client)
        finally:
            await api.reset_coordination_client()

    return asyncio.run(main())


# Each public call, the request whose answer a test replaces, and the error type the call raises for it.
CALLS: dict[str, tuple[Call, tuple[str, str], type[CoordinationError]]] = {
    "publish_message": (lambda c: c.publish_message(MessageType.GENERAL, "s", "d", PEER),
                        ("POST", MESSAGES), PublishError),
    "check_messages": (lambda c: c.check_messages(from_instance=PEER), ("GET", MESSAGES), CoordinationError),
    "get_messages": (lambda c: c.get_messages(msg_type="READY_FOR_REVIEW"), ("GET", MESSAGES), CoordinationError),
    "get_message": (lambda c: c.get_message(MESSAGE_ID), ("GET", f"{MESSAGES}/{MESSAGE_ID}"), CoordinationError),
    "ack_message": (lambda c: c.ack_message(MESSAGE_ID), ("POST", f"{MESSAGES}/{MESSAGE_ID}/ack"),
                    AcknowledgeError),
    "ack_message(comment=…)'s reply": (lambda c: c.ack_message(MESSAGE_ID, comment="merged"), ("POST", MESSAGES),
                                      AcknowledgeError),
    "acknowledge_message": (lambda c: c.acknowledge_message(MESSAGE_ID),
                            ("POST", f"{MESSAGES}/{MESSAGE_ID}/ack"), AcknowledgeError),
    "get_presence": (lambda c: c.get_presence(), ("GET", f"{API}/presence"), PresenceError),
    "register_presence": (lambda c: c.register_presence("claude-123"), ("POST", f"{API}/presence/register"),
                          PresenceError),
    "register_instance": (lambda c: c.register_instance(), ("POST", f"{API}/presence/register"), PresenceError),
    "heartbeat": (lambda c: c.heartbeat(), ("POST", f"{API}/presence/heartbeat"), PresenceError),
    "deregister_presence": (lambda c: c.deregister_presence(), ("POST", f"{API}/presence/deregister"),
                            PresenceError),
    "unregister_instance": (lambda c: c.unregister_instance(), ("POST", f"{API}/presence/deregister"),
                            PresenceError),
    "get_notifications": (lambda c: c.get_notifications(ack=True), ("GET", f"{API}/notifications"),
                          CoordinationError),
    "pop_notifications": (lambda c: c.pop_notifications(), ("GET", f"{API}/notifications"), CoordinationError),
    "session_id": (lambda c: c.session_id(), ("GET", f"{API}/whoami"), CoordinationError),
}


def odd_shapes(good: Any) -> list[tuple[str, Any]]:
    """Answers of shapes no hub gives where a hub answers ``good`` (a record, or a list of records)."""
    if isinstance(good, list):
        row = good[0]
        number = "seq" if "seq" in row else "incarnation"
        return [("an object", {}), ("null", None), ("a list of numbers", [1]), ("a row without its fields", [row, {}]),
                ("a row whose id is a list", [row, {**row, next(iter(row)): [1]}]),
                ("a row with a number in quotes", [row, {**row, number: "7"}])]
    shapes = [("a list", []), ("null", None), ("a string", "ok"), ("an object without its fields", {})]
    if "events" in good:
        event = good["events"][0]
        shapes += [("events as an object", {**good, "events": {}}), ("an event id in quotes",
                                                                     {**good, "events": [{**event, "id": "41"}]}),
                   ("an event time that is no time", {**good, "events": [{**event, "created_at": "soon"}]}),
                   ("a sent message's subject as a number",
                    {**good, "events": [{**event, "payload": {**event["payload"], "subject": 7}}]})]
    elif "created_at" in good:
        shapes += [("a time that is no time", {**good, "created_at": "yesterday"}),
                   ("true for a number", {**good, "seq": True}), ("an id that is a number", {**good, "id": 7}),
                   ("a flag as text", {**good, "requires_ack": "yes"})]
    elif "state" in good:
        shapes += [("a state that is a number", {**good, "state": 1}),
                   ("a heartbeat that is no time", {**good, "last_heartbeat": "soon"})]
    else:
        shapes += [("a session that is a list", {**good, "session_id": ["x"]})]
    return shapes


CASES = [pytest.param(name, shape, id=f"{name}: {label}")
         for name, (_, route, _) in CALLS.items() for label, shape in odd_shapes(hub_answers()[route])]


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_an_answer_of_a_shape_no_hub_gives_is_the_calls_error(hub: ScriptedHub, name: str, shape: Any) -> None:
    call, route, kind = CALLS[name]
    hub.answers[route] = shape
    with pytest.raises(kind) as raised:
        run(hub, call)
    err = raised.value
    assert (err.status, err.code) == (0, "bad_response"), err
    assert f"the hub answered {route[0]} {route[1]} with " in err.message and "[bad_response]" in err.message


@pytest.mark.parametrize(("name", "route"), [(name, route) for name, (_, route, _) in CALLS.items()])
def test_a_body_that_is_not_json_is_the_calls_error(hub: ScriptedHub, name: str, route: tuple[str, str]) -> None:
    call, _, kind = CALLS[name]
    hub.raw[route] = b"<html><body>Bad gateway, but answered 200</body></html>"
    with pytest.raises(kind) as raised:
        run(hub, call)
    assert (raised.value.status, raised.value.code) == (0, "bad_response"), raised.value
    # a read (the asyncio client) takes a body that is no JSON as null; a write is sent by CoordClient, which takes
    # it as its error envelope of code bad_response: a record without its fields
    assert ("with null" if route[0] == "GET" else " without ") in raised.value.message


@pytest.mark.parametrize("name", ["publish_message", "ack_message", "heartbeat"])
def test_a_write_answered_so_is_not_queued_for_a_replay(hub: ScriptedHub, name: str) -> None:
    call, route, _ = CALLS[name]
    hub.answers[route] = ["not", "a", "record"]

    async def then_sync(c: CoordinationClient) -> Any:
        with pytest.raises(CoordinationError, match="bad_response"):
            await call(c)
        return await c.sync()

    run(hub, then_sync)
    assert hub.asked.count(route) == 1  # the hub answered: nothing was queued to be sent again


def test_a_whoami_of_another_shape_when_instance_id_is_checked(hub: ScriptedHub) -> None:
    hub.answers[("GET", f"{API}/whoami")] = [ME]
    with pytest.raises(CoordinationError) as raised:
        run(hub, lambda c: c.check_messages(), instance_id=ME)
    assert raised.value.code == "bad_response" and "GET /api/coord/whoami with a list" in raised.value.message


@pytest.mark.parametrize("health", [[], None, "ok", {"status": ["ok"]}])
def test_health_check_of_an_odd_health_answer_says_unhealthy_and_never_raises(hub: ScriptedHub,
                                                                              health: Any) -> None:
    hub.answers[("GET", "/health")] = health
    assert run(hub, lambda c: c.health_check())["connected"] is False


def test_the_hubs_own_answers_pass_the_checks(hub: ScriptedHub) -> None:
    """The scripted hub's defaults are a hub's answers: every call reads them (the checks refuse no real shape)."""
    async def every_call(c: CoordinationClient) -> list[Any]:
        return [await call(c) for call, _, _ in CALLS.values()] + [await c.health_check()]

    results = run(hub, every_call, instance_id=ME)
    published, pending, typed, one, acked, commented = results[:6]
    assert published.from_instance == ME and published.to_instance == PEER and not published.queued
    assert [m.id for m in pending] == [m.id for m in typed] == [MESSAGE_ID] and one.acknowledged
    assert acked.acknowledged_by == ME and commented.comment_message_id is not None
    presence = results[7]
    assert presence[ME].session_id == "claude-123" and presence[ME].active
    (note,) = results[13]
    assert (note.event, note.message_id, note.from_instance, note.subject) == (
        "message_published", MESSAGE_ID, PEER, "review?")
    assert results[15] == ME and results[16]["connected"] is True
