"""The README documents what the code reads and accepts, and nothing it does not."""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

from agents.management.commands.simulator import Command
from agents.simulator.config import CostModel
from agents.simulator.faults import PARSERS
from agents.simulator.model import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def table_names(heading: str) -> set[str]:
    """Backticked names opening the rows of the first table under ``heading``."""
    lines = README.split(heading, 1)[1].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = itertools.takewhile(lambda line: line.startswith("|"), lines[first:])
    return {m.group(1).strip() for row in table if (m := re.match(r"\| `([^`=\[:]+)", row))}


def test_every_environment_variable_is_in_the_configuration_table() -> None:
    settings = (ROOT / "playground" / "settings.py").read_text()
    read = set(re.findall(r"env_\w+\(\s*\"([A-Z_]+)\"", settings))
    assert read == table_names("## Configuration")


def test_every_cost_knob_is_in_the_cost_table() -> None:
    knobs = {f.name for f in dataclasses.fields(CostModel)} - {"time_scale"}
    assert knobs == table_names("### Cost model")


def test_every_fault_is_in_the_fault_table() -> None:
    documented = table_names("### Fault injection")
    section = README.split("### Fault injection", 1)[1].split("###", 1)[0]
    documented |= set(re.findall(r"`(\w+)=K`", section))
    assert set(PARSERS) == documented


def test_every_scenario_has_a_directive_in_the_readme() -> None:
    documented = {name.split()[0].lstrip("/") for name in table_names("### Scenarios")}
    assert documented == set(SCENARIOS)


def test_every_simulator_option_is_in_the_readme() -> None:
    parser = Command().create_parser("manage.py", "simulator")
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
        assert option in README, option


def test_every_benchmark_scenario_is_in_the_benchmarks_table() -> None:
    from agents.bench.suite import scenarios

    assert table_names("## Benchmarks") == set(scenarios())


SECURITY = (ROOT / "docs" / "security.md").read_text()
# The settings that bound what a visitor may do: each belongs in the Security page's table.
LIMIT_RE = re.compile(r"QUOTA_|MAX_|_LIMIT|TOOL_|SHARE_|CONNECT_|PREWARM_")


def test_every_limit_is_in_the_security_pages_table_with_its_default() -> None:
    settings = (ROOT / "playground" / "settings.py").read_text()
    limits = {
        name: default
        for name, default in re.findall(r"env_\w+\(\s*\"([A-Z_]+)\",\s*([^)]+)\)", settings)
        if LIMIT_RE.search(name)
    }
    section = SECURITY.split("## Limits", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", section, re.M))
    assert set(rows) == set(limits)
    for name, default in limits.items():
        documented = rows[name].strip().strip("`").replace("empty", "[]")
        value = default.replace("_", "").strip()
        assert documented == value or float(documented) == float(value), name


def test_the_readme_links_the_security_page() -> None:
    assert "(docs/security.md)" in README
