# Weir task runner. CI calls `make test` verbatim (.ci/run).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint rust-test compat bench-smoke

## Run the broker on 127.0.0.1:9092 with data in ./data.
run:
	cargo run --release -- serve

## Everything CI runs: lints, Rust unit + integration tests, real clients.
test: lint rust-test compat

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

rust-test:
	cargo test --locked

compat: $(VENV)/.installed
	cargo build --locked --release
	$(PY) -m pytest compat -q

$(VENV)/.installed: compat/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r compat/requirements.txt
	touch $@
