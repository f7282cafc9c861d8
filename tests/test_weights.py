"""Weighted ECMP (``bgp.weightByEndpoints``, docs/weighted-ecmp.md) without root: the
weight each node gives a prefix, the netlink plan that carries it, the bytes on the wire,
what is rendered and what the status shows. The routers and the whole path are checked
in tests/netns/test_weighted_ecmp.py.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from hypothesis import given
from hypothesis import strategies as st

from lbroute.kube.trim import trim_endpoint_slice
from lbroute.model import api
from lbroute.model.endpoints import ReadyCounter, ready_counts, ready_nodes, split_objects
from lbroute.model.errors import ObjectRef, Problem
from lbroute.model.service import parse_service
from nodeagent import status as status_mod
from nodeagent.desired import DesiredState, desired_state
from nodeagent.kubereport import announced_groups
from nodeagent.netlink import wire
from nodeagent.netlink.plan import plan_reconcile
from renderer.render import render_view
from renderer.view import build_view
from tests.test_desired import group, node, service

WEB = ObjectRef(kind="Service", namespace="default", name="web")
POOLS = [{"cidr": "192.0.2.0/24"}, {"cidr": "2001:db8::/64"}]
BASE = [
    group("weighted", POOLS, bgp={"weightByEndpoints": True}),
    group("plain", [{"cidr": "198.51.100.0/24"}]),
    node("node-a"),
    node("node-b"),
]


def slice_(name: str, per_node: dict[str, int], *, family: str = "IPv4", ready: bool = True,
           start: int = 1) -> dict[str, Any]:  # fmt: skip
    eps, i = [], start
    for n, count in per_node.items():
        for _ in range(count):
            address = f"10.244.0.{i}" if family == "IPv4" else f"fd00:244::{i}"
            eps.append({"addresses": [address], "nodeName": n, "conditions": {"ready": ready}})
            i += 1
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "addressType": family,
        "metadata": {"name": f"{name}-{family}-{start}", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": name}},
        "endpoints": eps,
    }  # fmt: skip


def state(objects: list[dict[str, Any]], node_name: str) -> DesiredState:
    services_raw, slices, rest = split_objects([*BASE, *objects])
    model = api.load(rest)
    problems: list[Problem] = []
    services = [s for s in (parse_service(o, default_class=False, problems=problems)
                            for o in services_raw) if s]  # fmt: skip
    counts = ready_counts(slices)
    return desired_state(model, services, ready_nodes(slices), node_name, counts)


def weights(objects: list[dict[str, Any]], node_name: str) -> dict[str, int]:
    return {str(a.interface): a.weight for a in state(objects, node_name).announcements}


# -- the weight of each prefix on each node


def test_a_nodes_weight_is_its_ready_endpoints_of_the_service() -> None:
    objects = [service("web", "192.0.2.7", "2001:db8::7", etp="Local"),
               slice_("web", {"node-a": 3, "node-b": 1}),
               slice_("web", {"node-a": 3, "node-b": 1}, family="IPv6")]  # fmt: skip
    assert weights(objects, "node-a") == {"192.0.2.7/32": 3, "2001:db8::7/128": 3}
    assert weights(objects, "node-b") == {"192.0.2.7/32": 1, "2001:db8::7/128": 1}


def test_not_ready_endpoints_and_other_nodes_do_not_count() -> None:
    objects = [service("web", "192.0.2.7", etp="Local"),
               slice_("web", {"node-a": 2}),
               slice_("web", {"node-a": 5}, ready=False, start=50)]  # fmt: skip
    assert weights(objects, "node-a") == {"192.0.2.7/32": 2}
    assert weights(objects, "node-b") == {}


def test_an_endpoint_listed_in_two_slices_counts_once() -> None:
    objects = [service("web", "192.0.2.7", etp="Local"),
               slice_("web", {"node-a": 2}), slice_("web", {"node-a": 1})]  # fmt: skip
    assert weights(objects, "node-a") == {"192.0.2.7/32": 2}  # 10.244.0.1 is in both


def test_services_sharing_an_address_add_up() -> None:
    objects = [service("web", "192.0.2.7", etp="Local"), service("api", "192.0.2.7", etp="Local"),
               slice_("web", {"node-a": 2}), slice_("api", {"node-a": 3}, start=10)]  # fmt: skip
    assert weights(objects, "node-a") == {"192.0.2.7/32": 5}


def test_an_address_shared_with_a_cluster_service_is_not_weighted() -> None:
    objects = [service("web", "192.0.2.7", etp="Local"), service("api", "192.0.2.7"),
               slice_("web", {"node-a": 2})]  # fmt: skip
    assert weights(objects, "node-a") == {"192.0.2.7/24": 0}


def test_cluster_services_and_unweighted_groups_have_no_weight() -> None:
    objects = [service("web", "192.0.2.7"), service("db", "198.51.100.9", etp="Local"),
               slice_("db", {"node-a": 4})]  # fmt: skip
    assert weights(objects, "node-a") == {"192.0.2.7/24": 0, "198.51.100.9/32": 0}


def test_trimmed_slices_keep_the_counts() -> None:
    """Both sources trim EndpointSlices to one entry per (node, ready) as they enter; the
    counts survive it."""
    raw = [slice_("web", {"node-a": 3, "node-b": 1}),
           slice_("web", {"node-a": 3, "node-b": 1}, family="IPv6"),
           slice_("web", {"node-a": 2}, ready=False, start=20)]  # fmt: skip
    trimmed = [trim_endpoint_slice(o) for o in raw]
    assert sum(len(o["endpoints"]) for o in trimmed) == 5
    assert ready_counts(trimmed) == ready_counts(raw) == {WEB: {"node-a": 3, "node-b": 1}}


def test_the_weight_is_capped() -> None:
    objects = [service("web", "192.0.2.7", etp="Local"),
               slice_("web", {"node-a": api.MAX_WEIGHT + 20})]  # fmt: skip
    assert weights(objects, "node-a") == {"192.0.2.7/32": api.MAX_WEIGHT}


# -- the netlink plan and the bytes


A4 = ipaddress.ip_interface("192.0.2.7/32")
A6 = ipaddress.ip_interface("2001:db8::7/128")


def test_a_new_weight_replaces_the_route_in_place_and_frr_gets_the_address_metric() -> None:
    owned = frozenset({A4, A6})
    routes = frozenset({A4.network, A6.network})
    plan = plan_reconcile(owned=owned, routes=routes, desired=owned, weights={A4: 4, A6: 4},
                          marks={A4.network: (3, 0), A6.network: (3, 0)}, metrics={A4: 3, A6: 3},
                          address_marks=True)  # fmt: skip
    assert plan.add == plan.delete == plan.add_routes == plan.delete_routes == ()
    assert plan.reweight_routes == (A4.network, A6.network)
    assert plan.reweight == (A4,) and plan.readd == (A6,)  # zebra 8.4 reads IPv6 on add only
    assert plan.route_marks == {A4.network: (4, 0), A6.network: (4, 0)}
    # BIRD nodes: the address's metric is not used, nothing but the route changes.
    bird = plan_reconcile(owned=owned, routes=routes, desired=owned, weights={A4: 4, A6: 4},
                          marks={A4.network: (3, 0), A6.network: (3, 0)})  # fmt: skip
    assert bird.reweight_routes == (A4.network, A6.network)
    assert bird.reweight == bird.readd == ()
    same = plan_reconcile(owned=owned, routes=routes, desired=owned, weights={A4: 3, A6: 3},
                          marks={A4.network: (3, 0), A6.network: (3, 0)}, metrics={A4: 3, A6: 3},
                          address_marks=True)  # fmt: skip
    assert same.reweight_routes == same.reweight == same.readd == ()


def test_the_route_carries_its_weight_in_rtax_window_and_parses_back() -> None:
    kind, flags, body = wire.replace_route(A4.network, 4242, 7, 76, (3, 0))
    assert kind == wire.RTM_NEWROUTE and flags & wire.NLM_F_REPLACE
    route = wire.parse_route(body)
    assert route is not None and route.window == 3 and route.table == 4242
    _, _, plain = wire.add_route(A4.network, 4242, 7, 76)
    parsed = wire.parse_route(plain)
    assert parsed is not None and parsed.window == 0


def test_the_address_carries_its_weight_in_ifa_rt_priority_and_parses_back() -> None:
    _, _, body = wire.add_address(A6, 7, 76, metric=5)
    address = wire.parse_address(body)
    assert address is not None and address.metric == 5
    _, flags, change = wire.change_address(A4, 7, 76, 0)
    assert flags & wire.NLM_F_REPLACE
    changed = wire.parse_address(change)
    assert changed is not None and changed.metric == 0


# -- rendering


def _render(router: api.Router, objects: list[dict[str, Any]]) -> str:
    model = api.load(objects)
    assert not model.errors, [str(p) for p in model.errors]
    return render_view(build_view(model, router, "node-a"))


PEER = {"apiVersion": api.API_VERSION, "kind": "Peer",
        "metadata": {"name": "tor", "namespace": "lbroute"},
        "spec": {"bgp": {"address": "10.0.0.1", "asn": 65000}}}  # fmt: skip
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.11"}]}}  # fmt: skip


def test_the_link_bandwidth_value_is_frrs_encoding_of_one_mbps_per_endpoint() -> None:
    text = _render(api.Router.BIRD, [group("weighted", POOLS, bgp={"weightByEndpoints": True}),
                                     PEER, NODE])  # fmt: skip
    three = struct.unpack(">I", struct.pack(">f", 375_000.0))[0]
    assert f"    3: bgp_ext_community.add((generic, 0x0004fc00, {three:#010x}));" in text
    assert f"\n    {api.MAX_WEIGHT + 1}: " not in text  # the table stops at the cap
    assert text.count("bgp_ext_community.add") == api.MAX_WEIGHT


def test_no_weight_table_without_a_weighted_group() -> None:
    for router in api.Router:
        text = _render(router, [group("plain", POOLS), PEER, NODE])
        assert "weight" not in text.replace("Weighted", ""), router


def test_frr_isis_keeps_the_weight_out_of_the_isis_metric() -> None:
    isis = {"apiVersion": api.API_VERSION, "kind": "Peer",
            "metadata": {"name": "core", "namespace": "lbroute"},
            "spec": {"isis": {"area": "49.0001", "interfaces": [{"name": "eth1"}]}}}  # fmt: skip
    text = _render(api.Router.FRR, [group("weighted", POOLS, bgp={"weightByEndpoints": True}),
                                    group("set", [{"cidr": "203.0.113.0/24"}],
                                          bgp={"weightByEndpoints": True}, isis={"metric": 30}),
                                    PEER, isis, NODE])  # fmt: skip
    entries = text.split("\nroute-map ")
    isis_weighted = [e for e in entries if e.startswith("lbr-isis") and "lbr-sg-weighted" in e]
    isis_set = [e for e in entries if e.startswith("lbr-isis") and "lbr-sg-set" in e]
    assert isis_weighted and all(" set metric 0\n" in e for e in isis_weighted)
    assert isis_set and all(" set metric 30\n" in e for e in isis_set)


# -- what the status shows


def test_status_and_node_state_show_the_weight_of_weighted_prefixes() -> None:
    announced = [
        status_mod.Announced(address="192.0.2.7/32", group="lbroute/weighted",
                             services=("default/web",), weight=3),
        status_mod.Announced(address="192.0.2.9/24", group="lbroute/weighted"),
    ]  # fmt: skip
    groups = announced_groups(announced)
    assert groups == [{"group": "lbroute/weighted", "prefixes": ["192.0.2.0/24", "192.0.2.7/32"],
                       "weights": {"192.0.2.7/32": 3}}]  # fmt: skip
    crd = yaml.safe_load(Path("deploy/crds/nodestates.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.validate({"apiVersion": "lbroute.io/v1alpha1", "kind": "NodeState",
                         "spec": {"nodeName": "node-a"}, "status": {"groups": groups}},
                        schema)  # fmt: skip
    doc = status_mod.Status(node="node-a", announced=announced)
    again = status_mod.Status.from_json(doc.to_json())
    assert again.announced == announced
    assert '"weight"' in doc.to_json() and doc.to_json().count('"weight"') == 1


# -- counting pass after pass (issue 20)

_NODES = ("node-a", "node-b", "node-c")


@st.composite
def _slices(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few EndpointSlices of a few Services, some of them trimmed."""
    out = []
    for k in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(("web", "api", "db")))
        per_node = {n: draw(st.integers(0, 3)) for n in _NODES}
        family = draw(st.sampled_from(("IPv4", "IPv6")))
        obj = slice_(name, per_node, family=family, ready=draw(st.booleans()), start=10 * k)
        out.append(trim_endpoint_slice(obj) if draw(st.booleans()) else obj)
    return out


@given(passes=st.lists(_slices(), min_size=1, max_size=5), keep=st.lists(st.booleans()))
def test_the_counter_of_passes_counts_as_reading_every_slice_again(
    passes: list[list[dict[str, Any]]], keep: list[bool]
) -> None:
    """The agent's counter reads only the slices that are new objects and adds up only
    their Services again; whatever objects each pass keeps or replaces, its counts are
    those of reading everything."""
    counter = ReadyCounter()
    previous: list[dict[str, Any]] = []
    for i, objects in enumerate(passes):
        # Some slices of the previous pass stay the very same objects.
        kept = [o for j, o in enumerate(previous) if j < len(keep) and keep[(i + j) % len(keep)]]
        now = kept + objects
        assert counter.counts(now) == ready_counts(now)
        previous = now
