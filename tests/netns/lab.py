"""The namespace primitives the root-only tests use; they live in :mod:`lbroute.lab`,
which the demo uses too."""

from lbroute.lab import BirdInstance, FrrInstance, Lan, Netns, alive, kill, run, veth, vtysh_conf

__all__ = [
    "BirdInstance",
    "FrrInstance",
    "Lan",
    "Netns",
    "alive",
    "kill",
    "run",
    "veth",
    "vtysh_conf",
]
