"""What reconciling kube-lb0 does, decided without touching the kernel.

:func:`plan_reconcile` takes lbroute's addresses and routes as the kernel has them and
the addresses wanted, and says what to add and what to delete, step by step:

1. new addresses,
2. new routes (one per prefix of a wanted address),
3. routes no wanted address needs any more,
4. addresses no longer wanted.

So a prefix-length change never leaves a gap, and a route never outlives (nor is
silently dropped with) the last address of its prefix. Nothing else is touched: an
address that stays is not re-added. Within a step, IPv4 comes before IPv6, each in
address order, so the same input always gives the same requests.
"""

from __future__ import annotations

from dataclasses import dataclass

from lbroute.model.fields import IPNetwork
from nodeagent.desired import Interface


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The four steps of a reconcile, each done in one batch, in this order."""

    add: tuple[Interface, ...] = ()
    add_routes: tuple[IPNetwork, ...] = ()
    delete_routes: tuple[IPNetwork, ...] = ()
    delete: tuple[Interface, ...] = ()


def plan_reconcile(
    *, owned: frozenset[Interface], routes: frozenset[IPNetwork], desired: frozenset[Interface]
) -> Plan:
    """The steps that turn ``owned`` addresses and ``routes`` (lbroute's, as the kernel
    has them) into ``desired`` addresses with one route per prefix."""
    want_routes = frozenset(i.network for i in desired)
    return Plan(
        add=tuple(sorted(desired - owned, key=_order)),
        add_routes=tuple(sorted(want_routes - routes, key=_net_order)),
        delete_routes=tuple(sorted(routes - want_routes, key=_net_order)),
        delete=tuple(sorted(owned - desired, key=_order)),
    )


def _order(iface: Interface) -> tuple[int, int, int]:
    return (iface.version, int(iface.ip), iface.network.prefixlen)


def _net_order(net: IPNetwork) -> tuple[int, int, int]:
    return (net.version, int(net.network_address), net.prefixlen)
