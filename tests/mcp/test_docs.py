"""Docs that cannot drift: every MCP tool and profile is in docs/mcp.md."""

from __future__ import annotations

from pathlib import Path

from coordhub.mcp.server import PROFILE_ENV, PROFILES

DOC = Path(__file__).resolve().parents[2] / "docs" / "mcp.md"


def test_every_tool_and_profile_is_documented() -> None:
    text = DOC.read_text()
    names = sorted({fn.__name__ for tools in PROFILES.values() for fn in tools})
    missing = [n for n in names if f"`{n}`" not in text and f"`{n}(" not in text]
    assert not missing, f"undocumented MCP tools in docs/mcp.md: {missing}"
    assert all(f"`{p}`" in text for p in PROFILES) and PROFILE_ENV in text
