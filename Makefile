# The two set-up commands of the README: `make serve` and `make test`. Both work on a fresh
# machine: they create .venv and install into it first (again only when pyproject.toml changed).
# `make serve` installs what serving needs and no more (no torch: the placeholder answers in
# about a minute on a fresh machine); `make serve-models` adds the diffusers extra for the models
# of docs/diffusers.md; `make test` installs everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.installed-core
MODELS := $(VENV)/.installed-models
FULL := $(VENV)/.installed-full
# openai-node for tests/e2e/node, installed from its lockfile.
NODE_SDK := tests/e2e/node/node_modules/.package-lock.json

.PHONY: serve serve-models test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(CORE): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(MODELS): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[diffusers]'
	touch $@ $(CORE)

$(FULL): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench,diffusers]'
	touch $@ $(MODELS) $(CORE)

$(NODE_SDK): tests/e2e/node/package-lock.json
	npm ci --prefix tests/e2e/node --no-audit --no-fund --loglevel=error

serve: $(CORE)
	$(BIN)/easel serve $(ARGS)

serve-models: $(MODELS)
	$(BIN)/easel serve $(ARGS)

test: $(FULL) $(NODE_SDK)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: $(FULL)
	$(BIN)/ruff check src tests bench && $(BIN)/ruff format --check src tests bench && $(BIN)/mypy

bench: $(FULL)
	$(BIN)/python -m bench.latency --out docs/bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis tests/e2e/node/node_modules
