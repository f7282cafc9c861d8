"""NetBox prefixes chosen by ``spec.ipam.netbox.prefixSelector``, the pure parts: the
group read with the allocator's choice from its status, which matching prefixes a group
takes (allocator.external.selection), and the broker asking for them over an in-memory
IPAM. Against a real NetBox: tests/netbox/test_allocator_netbox.py."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from allocator.external import Broker
from allocator.external.selection import choose, taken_by
from allocator.ipam import Reason, allocate
from allocator.service import parse_service
from lbroute.model import api
from lbroute.model.errors import InvalidObject
from lbroute.model.fields import IPAddress, IPNetwork
from lbroute.model.servicegroup import parse_service_group
from tests.test_ipam import service
from tests.test_netbox_unit import Clock, MemoryIpam, nb_group

Obj = dict[str, Any]


def net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def selector_group(
    name: str = "nb",
    status: Obj | None = None,
    selector: Obj | None = None,
    **more: Any,
) -> Obj:
    obj = nb_group(name, prefixSelector=selector or {"tags": ["k8s-lb"]}, **more)
    del obj["spec"]["ipam"]["netbox"]["prefixes"]
    if status is not None:
        obj["status"] = {"ipam": {"netbox": status}, "conditions": []}
    return obj


# -- the group ----------------------------------------------------------------------------------


def test_a_selector_group_takes_its_prefixes_from_the_status() -> None:
    g = parse_service_group(
        selector_group(
            status={
                "prefixes": ["198.51.100.0/29", "2001:db8:5::/64"],
                "retained": ["192.0.2.0/28"],
            },
            selector={"tags": ["k8s-lb", "dc1"], "tenant": "acme", "role": "lb"},
        )
    )
    assert g.netbox is not None and g.netbox.selector is not None
    assert g.netbox.selector.describe() == "tag k8s-lb, tag dc1, tenant acme, role lb"
    assert g.netbox.prefixes == (net("198.51.100.0/29"), net("2001:db8:5::/64"))
    assert g.netbox.retained == (net("192.0.2.0/28"),)
    # Every one of them is a pool for the routers, aggregated to its length.
    assert [(str(p), p.aggregation, p.external) for p in g.pools] == [
        ("198.51.100.0/29", 29, "netbox"),
        ("2001:db8:5::/64", 64, "netbox"),
        ("192.0.2.0/28", 28, "netbox"),
    ]
    assert g.pool_path(2) == "status.ipam.netbox.retained[0]"


def test_a_selector_group_without_a_choice_yet_is_valid_and_says_why_it_waits() -> None:
    g = parse_service_group(selector_group())
    assert g.pools == () and g.netbox is not None and g.netbox.prefixes == ()
    web = parse_service(service("web"), default_class=False)
    assert web is not None
    result = allocate([g], [web])
    [failure] = result.failures
    assert failure.reason == Reason.IPAM_PENDING
    assert "no NetBox prefix has been chosen by its prefixSelector (tag k8s-lb)" in (
        failure.message
    )


def test_status_prefixes_are_read_only_for_a_selector() -> None:
    listed = nb_group(prefixes=["198.51.100.0/29"])
    listed["status"] = {"ipam": {"netbox": {"prefixes": ["203.0.113.0/24"]}}}
    g = parse_service_group(listed)
    assert [str(p) for p in g.pools] == ["198.51.100.0/29"], "a status cannot add pools"


@pytest.mark.parametrize(
    ("status", "path", "words"),
    [
        ({"prefixes": ["198.51.100.1/24"]}, "status.ipam.netbox.prefixes[0]", "host bits"),
        ({"prefixes": ["127.0.0.0/8"]}, "status.ipam.netbox.prefixes[0]", "loopback"),
        ({"prefixes": "x"}, "status.ipam.netbox.prefixes", "list"),
        (
            {"prefixes": ["198.51.100.0/29", "198.51.100.0/28"]},
            "spec.pools",
            "each address comes from one source",
        ),
    ],
)
def test_a_bad_status_is_named_like_a_bad_spec(status: Obj, path: str, words: str) -> None:
    with pytest.raises(InvalidObject) as e:
        parse_service_group(selector_group(status=status))
    assert any(p.path == path and words in p.message for p in e.value.problems), [
        str(p) for p in e.value.problems
    ]


def test_another_groups_pools_overlapping_a_chosen_prefix_are_found_by_load() -> None:
    own = {"apiVersion": "lbroute.io/v1alpha1", "kind": "ServiceGroup",
           "metadata": {"name": "own", "namespace": "lbroute"},
           "spec": {"pools": [{"cidr": "198.51.100.0/28"}]}}  # fmt: skip
    model = api.load([own, selector_group(status={"prefixes": ["198.51.100.0/29"]})])
    assert model.errors, "an overlap between groups is reported whichever writes it"


# -- which prefixes a group takes ---------------------------------------------------------------


def test_the_ipams_order_and_what_is_left_out_with_why() -> None:
    other = parse_service_group(
        nb_group("other", prefixes=["203.0.113.0/28"], pools=["192.0.2.128/25"], default=False)
    )
    g = parse_service_group(selector_group())
    matching = [
        net("198.51.100.0/29"),
        net("198.51.100.0/30"),  # a child of the one before
        net("203.0.113.0/29"),  # inside another group's NetBox prefix
        net("192.0.2.192/26"),  # inside another group's own pool
        net("127.0.0.0/29"),  # loopback
        net("2001:db8:5::/64"),
    ]
    c = choose(g, matching, taken_by([other, g], "nb", {}), held=[])
    assert c.prefixes == (net("198.51.100.0/29"), net("2001:db8:5::/64"))
    assert c.retained == ()
    text = "\n".join(c.notes)
    assert "198.51.100.0/30 overlaps 198.51.100.0/29, chosen before it: left out" in text
    assert "203.0.113.0/29 overlaps ServiceGroup lbroute/other's pool" in text
    assert "192.0.2.192/26 overlaps ServiceGroup lbroute/other's pool 192.0.2.128/25" in text
    assert "127.0.0.0/29 is special-purpose" in text
    assert c.status() == {"prefixes": ["198.51.100.0/29", "2001:db8:5::/64"]}


def test_a_prefix_that_stops_matching_is_retained_while_services_hold_its_addresses() -> None:
    g = parse_service_group(
        selector_group(status={"prefixes": ["198.51.100.0/29", "192.0.2.0/29"]})
    )
    taken = taken_by([g], "nb", {})
    held = choose(g, [net("192.0.2.0/29")], taken, held=[ip("198.51.100.3"), ip("192.0.2.1")])
    assert held.prefixes == (net("192.0.2.0/29"),)
    assert held.retained == (net("198.51.100.0/29"),)
    assert "198.51.100.0/29 no longer matches" in held.notes[0]
    assert held.status() == {"prefixes": ["192.0.2.0/29"], "retained": ["198.51.100.0/29"]}
    assert not held.same_as(g)
    # Once no Service holds an address of it, it goes.
    gone = choose(g, [net("192.0.2.0/29")], taken, held=[ip("192.0.2.1")])
    assert gone.prefixes == (net("192.0.2.0/29"),) and gone.retained == ()
    # A child of it tagged meanwhile stays out while the parent holds addresses.
    child = choose(g, [net("198.51.100.0/30")], taken, held=[ip("198.51.100.3")])
    assert child.prefixes == () and child.retained == (net("198.51.100.0/29"),)
    assert (
        "198.51.100.0/30 overlaps 198.51.100.0/29, which holds Services' addresses"
        in (child.notes[0])
    )
    # Matching again: chosen again (new addresses from it), no longer only retained.
    again = choose(g, [net("198.51.100.0/29")], taken, held=[ip("198.51.100.3")])
    assert again.prefixes == (net("198.51.100.0/29"),) and again.retained == ()


def test_at_most_64_prefixes() -> None:
    g = parse_service_group(selector_group())
    many = [net(f"10.{i}.0.0/24") for i in range(70)]
    c = choose(g, many, [], held=[])
    assert len(c.prefixes) == 64
    assert sum("at most 64" in n for n in c.notes) == 6


# -- the broker ---------------------------------------------------------------------------------


def test_the_broker_chooses_when_due_and_reports_in_the_condition() -> None:
    ipam, clock = MemoryIpam(), Clock()
    b = Broker(lambda g: ipam, clock=clock, resync=60.0)
    groups = api.load([selector_group()]).service_groups
    b.groups(groups, key=lambda g: g.netbox)
    chosen = b.select(groups, held=[])
    assert {k: c.status() for k, c in chosen.items()} == {"nb": {"prefixes": ["198.51.100.0/29"]}}
    condition = b.condition("nb")
    assert condition is not None and condition[1] == "InSync"
    assert "prefixSelector (tag k8s-lb) chose 198.51.100.0/29" in condition[2]
    # The status now says it: nothing to write; not asked again before the resync.
    groups = api.load([selector_group(status={"prefixes": ["198.51.100.0/29"]})]).service_groups
    b.groups(groups, key=lambda g: g.netbox)
    ipam.matching.append(net("192.0.2.0/29"))
    assert b.select(groups, held=[]) == {}
    asked = ipam.selects
    clock.now += 61
    chosen = b.select(groups, held=[])
    assert ipam.selects == asked + 1
    assert chosen["nb"].prefixes == (net("198.51.100.0/29"), net("192.0.2.0/29"))


def test_netbox_down_or_refusing_keeps_the_prefixes_the_group_has() -> None:
    ipam, clock = MemoryIpam(), Clock()
    b = Broker(lambda g: ipam, clock=clock, resync=60.0)
    groups = api.load([selector_group(status={"prefixes": ["198.51.100.0/29"]})]).service_groups
    b.groups(groups, key=lambda g: g.netbox)
    ipam.down = True
    assert b.select(groups, held=[]) == {}
    condition = b.condition("nb")
    assert condition is not None and condition[1] == "Unreachable"
    assert b.retry_at is not None and b.retry_at <= clock.now + 1.2
    ipam.down, ipam.refuse = False, "NetBox refused (400): tag: Select a valid choice"
    clock.now += 2
    assert b.select(groups, held=[]) == {}
    condition = b.condition("nb")
    assert condition is not None and condition[1] == "Refused"
    assert condition[2].startswith("spec.ipam.netbox.prefixSelector: NetBox refused (400)")


def test_two_selector_groups_never_take_one_prefix() -> None:
    ipam, clock = MemoryIpam(), Clock()
    b = Broker(lambda g: ipam, clock=clock, resync=60.0)
    objs = [selector_group("a", default=False), selector_group("b", default=False)]
    groups = api.load(objs).service_groups
    b.groups(groups, key=lambda g: g.netbox)
    chosen = b.select(groups, held=[])
    assert chosen["a"].prefixes == (net("198.51.100.0/29"),)
    assert "b" not in chosen, "b keeps what it has: nothing"
    condition = b.condition("b")
    assert condition is not None
    said = condition[2]
    assert "chose no prefix; 198.51.100.0/29 overlaps ServiceGroup lbroute/a's NetBox" in said
