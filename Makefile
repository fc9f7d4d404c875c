# gradzoo: `make demo` (set up, build, run the flagship demo) and `make test` (set up, build,
# run every test). Both work from a fresh clone on Debian 12.
SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)
PORT ?= 50551
DATA ?= gradzoo-data
export OMP_WAIT_POLICY ?= PASSIVE
# ccache keys relative to the checkout, so any clone (CI's too) reuses earlier compilations.
export CCACHE_BASEDIR ?= $(CURDIR)

.PHONY: all setup configure build test lint-proto test-unit test-core-only demo serve clean bench \
        sanitize fuzz

all: build

setup:
	@scripts/setup.sh

configure: setup
	@if [[ ! -f $(BUILD)/build.ninja ]]; then \
	  cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release; fi

build: configure
	@ninja -C $(BUILD) -j $(JOBS)

lint-proto: setup
	@cd proto && ../tools/node_modules/.bin/buf lint && echo "buf lint: clean"

test-unit: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The core-only build (no gRPC): what a GPU machine builds against its own LibTorch.
test-core-only: setup
	@cmake -S . -B $(BUILD)-core -G Ninja -DGRADZOO_CORE_ONLY=ON >/dev/null
	@ninja -C $(BUILD)-core -j $(JOBS) gradzoo_core_tests
	@$(BUILD)-core/tests/gradzoo_core_tests --gtest_brief=1

test: lint-proto test-unit test-core-only

serve: build
	$(BUILD)/gradzoo-server --listen 127.0.0.1:$(PORT) --data-dir $(DATA)

demo: build
	@scripts/demo.sh $(BUILD) $(PORT) $(DATA)

# Benchmarks against PyTorch (not part of make test; see tests/bench/*README.md).
bench: setup
	@cmake -S . -B $(BUILD) -G Ninja -DGRADZOO_BUILD_BENCH=ON >/dev/null
	@ninja -C $(BUILD) -j $(JOBS)
	@for s in tests/bench/run_*_bench.sh tests/bench/analysis_bench.sh; do [[ -x $$s ]] && $$s; done
	@tests/bench/embed_bench.sh $(BUILD)

# ASan + UBSan build of the suite (build-asan/) and its core and server tests.
sanitize: setup
	@scripts/sanitize.sh

# libFuzzer targets (clang, ASan + UBSan) for FUZZ_SECONDS each (make test runs them 15 s).
FUZZ_SECONDS ?= 60
fuzz: setup
	@tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(BUILD)-core
