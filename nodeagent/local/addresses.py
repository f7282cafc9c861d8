"""The local addresses this node holds, on its NIC: reconcile, renew, announce.

The election (``nodeagent.local.election``) says which addresses this node holds, and
``nodeagent.netlink.nic.place`` on which interface and with which prefix length. From
those :class:`Holding` s, :meth:`LocalAddresses.reconcile` makes the kernel match:

1. read the kernel (links, addresses) and plan (``nodeagent.netlink.nic.plan_local``):
   remove what is no longer held, add what is new, renew what stays. Only addresses
   marked as lbroute's are touched, and never those on the Service interface
   (kube-lb0, same mark); an operator's address with the same IP blocks a holding and
   is reported, not touched;
2. every address added or renewed gets a valid lifetime of ``lifetime`` seconds, so if
   the agent dies its addresses leave the NIC by themselves within that bound. The
   caller reconciles at least every renew interval (well under the lifetime);
3. an address added (a takeover) is announced at once and then again per
   :data:`~nodeagent.local.announce.DELAYS`; before each send ``still_mine(address)``
   is asked, and a send that finds the address no longer this node's ends that
   address's announcements. :meth:`announce` sends what is due (the agent's loop calls
   it at :attr:`due`), :meth:`settle` sends all of it, sleeping in between.

Nothing is kept on disk: a new :class:`LocalAddresses` (a restarted agent) finds its
addresses by their mark, renews the ones it still holds in place (no remove and add,
no announcement: nothing moved) and removes the others.

Counters for metrics: :attr:`holdings` (addresses on the NIC after the last
reconcile), :attr:`garp_sent` (ARP frames, two per IPv4 announcement),
:attr:`na_sent`, :attr:`announce_errors`, :attr:`netlink_errors`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from lbroute.model.fields import IPAddress
from lbroute.model.logs import about
from nodeagent.local.announce import DELAYS, Announcer, Schedule
from nodeagent.netlink.lan import Lan
from nodeagent.netlink.nic import Holding, OnLink, plan_local

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LocalChanges:
    """What one reconcile did."""

    added: tuple[OnLink, ...] = ()
    renewed: tuple[OnLink, ...] = ()
    removed: tuple[OnLink, ...] = ()
    failed: tuple[tuple[OnLink, str], ...] = ()
    blocked: tuple[tuple[Holding, str], ...] = ()
    """Holdings that could not go on their link (it does not exist, or holds the IP as
    an address that is not lbroute's), and why."""
    holding: tuple[OnLink, ...] = ()
    """lbroute's local addresses on the NICs afterwards."""
    sent: int = 0
    """Packets of the first announcements sent during the reconcile."""


class LocalAddresses:
    """lbroute's local addresses on this node's NICs, in the current network namespace."""

    def __init__(
        self,
        *,
        service_interface: str,
        lifetime: int,
        still_mine: Callable[[IPAddress], bool],
        delays: Sequence[float] = DELAYS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        lan: Lan | None = None,
        announcer: Announcer | None = None,
    ) -> None:
        if lifetime < 1:
            raise ValueError(
                f"the lifetime of a local address is whole seconds >= 1, not {lifetime}"
            )
        self.service_interface = service_interface
        """kube-lb0 (NodeAgent.interface): its addresses carry the same mark and are not
        local addresses."""
        self.lifetime = lifetime
        self.still_mine = still_mine
        self.clock = clock
        self.sleep = sleep
        self._lan = lan or Lan()
        self._announcer = announcer or Announcer()
        self._schedule = Schedule(delays)
        self.holdings = 0
        self.garp_sent = 0
        self.na_sent = 0
        self.announce_errors = 0
        self.netlink_errors = 0

    def close(self) -> None:
        self._lan.close()
        self._announcer.close()

    def __enter__(self) -> LocalAddresses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def due(self) -> float:
        """When the next announcement is due (monotonic; infinity: none)."""
        return self._schedule.next

    def reconcile(self, holdings: Iterable[Holding]) -> LocalChanges:
        """Make lbroute's local addresses exactly ``holdings``, renew their lifetimes, and
        start announcing the new ones."""
        snapshot = self._lan.snapshot()
        plan = plan_local(snapshot, holdings, exclude={self.service_interface})
        outcome = self._lan.carry_out(plan, lifetime=self.lifetime)
        self.netlink_errors += len(outcome.failed)
        now = self.clock()
        for item in outcome.removed:
            self._schedule.cancel(item.interface.ip)
        for item in outcome.added:
            link = snapshot.link(item.link)
            if link is not None:
                self._schedule.start(item.interface.ip, link, now)
        removed = frozenset(outcome.removed)
        holding = sorted(
            {*(o for o in (*plan.renew, *plan.remove) if o not in removed), *outcome.added},
            key=lambda o: (o.interface.version, int(o.interface.ip), o.index),
        )
        self.holdings = len(holding)
        for holding_, reason in plan.blocked:
            log.warning(
                "local address %s on %s: %s",
                holding_.interface,
                holding_.link,
                reason,
                extra=about(address=holding_.interface.ip, interface=holding_.link),
            )
        sent = self.announce()
        return LocalChanges(
            added=outcome.added,
            renewed=outcome.renewed,
            removed=outcome.removed,
            failed=outcome.failed,
            blocked=plan.blocked,
            holding=tuple(holding),
            sent=sent,
        )

    def release(self) -> LocalChanges:
        """Remove every local address at once (a graceful stop)."""
        return self.reconcile(())

    def announce(self) -> int:
        """Send the announcements due now, each only if ``still_mine`` says the address is
        still this node's; returns the packets sent."""
        sent = 0
        for address, link in self._schedule.due(self.clock()):
            if not self.still_mine(address):
                self._schedule.cancel(address)
                log.info(
                    "stopped announcing %s: no longer this node's",
                    address,
                    extra=about(address=address),
                )
                continue
            try:
                count = self._announcer.send(link, address)
            except OSError as exc:
                self.announce_errors += 1
                log.warning(
                    "cannot announce %s on %s: %s",
                    address,
                    link.name,
                    exc,
                    extra=about(address=address, interface=link.name),
                )
                continue
            sent += count
            if address.version == 4:
                self.garp_sent += count
            else:
                self.na_sent += count
        return sent

    def settle(self) -> int:
        """Send every announcement still scheduled, sleeping until each is due; returns
        the packets sent."""
        sent = 0
        while (due := self.due) != float("inf"):
            wait = due - self.clock()
            if wait > 0:
                self.sleep(wait)
            sent += self.announce()
        return sent
