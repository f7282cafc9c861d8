# lbroute: the README's commands. `make test` installs what it needs, then runs every check.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install install-python test lint-then-netbox unit unit-tests lint lint-checks netbox \
	netbox-prepare netbox-tests netns netns-tests netns-a netns-b netns-timed demo bench golden clean

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
# tests that need root and namespaces run after them (netns-tests).
test: install
	$(MAKE) --no-print-directory -j2 unit-tests lint-then-netbox
	$(MAKE) --no-print-directory netns-tests

# The namespace tests spend most of their time waiting for routing protocols (timers,
# hold-downs, drain periods), not computing. Those that time what the routers do within
# a bound (drains with pings every 10 ms, graceful restarts, local-address handovers and
# expiry, traffic shares) run alone; the rest run as two halves side by side (5 to 6
# minutes each), each showing its output when it ends. Every lab's namespaces, links and
# daemons are named after its test process, so the halves never meet. NETNS_TIMED and
# NETNS_A name files; the second half is every other file, new ones included.
NETNS_TIMED := test_drain.py test_graceful_restart.py test_local_e2e.py test_local_nic.py \
	test_weighted_ecmp.py
NETNS_A := test_agent_e2e.py test_kube_e2e.py test_migration.py
NETNS := $(VENV)/bin/pytest -q -p no:cacheprovider

netns: install
	$(MAKE) --no-print-directory netns-tests

netns-tests:
	$(MAKE) --no-print-directory -j2 -Otarget netns-a netns-b
	$(MAKE) --no-print-directory netns-timed

netns-a:
	$(NETNS) $(addprefix tests/netns/,$(NETNS_A))

netns-b:
	$(NETNS) $(addprefix --ignore=tests/netns/,$(NETNS_A) $(NETNS_TIMED)) tests/netns

netns-timed:
	$(NETNS) $(addprefix tests/netns/,$(NETNS_TIMED))

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
