"""``plan_reconcile``: what Kubelb.reconcile asks of the kernel, decided without root.

Table-driven: lbroute's addresses and routes as the kernel has them, the addresses
wanted, and the exact four steps expected (new addresses, new routes, old routes, old
addresses), each in order (IPv4 first, then by address). A Hypothesis property checks
that carrying out the plan always lands on the desired addresses with one route per
prefix, touching nothing that stays and asking nothing twice. tests/netns/test_kubelb.py
checks that the kernel ends up so.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbroute.model.fields import IPNetwork
from nodeagent.desired import Interface
from nodeagent.netlink.plan import Plan, plan_reconcile


def _ifaces(*addresses: str) -> tuple[Interface, ...]:
    return tuple(ipaddress.ip_interface(a) for a in addresses)


def _nets(*prefixes: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(p) for p in prefixes)


CASES: list[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], Plan]] = [
    ("nothing", (), (), (), Plan()),
    (
        "a fresh interface: every address, one route per prefix",
        (),
        (),
        ("2001:db8::7/64", "198.51.100.5/32", "192.0.2.8/24", "192.0.2.7/24"),
        Plan(
            add=_ifaces("192.0.2.7/24", "192.0.2.8/24", "198.51.100.5/32", "2001:db8::7/64"),
            add_routes=_nets("192.0.2.0/24", "198.51.100.5/32", "2001:db8::/64"),
        ),
    ),
    (
        "everything in place: nothing to do",
        ("192.0.2.7/24", "2001:db8::7/64"),
        ("192.0.2.0/24", "2001:db8::/64"),
        ("192.0.2.7/24", "2001:db8::7/64"),
        Plan(),
    ),
    (
        "one address of a shared prefix goes: its route stays",
        ("192.0.2.7/24", "192.0.2.8/24"),
        ("192.0.2.0/24",),
        ("192.0.2.8/24",),
        Plan(delete=_ifaces("192.0.2.7/24")),
    ),
    (
        "the last address of a prefix goes: its route goes too",
        ("192.0.2.7/24", "2001:db8::7/64"),
        ("192.0.2.0/24", "2001:db8::/64"),
        ("2001:db8::7/64",),
        Plan(delete_routes=_nets("192.0.2.0/24"), delete=_ifaces("192.0.2.7/24")),
    ),
    (
        "everything goes",
        ("192.0.2.7/24", "2001:db8::7/64"),
        ("192.0.2.0/24", "2001:db8::/64"),
        (),
        Plan(
            delete_routes=_nets("192.0.2.0/24", "2001:db8::/64"),
            delete=_ifaces("192.0.2.7/24", "2001:db8::7/64"),
        ),
    ),
    (
        "a prefix length changes: the new address and route before the old ones go",
        ("192.0.2.7/24",),
        ("192.0.2.0/24",),
        ("192.0.2.7/32",),
        Plan(
            add=_ifaces("192.0.2.7/32"),
            add_routes=_nets("192.0.2.7/32"),
            delete_routes=_nets("192.0.2.0/24"),
            delete=_ifaces("192.0.2.7/24"),
        ),
    ),
    (
        "an IPv6 prefix length changes: the kernel holds one IPv6 address, so swapped at once",
        ("2001:db8::7/64",),
        ("2001:db8::/64",),
        ("2001:db8::7/128",),
        Plan(
            swap=(
                (
                    ipaddress.ip_interface("2001:db8::7/64"),
                    ipaddress.ip_interface("2001:db8::7/128"),
                ),
            ),
            add_routes=_nets("2001:db8::7/128"),
            delete_routes=_nets("2001:db8::/64"),
        ),
    ),
    (
        "a route deleted behind lbroute's back comes back, its address untouched",
        ("192.0.2.7/24", "192.0.2.8/24"),
        (),
        ("192.0.2.7/24", "192.0.2.8/24"),
        Plan(add_routes=_nets("192.0.2.0/24")),
    ),
    (
        "a route of lbroute's that no address needs goes",
        ("192.0.2.7/24",),
        ("192.0.2.0/24", "198.51.100.0/24"),
        ("192.0.2.7/24",),
        Plan(delete_routes=_nets("198.51.100.0/24")),
    ),
    (
        "order: IPv4 first, then by address as a number, not as text",
        (),
        (),
        ("::1/128", "10.0.0.10/32", "10.0.0.9/32", "2001:db8::a/128", "2001:db8::9/128"),
        Plan(
            add=_ifaces(
                "10.0.0.9/32", "10.0.0.10/32", "::1/128", "2001:db8::9/128", "2001:db8::a/128"
            ),
            add_routes=_nets(
                "10.0.0.9/32", "10.0.0.10/32", "::1/128", "2001:db8::9/128", "2001:db8::a/128"
            ),
        ),
    ),
    (
        "the same address under two prefixes: the one not wanted goes",
        ("192.0.2.7/24", "192.0.2.7/25"),
        ("192.0.2.0/24", "192.0.2.0/25"),
        ("192.0.2.7/25",),
        Plan(delete_routes=_nets("192.0.2.0/24"), delete=_ifaces("192.0.2.7/24")),
    ),
]


@pytest.mark.parametrize(
    ("name", "owned", "routes", "desired", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_plan(
    name: str,
    owned: tuple[str, ...],
    routes: tuple[str, ...],
    desired: tuple[str, ...],
    expected: Plan,
) -> None:
    plan = plan_reconcile(
        owned=frozenset(_ifaces(*owned)),
        routes=frozenset(_nets(*routes)),
        desired=frozenset(_ifaces(*desired)),
    )
    assert plan == expected


_V4 = st.builds(
    lambda host, length: ipaddress.IPv4Interface((int(host), length)),
    st.ip_addresses(v=4, network="192.0.2.0/24"),
    st.integers(22, 32),
)
_V6 = st.builds(
    lambda host, length: ipaddress.IPv6Interface((int(host), length)),
    st.ip_addresses(v=6, network="2001:db8::/120"),
    st.integers(118, 128),
)
_SETS = st.frozensets(st.one_of(_V4, _V6), max_size=12)


@given(owned=_SETS, desired=_SETS, stray=_SETS)
def test_carrying_out_the_plan_gives_the_desired_state(
    owned: frozenset[Interface], desired: frozenset[Interface], stray: frozenset[Interface]
) -> None:
    routes = frozenset(i.network for i in owned | stray)
    plan = plan_reconcile(owned=owned, routes=routes, desired=desired)
    old, new = {o for o, _ in plan.swap}, {n for _, n in plan.swap}
    assert (owned - set(plan.delete) - old) | set(plan.add) | new == desired
    assert all(o.ip == n.ip and o.version == 6 for o, n in plan.swap)
    assert (routes - set(plan.delete_routes)) | set(plan.add_routes) == {i.network for i in desired}
    assert not (set(plan.add) | new) & owned and set(plan.delete) | old <= owned
    assert not set(plan.add_routes) & routes and set(plan.delete_routes) <= routes
    for step in (plan.add, plan.add_routes, plan.delete_routes, plan.delete):
        assert len(set(step)) == len(step)
