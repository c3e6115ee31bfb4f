# The two front-door commands: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: demo test test-fast lint ui bench clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamps re-run the install only when pyproject.toml or the lock changes. requirements.lock holds the
# versions CI tested (base + dev + vision); it constrains every install. Regenerate: `make lock`.
LOCK := requirements.lock

$(VENV)/.installed-base: pyproject.toml $(LOCK) | $(BIN)/python
	$(PIP) install --quiet -c $(LOCK) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(LOCK) | $(BIN)/python
	$(PIP) install --quiet -c $(LOCK) -e '.[dev,vision]'
	touch $@ $(VENV)/.installed-base

# Re-resolve the lock after changing dependencies in pyproject.toml (pins already in it are kept unless
# they conflict; add --upgrade to take newer releases), then run `make test` before committing it.
lock: | $(BIN)/python
	$(PIP) install --quiet pip-tools
	$(BIN)/pip-compile --quiet --extra dev --extra vision --strip-extras --no-emit-index-url \
		--no-emit-find-links -o $(LOCK) pyproject.toml

demo: $(VENV)/.installed-base
	$(BIN)/sightline demo

# --durations: CI's log names the slowest tests, so the suite's time (about 15 min is the budget) is watched.
# Two pytest-xdist workers by default (TEST_WORKERS=4 on a bigger machine, 0 for one process): most tests wait on
# PostgreSQL, subprocesses or the broker, so two share two cores well. A module's tests stay on one worker
# (tests/conftest.py: pytest_xdist_make_scheduler).
TEST_WORKERS ?= 2
test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --durations=25

# The tier that needs no server: no PostgreSQL, no Mosquitto, no whole pipeline (markers in pyproject.toml,
# applied in tests/conftest.py). Under SIGHTLINE_TEST_NO_SERVERS=1 a test that reaches for a server without
# its marker fails, naming the marker; the PostgreSQL URL points at a closed port to make sure.
FAST := not postgres and not mqtt and not timescaledb and not pipeline
test-fast: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	SIGHTLINE_TEST_NO_SERVERS=1 SIGHTLINE_TEST_PG_ADMIN_URL=postgresql://postgres@127.0.0.1:1/postgres \
		$(BIN)/python -m pytest -m "$(FAST)" -p no:cacheprovider

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# `dagster dev` from the repository root: the root dagster.yaml (embedded: SQLite in .dagster_home/, where
# `make demo` writes its runs; the DuckDB pool limit). DAGSTER_HOME is unset so that file is the one read.
ui: $(VENV)/.installed-base
	env -u DAGSTER_HOME $(BIN)/dagster dev

bench: $(VENV)/.installed-dev
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf data .dagster_home transforms/.cache transforms/logs
