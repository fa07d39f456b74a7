"""The dashboard: one static page and its assets, served by the hub itself at ``/`` (issue 13).

The page is package data (``static/``), so ``pip install .`` and a built
wheel carry it (seed 003's wheel forgot its HTML and answered 500). It is a
client of the same REST API and event stream as every other front end,
authenticated by the web-session cookie of ``/api/coord/web/session``.

Every answer here carries a strict Content-Security-Policy: scripts, styles
and connections from this origin only, no inline script or style, no
framing, no plugins, and ``X-Content-Type-Options: nosniff``; and
``Cache-Control: no-cache``, the assets' included: a browser revalidates each
one on use (a 304 by its ETag while unchanged). Without it a browser kept a
script fresh for a tenth of its file's age (RFC 9111's heuristic: days for an
installation a month old), so after an upgrade of the hub a new visit still
ran the old scripts, fixes of the page included, under the new page.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
STATIC_PREFIX = "/static"


def static_file(name: str) -> bytes:
    """The bytes of a packaged asset, ``static/<name>``; ``FileNotFoundError`` when the package lacks it."""
    return (resources.files(__name__) / "static" / name).read_bytes()


class SecureHeaders:
    """ASGI wrapper adding :data:`SECURITY_HEADERS` to every response of the app it wraps."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount(app: FastAPI) -> None:
    """Serve the page at ``/`` and its assets under ``/static/`` on ``app`` (kept out of the OpenAPI document)."""
    page = static_file("index.html")  # read at start: a wheel without the page fails here, not on a visit

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8",
                        headers=SECURITY_HEADERS)

    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    assets = StaticFiles(packages=[(__name__, "static")], follow_symlink=False)
    app.mount(STATIC_PREFIX, SecureHeaders(assets), name="static")
