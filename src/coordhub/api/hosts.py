"""Refuse requests a web page could make: a cross-origin ``Origin``, and a non-loopback ``Host`` on a loopback hub.

DNS rebinding (issue 7, point 9): a page at ``http://evil.example:8001``
makes its name resolve to 127.0.0.1, and the victim's browser then sends the
page's requests to a hub listening on loopback, with ``Host:
evil.example:8001`` and the page's own origin, so the browser lets the page
read the answers. Without auth (``--no-auth``) nothing else tells such a
request from a local agent's, and the page could read direct messages or
halt the fleet. Two rules, applied by :class:`~coordhub.api.door.Door` in front of
every route (REST, ``/mcp``, ``/health``, the docs):

* **Origin** (always): a request whose ``Origin`` header does not name the
  ``Host`` it was sent to (scheme ignored, host and port compared
  case-insensitively; ``Origin: null`` never matches) is refused with 403
  ``forbidden``. Browsers send ``Origin`` with every cross-origin request
  that can change something, and the hub serves no page that calls another
  origin; non-browser clients (the CLI, the hooks, MCP clients) send none.
* **Host** (when ``loopback_only``): the ``Host`` header must name a loopback
  address or ``localhost`` (any port): ``127.0.0.0/8``, ``[::1]``,
  ``localhost``. Anything else is refused with 421 ``misdirected_request``
  (RFC 9110 §15.5.20), the status the MCP SDK's own check uses. ``coord
  serve`` turns this on for a ``--no-auth`` hub listening on loopback: a
  rebound page's ``Host`` is its own name. With auth the bearer token is the
  defence (a rebound page cannot present it), so LAN names, IP addresses and
  reverse proxies keep working; a ``--no-auth`` hub on another interface
  (``--allow-remote-no-auth``) serves whatever names its network uses.

Both answers use the one JSON error envelope. Requests other than HTTP
(lifespan), and the requests the hub makes to itself for ``/mcp`` tools
(``INNER_REQUEST``, which only the app can set), pass through.
"""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import urlsplit

from starlette.responses import Response

from coordhub.api.errors import envelope

MISDIRECTED = 421


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback address (``127.0.0.0/8``, ``::1``; IPv6 with or without brackets)."""
    name = host.strip().lower().removeprefix("[").removesuffix("]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(authority: str) -> str:
    """The host part of a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``), port removed."""
    value = authority.strip()
    if value.startswith("["):
        return value[:value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def refusal(host: str, origin: str | None, *, loopback_only: bool) -> Response | None:
    """The answer refusing a request by the module's two rules (421 or 403 envelope), or None to let it in.

    ``host`` and ``origin`` are the request's headers (``""`` and None when
    absent); ``loopback_only`` turns the ``Host`` rule on.
    """
    if loopback_only and not _loopback_host(host):
        return envelope(MISDIRECTED, "misdirected_request",
                        f"Host {host!r} is not a loopback name: a --no-auth hub on loopback answers only "
                        "requests sent to 127.0.0.1, [::1] or localhost (DNS-rebinding protection)")
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return envelope(403, "forbidden", f"Origin {origin!r} is not this hub ({host!r}): the hub answers no "
                                          "cross-origin browser requests")
    return None


@functools.lru_cache(maxsize=64)
def _loopback_host(authority: str) -> bool:
    # A hub sees a handful of Host values; parsing an address per request showed in profiles. The cache is
    # bounded, so a client sending endless names costs a parse each, as before, and no memory.
    return is_loopback(host_name(authority))
