"""What reconciling kube-lb0 does, decided without touching the kernel.

:func:`plan_reconcile` takes lbroute's addresses and routes as the kernel has them and
the addresses wanted, and says what to add and what to delete, step by step:

1. new addresses,
2. new routes (one per prefix of a wanted address),
3. routes no wanted address needs any more,
4. addresses no longer wanted,
5. marks, the weight (docs/weighted-ecmp.md) and the BGP class (docs/bgp-classes.md),
   of routes and addresses that stay: the route's window and rtt replaced in place; the
   address's metric (``class * CLASS_STRIDE + weight``) changed in place or, where the
   router reads it from an IPv6 address only when the address is added (FRR 8.4's
   zebra), by removing the address and adding it again.

An IPv6 address whose prefix length changes is the exception: the kernel holds one
IPv6 address per interface whatever its prefix length (adding the new one while the old
is there fails with EEXIST), so the old one is removed and the new one added in one
batch, in step 1 (:attr:`Plan.swap`): the address is absent between two messages only.

New addresses and routes are added with their marks. So a prefix-length change never
leaves a gap, and a route never outlives (nor is silently dropped with) the last address
of its prefix. Nothing else is touched: an address that stays is not re-added. Within
a step, IPv4 comes before IPv6, each in address order, so the same input always gives
the same requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lbroute.model.api import route_mark
from lbroute.model.fields import IPNetwork
from nodeagent.desired import Interface

Mark = tuple[int, int]
"""A route's (weight, class): its RTAX_WINDOW and RTAX_RTT."""
NONE: Mark = (0, 0)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The steps of a reconcile, each done in one batch, in this order."""

    add: tuple[Interface, ...] = ()
    swap: tuple[tuple[Interface, Interface], ...] = ()
    """IPv6 addresses with a new prefix length: (old, new), each pair removed and added
    at once, after ``add``."""
    add_routes: tuple[IPNetwork, ...] = ()
    delete_routes: tuple[IPNetwork, ...] = ()
    delete: tuple[Interface, ...] = ()
    reweight_routes: tuple[IPNetwork, ...] = ()
    """Routes that stay, with a new mark (replaced in place)."""
    reweight: tuple[Interface, ...] = ()
    """Addresses that stay, with a new metric changed in place."""
    readd: tuple[Interface, ...] = ()
    """IPv6 addresses that stay, with a new metric: removed and added again at once."""
    route_marks: Mapping[IPNetwork, Mark] = field(default_factory=dict)
    """The mark each added or reweighted route gets (absent: none)."""
    metrics: Mapping[Interface, int] = field(default_factory=dict)
    """The metric each added, reweighted or re-added address gets (absent: 0)."""


def plan_reconcile(
    *,
    owned: frozenset[Interface],
    routes: frozenset[IPNetwork],
    desired: frozenset[Interface],
    weights: Mapping[Interface, int] | None = None,
    classes: Mapping[Interface, int] | None = None,
    marks: Mapping[IPNetwork, Mark] | None = None,
    metrics: Mapping[Interface, int] | None = None,
    address_marks: bool = False,
    keep_routes: frozenset[IPNetwork] = frozenset(),
) -> Plan:
    """The steps that turn ``owned`` addresses and ``routes`` (lbroute's, as the kernel
    has them, with their ``metrics`` and ``marks``) into ``desired`` addresses with one
    route per prefix, marked with ``weights`` and ``classes``; ``address_marks``: the
    mark goes on the address's metric too (FRR reads it there).

    A plan for part of the interface (some addresses, and the routes of their prefixes)
    names in ``keep_routes`` the prefixes that addresses outside the part still need."""
    want_routes = frozenset(i.network for i in desired) | keep_routes
    weights, classes = weights or {}, classes or {}
    marks, metrics = marks or {}, metrics or {}
    marked = {
        i: (weights.get(i, 0), classes.get(i, 0))
        for i in (*weights, *classes)
        if i in desired and (weights.get(i) or classes.get(i))
    }
    want_marks = {i.network: mark for i, mark in marked.items()}
    want_metrics = {i: route_mark(*mark) for i, mark in marked.items()} if address_marks else {}
    kept = desired & owned
    changed = [i for i in kept if metrics.get(i, 0) != want_metrics.get(i, 0)]
    adding, deleting = desired - owned, owned - desired
    old6: dict[object, Interface] = {i.ip: i for i in deleting if i.version == 6}
    swap = tuple(
        sorted(((old6[i.ip], i) for i in adding if i.ip in old6), key=lambda p: _order(p[1]))
    )
    if swap:
        adding -= {new for _, new in swap}
        deleting -= {old for old, _ in swap}
    return Plan(
        add=tuple(sorted(adding, key=_order)),
        swap=swap,
        add_routes=tuple(sorted(want_routes - routes, key=_net_order)),
        delete_routes=tuple(sorted(routes - want_routes, key=_net_order)),
        delete=tuple(sorted(deleting, key=_order)),
        reweight_routes=tuple(
            sorted(
                (n for n in want_routes & routes if marks.get(n, NONE) != want_marks.get(n, NONE)),
                key=_net_order,
            )
        ),
        reweight=tuple(
            sorted((i for i in changed if i.version == 4 or not address_marks), key=_order)
        ),
        readd=tuple(sorted((i for i in changed if i.version == 6 and address_marks), key=_order)),
        route_marks=want_marks,
        metrics=want_metrics,
    )


def _order(iface: Interface) -> tuple[int, int, int]:
    return (iface.version, int(iface.ip), iface.network.prefixlen)


def _net_order(net: IPNetwork) -> tuple[int, int, int]:
    return (net.version, int(net.network_address), net.prefixlen)
