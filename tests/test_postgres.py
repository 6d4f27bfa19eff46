"""With DATABASE_URL pointing at the real PostgreSQL, the database tests pass too."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.services import POSTGRES_URL, require_postgres
from tests.simserver import ROOT

TESTS = ROOT / "tests"
# The child run sets this so that it does not start another child run.
INNER = "PLAYGROUND_INNER_RUN"
NOT_HERE = {"test_postgres.py", "test_browser.py"}


def database_modules() -> list[str]:
    """The test modules that use the database (they ask pytest-django for it)."""
    return sorted(
        f"tests/{path.name}"
        for path in TESTS.glob("test_*.py")
        if path.name not in NOT_HERE and "django_db" in path.read_text()
    )


@pytest.mark.skipif(os.environ.get(INNER) == "1", reason="already inside the PostgreSQL run")
@pytest.mark.timeout(600)
def test_the_database_tests_pass_on_postgres() -> None:
    require_postgres()
    modules = database_modules()
    assert modules, "no test module uses the database"
    env = {**os.environ, "DATABASE_URL": POSTGRES_URL, INNER: "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *modules]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=570, check=False
    )
    output = (done.stdout + done.stderr)[-20_000:]
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{output}"
    assert " passed" in output, output
