"""``pre-tool-use``: deny an edit of a file inside a lease held by another live session.

Runs before every Edit, Write, MultiEdit and NotebookEdit, so it does one
request, ``GET /locks/conflicts?project_key=&resource=<project-relative
path>``, which answers the live leases overlapping the path held by *other*
sessions (the caller's own leases never conflict). A file outside the
project root is never denied and costs no request.

Halt: while the fleet is halted every edit inside the project is denied,
since stopping the whole fleet is what a halt is for. The hook learns of a
halt only from the same answer (``{"leases": […], "halt": {…}}``); when the
hub answers a bare list of leases, no halt is checked (no second request).

When the hub cannot be asked (unreachable, refused, misconfigured),
``COORD_HOOK_FAIL_MODE`` decides: ``open`` (default) prints nothing, so the
edit goes ahead, and says so in one line on stderr; ``closed`` denies with a
reason saying the hub could not be asked.
"""

from __future__ import annotations

import sys
from typing import Any

from coordhub.hooks import leases as leases_text
from coordhub.hooks import output
from coordhub.hooks.hub import HubError
from coordhub.hooks.invocation import Invocation
from coordhub.hooks.output import Answer
from coordhub.hooks.project import as_resource
from coordhub.hooks.untrusted import one_line

PATH_FIELDS = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path", "NotebookEdit": "notebook_path"}


def pre_tool_use(inv: Invocation) -> Answer | None:
    """PreToolUse: prints a ``permissionDecision: "deny"`` naming holder, purpose and end of each lease, or nothing.

    Nothing is also the answer for other tools, a missing path, a file outside
    the project, and a file free or leased only by this session. Printing
    nothing (rather than ``allow``) leaves Claude Code's own permission
    prompts in force.
    """
    rel = edited_path(inv)
    if rel is None:
        return None
    try:
        data = inv.hub.get("/locks/conflicts", project_key=inv.project.key, resource=as_resource(rel))
    except HubError as exc:
        return cannot_check(inv, rel, exc)
    leases, halt = _parse(data)
    if halt:
        return output.deny(f"coord: the fleet is halted by {one_line(halt.get('halted_by'))} since "
                           f"{leases_text.when(halt.get('halted_at'))}: {one_line(halt.get('reason'))}. "
                           "No file edits until an admin runs `coord resume`; tell the user.")
    if leases:
        return output.deny(deny_reason(rel, inv.project.key, leases))
    return None


def edited_path(inv: Invocation) -> str | None:
    """The project-relative path the tool call would change, or None (not an edit tool, no path, outside)."""
    field = PATH_FIELDS.get(str(inv.payload.get("tool_name")))
    tool_input = inv.payload.get("tool_input")
    if field is None or not isinstance(tool_input, dict):
        return None
    path = tool_input.get(field) or tool_input.get("file_path")
    if not isinstance(path, str) or not path.strip():
        return None
    if "\x00" in path:  # no file system accepts it, so the edit cannot happen: nothing to guard
        sys.stderr.write(f"coord-hook {inv.event}: tool_input.{field} contains a NUL byte; nothing checked.\n")
        return None
    rel = inv.project.relative(path, inv.cwd)
    return None if rel in (None, ".") else rel


def _parse(data: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(conflicting leases, standing halt) from either answer shape (see the module docstring)."""
    if isinstance(data, list):
        return [x for x in data if isinstance(x, dict)], None
    if isinstance(data, dict):
        rows = data.get("leases", data.get("conflicts", []))
        halt = data.get("halt")
        halted = halt if isinstance(halt, dict) and halt.get("halted", True) else None
        return [x for x in rows if isinstance(x, dict)] if isinstance(rows, list) else [], halted
    return [], None


def deny_reason(rel: str, project_key: str, leases: list[dict[str, Any]]) -> str:
    """Why the edit is denied: who holds ``rel``, doing what, until when, and what to do instead."""
    rows = [{"project_key": project_key, **lease} for lease in leases]
    holders = sorted({str(lease.get("session_id")) for lease in rows})
    head = f"coord: {rel} is leased by " + (leases_text.held(rows[0]) if len(rows) == 1 else "other sessions:\n"
                                             + "\n".join(f"- {leases_text.held(x)}" for x in rows))
    return (f"{head}.\nDo not edit it now. Ask the holder (`coord msg send {holders[0]} \"<subject>\" \"<body>\"`), "
            "wait until the lease ends, or work on something else.")


def cannot_check(inv: Invocation, rel: str, exc: HubError) -> Answer | None:
    """The fail-mode answer when the hub could not be asked about ``rel``."""
    if inv.settings.fail_closed:
        return output.deny(f"coord: cannot check whether {rel} is leased by another session: {exc}. "
                           "COORD_HOOK_FAIL_MODE=closed denies edits until the hub answers again; "
                           "tell the user the coord hub is down.")
    output.log(inv.event, f"the hub could not be asked ({exc}); edit of {rel} allowed (COORD_HOOK_FAIL_MODE=open)")
    return None
