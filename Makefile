# lbroute: the README's commands. `make test` installs what it needs, then runs every check.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install install-python test unit unit-tests lint lint-checks demo bench golden clean

# The routing daemons and the virtualenv (tests, demo, bench).
install:
	./scripts/install-deps.sh

# The virtualenv alone: lint and type checks need no routing daemon.
install-python:
	./scripts/install-deps.sh --python-only

lint: install-python
	$(MAKE) --no-print-directory lint-checks

lint-checks:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Lint and the unit tests run side by side (both only use the CPU); the tests that
# need root and namespaces run after them, alone, since some of them measure time.
test: install
	$(MAKE) --no-print-directory -j2 lint-checks unit-tests
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/netns

unit: install-python
	$(MAKE) --no-print-directory unit-tests

unit-tests:
	$(VENV)/bin/pytest -q -p no:cacheprovider --ignore=tests/netns tests

golden: install
	$(VENV)/bin/pytest -q tests/test_golden.py --update-golden

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info

demo:
	./scripts/demo.sh
