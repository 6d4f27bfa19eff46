"""Markdown for untrusted text (model and tool output): rendered, then sanitised."""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import nh3
import pygments  # type: ignore[import-untyped]
from markdown_it import MarkdownIt
from pygments import formatters, lexers, token, util

from agents.scalar_text import scrub, valid_text

# Fenced code blocks are highlighted on the server by Pygments (static/highlight.css has the
# colours). Its lexers are Python regular expressions, which backtrack; the text is untrusted,
# and rendering runs on the event loop. Measured with Pygments 2.21.0: 15 of its ~600 lexers
# (Scala among them) take exponential time on a quote and a few dozen backslashes (Scala, 38 of
# them: 8 s), a quarter take quadratic time on some 20,000-character text (C, C++ and Java on
# 20,000 newlines: seconds), and some highlight the blocks they embed in a language named by the
# text (Markdown, reStructuredText). So three bounds:
# - only these languages, named by any of their aliases ("py", "sh", "r"...): each was fuzzed,
#   and took neither exponential time nor quadratic time in a single match (the budget below
#   cannot stop one match); Console, INI, MATLAB, OCaml and Terraform did, and are left out
#   (tests/test_markdown.py keeps a smoke test);
HIGHLIGHTED = frozenset({
    "bash", "c", "clojure", "cpp", "csharp", "css", "dart", "diff", "docker", "elixir", "erlang",
    "go", "graphql", "groovy", "haskell", "html", "java", "javascript", "json", "jsx", "julia",
    "kotlin", "lua", "make", "nginx", "objective-c", "perl", "php", "powershell", "protobuf",
    "pycon", "pytb", "python", "ruby", "rust", "scss", "splus", "sql", "swift", "tex", "toml",
    "tsx", "typescript", "xml", "yaml", "zig",
})  # fmt: skip
# - a longer block is shown plain (highlighting costs ~2 ms per 1,000 characters);
HIGHLIGHT_MAX_CHARS = 20_000
# - lexing stops when this much CPU time (not wall time: a busy machine does not change what is
#   shown, nor what is cached) has gone on it for one rendered text, and the block it was in and
#   every later one are shown plain: a quadratic case is many short matches, checked as it goes.
#   A 20,000-character Python block takes ~45 ms.
HIGHLIGHT_BUDGET_SECONDS = 0.1
_budget: ContextVar[float] = ContextVar("highlight_budget", default=0.0)  # what is left of it

# Spans with Pygments' short classes only (`k`, `s`, `c1`...): no wrapper, no style attribute.
_formatter = formatters.HtmlFormatter(nowrap=True)


class _OutOfTime(Exception):
    """Highlighting went past its deadline."""


def highlighted_lexer(language: str) -> Any:
    """The Pygments lexer of a fence's language if it is highlighted, else None."""
    try:
        # The class, not yet an instance: a lexer's first instance compiles its expressions.
        lexer = lexers.find_lexer_class_by_name(language)
    except util.ClassNotFound:
        return None
    # stripnl=False: the block's leading and trailing blank lines are the author's.
    return lexer(stripnl=False) if lexer.aliases[0] in HIGHLIGHTED else None


def _tokens(lexer: Any, code: str, deadline: float) -> Iterator[tuple[Any, str]]:
    for count, pair in enumerate(lexer.get_tokens(code)):
        # Every 16th token: the clock costs ~0.7 µs, a token ~3 µs.
        if count % 16 == 0 and time.thread_time() > deadline:
            raise _OutOfTime
        yield pair


def _highlight(code: str, language: str, _attributes: str) -> str:
    """Pygments' HTML for a block in a highlighted language; "" has markdown-it escape it."""
    if not language or len(code) > HIGHLIGHT_MAX_CHARS:
        return ""
    lexer = highlighted_lexer(language)
    if lexer is None:
        return ""
    html = io.StringIO()
    # Counted from here: a lexer's first use in the process compiles its expressions (~10 ms).
    started = time.thread_time()
    try:
        # The formatter escapes the code: what the model wrote is only ever text in the spans.
        _formatter.format(_tokens(lexer, code, started + _budget.get()), html)
    except _OutOfTime:
        return ""
    finally:
        _budget.set(_budget.get() - (time.thread_time() - started))
    return html.getvalue()


# Raw HTML in the source is shown as text, never interpreted.
_parser = MarkdownIt(
    "commonmark", {"html": False, "linkify": False, "highlight": _highlight}
).enable(["table", "strikethrough"])

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "ol",
    "p", "pre", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul", "del",
}  # fmt: skip
# "*": no attribute on every tag (nh3 would otherwise keep `lang` and `title` on any tag).
ALLOWED_ATTRIBUTES = {"*": set(), "a": {"href", "title"}, "code": {"class"}}
# A span keeps its class and nothing else, and of its classes only Pygments' token classes.
ALLOWED_CLASSES = {"span": {name for name in token.STANDARD_TYPES.values() if name}}


# A finished item's text never changes, and every snapshot (a reload, a reconnect, a resync)
# renders the whole transcript again: ~4 ms per 1,000 tokens without this cache.
@functools.lru_cache(maxsize=256)
def render_markdown(text: str) -> str:
    """Safe HTML: no script, no event handler attribute, no ``javascript:`` link survives."""
    budget = _budget.set(HIGHLIGHT_BUDGET_SECONDS)
    try:
        # nh3 (Rust) cannot take a lone surrogate: show it as U+FFFD instead of failing the page.
        html = _parser.render(text if valid_text(text) else scrub(text))
    finally:
        _budget.reset(budget)
    return sanitise(html)


def sanitise(html: str) -> str:
    """Only the tags, attributes, classes and link schemes allowed above are kept."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


# -- static/highlight.css ----------------------------------------------------------------------

HIGHLIGHT_SCOPE = ".item .body pre"
# The styles of each theme (Pygments' names); the app keeps its own <pre> background.
HIGHLIGHT_STYLES = {"light": "default", "dark": "github-dark"}
HIGHLIGHT_CSS_HEADER = """\
/* Colours of code blocks highlighted on the server (playground/markdown.py): Pygments'
   short token classes on the spans it emits inside <pre><code>. Generated, not hand-written, with
   Pygments {version} (the token rules only: the app keeps its own <pre> background):

     .venv/bin/python -m playground.markdown > static/highlight.css

   (tests/unit/test_highlight_css.py fails when this file and that output differ). Light is
   Pygments' "default" style, dark its "github-dark". Each theme applies when the page's theme
   switch chose it (static/theme.js sets data-theme on <html>), or, with no choice made, when the
   system prefers it; its rules never meet the other theme's, so no light rule (a bold, an italic,
   a border) leaks into the dark one. */
"""


def highlight_css() -> str:
    """static/highlight.css: each theme's token colours, for the theme switch and the system."""
    parts = [HIGHLIGHT_CSS_HEADER.format(version=pygments.__version__)]
    for theme, style in HIGHLIGHT_STYLES.items():
        other = "dark" if theme == "light" else "light"
        formatter = formatters.HtmlFormatter(style=style)
        chosen = formatter.get_token_style_defs(f':root[data-theme="{theme}"] {HIGHLIGHT_SCOPE}')
        system = formatter.get_token_style_defs(
            f':root:not([data-theme="{other}"]) {HIGHLIGHT_SCOPE}'
        )
        rules = "\n".join(chosen)
        parts.append(f"/* {theme.capitalize()}: chosen with the theme switch. */\n{rules}\n")
        indented = "\n".join(f"  {line}" for line in system)
        parts.append(
            f"/* {theme.capitalize()}: the system's, unless the switch chose {other}. */\n"
            f"@media (prefers-color-scheme: {theme}) {{\n{indented}\n}}\n"
        )
    return "\n".join(parts)


if __name__ == "__main__":
    print(highlight_css(), end="")
