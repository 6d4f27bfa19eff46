"""Answer one function call: validate its arguments, then run, mock or ask a person.

Whatever goes wrong becomes the tool's output (text the model reads and can act on), never an
exception out of the run.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from agents.models import Tool
from agents.tools.builtins import BUILTINS, ToolError

PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
DECLINED = "The user declined to run this tool."

AskHuman = Callable[[str], Awaitable[str]]  # kind ("output" or "approval") -> answer


def schema_problem(schema: object) -> str | None:
    """Why ``schema`` is not a usable JSON Schema for a tool's parameters, or None."""
    if not isinstance(schema, dict):
        return "The parameters must be a JSON object (a JSON Schema)."
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "the top level"
        return f"Not a valid JSON Schema at {where}: {exc.message}"
    if schema.get("type", "object") != "object":
        return 'Tool parameters must be an object schema ("type": "object").'
    return None


def parse_arguments(tool: Tool, raw: str) -> dict[str, Any]:
    """The call's arguments, checked against the tool's schema; a ToolError says what is wrong."""
    try:
        arguments = json.loads(raw or "{}")
    except ValueError:
        raise ToolError(f"The arguments are not valid JSON: {raw[:200]!r}.") from None
    if not isinstance(arguments, dict):
        raise ToolError("The arguments must be a JSON object.")
    errors = sorted(Draft202012Validator(tool.parameters or {}).iter_errors(arguments), key=str)
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "the arguments"
        raise ToolError(f"The arguments do not match the tool's schema at {where}: {first.message}")
    return arguments


def render_mock(template: str, arguments: dict[str, Any]) -> str:
    """The canned output with ``{{name}}`` replaced by the call's argument of that name."""

    def value(match: re.Match[str]) -> str:
        found = arguments.get(match.group(1), "")
        return found if isinstance(found, str) else json.dumps(found)

    return PLACEHOLDER_RE.sub(value, template)


async def answer(tool: Tool | None, raw_arguments: str, session_id: str, ask: AskHuman) -> str:
    """The function call's output, as text for the model."""
    if tool is None:
        return "Error: there is no tool of that name in this session."
    try:
        arguments = parse_arguments(tool, raw_arguments)
        if tool.requires_approval and await ask("approval") != "yes":
            return DECLINED
        output = await _run(tool, arguments, session_id, ask)
    except ToolError as exc:
        return f"Error: {exc}"
    limit = settings.TOOL_OUTPUT_LIMIT
    if len(output) > limit:
        return f"Error: the tool's output ({len(output)} characters) is over the limit of {limit}."
    return output


async def _run(tool: Tool, arguments: dict[str, Any], session_id: str, ask: AskHuman) -> str:
    if tool.mode == Tool.Mode.MOCK:
        return render_mock(tool.mock_output, arguments)
    if tool.mode == Tool.Mode.MANUAL:
        return await ask("output")
    builtin = BUILTINS.get(tool.builtin)
    if builtin is None:
        raise ToolError(f"The built-in {tool.builtin!r} does not exist on this server.")
    timeout = settings.TOOL_TIMEOUT_SECONDS
    try:
        async with asyncio.timeout(timeout):
            return await builtin.run(session_id, arguments)
    except TimeoutError:
        raise ToolError(f"The tool took longer than {timeout:g} s.") from None
