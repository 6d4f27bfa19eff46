"""Export a session to its JSON file and import it back as a new session of the importer."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient

from agents.models import Item, Session, Step, Tool
from agents.run.tree import Branch, branch
from playground import exchange
from playground.access import browser_key_hash
from tests.simserver import SimServer
from tests.tabs import new_browser, new_session
from tests.test_agent_loop import research_session, run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

UseUpstream = Callable[[SimServer], SimServer]


def browser_client(browser: str) -> AsyncClient:
    client = AsyncClient()
    client.cookies["sessionid"] = browser
    return client


async def export(browser: str, session: Session) -> dict[str, Any]:
    response = await browser_client(browser).get(f"/sessions/{session.pk}/export/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="session-{session.pk}.json"'
    data: dict[str, Any] = json.loads(response.content)
    return data


async def upload(browser: str, content: bytes) -> Any:
    file = SimpleUploadedFile("session.json", content, content_type="application/json")
    return await browser_client(browser).post("/sessions/import/", {"file": file})


async def imported_session(response: Any) -> Session:
    assert response.status_code == 302, response.content.decode()
    match = re.fullmatch(r"/sessions/([0-9a-f-]{36})/", response["Location"])
    assert match, response["Location"]
    return await Session.objects.aget(pk=match.group(1))


def without_time(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key != "exported"}


def minimal(**overrides: Any) -> dict[str, Any]:
    """A small valid file; in version 2, an item given without a parent gets ``null`` (a first
    message), as version 2 requires one."""
    data: dict[str, Any] = {
        "format": exchange.FORMAT,
        "version": exchange.VERSION,
        "session": {"title": "Imported", "model": "sim"},
        "tools": [],
        "steps": [],
        "items": [
            {"position": 0, "data": {"type": "message", "role": "user", "content": "hi"}},
        ],
    }
    data.update(overrides)
    if data["version"] == 2 and isinstance(data["items"], list):
        data["items"] = [
            {"parent": None, **item} if isinstance(item, dict) else item for item in data["items"]
        ]
    return data


async def test_a_20_step_session_round_trips_with_identical_transcript_and_settings(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    use_upstream(start_sim("--seed", "5"))
    session, browser = await research_session(
        20, title="Tides", instructions="Be brief.", store=True
    )
    await run(session, browser, "/research 20 tide tables of the Atlantic coast")
    data = await export(browser, session)
    assert (data["format"], data["version"]) == ("agent-playground.session", 2)
    assert len(data["steps"]) == 22  # the warm-up and 21 model steps
    assert sum(1 for item in data["items"] if item["data"]["type"] == "function_call") == 20
    assert data["tools"][0]["mock_output"].startswith("Notes on {{query}}")
    # One run is one line: each item follows the one before it, and the newest line is shown.
    positions = [item["position"] for item in data["items"]]
    assert [item["parent"] for item in data["items"]] == [None, *positions[:-1]]

    importer = await new_browser()
    copy = await imported_session(await upload(importer, json.dumps(data).encode()))
    assert copy.pk != session.pk
    assert (copy.owner_id, copy.browser_key) == (None, browser_key_hash(importer))
    # Exported again, the copy is the same file: items (data, status, in_context, position and
    # step), tools with every field, settings, and every step's metrics.
    assert without_time(await export(importer, copy)) == without_time(data)
    originals = [i async for i in Item.objects.filter(session=session).order_by("position")]
    copied = Item.objects.filter(session=copy).select_related("step").order_by("position")
    copies = [i async for i in copied]
    assert [(i.position, i.data, i.status, i.in_context) for i in copies] == [
        (i.position, i.data, i.status, i.in_context) for i in originals
    ]
    assert all(i.step is None or i.step.session_id == copy.pk for i in copies)
    assert await Step.objects.filter(session=copy).acount() == 22
    # Nobody else sees the copy; its owner does.
    assert (await browser_client(browser).get(f"/sessions/{copy.pk}/")).status_code == 404
    assert (await browser_client(importer).get(f"/sessions/{copy.pk}/")).status_code == 200


async def test_a_logged_in_user_owns_the_import(django_user_model: Any) -> None:
    user = await django_user_model.objects.acreate_user(username="ada", password="pw-ada-123")
    client = AsyncClient()
    await client.aforce_login(user)
    file = SimpleUploadedFile("s.json", json.dumps(minimal()).encode())
    copy = await imported_session(await client.post("/sessions/import/", {"file": file}))
    assert copy.owner_id == user.pk
    assert copy.browser_key == ""


async def test_a_pinned_session_is_exported_and_imported_pinned() -> None:
    browser = await new_browser()
    session = await new_session(browser, title="Tides", pinned=True)
    data = await export(browser, session)
    assert data["session"]["pinned"] is True
    copy = await imported_session(await upload(browser, json.dumps(data).encode()))
    assert copy.pinned
    # A file from before pins existed imports unpinned.
    old = await imported_session(await upload(browser, json.dumps(minimal()).encode()))
    assert not old.pinned


async def test_only_the_owner_can_export() -> None:
    browser = await new_browser()
    session = await new_session(browser)
    stranger = await new_browser()
    response = await browser_client(stranger).get(f"/sessions/{session.pk}/export/")
    assert response.status_code == 404


BAD_FILES: list[tuple[bytes, int, str]] = [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b"[1, 2]", 400, "must hold a JSON object"),
    (json.dumps(minimal(format="other")).encode(), 422, "Not a session export"),
    (json.dumps(minimal(version=3)).encode(), 422, "this server reads versions 1 and 2"),
    (json.dumps(minimal(version="2")).encode(), 422, "this server reads versions 1 and 2"),
    (json.dumps(minimal(version=True)).encode(), 422, "this server reads versions 1 and 2"),
    (json.dumps(minimal(session={"title": "x", "model": ""})).encode(), 422, "session.model"),
    (json.dumps(minimal(session={"id": "x", "model": "m"})).encode(), 422, "unknown field 'id'"),
    (
        json.dumps(minimal(session={"model": "m", "transport": "pigeon"})).encode(),
        422,
        "session.transport",
    ),
    (
        json.dumps(minimal(session={"model": "m", "max_steps": 0})).encode(),
        422,
        "session.max_steps",
    ),
    (json.dumps(minimal(tools={"a": 1})).encode(), 422, "tools: must be a list"),
    (
        json.dumps(minimal(tools=[{"name": "bad name!"}])).encode(),
        422,
        "tools[0].name",
    ),
    (
        json.dumps(minimal(tools=[{"name": "t", "parameters": {"type": "string"}}])).encode(),
        422,
        "tools[0].parameters",
    ),
    (
        json.dumps(minimal(tools=[{"name": "t", "mode": "builtin", "builtin": "rm"}])).encode(),
        422,
        "tools[0].builtin",
    ),
    (json.dumps(minimal(tools=[{"name": "t"}, {"name": "t"}])).encode(), 422, "same name"),
    (
        json.dumps(
            minimal(items=[{"position": 0, "data": {"type": "message"}, "step": 0}])
        ).encode(),
        422,
        "items[0].step",
    ),
    (
        json.dumps(minimal(items=[{"position": -1, "data": {"type": "message"}}])).encode(),
        422,
        "items[0].position",
    ),
    (
        json.dumps(
            minimal(items=[{"position": 0, "data": {"type": "x"}, "status": "odd"}])
        ).encode(),
        422,
        "items[0].status",
    ),
    (json.dumps(minimal(items=[{"position": 0, "data": []}])).encode(), 422, "items[0].data"),
    (
        json.dumps(
            minimal(
                items=[{"position": 1, "data": {"type": "a"}}, {"position": 1, "data": {"b": 1}}]
            )
        ).encode(),
        422,
        "same position",
    ),
    (json.dumps(minimal(steps=[{"mode": "turbo"}])).encode(), 422, "steps[0].mode"),
]


def with_item(data: dict[str, Any]) -> bytes:
    return json.dumps(minimal(items=[{"position": 0, "data": data}])).encode()


def with_step(**fields: Any) -> bytes:
    step = {"mode": "create", "socket": "fresh", "status": "completed", **fields}
    return json.dumps(minimal(steps=[step])).encode()


# Files that once imported and then broke the page (500), or showed nonsense (issue 11).
INVALID_FIELDS: list[tuple[bytes, int, str]] = [
    (with_item({"type": "message", "role": "user", "content": [1, 2]}), 422, "items[0].data"),
    (with_item({"type": "message", "content": {"a": 1}}), 422, "items[0].data.content"),
    (with_item({"role": "user", "content": [{"text": 5}]}), 422, "items[0].data.content"),
    (with_item({"type": "function_call", "arguments": {}}), 422, "items[0].data.arguments"),
    (with_item({"type": 7}), 422, "items[0].data.type"),
    (with_step(duration_ms=12.5).replace(b"12.5", b"NaN"), 422, "steps[0].duration_ms"),
    (with_step(duration_ms=12.5).replace(b"12.5", b"Infinity"), 422, "steps[0].duration_ms"),
    (with_step(duration_ms=12.5).replace(b"12.5", b"1e400"), 422, "steps[0].duration_ms"),
    (with_step(ttft_ms="fast"), 422, "steps[0].ttft_ms"),
    (with_step(input_tokens=2**40), 422, "steps[0].input_tokens"),
    (with_step(retries=True), 422, "steps[0].retries"),
    (json.dumps(minimal(session={"title": {"a": 1}, "model": "m"})).encode(), 422, "session.title"),
    (json.dumps(minimal(session={"model": "m", "store": "yes"})).encode(), 422, "session.store"),
    (json.dumps(minimal(session={"title": "t"})).encode(), 422, "session: the field 'model'"),
    (json.dumps(minimal(tools=[{"name": "t", "strict": 1}])).encode(), 422, "tools[0].strict"),
    (json.dumps(minimal(items=[{"position": 0}])).encode(), 422, "items[0]: the field 'data'"),
    # A lone surrogate (the JSON escape \ud800) anywhere: the page could never be sent again.
    (
        json.dumps(minimal(session={"title": "a \ud800", "model": "m"})).encode(),
        422,
        "session.title: the text is not valid Unicode",
    ),
    (
        with_item({"type": "message", "content": "hi \udc00"}),
        422,
        "items[0].data.content: the text is not valid Unicode",
    ),
    (
        with_item({"type": "message", "content": "hi", "\ud800": 1}),
        422,
        "a field name is not valid Unicode",
    ),
    # Deep nesting: a RecursionError in the parser answered 500.
    (
        b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        400,
        "deeper than 64 levels: it is not a session export",
    ),
]


def message(position: int, parent: Any = None) -> dict[str, Any]:
    return {"position": position, "parent": parent, "data": {"role": "user", "content": "hi"}}


def tree_file(items: list[dict[str, Any]], head: Any = None, **overrides: Any) -> bytes:
    session = {"title": "Tree", "model": "sim", "head": head}
    return json.dumps(minimal(session=session, items=items, **overrides)).encode()


def version_1(**overrides: Any) -> bytes:
    return json.dumps(minimal(version=1, **overrides)).encode()


RULE = "must be null or the position of an item with a lower position."
# A transcript tree from a hostile file: every parent is an older item of the file, so that a
# branch always ends at a root (no cycle, no dangling link), and the head is one of its items.
BAD_TREES: list[tuple[bytes, int, str]] = [
    (
        tree_file([message(0), message(1, 1)]),
        422,
        f"items[1].parent: an item cannot follow itself; {RULE}",
    ),
    (
        tree_file([message(0), message(1, 2), message(2, 0)]),
        422,
        f"items[1].parent: 2 is not lower than the item's position 1; {RULE}",
    ),
    # Each follows the other: refused as a forward link, so no cycle gets in.
    (
        tree_file([message(0, 1), message(1, 0)]),
        422,
        f"items[0].parent: 1 is not lower than the item's position 0; {RULE}",
    ),
    (
        tree_file([message(0), message(5, 3)]),
        422,
        f"items[1].parent: no item has position 3; {RULE}",
    ),
    (
        tree_file([message(0), message(1, "0")]),
        422,
        "items[1].parent: must be null (a first message), or the position of the item",
    ),
    (tree_file([message(0), message(1, -1)]), 422, "items[1].parent: must be null"),
    (tree_file([message(0), message(1, True)]), 422, "items[1].parent: must be null"),
    (
        tree_file([message(0), message(1, 0)], head=7),
        422,
        "session.head: no item has position 7; must be null or the position of an item.",
    ),
    (tree_file([], head=0), 422, "session.head: no item has position 0"),
    (tree_file([message(0)], head="0"), 422, "session.head: must be null (the newest line)"),
    (with_step(route="teleport"), 422, "steps[0].route: must be one of"),
    (with_step(lane="x" * 41), 422, "steps[0].lane: must have at most 40 characters."),
    (with_step(stored="yes"), 422, "steps[0].stored: must be true or false."),
    # Version 2 items say where they are in the tree: left out, each would be a first message.
    (
        json.dumps({**minimal(), "items": [{"position": 0, "data": {"type": "message"}}]}).encode(),
        422,
        "items[0]: the field 'parent' is required.",
    ),
    # Version 1 had no tree: its files carry none of version 2's fields.
    (
        version_1(items=[message(0), message(1, 0)]),
        422,
        "items[0]: unknown field 'parent' (new in version 2; this file says version 1).",
    ),
    (
        version_1(session={"model": "sim", "head": None}),
        422,
        "session: unknown field 'head' (new in version 2",
    ),
    (
        version_1(steps=[{"mode": "warm", "socket": "fresh", "status": "ok", "lane": "b2"}]),
        422,
        "steps[0]: unknown field 'lane' (new in version 2",
    ),
]


@pytest.mark.parametrize(("content", "status", "message"), BAD_FILES + INVALID_FIELDS + BAD_TREES)
async def test_a_bad_file_is_refused_with_the_reason_and_creates_nothing(
    content: bytes, status: int, message: str
) -> None:
    browser = await new_browser()
    response = await upload(browser, content)
    assert response.status_code == status
    assert message in html.unescape(response.content.decode())
    assert not await Session.objects.aexists()
    assert not await Tool.objects.aexists()
    assert not await Step.objects.aexists()
    assert not await Item.objects.aexists()


async def test_a_file_over_the_size_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange, "MAX_BYTES", 100)
    response = await upload(await new_browser(), json.dumps(minimal()).encode() + b" " * 100)
    assert response.status_code == 400
    assert "larger than" in response.content.decode()
    assert not await Session.objects.aexists()


async def test_no_file_is_a_clear_error() -> None:
    response = await browser_client(await new_browser()).post("/sessions/import/", {})
    assert response.status_code == 400
    assert "Choose a session file" in response.content.decode()


def test_parse_links_items_to_steps_by_index_never_by_id() -> None:
    data = minimal(
        steps=[{"mode": "warm", "socket": "fresh", "status": "completed", "ttft_ms": None}],
        items=[{"position": 4, "data": {"type": "message"}, "step": 0, "in_context": False}],
    )
    imported = exchange.parse(json.dumps(data).encode())
    assert imported.session.pk is not None  # a fresh UUID of its own, not one from the file
    ((item, index),), (step,) = imported.items, imported.steps
    assert (item.position, item.in_context, index) == (4, False, 0)
    assert step._state.adding  # unsaved: no id until the import saves it
    assert (step.mode, step.ttft_ms) == ("warm", None)


SCHEMA = Path(exchange.__file__).parent / "schemas" / "session-export.schema.json"


async def test_an_export_validates_against_the_published_schema_and_imports_back(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    session, browser = await research_session(3, title="Tides", instructions="Be brief.")
    await run(session, browser, "/research 3 tide tables")
    await Tool.objects.acreate(session=session, name="ask", mode=Tool.Mode.MANUAL)
    data = await export(browser, session)
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)
    assert data["steps"]
    assert {item["data"]["type"] for item in data["items"]} >= {"message", "function_call"}
    importer = await new_browser()
    copy = await imported_session(await upload(importer, json.dumps(data).encode()))
    page = await browser_client(importer).get(f"/sessions/{copy.pk}/")
    assert page.status_code == 200
    assert "tide tables" in page.content.decode()


async def test_content_parts_and_odd_item_types_still_import_and_render() -> None:
    items = [
        {"position": 0, "parent": None, "data": {"role": "user", "content": "no type: a message"}},
        {
            "position": 1,
            "parent": 0,
            "data": {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "**parts**", "annotations": []}],
            },
        },
        {"position": 2, "parent": 1, "data": {"type": "reasoning", "summary": [{"text": "hm"}]}},
        {
            "position": 3,
            "parent": 2,
            "data": {"type": "function_call_output", "call_id": "c", "output": "ok"},
        },
    ]
    browser = await new_browser()
    copy = await imported_session(await upload(browser, json.dumps(minimal(items=items)).encode()))
    page = await browser_client(browser).get(f"/sessions/{copy.pk}/")
    assert page.status_code == 200
    assert "<strong>parts</strong>" in page.content.decode()


# -- the transcript tree (version 2) -------------------------------------------------------------


def said(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]}


async def tree_session(browser: str) -> Session:
    """A session whose first answer was followed by a question, then that question edited:
    two branches off item 1, the older one shown (head 2)."""
    origin = await new_session(browser, title="Origin")
    session = await new_session(browser, title="Tides", forked_from=origin, head=2)
    first = await Step.objects.acreate(
        session=session, mode="create", socket="fresh", status="completed", route="full"
    )
    second = await Step.objects.acreate(
        session=session,
        response_id="resp_3",
        previous_response_id="resp_1",
        mode="delta",
        socket="reused",
        status="completed",
        route="delta",
        stored=True,
    )
    third = await Step.objects.acreate(
        session=session,
        response_id="resp_5",
        previous_response_id="resp_1",
        mode="create",
        socket="reused",
        status="completed",
        route="stored",
        lane="b4",
        stored=True,
    )
    rows = [
        (0, None, said("user", "a"), None),
        (1, 0, said("assistant", "reply to a"), first),
        (2, 1, said("user", "b"), None),
        (3, 2, said("assistant", "reply to b"), second),
        (4, 1, said("user", "b edited"), None),
        (5, 4, said("assistant", "reply to b edited"), third),
    ]
    for position, parent, data, step in rows:
        await Item.objects.acreate(
            session=session, position=position, parent=parent, data=data, step=step
        )
    return session


async def items_of(session: Session) -> list[tuple[Any, ...]]:
    rows = Item.objects.filter(session=session).select_related("step").order_by("position")
    return [
        (i.position, i.parent, i.data, i.status, i.in_context, i.step and i.step.response_id)
        async for i in rows
    ]


async def branch_of(session: Session) -> Branch:
    links = Item.objects.filter(session=session).values_list("position", "parent")
    return branch([link async for link in links], session.head)


async def test_a_tree_with_two_branches_round_trips_with_its_head() -> None:
    browser = await new_browser()
    session = await tree_session(browser)
    data = await export(browser, session)
    assert data["version"] == 2
    assert data["session"]["head"] == 2
    assert "forked_from" not in data["session"]
    assert [(i["position"], i["parent"]) for i in data["items"]] == [
        (0, None),
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 1),
        (5, 4),
    ]
    assert [(s["route"], s["lane"], s["stored"]) for s in data["steps"]] == [
        ("full", "", False),
        ("delta", "", True),
        ("stored", "b4", True),
    ]
    jsonschema.validate(data, json.loads(SCHEMA.read_text()), cls=jsonschema.Draft202012Validator)

    importer = await new_browser()
    copy = await imported_session(await upload(importer, json.dumps(data).encode()))
    assert copy.head == 2
    assert copy.forked_from_id is None  # the file links to no session: the copy stands alone
    assert await items_of(copy) == await items_of(session)
    fields = ("response_id", "previous_response_id", "mode", "route", "lane", "stored")
    steps = Step.objects.order_by("id").values_list(*fields)
    assert [s async for s in steps.filter(session=copy)] == [
        s async for s in steps.filter(session=session)
    ]
    # The same branch is shown, with the same forks: 0, 1, then the older question 2 and its
    # answer; 2 and 4 are the two versions of the question.
    shown = await branch_of(copy)
    assert shown == await branch_of(session)
    assert shown.path == (0, 1, 2, 3)
    assert shown.forks == {2: (2, 4)}
    assert without_time(await export(importer, copy)) == without_time(data)


async def test_a_version_1_file_imports_as_one_line() -> None:
    """Files from before branches: each item follows the one before it by position, whatever
    the order in the file and however far apart the positions are."""
    items = [
        {"position": 7, "data": said("assistant", "three")},
        {"position": 0, "data": said("user", "one")},
        {"position": 3, "data": said("assistant", "two"), "in_context": False},
    ]
    step = {"mode": "create", "socket": "fresh", "status": "completed", "duration_ms": 5}
    browser = await new_browser()
    copy = await imported_session(await upload(browser, version_1(items=items, steps=[step])))
    assert copy.head is None
    links = Item.objects.filter(session=copy).order_by("position").values_list("position", "parent")
    assert [link async for link in links] == [(0, None), (3, 0), (7, 3)]
    assert (await branch_of(copy)).path == (0, 3, 7)
    imported = await Step.objects.aget(session=copy)
    assert (imported.route, imported.lane, imported.stored) == ("", "", False)
    # Exported again, it is a version 2 file of the same line.
    data = await export(browser, copy)
    assert data["version"] == 2
    assert [(i["position"], i["parent"]) for i in data["items"]] == [(0, None), (3, 0), (7, 3)]
    assert data["session"]["head"] is None


def test_parse_reads_parents_and_head_of_a_version_2_file() -> None:
    imported = exchange.parse(tree_file([message(0), message(1, 0), message(2, 0)], head=1))
    assert imported.session.head == 1
    assert [(item.position, item.parent) for item, _ in imported.items] == [
        (0, None),
        (1, 0),
        (2, 0),
    ]
