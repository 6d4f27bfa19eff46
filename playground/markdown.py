"""Markdown for untrusted text (model and tool output): rendered, then sanitised."""

from __future__ import annotations

import functools

import nh3
from markdown_it import MarkdownIt

from agents.scalar_text import scrub, valid_text

# Raw HTML in the source is shown as text, never interpreted.
_parser = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
    ["table", "strikethrough"]
)

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "ol",
    "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul", "del",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}}


# A finished item's text never changes, and every snapshot (a reload, a reconnect, a resync)
# renders the whole transcript again: ~4 ms per 1,000 tokens without this cache.
@functools.lru_cache(maxsize=256)
def render_markdown(text: str) -> str:
    """Safe HTML: no script, no event handler attribute, no ``javascript:`` link survives."""
    # nh3 (Rust) cannot take a lone surrogate: show it as U+FFFD instead of failing the page.
    html = _parser.render(text if valid_text(text) else scrub(text))
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
