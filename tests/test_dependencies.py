"""pyproject.toml declares what the code imports: nothing may work only because a dependency
happens to pull it in (a dependency's next release may drop it)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GROUPS = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
# The checkout's own top-level packages (the app is run from its checkout, not installed).
LOCAL = {"agents", "playground", "simulator", "bench", "devtools", "tests", "manage"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(group: str) -> set[str]:
    """The distributions a dependency group names, with the groups it includes."""
    names: set[str] = set()
    for entry in GROUPS[group]:
        if isinstance(entry, dict):
            names |= declared(entry["include-group"])
        else:
            names.add(normalise(re.match(r"[A-Za-z0-9._-]+", entry).group()))  # type: ignore[union-attr]
    return names


def imported(paths: list[Path]) -> dict[str, str]:
    """Top-level modules imported (absolutely) by these files -> a file that imports each."""
    found: dict[str, str] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def python_files(*roots: str) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        path = ROOT / root
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def undeclared(paths: list[Path], group: str) -> list[str]:
    distributions = packages_distributions()
    allowed = declared(group)
    problems = []
    for module, where in sorted(imported(paths).items()):
        if module in LOCAL or module in sys.stdlib_module_names or module == "__future__":
            continue
        providers = {normalise(name) for name in distributions.get(module, [])}
        if not providers:
            problems.append(f"{module} (imported by {where}) is not installed")
        elif not providers & allowed:
            problems.append(f"{module} (imported by {where}) comes from {sorted(providers)}")
    return problems


@pytest.mark.parametrize(
    ("roots", "group"),
    [
        (("playground", "agents", "simulator", "manage.py"), "run"),
        # `make bench` runs with the app's dependencies only (the Makefile's .run).
        (("bench", "devtools"), "run"),
        (("tests",), "dev"),
    ],
    ids=["app", "bench", "tests"],
)
def test_every_import_is_declared_in_pyproject(roots: tuple[str, ...], group: str) -> None:
    problems = undeclared(python_files(*roots), group)
    assert not problems, "declare in pyproject.toml:\n" + "\n".join(problems)
