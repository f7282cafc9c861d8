"""What reconciling kube-lb0 does, decided without touching the kernel.

:func:`plan_reconcile` takes lbroute's addresses and routes as the kernel has them and
the addresses wanted, and says what to add and what to delete, step by step:

1. new addresses,
2. new routes (one per prefix of a wanted address),
3. routes no wanted address needs any more,
4. addresses no longer wanted,
5. weights (docs/weighted-ecmp.md) of routes and addresses that stay: the route's
   window replaced in place; the address's metric changed in place or, where the router
   reads it from an IPv6 address only when the address is added (FRR 8.4's zebra),
   by removing the address and adding it again.

New addresses and routes are added with their weights. So a prefix-length change never
leaves a gap, and a route never outlives (nor is silently dropped with) the last address
of its prefix. Nothing else is touched: an
address that stays is not re-added. Within a step, IPv4 comes before IPv6, each in
address order, so the same input always gives the same requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lbroute.model.fields import IPNetwork
from nodeagent.desired import Interface


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The steps of a reconcile, each done in one batch, in this order."""

    add: tuple[Interface, ...] = ()
    add_routes: tuple[IPNetwork, ...] = ()
    delete_routes: tuple[IPNetwork, ...] = ()
    delete: tuple[Interface, ...] = ()
    reweight_routes: tuple[IPNetwork, ...] = ()
    """Routes that stay, with a new window (replaced in place)."""
    reweight: tuple[Interface, ...] = ()
    """Addresses that stay, with a new metric changed in place."""
    readd: tuple[Interface, ...] = ()
    """IPv6 addresses that stay, with a new metric: removed and added again at once."""
    route_windows: Mapping[IPNetwork, int] = field(default_factory=dict)
    """The window each added or reweighted route gets (absent: 0)."""
    metrics: Mapping[Interface, int] = field(default_factory=dict)
    """The metric each added, reweighted or re-added address gets (absent: 0)."""


def plan_reconcile(
    *,
    owned: frozenset[Interface],
    routes: frozenset[IPNetwork],
    desired: frozenset[Interface],
    weights: Mapping[Interface, int] | None = None,
    windows: Mapping[IPNetwork, int] | None = None,
    metrics: Mapping[Interface, int] | None = None,
    address_weights: bool = False,
) -> Plan:
    """The steps that turn ``owned`` addresses and ``routes`` (lbroute's, as the kernel
    has them, with their ``metrics`` and ``windows``) into ``desired`` addresses with one
    route per prefix, weighted by ``weights``; ``address_weights``: the weight goes on the
    address's metric too (FRR reads it there)."""
    want_routes = frozenset(i.network for i in desired)
    weights, windows, metrics = weights or {}, windows or {}, metrics or {}
    want_windows = {i.network: w for i, w in weights.items() if w and i in desired}
    want_metrics = (
        {i: w for i, w in weights.items() if w and i in desired} if address_weights else {}
    )
    kept = desired & owned
    changed = [i for i in kept if metrics.get(i, 0) != want_metrics.get(i, 0)]
    return Plan(
        add=tuple(sorted(desired - owned, key=_order)),
        add_routes=tuple(sorted(want_routes - routes, key=_net_order)),
        delete_routes=tuple(sorted(routes - want_routes, key=_net_order)),
        delete=tuple(sorted(owned - desired, key=_order)),
        reweight_routes=tuple(
            sorted(
                (n for n in want_routes & routes if windows.get(n, 0) != want_windows.get(n, 0)),
                key=_net_order,
            )
        ),
        reweight=tuple(
            sorted((i for i in changed if i.version == 4 or not address_weights), key=_order)
        ),
        readd=tuple(sorted((i for i in changed if i.version == 6 and address_weights), key=_order)),
        route_windows=want_windows,
        metrics=want_metrics,
    )


def _order(iface: Interface) -> tuple[int, int, int]:
    return (iface.version, int(iface.ip), iface.network.prefixlen)


def _net_order(net: IPNetwork) -> tuple[int, int, int]:
    return (net.version, int(net.network_address), net.prefixlen)
