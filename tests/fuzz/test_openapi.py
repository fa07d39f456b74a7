"""Schemathesis over the whole OpenAPI document (contract §2.10).

Every generated request, valid or not, must get a response that is not a 5xx,
whose status the document declares for that operation, whose content type is
the declared one, and whose body conforms to the declared schema. The app runs
in-process over a hub on a manual clock, on SQLite and on PostgreSQL; every
call carries a bearer token (an admin token for the admin-only operations, a
session token for the rest), so the generated data reaches the handlers
instead of stopping at 401. Besides schemathesis' own data, a share of the
generated queries and bodies carry hostile values of issue 8 (NUL, lone
surrogates, deep nesting, numbers of thousands of digits) in one of their
fields.

Two runs: one hypothesis test per operation (positive and negative data), and
a stateful run that follows the links schemathesis infers from the response
schemas (claim → renew/release, send → read/ack, workflow → work item …), so
operations on an id also see ids that exist.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from coordhub.api.app import create_app
from coordhub.clock import ManualClock
from coordhub.core import halt, scope, tokens
from coordhub.core.hub import Hub
from coordhub.server import SYSTEM
from coordhub.store import Store, open_store
from coordhub.store.sqlite import SQLiteStore
from tests.conftest import Api, _empty_pg

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SESSION = "FUZZ/claude-main"
ADMIN_ONLY = ("/api/coord/tokens", "/api/coord/tokens/{name}", "/api/coord/halt", "/api/coord/resume")
WAIT = "/api/coord/messages/wait"
IDENTITY_FIELDS = ("session_id", "from_session", "created_by", "updated_by", "completed_by", "to_session")
FAST = settings(deadline=None, suppress_health_check=list(HealthCheck))


def _document() -> dict[str, Any]:
    """The app's OpenAPI document; building it needs no open store."""
    with tempfile.TemporaryDirectory() as tmp:
        return create_app(Hub(SQLiteStore(Path(tmp) / "unused.db")), sweep_seconds=0).openapi()


# GET /api/coord/events is an endless SSE stream; its bad input is covered by tests/api/test_errors.py.
schema = schemathesis.openapi.from_dict(_document()).exclude(method="GET", path="/api/coord/events")


def _as_self(value: Any) -> st.SearchStrategy[Any]:
    """``value``, or (when it names sessions) the same with each identity field naming the caller.

    Random session names are refused with 403 before any handler logic runs;
    naming the caller lets half of the generated writes through to the core.
    """
    named = [k for k in IDENTITY_FIELDS if isinstance(value, dict) and isinstance(value.get(k), str)]
    if not named:
        return st.just(value)
    return st.sampled_from([value, {**value, **dict.fromkeys(named, SESSION)}])


# Issue 8's hostile classes, as generated values: each must get a declared 4xx, never a 500. (A lone
# surrogate cannot be UTF-8 encoded into a query string by the client, and the client will not send
# NaN or Infinity at all: tests/fuzz/test_hostile_inputs.py sends those raw.)
HOSTILE_STRINGS = ("a\x00b", "9" * 4400)
DEEP: list[Any] = [1]
for _ in range(40):
    DEEP = [DEEP]
HOSTILE_VALUES = (*HOSTILE_STRINGS, "\ud800", DEEP)


def _hostile(value: Any, choices: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """``value``, or (for a dict) the same with one of its values replaced by a hostile one."""
    if not isinstance(value, dict) or not value:
        return st.just(value)
    return st.one_of(st.just(value), st.tuples(st.sampled_from(sorted(value)), st.sampled_from(choices)).map(
        lambda kv: {**value, kv[0]: kv[1]}))


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    return _as_self(body).flatmap(lambda b: _hostile(b, HOSTILE_VALUES))


@schema.hook
def flatmap_query(context: schemathesis.HookContext, query: Any) -> st.SearchStrategy[Any]:
    return _as_self(query).flatmap(lambda q: _hostile(q, HOSTILE_STRINGS))


@dataclass
class Target:
    """The app under test, its hub, and the headers of its two callers."""

    app: FastAPI
    hub: Hub
    admin: dict[str, str]
    session: dict[str, str]

    def call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
        """How to send ``case``: in-process, with the token its operation needs."""
        return {"app": self.app, "headers": self.admin if case.path in ADMIN_ONLY else self.session}

    def before_call(self, case: schemathesis.Case[Any]) -> None:
        """Clamp a valid long-poll ``timeout`` to 0 so a quiet inbox answers at once (invalid ones stay).

        Judged on the query string the transport will send: a value it encodes as empty (``""``, a dict, a
        list of them) is no value at all (``coordhub.api.query``), so the hub waits its default 30 s: clamped too.
        """
        if case.path != WAIT or case.method != "GET":
            return
        query = case.query if isinstance(case.query, dict) else {}
        sent = urlsplit(requests.Request("GET", "http://hub/", params=query).prepare().url or "").query
        given = [v for k, v in parse_qsl(sent, keep_blank_values=True) if k == "timeout" and v != ""]
        try:
            valid = not given or 0 < float(given[-1]) <= 60
        except ValueError:
            valid = False
        if valid:
            case.query = {**query, "timeout": 0}

    def after_call(self) -> None:
        """Lift every halt a fuzzed ``POST /halt`` set and the pauses a fuzzed resume left, so later writes reach
        the core instead of a 423."""
        def stops(tx: Any, now: float) -> list[str]:
            keys = [str(r["scope"]) for r in tx.halts.all()]
            return keys or ([scope.FLEET_KEY] if tx.sessions.paused() else [])

        for key in self.hub.query_sync(stops):
            self.hub.mutate_sync(SYSTEM, lambda tx, now, k=key: halt.resume(tx, SYSTEM, now, scope.from_key(k),
                                                                             engage_all=True),
                                 during_halt=halt.Exempt.RESUME)


def open_target(directory: Path, pg_url: str | None = None) -> Target:
    """A fresh hub (in ``directory``, or on the emptied database ``pg_url``) with an admin and a session token."""
    if pg_url is None:
        store: Store = SQLiteStore(directory / "coord.db", synchronous="NORMAL")  # durability is not under test
    else:
        _empty_pg(pg_url)
        store = open_store(pg_url)
    store.open()
    hub = Hub(store, ManualClock())
    admin = hub.mutate_sync(SYSTEM, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
    session = hub.mutate_sync(SYSTEM, lambda tx, now: tokens.create(tx, SYSTEM, SESSION, False, now)).body["token"]
    return Target(create_app(hub, sweep_seconds=0), hub, {"Authorization": f"Bearer {admin}"},
                  {"Authorization": f"Bearer {session}"})


def close_target(target: Target) -> None:
    """Stop the app's lifespan (schemathesis keeps it running until told) and close the store."""
    shutdown_lifespans()
    target.hub.store.close()


def _at_least(value: Any, bound: int) -> bool:
    """Whether a generated value (an int, a numeric string, or a list of them) reaches ``bound``."""
    if isinstance(value, list):
        return any(_at_least(v, bound) for v in value)
    try:
        return not isinstance(value, bool) and int(value) >= bound
    except (TypeError, ValueError):
        return False


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    pg = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    t = open_target(tmp_path_factory.mktemp("fuzz"), pg)
    try:
        yield t
    finally:
        close_target(t)


def call_and_validate(case: schemathesis.Case[Any], target: Target) -> None:
    target.before_call(case)
    case.call_and_validate(**target.call_kwargs(case), checks=CHECKS)
    target.after_call()


@schema.parametrize()
@settings(FAST, max_examples=15)
def test_every_response_is_declared_and_conforms(case: schemathesis.Case[Any], target: Target) -> None:
    """15 examples per operation and backend in the default run (25 took 270 s of the suite's 4,500 on 2 cores,
    2026-12-06); the run at length below, under ``-m slow``, tries 400."""
    call_and_validate(case, target)


@pytest.mark.slow
@schema.parametrize()
@settings(FAST, max_examples=400)
def test_every_response_is_declared_and_conforms_at_length(case: schemathesis.Case[Any], target: Target) -> None:
    call_and_validate(case, target)


def test_stateful_sequences_along_inferred_links(tmp_path: Path) -> None:
    found: list[BaseException] = []  # every failure seen, whatever hypothesis makes of it on replay

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        """Each scenario starts on an empty hub, so a replayed scenario sees what the first run saw."""

        def setup(self) -> None:
            self.target = open_target(Path(tempfile.mkdtemp(dir=tmp_path)))

        def teardown(self) -> None:
            close_target(self.target)

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return self.target.call_kwargs(case)

        def before_call(self, case: schemathesis.Case[Any]) -> None:
            self.target.before_call(case)

        def call(self, case: schemathesis.Case[Any], **kwargs: Any) -> schemathesis.Response:
            try:
                response: schemathesis.Response = super().call(case, **kwargs)
                return response
            except Exception as exc:  # an unhandled error in the app propagates through the ASGI transport
                found.append(exc)
                raise

        def after_call(self, response: schemathesis.Response, case: schemathesis.Case[Any]) -> None:
            super().after_call(response, case)
            self.target.after_call()

        def validate_response(self, response: schemathesis.Response, case: schemathesis.Case[Any],
                              additional_checks: Any = None, **kwargs: Any) -> None:
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)
            except Exception as exc:
                found.append(exc)
                raise

    try:
        Machine.run(settings=settings(FAST, phases=[Phase.generate], database=None, max_examples=30,
                                     stateful_step_count=10))
    except FlakyStrategyDefinition:
        # schemathesis picks links from live responses, so a replayed scenario can draw differently; its own
        # runner counts that as no failure (schemathesis/engine/run/stateful/_executor.py). A failure found
        # on the way is kept in ``found`` and fails the test below.
        pass
    assert not found, found[0]


# ---- what the fuzzer found ---------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "kw"), [
    ("GET", "/api/coord/messages/wait", {"params": {"after_seq": 2**63, "timeout": 0}}),
    ("GET", "/api/coord/messages", {"params": {"before_seq": 2**63}}),
    ("GET", "/api/coord/audit", {"params": {"after": 2**63}}),
    ("POST", "/api/coord/messages", {"json": {"subject": "s", "to_session": "B/x", "to_incarnation": 2**63}}),
    ("POST", "/api/coord/messages", {"json": {"subject": "s", "to_session": "B/x", "to_incarnation": 2**31}}),
], ids=["wait-after_seq", "inbox-before_seq", "audit-after", "send-to_incarnation-2^63",
        "send-to_incarnation-2^31"])
def test_out_of_range_integers_are_refused_not_500(api: Api, method: str, path: str, kw: dict[str, Any]) -> None:
    declared = api.get("/openapi.json").json()["paths"][path][method.lower()]["responses"]
    r = api.request(method, path, headers=api.token("A/x"), **kw)
    assert r.status_code < 500 and str(r.status_code) in declared, (r.status_code, r.text)
