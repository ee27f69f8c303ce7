# Two commands for a fresh machine: `make run` (set up, then the main job) and `make test`
# (set up, then the test suite).  Every setup step is skipped once done, so a second call
# starts in seconds.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo "sudo -n")
# Two test processes of one torch thread each: the two cores of a CI machine, without torch's
# threads competing for them (`make test PYTEST_ARGS=` runs in one process).
PYTEST_ARGS ?= -n 2
CNNLAB_TEST_THREADS ?= 1

.PHONY: setup data browser run test lint bench bench-analysis bench-data bench-stream \
	bench-throughput bench-time clean

setup: $(VENV)/.installed data browser

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# PyTorch first, pinned to the CPU wheel, so nothing later pulls a CUDA build.
$(VENV)/.torch: | $(VENV)/bin/python
	$(PY) -m pip install --quiet "torch==2.13.0"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PY) -m pip install --quiet -e ".[dev,export]"
	touch $@

# Fashion-MNIST from Debian's package, where apt exists.  Elsewhere cnnlab finds the files
# under $$CNNLAB_DATA, ~/.cache/cnnlab or --data-dir (see the README).
data:
	@if [ -f $(DATA_DIR)/train-images-idx3-ubyte.gz ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's dataset-fashion-mnist"; \
	  $(SUDO) apt-get install -y -q dataset-fashion-mnist >/dev/null \
	  || ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q dataset-fashion-mnist >/dev/null) \
	  || echo "warning: could not install dataset-fashion-mnist; see README, 'Data'"; \
	else echo "note: no apt-get here; put Fashion-MNIST where README 'Data' says"; fi

# Headless Chromium and its driver from Debian's packages, where apt exists: the tests open the
# run report and the interactive arithmetic page in a real browser (make test requires it).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium and chromium-driver"; \
	  $(SUDO) apt-get install -y -q chromium chromium-driver >/dev/null \
	  || ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium chromium-driver >/dev/null) \
	  || echo "warning: could not install chromium; the browser tests will fail"; \
	else echo "note: no apt-get here; install Chromium and chromedriver for the browser tests"; fi

# The main job: train LeNet-5 on Fashion-MNIST with the lenet recipe (about 2 minutes on two
# CPU cores); it ends with the test accuracy, the run folder under runs/ and what to try next.
run: setup
	$(PY) -m cnnlab train lenet5 --data fashion-mnist

test: setup
	CNNLAB_REQUIRE_BROWSER=1 CNNLAB_TEST_THREADS=$(CNNLAB_TEST_THREADS) $(PY) -m pytest $(PYTEST_ARGS)

# ruff, and the import contract (imports only point down; tests/test_architecture.py, also
# part of `make test`).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -p no:cacheprovider tests/test_architecture.py

# Benchmarks print cnnlab and its baseline side by side, with ratios.  The comparison tools
# (torchinfo, fvcore) go into build/bench-compare, never into .venv.
bench: bench-analysis bench-data bench-stream bench-throughput bench-time

bench-analysis: setup
	@test -d build/bench-compare/fvcore || $(PY) bench/analysis.py --setup
	$(PY) bench/analysis.py --markdown

bench-data: setup
	$(PY) bench/data.py

bench-stream: setup
	$(PY) bench/stream.py

bench-throughput: setup
	$(PY) bench/throughput.py

# The full side-by-side run to 90 ... 95% (tens of minutes); --quick is part of `make test`.
bench-time: setup
	$(PY) bench/time_to_accuracy.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
