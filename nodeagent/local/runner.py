"""The local loop: membership, election and the NIC, in a thread of its own.

The agent hands each new set of inputs (:class:`~nodeagent.local.plan.LocalInputs`)
to :meth:`LocalRunner.update` and goes on with its router; the loop never holds up an
apply. It runs a :meth:`~LocalRunner.step` on every input change, every
``localLease.renew`` seconds and whenever an announcement is due:

1. read the kernel (links, addresses, default routes): the subnets this node can serve
   for the local pools that select it, and lbroute's local addresses on the NIC;
2. publish our membership Lease (every renew interval, and at once when what we hold
   changed): alive, the subnets, what we hold;
3. read everyone's Leases and elect each local address (nodeagent.local.election);
4. place the addresses we won and reconcile the NIC (lifetime
   ``localLease.address_lifetime``, renewed each step), announce the new ones by
   GARP/NA, each repeat only while the election still gives the address to us.

Safety, in the order things can go wrong:

- A (re)started agent takes nothing before it has read the Leases and seen its own
  renewal back (``Members``: not alive until then). Addresses it finds on the NIC
  are kept and renewed meanwhile: they are there only if it was down for less than
  their lifetime, shorter than the Lease duration, so no other node has taken them.
  Unchanged inputs therefore neither move nor re-add anything.
- Reads failing (the API or the directory unreadable): keep what we hold, renewing it,
  take nothing new, as long as our own writes succeed (the others see us alive).
- Our writes failing: ``Members`` counts us dead ``duration - renew`` seconds after the
  last renewal the store showed back, before any other node may (after ``duration``);
  then the election gives us nothing and the addresses are removed.
- SIGTERM (:meth:`LocalRunner.stop`): remove every local address, then delete our
  Lease, so the others take over at their next step, not after the Lease expires.
- SIGKILL: the addresses leave the NIC by their lifetime (1 s at the defaults), the
  others count us gone after ``duration`` (2 s) and take over at their next step
  (``renew``, 0.5 s): failover within duration + renew + the announcement, about 3 s,
  and never two answerers.

A step that fails is logged, counted and tried again at the next tick; it never ends
the agent.
"""

from __future__ import annotations

import datetime
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lbroute.model.fields import IPAddress
from lbroute.model.logs import about
from nodeagent.local.addresses import LocalAddresses, LocalChanges
from nodeagent.local.election import Election, elect
from nodeagent.local.membership import LeaseStore, Members, Membership
from nodeagent.local.plan import LocalInputs, holdings
from nodeagent.netlink.ipvs import check_arp, ipvs_addresses, read_arp_sysctls
from nodeagent.netlink.lan import Lan
from nodeagent.netlink.nic import Snapshot, candidates, owned, serving_subnets
from nodeagent.status import LocalElected, LocalElections, LocalHeld, LocalUnplaced, Metrics

log = logging.getLogger(__name__)

ARP_CHECK_EVERY = 10.0
"""Seconds between two looks at kube-ipvs0 and the ARP sysctls."""
RETRY = 1.0
"""Seconds before a failed step is tried again."""


@dataclass(frozen=True, kw_only=True)
class LocalReport:
    """What the local loop has to say after a step."""

    holding: tuple[LocalHeld, ...] = ()
    problems: tuple[str, ...] = ()
    arp: str | None = None
    """What is wrong with ARP strictness (kube-ipvs0), and what to set; None: fine."""
    taken: tuple[str, ...] = ()
    """Addresses taken over in this step."""
    released: tuple[str, ...] = ()
    """Addresses given up in this step."""
    elected: LocalElections | None = None
    """Every local address's election, the live members and what this node cannot
    place, for the reporter (nodeagent.kubereport: the ServiceGroups' ``LocalHeld``
    condition and its Events); None while the election is not settled (the agent
    starting, or the Leases unreadable: :func:`keep_on_outage`)."""


@dataclass
class LocalCounters:
    """Counters for the metrics."""

    elections: int = 0
    taken: int = 0
    released: int = 0
    failures: int = 0


def _now_text() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def keep_on_outage(
    elections: Mapping[IPAddress, Election], node: str, held: frozenset[IPAddress]
) -> dict[IPAddress, Election]:
    """The elections while the Leases cannot be read: we keep what we hold, take nothing."""
    return {
        address: Election(address=address, holder=node if address in held else None)
        for address in elections
    }


class LocalRunner:
    """The local loop for ``node``, publishing through ``store``."""

    def __init__(
        self,
        store: LeaseStore,
        *,
        node: str,
        namespace: str,
        on_report: Callable[[LocalReport], None] = lambda _: None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.node = node
        self.namespace = namespace
        self.on_report = on_report
        self.metrics = metrics
        self._counted = (0, 0, 0)
        self.clock = clock
        self.counters = LocalCounters()
        self.members: Members | None = None
        self.local: LocalAddresses | None = None
        self.elections: dict[IPAddress, Election] = {}
        self._inputs: LocalInputs | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lan: Lan | None = None
        self._next_publish = 0.0
        self._published: Membership | None = None
        self._last_write = -math.inf
        self._grace_until: float | None = None
        """Until then (one renew interval after the Leases were first read with ours in
        them) a starting agent takes nothing new: agents that start together see each
        other's Leases before any of them answers."""
        self._since: dict[IPAddress, str] = {}
        self._next_arp = 0.0
        self._arp: str | None = None
        self._report: LocalReport | None = None
        self._found: dict[str, Membership] = {}
        self._settled = False
        """The last step's elections are the election's own (not :func:`keep_on_outage`)."""
        self._dirty = False
        self._poked = threading.Event()

    # -- the thread -------------------------------------------------------------------

    def update(self, inputs: LocalInputs) -> None:
        """New inputs: the loop runs a step at once."""
        with self._lock:
            self._inputs = inputs
            self._dirty = True
        self._wake.set()

    def poke(self) -> None:
        """The Leases changed (a watch says so): the loop reads them at once and runs a
        step if a node came, went, or changed what it holds or serves. A renewal alone
        costs one read, no step: so a graceful stop elsewhere is taken over within
        milliseconds, not at the next renew interval."""
        self._poked.set()
        self._wake.set()

    def start(self) -> LocalRunner:
        self._thread = threading.Thread(target=self._run, name="lbroute-local", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """End the loop: release the addresses and withdraw the Lease (graceful stop)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.wait(max(0.0, self._due() - self.clock()))
                self._wake.clear()
                if self._stopping.is_set():
                    break
                try:
                    now = self.clock()
                    with self._lock:
                        dirty, self._dirty = self._dirty, False
                    if self._poked.is_set():
                        self._poked.clear()
                        if not dirty and now < self._due() and not self.members_changed(now):
                            continue
                    self.step(now)
                except Exception:  # reported and retried: never the end of the agent
                    self.counters.failures += 1
                    log.exception("the local address loop failed; trying again in %ss", RETRY)
                    self._next_publish = min(self._next_publish, self.clock() + RETRY)
        finally:
            self.shutdown()

    def members_changed(self, now: float) -> bool:
        """The membership (who, alive, what each serves and holds) differs from what the
        last step elected on."""
        if self.members is None:
            return False
        return self.members.members(now) != self._found

    def _due(self) -> float:
        inputs = self._inputs
        if inputs is None or (not inputs.any_local and self.members is None):
            # No local group (ever): step does nothing, so nothing is due; the next
            # update() wakes the loop. (Without this, _next_publish stayed 0 and the loop
            # spun on a zero wait: a core per agent in clusters without local groups.)
            return self.clock() + 3600
        due = self._next_publish
        if self.local is not None:
            due = min(due, self.local.due)
        return due

    # -- one step ---------------------------------------------------------------------

    def _members(self, inputs: LocalInputs) -> Members:
        lease = inputs.lease
        duration = max(1, math.ceil(lease.duration))
        deadline = min(max(lease.duration - lease.renew, 0.1), duration - 0.05)
        m = self.members
        if m is None or m.duration != duration or m.renew_deadline != deadline:
            if m is not None:
                log.info(
                    "local lease settings changed: duration %ss, renew %ss",
                    lease.duration,
                    lease.renew,
                )
            m = self.members = Members(
                self.store,
                node=self.node,
                namespace=self.namespace,
                duration=duration,
                renew_deadline=deadline,
            )
            self._next_publish = 0.0
        return m

    def _addresses(self, inputs: LocalInputs) -> LocalAddresses:
        if self.local is None:
            self.local = LocalAddresses(
                service_interface=inputs.service_interface,
                lifetime=inputs.lease.address_lifetime,
                still_mine=self.still_mine,
                clock=self.clock,
            )
        self.local.lifetime = inputs.lease.address_lifetime
        self.local.service_interface = inputs.service_interface
        return self.local

    def _published_holding(self) -> frozenset[IPAddress]:
        return self._published.holding if self._published is not None else frozenset()

    def still_mine(self, address: IPAddress) -> bool:
        """The latest election gives ``address`` to this node."""
        election = self.elections.get(address)
        return election is not None and election.holder == self.node

    def step(self, now: float) -> LocalReport | None:
        """One pass (module docstring); returns what it reports (None: no inputs)."""
        with self._lock:
            inputs = self._inputs
        if inputs is None:
            return None
        if not inputs.any_local and self.members is None:
            return None  # no local group ever: no Lease, nothing on the NIC
        members = self._members(inputs)
        local = self._addresses(inputs)
        if self._lan is None:
            self._lan = Lan()
        snapshot = self._lan.snapshot()
        exclude = {inputs.service_interface}
        held = frozenset(o.interface.ip for o in owned(snapshot, exclude=exclude))
        subnets = frozenset(
            serving_subnets(inputs.local_interface, inputs.serving_pools, snapshot, exclude=exclude)
        )
        own = Membership(subnets=subnets, holding=held)
        if now >= self._next_publish or own != self._published:
            if members.publish(own, now):
                self._last_write = now
            self._published = own
            self._next_publish = now + inputs.lease.renew
        found = self._found = members.members(now)
        elections = elect(
            inputs.addresses, found, node_labels=inputs.node_labels, ready=inputs.ready
        )
        if self._grace_until is None and members.readable and self._last_write > -math.inf:
            self._grace_until = now + inputs.lease.renew
        starting = self._grace_until is None or now < self._grace_until
        outage = not members.readable and now - self._last_write < members.renew_deadline
        self._settled = not (starting or outage)
        if starting or outage:
            elections = keep_on_outage(elections, self.node, held)
            if starting:
                self._next_publish = min(self._next_publish, self._grace_until or now + 0.1)
        if elections != self.elections:
            self.counters.elections += 1
            if self.metrics is not None:
                self.metrics.local_elections.inc()
        self.elections = elections
        placement = holdings(inputs, elections, snapshot)
        claims = held | {h.interface.ip for h in placement.holdings}
        if claims != self._published_holding():  # claim before taking: others see it
            own = Membership(subnets=subnets, holding=frozenset(claims))
            if members.publish(own, now):
                self._last_write = now
            self._published = own
        changes = local.reconcile(placement.holdings)
        now_held = frozenset(o.interface.ip for o in changes.holding)
        if now_held != self._published_holding():  # tell the others at once
            own = Membership(subnets=subnets, holding=now_held)
            if members.publish(own, now):
                self._last_write = now
            self._published = own
            self._next_publish = now + inputs.lease.renew
        return self._after(inputs, changes, placement.unplaced, snapshot, now)

    def _after(
        self,
        inputs: LocalInputs,
        changes: LocalChanges,
        unplaced: tuple[tuple[IPAddress, str], ...],
        snapshot: Snapshot,
        now: float,
    ) -> LocalReport:
        taken = tuple(str(o.interface.ip) for o in changes.added)
        released = tuple(str(o.interface.ip) for o in changes.removed)
        for o in changes.added:
            self._since[o.interface.ip] = _now_text()
            log.info(
                "took over local address %s on %s",
                o.interface,
                o.link,
                extra=about(address=o.interface.ip, interface=o.link),
            )
        for o in changes.removed:
            self._since.pop(o.interface.ip, None)
            log.info(
                "released local address %s from %s",
                o.interface,
                o.link,
                extra=about(address=o.interface.ip, interface=o.link),
            )
        self.counters.taken += len(taken)
        self.counters.released += len(released)
        self._count(changes, taken, released)
        by_address = {a.address: a for a in inputs.addresses}
        holding = []
        for o in changes.holding:
            since = self._since.setdefault(o.interface.ip, _now_text())
            local = by_address.get(o.interface.ip)
            holding.append(
                LocalHeld(
                    address=str(o.interface),
                    interface=o.link,
                    group=f"{local.group.namespace}/{local.group.name}" if local else "",
                    services=tuple(f"{s.ref.namespace}/{s.ref.name}" for s in local.services)
                    if local
                    else (),
                    since=since,
                )
            )
        problems = [f"local address {a}: {why}" for a, why in unplaced]
        problems += [
            f"local address {h.interface} on {h.link}: {why}" for h, why in changes.blocked
        ]
        problems += [f"local address {o.interface} on {o.link}: {why}" for o, why in changes.failed]
        for election in self.elections.values():
            if election.why is not None:
                problems.append(
                    f"local address {election.address} has no holder: {election.why.value}"
                )
        if now >= self._next_arp and self._lan is not None:
            self._next_arp = now + ARP_CHECK_EVERY
            self._arp = self._check_arp(inputs)
        report = LocalReport(
            holding=tuple(holding),
            problems=tuple(problems),
            arp=self._arp,
            taken=taken,
            released=released,
            elected=self._elected(inputs, unplaced, snapshot) if self._settled else None,
        )
        if report != self._report:
            self.on_report(report)
            self._report = report
        return report

    def _elected(
        self,
        inputs: LocalInputs,
        unplaced: tuple[tuple[IPAddress, str], ...],
        snapshot: Snapshot,
    ) -> LocalElections:
        """The settled elections, typed, for the reporter."""
        elected = []
        for local in inputs.addresses:
            election = self.elections.get(local.address)
            elected.append(
                LocalElected(
                    address=local.address,
                    group=local.group,
                    services=tuple(s.ref for s in local.services),
                    holder=election.holder if election is not None else None,
                    why=election.why if election is not None else None,
                    local_traffic=tuple(s.ref for s in local.services if s.local_traffic),
                )
            )
        groups = {a.address: a.group for a in inputs.addresses}
        interfaces = tuple(
            sorted(
                link.name
                for link in snapshot.links
                if link.name not in ("lo", inputs.service_interface)
            )
        )
        return LocalElections(
            elections=tuple(elected),
            alive=tuple(sorted(node for node, m in self._found.items() if m.alive)),
            unplaced=tuple(
                LocalUnplaced(
                    address=address,
                    group=groups.get(address),
                    setting=inputs.local_interface,
                    interfaces=interfaces,
                    message=message,
                )
                for address, message in unplaced
            ),
        )

    def _count(
        self, changes: LocalChanges, taken: tuple[str, ...], released: tuple[str, ...]
    ) -> None:
        if self.metrics is None or self.local is None:
            return
        m = self.metrics
        m.local_holdings.set(len(changes.holding))
        if taken:
            m.local_handovers.labels("taken").inc(len(taken))
        if released:
            m.local_handovers.labels("released").inc(len(released))
        garp, na, failed = self.local.garp_sent, self.local.na_sent, self.counters.failures
        before = self._counted
        if garp > before[0]:
            m.local_announcements.labels("garp").inc(garp - before[0])
        if na > before[1]:
            m.local_announcements.labels("na").inc(na - before[1])
        if failed > before[2]:
            m.local_failures.inc(failed - before[2])
        self._counted = (garp, na, failed)

    def _check_arp(self, inputs: LocalInputs) -> str | None:
        assert self._lan is not None
        snapshot = self._lan.snapshot()
        ipvs = ipvs_addresses(snapshot)
        if not ipvs:
            return None
        nics = [
            link.name
            for link in candidates(
                inputs.local_interface, 4, snapshot, exclude={inputs.service_interface}
            )
        ]
        finding = check_arp(
            ipvs=ipvs,
            local=[a.address for a in inputs.addresses],
            nics=nics,
            sysctls=read_arp_sysctls(nics),
        )
        return None if finding is None else finding.message

    # -- stopping ---------------------------------------------------------------------

    def shutdown(self) -> None:
        """Remove our local addresses, then delete our Lease (the others take over at
        once); close the sockets."""
        try:
            if self.local is not None:
                self.elections = {}
                changes = self.local.release()
                for o in changes.removed:
                    log.info("released local address %s from %s (stopping)", o.interface, o.link)
            if self.members is not None:
                self.members.withdraw()
        except Exception:
            log.exception("could not release the local addresses; they expire by their lifetime")
        finally:
            if self.local is not None:
                self.local.close()
                self.local = None
            if self._lan is not None:
                self._lan.close()
                self._lan = None
