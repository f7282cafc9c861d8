# lbroute: the README's commands. `make test` installs what it needs, then runs every check.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install install-python test lint-then-netbox unit unit-tests lint lint-checks netbox \
	netbox-prepare netbox-tests demo bench golden clean

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

# Two jobs side by side, neither measuring time: the unit tests (about 2 minutes) and,
# one after the other, lint (15 s), NetBox's preparation (its venv and a migrated
# database, cached outside the checkout: under a minute on a new machine, nothing once
# built) and the NetBox tests (their own PostgreSQL, Redis and NetBox on loopback). The
# tests that need root and namespaces run after them, alone, since some of them measure
# time.
test: install
	$(MAKE) --no-print-directory -j2 unit-tests lint-then-netbox
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/netns

lint-then-netbox:
	$(MAKE) --no-print-directory lint-checks
	$(MAKE) --no-print-directory netbox-tests

unit: install-python
	$(MAKE) --no-print-directory unit-tests

unit-tests:
	$(VENV)/bin/pytest -q -p no:cacheprovider --ignore=tests/netns --ignore=tests/netbox tests

# The tests against a real NetBox (tests/netbox/server.py): skipped with the reason when
# its source, PostgreSQL or Redis is missing, a failure instead when CI is set.
netbox: install
	$(MAKE) --no-print-directory netbox-tests

netbox-tests: netbox-prepare
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/netbox

netbox-prepare:
	$(PY) -m tests.netbox.server --prepare

golden: install
	$(VENV)/bin/pytest -q tests/test_golden.py --update-golden

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info

demo:
	./scripts/demo.sh
