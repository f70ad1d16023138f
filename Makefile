# Heartline development tasks. `make serve` and `make test` set everything up first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build; installed before the project so that no CUDA build is pulled in.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/heartline serve $(ARGS)

test: lint typecheck
	$(BIN)/python -m pytest -ra $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -ra tests/unit $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/ws_load.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
