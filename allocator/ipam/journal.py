"""A book whose changes can be taken back: what steps 2 and 3 of a pass did, undone.

An incremental pass (allocator.ipam.incremental) keeps the book as step 1 leaves it
from one pass to the next, and runs steps 2 and 3 (requested addresses, then free and
shared ones) on it again for the few Services that still want an address. What those
steps hold, let go of or move (a pool's cursor) is written down first, so that
:meth:`JournaledBook.undo` gives back exactly the book step 1 left, holdings, sharing
index and cursors alike, at the cost of what the steps touched.
"""

from __future__ import annotations

from collections.abc import Sequence

from allocator.ipam.book import Book, Holding, PoolState
from allocator.service import LBService
from lbroute.model.api import Family, ServiceGroup
from lbroute.model.fields import IPAddress

_Saved = tuple[Holding, list[LBService], set[tuple[str, int]]] | None
"""An address's holding as it was before the steps touched it: the object, its holders
and its ports; None when it was free."""


class JournaledBook(Book):
    """A :class:`Book` that, while :attr:`recording`, remembers how to undo each change."""

    def __init__(self, groups: Sequence[ServiceGroup]) -> None:
        super().__init__(groups)
        self.recording = False
        self._holdings: dict[tuple[Family, int], _Saved] = {}
        self._shares: list[tuple[tuple[str, str, Family], int, bool]] = []
        """(sharing key, address, whether it was in the key's set), in order."""
        self._cursors: dict[int, tuple[PoolState, int]] = {}

    def begin(self) -> None:
        """Start recording, each pool's cursor first moved past what step 1 holds: it
        stays there from pass to pass, so finding a free address does not walk again over
        every address taken since the book was built."""
        for states in self.by_group.values():
            for state in states:
                taken, n = self.taken[state.pool.family], state.cursor
                while n <= state.last and (n in taken or n in state.reserved):
                    n += 1
                state.cursor = n
        self.recording = True

    def _save(self, address: IPAddress) -> None:
        f, n = Family.of(address), int(address)
        if (f, n) in self._holdings:
            return
        holding = self.taken[f].get(n)
        self._holdings[(f, n)] = (
            None if holding is None else (holding, list(holding.holders), set(holding.ports))
        )
        state = self.pool_of(address)
        if state is not None:
            self._cursors.setdefault(id(state), (state, state.cursor))

    def _save_share(self, svc: LBService, address: IPAddress) -> None:
        if svc.share is not None:
            key = (*svc.share, Family.of(address))
            self._shares.append((key, int(address), int(address) in self.shares.get(key, ())))

    def hold(self, address: IPAddress, svc: LBService) -> None:
        if self.recording:
            self._save(address)
            self._save_share(svc, address)
        super().hold(address, svc)

    def unhold(self, address: IPAddress, svc: LBService) -> None:
        if self.recording:
            self._save(address)
            self._save_share(svc, address)
        super().unhold(address, svc)

    def free(self, group: ServiceGroup, family: Family) -> IPAddress | None:
        if self.recording:
            for state in self.by_group[group.name]:
                self._cursors.setdefault(id(state), (state, state.cursor))
        return super().free(group, family)

    def undo(self) -> None:
        """Back to the book as it was when recording began; recording stops."""
        for (f, n), saved in self._holdings.items():
            if saved is None:
                self.taken[f].pop(n, None)
            else:
                holding, holders, ports = saved
                holding.holders, holding.ports = holders, ports
                self.taken[f][n] = holding
        for key, n, was in reversed(self._shares):
            members = self.shares.setdefault(key, set())
            if was:
                members.add(n)
            else:
                members.discard(n)
        for state, cursor in self._cursors.values():
            state.cursor = cursor
        self._holdings.clear()
        self._shares.clear()
        self._cursors.clear()
        self.recording = False
