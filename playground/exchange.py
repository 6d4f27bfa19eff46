"""Export a session as a JSON file, and import such a file as a new session.

The file (documented in docs/sharing-and-inspector.md)::

    {"format": "agent-playground.session", "version": 2, "exported": "<ISO 8601 time>",
     "session": {<settings>, "head"}, "tools": [{...}], "steps": [{...}], "items": [{...}]}

Ids in a file are never trusted, so none are written: an item names its step by the step's
index in ``steps``, and the item it follows (``parent``, the transcript being a tree: see
``agents/run/tree.py``) by that item's position, as the session names its ``head``. Version 1
files (before branches: no ``parent``, ``head``, or a step's ``route``, ``lane``, ``stored``)
still import, as one line: each item follows the one before it by position.

An import validates everything before it writes anything, then creates a new session, owned
by the importer, in one transaction (linked to no other session: ``forked_from`` is not
exported). The format is published as a JSON Schema (``schemas/session-export.schema.json``);
a file is checked against it, then against what a schema cannot say (finite numbers, Unicode
text, step indexes, unique names, parents and head that are items' positions), then by the
models' own fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from agents.models import Item, Session, Step, Tool
from agents.tools.builtins import BUILTINS
from agents.tools.executor import schema_problem
from playground import jsonsafe
from playground.exchange_schema import first_violation

FORMAT = "agent-playground.session"
VERSION = 2
VERSIONS = (1, 2)  # the versions parse() reads
MAX_BYTES = 10 * 1024 * 1024
SESSION_FIELDS = (
    "title",
    "model",
    "instructions",
    "store",
    "transport",
    "max_steps",
    "pinned",
    "head",
)
TOOL_FIELDS = (
    "name",
    "description",
    "parameters",
    "strict",
    "mode",
    "builtin",
    "mock_output",
    "requires_approval",
)
STEP_FIELDS = (
    "response_id",
    "previous_response_id",
    "mode",
    "socket",
    "status",
    "bytes_sent",
    "ttft_ms",
    "duration_ms",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "retries",
    "route",
    "lane",
    "stored",
    "tool_ms",
    "turn_position",
    "started_ms",
)
ITEM_FIELDS = ("position", "parent", "data", "status", "in_context")
# Fields that version 1 did not have: in a version 1 file they are unknown fields.
NEW_IN_2 = {"session": ("head",), "steps": ("route", "lane", "stored"), "items": ("parent",)}


class ExchangeError(Exception):
    """A file that cannot be imported: the HTTP status to answer and what to fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Imported:
    """A validated file: unsaved records, each item with the index of its step (or None)."""

    session: Session
    tools: list[Tool]
    steps: list[Step]
    items: list[tuple[Item, int | None]]


# -- export --------------------------------------------------------------------------------------


def export_data(
    session: Session, tools: list[Tool], steps: list[Step], items: list[Item]
) -> dict[str, Any]:
    index = {step.pk: number for number, step in enumerate(steps)}
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported": timezone.now().isoformat(),
        "session": _fields(session, SESSION_FIELDS),
        "tools": [_fields(tool, TOOL_FIELDS) for tool in tools],
        "steps": [_fields(step, STEP_FIELDS) for step in steps],
        "items": [
            {**_fields(item, ITEM_FIELDS), "step": _step_index(index, item)} for item in items
        ],
    }


def _step_index(index: dict[int, int], item: Item) -> int | None:
    return index.get(item.step_id) if item.step_id is not None else None


def _fields(record: models.Model, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(record, name) for name in names}


async def export_session(session: Session) -> dict[str, Any]:
    tools = [tool async for tool in Tool.objects.filter(session=session).order_by("name")]
    steps = [step async for step in Step.objects.filter(session=session).order_by("id")]
    items = [item async for item in Item.objects.filter(session=session).order_by("position")]
    return export_data(session, tools, steps, items)


# -- import --------------------------------------------------------------------------------------


def parse(raw: bytes) -> Imported:
    """Validate a file; :class:`ExchangeError` says what is wrong (400: not a session file's
    JSON at all; 422: the right kind of file with invalid contents)."""
    if len(raw) > MAX_BYTES:
        raise ExchangeError(400, f"The file is larger than {MAX_BYTES // (1024 * 1024)} MiB.")
    try:
        # NaN and Infinity are parsed, to be refused below with the field that holds them.
        data = jsonsafe.loads(raw, constants=True)
    except jsonsafe.JsonError as error:
        if error.code == "too_deep":
            limit = settings.MAX_JSON_DEPTH
            message = f"The file nests arrays and objects deeper than {limit} levels: it is not "
            raise ExchangeError(400, message + "a session export.") from None
        raise ExchangeError(400, f"The file is not valid JSON: {error.message}.") from None
    if not isinstance(data, dict):
        raise ExchangeError(400, "The file must hold a JSON object.")
    if data.get("format") != FORMAT:
        raise ExchangeError(422, f'Not a session export: "format" must be "{FORMAT}".')
    version = data.get("version")
    if type(version) is not int or version not in VERSIONS:
        read = " and ".join(str(number) for number in VERSIONS)
        raise ExchangeError(422, f'Unsupported "version": this server reads versions {read}.')
    problem = jsonsafe.problem(data)
    if problem:
        raise ExchangeError(422, problem)
    invalid = first_violation(data)
    if invalid is not None:
        raise ExchangeError(422, invalid)
    if version == 1:
        _refuse_new_fields(data)
    session = _record(Session, _object(data.get("session"), "session", SESSION_FIELDS), "session")
    tools = [_tool(entry, n) for n, entry in enumerate(_list(data, "tools"))]
    names = [tool.name for tool in tools]
    if len(set(names)) != len(names):
        raise ExchangeError(422, "tools: two tools have the same name; rename one.")
    steps = [
        _record(Step, _object(entry, f"steps[{n}]", STEP_FIELDS), f"steps[{n}]")
        for n, entry in enumerate(_list(data, "steps"))
    ]
    items = [_item(entry, n, len(steps)) for n, entry in enumerate(_list(data, "items"))]
    positions = [item.position for item, _ in items]
    if len(set(positions)) != len(positions):
        raise ExchangeError(422, "items: two items have the same position.")
    if version == 1:
        _link_in_order([item for item, _ in items])
    else:
        _check_links([item for item, _ in items])
    if session.head is not None and session.head not in set(positions):
        message = f"no item has position {session.head}; must be null or the position of an item."
        raise ExchangeError(422, f"session.head: {message}")
    return Imported(session, tools, steps, items)


def _refuse_new_fields(data: dict[str, Any]) -> None:
    """A version 1 file has none of version 2's fields (the schema, shared, allows them). Runs
    after the schema: the session is an object, steps and items are lists."""
    entries: list[tuple[str, Any, tuple[str, ...]]] = [
        ("session", data["session"], NEW_IN_2["session"])
    ]
    for key in ("steps", "items"):
        entries += [
            (f"{key}[{n}]", entry, NEW_IN_2[key]) for n, entry in enumerate(data.get(key, []))
        ]
    for where, entry, names in entries:
        found = next((name for name in names if name in entry), None)
        if found is not None:
            message = f"unknown field {found!r} (new in version 2; this file says version 1)"
            raise ExchangeError(422, f"{where}: {message}.")


def _link_in_order(items: list[Item]) -> None:
    """Version 1: the transcript was one line, each item following the one before it."""
    previous: int | None = None
    for item in sorted(items, key=lambda item: item.position):
        item.parent = previous
        previous = item.position


def _check_links(items: list[Item]) -> None:
    """Each parent is the position of an older item (a lower position) in the file: so there
    is no cycle, and every branch reaches a root."""
    positions = {item.position for item in items}
    for number, item in enumerate(items):
        parent = item.parent
        if parent is None:
            continue
        if parent == item.position:
            problem = "an item cannot follow itself"
        elif parent > item.position:
            problem = f"{parent} is not lower than the item's position {item.position}"
        elif parent not in positions:
            problem = f"no item has position {parent}"
        else:
            continue
        rule = "must be null or the position of an item with a lower position"
        raise ExchangeError(422, f"items[{number}].parent: {problem}; {rule}.")


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ExchangeError(422, f'"{key}" must be a list.')
    return value


def _object(value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ExchangeError(422, f"{where} must be an object.")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ExchangeError(422, f"{where}: unknown field {unknown[0]!r}.")
    return value


def _record[M: models.Model](model: type[M], fields: dict[str, Any], where: str) -> M:
    """An unsaved record from ``fields``, converted and validated by the model's own fields."""
    record = model(**fields)
    skip = {"id", "session", "step", "owner", "browser_key", "fence"}
    for field in model._meta.concrete_fields:
        # Django's clean calls a nullable field's None blank; JSON came from JSON: both are
        # checked where they matter (an item's data, a tool's parameters).
        if isinstance(field, models.JSONField) or (field.null and fields.get(field.name) is None):
            skip.add(field.name)
    try:
        record.clean_fields(exclude=skip)
    except ValidationError as error:
        name, problems = next(iter(error.message_dict.items()))
        raise ExchangeError(422, f"{where}.{name}: {' '.join(problems)}") from None
    return record


def _tool(entry: Any, number: int) -> Tool:
    where = f"tools[{number}]"
    tool = _record(Tool, _object(entry, where, TOOL_FIELDS), where)
    if not isinstance(tool.parameters, dict):
        raise ExchangeError(422, f"{where}.parameters: must be a JSON Schema object.")
    problem = schema_problem(tool.parameters) if tool.parameters else None
    if problem:
        raise ExchangeError(422, f"{where}.parameters: {problem}")
    if tool.mode == Tool.Mode.BUILTIN and tool.builtin not in BUILTINS:
        raise ExchangeError(422, f"{where}.builtin: no built-in is called {tool.builtin!r}.")
    return tool


def _item(entry: Any, number: int, steps: int) -> tuple[Item, int | None]:
    where = f"items[{number}]"
    fields = dict(_object(entry, where, (*ITEM_FIELDS, "step")))
    step = fields.pop("step", None)
    if step is not None and (
        not isinstance(step, int) or isinstance(step, bool) or not 0 <= step < steps
    ):
        raise ExchangeError(422, f"{where}.step: must be null or the index of one of the steps.")
    if "position" not in fields or "data" not in fields:
        raise ExchangeError(422, f"{where}: an item needs a position and its data.")
    item = _record(Item, fields, where)
    data = item.data
    if not isinstance(data, dict) or not data or not isinstance(data.get("type", ""), str):
        raise ExchangeError(422, f"{where}.data: must be an object in the Responses item shape.")
    return item, step


def save(imported: Imported, owner: Any, browser_key: str) -> Session:
    """Create the new session (for ``owner``, a user, or else the anonymous ``browser_key``)."""
    session = imported.session
    if owner is not None:
        session.owner = owner
    else:
        session.browser_key = browser_key
    with transaction.atomic():
        session.save()
        for tool in imported.tools:
            tool.session = session
        Tool.objects.bulk_create(imported.tools)
        for step in imported.steps:
            step.session = session
            step.save()
        for item, index in imported.items:
            item.session = session
            item.step = imported.steps[index] if index is not None else None
        Item.objects.bulk_create([item for item, _ in imported.items])
    return session
