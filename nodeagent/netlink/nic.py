"""Local addresses on a NIC, decided without touching the kernel.

A ``local`` address goes on the node's own LAN interface, so the kernel answers ARP/ND
for it. Three decisions, each a pure function of a :class:`Snapshot` of the kernel
(links, addresses, default routes; read by :mod:`nodeagent.netlink.lan`):

- :func:`place`: which interface an address goes on, per ``NodeAgent.localInterface``
  (``default``: the link of the family's default route; a name; or an ordered list of
  names, fnmatch patterns and ``default``), and with which prefix length: the network
  of that link's own address that contains the local address (or the pool's
  ``subnet``, when it names one). Otherwise a :class:`Unplaced` with the reason: the
  setting names no interface, or no chosen interface is on the address's subnet.
- :func:`serving_subnets`: the subnets this node can serve for a set of local pools
  (what its membership Lease announces to the others' elections).
- :func:`plan_local`: what reconciling the NIC changes: remove what is no longer held,
  add what is new, renew the lifetimes of what stays. Only addresses marked as
  lbroute's (``IFA_PROTO``) are ever removed or renewed; an address of the operator's
  with the same IP on the same link blocks the holding and is left alone.

lbroute's own addresses never count as "the link's own address": a subnet comes only
from what the operator (or DHCP, or the distribution) configured.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from lbroute.model.api import Pool
from lbroute.model.errors import quote
from lbroute.model.fields import IPAddress, IPNetwork
from lbroute.model.vocabulary import ROUTE_PROTO
from nodeagent.desired import Interface
from nodeagent.netlink.wire import Address, DefaultRoute, Link

DEFAULT = "default"
"""The ``localInterface`` entry meaning the link of the family's default route."""
_PATTERN_CHARS = frozenset("*?[")
_NEVER = frozenset({"lo"})


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """What the kernel has, as far as choosing an interface goes."""

    links: tuple[Link, ...] = ()
    addresses: tuple[Address, ...] = ()
    defaults: tuple[DefaultRoute, ...] = ()

    def link(self, name: str) -> Link | None:
        return next((link for link in self.links if link.name == name), None)

    def own_addresses(self, index: int, version: int) -> list[Interface]:
        """The addresses of link ``index`` that are not lbroute's, of IP ``version``."""
        found = []
        for a in self.addresses:
            if a.index != index or a.proto == ROUTE_PROTO:
                continue
            iface = ipaddress.ip_interface(f"{a.address}/{a.prefixlen}")
            if iface.version == version:
                found.append(iface)
        return found


@dataclass(frozen=True, kw_only=True)
class Placed:
    """Where a local address goes: the link, and the address with its subnet's prefix."""

    link: Link
    interface: Interface

    @property
    def subnet(self) -> IPNetwork:
        return self.interface.network


class Unplaced(StrEnum):
    NO_INTERFACE = "NoInterface"
    """``localInterface`` names no (usable) interface on this node."""
    NO_SUBNET = "NoSubnet"
    """No interface it names has an address on the local address's subnet."""


@dataclass(frozen=True, kw_only=True)
class NotPlaced:
    reason: Unplaced
    message: str


def entries(setting: str | Sequence[str]) -> tuple[str, ...]:
    """``localInterface`` as an ordered tuple of entries."""
    return (setting,) if isinstance(setting, str) else tuple(setting)


def _show(setting: str | Sequence[str]) -> str:
    items = entries(setting)
    return f"localInterface {quote(items[0] if len(items) == 1 else list(items))}"


def candidates(
    setting: str | Sequence[str], version: int, snapshot: Snapshot, *, exclude: Iterable[str] = ()
) -> list[Link]:
    """The links ``setting`` names for IP ``version``, in its order, each once: for
    ``default`` the link of the family's default route (the one in use: lowest metric),
    for a pattern the matching links by name. Never ``lo`` nor a link in ``exclude``
    (kube-lb0)."""
    never = _NEVER | frozenset(exclude)
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    by_index = {link.index: link for link in snapshot.links}
    found: dict[int, Link] = {}
    for entry in entries(setting):
        if entry == DEFAULT:
            routes = [r for r in snapshot.defaults if r.family == family]
            best = min((r.metric for r in routes), default=0)
            matched = [by_index[r.oif] for r in routes if r.metric == best and r.oif in by_index]
        elif _PATTERN_CHARS & set(entry):
            matched = sorted(
                (link for link in snapshot.links if fnmatch.fnmatchcase(link.name, entry)),
                key=lambda link: link.name,
            )
        else:
            matched = [link for link in snapshot.links if link.name == entry]
        for link in matched:
            if link.name not in never:
                found.setdefault(link.index, link)
    return list(found.values())


def place(
    setting: str | Sequence[str],
    address: IPAddress,
    snapshot: Snapshot,
    *,
    subnet: IPNetwork | None = None,
    exclude: Iterable[str] = (),
) -> Placed | NotPlaced:
    """The interface ``address`` goes on and its prefix length, or why there is none.

    The first link ``setting`` names (that is up) with an own address whose network
    contains ``address`` wins; the most specific such network gives the prefix length.
    With ``subnet`` (the pool names one), a link qualifies when one of its own
    addresses is in that subnet, and the subnet gives the prefix length."""
    links = candidates(setting, address.version, snapshot, exclude=exclude)
    usable = [link for link in links if link.up]
    family = f"IPv{address.version}"
    if not usable:
        if links:
            down = ", ".join(quote(link.name) for link in links)
            return NotPlaced(
                reason=Unplaced.NO_INTERFACE,
                message=f"{_show(setting)} names only interfaces that are down ({down})",
            )
        if DEFAULT in entries(setting) and not any(
            r.family == (socket.AF_INET6 if address.version == 6 else socket.AF_INET)
            for r in snapshot.defaults
        ):
            what = f"this node has no {family} default route"
        else:
            what = "no interface of this node matches"
        known = ", ".join(
            quote(name)
            for name in sorted(link.name for link in snapshot.links)
            if name not in _NEVER
        )
        return NotPlaced(
            reason=Unplaced.NO_INTERFACE,
            message=f"{_show(setting)} names no interface for {address}: {what} "
            f"(its interfaces: {known or 'none'})",
        )
    for link in usable:
        own = snapshot.own_addresses(link.index, address.version)
        if subnet is not None:
            if any(iface.ip in subnet for iface in own):
                return Placed(link=link, interface=_interface(address, subnet.prefixlen))
            continue
        containing = [iface.network for iface in own if address in iface.network]
        if containing:
            best = max(containing, key=lambda net: net.prefixlen)
            return Placed(link=link, interface=_interface(address, best.prefixlen))
    has = "; ".join(
        f"{link.name} has "
        + (", ".join(map(str, snapshot.own_addresses(link.index, address.version))) or "none")
        for link in usable
    )
    where = f"in the pool's subnet {subnet}" if subnet is not None else f"containing {address}"
    return NotPlaced(
        reason=Unplaced.NO_SUBNET,
        message=f"no interface that {_show(setting)} names has an {family} address on a "
        f"subnet {where} ({has})",
    )


def serving_subnets(
    setting: str | Sequence[str],
    pools: Iterable[Pool],
    snapshot: Snapshot,
    *,
    exclude: Iterable[str] = (),
) -> tuple[IPNetwork, ...]:
    """The subnets this node can serve local addresses of ``pools`` on: for a pool with a
    ``subnet``, that subnet if a named interface has an address in it; otherwise each
    network of a named interface's own addresses that overlaps the pool. Sorted, each
    once."""
    found: set[IPNetwork] = set()
    for pool in pools:
        version = pool.first.version
        for link in candidates(setting, version, snapshot, exclude=exclude):
            if not link.up:
                continue
            for iface in snapshot.own_addresses(link.index, version):
                if pool.subnet is not None:
                    if iface.ip in pool.subnet:
                        found.add(pool.subnet)
                elif _overlaps(iface.network, pool.first, pool.last):
                    found.add(iface.network)
    return tuple(sorted(found, key=lambda n: (n.version, int(n.network_address), n.prefixlen)))


def _overlaps(net: IPNetwork, first: IPAddress, last: IPAddress) -> bool:
    return int(net.network_address) <= int(last) and int(net.broadcast_address) >= int(first)


def _interface(address: IPAddress, prefixlen: int) -> Interface:
    if address.version == 4:
        return ipaddress.IPv4Interface((int(address), prefixlen))
    return ipaddress.IPv6Interface((int(address), prefixlen))


# -- reconciling ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Holding:
    """An address this node holds: on which interface, with its subnet's prefix length."""

    interface: Interface
    link: str


@dataclass(frozen=True, kw_only=True)
class OnLink:
    """An address on a link, as the kernel has it (``index``: the link)."""

    interface: Interface
    index: int
    link: str


@dataclass(frozen=True, kw_only=True)
class LocalPlan:
    """The steps of a reconcile, in this order: remove, add, renew."""

    remove: tuple[OnLink, ...] = ()
    add: tuple[OnLink, ...] = ()
    renew: tuple[OnLink, ...] = ()
    blocked: tuple[tuple[Holding, str], ...] = ()
    """Holdings that cannot go on their link, and why."""


def owned(snapshot: Snapshot, *, exclude: Iterable[str]) -> tuple[OnLink, ...]:
    """lbroute's local addresses: marked as lbroute's, on any link but those in
    ``exclude`` (kube-lb0, whose addresses carry the same mark)."""
    names = {link.index: link.name for link in snapshot.links}
    skip = frozenset(exclude)
    found = [
        OnLink(
            interface=ipaddress.ip_interface(f"{a.address}/{a.prefixlen}"),
            index=a.index,
            link=names.get(a.index, str(a.index)),
        )
        for a in snapshot.addresses
        if a.proto == ROUTE_PROTO and names.get(a.index) not in skip
    ]
    return tuple(sorted(found, key=_order))


def plan_local(
    snapshot: Snapshot, holdings: Iterable[Holding], *, exclude: Iterable[str]
) -> LocalPlan:
    """What turns lbroute's local addresses in ``snapshot`` into ``holdings``.

    An address held where it already is (same link, same prefix length) is renewed;
    anything else of lbroute's is removed; a holding not there yet is added, unless its
    link does not exist or holds the same IP as an address that is not lbroute's (the
    operator's: never touched, reported as blocked)."""
    current = owned(snapshot, exclude=exclude)
    have = {(o.interface, o.index) for o in current}
    foreign = {
        (a.index, ipaddress.ip_address(a.address)): a
        for a in snapshot.addresses
        if a.proto != ROUTE_PROTO
    }
    add: list[OnLink] = []
    keep: set[tuple[Interface, int]] = set()
    blocked: list[tuple[Holding, str]] = []
    for holding in sorted(holdings, key=lambda h: _iface_order(h.interface)):
        link = snapshot.link(holding.link)
        if link is None:
            blocked.append((holding, f"interface {quote(holding.link)} does not exist"))
            continue
        ip = holding.interface.ip
        if (holding.interface, link.index) in have:
            keep.add((holding.interface, link.index))
            continue
        other = foreign.get((link.index, ip))
        if other is not None:
            blocked.append(
                (
                    holding,
                    f"{ip} is already on {link.name} as {other.address}/{other.prefixlen}, "
                    "not lbroute's: left alone",
                )
            )
            continue
        add.append(OnLink(interface=holding.interface, index=link.index, link=link.name))
    return LocalPlan(
        remove=tuple(o for o in current if (o.interface, o.index) not in keep),
        add=tuple(add),
        renew=tuple(o for o in current if (o.interface, o.index) in keep),
        blocked=tuple(blocked),
    )


def _iface_order(iface: Interface) -> tuple[int, int, int]:
    return (iface.version, int(iface.ip), iface.network.prefixlen)


def _order(item: OnLink) -> tuple[int, int, int, int]:
    return (*_iface_order(item.interface), item.index)
