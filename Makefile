# coreserve: `make serve` to run the server, `make test` to run every test. Both install what is missing.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
PYTHON := $(CURDIR)/.venv/bin/python

ARM64_BUILD_DIR ?= build-arm64
HOST_ARCH := $(shell uname -m)

.PHONY: all deps build models serve test unit-test arm64-test e2e-test test-asan test-tsan fuzz load-test bench bench-kernels bench-models bench-serving bench-placement container container-test clean

all: build

# Debian packages (apt, with sudo when not root) and the pinned Python venv; both skip what is present.
deps:
	@scripts/install-deps.sh
	@scripts/setup-venv.sh
	@scripts/setup-venv.sh .venv-deploy scripts/requirements-deploy.txt --no-deps

build: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCORESERVE_PYTHON=$(PYTHON) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# The default model repository is generated as part of the build (the `models` target).
models: build

serve: build
	@echo "coreserve: HTTP on :8000, gRPC on :8001, metrics on :8002. Try, from another shell:"
	@printf '%s\n' "  curl -s -o /dev/null -w '%{http_code}\n' localhost:8000/v2/health/ready"
	@echo "  curl -s localhost:8000/v2/models/bert_tiny"
	@echo "Stop with Ctrl-C."
	@exec $(BUILD_DIR)/coreserve serve --config config/default.yaml

unit-test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# arm64 kernels and their tests, cross-built and run under qemu-aarch64-static -cpu max (x86-64 hosts only;
# on an arm64 host the native unit tests already run them).
arm64-test: deps
ifeq ($(HOST_ARCH),x86_64)
	@cmake -S . -B $(ARM64_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCORESERVE_KERNELS_ONLY=ON >/dev/null
	@cmake --build $(ARM64_BUILD_DIR) -j $(JOBS)
	@cd $(ARM64_BUILD_DIR) && ctest --output-on-failure -j $(JOBS)
else
	@echo "arm64-test: native $(HOST_ARCH) host; the unit tests cover its kernels"
endif

e2e-test: build
	@if [ "$$(uname -m)" = x86_64 ]; then scripts/setup-perf-analyzer.sh; fi
	@CORESERVE_BIN=$(CURDIR)/$(BUILD_DIR)/coreserve $(PYTHON) -m pytest tests/e2e

# Sanitizers (docs/SECURITY.md): every unit test, then the end-to-end tests against the sanitized server, in a
# build of their own. A finding stops the process with a report: a unit test fails, and a server's log is checked
# for reports when it stops (tests/e2e/conftest.py). test-tsan runs every unit test, then the end-to-end tests
# against the ThreadSanitizer server. Debian's gRPC, Abseil, httplib and OpenSSL are not instrumented, and TSan
# cannot see the synchronization inside them: tests/tsan_suppressions.txt drops the reports that stem from them
# (and with them, any in the gRPC frontend's handlers); the HTTP frontend, runners, batcher and pipeline are checked.
ASAN_BUILD_DIR ?= build-asan
TSAN_BUILD_DIR ?= build-tsan
SANITIZER_E2E := tests/e2e --ignore=tests/e2e/test_deploy.py --ignore=tests/e2e/test_perf_analyzer.py
export ASAN_OPTIONS ?= detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS ?= halt_on_error=1:second_deadlock_stack=1:history_size=7
# The uninstrumented libraries' reports (see test-tsan above).
TSAN_RUN_OPTIONS = $(TSAN_OPTIONS):suppressions=$(CURDIR)/tests/tsan_suppressions.txt

test-asan: deps
	@cmake -S . -B $(ASAN_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DCORESERVE_SANITIZE=address,undefined \
	  -DCORESERVE_BUILD_BENCH=OFF -DCORESERVE_PYTHON=$(PYTHON) >/dev/null
	@cmake --build $(ASAN_BUILD_DIR) -j $(JOBS)
	@cd $(ASAN_BUILD_DIR) && ctest --output-on-failure -j $(JOBS)
	@CORESERVE_BIN=$(CURDIR)/$(ASAN_BUILD_DIR)/coreserve $(PYTHON) -m pytest -q $(SANITIZER_E2E)

test-tsan: deps
	@cmake -S . -B $(TSAN_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DCORESERVE_SANITIZE=thread \
	  -DCORESERVE_BUILD_BENCH=OFF -DCORESERVE_PYTHON=$(PYTHON) >/dev/null
	@cmake --build $(TSAN_BUILD_DIR) -j $(JOBS)
	@cd $(TSAN_BUILD_DIR) && TSAN_OPTIONS=$(TSAN_RUN_OPTIONS) ctest --output-on-failure -j $(JOBS)
	@TSAN_OPTIONS=$(TSAN_RUN_OPTIONS) CORESERVE_BIN=$(CURDIR)/$(TSAN_BUILD_DIR)/coreserve \
	  $(PYTHON) -m pytest -q $(SANITIZER_E2E)

# Fuzzing (tests/fuzz/README.md): the parsers' libFuzzer targets built with clang, ASan and UBSan, each run for
# FUZZ_SECONDS; a finding stops with exit 1 and its input under $(FUZZ_BUILD_DIR)/fuzz-artifacts. Not part of
# `make test`, which runs the committed corpora instead (ctest's FuzzCorpus.* in every build).
FUZZ_BUILD_DIR ?= build-fuzz
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= http_infer grpc_infer tfs_predict config onnx_load
fuzz: deps
	@scripts/install-deps.sh --fuzz
	@CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Sanitize \
	  -DCORESERVE_SANITIZE=address,undefined -DCORESERVE_FUZZ=ON -DCORESERVE_BUILD_BENCH=OFF \
	  -DCORESERVE_PYTHON=$(PYTHON) >/dev/null
	@cmake --build $(FUZZ_BUILD_DIR) -j $(JOBS) --target $(addsuffix _fuzz,$(FUZZ_TARGETS))
	@scripts/fuzz.sh $(FUZZ_BUILD_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Load tests (load-tests/README.md): protocol overhead, overload, soak (LOAD_SOAK_SECONDS), faults and AWS's
# Inferentia table against the real server on loopback; the report and plots go to load-tests/reports/latest.
# About 25 minutes with the defaults; LOAD_SCENARIOS picks some. Exit 1 when a scenario's check fails.
LOAD_SCENARIOS ?= protocol,overload,soak,faults,inferentia
LOAD_SOAK_SECONDS ?= 600
load-test: build
	@scripts/setup-venv.sh .venv-load scripts/requirements-load.txt
	@scripts/setup-perf-analyzer.sh
	@if echo "$(LOAD_SCENARIOS)" | grep -q inferentia; then \
	  scripts/setup-venv.sh .venv-export scripts/requirements-export.txt && \
	  $(EXPORT_PYTHON) scripts/make_bench_models.py --out $(BUILD_DIR)/bench-models; fi
	@.venv-load/bin/python load-tests/run.py --coreserve-bin $(BUILD_DIR)/coreserve \
	  --perf-analyzer .perf-analyzer/perf_analyzer --out load-tests/reports/latest --scenarios $(LOAD_SCENARIOS) \
	  --soak-seconds $(LOAD_SOAK_SECONDS) --bench-models $(BUILD_DIR)/bench-models

# Unit tests (native, then arm64 under qemu), the end-to-end tests against the real binary, then all of them
# again under ASan and UBSan.
test: unit-test arm64-test e2e-test test-asan

# The container images (docs/DEPLOY.md): linux/amd64 and linux/arm64, built with podman from local Debian base
# images (no Docker engine, no registry), then run on the default model repository and checked from outside.
CONTAINER_ARCHES ?= amd64 arm64
container:
	@scripts/container.sh build $(CONTAINER_ARCHES)

container-test: build
	@scripts/container.sh test $(BUILD_DIR)/models $(CONTAINER_ARCHES)

bench: bench-kernels bench-models bench-serving bench-placement

# Kernel benchmarks; the last one runs coreserve's GEMM next to oneDNN (the anchor) on the BERT-base and
# ResNet-50 shapes, and compare_gemm.py turns its JSON into the ratio table ($(BUILD_DIR)/bench_gemm_onednn.md).
# Each case times its two sides in 9 pairs of alternating ~20 ms slices and reports the median ratio within a
# pair: this host's speed drifts by 10-20% over minutes, which a ratio of two separately timed runs would carry.
# Three repetitions, cases in random order; the table takes the median of the three.
bench-kernels: build
	@$(BUILD_DIR)/bench/bench_vadd
	@$(BUILD_DIR)/bench/bench_sgemm --benchmark_out=$(BUILD_DIR)/bench_sgemm.json --benchmark_out_format=json
	@$(BUILD_DIR)/bench/bench_gemm_onednn --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true \
	  --benchmark_out=$(BUILD_DIR)/bench_gemm_onednn.json --benchmark_out_format=json
	@$(PYTHON) bench/compare_gemm.py $(BUILD_DIR)/bench_gemm_onednn.json --markdown $(BUILD_DIR)/bench_gemm_onednn.md

# Runtime vs ONNX Runtime and OpenVINO on full-size models written by the real exporter (random weights, no
# download): BERT-base, DistilBERT, RoBERTa-base, GPT-2, ResNet-50, plus the default small models. Needs the
# export environment (.venv-export, ~3 GB with torch), made here on first use.
EXPORT_PYTHON := $(CURDIR)/.venv-export/bin/python
bench-models: build
	@scripts/setup-venv.sh .venv-export scripts/requirements-export.txt
	@$(EXPORT_PYTHON) scripts/make_bench_models.py --out $(BUILD_DIR)/bench-models
	@cp -rn $(BUILD_DIR)/models/bert_tiny $(BUILD_DIR)/models/resnet_tiny $(BUILD_DIR)/bench-models/
	@$(EXPORT_PYTHON) bench/bench_models.py --bench-bin $(BUILD_DIR)/bench/bench_session --coreserve-bin $(BUILD_DIR)/coreserve \
	  --models $(BUILD_DIR)/bench-models --repeat 3 --json $(BUILD_DIR)/bench_models.json --markdown $(BUILD_DIR)/bench_models.md

# Serving: coreserve against MLServer (its own venv, .venv-mlserver, serving the same ONNX files through ONNX
# Runtime) over HTTP JSON and gRPC at concurrency 1-16, perf_analyzer against coreserve, and BERT-base served vs
# in-process ($(BUILD_DIR)/bench_serving.md). BERT-base comes from bench-models' export (made here if missing).
bench-serving: build
	@scripts/setup-venv.sh .venv-export scripts/requirements-export.txt
	@$(EXPORT_PYTHON) scripts/make_bench_models.py --out $(BUILD_DIR)/bench-models
	@scripts/setup-venv.sh .venv-mlserver scripts/requirements-mlserver.txt
	@scripts/setup-perf-analyzer.sh
	@$(PYTHON) bench/bench_serving.py --coreserve-bin $(BUILD_DIR)/coreserve --bench-bin $(BUILD_DIR)/bench/bench_session \
	  --perf-analyzer .perf-analyzer/perf_analyzer --mlserver-bin .venv-mlserver/bin/mlserver \
	  --bert $(BUILD_DIR)/bench-models/bert_base/1/model.onnx \
	  --json $(BUILD_DIR)/bench_serving.json --markdown $(BUILD_DIR)/bench_serving.md

# Placement: BERT-base and a MiniLM-sized BERT in each layout of the cores ([2], [1, 1], a 2-stage pipeline, and
# the one-core baseline) under perf_analyzer, fp32 and bf16, batch 1 and 6 ($(BUILD_DIR)/bench_placement.md).
bench-placement: build
	@scripts/setup-venv.sh .venv-export scripts/requirements-export.txt
	@$(EXPORT_PYTHON) scripts/make_bench_models.py --out $(BUILD_DIR)/bench-models
	@scripts/setup-perf-analyzer.sh
	@$(PYTHON) bench/bench_placement.py --coreserve-bin $(BUILD_DIR)/coreserve --perf-analyzer .perf-analyzer/perf_analyzer \
	  --models $(BUILD_DIR)/bench-models --json $(BUILD_DIR)/bench_placement.json --markdown $(BUILD_DIR)/bench_placement.md

clean:
	rm -rf $(BUILD_DIR) $(ARM64_BUILD_DIR)
