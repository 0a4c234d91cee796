# emowatch — two commands do everything from a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first and pinned so that pip here takes the CPU build from
# local disk instead of downloading a multi-GB CUDA build. Override elsewhere:
#   make TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126' test
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.emowatch-installed
# Bytecode is written, whatever the environment says. Where PYTHONDONTWRITEBYTECODE is set (this machine and
# CI set it) and the venv was installed without compiling (see INSTALLER), no process ever keeps a .pyc:
# each of the hundreds of Python processes `make test` starts (workers, CLI runs, the pytest workers) compiled
# torch, FunASR, Faust and emowatch from source again, and pytest rewrote every test file in each worker.
# `import torch` took 8.7 s of CPU instead of 3.8 s, an inference agent's imports 20 s instead of 7
# (docs/benchmarks.md, "make test"). An empty value turns the variable off for everything make runs; the
# files go to .venv/ and the repository's __pycache__/ folders (git-ignored).
export PYTHONDONTWRITEBYTECODE :=
PYTEST_ARGS ?=
# The suite runs in this many pytest-xdist worker processes (each with its own local broker), whole test files
# per worker (--dist loadfile: a file's module fixtures stay in one process). Most integration tests wait on
# group joins, rebalances, restarts and calls streamed in real time rather than compute: with two workers the
# 2-core machine was still idle 23 % of the run, with three 12 % (17 min 4 s -> 15 min 35 s; three were slower
# while every process compiled its imports, before bytecode was kept: docs/benchmarks.md, "make test").
# Files are handed out in collection order (--no-loadscope-reorder; xdist would otherwise start with the files that
# have the most tests): tests/conftest.py puts files with slow, then integration tests first, so the run ends on
# short unit-test files and the workers finish together. PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 3
# A test's time limit at full size (pyproject.toml: 300 s in `make test`): the full-size crash tests run 3-20x
# the reduced work, e.g. 400 calls and three kills of the rules worker, next to two other workers' full-size tests
FULL_TEST_TIMEOUT ?= 900
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder)

.PHONY: help setup deps-system demo test test-full test-unit lint bench clean

help:
	@echo "make demo   - set up .venv (if needed) and run 'emowatch demo' on the embedded local stack"
	@echo "make test   - set up .venv (if needed), ruff check, and the whole test suite (reduced sizes)"
	@echo "make lint   - ruff check (configured in pyproject.toml)"
	@echo "make test-full - the suite at full size (TEST_FULL=1: larger crash/restart/fuzz tests)"
	@echo "make bench  - run the benchmarks at quick size and write docs/bench/*-quick.json"
	@echo "make clean  - remove .venv and the local data directory"
	@echo "make deps-system - install the system programs the tests use when missing (Alertmanager, Chromium, Prometheus, via apt-get)"

# System programs the suite runs for real: Alertmanager (the notifier's alertmanager receiver is
# tested against it), Chromium with its WebDriver (the console's browser test; the colour-emoji font
# so its screenshots show the seed's emoji) and Prometheus (`promtool check/test rules` on
# infra/prometheus/alerts.yml, and a real server scraping every worker's /metrics; the package's own
# service is not wanted: containers block it through policy-rc.d, systemd hosts get it disabled and stopped). Installed with apt-get (as root, else through sudo) when
# missing; without apt-get the tests that need them skip and say why. Order-only prerequisite of the stamp below: it
# runs on every `make setup/test` (one `command -v` when present) without forcing a reinstall.
SUDO := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && echo sudo)
deps-system:
	@if command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		echo ">> installing prometheus-alertmanager (apt-get)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			--no-install-recommends prometheus-alertmanager >/dev/null \
		|| { echo "!! could not install prometheus-alertmanager"; exit 1; }; \
	else echo ">> no apt-get: install Alertmanager yourself; its tests will skip"; fi
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		echo ">> installing chromium, chromium-driver and fonts-noto-color-emoji (apt-get)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver fonts-noto-color-emoji >/dev/null \
		|| { echo "!! could not install chromium and chromium-driver"; exit 1; }; \
	else echo ">> no apt-get: install chromium and chromedriver yourself; the console browser test will skip"; fi
	@if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		echo ">> installing prometheus (apt-get; promtool and the server binary, its service left stopped)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			--no-install-recommends prometheus >/dev/null \
		|| { echo "!! could not install prometheus"; exit 1; }; \
		if [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now prometheus >/dev/null 2>&1 || :; fi; \
	else echo ">> no apt-get: install prometheus (with promtool) yourself; the alerting-rule tests will skip"; fi

# torch comes from pip, which follows this machine's pip configuration (here: the CPU wheel on local disk).
# The rest is resolved and installed by uv (from PyPI, put into the venv by pip): ~30 s where pip alone
# takes 3-4 min on a 2-core machine (docs/benchmarks.md, "make test"). uv does not read pip's
# configuration; where it cannot install (a private index only pip knows, no uv wheel), pip does it all.
# INSTALLER=pip skips uv. Neither compiles bytecode at install time: a module is compiled when first imported
# and its .pyc kept (PYTHONDONTWRITEBYTECODE above), so only what the suite imports is ever compiled.
INSTALLER ?= uv
PIP_INSTALL := $(PY) -m pip install -q --disable-pip-version-check --no-compile
$(STAMP): pyproject.toml | deps-system
	@echo ">> creating virtual environment in $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo ">> installing $(TORCH_SPEC) (pip)"
	@$(PIP_INSTALL) $(TORCH_SPEC)
	@echo ">> installing emowatch (editable) with test extras ($(INSTALLER))"
	@if [ "$(INSTALLER)" = uv ] && $(PIP_INSTALL) uv \
		&& $(VENV)/bin/uv pip install -q --python $(PY) -e '.[test]'; then :; \
	else \
		[ "$(INSTALLER)" = uv ] && echo ">> uv could not install; installing with pip"; \
		$(PIP_INSTALL) -e '.[test]'; \
	fi
	@touch $(STAMP)
	@echo ">> environment ready"

setup: $(STAMP)

demo: $(STAMP)
	@echo ">> emowatch demo (local broker + embedded ClickHouse)"
	@$(VENV)/bin/emowatch demo

lint: $(STAMP)
	@echo ">> ruff check"
	@$(VENV)/bin/ruff check .

test: $(STAMP) lint
	@echo ">> running the test suite"
	@$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-full: $(STAMP) lint
	@echo ">> running the test suite at full size (TEST_FULL=1)"
	@TEST_FULL=1 $(PY) -m pytest $(XDIST) --timeout $(FULL_TEST_TIMEOUT) $(PYTEST_ARGS)

test-unit: $(STAMP)
	@$(PY) -m pytest $(XDIST) -m "not integration" $(PYTEST_ARGS)

# Results live in docs/bench/ (full runs: <name>.json, quick runs: <name>-quick.json); see docs/benchmarks.md.
bench: $(STAMP)
	@$(VENV)/bin/emowatch bench infer --quick --json docs/bench/infer-quick.json
	@$(VENV)/bin/emowatch bench pipeline-infer --quick --json docs/bench/pipeline-infer-quick.json
	@$(VENV)/bin/emowatch bench rules --quick --json docs/bench/rules-quick.json
	@$(VENV)/bin/emowatch bench rules --quick --rules 20 --json docs/bench/rules-20-quick.json
	@$(VENV)/bin/emowatch bench notify --quick --json docs/bench/notify-quick.json
	@$(VENV)/bin/emowatch bench gateway --quick --json docs/bench/gateway-quick.json
	@$(VENV)/bin/emowatch bench replay --quick --json docs/bench/replay-quick.json
	@$(VENV)/bin/emowatch bench history --quick --json docs/bench/history-quick.json
	@$(VENV)/bin/emowatch bench pipeline --quick --duration 30 --json docs/bench/pipeline-quick.json

clean:
	rm -rf $(VENV) .emowatch
