"""Finishing a run whose process died: what its log holds goes to the database, as interrupted.

The new owner reads the dead owner's in-flight log before replacing it. Items the log shows as
completed but the database lacks are written; items that were still streaming are kept as
interrupted (a message's text stays in the context; an unfinished call does not); every call
left without an output gets an error output, so the transcript stays valid upstream.
"""

from __future__ import annotations

from typing import Any

from agents.live.feed import Snapshot
from agents.live.store import context_store
from agents.models import Item
from agents.run import transcript
from agents.run.events import ItemAdded, ItemDone, ItemStarted, TextDelta
from agents.run.writes import WriteBehind

INTERRUPTED_CALL = "Error: the run was interrupted before this tool answered."


async def recover(
    session_id: str, left: Snapshot | None, writes: WriteBehind, base: int | None = None
) -> int:
    """Write what a dead owner's log holds; the position the new log starts at. ``base``: the
    position after the last item in the database, if read since the fence was raised."""
    if base is None:
        base = await transcript.next_position(session_id)
    if left is None or left.head is None or not left.head.running:
        return base
    head = left.head
    rows = Item.objects.filter(session_id=session_id, position__gte=head.base)
    known = {item.position: item async for item in rows}
    kept: dict[int, Item] = dict(known)
    streaming: dict[str, tuple[str, str, list[str]]] = {}
    for _, event in left.events:
        match event:
            case ItemStarted(key, kind, label):
                streaming[key] = (kind, label, [])
            case TextDelta(key, text) if key in streaming:
                streaming[key][2].append(text)
            case ItemDone(key, item):
                streaming.pop(key, None)
                kept.setdefault(item.position, item)
            case ItemAdded(item):
                kept.setdefault(item.position, item)
    new = [item for position, item in sorted(kept.items()) if position not in known]
    position = max([base - 1, *kept]) + 1
    # What the run wrote follows the run's message in a chain: the rest follows its last item.
    tip = max(kept) if kept else (head.turn if head.turn is not None else base - 1)
    answered = {i.data.get("call_id") for i in kept.values() if i.kind == "function_call_output"}
    for call in [i for i in kept.values() if i.kind == "function_call" and i.in_context]:
        if call.data.get("call_id") not in answered:
            output = {"type": "function_call_output", "call_id": call.data["call_id"]}
            output["output"] = INTERRUPTED_CALL
            new.append(_item(session_id, position, tip, output, Item.Status.COMPLETED, True))
            tip, position = position, position + 1
    for key, (kind, label, parts) in streaming.items():
        data, usable = _partial(key, kind, label, "".join(parts))
        new.append(_item(session_id, position, tip, data, Item.Status.INTERRUPTED, usable))
        tip, position = position, position + 1
    for item in new:
        item.session_id = session_id
        item.step_id = None
        writes.submit(item.save)
    await writes.flush()
    await context_store().update(session_id, running="")
    return position


def _partial(key: str, kind: str, label: str, text: str) -> tuple[dict[str, Any], bool]:
    if kind == "message":
        content = [{"type": "output_text", "text": text}]
        return {"type": "message", "role": "assistant", "content": content}, bool(text)
    # An unfinished call cannot go back upstream: kept for the record only.
    return {"type": kind, "id": key, "name": label, "arguments": text, "call_id": ""}, False


def _item(
    session_id: str,
    position: int,
    parent: int | None,
    data: dict[str, Any],
    status: str,
    usable: bool,
) -> Item:
    return Item(
        session_id=session_id,
        position=position,
        parent=parent if parent is not None and parent >= 0 else None,
        data=data,
        status=status,
        in_context=usable,
    )
