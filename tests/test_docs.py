"""The docs (README.md and docs/) document what the code reads and accepts, and nothing it does
not: every setting, knob, fault, scenario and option, and every link, make target, URL path,
management command and file they name."""

from __future__ import annotations

import dataclasses
import itertools
import re
import uuid
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class
from django.urls import Resolver404, resolve

from simulator.config import CostModel
from simulator.faults import PARSERS
from simulator.model import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def page(name: str) -> str:
    return (DOCS / name).read_text()


CONFIGURATION = page("configuration.md")
SIMULATOR = page("simulator.md")
BENCHMARKS = page("benchmarks.md")
SECURITY = page("security.md")


def section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole line, e.g. ``## Scenarios``) up to the next heading of
    the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    match = re.search(rf"^{re.escape(heading)}$", text, re.M)
    assert match, f"no heading {heading!r}"
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def table_names(text: str, heading: str) -> set[str]:
    """Backticked names opening the rows of the first table under ``heading``."""
    lines = section(text, heading).splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = itertools.takewhile(lambda line: line.startswith("|"), lines[first:])
    return {m.group(1).strip() for row in table if (m := re.match(r"\| `([^`=\[:]+)", row))}


def prose(text: str) -> str:
    """The text without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def code(text: str) -> list[str]:
    """Inline code spans and the lines of fenced code blocks: where commands and paths are."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    return re.findall(r"`([^`\n]+)`", prose(text)) + [
        line for block in blocks for line in block.splitlines()
    ]


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- what the code reads and accepts -------------------------------------------------------------


def test_every_environment_variable_is_in_the_configuration_table() -> None:
    settings = (ROOT / "playground" / "settings.py").read_text()
    read = set(re.findall(r"env_\w+\(\s*\"([A-Z_]+)\"", settings))
    assert read == table_names(CONFIGURATION, "## Environment variables")


def test_every_cost_knob_is_in_the_cost_table() -> None:
    knobs = {f.name for f in dataclasses.fields(CostModel)} - {"time_scale"}
    assert knobs == table_names(SIMULATOR, "## Cost model")


def test_every_fault_is_in_the_fault_table() -> None:
    documented = table_names(SIMULATOR, "## Fault injection")
    documented |= set(re.findall(r"`(\w+)=K`", section(SIMULATOR, "## Fault injection")))
    assert set(PARSERS) == documented


def test_every_scenario_has_a_directive_in_the_simulator_page() -> None:
    documented = {name.split()[0].lstrip("/") for name in table_names(SIMULATOR, "## Scenarios")}
    assert documented == set(SCENARIOS)


def test_every_simulator_option_is_in_the_simulator_page() -> None:
    command = load_command_class(get_commands()["simulator"], "simulator")
    parser = command.create_parser("manage.py", "simulator")
    own = {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and action.dest not in {"help", "version"}
    }
    django_defaults = {
        "--verbosity", "--settings", "--pythonpath", "--traceback", "--no-color",
        "--force-color", "--skip-checks",
    }  # fmt: skip
    for option in own - django_defaults:
        assert option in SIMULATOR, option


def test_every_benchmark_scenario_is_in_the_benchmarks_table() -> None:
    from bench.suite import scenarios

    assert table_names(BENCHMARKS, "## Scenarios") == set(scenarios())


# The settings that bound what a visitor may do: each belongs in the Security page's table.
LIMIT_RE = re.compile(r"QUOTA_|MAX_|_LIMIT|TOOL_|SHARE_|CONNECT_|PREWARM_")


def test_every_limit_is_in_the_security_pages_table_with_its_default() -> None:
    settings = (ROOT / "playground" / "settings.py").read_text()
    limits = {
        name: default
        for name, default in re.findall(r"env_\w+\(\s*\"([A-Z_]+)\",\s*([^)]+)\)", settings)
        if LIMIT_RE.search(name)
    }
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", section(SECURITY, "## Limits"), re.M))
    assert set(rows) == set(limits)
    for name, default in limits.items():
        documented = rows[name].strip().strip("`").replace("empty", "[]")
        value = default.replace("_", "").strip()
        assert documented == value or float(documented) == float(value), name


def test_the_readme_links_the_security_page() -> None:
    assert "(docs/security.md)" in README


def test_the_sharing_page_publishes_the_export_schema() -> None:
    text = section(page("sharing-and-inspector.md"), "## Sharing, export and import")
    assert "(../playground/schemas/session-export.schema.json)" in text


# -- the README is the front door ----------------------------------------------------------------


def test_the_readme_is_short() -> None:
    assert len(README.encode()) < 15 * 1024


def test_the_readme_shows_the_screenshots() -> None:
    """Taken by tests/test_screenshots_browser.py (``make screenshots``)."""
    assert "](docs/img/session-tools-1280.png)" in README
    for shown in re.findall(r"\]\((docs/img/[^)]+\.png)\)", README):
        assert (ROOT / shown).stat().st_size < 300 * 1024, shown


# -- links, targets, paths, commands and files named in the docs --------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = prose(path.read_text())
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def links(path: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", prose(path.read_text()))


@pytest.mark.parametrize("path", PAGES, ids=relative)
def test_every_relative_link_resolves(path: Path) -> None:
    for link in links(path):
        if re.match(r"[a-z]+:", link):
            continue  # https:, mailto:
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        assert file.exists(), f"{relative(path)}: {link}"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{relative(path)}: {link}"


def test_every_page_in_docs_is_in_the_index() -> None:
    index = set(links(DOCS / "README.md"))
    for path in DOCS.glob("*.md"):
        if path.name != "README.md":
            assert path.name in index, path.name


MAKE_RE = re.compile(r"(?:^|[\s;(&|])make ([a-z][\w-]*)")


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))


def test_every_make_target_named_exists() -> None:
    named = {
        (relative(path), target)
        for path in PAGES
        for span in code(path.read_text())
        for target in MAKE_RE.findall(span)
    }
    assert named, "no make target found: the pattern is wrong"
    missing = {(where, target) for where, target in named if target not in make_targets()}
    assert not missing


def test_every_management_command_named_exists() -> None:
    commands = get_commands()
    named = {
        (relative(path), name)
        for path in PAGES
        for name in re.findall(r"manage\.py ([a-z_]+)", path.read_text())
    }
    assert named
    assert not {(where, name) for where, name in named if name not in commands}


# Paths named in the docs that are not the playground's URLs: the simulator (its own ASGI app,
# mounted at /v1/), static files (nginx, or Django's static view with DEBUG on), files, and the
# simulator's directives (`/research 5 tides`).
NOT_DJANGO = ("/v1/", "/static/")
FILESYSTEM = ("/etc/", "/var/", "/srv/", "/usr/", "/tmp/", "/opt/", "/home/", "/dev/", "/proc/")
DIRECTIVES = {f"/{name}" for name in SCENARIOS}
URL_RE = re.compile(r"(?:^|[\s(]|HOST)(/[A-Za-z_<{][\w\-./<>{}\[\]#]*)")


def url_paths() -> set[tuple[str, str]]:
    found = set()
    for path in PAGES:
        for span in code(path.read_text()):
            for url in URL_RE.findall(span):
                url = url.split("#", 1)[0].rstrip(".")
                if url.startswith(NOT_DJANGO + FILESYSTEM) or url in DIRECTIVES:
                    continue
                found.add((relative(path), url))
    return found


def test_every_url_path_named_resolves() -> None:
    from playground.routing import websocket_urlpatterns

    placeholder = str(uuid.uuid4())
    socket_patterns = [p for p in websocket_urlpatterns if str(p.pattern)]  # not the catch-all
    paths = url_paths()
    assert ("docs/sharing-and-inspector.md", "/s/") in paths, "the pattern is wrong"
    unresolved = set()
    for where, url in paths:
        concrete = re.sub(r"<[^>]*>|\{[^}]*\}", placeholder, url)
        if concrete.startswith("/ws/"):
            # A socket's path, or a prefix of them (nginx's `location /ws/`).
            if not any(
                p.resolve(concrete[1:]) or str(p.pattern).startswith(concrete[1:])
                for p in socket_patterns
            ):
                unresolved.add((where, url))
            continue
        try:
            resolve(concrete)
        except Resolver404:
            unresolved.add((where, url))
    assert not unresolved


# Backticked paths into the checkout, e.g. `agents/run/loop.py` or `deploy/`.
TOP = ("agents", "bench", "deploy", "devtools", "docs", "playground", "simulator", "static",
       "templates", "tests", ".ci")  # fmt: skip
FILE_RE = re.compile(rf"^(?:{'|'.join(map(re.escape, TOP))})/[\w./-]*$")


def test_every_file_named_exists() -> None:
    named = {
        (relative(path), span)
        for path in PAGES
        for span in re.findall(r"`([^`\s]+)`", prose(path.read_text()))
        if FILE_RE.match(span)
    }
    assert named
    assert not {(where, span) for where, span in named if not (ROOT / span).exists()}
