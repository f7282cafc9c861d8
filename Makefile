# lbroute: the README's commands. `make test` installs what it needs, then runs every check.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install install-python test lint demo bench golden clean

# The routing daemons and the virtualenv (tests, demo, bench).
install:
	./scripts/install-deps.sh

# The virtualenv alone: lint and type checks need no routing daemon.
install-python:
	./scripts/install-deps.sh --python-only

lint: install-python
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: install lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

golden: install
	$(VENV)/bin/pytest -q tests/test_golden.py --update-golden

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info

demo:
	./scripts/demo.sh
