"""The dashboard's sign-in (issue 13): HttpOnly cookie, server-side web session, its secret on every request, CSP."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from coordhub.core import presence, websessions
from tests.conftest import Api

ORIGIN = "http://testserver"
AGENT = "m1/agent"
SIGN_IN = {("get", "/api/coord/web/session"), ("post", "/api/coord/web/session")}  # answer without a token


def sign_in(client: TestClient, token: str) -> dict[str, str]:
    """Sign ``client`` in; return the headers a page sends with a write (Origin and the CSRF token)."""
    r = client.post("/api/coord/web/session", json={"token": token})
    assert r.status_code == 201, r.text
    return {"Origin": ORIGIN, websessions.CSRF_HEADER: r.json()["csrf_token"]}


def bearer_value(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


def test_sign_in_sets_an_httponly_strict_cookie_and_never_echoes_the_token(api: Api) -> None:
    token = bearer_value(api.token(AGENT))
    r = api.post("/api/coord/web/session", json={"token": token})
    assert r.status_code == 201
    assert token not in r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(websessions.COOKIE_NAME + "=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the TLS test
    assert token not in cookie
    body = r.json()
    assert body["session_id"] == AGENT and body["admin"] is False and len(body["csrf_token"]) >= 40
    secret = {websessions.CSRF_HEADER: body["csrf_token"]}
    me = api.get("/api/coord/web/session", headers=secret).json()
    assert me["signed_in"] is True and me["session_id"] == AGENT and "csrf_token" not in me  # given out once
    assert isinstance(me["last_event_id"], int)
    assert api.get("/api/coord/whoami", headers=secret).json()["session_id"] == AGENT  # cookie + secret: reads


def test_the_web_session_tells_the_hubs_own_presence_tiers(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # the Fleet view times its re-reads by these; it kept a copy of them (120/300/900) that a change here missed
    monkeypatch.setattr(presence, "ACTIVE_SECONDS", 7.0)
    monkeypatch.setattr(presence, "IDLE_SECONDS", 8.0)
    monkeypatch.setattr(presence, "STALE_SECONDS", 9.0)
    me = api.get("/api/coord/web/session", headers=sign_in(api.client, bearer_value(api.token(AGENT)))).json()
    assert me["signed_in"] is True and me["presence_seconds"] == {"active": 7.0, "idle": 8.0, "stale": 9.0}


def test_cookie_over_tls_is_secure(api: Api) -> None:
    token = bearer_value(api.token(AGENT))
    r = api.post("https://testserver/api/coord/web/session", json={"token": token})  # scheme https in the scope
    assert r.status_code == 201
    assert "Secure" in r.headers["set-cookie"]


def test_a_bad_token_is_refused_and_counted(api: Api) -> None:
    r = api.post("/api/coord/web/session", json={"token": "coord_not-a-token"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert "set-cookie" not in r.headers
    me = api.get("/api/coord/web/session").json()
    assert (me["signed_in"], me["no_auth"], set(me)) == (False, False, {"signed_in", "no_auth"})


def test_every_write_with_the_cookie_needs_origin_and_csrf(api: Api) -> None:
    writes = sign_in(api.client, bearer_value(api.token(AGENT)))
    body = {"subject": "hello", "body": "b", "to_session": "m2/agent"}
    for headers, status, why in (({}, 403, "Origin"), ({"Origin": ORIGIN}, 401, "X-CSRF-Token"),
                                 ({"Origin": ORIGIN, websessions.CSRF_HEADER: "wrong"}, 401, "X-CSRF-Token"),
                                 ({websessions.CSRF_HEADER: writes[websessions.CSRF_HEADER]}, 403, "Origin")):
        r = api.post("/api/coord/messages", json=body, headers=headers)
        assert r.status_code == status, (headers, r.text)
        assert why in r.json()["error"]["message"]
    evil = {**writes, "Origin": "http://evil.example"}
    assert api.post("/api/coord/messages", json=body, headers=evil).status_code == 403  # BrowserGuard, as before
    assert api.get("/api/coord/messages", params={"to_session": "m2/agent"},
                   headers=api.admin).json() == []  # nothing was sent by any refused request
    r = api.post("/api/coord/messages", json=body, headers=writes)
    assert r.status_code == 201 and r.json()["from_session"] == AGENT


def test_a_bearer_token_still_wins_over_the_cookie(api: Api) -> None:
    sign_in(api.client, bearer_value(api.token(AGENT)))
    other = api.token("m2/agent")
    r = api.post("/api/coord/messages", json={"subject": "s", "body": "b"}, headers=other)
    assert r.status_code == 201 and r.json()["from_session"] == "m2/agent"


def test_sign_out_ends_the_web_session_server_side(api: Api) -> None:
    writes = sign_in(api.client, bearer_value(api.token(AGENT)))
    cookie = api.client.cookies[websessions.COOKIE_NAME]
    assert api.delete("/api/coord/web/session", headers={"Origin": ORIGIN}).status_code == 401  # the secret too
    r = api.delete("/api/coord/web/session", headers=writes)
    assert r.status_code == 200 and r.json()["signed_in"] is False
    assert "Max-Age=0" in r.headers["set-cookie"]
    # a copy of the cookie kept by an attacker (or the browser) is dead now, in this process and in the store
    api.client.cookies.set(websessions.COOKIE_NAME, cookie)
    assert api.get("/api/coord/whoami", headers=writes).status_code == 401
    assert api.hub.query_sync(lambda tx, now: websessions.resolve(tx, cookie, now)) is None


def test_a_bearer_token_cannot_sign_out_the_web_session_whose_cookie_it_carries(api: Api) -> None:
    """The cookie alone authenticates nothing, sign-out included: a token of its own plus a cookie it got hold of
    (another's, as a server on another port of the host receives it) ended that web session and its streams
    (found by a review)."""
    writes = sign_in(api.client, bearer_value(api.token("admin2", admin=True)))
    mallory = api.token("ostra/mallory")
    r = api.delete("/api/coord/web/session", headers={**mallory, "Origin": ORIGIN})  # the client sends the cookie
    assert r.status_code == 422 and "Authorization" in r.json()["error"]["message"], r.text
    assert api.get("/api/coord/whoami", headers=writes).status_code == 200  # the web session lives on
    assert api.delete("/api/coord/web/session", headers=writes).status_code == 200  # its own sign-out works


def test_revoking_the_token_ends_its_web_sessions(api: Api) -> None:
    writes = sign_in(api.client, bearer_value(api.token(AGENT)))
    assert api.get("/api/coord/whoami", headers=writes).status_code == 200
    assert api.delete(f"/api/coord/tokens/{AGENT}", headers=api.admin).status_code == 200
    assert api.get("/api/coord/whoami", headers=writes).status_code == 401
    assert api.get("/api/coord/web/session", headers=writes).json()["signed_in"] is False


def test_sign_in_works_during_a_halt_and_the_halt_still_refuses_writes(api: Api) -> None:
    token = bearer_value(api.token("admin2", admin=True))
    assert api.post("/api/coord/halt", json={"reason": "incident"}, headers=api.admin).status_code == 201
    writes = sign_in(api.client, token)
    r = api.post("/api/coord/todos", json={"text": "t"}, headers=writes)
    assert r.status_code == 423
    assert api.post("/api/coord/resume", json={}, headers=writes).status_code == 200


def test_one_token_keeps_a_bounded_number_of_web_sessions(api: Api) -> None:
    token = bearer_value(api.token(AGENT))
    for _ in range(websessions.PER_TOKEN + 5):
        api.client.cookies.clear()
        writes = sign_in(api.client, token)
    n = api.hub.query_sync(lambda tx, now: tx.ex.one("SELECT COUNT(*) AS n FROM web_sessions"))
    assert n is not None and n["n"] == websessions.PER_TOKEN
    assert api.get("/api/coord/whoami", headers=writes).status_code == 200  # the newest one lives


def test_the_cookie_alone_authenticates_nothing_and_never_reads_the_secret(api: Api) -> None:
    """Cookies ignore ports: a server on another port of the hub's host receives the cookie (review, HIGH).

    With it alone it must learn nothing and do nothing: no secret from GET /web/session, no read, no stream, no
    write even with the Origin it can forge; a wrong secret counts as a failed authentication.
    """
    writes = sign_in(api.client, bearer_value(api.token("ops/admin2", admin=True)))
    me = api.get("/api/coord/web/session").json()
    assert me["signed_in"] is False and "csrf_token" not in me and "session_id" not in me
    assert api.get("/api/coord/web/session", headers={websessions.CSRF_HEADER: "guess"}).json()["signed_in"] is False
    assert api.get("/api/coord/whoami").status_code == 401
    assert api.get("/api/coord/events").status_code == 401
    r = api.post("/api/coord/tokens", json={"name": "ops/backdoor", "admin": True}, headers={"Origin": ORIGIN})
    assert r.status_code == 401 and "X-CSRF-Token" in r.json()["error"]["message"]
    r = api.post("/api/coord/halt", json={"reason": "pwned"}, headers={"Origin": ORIGIN,
                                                                         websessions.CSRF_HEADER: "guess"})
    assert r.status_code == 401
    assert api.client.app.state.auth.failures._buckets  # the wrong secrets were counted against the address
    # with the secret of the sign-in answer, the same cookie works
    assert api.get("/api/coord/whoami", headers=writes).json()["session_id"] == "ops/admin2"
    assert api.get("/api/coord/web/session", headers=writes).json()["signed_in"] is True


def test_a_no_auth_hub_has_nothing_to_sign_in_to(open_api: TestClient) -> None:
    r = open_api.post("/api/coord/web/session", json={"token": "coord_x"})
    assert r.status_code == 422
    me = open_api.get("/api/coord/web/session").json()
    assert me["no_auth"] is True and isinstance(me["last_event_id"], int)  # the page streams from there


def test_a_signed_out_answer_says_nothing_of_the_hubs_activity(api: Api) -> None:
    """GET /web/session answers anyone, without a token: it gave every caller the newest event id, a counter that
    moves with every message, lease, todo and sign-in of the fleet, so anyone who could reach the hub could watch
    when and how much the fleet did, which every other route tells token holders alone (review)."""
    writes = sign_in(api.client, bearer_value(api.token(AGENT)))
    last = api.get("/api/coord/web/session", headers=writes).json()["last_event_id"]
    assert isinstance(last, int) and last > 0  # signed in: the page streams from there
    for headers in ({}, {websessions.CSRF_HEADER: "guess"}):  # no secret, or a wrong one: signed out
        me = api.get("/api/coord/web/session", headers=headers).json()
        assert me == {"signed_in": False, "no_auth": False}, (headers, me)
    api.client.cookies.clear()
    assert api.get("/api/coord/web/session").json() == {"signed_in": False, "no_auth": False}  # a stranger


def test_the_page_and_its_assets_carry_a_strict_csp(api: Api) -> None:
    page_client = api.client
    r = page_client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and r.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in r.text and not re.search(r"<script(?![^>]*\bsrc=)", r.text)  # no inline script
    assert not re.search(r"\son[a-z]+=", r.text) and "style=" not in r.text  # no inline handlers or styles
    for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text):
        asset = page_client.get(src)
        assert asset.status_code == 200, src
        assert asset.headers["content-security-policy"] == csp
        # revalidated on every use (test_dashboard_cache.py): a 304 while unchanged
        assert asset.headers["cache-control"] == "no-cache", src
        same = page_client.get(src, headers={"If-None-Match": asset.headers["etag"]})
        assert same.status_code == 304 and same.headers["cache-control"] == "no-cache", src
    js = page_client.get("/static/js/app.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert page_client.get("/static/vendor/LICENSE.preact").status_code == 200
    assert page_client.get("/static/../api/app.py").status_code == 404
