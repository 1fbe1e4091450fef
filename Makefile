# lastseen - the two commands a user needs are `make run` and `make test`.
# CMake does the build; this file installs what is missing and drives it.

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc)
PYTHON     ?= /usr/bin/python3
ARGS       ?=

# Debian 12 packages needed to build, test and run.  libmosquitto, mosquitto:
# lastseen-sim's MQTT mode and its test; chromium, nodejs: the dashboard's
# browser test (tests/browser, playwright-core from npm); libnats-dev: cluster
# mode's NATS client, nats-server: its tests and scripts/cluster.sh (its
# package also enables a systemd unit on port 4222, which nothing here uses).
DEB_PKGS = build-essential cmake pkg-config libmicrohttpd-dev libgnutls28-dev libjansson-dev libinih-dev \
           libxxhash-dev libcmocka-dev liblmdb-dev libcurl4-openssl-dev libssl-dev \
           python3 python3-pytest curl faketime \
           libmosquitto-dev mosquitto mosquitto-clients libprotobuf-c-dev protobuf-c-compiler \
           openssl python3-paho-mqtt chromium nodejs libnats-dev nats-server

# The browser test: npm ci from the checked-in lock file, then node's test runner.
NPM_CI    = cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
NODE_TEST = node --test --test-reporter=spec tests/browser/dashboard.test.mjs


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


.PHONY: all deps bench-deps build run test unit blackbox browser test-asan test-tsan bench bench-docs bench-store \
        profile fuzz clean format check-format check-layers install

all: build

# npm: Debian's package, unless Node.js came with its own (NodeSource's
# nodejs bundles npm, and Debian's npm package would conflict with it).
deps:
	@./scripts/deps.sh $(DEB_PKGS)
	@command -v npm >/dev/null 2>&1 || ./scripts/deps.sh npm

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

run: deps build
	$(BUILD)/lastseen $(ARGS)

test: deps build unit blackbox browser

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

blackbox: build
	LASTSEEN_BIN=$(CURDIR)/$(BUILD)/lastseen $(PYTHON) -m pytest -q tests/blackbox

# Screenshots: $(BUILD)/dashboard.png and $(BUILD)/dashboard-device.png.
browser: build
	$(NPM_CI)
	LASTSEEN_BIN=$(CURDIR)/$(BUILD)/lastseen SCREENSHOT_DIR=$(CURDIR)/$(BUILD) $(NODE_TEST)

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLS_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp LASTSEEN_BIN=$(CURDIR)/$(ASAN_BUILD)/lastseen $(PYTHON) -m pytest -q tests/blackbox
	$(NPM_CI)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LASTSEEN_BIN=$(CURDIR)/$(ASAN_BUILD)/lastseen SCREENSHOT_DIR=$(CURDIR)/$(ASAN_BUILD) $(NODE_TEST)

# ThreadSanitizer: every unit test, and the black-box files whose daemons run
# the threads that share state (shard workers, committer, MQTT in and out,
# webhooks, event streams, the HTTP connection guard, TLS certificates swapped
# under MHD's threads, UDP keys swapped under the UDP thread, the API tokens
# reloaded under requests and streams, cluster mode's lease, node and NATS threads).  Any report stops the process with exit code 66
# (halt_on_error), which fails ctest and the conftest teardown.  The
# suppressions cover third-party libraries only (tests/tsan.supp).
TSAN_ENV = TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp"
TSAN_BLACKBOX = tests/blackbox/test_shards.py tests/blackbox/test_durability.py tests/blackbox/test_mqtt.py \
                tests/blackbox/test_mqtt_order.py tests/blackbox/test_webhooks.py \
                tests/blackbox/test_events_api.py tests/blackbox/test_outbox.py tests/blackbox/test_ack.py \
                tests/blackbox/test_stats.py tests/blackbox/test_udp.py tests/blackbox/test_udp_auth.py \
                tests/blackbox/test_tls.py tests/blackbox/test_limits.py tests/blackbox/test_auth.py \
                tests/blackbox/test_cluster.py

test-tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLS_TSAN=ON >/dev/null
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && $(TSAN_ENV) ctest --output-on-failure -j $(JOBS)
	$(TSAN_ENV) LASTSEEN_BIN=$(CURDIR)/$(TSAN_BUILD)/lastseen $(PYTHON) -m pytest -q $(TSAN_BLACKBOX)

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

# make install: the binary, a commented configuration (lastseen.ini.example with
# store.data_dir set; an existing one is kept and the new one written next to it
# as lastseen.ini.dist), the data directory and a sandboxed systemd unit
# (docs/deployment.md).  DESTDIR stages it elsewhere: make install DESTDIR=/tmp/x.
PREFIX        ?= /usr/local
BINDIR        ?= $(PREFIX)/bin
SYSCONFDIR    ?= /etc
LOCALSTATEDIR ?= /var
UNITDIR       ?= $(PREFIX)/lib/systemd/system
LS_DATADIR     = $(LOCALSTATEDIR)/lib/lastseen
LS_CONFDIR     = $(DESTDIR)$(SYSCONFDIR)/lastseen

install: build
	install -D -m 0755 $(BUILD)/lastseen $(DESTDIR)$(BINDIR)/lastseen
	install -d -m 0755 $(LS_CONFDIR)
	sed -e '1s|.*|; $(SYSCONFDIR)/lastseen/lastseen.ini - every configuration key with its default.|' \
	    -e 's|^;data_dir = ./data$$|data_dir = $(LS_DATADIR)|' lastseen.ini.example > $(LS_CONFDIR)/lastseen.ini.new
	chmod 0644 $(LS_CONFDIR)/lastseen.ini.new
	@if [ -e $(LS_CONFDIR)/lastseen.ini ]; then \
	    mv $(LS_CONFDIR)/lastseen.ini.new $(LS_CONFDIR)/lastseen.ini.dist; \
	    echo "kept $(LS_CONFDIR)/lastseen.ini; the installed default is lastseen.ini.dist"; \
	else mv $(LS_CONFDIR)/lastseen.ini.new $(LS_CONFDIR)/lastseen.ini; fi
	install -d -m 0750 $(DESTDIR)$(LS_DATADIR)
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DATADIR@|$(LS_DATADIR)|g' \
	    dist/lastseen.service.in > $(DESTDIR)$(UNITDIR)/lastseen.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/lastseen.service

# The tree is formatted (.clang-format); `make format` fixes what this reports.
check-format: deps
	@./scripts/deps.sh clang-format
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

# No include points up a layer (scripts/check-layers.sh, docs/architecture.md).
check-layers:
	./scripts/check-layers.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz build-prof
