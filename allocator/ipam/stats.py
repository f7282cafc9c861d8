"""The counts a pass reports per pool and per ServiceGroup.

An address counts as in use in the pool that spans it when some Service holds it
(a reserved address never counts); a pool's size leaves its reserved addresses out.
Sizes are computed, never enumerated, so an IPv6 pool is counted exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from allocator.ipam.book import Book
from allocator.ipam.results import GroupStats, Outside, PoolStats
from lbroute.model.api import ServiceGroup
from lbroute.model.fields import IPAddress


def counts(
    groups: Sequence[ServiceGroup],
    book: Book,
    held: set[IPAddress],
    outside: Sequence[Outside],
) -> tuple[tuple[PoolStats, ...], tuple[GroupStats, ...]]:
    """The counts per pool and per group. ``held``: every address a Service holds once
    the pass's writes land, with those of other implementations."""
    in_use: dict[int, int] = {}
    for address in held:
        state = book.pool_of(address)
        if state is not None and int(address) not in state.reserved:
            in_use[id(state)] = in_use.get(id(state), 0) + 1
    pool_stats: list[PoolStats] = []
    group_stats: list[GroupStats] = []
    for g in groups:
        allocated = {f: 0 for f in g.families()}
        available = {f: 0 for f in g.families()}
        for state in book.by_group[g.name]:
            used = in_use.get(id(state), 0)
            f = state.pool.family
            pool_stats.append(
                PoolStats(group=g.ref, pool=str(state.pool), family=f, size=state.size, in_use=used)
            )
            allocated[f] += used
            available[f] += state.size - used
        group_stats.append(
            GroupStats(
                ref=g.ref,
                allocated=allocated,
                available=available,
                outside=sum(1 for o in outside if o.group == g.ref),
            )
        )
    return tuple(pool_stats), tuple(group_stats)
