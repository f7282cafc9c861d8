"""The node's Service addresses on kube-lb0, as the desired state says.

Every change is programmed at once, except that addresses only IS-IS announces are
paced (nodeagent.pacing says why): :meth:`Addresses.program` programs what may go now
and says when the rest is due; :meth:`Addresses.again` programs it then. A pass for a
few Services hands over only the addresses whose announcement changed
(:meth:`Addresses.change`: work in proportion to the change, issue 20), paced ones as
the pacer lets them (held back changes go together, :meth:`Addresses.again`), as long
as the last program left a complete record and holds no whole state back; otherwise it
programs the whole desired state. Every :data:`AUDIT_SECONDS` the
whole desired state is programmed again from a fresh read of the kernel
(:attr:`Addresses.audit_at`), so an address someone else removed comes back then. What
is announced is what the kernel holds afterwards (an address netlink refused is
counted, not listed).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from lbroute.model import api
from lbroute.model.errors import ObjectRef
from lbroute.model.fields import IPAddress
from nodeagent.desired import Announcement, Change, DesiredState, Interface, announcement_order
from nodeagent.netlink import Kubelb
from nodeagent.netlink.kubelb import Changes
from nodeagent.pacing import Pacer
from nodeagent.status import Announced, Metrics

AUDIT_SECONDS = 30.0
"""Seconds between two programs of the whole desired state from a fresh read of the
interface (at 10,000 addresses about 0.4 s of work: about 1% of a core)."""


class Addresses:
    """kube-lb0 (or the interface :meth:`use` names) for one agent."""

    def __init__(self, pace: float, metrics: Metrics) -> None:
        self.metrics = metrics
        self.due = float("inf")
        """When addresses held back by the pacer are due (monotonic)."""
        self.audit_at = float("inf")
        """When the whole desired state is to be programmed again (monotonic)."""
        self._pacer = Pacer(pace)
        self._kubelb: Kubelb | None = None
        self._newest: tuple[DesiredState, frozenset[Interface]] | None = None
        """The newest desired state and its paced addresses, for a held-back program."""
        self._held: dict[IPAddress, Change] = {}
        """Changes of paced addresses the pacer holds back (:meth:`change`): each as it
        was programmed and what it is to become."""
        self._announced: dict[IPAddress, tuple[tuple[int, int, int, int], Announced]] = {}
        """Address -> its place in the status's order and what the status says of it."""
        self._owned = {4: 0, 6: 0}
        """lbroute's addresses on the interface, per IP version."""
        self._keys: list[tuple[int, int, int, int]] = []
        self._sorted: list[Announced] = []
        """What is announced in the desired state's order, and each one's place in it
        (kept in order as addresses come and go: sorting 10,000 after a change of one
        was a fifth of the pass)."""
        self.per_group: dict[str, int] = {}
        """ServiceGroup (``namespace/name``) -> how many of its addresses are announced."""

    def use(self, interface: str, *, address_marks: bool = False) -> None:
        """Program ``interface`` from now on (created if missing); ``address_marks``:
        weights and classes go on the addresses' metrics too (FRR reads them there)."""
        if self._kubelb is None or self._kubelb.ifname != interface:
            self.close()
            self._kubelb = Kubelb(interface)
            self._kubelb.ensure()
        self._kubelb.address_marks = address_marks

    def close(self) -> None:
        if self._kubelb is not None:
            self._kubelb.close()
            self._kubelb = None

    def announced(self) -> list[Announced]:
        """What is announced, in the desired state's order."""
        return list(self._sorted)

    def program(
        self,
        desired: DesiredState,
        paced: frozenset[Interface],
        now: float,
        *,
        audit: bool = False,
    ) -> None:
        """Program ``desired`` as far as the pacer lets ``paced`` change at ``now``;
        ``audit``: from a fresh read of the interface."""
        assert self._kubelb is not None
        target, self.due = self._pacer.target(desired.interfaces, paced, now)
        self._newest = (desired, paced) if self.due != float("inf") else None
        self._held = {}  # the whole state says what they become
        changes = self._kubelb.reconcile(target, desired.weights, desired.classes, fresh=audit)
        self._count(changes)
        owned = changes.owned
        self._owned = {4: 0, 6: 0}
        for iface in owned:
            self._owned[iface.version] += 1
        self._announced, self._keys, self._sorted, self.per_group = {}, [], [], {}
        for a in desired.announcements:  # in the desired state's order already
            if a.interface in owned:
                self._learn(a.interface.ip, announcement_order(a), _announced(a))
        self._show()
        self.audit_at = now + AUDIT_SECONDS

    def change(
        self,
        changes: Mapping[IPAddress, Change],
        paced: frozenset[ObjectRef] = frozenset(),
        now: float = 0.0,
    ) -> bool:
        """Program the addresses whose announcement changed, and only them, as the pacer
        lets those of ``paced`` groups (IS-IS alone carries them) change at ``now``: the
        first at once, those that follow within its interval held back until then
        (:meth:`again`). False, with nothing done, when only :meth:`program` can: it
        holds a whole desired state back, or the last program or change did not leave a
        complete record."""
        if self._kubelb is None or self._newest is not None:
            return False
        of_paced = (
            {
                address: pair
                for address, pair in changes.items()
                if any(a is not None and a.group in paced for a in pair)
            }
            if paced
            else {}
        )
        hold = bool(of_paced) and (bool(self._held) or now < self._pacer.until)
        go = {a: pair for a, pair in changes.items() if a not in of_paced} if hold else changes
        if not self._update(go):
            return False
        if hold:
            for address, (before, after) in of_paced.items():
                first = self._held[address][0] if address in self._held else before
                if first == after:
                    self._held.pop(address, None)
                else:
                    self._held[address] = (first, after)
            self.due = self._pacer.until if self._held else float("inf")
        elif of_paced:
            self._paced(of_paced, now)
        return True

    def again(self, now: float) -> bool:
        """Program what the pacer held back, if it is due at ``now``; whether it did.
        Should the change not go alone (no complete record), the whole desired state is
        due at once (:attr:`audit_at`)."""
        if now < self.due:
            return False
        if self._newest is not None:
            self.program(*self._newest, now)
            return True
        if not self._held:
            self.due = float("inf")
            return False
        held, self._held, self.due = self._held, {}, float("inf")
        if not self._update(held):
            self.audit_at = now
            return False
        self._paced(held, now)
        return True

    def _paced(self, changes: Mapping[IPAddress, Change], now: float) -> None:
        """Paced addresses changed at ``now``: the next paced change waits an interval."""
        on = self._pacer.on if isinstance(self._pacer.on, set) else set(self._pacer.on)
        for before, after in changes.values():
            if before is not None:
                on.discard(before.interface)
            if after is not None:
                on.add(after.interface)
        self._pacer.on, self._pacer.until = on, now + self._pacer.interval

    def _update(self, changes: Mapping[IPAddress, Change]) -> bool:
        """Program ``changes`` alone; False when the last program left no record."""
        assert self._kubelb is not None
        old = [before.interface for before, _ in changes.values() if before is not None]
        new = {
            after.interface: (after.weight, after.bgp_class.index if after.bgp_class else 0)
            for _, after in changes.values()
            if after is not None
        }
        result = self._kubelb.update(old, new)
        if result is None:
            return False
        self._count(result)
        for iface in result.added:
            self._owned[iface.version] += 1
        for iface in result.removed:
            self._owned[iface.version] -= 1
        for address, (_, after) in changes.items():
            self._forget(address)
            if after is not None and after.interface in result.owned:
                self._learn(address, announcement_order(after), _announced(after))
        self._show()
        return True

    def _count(self, changes: Changes) -> None:
        if changes.failed:
            self.metrics.netlink_errors.inc(len(changes.failed))

    def _forget(self, address: IPAddress) -> None:
        found = self._announced.pop(address, None)
        if found is None:
            return
        key, entry = found
        i = bisect.bisect_left(self._keys, key)
        del self._keys[i], self._sorted[i]
        left = self.per_group[entry.group] - 1
        if left:
            self.per_group[entry.group] = left
        else:
            del self.per_group[entry.group]

    def _learn(self, address: IPAddress, key: tuple[int, int, int, int], entry: Announced) -> None:
        self._announced[address] = (key, entry)
        i = bisect.bisect_left(self._keys, key)
        self._keys.insert(i, key)
        self._sorted.insert(i, entry)
        self.per_group[entry.group] = self.per_group.get(entry.group, 0) + 1

    def _show(self) -> None:
        for family in api.Family:
            version = 4 if family is api.Family.IPV4 else 6
            self.metrics.addresses.labels(family.value).set(self._owned[version])


def _announced(a: Announcement) -> Announced:
    return Announced(
        address=str(a.interface),
        group=f"{a.group.namespace}/{a.group.name}",
        services=tuple(f"{s.namespace}/{s.name}" for s in a.services),
        weight=a.weight,
        bgp_class=a.bgp_class.name if a.bgp_class else "",
    )
