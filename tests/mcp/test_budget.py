"""The default tool set's ``tools/list`` must fit in 5,000 tokens of an agent's context (~4 characters each)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from mcp import Client

from coordhub.mcp.connect import Connector
from coordhub.mcp.server import PROFILES, build_server

pytestmark = pytest.mark.anyio

BUDGET_TOKENS = 5000
CHARS_PER_TOKEN = 4


@asynccontextmanager
async def nowhere() -> AsyncIterator[Connector]:
    yield None  # type: ignore[misc]  # listing tools never reaches the hub


async def listing(profile: str) -> str:
    """The ``tools/list`` result as JSON text, as a client receives it."""
    async with Client(build_server(profile, nowhere), mode="legacy") as c:
        result = await c.list_tools()
    return json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True))


@pytest.mark.parametrize("profile", list(PROFILES))
async def test_tools_list_size(profile: str) -> None:
    text = await listing(profile)
    tokens = len(text) / CHARS_PER_TOKEN
    print(f"\ntools/list[{profile}]: {len(PROFILES[profile])} tools, {len(text)} chars ≈ {tokens:.0f} tokens")
    if profile == "default":
        assert tokens <= BUDGET_TOKENS


async def test_every_tool_has_a_one_line_description() -> None:
    async with Client(build_server("all", nowhere)) as c:
        tools = (await c.list_tools()).tools
    for tool in tools:
        assert tool.description and "\n" not in tool.description.strip(), tool.name
        assert tool.output_schema is not None, tool.name  # structured output
        for name in ("from_session", "session", "sender", "from_instance", "created_by"):
            if tool.name not in ("coord_check_messages",):
                assert name not in tool.input_schema.get("properties", {}), (tool.name, name)
