# Weir task runner. CI calls `make test` verbatim (.ci/run).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint rust-test fuzz fuzz-corpus compat bench bench-smoke

## Run the broker on 127.0.0.1:9092 with data in ./data.
run:
	cargo run --release -- serve

## Everything CI runs: lints, Rust unit + integration tests, real clients,
## and a tiny run of the load benchmark so it keeps working (pytest last:
## its summary closes the output).
test: lint rust-test fuzz bench-smoke compat

lint:
	cargo fmt --all -- --check
	cargo fmt --manifest-path benches/Cargo.toml -- --check
	cargo clippy --locked --all-targets -- -D warnings

## Micro-benchmarks (criterion) and the full load benchmark (docs/performance.md).
bench:
	cargo build --locked --release
	cargo bench --locked --manifest-path benches/Cargo.toml
	cargo run --locked --release --manifest-path benches/Cargo.toml --bin load

bench-smoke:
	cargo build --locked --release
	cargo bench --locked --manifest-path benches/Cargo.toml --no-run
	cargo run --locked --release --manifest-path benches/Cargo.toml --bin load -- --quick

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

compat: $(VENV)/.installed compat/kafkajs/node_modules/.installed
	cargo build --locked --release
	$(PY) -m pytest compat -q

compat/kafkajs/node_modules/.installed: compat/kafkajs/package-lock.json
	cd compat/kafkajs && npm ci --silent --no-audit --no-fund
	touch $@

$(VENV)/.installed: compat/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r compat/requirements.txt
	touch $@
