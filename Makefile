# Every target creates .venv and installs what it needs, from a fresh clone.
# `demo` needs only the package itself; `test`, `lint`, `typecheck` and `bench` add the dev tools.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
BASE := $(VENV)/.installed-base
DEV := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck bench clean

$(BASE): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $(BASE)

$(DEV): $(BASE)
	$(PIP) -e '.[dev]'
	touch $(DEV)

demo: $(BASE)
	$(PY) -m aioserversync demo

lint: $(DEV)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check aioserversync

typecheck: $(DEV)
	$(PY) -m mypy

test: lint typecheck
	$(PY) -m pytest -q

# Every scenario; tables go to bench-results/<UTC time>/. E.g. make bench BENCH_ARGS=--quick
bench: $(DEV)
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
