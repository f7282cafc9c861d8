"""ServiceGroups with ``announce: local`` in the model, the router's view and the offline
per-node listing (renderer.view.local).

A local address goes on one elected node's NIC and is answered by ARP/NDP there: a pool
``aggregation`` cannot apply (an error naming the field), routing settings are ignored (a
warning each), no router announces the group's pools, and ``render``/``validate`` tell
per node which local pools the node can serve as far as the Nodes' InternalIPs show.
"""

from __future__ import annotations

from typing import Any

import pytest

from lbroute.model import api
from lbroute.model.errors import InvalidObject, Severity
from renderer.render import render_view
from renderer.templating import load_template_set
from renderer.view import build_view
from renderer.view.local import Servable, local_problems, local_view

NS = "lbroute"


def group(name: str, pools: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": "ServiceGroup",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"pools": pools, **spec},
    }


def node(name: str, *addresses: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"addresses": [{"type": "InternalIP", "address": a} for a in addresses]},
    }


PEER = {
    "apiVersion": api.API_VERSION,
    "kind": "Peer",
    "metadata": {"name": "tor", "namespace": NS},
    "spec": {"bgp": {"address": "10.0.0.254", "asn": 65000}},
}


def errors_of(obj: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        api.parse_object(obj)
    except InvalidObject as exc:
        return [(p.path, p.message) for p in exc.problems if p.severity is Severity.ERROR]
    return []


# -- the model ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pools", "path", "value"),
    [
        ([{"cidr": "192.0.2.0/26", "aggregation": "/26"}], "spec.pools[0].aggregation", "'/26'"),
        (
            [{"cidr": "192.0.2.0/26"}, {"range": "2001:db8::5-2001:db8::9",
                                        "subnet": "2001:db8::/64", "aggregation": 64}],
            "spec.pools[1].aggregation",
            "64",
        ),
    ],
)  # fmt: skip
def test_local_with_an_aggregation_is_an_error_naming_the_field(
    pools: list[dict[str, Any]], path: str, value: str
) -> None:
    errors = errors_of(group("lan", pools, announce="local"))
    assert [p for p, _ in errors] == [path]
    assert errors[0][1] == (
        f"{value} is for announce routed only: a local address goes on the node's NIC with the "
        "prefix length of the NIC's subnet and is answered by ARP/NDP, nothing is aggregated; "
        "remove aggregation or set it to 'default'"
    )
    routed = group("lan", pools, announce="routed")
    assert errors_of(routed) == [], "the same pools are fine for a routed group"


def test_local_with_aggregation_default_is_fine() -> None:
    obj = group("lan", [{"cidr": "192.0.2.0/26", "aggregation": "default"}], announce="local")
    assert errors_of(obj) == []


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ({"protocols": ["bgp"]}, ["protocols"]),
        ({"bgp": {"communities": ["64512:1"]}, "ospf": {"metric": 5}}, ["bgp", "ospf"]),
        ({"isis": {"metric": 5}, "rip": {"metric": 2}}, ["isis", "rip"]),
        ({"bgp": {}}, []),
        ({}, []),
    ],
)
def test_routing_settings_of_a_local_group_are_warned_about(
    spec: dict[str, Any], fields: list[str]
) -> None:
    model = api.load([group("lan", [{"cidr": "192.0.2.0/26"}], announce="local", **spec)])
    assert [g.name for g in model.service_groups] == ["lan"], "still valid"
    warnings = [p for p in model.problems if p.severity is Severity.WARNING]
    assert [p.path for p in warnings] == [f"spec.{f}" for f in fields]
    for p in warnings:
        assert p.message.startswith("is ignored with announce local: local addresses are ")
    routed = api.load([group("lan", [{"cidr": "192.0.2.0/26"}], **spec)])
    assert routed.problems == ()


# -- the router never announces local pools ------------------------------------------------------


@pytest.mark.parametrize("router", [api.Router.BIRD, api.Router.FRR])
def test_no_router_announces_a_local_group(router: api.Router) -> None:
    model = api.load(
        [
            node("n1", "10.0.0.1"),
            group("web", [{"cidr": "192.0.2.0/24"}]),
            group("lan", [{"cidr": "198.51.100.0/25", "subnet": "198.51.100.0/24"}],
                  announce="local"),
            PEER,
        ]
    )  # fmt: skip
    view = build_view(model, router, "n1")
    assert [g.name for g in view.groups] == ["web"]
    text = render_view(view, load_template_set(router, None))
    assert "192.0.2.0" in text
    assert "198.51.100" not in text


def test_a_peer_that_selects_only_local_groups_warns_that_it_announces_nothing() -> None:
    lan = group("lan", [{"cidr": "198.51.100.0/25"}], announce="local")
    lan["metadata"]["labels"] = {"site": "a"}
    peer = {
        **PEER,
        "spec": {
            "bgp": {"address": "10.0.0.254", "asn": 65000},
            "serviceGroupSelector": {"matchLabels": {"site": "a"}},
        },
    }
    model = api.load([lan, peer])
    (problem,) = model.problems
    assert (problem.severity, str(problem.ref), problem.path) == (
        Severity.WARNING,
        "Peer lbroute/tor",
        "spec.serviceGroupSelector",
    )
    assert problem.message.startswith(
        "selects only ServiceGroups with announce: local (ServiceGroup lbroute/lan)"
    )
    assert "announces nothing" in problem.message
    routed = group("web", [{"cidr": "192.0.2.0/24"}])
    routed["metadata"]["labels"] = {"site": "a"}
    assert api.load([lan, routed, peer]).problems == (), "one routed group is enough"
    assert not model.peers[0].carries(model.service_groups[0])


# -- what the manifests tell per node --------------------------------------------------------------


LAN = group(
    "lan",
    [
        {"range": "10.0.0.200-10.0.0.220", "subnet": "10.0.0.0/24"},
        {"range": "fd00::200-fd00::220", "subnet": "fd00::/64"},
        {"cidr": "203.0.113.0/28", "subnet": "203.0.113.0/24"},
        {"cidr": "198.51.100.0/28"},
    ],
    announce="local",
)


def test_local_view_from_the_nodes_internal_ips() -> None:
    model = api.load([LAN, node("n1", "10.0.0.1", "fd00::1"), node("n2", "10.0.0.2")])
    got = {str(p.pool): (p.servable, [str(a) for a in p.addresses])
           for p in local_view(model, "n1").pools}  # fmt: skip
    assert got == {
        "10.0.0.200-10.0.0.220": (Servable.YES, ["10.0.0.1"]),
        "fd00::200-fd00::220": (Servable.YES, ["fd00::1"]),
        "203.0.113.0/28": (Servable.NO, []),
        "198.51.100.0/28": (Servable.UNKNOWN, []),
    }
    assert local_view(model, "n2").pools[1].servable is Servable.NO, "n2 has no IPv6 InternalIP"
    [warning] = local_problems(model)
    assert (warning.severity, warning.path) == (Severity.WARNING, "spec.pools[2].subnet")
    assert warning.message.startswith("203.0.113.0/24 holds no InternalIP of the nodes the group")


def test_a_pool_served_by_one_selected_node_is_not_reported() -> None:
    model = api.load([LAN, node("n1", "10.0.0.1"), node("n2", "203.0.113.9", "fd00::2")])
    assert local_problems(model) == ()


def test_without_nodes_nothing_is_claimed() -> None:
    model = api.load([LAN])
    assert local_problems(model) == ()
    view = local_view(model, "n1")
    assert [p.servable for p in view.pools] == [Servable.UNKNOWN] * 4
    assert view.pools[0].describe("n1") == (
        "ServiceGroup lbroute/lan pool 10.0.0.200-10.0.0.220: needs the node's NIC to tell "
        "(the inputs give no InternalIP of n1; the agent checks its interfaces)"
    )


def test_a_selector_that_selects_no_node_is_reported() -> None:
    lan = group("lan", [{"cidr": "192.0.2.0/26"}], announce="local",
                nodeSelector={"matchLabels": {"zone": "z9"}})  # fmt: skip
    model = api.load([lan, node("n1", "10.0.0.1", zone="z1")])
    [warning] = local_problems(model)
    assert warning.path == "spec.nodeSelector"
    assert "selects none of the Nodes given (n1)" in warning.message
    view = local_view(model, "n1")
    assert view.pools == () and [str(g) for g in view.other_groups] == ["ServiceGroup lbroute/lan"]


def test_routed_groups_have_no_local_listing() -> None:
    model = api.load([group("web", [{"cidr": "192.0.2.0/24"}]), node("n1", "10.0.0.1")])
    assert local_view(model, "n1").lines() == []
    assert local_problems(model) == ()
