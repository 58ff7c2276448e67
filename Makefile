# The newcomer's two commands: `make run` and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCES := $(VENV)/.installed-sources
PACKAGES := server rooms storage migrations clients bench
PG_VERSION := $(shell ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)

.PHONY: install run test test-parallel test-unit lint postgres browser netfilter node-baseline bench conformance FORCE

install: $(STAMP)

# Editable install in setuptools' strict mode: server/, rooms/, storage/, … are importable only as quizroom.server,
# quizroom.rooms, …, through a tree of links (build/__editable__.*) named by a plain .pth file, which mypy, IDEs and
# static import tools read. The tree links files, so edits show at once; a file added or removed needs a reinstall,
# which the list of package files below triggers.
$(STAMP): pyproject.toml $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

# The package files as a list, rewritten only when it changes (a file added, removed or renamed).
$(SOURCES): FORCE
	@mkdir -p $(VENV)
	@find $(PACKAGES) -type f -not -path '*/__pycache__/*' -not -path '*/node_modules/*' | LC_ALL=C sort > $(SOURCES).new
	@cmp -s $(SOURCES).new $(SOURCES) && rm $(SOURCES).new || mv $(SOURCES).new $(SOURCES)

run: install
	$(BIN)/quizroom serve

# PostgreSQL must be up for the suite (storage tests run on both backends). Start the local cluster if it is not.
postgres:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432; then \
		echo "starting PostgreSQL $(PG_VERSION)"; \
		pg_ctlcluster --skip-systemctl-redirect $(PG_VERSION) main start; \
	fi
	@for i in $$(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 0.5; done; \
		echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1

# The browser tests drive Debian's Chromium (never a downloaded browser). Installed from Debian's packages when root.
browser:
	@if ! command -v chromium >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "chromium is missing: install it (apt-get install chromium) or the browser tests are skipped" >&2; fi; \
	fi

# The partition tests cut hosts off inside network namespaces with iptables (tests/netns.py): installed from Debian's
# packages when root and missing (a fresh machine may come without it).
netfilter:
	@if ! command -v iptables >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null; \
		else echo "iptables is missing: install it (apt-get install iptables) for the partition tests" >&2; fi; \
	fi

# The bench's Node.js baseline (bench/node/baseline.mjs) needs the `ws` package at the version its lock file pins,
# from the npm registry; without Node.js it is left out (the bench says so, and its test fails in CI).
NODE_MODULES := bench/node/node_modules/.package-lock.json
node-baseline: $(NODE_MODULES)
$(NODE_MODULES): bench/node/package.json bench/node/package-lock.json
	@if command -v npm >/dev/null; then cd bench/node && npm ci --no-audit --no-fund --silent; \
		else echo "npm is missing: the bench's Node baseline (bench/node) cannot be installed" >&2; fi

test: install postgres browser netfilter node-baseline
	$(BIN)/pytest

# The same suite in two passes (tests/conftest.py, SERIAL): most of it two at a time, then the fault and timing
# tests alone. Faster (about 11 minutes against 15), but three CI runs of it at three at a time met three timing
# assumptions in tests that one at a time never shows; `test` stays one pass until they are all gone.
test-parallel: install postgres browser netfilter node-baseline
	$(BIN)/pytest -n 2 -m "not serial"
	$(BIN)/pytest -m serial

# The pure core's tests alone (no network, no database): seconds.
test-unit: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict -p quizroom.rooms -p quizroom.storage -p quizroom.server -p quizroom.clients -p quizroom.bench
	$(BIN)/mypy --strict tests
	$(BIN)/lint-imports

# The standard benchmark set (about 6 minutes on 2 cores); matplotlib (the `bench` extra) draws the chart. The extra
# goes in the same strict editable mode as `install`, or mypy and the import-graph test would stop seeing the package.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' --config-settings editable_mode=strict
	$(BIN)/quizroom-bench standard

# The container image, on any machine: where the Dockerfile's base image cannot be pulled (no registry), it is made
# from Debian's packages first and tagged with the same name (docker/build-image.sh; docs/operations.md).
IMAGE ?= quizroom
image:
	IMAGE=$(IMAGE) docker/build-image.sh

# Every image the container tests use, in their private Docker daemon (cached on disk between runs): CI's step
# before the suite, so the suite's time does not depend on a warm cache (tests/containers.py).
test-images: install
	$(BIN)/python -m tests.containers prepare

# WebSocket conformance: the Autobahn|Testsuite fuzzing client (Python 2.7 venv in conformance/) against our stack.
conformance: install
	conformance/run.sh

FORCE:
