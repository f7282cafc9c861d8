"""Fixtures for the tests against a real NetBox, started for the session by
tests/netbox/server.py (its own PostgreSQL, Redis and NetBox on loopback).

Every test here carries the ``netbox`` marker. Without the NetBox source, PostgreSQL or
Redis they are skipped with the reason; in CI (``$CI`` set) that is a failure instead,
since CI must run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.netbox.server import NetBoxServer, Unavailable, start

_timings: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/netbox/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.netbox)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def netbox() -> Iterator[NetBoxServer]:
    """A NetBox for the whole session; stopped (every process, by pid) at its end."""
    try:
        server = start()
    except Unavailable as e:
        if in_ci():
            pytest.fail(f"CI must run the NetBox tests, but: {e}", pytrace=False)
        pytest.skip(f"NetBox tests skipped: {e}")
    _timings.append(f"netbox: {server.url} started in {server.timings.summary()}")
    try:
        yield server
    finally:
        server.stop()
        left = server.leftovers()
        assert not left, f"still there after NetBoxServer.stop(): {left}"


@pytest.fixture
def netbox_clean(netbox: NetBoxServer) -> NetBoxServer:
    """The session's NetBox with nothing in it that an earlier test created."""
    netbox.wipe()
    return netbox


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _timings:
        terminalreporter.write_line(line)
