# mesh-py developer entry points. `make demo` and `make test` work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format codegen codegen-check bench bench-full bench-node redis-check clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

redis-check:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "redis-server not found: installing it with apt-get (tests start private Redis servers)"; \
	  (apt-get update -qq && apt-get install -y -qq redis-server) || { \
	    echo "ERROR: redis-server is required for the Redis test suite and could not be installed." >&2; exit 1; }; }

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mesh codegen contract/mesh --out mesh_sdk/protocol/generated --check

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

codegen: $(STAMP)
	$(BIN)/mesh codegen contract/mesh --out mesh_sdk/protocol/generated

test: $(STAMP) redis-check lint
	$(BIN)/pytest -q

# The bare Node `ws` floor of the benchmark (bench/node, versions pinned by its lockfile). Without
# node the table says so and omits that floor.
bench-node:
	@if command -v npm >/dev/null 2>&1; then \
	  [ -d bench/node/node_modules/ws ] || (cd bench/node && npm ci --no-audit --no-fund --silent); \
	else echo "WARNING: node/npm not found: the benchmark table will have no Node floor" >&2; fi

# Quick mode (under two minutes); bench-full (or BENCH=full make bench) for release notes.
bench: $(STAMP) redis-check bench-node
	$(BIN)/python -m bench

bench-full: $(STAMP) redis-check bench-node
	BENCH=full $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
