# mesh-py developer entry points. `make demo` and `make test` work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format codegen codegen-check bench bench-full bench-node fuzz redis-check docs clean

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

# Every committed Python package codegen owns (the tests check the same trees for drift).
PY_OUTPUTS := contract/mesh:mesh_sdk/protocol/generated examples/chat/contract:examples/chat/generated \
	examples/tictactoe/contract:examples/tictactoe/generated \
	tests/codegen/golden/contract:tests/codegen/golden/expected
# TypeScript bindings need node; `mesh codegen --lang ts` installs codegen/ts's pinned packages.
TS_OUTPUTS := tests/codegen/golden/contract:tests/codegen/golden/expected-ts \
	examples/chat/contract:examples/chat/web/generated
# Hand-written TypeScript (negative.ts keeps one statement per line, so prettier skips it).
TS_SOURCES := codegen/ts/contract.ts codegen/ts/runtime.ts codegen/ts/subscriptions.ts codegen/ts/generate.mjs \
	tests/codegen/ts/fake-client.ts tests/codegen/ts/js-client.ts tests/codegen/ts/usage.ts \
	tests/codegen/ts/*.test.ts
no_node = "!!! node not found: $(1) Install Node >= 20 and npm. !!!"

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	@for pair in $(PY_OUTPUTS); do \
	  $(BIN)/mesh codegen $${pair%%:*} --out $${pair#*:} --check || exit 1; \
	done
	@if command -v node >/dev/null 2>&1; then \
	  for pair in $(TS_OUTPUTS); do \
	    $(BIN)/mesh codegen $${pair%%:*} --lang ts --out $${pair#*:} --check || exit 1; \
	  done; \
	  codegen/ts/node_modules/.bin/prettier --config codegen/ts/.prettierrc.json --check $(TS_SOURCES); \
	else echo $(call no_node,the TypeScript bindings are NOT drift-checked.); fi

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

codegen: $(STAMP)
	@for pair in $(PY_OUTPUTS); do \
	  $(BIN)/mesh codegen $${pair%%:*} --out $${pair#*:} || exit 1; \
	done
	@if command -v node >/dev/null 2>&1; then \
	  for pair in $(TS_OUTPUTS); do \
	    $(BIN)/mesh codegen $${pair%%:*} --lang ts --out $${pair#*:} || exit 1; \
	  done; \
	else echo $(call no_node,the TypeScript bindings are NOT regenerated.); fi

# The API reference is rendered from the docstrings: a broken reference or link fails the build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

test: $(STAMP) redis-check lint docs
	@if command -v node >/dev/null 2>&1; then \
	  $(BIN)/pytest -q; \
	else \
	  echo; echo $(call no_node,the TypeScript codegen tests (pytest -m node) are NOT run.); echo; \
	  $(BIN)/pytest -q -m "not node" && { echo; echo $(call no_node,the TypeScript codegen tests (pytest -m node) are NOT run.); }; \
	fi

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

# Hostile-input fuzzing (tests/fuzz): N frames per backend, reproducible by SEED; BACKEND=memory or
# redis runs one backend. `make test` runs the short CI slice of the same test.
N ?= 100000
SEED ?= 20261204
BACKEND ?=
fuzz: $(STAMP) redis-check
	MESH_FUZZ_FRAMES=$(N) MESH_FUZZ_SEED=$(SEED) $(BIN)/pytest tests/fuzz -q -s -p no:cacheprovider \
	  -k "test_hostile_frames$(if $(BACKEND), and $(BACKEND))"

clean:
	rm -rf $(VENV) site .mypy_cache .pytest_cache .ruff_cache .hypothesis codegen/ts/node_modules
