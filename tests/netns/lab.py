"""The namespace primitives the root-only tests use; they live in :mod:`lbroute.lab`,
which the demo uses too."""

import os
import shutil

import pytest

from lbroute.lab import BirdInstance, FrrInstance, Lan, Netns, alive, kill, run, veth, vtysh_conf

__all__ = [
    "BirdInstance",
    "FrrInstance",
    "Lan",
    "Netns",
    "alive",
    "kill",
    "needs_root",
    "run",
    "veth",
    "vtysh_conf",
]


def needs_root(tools: tuple[str, ...] = ("ip", "bird", "birdc", "vtysh")) -> None:
    """Skip the test (or a module's lab set up before it) without root or ``tools``."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (run make install)")
