"""Malformed MCP tool arguments: every tool answers a clear tool error or a result, never a crash."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.mcp.conftest import McpHub, text

JUNK = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                 st.text(max_size=30), st.text(alphabet="\x00\x01\n/*?[]{}", max_size=5),
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@pytest.mark.anyio
async def test_junk_arguments_to_every_tool(mcp_hub: McpHub) -> None:
    async with mcp_hub.client("A/x", tools="all") as client:
        listed = (await client.list_tools()).tools
        schemas = {t.name: t.input_schema for t in listed}
        assert len(schemas) >= 28

        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def cases(data: st.DataObject) -> None:
            for name, schema in schemas.items():
                props = list(schema.get("properties", {}))
                chosen = data.draw(st.lists(st.sampled_from(props), unique=True) if props else st.just([]))
                args: dict[str, Any] = {p: data.draw(JUNK) for p in chosen}
                if data.draw(st.booleans()):
                    args["unexpected_" + data.draw(st.text("abc", min_size=1, max_size=3))] = 1
                calls.append((name, args))

        calls: list[tuple[str, dict[str, Any]]] = []
        cases()
        assert len(calls) >= 8 * len(schemas)
        errors = 0
        for name, args in calls:
            if name == "wait_for_messages":
                args["timeout"] = 0
            result = await client.call_tool(name, args)
            message = text(result) if result.content else ""
            assert "Traceback" not in message and "Internal" not in message, (name, args, message)
            if result.is_error:
                errors += 1
                assert message.strip(), (name, args)
        assert errors > len(calls) // 4  # most junk is refused: the calls did reach the tools


_JSONISH = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["null", " null", "\tnull\n", "[]", " [1, 2]", '{"a": 1}', "\n{}", "true", "false", " 7",
                     "-1.5", '"quoted"', "NaN", "nul", "[", "{", "n", "\ufeffnull", "\u00a0null", "Infinity"]),
    st.builds(lambda a, b: a + b, st.sampled_from([" ", "\t", "\r\n", ""]), st.text(max_size=6)),
)


@settings(max_examples=400, deadline=None)
@given(values=st.lists(st.one_of(_JSONISH, st.integers(), st.none(), st.booleans()), min_size=1, max_size=4))
def test_the_pre_parse_is_the_sdks_but_for_text_which_stays_as_written(values: list[object]) -> None:
    """Arguments that are not text are pre-parsed as the SDK does (the shortcut for text that cannot decode changes
    nothing of it); text arguments (``str | None`` too) stay as written (review: ``notes='{"a": 1}'`` was refused)."""
    from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata

    from coordhub.mcp.server import _text_fields, profile_tools
    for tool in profile_tools("all").values():
        fields = list(tool.fn_metadata.arg_model.model_fields)
        data = dict(zip(fields, values, strict=False))
        texts = _text_fields(tool.fn_metadata.arg_model)
        others = {k: v for k, v in data.items() if k not in texts}
        expected = {**data, **FuncMetadata.pre_parse_json(tool.fn_metadata, others)}
        assert tool.fn_metadata.pre_parse_json(data) == expected, tool.name


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(_JSONISH, st.integers(-5, 600), st.none(), st.booleans(),
                                 st.sampled_from(["normal", "urgent", "pending", "completed", "all"])),
                       min_size=1, max_size=9))
def test_the_arguments_read_off_the_model_are_the_sdks_dump(values: list[object]) -> None:
    """Validated arguments read off the model's fields are what the SDK's one-level dump gives, or both refuse."""
    from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
    from pydantic import ValidationError

    from coordhub.mcp.server import profile_tools
    for tool in profile_tools("all").values():
        fields = list(tool.fn_metadata.arg_model.model_fields)
        data = dict(zip(fields, values, strict=False))
        try:
            want = FuncMetadata.validate_arguments(tool.fn_metadata, data)
        except ValidationError:
            with pytest.raises(ValidationError):
                tool.fn_metadata.validate_arguments(data)
            continue
        got = tool.fn_metadata.validate_arguments(data)
        assert got == want and list(got) == list(want), tool.name
