"""static/highlight.css follows the page's theme switch (data-theme on <html>) and, with no
choice made, the system's preference; it is what playground/markdown.py generates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from playground.markdown import highlight_css

pytestmark = pytest.mark.unit

CSS = Path(__file__).resolve().parents[2] / "static" / "highlight.css"


def blocks(css: str) -> dict[str, list[str]]:
    """The keyword rule's selector in each context: outside any media query, and in each."""
    found: dict[str, list[str]] = {}
    media = ""
    for line in css.splitlines():
        opened = re.match(r"@media \((prefers-color-scheme: \w+)\) \{", line)
        if opened:
            media = opened[1]
        elif line == "}":
            media = ""
        elif re.search(r"pre \.k \{", line):
            found.setdefault(media, []).append(line.strip().split(" .k {")[0])
    return found


def test_the_file_is_what_the_generator_writes() -> None:
    assert CSS.read_text() == highlight_css(), (
        "static/highlight.css is stale: .venv/bin/python -m playground.markdown > "
        "static/highlight.css"
    )


def test_each_theme_applies_when_chosen_and_else_when_the_system_prefers_it() -> None:
    selectors = blocks(CSS.read_text())
    assert selectors[""] == [  # the switch's choice, whatever the system prefers
        ':root[data-theme="light"] .item .body pre',
        ':root[data-theme="dark"] .item .body pre',
    ]
    # The system's preference only when the switch did not choose the other theme.
    assert selectors["prefers-color-scheme: light"] == [
        ':root:not([data-theme="dark"]) .item .body pre'
    ]
    assert selectors["prefers-color-scheme: dark"] == [
        ':root:not([data-theme="light"]) .item .body pre'
    ]


def test_the_two_themes_colour_a_keyword_differently() -> None:
    css = CSS.read_text()
    light = re.search(r':root\[data-theme="light"\] \.item \.body pre \.k \{ ([^}]*)\}', css)
    dark = re.search(r':root\[data-theme="dark"\] \.item \.body pre \.k \{ ([^}]*)\}', css)
    assert light
    assert dark
    assert "#008000" in light[1]
    assert "#FF7B72" in dark[1]
