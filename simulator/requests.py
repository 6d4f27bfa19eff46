"""Parsing and validating a ``response.create`` (a WebSocket frame or an HTTP body)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from simulator.config import SimulatorConfig
from simulator.context import Item, count_tokens, normalize_input
from simulator.errors import RequestError

Transport = Literal["websocket", "http"]
STREAM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
WS_ONLY = ("stream_id", "generate")
TOOL_CHOICES = ("none", "auto", "required")


@dataclass(frozen=True)
class CreateRequest:
    model: str
    input: list[Item]
    previous_response_id: str | None
    store: bool
    stream_id: str | None
    generate: bool
    stream: bool
    instructions: str | None
    tools: list[dict[str, Any]]
    tool_choice: Any
    parallel_tool_calls: bool
    metadata: dict[str, Any]
    max_output_tokens: int | None
    size: int

    @property
    def setup_key(self) -> str:
        """What the server renders besides the items; a change means rendering it again."""
        return json.dumps([self.instructions, self.tools], sort_keys=True)

    @property
    def setup_tokens(self) -> int:
        tools = json.dumps(self.tools, sort_keys=True) if self.tools else ""
        return count_tokens(self.instructions or "") + count_tokens(tools)


def valid_stream_id(frame: dict[str, Any]) -> str | None:
    """The frame's lane if it names a valid one; errors are attributed to it."""
    value = frame.get("stream_id")
    return value if isinstance(value, str) and STREAM_ID.match(value) else None


def parse_create(
    fields: dict[str, Any], transport: Transport, config: SimulatorConfig, size: int
) -> CreateRequest:
    model = fields.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(
            400, "missing_required_parameter", "Missing required parameter: 'model'.", "model"
        )
    if fields.get("background"):
        where = "WebSocket mode" if transport == "websocket" else "this simulator"
        raise RequestError.invalid(
            "background", f"Background responses are not supported in {where}."
        )
    if transport == "http":
        _check_http_only(fields, config)
        stream_id = None
    else:
        stream_id = _stream_id(fields, config)
    previous = fields.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise RequestError.invalid(
            "previous_response_id", "'previous_response_id' must be a string."
        )
    if previous and fields.get("conversation") is not None:
        raise RequestError.invalid(
            "previous_response_id",
            "'previous_response_id' cannot be used together with 'conversation'.",
        )
    return CreateRequest(
        model=model,
        input=normalize_input(fields.get("input")),
        previous_response_id=previous or None,
        store=_bool(fields, "store", True),
        stream_id=stream_id,
        generate=_bool(fields, "generate", True),
        stream=_bool(fields, "stream", transport == "websocket"),
        instructions=_instructions(fields),
        tools=_tools(fields),
        tool_choice=_tool_choice(fields),
        parallel_tool_calls=_bool(fields, "parallel_tool_calls", True),
        metadata=_metadata(fields),
        max_output_tokens=_max_output_tokens(fields),
        size=size,
    )


def _check_http_only(fields: dict[str, Any], config: SimulatorConfig) -> None:
    if not config.reject_ws_only_fields_on_http:
        return
    for name in WS_ONLY:
        if name in fields:
            raise RequestError(400, "unknown_parameter", f"Unsupported parameter: '{name}'.", name)


def _stream_id(fields: dict[str, Any], config: SimulatorConfig) -> str | None:
    if "stream_id" not in fields:
        return None
    if not config.lanes:
        raise RequestError(
            400, "unknown_parameter", "Unsupported parameter: 'stream_id'.", "stream_id"
        )
    value = valid_stream_id(fields)
    if value is None:
        raise RequestError(
            400,
            "invalid_stream_id",
            "Invalid 'stream_id': use 1 to 256 characters from A-Z, a-z, 0-9, '_', '.' and '-'.",
            "stream_id",
        )
    return value


def _bool(fields: dict[str, Any], name: str, default: bool) -> bool:
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError.invalid(name, f"Invalid type for '{name}': expected a boolean.")
    return value


def _instructions(fields: dict[str, Any]) -> str | None:
    value = fields.get("instructions")
    if value is not None and not isinstance(value, str):
        raise RequestError.invalid(
            "instructions", "Invalid type for 'instructions': expected a string."
        )
    return value


def _tools(fields: dict[str, Any]) -> list[dict[str, Any]]:
    tools = fields.get("tools") or []
    if not isinstance(tools, list):
        raise RequestError.invalid("tools", "Invalid type for 'tools': expected an array.")
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise RequestError.invalid(f"tools[{index}]", f"Invalid tool at 'tools[{index}]'.")
        if tool["type"] == "function" and not isinstance(tool.get("name"), str):
            raise RequestError(
                400,
                "missing_required_parameter",
                f"Missing required parameter: 'tools[{index}].name'.",
                f"tools[{index}].name",
            )
    return tools


def _tool_choice(fields: dict[str, Any]) -> Any:
    choice = fields.get("tool_choice") or "auto"
    if isinstance(choice, str) and choice not in TOOL_CHOICES:
        raise RequestError.invalid(
            "tool_choice", f"Invalid 'tool_choice': expected one of {', '.join(TOOL_CHOICES)}."
        )
    return choice


def _metadata(fields: dict[str, Any]) -> dict[str, Any]:
    metadata = fields.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise RequestError.invalid("metadata", "Invalid type for 'metadata': expected an object.")
    return metadata


def _max_output_tokens(fields: dict[str, Any]) -> int | None:
    value = fields.get("max_output_tokens")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 16:
        raise RequestError.invalid(
            "max_output_tokens", "Invalid 'max_output_tokens': expected an integer >= 16."
        )
    return value


def claim_lane(named: set[str], lane: str | None, limit: int) -> None:
    """Count a named lane (``stream_id``) of a connection, refusing more than ``limit``."""
    if lane is None or lane in named:
        return
    if len(named) >= limit:
        raise RequestError(
            400,
            "websocket_stream_limit_reached",
            f"This connection already has {limit} named streams; open another connection for more.",
            "stream_id",
        )
    named.add(lane)
