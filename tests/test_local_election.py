"""The election of local addresses (nodeagent.local.election): who may hold an address
and who does.

Table cases: a node is left out when it is not alive, not selected by the group's
nodeSelector, has no interface on the address's subnet, or (ETP Local) has no ready
endpoint, and the reason given when no node is left names the step that emptied the set;
a claimant keeps its address (unless asked not to); Services sharing an IP are one
election; the IPv4 and IPv6 addresses of a Service are elected apart; the weight is a
stable hash, not Python's.

Hypothesis properties, on random memberships: one holder per address exactly when a
candidate exists, whatever the order of the inputs; when a node joins an address moves
only to it, only when no candidate claims it, and only when it wins by weight; when a
node leaves only the addresses it held move.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbroute.model.common import EVERYTHING, LabelSelector
from lbroute.model.errors import ObjectRef
from lbroute.model.fields import IPAddress
from nodeagent.local.election import (
    Election,
    LocalAddress,
    NoHolder,
    Sharer,
    elect,
    weight,
)
from nodeagent.local.membership import Membership

V4 = ipaddress.ip_network("192.0.2.0/24")
V6 = ipaddress.ip_network("2001:db8::/64")
OTHER = ipaddress.ip_network("198.51.100.0/24")
GROUP = ObjectRef(kind="ServiceGroup", namespace="lbroute", name="lan")
WEB = ObjectRef(kind="Service", namespace="default", name="web")
API = ObjectRef(kind="Service", namespace="default", name="api")
RACK_A = LabelSelector(match_labels=(("rack", "a"),))


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def local(
    address: str,
    *services: Sharer,
    selector: LabelSelector = EVERYTHING,
) -> LocalAddress:
    return LocalAddress(
        address=ip(address),
        group=GROUP,
        node_selector=selector,
        services=services or (Sharer(ref=WEB),),
    )


def member(
    *, alive: bool = True, subnets: tuple[str, ...] = (str(V4),), holds: str = ""
) -> Membership:
    return Membership(
        alive=alive,
        subnets=frozenset(ipaddress.ip_network(s) for s in subnets),
        holding=frozenset(ip(a) for a in holds.split(",") if a),
    )


def one(
    address: LocalAddress,
    members: Mapping[str, Membership],
    *,
    labels: Mapping[str, Mapping[str, str]] | None = None,
    ready: Mapping[ObjectRef, frozenset[str]] | None = None,
    sticky: bool = True,
) -> Election:
    out = elect([address], members, node_labels=labels or {}, ready=ready or {}, sticky=sticky)
    assert list(out) == [address.address]
    return out[address.address]


def heaviest(address: str, nodes: list[str]) -> str:
    return max(nodes, key=lambda n: (weight(ip(address), n), n))


NODES = {n: member() for n in ("n1", "n2", "n3")}


@pytest.mark.parametrize(
    ("case", "members", "labels", "ready", "sharers", "expected", "why"),
    [
        ("every node may", NODES, {}, {}, (), {"n1", "n2", "n3"}, None),
        ("not alive", {**NODES, "n2": member(alive=False)}, {}, {}, (), {"n1", "n3"}, None),
        ("none alive", {n: member(alive=False) for n in NODES}, {}, {}, (), set(),
         NoHolder.NOT_ALIVE),
        ("not selected", NODES, {"n1": {"rack": "a"}, "n2": {"rack": "b"}, "n3": {}}, {}, (),
         {"n1"}, None),
        ("labels unknown: its subnets say it is selected", NODES,
         {"n1": {"rack": "b"}, "n2": {"rack": "b"}}, {}, (), {"n3"}, None),
        ("none selected", NODES, {n: {"rack": "b"} for n in NODES}, {}, (), set(),
         NoHolder.NOT_SELECTED),
        ("no interface on the subnet", {**NODES, "n3": member(subnets=(str(OTHER),))}, {}, {},
         (), {"n1", "n2"}, None),
        ("no node on the subnet", {n: member(subnets=(str(OTHER), str(V6))) for n in NODES},
         {}, {}, (), set(), NoHolder.NO_INTERFACE),
        ("ETP Local: only nodes with a ready endpoint", NODES, {}, {WEB: frozenset({"n2"})},
         (Sharer(ref=WEB, local_traffic=True),), {"n2"}, None),
        ("ETP Local: an endpoint on a dead node does not count",
         {**NODES, "n2": member(alive=False)}, {}, {WEB: frozenset({"n2", "n3"})},
         (Sharer(ref=WEB, local_traffic=True),), {"n3"}, None),
        ("ETP Local without a ready endpoint", NODES, {}, {WEB: frozenset({"elsewhere"})},
         (Sharer(ref=WEB, local_traffic=True),), set(), NoHolder.NO_ENDPOINT),
        ("ETP Cluster ignores endpoints", NODES, {}, {WEB: frozenset({"n2"})},
         (Sharer(ref=WEB),), {"n1", "n2", "n3"}, None),
        ("shared, both Local: the nodes serving both", NODES, {},
         {WEB: frozenset({"n1", "n2"}), API: frozenset({"n2", "n3"})},
         (Sharer(ref=WEB, local_traffic=True), Sharer(ref=API, local_traffic=True)), {"n2"},
         None),
        ("shared, both Local, no node serves both: those serving one", NODES, {},
         {WEB: frozenset({"n1"}), API: frozenset({"n3"})},
         (Sharer(ref=WEB, local_traffic=True), Sharer(ref=API, local_traffic=True)),
         {"n1", "n3"}, None),
        ("shared with an ETP Cluster Service: the Local one decides", NODES, {},
         {API: frozenset({"n3"})}, (Sharer(ref=WEB), Sharer(ref=API, local_traffic=True)),
         {"n3"}, None),
    ],
)  # fmt: skip
def test_candidates(
    case: str,
    members: dict[str, Membership],
    labels: dict[str, dict[str, str]],
    ready: dict[ObjectRef, frozenset[str]],
    sharers: tuple[Sharer, ...],
    expected: set[str],
    why: NoHolder | None,
) -> None:
    address = local("192.0.2.10", *sharers, selector=RACK_A)
    result = one(address, members, labels=labels, ready=ready)
    assert set(result.candidates) == expected, case
    assert result.why is why, case
    if expected:
        assert result.holder == heaviest("192.0.2.10", sorted(expected)), case
        assert list(result.candidates) == sorted(
            expected, key=lambda n: (weight(ip("192.0.2.10"), n), n), reverse=True
        )
    else:
        assert result.holder is None


def test_reasons_read_as_sentences() -> None:
    for why in NoHolder:
        assert why.value[0].islower() and not why.value.endswith(".")
    assert "Local" in NoHolder.NO_ENDPOINT.value and "nodeSelector" in NoHolder.NOT_SELECTED.value


def test_a_claimant_keeps_its_address_while_it_stays_a_candidate() -> None:
    address = "192.0.2.10"
    top = heaviest(address, list(NODES))
    other = next(n for n in sorted(NODES) if n != top)
    members = {**NODES, other: member(holds=address)}
    kept = one(local(address), members)
    assert kept.holder == other and kept.kept, "a returning heavier node does not pull it back"
    assert one(local(address), members, sticky=False).holder == top, "unless asked"
    members[other] = member(holds=address, alive=False)
    assert one(local(address), members).holder == top, "a dead claimant keeps nothing"
    members[other] = member(holds=address, subnets=(str(OTHER),))
    assert one(local(address), members).holder == top, "nor one no longer on the subnet"


def test_of_several_claimants_the_heaviest_keeps_it() -> None:
    address = "192.0.2.10"
    members = {n: member(holds=address) for n in NODES}
    result = one(local(address), members)
    assert result.holder == heaviest(address, list(NODES)) and not result.kept


def test_services_sharing_an_ip_are_one_election() -> None:
    shared = local("192.0.2.10", Sharer(ref=WEB), Sharer(ref=API))
    result = elect([shared], NODES, node_labels={}, ready={})
    assert list(result) == [ip("192.0.2.10")]
    assert result[ip("192.0.2.10")].holder == heaviest("192.0.2.10", list(NODES))


def test_the_two_families_of_a_service_are_elected_apart() -> None:
    members = {n: member(subnets=(str(V4), str(V6))) for n in NODES}
    pairs = [(f"192.0.2.{i}", f"2001:db8::{i:x}") for i in range(1, 41)]
    addresses = [local(a) for pair in pairs for a in pair]
    result = elect(addresses, members, node_labels={}, ready={})
    for v4, v6 in pairs:
        assert result[ip(v4)].holder == heaviest(v4, list(NODES))
        assert result[ip(v6)].holder == heaviest(v6, list(NODES))
    apart = [pair for pair in pairs if result[ip(pair[0])].holder != result[ip(pair[1])].holder]
    assert apart, "some Service has its IPv4 and IPv6 addresses on two nodes"
    only_v6 = {**members, "n4": member(subnets=(str(V6),))}
    v4, v6 = pairs[0]
    result = elect([local(v4), local(v6)], only_v6, node_labels={}, ready={})
    assert "n4" not in result[ip(v4)].candidates and "n4" in result[ip(v6)].candidates


def test_the_weight_is_a_stable_hash_of_address_and_node() -> None:
    """Pinned: every agent, on any machine and Python, computes the same weights."""
    assert weight(ip("192.0.2.10"), "node-a") == 0xA816C20530E76998
    assert weight(ip("2001:db8::10"), "node-a") != weight(ip("192.0.2.10"), "node-a")
    assert weight(ip("192.0.2.10"), "node-b") != weight(ip("192.0.2.10"), "node-a")


def test_a_joining_node_takes_about_one_in_n_plus_one_addresses_and_only_those() -> None:
    addresses = [local(str(V4.network_address + i)) for i in range(1, 251)]
    addresses += [local(str(OTHER.network_address + i)) for i in range(1, 251)]
    members = {f"n{i}": member(subnets=(str(V4), str(OTHER))) for i in range(4)}
    before = elect(addresses, members, node_labels={}, ready={})
    after = elect(addresses, {**members, "n4": members["n0"]}, node_labels={}, ready={})
    moved = [a for a in before if before[a].holder != after[a].holder]
    assert {after[a].holder for a in moved} == {"n4"}
    assert 0.15 < len(moved) / len(addresses) < 0.25, len(moved)


# -- properties ------------------------------------------------------------------------------

NAMES = [f"n{i}" for i in range(6)]
SUBNETS = [V4, OTHER, V6]
POOL = [ip(a) for a in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "198.51.100.7", "2001:db8::1",
                        "2001:db8::2")]  # fmt: skip
SELECTORS = [EVERYTHING, RACK_A, LabelSelector(match_labels=(("rack", "b"),))]


@st.composite
def memberships(draw: st.DrawFn) -> dict[str, Membership]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=5))
    return {
        name: Membership(
            alive=draw(st.booleans()),
            subnets=frozenset(draw(st.lists(st.sampled_from(SUBNETS), min_size=1))),
            holding=frozenset(draw(st.lists(st.sampled_from(POOL), max_size=3))),
        )
        for name in names
    }


Inputs = tuple[
    list[LocalAddress],
    dict[str, Membership],
    dict[str, dict[str, str]],
    dict[ObjectRef, frozenset[str]],
]
"""Addresses, members, node labels, ready endpoints."""


@st.composite
def inputs(draw: st.DrawFn) -> Inputs:
    addresses = [
        LocalAddress(
            address=a,
            group=GROUP,
            node_selector=draw(st.sampled_from(SELECTORS)),
            services=(
                Sharer(ref=WEB, local_traffic=draw(st.booleans())),
                *([Sharer(ref=API, local_traffic=True)] if draw(st.booleans()) else []),
            ),
        )
        for a in draw(st.lists(st.sampled_from(POOL), unique=True, min_size=1))
    ]
    members = draw(memberships())
    labels = {n: {"rack": draw(st.sampled_from("ab"))} for n in NAMES if draw(st.booleans())}
    ready = {
        ref: frozenset(draw(st.lists(st.sampled_from(NAMES), max_size=4))) for ref in (WEB, API)
    }
    return addresses, members, labels, ready


@settings(max_examples=300, deadline=None)
@given(inputs(), st.booleans(), st.randoms(use_true_random=False))
def test_one_holder_per_address_exactly_when_there_is_a_candidate(
    drawn: Inputs,
    sticky: bool,
    rnd: random.Random,
) -> None:
    addresses, members, labels, ready = drawn
    result = elect(addresses, members, node_labels=labels, ready=ready, sticky=sticky)
    assert set(result) == {a.address for a in addresses}
    for a in addresses:
        e = result[a.address]
        assert (e.holder is None) == (not e.candidates) == (e.why is not None)
        if e.holder is not None:
            assert e.holder in e.candidates
        for node in e.candidates:
            m = members[node]
            assert m.alive and m.serves(a.address)
            assert node not in labels or a.node_selector.matches(labels[node])
    shuffled = list(members.items())
    rnd.shuffle(shuffled)
    again = elect(reversed(addresses), dict(shuffled), node_labels=labels, ready=ready,
                  sticky=sticky)  # fmt: skip
    assert again == result, "every agent reaches the same result, whatever the order"


@settings(max_examples=300, deadline=None)
@given(inputs(), st.sampled_from(NAMES), st.lists(st.sampled_from(SUBNETS), min_size=1))
def test_a_joining_node_takes_only_what_it_wins_and_nobody_claims(
    drawn: Inputs,
    joining: str,
    subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> None:
    addresses, members, labels, ready = drawn
    members.pop(joining, None)
    before = elect(addresses, members, node_labels=labels, ready=ready)
    new = Membership(alive=True, subnets=frozenset(subnets))  # holds nothing yet
    after = elect(addresses, {**members, joining: new}, node_labels=labels, ready=ready)
    for a in addresses:
        old, now = before[a.address], after[a.address]
        if now.holder == old.holder:
            continue
        assert now.holder == joining, "an address moves only to the joining node"
        assert now.candidates[0] == joining, "which wins it by weight"
        assert not any(a.address in members[n].holding for n in now.candidates if n != joining), (
            "and no candidate claims it"
        )
    unclaimed = elect(addresses, members, node_labels=labels, ready=ready, sticky=False)
    joined = elect(addresses, {**members, joining: new}, node_labels=labels, ready=ready,
                   sticky=False)  # fmt: skip
    for a in addresses:
        old, now = unclaimed[a.address], joined[a.address]
        assert now.holder in (old.holder, joining), "rendezvous: moves only to the new node"
        if old.holder is not None and joining in now.candidates:
            wins = weight(a.address, joining) > weight(a.address, old.holder)
            assert (now.holder == joining) == (wins or old.holder not in now.candidates)


@settings(max_examples=300, deadline=None)
@given(inputs(), st.sampled_from(NAMES), st.booleans())
def test_a_leaving_node_moves_only_its_addresses(
    drawn: Inputs,
    leaving: str,
    sticky: bool,
) -> None:
    addresses, members, labels, ready = drawn
    before = elect(addresses, members, node_labels=labels, ready=ready, sticky=sticky)
    rest = {n: m for n, m in members.items() if n != leaving}
    after = elect(addresses, rest, node_labels=labels, ready=ready, sticky=sticky)
    for a in addresses:
        old, now = before[a.address], after[a.address]
        if old.holder != leaving:
            assert now.holder == old.holder
