# Two commands for users: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run dev collectstatic test test-fast lint types pytest pytest-sqlite pytest-postgres simulator migrate clean \
	bench staff screenshots

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else "Python 3.13+ is needed (see .python-version); set PYTHON=/path/to/python3.13")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"

$(VENV)/.run: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --group run
	@touch $@

$(VENV)/.dev: $(VENV)/.run
	$(BIN)/pip install --quiet --group dev
	@touch $@

# After collectstatic: with DEBUG off, the system checks refuse to go on without the collected
# static files (playground.E004).
migrate: collectstatic
	$(BIN)/python manage.py migrate --no-input --verbosity 0

# DEBUG is off: static files are collected (hashed, compressed) into STATIC_ROOT first, and a
# SECRET_KEY is made and kept in DATA_DIR when none is set. WORKERS=N: N daphne processes on one
# socket under supervisord (default: the cores when REDIS_URL is set, else one process with
# everything in memory); playground/serving.py, docs/deployment.md.
WORKERS ?=
run: migrate
	$(BIN)/python manage.py serve --host $(HOST) --port $(PORT) $(if $(WORKERS),--workers $(WORKERS))

# Development: DEBUG on (Django's error pages, static files straight from static/, unhashed) and
# the code reloaded when it changes. Never on an address others can reach.
dev: migrate
	DEBUG=true PORT=$(PORT) $(BIN)/python manage.py runserver $(HOST):$(PORT)

collectstatic: $(VENV)/.run
	$(BIN)/python manage.py collectstatic --no-input --verbosity 0

# A staff account for the admin and the session inspector (docs/sharing-and-inspector.md).
staff: migrate
	$(BIN)/python manage.py createsuperuser

simulator: $(VENV)/.run
	$(BIN)/python manage.py simulator --host $(HOST) --port 8765

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(VENV)/.dev
	$(BIN)/python -m mypy .  # -m puts the checkout first on sys.path: its `agents`, not the SDK's

# The suite in parallel (pytest-xdist, one worker a core; `--dist worksteal`: a worker that runs
# dry takes half of another's queue, so a module's tests mostly stay on one worker, with its
# module-scoped servers, and tests/markers.py runs the slowest first). Two passes: the whole suite
# on SQLite, then the database tests again on PostgreSQL (skipped without it, failed under CI=true).
# PYTEST_ARGS adds options to both, e.g. PYTEST_ARGS="--durations=25"; PYTEST_WORKERS=0 runs
# serially (to debug); POSTGRES_TESTS is the second pass's -m expression.
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres
POSTGRES_TESTS ?= database and not e2e
XDIST = -n $(PYTEST_WORKERS) --dist worksteal

pytest: pytest-sqlite pytest-postgres

pytest-sqlite: $(VENV)/.dev
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

pytest-postgres: $(VENV)/.dev
	DATABASE_URL=$(POSTGRES_URL) $(BIN)/pytest $(XDIST) -m "$(POSTGRES_TESTS)" $(PYTEST_ARGS)

# What CI runs (.ci/run): lint, types and both pytest passes.
test: lint types pytest

# The inner loop, for between edits: the in-process (unit) tests only, in parallel, without lint
# or types; under a minute. `make test` before a commit.
test-fast: $(VENV)/.dev
	$(BIN)/pytest $(XDIST) -m "unit and not slow" -q $(PYTEST_ARGS)

# The pages' screenshots in docs/img/ (README, docs), taken again by their browser test.
screenshots: $(VENV)/.dev
	SCREENSHOTS=update $(BIN)/pytest -p no:randomly tests/test_screenshots_browser.py

# The benchmark suite (docs/benchmarks.md): a quarter of an hour; SCENARIOS="token-latency ..."
# picks some. It writes its results page, docs/benchmark-results.md, the raw figures to bench.json,
# and the scaling curve and chart (docs/scaling.md) to docs/img/scale.json and scale.svg.
bench: collectstatic
	BENCH_SCALE_OUT=docs/img $(BIN)/python manage.py bench --json bench.json --markdown docs/benchmark-results.md $(SCENARIOS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
