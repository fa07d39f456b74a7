"""The dashboard's sign-in: trade a token for an HttpOnly web-session cookie, read it back, sign out.

See :mod:`coordhub.core.websessions` for what is stored and
:mod:`coordhub.api.auth` for how the cookie then authenticates requests
(never alone: every request also carries the web session's secret).
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Depends, Request

from coordhub.api.admin_schemas import WebSessionOut, WebSignIn
from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Authenticator, Caller, caller, client_address, web_cookie, web_cookie_name
from coordhub.api.errors import responses
from coordhub.api.headers import header
from coordhub.api.routes.common import READ_ERRORS, WRITE_ERRORS, hub
from coordhub.core import presence, tokens, websessions
from coordhub.core.halt import Exempt
from coordhub.errors import Invalid, Unauthorized
from coordhub.store.tx import Tx

router = APIRouter(prefix="/api/coord/web", tags=["dashboard"])


def _auth(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


def _signed_out(no_auth: bool) -> dict[str, object]:
    return {"signed_in": False, "no_auth": no_auth}


@router.post("/session", status_code=201, response_model=WebSessionOut, responses=responses(*WRITE_ERRORS))
async def sign_in(body: WebSignIn, request: Request) -> JSONResponse:
    """Sign a browser in with a token: 201 with the identity and the web session's secret, and its cookie.

    The secret (``csrf_token``) is given out here only, never again: the page
    keeps it in its origin's ``localStorage`` and sends it in
    ``X-CSRF-Token`` with every request the cookie authenticates (the cookie
    alone is refused: any server on the hub's host, whatever its port,
    receives it).

    The cookie is HttpOnly, ``SameSite=Strict``, ``Path=/``, and ``Secure``
    when the request came over TLS. Failed sign-ins count against the client
    address like bad bearer tokens (429 past the limit), and each one
    spends a request of the token's rate limit. Allowed while
    halted. 422 on a ``--no-auth`` hub, which has nothing to sign in to.
    """
    auth = _auth(request)
    if auth.no_auth:
        raise Invalid("this hub runs with --no-auth: the dashboard needs no sign-in", field="token")
    actor = await auth.actor(body.token, address=client_address(request.scope))
    auth.limiter.check(tokens.hash_token(body.token))  # a sign-in is a write: within its token's rate limit
    made: list[str] = []

    def op(tx: Tx, now: float) -> dict[str, object]:
        cookie, session = websessions.start(tx, body.token, now)
        made.append(cookie)
        return session.render(secret=True)

    out = await hub(request).mutate(actor, op, status=201, during_halt=Exempt.WEB_SESSION)
    response = JSONResponse(out.body, status_code=out.status, headers={"Cache-Control": "no-store"})
    response.set_cookie(web_cookie_name(request), made[0], max_age=websessions.LIFETIME_SECONDS, path="/",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.get("/session", response_model=WebSessionOut, responses=responses(*READ_ERRORS))
async def current(request: Request) -> JSONResponse:
    """The browser's web session: ``{signed_in, session_id, admin, expires_at, no_auth, last_event_id,
    presence_seconds}``.

    Needs the cookie and the secret of the sign-in answer in ``X-CSRF-Token``;
    never answers the secret. ``{signed_in: false, no_auth: false}`` when
    either is missing or wrong or the web session ended (never 401: the page
    asks this first, to decide whether to show the sign-in form); a wrong
    secret counts as a failed authentication of the client address. Only a
    signed-in answer, or a ``--no-auth`` hub's, carries ``last_event_id``: it
    moves with everything the fleet does, which the hub tells token holders
    alone; and ``presence_seconds`` (:func:`coordhub.core.presence.tiers`):
    the Fleet view times its re-reads by the hub's own tiers, not a copy.
    """
    auth = _auth(request)
    cookie = web_cookie(request)
    secret = request.headers.get(websessions.CSRF_HEADER)
    found = None
    if not auth.no_auth and cookie and secret:
        with contextlib.suppress(Unauthorized):
            found = await auth.web_check(cookie, secret, client_address(request.scope))
    body = found.render() if found is not None else _signed_out(auth.no_auth)
    if found is not None or auth.no_auth:
        bus = hub(request).bus
        body["last_event_id"] = bus.last_id if bus is not None else 0  # the page streams from here after its reads
        body["presence_seconds"] = presence.tiers()
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.delete("/session", response_model=WebSessionOut, responses=responses(*WRITE_ERRORS))
async def sign_out(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Sign out: end the web session server-side (its cookie is dead from now on) and clear the cookie.

    Needs the cookie and its CSRF token like every state-changing dashboard
    request, and nothing else to authenticate it: 422 when the request
    carries no web-session cookie, or a bearer token too (the token would
    authenticate the request, and a cookie alone, perhaps another's that a
    server on another port of the host received, would then be ended: found
    by a review).
    """
    cookie = web_cookie(request)
    if not cookie or who.token_actor is None:
        raise Invalid("signing out ends a dashboard web session: send its cookie", field="cookie")
    if header(request.scope, "authorization") is not None:
        raise Invalid("signing out ends the web session its cookie and secret authenticate: send no Authorization "
                      "header", field="authorization")
    actor = who.token_actor
    await hub(request).mutate(actor, lambda tx, now: websessions.end(tx, cookie, actor.session_id, now),
                              during_halt=Exempt.WEB_SESSION)
    _auth(request).forget_web(cookie)
    response = JSONResponse(_signed_out(False), headers={"Cache-Control": "no-store"})
    response.delete_cookie(web_cookie_name(request), path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
