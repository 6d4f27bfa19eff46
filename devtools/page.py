"""A session page as htmx keeps it: the transcript, updated by the socket's out-of-band swaps.

Only the swaps the server sends are modelled, the way htmx's ws extension applies them, in
order: the snapshot's ``#transcript`` replacement, appends to ``#transcript``, text appended to a
live item, and a live item replaced by its finished form. A swap whose target is missing is
ignored, as htmx ignores it, so a gap shows up as missing text, never as an error here.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)([^>]*?)(/?)>")
ATTR_RE = re.compile(r'([a-zA-Z-]+)="([^"]*)"')
VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "wbr", "col", "area", "source"})
BADGE_RE = re.compile(r'<div class="badge">[^<]*</div>')
# Inert markup inside an item (its copy source, its editor): the browser shows none of it.
TEMPLATE_RE = re.compile(r"<template\b.*?</template>", re.DOTALL)
PRE_RE = re.compile(r"<pre>(.*)</pre>", re.DOTALL)
BODY_RE = re.compile(r'<div class="body">(.*)</div>', re.DOTALL)


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    inner: str


def elements(markup: str) -> list[Element]:
    """The top-level elements of a fragment, with their inner HTML."""
    found: list[Element] = []
    depth, start, opened = 0, 0, None
    for match in TAG_RE.finditer(markup):
        closing, tag, attrs, selfclosing = match.groups()
        tag = tag.lower()
        if closing:
            depth -= 1
            if depth == 0 and opened is not None:
                found.append(Element(opened[0], opened[1], markup[start : match.start()]))
                opened = None
        elif tag not in VOID and not selfclosing:
            if depth == 0:
                opened = (tag, dict(ATTR_RE.findall(attrs)))
                start = match.end()
            depth += 1
        elif depth == 0:
            found.append(Element(tag, dict(ATTR_RE.findall(attrs)), ""))
    return found


def plain(markup: str) -> str:
    """Rendered text, whitespace-normalised (markdown's markup and line breaks do not count)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


@dataclass
class Block:
    id: str
    text: str
    status: str = ""


@dataclass
class Page:
    blocks: list[Block] = field(default_factory=list)
    busy: bool | None = None
    frames: int = 0

    def apply(self, frame: str) -> None:
        self.frames += 1
        for element in elements(frame):
            oob = element.attrs.get("hx-swap-oob", "")
            element_id = element.attrs.get("id", "")
            if element_id == "transcript" and oob == "true":
                self.blocks = [b for b in map(_block, elements(element.inner)) if b]
            elif oob == "beforeend:#transcript":
                self.blocks.extend(b for b in map(_block, elements(element.inner)) if b)
            elif oob.startswith("beforeend:#live-") and oob.endswith("-text"):
                target = self._find(oob.removeprefix("beforeend:#").removesuffix("-text"))
                if target is not None:
                    target.text += html.unescape(element.inner)
            elif oob.startswith("outerHTML:#live-"):
                target = self._find(oob.removeprefix("outerHTML:#"))
                block = _block(element)
                if target is not None and block is not None:
                    self.blocks[self.blocks.index(target)] = block
            elif element_id == "status":
                self.busy = element.attrs.get("data-busy") == "true"

    def _find(self, block_id: str) -> Block | None:
        return next((b for b in self.blocks if b.id == block_id), None)

    def texts(self) -> list[str]:
        """Each item's text in order (live items: the text streamed so far)."""
        return [b.text for b in self.blocks]

    @property
    def live(self) -> list[Block]:
        return [b for b in self.blocks if b.id.startswith("live-")]


def _block(element: Element) -> Block | None:
    element_id = element.attrs.get("id", "")
    if element_id.startswith("live-"):
        return Block(element_id, "", "live")
    if not element_id.startswith("item-"):
        return None  # a step's metrics or a waterfall
    classes = element.attrs.get("class", "").split()
    status = classes[-1] if classes else ""
    inner = TEMPLATE_RE.sub("", BADGE_RE.sub("", element.inner))
    # A message's body, or the full text of a call or an output (below its summary line).
    body = BODY_RE.search(inner) or PRE_RE.search(inner)
    return Block(element_id, plain(body.group(1) if body else inner), status)
