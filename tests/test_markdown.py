"""Markdown from the model or a tool is rendered, and nothing in it can run in the page."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import pytest

from playground import markdown
from playground.markdown import render_markdown, sanitise

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
    "span-handler": '<span class="k" onclick="alert(1)" style="color:red">x</span>',
    "fence-html-script": "```html\n<script>alert(1)</script>\n<b onclick=alert(1)>x</b>\n```",
    "fence-python-script": "```python\nx = '</code></pre><script>alert(1)</script>'\n```",
    "fence-unknown-script": "```nosuchlanguage\n<script>alert(1)</script>\n```",
    "fence-info-breakout": '```python" onclick="alert(1)\n<script>alert(1)</script>\n```',
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
    assert re.sub(r"</?span[^>]*>", "", html).count("if a &lt; b:\n    print('&lt;b&gt;')") == 1
    assert "<b>" not in html
    html = render_markdown("```nosuchlanguage\nif a < b:\n    print('<b>')\n```")
    assert html.startswith('<pre><code class="language-nosuchlanguage">if a &lt; b:')
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


# -- highlighted code blocks -----------------------------------------------------------------------


def spans(html: str) -> list[dict[str, str]]:
    return [attributes for tag, attributes in Elements(html).tags if tag == "span"]


def test_a_python_block_is_highlighted_with_short_classes_only() -> None:
    html = render_markdown("```python\ndef f(a):\n    return a < 2  # small\n```")
    assert html.startswith('<pre><code class="language-python">')
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">f</span>' in html
    assert '<span class="c1"># small</span>' in html
    assert "&lt;" in html
    assert spans(html)
    assert all(list(attributes) == ["class"] for attributes in spans(html))


def test_any_alias_of_a_highlighted_language_is_highlighted() -> None:
    for fence in ("py", "Python", "python3"):
        assert '<span class="k">def</span>' in render_markdown(f"```{fence}\ndef f(): pass\n```")


def test_an_unknown_language_or_none_is_plain_escaped_text() -> None:
    for fence in ("nosuchlanguage", ""):
        html = render_markdown(f"```{fence}\ndef f(): return '<b>'\n```")
        assert "<span" not in html
        assert "def f(): return '&lt;b&gt;'" in html


def test_html_in_a_highlighted_block_is_escaped_text() -> None:
    html = render_markdown("```html\n<script>alert(1)</script>\n```")
    assert '<span class="nt">script</span>' in html
    assert "&lt;" in html
    assert_inert(html)
    html = render_markdown("```python\nx = '</code></pre><script>alert(1)</script>'\n```")
    assert "&lt;/code&gt;&lt;/pre&gt;&lt;script&gt;" in html
    assert_inert(html)


def test_a_block_over_the_limit_is_plain() -> None:
    code = "x = 1\n" * (markdown.HIGHLIGHT_MAX_CHARS // 6 + 1)
    assert len(code) > markdown.HIGHLIGHT_MAX_CHARS
    html = render_markdown(f"```python\n{code}```")
    assert "<span" not in html
    assert html.startswith('<pre><code class="language-python">x = 1\n')
    assert '<span class="n">x</span>' in render_markdown(f"```python\n{code[:1000]}```")


def test_a_block_past_the_deadline_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(markdown, "HIGHLIGHT_BUDGET_SECONDS", -1.0)
    html = render_markdown("```python\ndef past_the_deadline(): pass\n```")
    assert "<span" not in html
    assert "def past_the_deadline(): pass" in html


# Pygments 2.21.0 lexers that take exponential time (Scala: 38 backslashes, 8 s), or quadratic time
# in a single match, which the budget cannot stop (each of these: seconds).
LEFT_OUT = {
    "scala": '"' + "\\" * 200,
    "console": "a" * 19_990,
    "ini": "=" * 19_990,
    "matlab": "\n" * 19_990,
    "ocaml": "1" * 19_990,
    "terraform": "<!--" + " " * 19_990,
}


@pytest.mark.parametrize(("language", "code"), LEFT_OUT.items(), ids=LEFT_OUT.keys())
def test_a_language_left_out_is_plain_and_cannot_hang(language: str, code: str) -> None:
    assert language not in markdown.HIGHLIGHTED
    started = time.thread_time()
    html = render_markdown(f"```{language}\n{code}\n```")
    assert time.thread_time() - started < 1
    assert "<span" not in html


def test_a_quadratic_block_stops_at_the_budget_and_is_plain() -> None:
    # Pygments 2.21.0's C lexer takes quadratic time on newlines (20,000 of them: ~5 s).
    started = time.thread_time()
    html = render_markdown("```c\n" + "\n" * (markdown.HIGHLIGHT_MAX_CHARS - 1) + "```")
    assert time.thread_time() - started < 1
    assert "<span" not in html


@pytest.mark.parametrize("language", sorted(markdown.HIGHLIGHTED))
def test_every_highlighted_language_is_a_pygments_name_and_stays_fast(language: str) -> None:
    assert markdown.highlighted_lexer(language).aliases[0] == language
    # Unterminated strings, comments and tags of escapes: where lexers backtrack exponentially.
    for opening in ('"', "'", "`", "/", "/*", "#", "<", '<a b="', "${", 'r"', '"""'):
        for unit in ("\\", "\\\n", " \\", "a\\", "\\'", '\\"'):
            code = opening + unit * 48 + "\n"
            started = time.thread_time()
            render_markdown(f"```{language}\n{code}```")
            assert time.thread_time() - started < 1, (language, code)


def test_the_sanitiser_keeps_a_span_class_and_nothing_else() -> None:
    html = sanitise(
        '<pre><code class="language-python"><span class="k" onclick="alert(1)" '
        'style="color:red" id="x" title="t">def</span><span class="k evil">f</span>'
        "<span onmouseover=alert(1)>g</span><script>alert(1)</script></code></pre>"
    )
    assert_inert(html)
    assert '<span class="k">def</span>' in html
    assert [attributes.get("class", "") for attributes in spans(html)] == ["k", "k", ""]
    assert "style" not in html
    assert "evil" not in html


def test_a_span_in_the_text_is_shown_as_text() -> None:
    html = render_markdown('<span class="k" onclick="alert(1)">x</span>')
    assert "<span" not in html
    assert "&lt;span" in html
