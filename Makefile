# One command each: `make demo` runs the console on the demo fleet, `make test` runs everything CI runs.
# Both create the virtual environment and install the project first, so a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv demo test unit lint format screenshots clean

help:
	@echo "make demo         open the console on an embedded demo fleet"
	@echo "make test         set up, then run the tests, ruff and mypy (what CI runs)"
	@echo "make screenshots  regenerate screenshots/*.svg from the real app"
	@echo "make lint         ruff and mypy only"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "approval-console needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/approval-console demo

test: $(STAMP)
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory lint

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

screenshots: $(STAMP)
	$(BIN)/python -m console.screenshots screenshots

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
