# The two set-up commands of the README: `make serve` and `make test`. Both work on a fresh
# machine: they create .venv and install easel into it first (only when pyproject.toml changed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# openai-node for tests/e2e/node, installed from its lockfile.
NODE_SDK := tests/e2e/node/node_modules/.package-lock.json

.PHONY: serve test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench,diffusers]'
	touch $(STAMP)

$(NODE_SDK): tests/e2e/node/package-lock.json
	npm ci --prefix tests/e2e/node --no-audit --no-fund --loglevel=error

serve: $(STAMP)
	$(BIN)/easel serve

test: $(STAMP) $(NODE_SDK)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench && $(BIN)/ruff format --check src tests bench && $(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.latency --out docs/bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis tests/e2e/node/node_modules
