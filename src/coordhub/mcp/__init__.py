"""The MCP front end: the coordhub tools, served over stdio (``coord mcp``) and streamable HTTP (``/mcp``).

Every tool is a thin call to the hub's REST API made as the caller's
session, so identity, the halt, idempotency and validation are exactly the
REST rules; the tools are defined once (:mod:`coordhub.mcp.tools`,
:mod:`coordhub.mcp.seed002`) and both transports serve the same set. The
``mcp`` SDK is imported only by these modules, never by the CLI's start-up
nor by a hub's (``/mcp`` loads it at its first request: :mod:`coordhub.mcp.http`).
"""

PROFILE_ENV = "COORD_MCP_TOOLS"
PROFILE_NAMES = ("default", "seed002", "all")  # tool sets; see coordhub.mcp.server
