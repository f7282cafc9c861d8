# lbroute: the README's commands. `make test` installs what it needs, then runs every check.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install test lint demo bench golden clean

install:
	./scripts/install-deps.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

golden: install
	$(VENV)/bin/pytest -q tests/test_golden.py --update-golden

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info

demo:
	./scripts/demo.sh
