"""The C load driver: ``wrk`` against the hub and the ceiling, for the hot REST paths (issue 15).

The Python driver saturates before the hub does (one asyncio process, two
cores shared with the hub), so its ratios flatter the hub. ``wrk`` (C, epoll)
costs the cores far less per request. This module writes a Lua script for
``wrk`` that gives requests session tokens in rotation and rotates resources
and recipients, runs it against a fresh hub and then against the ceiling
(:mod:`coordhub.bench.ceiling`) in the same run, and parses ``wrk``'s report.

Scenarios (``SCENARIOS``):

* ``message``: ``POST /api/coord/messages``, each request from the next token
  to the next session (64 tokens by default); one op = one send;
* ``lease``: ``POST /api/coord/locks`` of the token's own file, then
  ``DELETE /api/coord/locks/<id>`` of the lease just granted, on the same
  with the holder's token: each thread keeps a FIFO of granted leases and its
  next request releases the oldest one before it claims again (every claim
  is of a new file, so none conflicts); one op = one claim + release cycle.
* ``turn``: ``POST /api/coord/conversations/turns``, a ``progress`` turn in
  field form with a 200-byte body from the next token to the next agent's
  conversation address (each agent declares ``<machine>.p<k>`` first,
  :func:`profile`), in a conversation of the sender's own (a new one every
  2,000 turns a thread sends on one token, well within a conversation's
  10,000); one op = one turn, decided, numbered and stored with its event.

For the ``mcp`` scenario (``MCP_KINDS``), each request is one operation made
either as an MCP ``tools/call`` on ``/mcp`` (a stateless, handshake-era call,
``MCP-Protocol-Version: 2025-11-25``, as the SDK's legacy client sends it)
or as the same REST request: ``mcp-list``/``rest-list`` read the token's own
leases (``list_leases``, ``GET /api/coord/locks?session_id=…``),
``mcp-send``/``rest-send`` send a direct message to the next session.

The bench installs nothing: when ``wrk`` is missing it says how to get it
(Debian's ``wrk`` package).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SCENARIOS = ("message", "lease", "turn")
MCP_KINDS = ("mcp-list", "rest-list", "mcp-send", "rest-send")
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
PROJECT = "bench-wrk"

_LUA = r"""
local tokens = %(tokens)s
local sessions = %(sessions)s
local addresses = %(addresses)s
local filler = string.rep("x", 200)
local kind = "%(kind)s"
local project = "%(project)s"
local mcp_headers = %(mcp_headers)s
-- `tid` stays global: `setup` gives each thread its own with `thread:set`, which sets the thread's globals, so
-- a `local tid` here would hide it and every thread would claim the same files (the same session's second
-- claim of a file is then a renewal on the hub and a 409 on the ceiling)
local n, i = #tokens, 0
local granted, head, tail = {}, 1, 0   -- FIFO of {id, token} waiting for their release
local counter = 0
local bysession = {}
for j = 1, n do bysession[string.lower(sessions[j])] = tokens[j] end

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  i = (tid or 0) * 7919
end

function request()
  if head <= tail then
    local g = granted[head]
    granted[head] = nil
    head = head + 1
    return wrk.format("DELETE", "/api/coord/locks/" .. g[1], {["Authorization"] = "Bearer " .. g[2]}, nil)
  end
  i = i + 1
  local k = (i %% n) + 1
  local headers = {["Authorization"] = "Bearer " .. tokens[k], ["Content-Type"] = "application/json"}
  if kind == "lease" then
    local body = '{"project_key":"' .. project .. '","resource":"src/t' .. (tid or 0) .. '/f' .. i .. '.py",' ..
                 '"description":"wrk","ttl_hours":1}'
    return wrk.format("POST", "/api/coord/locks", headers, body)
  end
  if kind == "turn" then
    local conversation = "wrk-" .. (tid or 0) .. "-" .. k .. "-" .. math.floor(i / (n * 2000))
    local body = '{"to":"' .. addresses[((i + 1) %% n) + 1] .. '","conversation_id":"' .. conversation ..
                 '","type":"progress","title":"wrk","body":"turn ' .. i .. ' ' .. filler .. '"}'
    return wrk.format("POST", "/api/coord/conversations/turns", headers, body)
  end
  local to = sessions[((i + 1) %% n) + 1]
  if kind == "rest-list" then
    local auth = {["Authorization"] = "Bearer " .. tokens[k]}
    return wrk.format("GET", "/api/coord/locks?session_id=" .. sessions[k], auth, nil)
  end
  if kind == "mcp-list" or kind == "mcp-send" then
    for name, value in pairs(mcp_headers) do headers[name] = value end
    local call = '"name":"list_leases","arguments":{"session_id":"' .. sessions[k] .. '"}'
    if kind == "mcp-send" then
      call = '"name":"send_message","arguments":{"to":"' .. to .. '","subject":"wrk ' .. i ..
             '","body":"load from wrk"}'
    end
    local envelope = '{"jsonrpc":"2.0","id":' .. i .. ',"method":"tools/call","params":{' .. call .. '}}'
    return wrk.format("POST", "/mcp", headers, envelope)
  end
  local body = '{"to_session":"' .. to .. '","subject":"wrk ' .. i .. '","body":"load from wrk"}'
  return wrk.format("POST", "/api/coord/messages", headers, body)
end

function response(status, headers, body)
  if kind == "lease" and status == 201 then
    local id = string.match(body, '"id"%%s*:%%s*"([^"]+)"')
    local holder = string.match(body, '"session_id"%%s*:%%s*"([^"]+)"') or ""
    if id ~= nil then
      tail = tail + 1
      granted[tail] = {id, bysession[string.lower(holder)] or tokens[1]}  -- the holder releases
    end
  end
end
"""


class WrkMissing(RuntimeError):
    """``wrk`` is not on PATH."""


def available() -> str:
    """The path of ``wrk``; :class:`WrkMissing` (with how to install it) when absent."""
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing("wrk is not installed: on Debian or Ubuntu, `sudo apt-get install wrk` (the bench "
                         "installs nothing itself); or run the Python driver with --driver python")
    return path


def script(kind: str, agents: list[tuple[str, str]]) -> str:
    """The Lua script for ``kind`` with these ``(session id, token)`` pairs."""
    if kind not in SCENARIOS + MCP_KINDS:
        raise ValueError(f"wrk drives {', '.join(SCENARIOS + MCP_KINDS)}, not {kind!r}")

    def table(items: list[str]) -> str:
        return "{" + ",".join(json.dumps(x) for x in items) + "}"

    return _LUA % {"tokens": table([t for _, t in agents]), "sessions": table([s for s, _ in agents]),
                   "addresses": table([".".join(profile(s, k)) for k, (s, _) in enumerate(agents)]),
                   "kind": kind, "project": PROJECT,
                   "mcp_headers": "{" + ",".join(f'["{k}"]={json.dumps(v)}' for k, v in MCP_HEADERS.items()) + "}"}


def profile(session_id: str, k: int) -> tuple[str, str]:
    """The conversation address ``(machine, project)`` the ``k``-th agent declares for ``turn``: its session's
    machine and ``p<k>``, as the Python driver's turn scenario declares them."""
    return session_id.split("/", 1)[0].lower(), f"p{k}"


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if m is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse(output: str) -> dict[str, Any]:
    """``{requests, requests_per_s, non_2xx, socket_errors, p50_ms, p75_ms, p90_ms, p99_ms}`` from wrk's report.

    Needs ``--latency`` (the distribution block). Raises ``ValueError`` when
    the report has no ``Requests/sec`` line (wrk failed).
    """
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or total is None:
        raise ValueError(f"wrk printed no result:\n{output[-2000:]}")
    out: dict[str, Any] = {"requests": int(total.group(1)), "requests_per_s": float(rps.group(1))}
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    out["non_2xx"] = int(non.group(1)) if non else 0
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    out["socket_errors"] = sum(int(g) for g in errs.groups()) if errs else 0
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.MULTILINE)
        out[f"p{pct}_ms"] = round(_ms(m.group(1)), 3) if m else None
    return out


def run(url: str, kind: str, agents: list[tuple[str, str]], connections: int, seconds: float,
        threads: int = 2) -> dict[str, Any]:
    """Run wrk for ``seconds`` with ``connections`` against ``url``; the parsed report plus ``ops_per_s``.

    ``ops_per_s`` counts sends for ``message`` and claim + release cycles
    (two requests) for ``lease``.
    """
    wrk = available()
    with tempfile.TemporaryDirectory(prefix="coord-wrk-") as d:
        lua = Path(d) / f"{kind}.lua"
        lua.write_text(script(kind, agents), encoding="utf-8")
        proc = subprocess.run([wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
                               "--timeout", "10s", "--latency", "-s", str(lua), url],
                              capture_output=True, text=True, timeout=seconds + 60)
    report = parse(proc.stdout + proc.stderr)
    per_op = 2 if kind == "lease" else 1
    report["ops_per_s"] = round(report["requests_per_s"] / per_op, 1)
    return report
