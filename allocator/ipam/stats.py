"""The counts a pass reports per pool and per ServiceGroup.

An address counts as in use in the pool that spans it when some Service holds it
(a reserved address never counts); a pool's size leaves its reserved addresses out.
Sizes are computed, never enumerated, so an IPv6 pool is counted exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from allocator.ipam.book import Book, PoolState
from allocator.ipam.results import GroupStats, Outside, PoolStats
from lbroute.model.api import ServiceGroup
from lbroute.model.errors import ObjectRef
from lbroute.model.fields import IPAddress


def counts(
    groups: Sequence[ServiceGroup],
    book: Book,
    held: set[IPAddress],
    outside: Sequence[Outside],
) -> tuple[tuple[PoolStats, ...], tuple[GroupStats, ...]]:
    """The counts per pool and per group. ``held``: every address a Service holds once
    the pass's writes land, with those of other implementations."""
    in_use: dict[PoolState, int] = {}
    for address in held:
        state = counted_in(book, address)
        if state is not None:
            in_use[state] = in_use.get(state, 0) + 1
    return tally(groups, book, in_use, outside)


def counted_in(book: Book, address: IPAddress) -> PoolState | None:
    """The pool an address held counts as in use in: the one that spans it, unless it is
    one of that pool's reserved addresses."""
    state = book.pool_of(address)
    return state if state is not None and int(address) not in state.reserved else None


def tally(
    groups: Sequence[ServiceGroup],
    book: Book,
    in_use: Mapping[PoolState, int],
    outside: Sequence[Outside],
) -> tuple[tuple[PoolStats, ...], tuple[GroupStats, ...]]:
    """The counts per pool and per group from the addresses in use in each pool."""
    outside_of: dict[ObjectRef, int] = {}
    for o in outside:
        outside_of[o.group] = outside_of.get(o.group, 0) + 1
    pool_stats: list[PoolStats] = []
    group_stats: list[GroupStats] = []
    for g in groups:
        allocated = {f: 0 for f in g.families()}
        available = {f: 0 for f in g.families()}
        for state in book.by_group[g.name]:
            used = in_use.get(state, 0)
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
                outside=outside_of.get(g.ref, 0),
            )
        )
    return tuple(pool_stats), tuple(group_stats)
