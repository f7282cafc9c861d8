"""The book of one pass: which addresses are taken and by whom, and each pool's cursor.

Built afresh for every pass from the valid ServiceGroups, then filled from what the
Services hold (see :mod:`allocator.ipam`). A :class:`Holding` is one address and the
Service, or the Services sharing one key, that hold it. Pools are found by bisecting on
their first address; each keeps a cursor below which every address is taken or
reserved: the cursor moves forward over taken addresses (and back when one is let go in
the pass), so finding the lowest free address never enumerates a pool and an IPv6 /64
costs what a /30 does.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from allocator.service import LBService
from lbroute.model.api import Family, Pool, ServiceGroup
from lbroute.model.fields import IPAddress


@dataclass(eq=False)
class PoolState:
    """One pool during a pass: its bounds and reserved addresses as integers, and its
    cursor (every address below it is taken or reserved)."""

    pool: Pool
    group: ServiceGroup
    first: int
    last: int
    reserved: frozenset[int]
    cursor: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1 - len(self.reserved)


@dataclass(eq=False)
class Holding:
    """Who holds one address: one Service, or several that share it."""

    holders: list[LBService]
    share: tuple[str, str] | None
    scope: tuple[str, ...]
    ports: set[tuple[str, int]] = field(default_factory=set)

    def clash(self, svc: LBService) -> set[tuple[str, int]]:
        return self.ports & svc.ports

    def joinable(self, svc: LBService) -> bool:
        return self.share is not None and self.share == svc.share and self.scope == svc.share_scope

    def add(self, svc: LBService) -> None:
        self.holders.append(svc)
        self.ports |= svc.ports

    def remove(self, svc: LBService) -> None:
        self.holders = [h for h in self.holders if h.ref != svc.ref]
        self.ports = {p for h in self.holders for p in h.ports}

    def names(self, clashing_with: LBService | None = None) -> str:
        """The holders (those whose ports clash with ``clashing_with``'s, when given)."""
        holders = self.holders
        if clashing_with is not None:
            holders = [h for h in holders if h.ports & clashing_with.ports]
        return ", ".join(str(h.ref) for h in holders)


def ports_text(ports: Iterable[tuple[str, int]]) -> str:
    """``TCP/53, UDP/53``, for messages."""
    return ", ".join(f"{proto}/{port}" for proto, port in sorted(ports))


class Book:
    """What is taken in one pass, per family and integer address; the pools per group and
    in the order of their first address; the addresses held under each sharing key."""

    def __init__(self, groups: Sequence[ServiceGroup]) -> None:
        self.taken: dict[Family, dict[int, Holding]] = {f: {} for f in Family}
        self.by_group: dict[str, list[PoolState]] = {}
        spans: dict[Family, list[tuple[int, PoolState]]] = {f: [] for f in Family}
        for g in groups:
            states = []
            for p in g.pools:
                state = PoolState(
                    pool=p,
                    group=g,
                    first=int(p.first),
                    last=int(p.last),
                    reserved=frozenset(int(a) for a in p.reserved),
                    cursor=int(p.first),
                )
                states.append(state)
                spans[p.family].append((state.first, state))
            self.by_group[g.name] = states
        for f in Family:
            spans[f].sort(key=lambda t: t[0])
        self._starts = {f: [s for s, _ in spans[f]] for f in Family}
        self._spans = {f: [st for _, st in spans[f]] for f in Family}
        self.shares: dict[tuple[str, str, Family], set[int]] = {}

    def pool_of(self, address: IPAddress) -> PoolState | None:
        f = Family.of(address)
        n = int(address)
        i = bisect.bisect_right(self._starts[f], n) - 1
        if i >= 0 and n <= self._spans[f][i].last:
            return self._spans[f][i]
        return None

    def holding(self, address: IPAddress) -> Holding | None:
        return self.taken[Family.of(address)].get(int(address))

    def hold(self, address: IPAddress, svc: LBService) -> None:
        f = Family.of(address)
        n = int(address)
        holding = self.taken[f].get(n)
        if holding is None:
            holding = Holding(holders=[], share=svc.share, scope=svc.share_scope)
            self.taken[f][n] = holding
        holding.add(svc)
        if svc.share is not None:
            self.shares.setdefault((*svc.share, f), set()).add(n)

    def unhold(self, address: IPAddress, svc: LBService) -> None:
        f = Family.of(address)
        n = int(address)
        holding = self.taken[f].get(n)
        if holding is None:
            return
        holding.remove(svc)
        if not holding.holders:
            del self.taken[f][n]
            if svc.share is not None:
                self.shares.get((*svc.share, f), set()).discard(n)
            state = self.pool_of(address)
            if state is not None:
                state.cursor = min(state.cursor, n)

    def release(self, address: IPAddress) -> None:
        """Let go of the address whoever holds it (its holding is built again from its
        claimants: allocator.ipam.incremental)."""
        f = Family.of(address)
        n = int(address)
        holding = self.taken[f].pop(n, None)
        if holding is None:
            return
        if holding.share is not None:
            self.shares.get((*holding.share, f), set()).discard(n)
        state = self.pool_of(address)
        if state is not None:
            state.cursor = min(state.cursor, n)

    def free(self, group: ServiceGroup, family: Family) -> IPAddress | None:
        """The lowest free address of the group's own pools of ``family`` (an external
        IPAM's pools are its own to hand out: see :meth:`external`)."""
        taken = self.taken[family]
        for state in self.by_group[group.name]:
            if state.pool.family is not family or state.pool.external is not None:
                continue
            n = state.cursor
            while n <= state.last and (n in taken or n in state.reserved):
                n += 1
            state.cursor = n
            if n <= state.last:
                return to_address(family, n)
        return None

    def external(self, group: ServiceGroup, family: Family) -> bool:
        """Whether the group has pools of ``family`` that an external IPAM hands out."""
        return any(
            s.pool.family is family and s.pool.external is not None
            for s in self.by_group[group.name]
        )

    def in_group(self, address: IPAddress, group: ServiceGroup) -> PoolState | None:
        state = self.pool_of(address)
        return state if state is not None and state.group is group else None


def to_address(family: Family, n: int) -> IPAddress:
    """The address of ``family`` whose integer value is ``n``."""
    return ipaddress.IPv4Address(n) if family is Family.IPV4 else ipaddress.IPv6Address(n)
