# One command each: `make demo` runs the console on the demo fleet, `make test` runs everything CI runs.
# Both create the virtual environment and install the project first, so a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv demo test unit soak lint format screenshots bench clean engines

help:
	@echo "make demo         open the console on an embedded demo fleet"
	@echo "make test         set up, then run the tests, ruff and mypy (what CI runs)"
	@echo "make unit         the unit tests only: no servers, no Pilot (functional and snapshot tests are the rest)"
	@echo "make screenshots  regenerate screenshots/*.svg from the real app"
	@echo "make lint         ruff, mypy and the import contracts (lint-imports) only"
	@echo "make bench        benchmarks against targets: prints a table, writes bench-results.json (QUICK=1: smoke run)"
	@echo "make engines      the workflow engines the tests run against, each in its own env under .engines/"
	@echo "make soak         500 rounds of SIGKILL-and-restart (tests/test_crash.py); not part of make test"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "approval-console needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# Prefect 3 for tests/test_prefect.py and the bench: its own env, so its pins never constrain the console's.
PREFECT_ENGINE := .engines/prefect/.installed
$(PREFECT_ENGINE):
	$(PYTHON) -m venv .engines/prefect
	.engines/prefect/bin/python -m pip install --quiet 'prefect==3.*'
	@touch $@

engines: $(PREFECT_ENGINE)

demo: $(STAMP)
	$(BIN)/approval-console demo

test: $(STAMP) engines
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory lint

# Unit tests only (no servers, no Pilot, no CLI processes; tests/kinds.py sorts them): seconds, not minutes.
unit: $(STAMP)
	$(BIN)/python -m pytest -m "unit and not slow"

# The crash harness at length: 25 rounds run in `make test`, here 500 (a few minutes).
soak: $(STAMP)
	APPROVAL_CONSOLE_CRASH_ROUNDS=500 $(BIN)/python -m pytest tests/test_crash.py --timeout=3600 -q -s

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

screenshots: $(STAMP)
	$(BIN)/python -m console.tui.screenshots screenshots

bench: $(STAMP) engines
	$(BIN)/python -m tests.bench $(if $(QUICK),--quick) $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf $(VENV) .engines .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
