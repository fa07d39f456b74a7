"""Attacks on the dashboard's origin through a real ``coord serve``: what runs beside the web-session cookie.

The cookie (``coord_web``) acts as its token, an admin's included, for any
script of the hub's origin, which can read the CSRF token from
``GET /api/coord/web/session`` and then write. So every page the hub serves
must run only the hub's own code: a page loading a script from another origin
(FastAPI's stock ``/docs`` and ``/redoc`` take ``swagger-ui-dist@5`` and
``redoc@2`` from a CDN, floating versions, no integrity) hands that origin
every signed-in admin's power — e.g. ``POST /api/coord/tokens`` for a new
admin token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import LiveHub

FOREIGN = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    h = LiveHub(Path(tmp_path_factory.mktemp("origin")) / "hub").start(wait=False)
    try:
        h.wait_ready(90)  # a loaded machine starts a hub slowly
        yield h
    finally:
        h.stop()


def test_no_page_of_the_hub_loads_code_from_another_origin(hub: LiveHub) -> None:
    for path in ("/", "/docs", "/redoc", "/docs/oauth2-redirect"):
        r = httpx2.get(hub.url + path)
        if r.status_code == 404:
            continue
        assert r.status_code == 200, (path, r.status_code)
        assert not FOREIGN.search(r.text), f"{path} loads from another origin: {FOREIGN.findall(r.text)}"
    assert httpx2.get(hub.url + "/openapi.json").json()["info"]["title"] == "coordhub"  # the document stays


def test_sign_in_counts_against_its_tokens_rate_limit(tmp_path: Path) -> None:
    # Each sign-in is a write and an event: were it outside the token's limit, one token could flood the
    # writer and the event log at any rate (its other requests answer 429 past the limit).
    h = LiveHub(tmp_path / "hub", args=("--rate-limit", "0.5", "--rate-burst", "5")).start(wait=False)
    try:
        h.wait_ready(90)
        token = h.token("m1/claude-main")
        codes = [httpx2.post(h.url + "/api/coord/web/session", json={"token": token}).status_code for _ in range(12)]
        assert codes[:5] == [201] * 5 and codes[-1] == 429, codes
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx2.get(h.url + "/api/coord/status", headers=bearer).status_code == 429  # one budget for both
    finally:
        h.stop()


def test_request_methods_cannot_grow_the_metrics_without_bound(hub: LiveHub) -> None:
    # Every (route, method, status class) is a histogram child kept for the life of the process, and the method
    # is the client's: without a token, a client cycling through the methods the HTTP parser accepts (WebDAV's
    # and others: dozens) on every route multiplies the series and the size of every scrape.
    odd = ("PROPFIND", "MKCOL", "LOCK", "UNLOCK", "SEARCH", "REPORT", "PURGE", "LINK", "UNLINK", "MKCALENDAR")
    with httpx2.Client(base_url=hub.url) as c:
        for method in odd:
            for path in ("/api/coord/messages", "/api/coord/locks", "/nowhere"):
                assert c.request(method, path).status_code in (404, 405)
        text = c.get("/metrics", headers={"Authorization": f"Bearer {hub.admin_token}"}).text
    methods = set(re.findall(r'coord_http_request_seconds_count\{[^}]*method="([^"]*)"', text))
    assert not methods & set(odd), methods
    assert "other" in methods
