"""Per-node behaviour of ``build_view``: what one node's router is told to do.

Covers node selection (nodeSelector on Peers, ServiceGroups and NodeAgents), which
ServiceGroups each BGP neighbor and OSPF / RIP / IS-IS instance exports
(serviceGroupSelector, ServiceGroup ``protocols``, address families), the per-node
checks (features BIRD lacks, conflicting settings of one protocol, two NodeAgents for
one node), where the router id comes from, IS-IS system ids, the stability of the
names and sequence numbers that end up in the configuration, and that the ``renderer``
package exports the renderer's names only (model names come from ``lbroute.model``).
"""

from __future__ import annotations

import ipaddress
import random
import re
from typing import Any

import pytest

from lbroute.model import api
from lbroute.model.api import Family, Mode, Router
from lbroute.model.errors import Problem, RouterError, Severity
from renderer.view import NodeView, build_view, ident, system_id

V4 = ipaddress.IPv4Address


# -- object builders ----------------------------------------------------------------------


def _obj(
    kind: str, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "lbroute"}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "lbroute.io/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}


def group(
    name: str, *cidrs: str, labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return _obj("ServiceGroup", name, {"pools": [{"cidr": c} for c in cidrs], **spec}, labels)


def bgp(name: str, address: str, asn: int = 65000, **spec: Any) -> dict[str, Any]:
    bgp_spec = {"address": address, "asn": asn, **spec.pop("bgp", {})}
    return _obj("Peer", name, {"bgp": bgp_spec, **spec})


def igp(name: str, protocol: str, *interfaces: str, **spec: Any) -> dict[str, Any]:
    """An OSPF, RIP or IS-IS Peer; RIP lists interface names, the others ``{name: ...}``."""
    items = list(interfaces) if protocol == "rip" else [{"name": i} for i in interfaces]
    proto_spec = {"interfaces": items, **spec.pop(protocol, {})}
    if protocol == "isis":
        proto_spec.setdefault("area", "49.0001")
    return _obj("Peer", name, {protocol: proto_spec, **spec})


def agent(name: str, **spec: Any) -> dict[str, Any]:
    return _obj("NodeAgent", name, spec)


def node(name: str, *addresses: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "status": {"addresses": [{"type": "InternalIP", "address": a} for a in addresses]},
    }


def view(
    objects: list[dict[str, Any]],
    node_name: str = "n1",
    router: Router | None = None,
    **kwargs: Any,
) -> NodeView:
    model = api.load(objects)
    assert model.errors == (), [str(p) for p in model.errors]
    return build_view(model, router, node_name, **kwargs)


N1 = node("n1", "10.0.0.1", labels={"rack": "a"})
N2 = node("n2", "10.0.0.2", labels={"rack": "b"})
WEB = group("web", "192.0.2.0/24", labels={"tier": "web"})


def neighbors(v: NodeView) -> list[str]:
    return [n.ref.name for n in v.bgp]


def groups(v: NodeView) -> list[str]:
    return [g.name for g in v.groups]


def exports(v: NodeView) -> dict[str, list[str]]:
    """Which groups each BGP neighbor and IGP instance exports, by family."""
    out: dict[str, list[str]] = {}
    for n in v.bgp:
        for e in n.exports:
            out[f"bgp {n.ref.name} {e.family}"] = [g.name for g in e.groups]
    for o in v.ospf:
        out[f"ospf v{o.version}"] = [g.name for g in o.export.groups]
    for r in v.rip:
        out[f"rip {r.family}"] = [g.name for g in r.export.groups]
    if v.isis is not None:
        for ie in v.isis.exports:
            out[f"isis {ie.family}"] = [g.name for g in ie.groups]
    return out


def problems(v: NodeView) -> list[tuple[Severity, str, str]]:
    return [(p.severity, str(p.ref), p.path) for p in v.problems]


def only(v: NodeView, ref: str) -> Problem:
    (found,) = [p for p in v.problems if str(p.ref) == ref]
    return found


# -- selection -----------------------------------------------------------------------------

SELECTION = [
    N1,
    N2,
    WEB,
    group("edge", "198.51.100.0/24", nodeSelector={"matchLabels": {"rack": "b"}}),
    group("lan", "203.0.113.0/24", announce="local"),
    bgp("tor-a", "10.0.0.254", nodeSelector={"matchLabels": {"rack": "a"}}),
    bgp("tor-b", "10.0.1.254",
        nodeSelector={"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["a"]}]}),
    bgp("route-server", "10.9.9.9", asn=65100),
]  # fmt: skip


@pytest.mark.parametrize(
    ("node_name", "expected_neighbors", "expected_groups"),
    [
        ("n1", ["route-server", "tor-a"], ["web"]),
        ("n2", ["route-server", "tor-b"], ["edge", "web"]),
    ],
)
def test_node_selectors_of_peers_and_groups(
    node_name: str, expected_neighbors: list[str], expected_groups: list[str]
) -> None:
    v = view(SELECTION, node_name)
    assert sorted(neighbors(v)) == expected_neighbors
    assert groups(v) == expected_groups
    assert v.problems == ()


def test_node_not_among_the_inputs_sees_no_labels_and_is_warned_about() -> None:
    v = view(SELECTION, "n9", router_id=V4("10.0.0.9"))
    assert sorted(neighbors(v)) == ["route-server", "tor-b"]
    assert problems(v) == [(Severity.WARNING, "Node n9", "")]


AGENTS = [
    N1,
    N2,
    node("n3", "10.0.0.3"),
    WEB,
    bgp("tor", "10.0.0.254"),
    agent("frr-nodes", nodeSelector={"matchLabels": {"rack": "a"}}, router="frr",
          routerID="10.255.0.1", localASN=65001, interface="lb0"),
    agent("bird-nodes", nodeSelector={"matchLabels": {"rack": "b"}}, router="bird",
          fastConvergence=False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("node_name", "router", "router_id", "local_asn", "interface", "fast"),
    [
        ("n1", Router.FRR, "10.255.0.1", 65001, "lb0", True),
        ("n2", Router.BIRD, "10.0.0.2", 64512, "kube-lb0", False),
        ("n3", Router.BIRD, "10.0.0.3", 64512, "kube-lb0", True),
    ],
    ids=["frr-agent", "bird-agent", "no-agent-defaults"],
)
def test_node_agent_is_chosen_by_node_labels(
    node_name: str, router: Router, router_id: str, local_asn: int, interface: str, fast: bool
) -> None:
    v = view(AGENTS, node_name)
    assert (v.router, v.router_id, v.local_asn, v.interface, v.fast_convergence) == (
        router,
        V4(router_id),
        local_asn,
        interface,
        fast,
    )
    assert v.bgp[0].local_asn == local_asn


def test_router_and_mode_arguments_override_the_node_agent() -> None:
    v = view(AGENTS, "n2", Router.FRR)
    assert v.router is Router.FRR
    v = view(AGENTS, "n2", Router.BIRD, mode=Mode.INCLUDE)
    assert (v.router, v.mode) == (Router.BIRD, Mode.INCLUDE)


def test_two_node_agents_for_one_node_use_the_first() -> None:
    v = view(
        [
            N1,
            WEB,
            bgp("tor", "10.0.0.254"),
            agent("b-all", router="bird"),
            agent("a-rack", router="frr", nodeSelector={"matchLabels": {"rack": "a"}}),
        ]
    )
    assert v.router is Router.FRR
    assert problems(v) == [(Severity.ERROR, "NodeAgent lbroute/b-all", "spec.nodeSelector")]
    message = v.problems[0].message
    assert "n1" in message and "NodeAgent lbroute/a-rack" in message


def test_node_agents_that_select_other_nodes_do_not_conflict() -> None:
    objs = [
        N1,
        N2,
        WEB,
        bgp("tor", "10.0.0.254"),
        agent("a", nodeSelector={"matchLabels": {"rack": "a"}}),
        agent("b", nodeSelector={"matchLabels": {"rack": "b"}}),
    ]
    assert view(objs, "n1").problems == view(objs, "n2").problems == ()


# -- what each protocol instance exports --------------------------------------------------

EXPORTS = [
    N1,
    WEB,
    group("db", "198.51.100.0/24", labels={"tier": "db"}, protocols=["ospf"]),
    group("dns", "203.0.113.0/24", labels={"tier": "dns"}, protocols=["bgp", "rip"]),
    bgp("tor-a", "10.0.0.254",
        serviceGroupSelector={"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "db"]}]}),
    bgp("tor-b", "10.0.1.254"),
    igp("backbone", "ospf", "eth0"),
    igp("legacy", "rip", "eth1", serviceGroupSelector={"matchLabels": {"tier": "dns"}}),
    igp("core", "isis", "eth2"),
]  # fmt: skip


def test_selectors_and_protocols_decide_what_is_exported() -> None:
    v = view(EXPORTS, router=Router.FRR)
    assert exports(v) == {
        "bgp tor-a ipv4": ["web"],
        "bgp tor-b ipv4": ["dns", "web"],
        "ospf v2": ["db", "web"],
        "rip ipv4": ["dns"],
        "isis ipv4": ["web"],
    }
    assert groups(v) == ["db", "dns", "web"]
    assert v.problems == ()


def _out_maps(v: NodeView) -> dict[str, str]:
    return {f"{n.ref.name} {e.family}": e.name for n in v.bgp for e in n.exports}


@pytest.mark.parametrize(
    ("router", "pattern"),
    [(Router.FRR, r"lbr-bgp-out-[0-9a-f]{12}-v4"), (Router.BIRD, r"lbr_bgp_out_[0-9a-f]{12}_v4")],
)
def test_neighbors_with_the_same_exports_share_one_filter(router: Router, pattern: str) -> None:
    """FRR route-maps and BIRD filters alike (issue 20: 500 BIRD peers of 1,000 groups
    took BIRD's parser 9 s as one filter each, 0.09 s shared)."""
    db = group("db", "198.51.100.0/24", labels={"tier": "db"})
    tors = [
        bgp("tor-b", "10.0.0.2"),
        bgp("tor-a", "10.0.0.1"),
        bgp("tor-c", "10.0.0.3", serviceGroupSelector={"matchLabels": {"tier": "web"}}),
        bgp("tor-d", "10.0.0.4", bgp={"localASN": 64999}),
    ]
    v = view([N1, WEB, db, *tors], router=router)
    maps = _out_maps(v)
    assert maps["tor-a ipv4"] == maps["tor-b ipv4"]  # same groups, same local ASN
    assert maps["tor-c ipv4"] != maps["tor-a ipv4"]  # other groups
    assert maps["tor-d ipv4"] != maps["tor-a ipv4"]  # prepends another local ASN
    assert all(re.fullmatch(pattern, name) for name in maps.values())
    assert [e.name for e in v.bgp_export_maps] == list(dict.fromkeys(maps.values()))

    # Neighbors that come or go never rename the filter the others use.
    for others in (
        [N1, WEB, db, *tors[1:]],
        [N1, WEB, db, tors[0]],
        [N1, WEB, db, *tors, bgp("tor-0", "10.0.0.9")],
    ):
        after = _out_maps(view(others, router=router))
        assert {k: after[k] for k in after if k in maps} == {k: maps[k] for k in after if k in maps}
    # A neighbor whose groups change moves to another filter; the others stay.
    narrowed = [
        *tors[:1],
        bgp("tor-a", "10.0.0.1", serviceGroupSelector={"matchLabels": {"tier": "db"}}),
        *tors[2:],
    ]
    after = _out_maps(view([N1, WEB, db, *narrowed], router=router))
    assert after["tor-a ipv4"] != maps["tor-a ipv4"]
    assert after["tor-b ipv4"] == maps["tor-b ipv4"]


def test_group_exported_by_nobody_is_left_out() -> None:
    v = view([N1, WEB, group("quiet", "198.51.100.0/24", protocols=[]), bgp("tor", "10.0.0.254")])
    assert groups(v) == ["web"]


def test_exports_are_split_by_address_family() -> None:
    v = view(
        [
            N1,
            group("dual", "192.0.2.0/24", "2001:db8::/64"),
            group("v6", "2001:db8:1::/64"),
            bgp("tor4", "10.0.0.254"),
            bgp("tor6", "2001:db8:ff::1"),
            bgp("tor46", "10.0.1.254", bgp={"families": ["ipv4", "ipv6"]}),
            igp("backbone", "ospf", "eth0", ospf={"families": ["ipv4", "ipv6"]}),
        ]
    )
    assert exports(v) == {
        "bgp tor4 ipv4": ["dual"],
        "bgp tor46 ipv4": ["dual"],
        "bgp tor46 ipv6": ["dual", "v6"],
        "bgp tor6 ipv6": ["dual", "v6"],
        "ospf v2": ["dual"],
        "ospf v3": ["dual", "v6"],
    }
    dual = next(g for g in v.groups if g.name == "dual")
    assert [str(e.network) for e in dual.prefixes[Family.IPV6]] == ["2001:db8::/64"]
    assert dual.set_names[Family.IPV4] != dual.set_names[Family.IPV6]


def test_group_prefixes_are_what_the_pools_may_announce() -> None:
    v = view([N1, group("web", "192.0.2.0/24", "198.51.100.0/25"), bgp("tor", "10.0.0.254")])
    (web,) = v.groups
    assert sorted((str(e.network), e.ge, e.le) for e in web.prefixes[Family.IPV4]) == [
        ("192.0.2.0/24", 24, 32),
        ("198.51.100.0/25", 25, 32),
    ]
    assert Family.IPV6 not in web.prefixes


# -- what BIRD cannot do -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "path", "words"),
    [
        (igp("core", "isis", "eth2"), "spec.isis", "IS-IS is available with FRR only"),
        (_obj("Peer", "core", {"bgp": {"interface": "eth2"}}), "spec.bgp.interface",
         "unnumbered BGP"),
    ],
    ids=["isis", "unnumbered-bgp"],
)  # fmt: skip
def test_frr_only_peer_on_bird_is_an_error_and_left_out(
    peer: dict[str, Any], path: str, words: str
) -> None:
    objs = [N1, WEB, bgp("tor", "10.0.0.254"), igp("backbone", "ospf", "eth0"), peer]
    v = view(objs, router=Router.BIRD)
    assert problems(v) == [(Severity.ERROR, "Peer lbroute/core", path)]
    assert words in v.problems[0].message
    assert neighbors(v) == ["tor"]
    assert v.isis is None
    assert exports(v) == {"bgp tor ipv4": ["web"], "ospf v2": ["web"]}

    frr = view(objs, router=Router.FRR)
    assert frr.problems == ()
    isis_peers = frr.isis.peers if frr.isis is not None else ()
    assert "core" in [n.ref.name for n in frr.bgp] + [p.name for p in isis_peers]


def test_isis_group_on_bird_is_an_error_naming_the_group() -> None:
    v = view(
        [
            N1,
            WEB,
            group("core-only", "198.51.100.0/24", protocols=["isis"]),
            bgp("tor", "10.0.0.254"),
        ],
        router=Router.BIRD,
    )
    problem = only(v, "ServiceGroup lbroute/core-only")
    assert (problem.severity, problem.path) == (Severity.ERROR, "spec.protocols")
    assert "IS-IS" in problem.message and "n1" in problem.message
    assert groups(v) == ["web"]


def test_protocol_without_a_peer_on_the_node_is_a_warning() -> None:
    objs = [
        N1,
        N2,
        group("web", "192.0.2.0/24", protocols=["bgp", "ospf"]),
        bgp("tor", "10.0.0.254"),
        igp("backbone", "ospf", "eth0", nodeSelector={"matchLabels": {"rack": "b"}}),
    ]
    v = view(objs, "n1")
    assert problems(v) == [(Severity.WARNING, "ServiceGroup lbroute/web", "spec.protocols")]
    assert "ospf" in v.problems[0].message and "n1" in v.problems[0].message
    assert exports(v) == {"bgp tor ipv4": ["web"]}
    assert view(objs, "n2").problems == ()


def test_frr_include_mode_is_refused() -> None:
    with pytest.raises(RouterError, match="include mode"):
        view([N1, WEB, bgp("tor", "10.0.0.254")], router=Router.FRR, mode=Mode.INCLUDE)


# -- conflicts on one node -----------------------------------------------------------------


def test_two_bgp_peers_with_one_address_keep_the_first() -> None:
    v = view([N1, WEB, bgp("a-tor", "10.0.0.254"), bgp("b-tor", "10.0.0.254", asn=65001)])
    assert neighbors(v) == ["a-tor"]
    assert problems(v) == [(Severity.ERROR, "Peer lbroute/b-tor", "spec.bgp")]
    assert "10.0.0.254" in v.problems[0].message
    assert "Peer lbroute/a-tor" in v.problems[0].message


def test_same_ospf_interface_in_two_peers_keeps_the_first() -> None:
    v = view(
        [
            N1,
            WEB,
            igp("a-ospf", "ospf", "eth0", "eth1"),
            igp("b-ospf", "ospf", "eth1", ospf={"area": 1}),
            igp("c-ospf", "ospf", "eth2"),
        ]
    )
    assert problems(v) == [(Severity.ERROR, "Peer lbroute/b-ospf", "spec.ospf.interfaces")]
    assert "eth1" in v.problems[0].message and "Peer lbroute/a-ospf" in v.problems[0].message
    (ospf,) = v.ospf
    assert [p.name for p in ospf.peers] == ["a-ospf", "c-ospf"]
    assert [i.name for i in ospf.interfaces] == ["eth0", "eth1", "eth2"]
    assert [str(area) for area, _ in ospf.areas] == ["0.0.0.0"]


def test_same_rip_interface_in_two_peers_keeps_the_first() -> None:
    v = view([N1, WEB, igp("a-rip", "rip", "eth0"), igp("b-rip", "rip", "eth0")])
    assert problems(v) == [(Severity.ERROR, "Peer lbroute/b-rip", "spec.rip.interfaces")]
    assert [p.name for p in v.rip[0].peers] == ["a-rip"]


def test_conflicting_isis_area_keeps_the_first() -> None:
    v = view(
        [
            N1,
            WEB,
            igp("a-isis", "isis", "eth0"),
            igp("b-isis", "isis", "eth1", isis={"area": "49.0002"}),
            igp("c-isis", "isis", "eth2", isis={"level": "level-1"}),
            igp("d-isis", "isis", "eth3"),
        ],
        router=Router.FRR,
    )
    assert problems(v) == [
        (Severity.ERROR, "Peer lbroute/b-isis", "spec.isis"),
        (Severity.ERROR, "Peer lbroute/c-isis", "spec.isis"),
    ]
    assert "49.0002" in v.problems[0].message and "Peer lbroute/a-isis" in v.problems[0].message
    assert v.isis is not None
    assert [p.name for p in v.isis.peers] == ["a-isis", "d-isis"]
    assert [i.name for i in v.isis.interfaces] == ["eth0", "eth3"]


def test_same_isis_interface_in_two_peers_keeps_the_first() -> None:
    v = view(
        [N1, WEB, igp("a-isis", "isis", "eth0"), igp("b-isis", "isis", "eth0")], router=Router.FRR
    )
    assert problems(v) == [(Severity.ERROR, "Peer lbroute/b-isis", "spec.isis.interfaces")]


@pytest.mark.parametrize(
    ("first", "second"),
    [(("lbroute", "web-a"), ("lbroute", "web.a")), (("lbroute", "web"), ("team-b", "web"))],
    ids=["dot-and-dash", "same-name-two-namespaces"],
)
def test_groups_that_share_a_router_name_keep_the_first(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    a = group(first[1], "192.0.2.0/24")
    b = group(second[1], "198.51.100.0/24")
    a["metadata"]["namespace"], b["metadata"]["namespace"] = first[0], second[0]
    v = view([N1, a, b, bgp("tor", "10.0.0.254")])
    assert [str(g.ref) for g in v.groups] == [f"ServiceGroup {first[0]}/{first[1]}"]
    assert problems(v) == [
        (Severity.ERROR, f"ServiceGroup {second[0]}/{second[1]}", "metadata.name")
    ]
    assert f"ServiceGroup {first[0]}/{first[1]}" in v.problems[0].message


# -- router id and IS-IS system id ---------------------------------------------------------


@pytest.mark.parametrize(
    ("objects", "override", "expected"),
    [
        ([node("n1", "10.0.0.1"), agent("a", routerID="10.255.0.1")], None, "10.255.0.1"),
        ([node("n1", "fd00::1", "10.0.0.1", "10.0.0.2")], None, "10.0.0.1"),
        ([node("n1", "10.0.0.1"), agent("a", routerID="10.255.0.1")], "172.16.0.1", "172.16.0.1"),
        ([node("n1", "fd00::1")], "172.16.0.1", "172.16.0.1"),
    ],
    ids=["node-agent-first", "first-ipv4-internal-ip", "argument-overrides", "argument-only"],
)
def test_router_id_source(
    objects: list[dict[str, Any]], override: str | None, expected: str
) -> None:
    rid = V4(override) if override else None
    assert view([*objects, WEB, bgp("tor", "10.0.0.254")], router_id=rid).router_id == V4(expected)


@pytest.mark.parametrize(
    "objects",
    [[node("n1", "fd00::1")], [node("n1")], []],
    ids=["ipv6-only", "no-address", "no-node"],
)
def test_no_router_id_is_a_clear_router_error(objects: list[dict[str, Any]]) -> None:
    with pytest.raises(RouterError) as caught:
        view([*objects, WEB, bgp("tor", "10.0.0.254")])
    message = str(caught.value)
    assert "no router id for node n1" in message
    assert "spec.routerID" in message and "--router-id" in message


@pytest.mark.parametrize(
    ("router_id", "expected"),
    [
        ("10.0.0.1", "0100.0000.0001"),
        ("192.168.100.254", "1921.6810.0254"),
        ("0.0.0.0", "0000.0000.0000"),
        ("255.255.255.255", "2552.5525.5255"),
    ],
)
def test_system_id(router_id: str, expected: str) -> None:
    assert system_id(V4(router_id)) == expected


def test_isis_net_is_area_and_system_id() -> None:
    v = view([N1, WEB, igp("core", "isis", "eth0", isis={"area": "49.00AB"})], router=Router.FRR)
    assert v.isis is not None
    assert v.isis.net == "49.00ab.0100.0000.0001.00"


# -- names and sequence numbers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("web", "web"),
        ("web-v2.prod", "web_v2_prod"),
        ("a" * 40, "a" * 40),
    ],
)
def test_ident_of_short_names(name: str, expected: str) -> None:
    assert ident(name) == expected


LONG = [
    "very-long-service-group-name-for-the-payments-team-blue",
    "very-long-service-group-name-for-the-payments-team-green",
    "very.long.service.group.name.for.the.payments.team.blue",
    "a" * 41,
    "a" * 253,
    "a" * 252 + "b",
]


def test_ident_of_long_names_is_short_readable_and_distinct() -> None:
    idents = [ident(n) for n in LONG]
    assert all(len(i) <= 40 for i in idents), idents
    assert len(set(idents)) == len(LONG), idents
    assert idents[0].startswith("very_long_service_group_name")
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyz0123456789_") for i in idents)


def test_long_group_names_get_distinct_router_names() -> None:
    v = view(
        [
            N1,
            group(LONG[0], "192.0.2.0/24"),
            group(LONG[1], "198.51.100.0/24"),
            bgp("tor", "10.0.0.254"),
        ]
    )
    assert v.problems == ()
    set_names = [g.set_names[Family.IPV4] for g in v.groups]
    assert len(set(set_names)) == 2


def _seqs(v: NodeView) -> dict[str, tuple[int, list[tuple[str, int]]]]:
    return {
        g.name: (g.seq, [(str(e.network), e.seq) for f in Family for e in g.prefixes.get(f, ())])
        for g in v.groups
    }


BASE = [
    N1,
    group("web", "192.0.2.0/24", "2001:db8::/64"),
    group("api", "198.51.100.0/24", "198.51.101.0/24"),
    bgp("tor", "10.0.0.254", bgp={"families": ["ipv4", "ipv6"]}),
]
UNRELATED = [
    group("aaa", "100.64.0.0/24"),
    group("mmm", "100.64.1.0/24", "2001:db8:1::/64"),
    group("zzz", "100.64.2.0/24"),
    group("web2", "100.64.3.0/24"),
]


@pytest.mark.parametrize("added", range(len(UNRELATED)))
def test_adding_an_unrelated_group_keeps_existing_sequence_numbers(added: int) -> None:
    before = _seqs(view(BASE, router=Router.FRR))
    after = _seqs(view([*BASE, UNRELATED[added]], router=Router.FRR))
    group = api.parse_object(UNRELATED[added])
    assert isinstance(group, api.ServiceGroup)
    assert set(after) == set(before) | {group.name}
    assert {k: after[k] for k in before} == before


def test_all_unrelated_groups_at_once_keep_existing_sequence_numbers() -> None:
    before = _seqs(view(BASE, router=Router.FRR))
    after = _seqs(view([*BASE, *UNRELATED], router=Router.FRR))
    assert {k: after[k] for k in before} == before
    assert len({seq for seq, _ in after.values()}) == len(after)


def test_view_does_not_depend_on_input_order() -> None:
    objs = [*EXPORTS, *UNRELATED, agent("frr", router="frr")]
    expected = view(objs)
    shuffled = list(objs)
    random.Random(7).shuffle(shuffled)
    assert view(shuffled) == expected


def test_the_renderer_package_exports_only_the_renderers_names() -> None:
    import renderer

    for name in renderer.__all__:
        assert getattr(renderer, name).__module__.startswith("renderer."), name
