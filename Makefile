# twinplane — every command the README, the developers and CI use. `make help` lists them.
#
# Nothing needs an activated virtualenv: every tool runs from .venv/bin. The Rust extension is
# built by maturin as part of the editable install (`pip install -e '.[test,bench]'`), into
# python/twinplane/_engine*.so, and rebuilt when pyproject.toml or a Rust source changes.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
MAKEFLAGS += --no-builtin-rules --warn-undefined-variables

PYTHON ?= python3
CARGO ?= cargo
BENCH_ARGS ?=
# `make bench`'s load-test run (twinplane bench scale, python/twinplane/loadtest/): seconds
# measured (60 meets the duration target) and extra flags.
BENCH_DURATION ?= 60
BENCH_SCALE_ARGS ?=
# `make run`'s options for twinplane up (e.g. UP_ARGS='--devices 1000 --home /tmp/tp').
UP_ARGS ?=
# `make bench-cloud`'s options for bench/cloud_sync.py (e.g. BENCH_CLOUD_ARGS='--nodes 2 --no-baseline').
BENCH_CLOUD_ARGS ?=
# `make bench-calls`'s options for bench/calls.py (e.g. BENCH_CALLS_ARGS='--duration 20 --concurrency 1 4 16').
BENCH_CALLS_ARGS ?=
# `make kube-up`'s options for tools/kube/cluster.py (e.g. KUBE_UP_ARGS='--workdir /tmp/k').
KUBE_UP_ARGS ?=

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

# Protocol modules: each .proto source (dir/stem.proto under proto/) and the package its generated
# Python is committed in. DMI v1beta1 is KubeEdge's; twinplane.v1 is the fast path (TwinStream).
DMI_PROTO := dmi/v1beta1/api.proto
DMI_PKG := python/twinplane/dmi/v1beta1
STREAM_PROTO := twinplane/v1/stream.proto
STREAM_PKG := python/twinplane/stream/v1
# $(call gen-proto,DIR,STEM,MODULE,OUT): generate STEM_pb2.py, STEM_pb2.pyi and STEM_pb2_grpc.py
# from proto/DIR/STEM.proto into OUT, for the Python package MODULE. protoc is run with -I proto,
# so the descriptor keeps the source's name (e.g. dmi/v1beta1/api.proto, what reflection clients
# see), and its Python imports say DIR with dots (`dmi.v1beta1`); sed rewrites the two places
# that name the module (the gRPC module's import of STEM_pb2, the message classes' __module__) to
# MODULE, and grep fails the build if grpcio-tools ever emits another spelling. The output
# depends only on the source and the grpcio-tools version (pinned in pyproject.toml).
gen-proto = ( gen=$$(mktemp -d); trap 'rm -rf "$$gen"' EXIT; \
	src='$(subst /,\.,$(1))'; \
	$(PY) -m grpc_tools.protoc -I proto --python_out="$$gen" --pyi_out="$$gen" \
		--grpc_python_out="$$gen" $(1)/$(2).proto; \
	sed -i -e "s/^from $$src import $(2)_pb2 /from $(3) import $(2)_pb2 /" \
		-e "s/(DESCRIPTOR, '$$src\.$(2)_pb2', /(DESCRIPTOR, '$(3).$(2)_pb2', /" \
		"$$gen"/$(1)/$(2)_pb2*.py; \
	if grep -nE "^(from|import) $$src\b|'$$src\.$(2)_pb2" "$$gen"/$(1)/$(2)_pb2*.py; then \
		echo "error: grpcio-tools names the module differently; update gen-proto in the Makefile" >&2; \
		exit 1; fi; \
	mkdir -p $(4); \
	cp "$$gen"/$(1)/$(2)_pb2.py "$$gen"/$(1)/$(2)_pb2.pyi "$$gen"/$(1)/$(2)_pb2_grpc.py $(4)/ )
gen-dmi = $(call gen-proto,dmi/v1beta1,api,twinplane.dmi.v1beta1,$(1))
gen-stream = $(call gen-proto,twinplane/v1,stream,twinplane.stream.v1,$(1))

.PHONY: help venv dev kube-tools interop-tools kube-up test lint fmt run bench bench-alarms bench-calls bench-cloud proto proto-check clean FORCE

help: ## Show this list of targets
	@printf 'twinplane make targets:\n\n'
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'
	@printf '\nVariables: PYTHON=%s (3.11+)  CARGO=%s  BENCH_ARGS=%s  BENCH_DURATION=%s  BENCH_SCALE_ARGS=%s  UP_ARGS=%s\n' \
		'$(PYTHON)' '$(CARGO)' '$(BENCH_ARGS)' '$(BENCH_DURATION)' '$(BENCH_SCALE_ARGS)' '$(UP_ARGS)'

venv: $(VENV_STAMP) ## Create .venv (Python 3.11+) with an up-to-date pip

$(VENV_STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "error: twinplane needs Python 3.11+; '$(PYTHON)' is $$($(PYTHON) -V 2>&1)." \
		     "Run e.g. 'make PYTHON=python3.11 ...'" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

dev: $(DEV_STAMP) ## Install twinplane editable with its test and bench extras (builds the Rust extension)

$(DEV_STAMP): $(VENV_STAMP) pyproject.toml $(RUST_SOURCES) $(if $(ENGINE_SO),,FORCE)
	@command -v $(CARGO) >/dev/null \
		|| { echo "error: '$(CARGO)' not found: a Rust toolchain is needed (rustup.rs)." >&2; exit 1; }
	$(BIN)/pip install --editable '.[test,bench]'
	touch $@

# The tests' Kubernetes control plane (tests/kube_cluster.py): built with Go into a cache outside
# the clone; the script's stamp makes a re-run with nothing changed return at once.
kube-tools: ## Build kube-apiserver, kubectl and etcd for the tests (tools/kube/build.sh; needs Go)
	tools/kube/build.sh

# KubeEdge's own code as the peer (interop/): mapper-framework-modbus and the DMI client
# (interop/go), edgecore-dmi (interop/edgecore: EdgeCore's DMI server), built with Go into a cache
# outside the clone (tools/interop/build.sh; instant when nothing changed, minutes cold).
interop-tools: ## Build interop/'s programs (KubeEdge's mapper-framework, DMI stubs, EdgeCore's DMI server; needs Go)
	tools/interop/build.sh

kube-up: dev kube-tools ## A local kube-apiserver + etcd with deploy/ applied, to try twinplane cloud on (tools/kube/cluster.py; Ctrl-C stops it)
	$(PY) tools/kube/cluster.py --deploy $(KUBE_UP_ARGS)

test: dev kube-tools interop-tools ## Run cargo test, pytest, then the engine tests again under PYTHONMALLOC=debug
	$(CARGO) test --workspace --exclude twin-py
	$(PY) -m pytest
	PYTHONMALLOC=debug $(PY) -m pytest -m engine -q -p no:cacheprovider

lint: dev proto-check ## Protocol code freshness, ruff, mypy --strict, stubtest, cargo fmt --check, clippy, gofmt, go vet
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict
	$(PY) -m mypy.stubtest twinplane._engine --allowlist stubtest-allowlist.txt \
		--mypy-config-file pyproject.toml
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@echo "gofmt -l interop && go vet ./... (interop/go, interop/edgecore)"
	@test -z "$$(gofmt -l interop)" || { gofmt -l interop; echo "error: gofmt would change these files" >&2; exit 1; }
	cd interop/go && go vet ./...
	cd interop/edgecore && go vet ./...

fmt: dev ## Format and auto-fix: ruff check --fix, ruff format, cargo fmt
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(CARGO) fmt --all

run: dev ## Start the embedded default (twinplane up; UP_ARGS=... for its options)
	$(BIN)/twinplane up $(UP_ARGS)

bench: dev ## Run the micro-benchmarks in bench/ (engine, DMI ingest, Modbus poll), then the load test (bench scale --scenario 1k)
	$(PY) bench/engine.py $(BENCH_ARGS)
	$(PY) bench/dmi_ingest.py $(BENCH_ARGS)
	$(PY) bench/modbus_poll.py $(BENCH_ARGS)
	$(BIN)/twinplane bench scale --scenario 1k --duration $(BENCH_DURATION) \
		--out bench-results/scale-1k $(BENCH_SCALE_ARGS)

bench-alarms: dev ## Alarm rules' cost: the edge engine's pass over 10,000 devices x 10 properties with a rule on every property vs none (bench/alarm_rules.py)
	$(PY) bench/alarm_rules.py $(BENCH_ARGS)

bench-calls: dev ## Method calls end to end (REST -> edge -> mapper -> device -> result): calls/s, latency, and the alarm rules' cost (bench/calls.py)
	$(PY) bench/calls.py --json bench-results/calls.json $(BENCH_CALLS_ARGS)

bench-cloud: dev kube-tools ## Cloud sync: twinplane vs KubeEdge's upstream shape (Go, client-go) on kube-apiserver, and the embedded registry
	$(PY) bench/cloud_sync.py --json bench-results/cloud-sync.json $(BENCH_CLOUD_ARGS)

proto: dev ## Regenerate the DMI v1beta1 and TwinStream Python modules from proto/ (committed)
	@echo "grpc_tools.protoc $(DMI_PROTO) -> $(DMI_PKG)/"
	@$(call gen-dmi,$(DMI_PKG))
	@echo "grpc_tools.protoc $(STREAM_PROTO) -> $(STREAM_PKG)/"
	@$(call gen-stream,$(STREAM_PKG))

proto-check: dev ## Fail if the committed protocol modules differ from what make proto makes
	@out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; \
	$(call gen-dmi,"$$out/dmi"); \
	$(call gen-stream,"$$out/stream"); \
	diff -r -u --exclude=__init__.py --exclude=__pycache__ "$$out/dmi" $(DMI_PKG) \
		&& diff -r -u --exclude=__init__.py --exclude=__pycache__ "$$out/stream" $(STREAM_PKG) \
		|| { echo "error: generated protocol code is stale: run make proto" >&2; exit 1; }

clean: ## Remove .venv, build output (target/ too) and caches
	rm -rf $(VENV) target dist build .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks
	find python -name '*.so' -delete
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

FORCE:
