"""Fixtures for tests that need root, network namespaces and the real daemons.

Every test here carries the ``root`` marker; without root (or without iproute2 and the
daemons) they are skipped with the reason. CI runs them as root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.lab import BirdInstance, FrrInstance, Netns, needs_root, vtysh_conf


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/netns/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.root)


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    needs_root(("ip", "bird", "vtysh"))


@pytest.fixture
def netns() -> Iterator[Netns]:
    ns = Netns().create()
    try:
        yield ns
    finally:
        ns.delete()


@pytest.fixture
def frr(netns: Netns, tmp_path: Path) -> Iterator[FrrInstance]:
    """FRR daemons in ``netns``; ``tmp_path`` is an FRR configuration directory, so
    what frr-reload.py writes after a reload of a file there stays there."""
    vtysh_conf(tmp_path)
    instance = FrrInstance(netns)
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def bird(netns: Netns) -> Iterator[BirdInstance]:
    instance = BirdInstance(netns)
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def golden_links(netns: Netns) -> Netns:
    """The interfaces the golden cases name (eth0-2, kube-lb0), eth0 with the node's IP."""
    for name in ("eth0", "eth1", "eth2", "kube-lb0"):
        netns.add_ifb(name)
    netns.ip("addr", "add", "10.0.0.11/24", "dev", "eth0")
    return netns
