# twinplane — every command the README, the developers and CI use. `make help` lists them.
#
# Nothing needs an activated virtualenv: every tool runs from .venv/bin. The Rust extension is
# built by maturin as part of the editable install (`pip install -e '.[test]'`), into
# python/twinplane/_engine*.so, and rebuilt when pyproject.toml or a Rust source changes.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
MAKEFLAGS += --no-builtin-rules --warn-undefined-variables

PYTHON ?= python3
CARGO ?= cargo
BENCH_ARGS ?=

VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
VENV_STAMP := $(VENV)/.stamp-venv
DEV_STAMP := $(VENV)/.stamp-dev

# What the native module is built from: a change to any of these reinstalls (and rebuilds).
RUST_SOURCES := Cargo.toml $(wildcard Cargo.lock) \
	$(shell find rust -type f \( -name '*.rs' -o -name 'Cargo.toml' \) 2>/dev/null)
# Rebuild as well when the built module is missing (e.g. deleted by hand).
ENGINE_SO := $(wildcard python/twinplane/_engine*.so)

# DMI v1beta1: the .proto source and the package its generated Python is committed in.
DMI_PROTO := dmi/v1beta1/api.proto
DMI_PKG := python/twinplane/dmi/v1beta1
# $(call gen-dmi,DIR): generate api_pb2.py, api_pb2.pyi and api_pb2_grpc.py into DIR. protoc is
# run with -I proto, so the descriptor keeps the source's name (dmi/v1beta1/api.proto, what
# reflection clients see), and its Python imports say `dmi.v1beta1`; sed rewrites the two places
# that name the module (the gRPC module's import of api_pb2, the message classes' __module__) to
# `twinplane.dmi.v1beta1`, and grep fails the build if grpcio-tools ever emits another spelling.
# The output depends only on the source and the grpcio-tools version (pinned in pyproject.toml).
gen-dmi = ( gen=$$(mktemp -d); trap 'rm -rf "$$gen"' EXIT; \
	$(PY) -m grpc_tools.protoc -I proto --python_out="$$gen" --pyi_out="$$gen" \
		--grpc_python_out="$$gen" $(DMI_PROTO); \
	sed -i -e 's/^from dmi\.v1beta1 import api_pb2 /from twinplane.dmi.v1beta1 import api_pb2 /' \
		-e "s/(DESCRIPTOR, 'dmi\.v1beta1\.api_pb2', /(DESCRIPTOR, 'twinplane.dmi.v1beta1.api_pb2', /" \
		"$$gen"/dmi/v1beta1/api_pb2*.py; \
	if grep -nE "^(from|import) dmi\b|'dmi\.v1beta1\." "$$gen"/dmi/v1beta1/api_pb2*.py; then \
		echo "error: grpcio-tools names the module differently; update gen-dmi in the Makefile" >&2; \
		exit 1; fi; \
	mkdir -p $(1); \
	cp "$$gen"/dmi/v1beta1/api_pb2.py "$$gen"/dmi/v1beta1/api_pb2.pyi \
		"$$gen"/dmi/v1beta1/api_pb2_grpc.py $(1)/ )

.PHONY: help venv dev test lint fmt run bench proto proto-check clean FORCE

help: ## Show this list of targets
	@printf 'twinplane make targets:\n\n'
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'
	@printf '\nVariables: PYTHON=%s (3.11+)  CARGO=%s  BENCH_ARGS=%s\n' '$(PYTHON)' '$(CARGO)' '$(BENCH_ARGS)'

venv: $(VENV_STAMP) ## Create .venv (Python 3.11+) with an up-to-date pip

$(VENV_STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "error: twinplane needs Python 3.11+; '$(PYTHON)' is $$($(PYTHON) -V 2>&1)." \
		     "Run e.g. 'make PYTHON=python3.11 ...'" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

dev: $(DEV_STAMP) ## Install twinplane editable with its test extra (builds the Rust extension)

$(DEV_STAMP): $(VENV_STAMP) pyproject.toml $(RUST_SOURCES) $(if $(ENGINE_SO),,FORCE)
	@command -v $(CARGO) >/dev/null \
		|| { echo "error: '$(CARGO)' not found: a Rust toolchain is needed (rustup.rs)." >&2; exit 1; }
	$(BIN)/pip install --editable '.[test]'
	touch $@

test: dev ## Run cargo test, pytest, then the engine tests again under PYTHONMALLOC=debug
	$(CARGO) test --workspace --exclude twin-py
	$(PY) -m pytest
	PYTHONMALLOC=debug $(PY) -m pytest -m engine -q -p no:cacheprovider

lint: dev proto-check ## DMI code freshness, ruff, mypy --strict, stubtest, cargo fmt --check, clippy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict
	$(PY) -m mypy.stubtest twinplane._engine --allowlist stubtest-allowlist.txt \
		--mypy-config-file pyproject.toml
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: dev ## Format and auto-fix: ruff check --fix, ruff format, cargo fmt
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(CARGO) fmt --all

run: dev ## Start the embedded default (twinplane up)
	$(BIN)/twinplane up

bench: dev ## Run the benchmarks: engine, DMI ingest, Modbus poll (BENCH_ARGS=--json: JSON lines)
	$(PY) bench/engine.py $(BENCH_ARGS)
	$(PY) bench/dmi_ingest.py $(BENCH_ARGS)
	$(PY) bench/modbus_poll.py $(BENCH_ARGS)

proto: dev ## Regenerate the DMI v1beta1 Python modules from proto/ (committed in the package)
	@echo "grpc_tools.protoc $(DMI_PROTO) -> $(DMI_PKG)/"
	@$(call gen-dmi,$(DMI_PKG))

proto-check: dev ## Fail if the committed DMI Python modules differ from what make proto makes
	@out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; \
	$(call gen-dmi,"$$out"); \
	diff -r -u --exclude=__init__.py --exclude=__pycache__ "$$out" $(DMI_PKG) \
		|| { echo "error: generated DMI code is stale: run make proto" >&2; exit 1; }

clean: ## Remove .venv, build output (target/ too) and caches
	rm -rf $(VENV) target dist build .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks
	find python -name '*.so' -delete
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

FORCE:
