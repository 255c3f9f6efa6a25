# Everything installs itself: a fresh machine needs only python3 (>= 3.10) and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint bench clean test-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) benchmarks/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check dvx tests benchmarks
	$(VENV)/bin/mypy

# Debian tools some tests use (a btrfs file system for reflink checkouts), when this machine can install them;
# without them those tests skip, saying why.
test-tools:
	@command -v mkfs.btrfs >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
	  { apt-get install -y -q btrfs-progs >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q btrfs-progs >/dev/null 2>&1; } || \
	    echo "note: could not install btrfs-progs; the reflink tests will skip"; }

test: $(STAMP) lint test-tools
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info demo-out benchmarks/out
