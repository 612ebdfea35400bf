# Weir task runner. CI calls `make test` verbatim (.ci/run).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint rust-test fuzz fuzz-corpus compat bench bench-smoke compat-librdkafka compat-librdkafka-consumer compat-librdkafka-security compat-librdkafka-quick librdkafka-deps chromium-deps

## Run the broker on 127.0.0.1:9092 with data in ./data.
run:
	cargo run --release -- serve

## Everything CI runs: lints, Rust unit + integration tests, real clients,
## and a tiny run of the load benchmark so it keeps working. Three stages;
## within a stage the targets run side by side (each one's output kept
## together): test runs mostly wait on sockets and timers while builds use
## both cores, so overlapping them took a fresh run from 19.4 to ~15 min.
test:
	$(MAKE) lint
	$(MAKE) -j3 --output-sync=target rust-test fuzz bench-smoke
	$(MAKE) -j2 --output-sync=target compat-librdkafka-quick compat

lint:
	cargo fmt --all -- --check
	cargo fmt --manifest-path benches/Cargo.toml -- --check
	cargo clippy --locked --all-targets -- -D warnings

## Micro-benchmarks (criterion) and the full load benchmark (docs/performance.md).
## The benches crate shares target/ with the broker, so the weir library and
## the dependencies they have in common are compiled once.
BENCH := --locked --manifest-path benches/Cargo.toml --target-dir target

bench:
	cargo build --locked --release
	cargo bench $(BENCH)
	cargo build $(BENCH) --release --benches --bins
	target/release/load

## CI: the benchmarks compile (release profile, as `load` runs) and the
## load benchmark runs briefly.
bench-smoke:
	cargo build --locked --release
	cargo build $(BENCH) --release --benches --bins
	target/release/load --quick

rust-test:
	cargo test --locked

## The request-path fuzzer for a bounded time (tests/fuzz.rs; seeds in
## tests/fuzz-corpus). WEIR_FUZZ_SEED=N replays a run.
FUZZ_SECONDS ?= 60
fuzz:
	WEIR_FUZZ_SECONDS=$(FUZZ_SECONDS) cargo test --locked --test fuzz -- --nocapture

## Re-captures the fuzzer's seed corpus from real clients (not run by CI).
fuzz-corpus: $(VENV)/.installed compat/kafkajs/node_modules/.installed
	cargo build --locked --release
	$(PY) compat/capture_corpus.py

## Three test files at a time: the clients mostly wait on the network
## and on timeouts (5.2 min in one process, 1.9 min like this).
compat: $(VENV)/.installed compat/kafkajs/node_modules/.installed chromium-deps
	cargo build --locked --release
	$(PY) -m pytest compat -q -n 3 --dist loadfile

compat/kafkajs/node_modules/.installed: compat/kafkajs/package-lock.json
	cd compat/kafkajs && npm ci --silent --no-audit --no-fund
	touch $@

## Headless Chromium for the web console's browser tests
## (compat/test_console.py); CI runs as root on a fresh machine. After
## librdkafka-deps so the two never hold apt's lock at once under -j.
chromium-deps: | librdkafka-deps
	@dpkg -s chromium >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) || \
		{ echo "chromium-deps: could not install the chromium package (compat/test_console.py needs it)" >&2; exit 1; }
	@command -v chromium >/dev/null || { echo "chromium-deps: no chromium command after installing" >&2; exit 1; }

$(VENV)/.installed: compat/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r compat/requirements.txt
	touch $@

## librdkafka's own test suite against Weir (compat/librdkafka/run.py; the
## curated list with reasons is compat/librdkafka/tests.txt). The sources
## come from the rdkafka-sys crate; the build is cached in target/librdkafka.
compat-librdkafka: librdkafka-deps
	cargo build --locked --release
	python3 compat/librdkafka/run.py

## The group tests with the KIP-848 consumer protocol (tests tagged
## `consumer`; TEST_CONSUMER_GROUP_PROTOCOL=consumer).
compat-librdkafka-consumer: librdkafka-deps
	cargo build --locked --release
	python3 compat/librdkafka/run.py --consumer-protocol

## librdkafka's SASL/SSL/ACL tests against a secured Weir (tests tagged
## `security*`: SASL_SSL with SCRAM-SHA-512, SSL with client certificates,
## SASL_PLAINTEXT with PLAIN, the ACL authorizer on). librdkafka needs
## OpenSSL's headers for TLS and SCRAM; the runner makes its certificates
## with the openssl command and runs kafka-acls.sh with confluent_kafka (.venv).
compat-librdkafka-security: librdkafka-deps $(VENV)/.installed
	cargo build --locked --release
	python3 compat/librdkafka/run.py --security

## The quick subsets `make test` runs (classic, consumer protocol, security).
compat-librdkafka-quick: librdkafka-deps $(VENV)/.installed
	cargo build --locked --release
	python3 compat/librdkafka/run.py --quick
	python3 compat/librdkafka/run.py --quick --consumer-protocol
	python3 compat/librdkafka/run.py --quick --security

## Headers librdkafka's build uses when present (zlib, zstd, OpenSSL for
## TLS and SCRAM) and the openssl command (the security run's
## certificates); CI runs as root on a fresh machine. Without them the build
## still works, with fewer codecs and no TLS.
LIBRDKAFKA_DEBS := zlib1g-dev libzstd-dev libssl-dev openssl
librdkafka-deps:
	@dpkg -s $(LIBRDKAFKA_DEBS) >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq $(LIBRDKAFKA_DEBS)) || \
		echo "librdkafka-deps: could not install $(LIBRDKAFKA_DEBS); building without them"
