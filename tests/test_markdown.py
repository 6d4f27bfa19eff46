"""Markdown from the model or a tool is rendered, and nothing in it can run in the page."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from playground.markdown import render_markdown

FORBIDDEN_TAGS = {"script", "iframe", "svg", "style", "object", "embed", "img", "math", "form"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href"}


class Elements(HTMLParser):
    """Every start tag of the output with its attributes, as a browser would parse them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))


def assert_inert(html: str) -> None:
    assert not re.search(r"<\s*script", html, re.I), html
    # An event handler attribute in a tag (quoted attribute values are text, not attributes).
    tags_only = re.sub(r'"[^"]*"|\'[^\']*\'', '""', html)
    assert not re.search(r"<[^>]*\son\w+\s*=", tags_only, re.I), html
    for tag, attributes in Elements(html).tags:
        assert tag not in FORBIDDEN_TAGS, html
        for name, value in attributes.items():
            assert not name.startswith("on"), html
            assert name != "style", html
            if name in URL_ATTRIBUTES:
                scheme = re.sub(r"[\s\x00-\x1f]", "", value).lower()
                assert not scheme.startswith(("javascript:", "vbscript:", "data:")), html


HOSTILE = {
    "script": "<script>alert(1)</script>",
    "script-mixed-case": "<ScRiPt>alert(1)</sCrIpT>",
    "img-onerror": "<img src=x onerror=alert(1)>",
    "markdown-javascript-link": "[x](javascript:alert(1))",
    "markdown-javascript-mixed-case": "[x](JaVaScRiPt:alert(1))",
    "markdown-javascript-entity": "[x](java&#115;cript:alert(1))",
    "markdown-javascript-angle": "[x](<javascript:alert(1)>)",
    "markdown-javascript-reference": "[x][1]\n\n[1]: javascript:alert(1)",
    "markdown-vbscript": "[x](vbscript:msgbox(1))",
    "autolink-javascript": "<javascript:alert(1)>",
    "html-javascript-link": '<a href="javascript:alert(1)">x</a>',
    "html-javascript-link-spaced": '<a href=" javascript:alert(1)">x</a>',
    "iframe": '<iframe src="https://evil.example/"></iframe>',
    "svg-onload": "<svg onload=alert(1)>",
    "svg-script": "<svg><script>alert(1)</script></svg>",
    "data-html-link": "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "data-image-link": "[x](data:image/png;base64,iVBORw0KGgo=)",
    "data-svg-image": "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "html-data-link": '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "style": "<style>body { display: none }</style>",
    "style-attribute": '<p style="background:url(javascript:alert(1))">x</p>',
    "remote-image": "![pixel](https://evil.example/track.png)",
    "event-in-code-span": "`<img src=x onerror=alert(1)>`",
    "html-block": "<div>\n<script>alert(1)</script>\n</div>",
    "object": '<object data="javascript:alert(1)"></object>',
    "form": '<form action="javascript:alert(1)"><button>go</button></form>',
    "link-title-breakout": '[x](https://example.com "a\\" onmouseover=\\"alert(1)")',
}


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_is_inert(source: str) -> None:
    assert_inert(render_markdown(source))


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_inside_markdown_is_inert(source: str) -> None:
    wrapped = f"# Title\n\n- item {source}\n\n> {source}\n\n| a |\n| - |\n| {source} |\n"
    assert_inert(render_markdown(wrapped))


def test_the_checker_itself_catches_what_it_looks_for() -> None:
    for html in (
        "<script>x</script>",
        '<p onclick="x">a</p>',
        '<a href=" JavaScript:x">a</a>',
        '<a title="x" onmouseover="y">a</a>',
        "<iframe></iframe>",
        "<svg></svg>",
        "<style></style>",
    ):
        with pytest.raises(AssertionError):
            assert_inert(html)


# -- what is kept ----------------------------------------------------------------------------------


def test_headings() -> None:
    assert render_markdown("# One\n\n### Three") == "<h1>One</h1>\n<h3>Three</h3>\n"


def test_emphasis() -> None:
    html = render_markdown("*em* and **strong** and `code`")
    assert html == "<p><em>em</em> and <strong>strong</strong> and <code>code</code></p>\n"


def test_lists() -> None:
    assert render_markdown("- a\n- b") == "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n"
    assert render_markdown("1. a\n2. b") == "<ol>\n<li>a</li>\n<li>b</li>\n</ol>\n"


def test_code_blocks_keep_their_language_and_escape_their_text() -> None:
    html = render_markdown("```python\nif a < b:\n    print('<b>')\n```")
    assert html.startswith('<pre><code class="language-python">')
    assert "if a &lt; b:" in html
    assert "&lt;b&gt;" in html
    assert "<b>" not in html
    assert render_markdown("    indented").startswith("<pre><code>indented")


def test_tables() -> None:
    html = render_markdown("| Tool | Calls |\n| --- | --- |\n| search | 3 |")
    assert "<table>" in html
    assert "<th>Tool</th>" in html
    assert "<td>search</td>" in html
    assert "<td>3</td>" in html


def test_blockquotes_and_rules() -> None:
    assert render_markdown("> quoted") == "<blockquote>\n<p>quoted</p>\n</blockquote>\n"
    assert "<hr>" in render_markdown("a\n\n---\n\nb")


def test_https_links_are_kept_with_a_safe_rel() -> None:
    html = render_markdown('[docs](https://example.com/a?b=1&c=2 "The docs")')
    [(tag, attributes)] = Elements(html).tags[1:]
    assert tag == "a"
    assert attributes == {
        "href": "https://example.com/a?b=1&c=2",
        "title": "The docs",
        "rel": "noopener noreferrer nofollow",
    }


def test_http_and_mailto_links_are_kept() -> None:
    assert 'href="http://example.com"' in render_markdown("[a](http://example.com)")
    assert 'href="mailto:a@example.com"' in render_markdown("[a](mailto:a@example.com)")


def test_raw_html_is_shown_as_text() -> None:
    assert render_markdown("<b>hi</b>") == "<p>&lt;b&gt;hi&lt;/b&gt;</p>\n"
    html = render_markdown('<div class="x">\nblock\n</div>')
    assert "&lt;div class=&quot;x&quot;&gt;" in html or '&lt;div class="x"&gt;' in html
    assert "<div" not in html


def test_escaped_hostile_text_is_still_readable() -> None:
    # The user sees what the model wrote, as text.
    html = render_markdown("<script>alert(1)</script>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
