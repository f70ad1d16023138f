# Heartline development tasks. `make serve` and `make test` set everything up first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build; installed before the project so that no CUDA build is pulled in.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
# The pages' tests drive Debian's Chromium (tests/fixtures/browser.py).
CHROMIUM ?= /usr/bin/chromium

.PHONY: serve test browser lint typecheck unit bench clean

# The development install has the train extra: the tests train and evaluate models.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,train]"
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/heartline serve $(ARGS)

test: browser lint typecheck
	$(BIN)/python -m pytest -ra $(ARGS)

# Install Chromium for the browser tests where it is missing and this user may.
browser:
	@if [ -x "$(CHROMIUM)" ]; then \
		:; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "No Chromium at $(CHROMIUM) and no root apt-get to install it: the browser tests will be skipped (CI=true fails them)."; \
	fi

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
