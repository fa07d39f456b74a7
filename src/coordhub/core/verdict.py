"""A review's verdict: the JSON a reviewer must end with, its schema, and how it is read (issue 12 point 3).

Seed 003 let a reviewer post whatever it liked; here the verdict is data. The
reviewer is run with ``--json-schema`` (:data:`SCHEMA`): the CLI validates it
and returns it as the result's ``structured_output`` (research
orchestrator.md §1). Without it (an older CLI, or a run that returns only
text) the **last** fenced ```json block of the final text is read. Nothing
else counts: prose that says "approve" without a valid block is no verdict,
and no verdict is never an approval (:func:`from_result` says why).
"""

from __future__ import annotations

import json
import re
from typing import Any

VERDICTS = ("approve", "request_changes")
SEVERITIES = ("blocker", "major", "minor", "nit")
MAX_FINDINGS = 50
MAX_TEXT = 2000

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": list(VERDICTS)},
        "summary": {"type": "string", "maxLength": MAX_TEXT},
        "findings": {"type": "array", "maxItems": MAX_FINDINGS, "items": {
            "type": "object",
            "properties": {"file": {"type": "string"}, "line": {"type": "integer", "minimum": 1},
                           "severity": {"type": "string", "enum": list(SEVERITIES)},
                           "message": {"type": "string", "maxLength": MAX_TEXT}},
            "required": ["message"]}},
    },
    "required": ["verdict", "summary", "findings"],
    "additionalProperties": False,
}
_BLOCK = re.compile(r"```json\s*\n(.*?)```", re.S)


def normalize(verdict: Any, summary: Any, findings: Any) -> dict[str, Any] | None:
    """``{verdict, summary, findings}`` checked and bounded, or None when ``verdict`` is not one of :data:`VERDICTS`.

    Findings that are not objects are dropped; each keeps ``file``, ``line``
    (a positive int), ``severity`` (one of :data:`SEVERITIES`, default
    ``major``) and ``message``, texts cut at :data:`MAX_TEXT` characters; at
    most :data:`MAX_FINDINGS`. A ``request_changes`` without findings gets
    its summary as the one finding (a fix worker needs something to fix).
    """
    if verdict not in VERDICTS:
        return None
    text = str(summary or "")[:MAX_TEXT]
    out: list[dict[str, Any]] = []
    for f in findings if isinstance(findings, list) else []:
        if not isinstance(f, dict) or not str(f.get("message") or "").strip():
            continue
        line = f.get("line")
        out.append({"file": str(f["file"])[:500] if f.get("file") else None,
                    "line": line if isinstance(line, int) and not isinstance(line, bool) and line > 0 else None,
                    "severity": f.get("severity") if f.get("severity") in SEVERITIES else "major",
                    "message": str(f["message"])[:MAX_TEXT]})
        if len(out) >= MAX_FINDINGS:
            break
    if verdict == "request_changes" and not out:
        out.append({"file": None, "line": None, "severity": "major", "message": text or "changes requested"})
    return {"verdict": verdict, "summary": text, "findings": out}


def last_block(text: str, what: str = "the review") -> Any:
    """The last fenced ```json block of ``text``, parsed; ``ValueError`` (naming ``what``: ``the review``, ``the
    plan``) when there is none or it is not JSON. Shared with the planning brain (``coordhub.orchestrator.brain``)."""
    blocks = _BLOCK.findall(text or "")
    if not blocks:
        raise ValueError(f"{what}'s final message has no ```json block")
    try:
        return json.loads(blocks[-1])
    except ValueError as exc:
        raise ValueError(f"{what}'s final ```json block is not JSON: {exc}") from None
    except RecursionError:  # a reply, which a prompt can steer, nesting '[' 100,000 deep
        raise ValueError(f"{what}'s final ```json block is nested too deep") from None


def from_result(result: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """The verdict of a reviewer's stream-json ``result`` object: ``(verdict, "")`` or ``(None, why not)``."""
    if result is None:
        return None, "the reviewer ended without a result"
    if result.get("is_error"):
        detail = result.get("result") or "; ".join(map(str, result.get("errors") or [])) or result.get("subtype")
        return None, f"the reviewer failed: {result.get('subtype')}/{result.get('terminal_reason')}: {detail}"
    data = result.get("structured_output")
    if data is None:
        try:
            data = last_block(str(result.get("result") or ""))
        except ValueError as exc:
            return None, str(exc)
    if not isinstance(data, dict):
        return None, "the review's verdict is not a JSON object"
    checked = normalize(data.get("verdict"), data.get("summary"), data.get("findings"))
    if checked is None:
        return None, f"the review's verdict {str(data.get('verdict'))[:50]!r} is not approve or request_changes"
    return checked, ""
