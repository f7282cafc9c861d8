"""When the addresses that only IS-IS announces reach kube-lb0.

Every other address is programmed the moment it changes; these are paced, for the
reason :class:`Pacer` gives. :func:`isis_only` says which addresses they are. Both are
plain functions of their arguments: the clock is passed in.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from lbroute.model import api
from lbroute.model.errors import ObjectRef
from nodeagent.desired import DesiredState, Interface


@dataclass
class Pacer:
    """When the addresses that only IS-IS announces reach kube-lb0.

    FRR's isisd postpones regenerating its LSP while redistributed routes keep changing
    less than 100 ms apart, so under a steady stream of Services (one every 50 ms) it
    would announce none of them until the stream stops. The first change of such an
    address is programmed at once; further ones wait until ``interval`` has passed since,
    then all go together, leaving isisd the quiet gap it waits for. Every other address
    is programmed at once, always.
    """

    interval: float
    on: AbstractSet[Interface] = frozenset()
    """The paced addresses as last programmed (nodeagent.addresses keeps it up to date
    in place when it programs changes of a few)."""
    until: float = 0.0
    """No paced change before this time (monotonic)."""

    def target(
        self, wanted: frozenset[Interface], paced: frozenset[Interface], now: float
    ) -> tuple[frozenset[Interface], float]:
        """The addresses to program now, and when to program again (inf: no need)."""
        paced_wanted = wanted & paced
        if paced_wanted == self.on:
            return wanted, float("inf")
        if now < self.until:  # hold paced addresses as they are, added or removed
            return (wanted - paced) | self.on, self.until
        self.on, self.until = paced_wanted, now + self.interval
        return wanted, float("inf")


def paced_groups(model: api.Model) -> frozenset[ObjectRef]:
    """The ServiceGroups of ``model`` that IS-IS alone carries: their addresses are paced."""
    return frozenset(
        g.ref for g in model.service_groups if g.protocols == frozenset({api.Protocol.ISIS})
    )


def isis_only(model: api.Model, desired: DesiredState) -> frozenset[Interface]:
    """The addresses that only ServiceGroups carried by IS-IS alone announce."""
    isis = paced_groups(model)
    only: set[Interface] = set()
    other: set[Interface] = set()
    for a in desired.announcements:
        (only if a.group in isis else other).add(a.interface)
    return frozenset(only - other)
