# lastseen - the two commands a user needs are `make run` and `make test`.
# CMake does the build; this file installs what is missing and drives it.

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
PYTHON     ?= /usr/bin/python3
ARGS       ?=

# Debian 12 packages needed to build, test and run.
DEB_PKGS = build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libinih-dev \
           libxxhash-dev libcmocka-dev liblmdb-dev python3 python3-pytest curl faketime

# Only for `make bench`: the load tools, Redis for the comparison, valgrind for callgrind.
BENCH_DEB_PKGS = wrk redis-server valgrind

# `make bench` sizes: N of the end-to-end jobs, the largest size of the growth
# table (10000000 adds the 10M row: the daemon then needs up to 8 GiB of RAM and
# the driver 2), runs per figure.
BENCH_DEVICES ?= 1000000
BENCH_MAX     ?= 1000000
BENCH_RUNS    ?= 3
BENCH_OUT     ?= $(BUILD)/bench-results.md
BENCH_ARGS    ?=
BENCH_SUITE = $(PYTHON) bench/suite.py --bin $(BUILD)/lastseen --bench $(BUILD)/lastseen-bench \
              --devices $(BENCH_DEVICES) --max $(BENCH_MAX) --runs $(BENCH_RUNS) --out $(BENCH_OUT) $(BENCH_ARGS)

.PHONY: all deps bench-deps build run test unit blackbox test-asan bench bench-docs bench-store profile fuzz \
        clean format

all: build

deps:
	@./scripts/deps.sh $(DEB_PKGS)

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

run: deps build
	$(BUILD)/lastseen $(ARGS)

test: deps build unit blackbox

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

blackbox: build
	LASTSEEN_BIN=$(CURDIR)/$(BUILD)/lastseen $(PYTHON) -m pytest -q tests/blackbox

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLS_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LASTSEEN_BIN=$(CURDIR)/$(ASAN_BUILD)/lastseen $(PYTHON) -m pytest -q tests/blackbox

bench-deps: deps
	@./scripts/deps.sh $(BENCH_DEB_PKGS)

# The benchmark suite (docs/benchmarks.md): about 6.5 minutes with the defaults;
# results in $(BENCH_OUT).  bench-docs also replaces the generated section of
# docs/benchmarks.md.
bench: bench-deps build
	$(BENCH_SUITE)

bench-docs: bench-deps build
	$(BENCH_SUITE) --docs docs/benchmarks.md

# Frame pointers and debug info, for perf record -g and valgrind.
profile: deps
	cmake -S . -B build-prof -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLS_PROFILE=ON >/dev/null
	cmake --build build-prof -j $(JOBS)

# Store: flush cost, events committed/s, restart time at 1M and 10M devices (~1 GiB of disk).
bench-store: deps build
	$(BUILD)/lastseen-bench store-flush --devices 100000 --store-devices 1000000
	$(BUILD)/lastseen-bench store-events --sizes 1,100,10000
	$(PYTHON) bench/restart.py --bin $(BUILD)/lastseen --bench $(BUILD)/lastseen-bench --devices 1000000,10000000

# libFuzzer targets (clang): run e.g. build-fuzz/fuzz_input -max_total_time=60
fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DLS_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target fuzz_input
	build-fuzz/fuzz_input -max_total_time=60

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz build-prof
