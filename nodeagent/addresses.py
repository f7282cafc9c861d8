"""The node's Service addresses on kube-lb0, as the desired state says.

Every change is programmed at once, except that addresses only IS-IS announces are
paced (nodeagent.pacing says why): :meth:`Addresses.program` programs what may go now
and says when the rest is due; :meth:`Addresses.again` programs it then. What is
announced is what the kernel holds afterwards (an address netlink refused is counted,
not listed).
"""

from __future__ import annotations

from lbroute.model import api
from nodeagent.desired import DesiredState, Interface
from nodeagent.netlink import Kubelb
from nodeagent.pacing import Pacer
from nodeagent.status import Announced, Metrics


class Addresses:
    """kube-lb0 (or the interface :meth:`use` names) for one agent."""

    def __init__(self, pace: float, metrics: Metrics) -> None:
        self.metrics = metrics
        self.due = float("inf")
        """When addresses held back by the pacer are due (monotonic)."""
        self._pacer = Pacer(pace)
        self._kubelb: Kubelb | None = None
        self._newest: tuple[DesiredState, frozenset[Interface]] | None = None
        """The newest desired state and its paced addresses, for a held-back program."""

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

    def program(
        self, desired: DesiredState, paced: frozenset[Interface], now: float
    ) -> list[Announced]:
        """Program ``desired`` as far as the pacer lets ``paced`` change at ``now``;
        returns what is announced."""
        assert self._kubelb is not None
        self._newest = (desired, paced)
        target, self.due = self._pacer.target(desired.interfaces, paced, now)
        changes = self._kubelb.reconcile(target, desired.weights, desired.classes)
        if changes.failed:
            self.metrics.netlink_errors.inc(len(changes.failed))
        owned = changes.owned
        for family in api.Family:
            version = 4 if family is api.Family.IPV4 else 6
            self.metrics.addresses.labels(family.value).set(
                sum(1 for a in owned if a.version == version)
            )
        return [
            Announced(
                address=str(a.interface),
                group=f"{a.group.namespace}/{a.group.name}",
                services=tuple(f"{s.namespace}/{s.name}" for s in a.services),
                weight=a.weight,
                bgp_class=a.bgp_class.name if a.bgp_class else "",
            )
            for a in desired.announcements
            if a.interface in owned
        ]

    def again(self, now: float) -> list[Announced] | None:
        """Program what the pacer held back, if it is due at ``now``; returns what is
        announced then (None: nothing was due)."""
        if now < self.due or self._newest is None:
            return None
        return self.program(*self._newest, now)
