# coreserve: `make serve` to run the server, `make test` to run every test. Both install what is missing.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
PYTHON := $(CURDIR)/.venv/bin/python

.PHONY: all deps build models serve test unit-test e2e-test bench clean

all: build

# Debian packages (apt, with sudo when not root) and the pinned Python venv; both skip what is present.
deps:
	@scripts/install-deps.sh
	@scripts/setup-venv.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCORESERVE_PYTHON=$(PYTHON) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# The default model repository is generated as part of the build (the `models` target).
models: build

serve: build
	@echo "coreserve: HTTP on :8000, gRPC on :8001, metrics on :8002. Try, from another shell:"
	@echo "  curl -s -o /dev/null -w '%{http_code}\n' localhost:8000/v2/health/ready"
	@echo "  curl -s localhost:8000/v2/models/bert_tiny"
	@echo "Stop with Ctrl-C."
	@exec $(BUILD_DIR)/coreserve serve --config config/default.yaml

unit-test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

e2e-test: build
	@CORESERVE_BIN=$(CURDIR)/$(BUILD_DIR)/coreserve $(PYTHON) -m pytest tests/e2e

# Unit tests first, then the end-to-end tests against the real binary; pytest's summary line ends the run.
test: unit-test e2e-test

bench: build
	@$(BUILD_DIR)/bench/bench_vadd

clean:
	rm -rf $(BUILD_DIR)
