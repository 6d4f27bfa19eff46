"""Answer one function call: validate its arguments, then run, mock or ask a person.

Whatever goes wrong becomes the tool's output (text the model reads and can act on), never an
exception out of the run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from agents.models import Tool
from agents.tools.builtins import BUILTINS, ToolError
from agents.tools.schemas import TooSlow, depth_message, errors, safety_problem, too_deep

log = logging.getLogger(__name__)

PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
DECLINED = "The user declined to run this tool."

AskHuman = Callable[[str], Awaitable[str]]  # kind ("output" or "approval") -> answer


def schema_problem(schema: object) -> str | None:
    """Why ``schema`` is not a usable JSON Schema for a tool's parameters, or None."""
    if not isinstance(schema, dict):
        return "The parameters must be a JSON object (a JSON Schema)."
    if too_deep(schema, settings.TOOL_SCHEMA_MAX_DEPTH):  # before jsonschema recurses into it
        return depth_message("The parameters are")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "the top level"
        return f"Not a valid JSON Schema at {where}: {exc.message}"
    if schema.get("type", "object") != "object":
        return 'Tool parameters must be an object schema ("type": "object").'
    return safety_problem(schema)


def parse_arguments(tool: Tool, raw: str) -> dict[str, Any]:
    """The call's arguments, checked against the tool's schema; a ToolError says what is wrong.

    Bounded whatever the schema and the arguments: see ``agents.tools.schemas``.
    """
    limit = settings.TOOL_ARGUMENTS_LIMIT
    if len(raw) > limit:
        raise ToolError(f"The arguments ({len(raw)} characters) are over the limit of {limit}.")
    try:
        arguments = json.loads(raw or "{}")
    except ValueError:
        raise ToolError(f"The arguments are not valid JSON: {raw[:200]!r}.") from None
    except RecursionError:
        raise ToolError(depth_message("The arguments are")) from None
    if not isinstance(arguments, dict):
        raise ToolError("The arguments must be a JSON object.")
    if too_deep(arguments, settings.TOOL_SCHEMA_MAX_DEPTH):
        raise ToolError(depth_message("The arguments are"))
    schema = tool.parameters or {}
    # A tool saved before these checks (or imported) is checked again here, sizes aside.
    problem = safety_problem(schema, sizes=False)
    if problem:
        raise ToolError(f"The tool's schema cannot be checked on this server: {problem}")
    try:
        found = errors(schema, arguments)
    except TooSlow:
        timeout = settings.TOOL_VALIDATION_TIMEOUT_SECONDS
        raise ToolError(
            f"Checking the arguments against the tool's schema took longer than {timeout:g} s; "
            "the tool's schema needs simplifying (fewer anyOf/oneOf over $ref)."
        ) from None
    except RecursionError:
        raise ToolError("The tool's schema refers to itself without end ($ref).") from None
    if found:
        first = found[0]
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
        # In a worker thread: the event loop keeps serving everyone else meanwhile.
        arguments = await asyncio.to_thread(parse_arguments, tool, raw_arguments)
        if tool.requires_approval and await ask("approval") != "yes":
            return DECLINED
        output = await _run(tool, arguments, session_id, ask)
    except ToolError as exc:
        return f"Error: {exc}"
    except Exception as exc:
        # A bug in a tool must still answer its call, or the transcript is invalid upstream.
        log.exception("Tool %r of session %s failed", tool.name, session_id)
        return f"Error: the tool failed unexpectedly ({type(exc).__name__}); try something else."
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
