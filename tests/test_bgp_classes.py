"""BGP classes (``bgp.classes``, ``lbroute.io/bgp-class``, docs/bgp-classes.md) without
root: what a ServiceGroup may declare, what a Service may pick, which prefix and number
each address gets, the netlink plan and bytes that carry it, what each router is given
and what the status says. The routers and the whole path are checked in
tests/netns/test_agent_e2e.py (BIRD and FRR upstreams) and test_weighted_ecmp.py.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

import pytest

from lbroute.model import api
from lbroute.model.endpoints import ready_counts, ready_nodes
from lbroute.model.errors import Problem
from lbroute.model.service import parse_service
from nodeagent import status as status_mod
from nodeagent.desired import DesiredState, desired_state
from nodeagent.kubereport import announced_groups
from nodeagent.netlink import wire
from nodeagent.netlink.plan import plan_reconcile
from renderer.render import render_view
from renderer.view import build_view
from renderer.view.names import Drain
from tests.fakeapi import FakeAPI
from tests.test_allocator import (  # noqa: F401 (fake and replicas are fixtures)
    Running,
    events,
    fake,
    ips,
    replicas,
    wait,
    writes_pending,
)
from tests.test_desired import group, node, service
from tests.test_ipam import group as ipam_group
from tests.test_ipam import service as ipam_service
from tests.test_weights import NODE, PEER, slice_

CLASSES = {
    "premium": {"communities": ["64512:100"], "largeCommunities": ["64512:1:100"],
                "localPref": 200, "med": 10},
    "backup": {"communities": ["64512:900"], "asPathPrepend": 2},
}  # fmt: skip
POOLS = [{"cidr": "192.0.2.0/24"}, {"cidr": "2001:db8::/64"}]
TIERS = group("tiers", POOLS, bgp={"communities": ["64512:300"], "classes": CLASSES})
IBGP = {"apiVersion": api.API_VERSION, "kind": "Peer",
        "metadata": {"name": "rr", "namespace": "lbroute"},
        "spec": {"bgp": {"address": "10.0.0.2", "asn": 64512}}}  # fmt: skip


def classed(name: str, *ips: str, bgp_class: Any = None, etp: str = "Cluster") -> dict[str, Any]:
    obj = service(name, *ips, etp=etp)
    if bgp_class is not None:
        obj["metadata"]["annotations"] = {"lbroute.io/bgp-class": bgp_class}
    return obj


def errors(spec_bgp: dict[str, Any]) -> list[tuple[str, str]]:
    model = api.load([group("g", POOLS, bgp=spec_bgp)])
    return [(p.path, p.message) for p in model.errors]


# -- what a ServiceGroup may declare


def test_classes_are_numbered_by_name_and_keep_their_attributes() -> None:
    model = api.load([TIERS])
    assert not model.errors
    (g,) = model.service_groups
    assert [(c.name, c.index) for c in g.bgp.classes] == [("backup", 1), ("premium", 2)]
    premium = g.bgp.bgp_class("premium")
    assert premium is not None and premium.local_pref == 200 and premium.med == 10
    assert [str(c) for c in premium.communities] == ["64512:100"]
    assert g.bgp.bgp_class("gold") is None and g.bgp.bgp_class(None) is None


@pytest.mark.parametrize(
    "name",
    ["Premium", "a b", "x}\nprotocol static evil {", "-a", "a-", "a" * 64, "a;b", 'a"b', ""],
)
def test_a_class_name_that_is_not_a_dns_label_is_refused(name: str) -> None:
    (problem,) = errors({"classes": {name: {"communities": ["64512:1"]}}})
    assert problem[0].startswith("spec.bgp.classes")
    assert "is not a valid class name" in problem[1] and "lowercase letters" in problem[1]


def test_class_fields_are_checked_like_the_groups() -> None:
    found = errors({"classes": {"gold": {"communities": ["1:70000"], "weight": 3,
                                         "localPref": -1, "asPathPrepend": 11}}})  # fmt: skip
    paths = sorted(p for p, _ in found)
    assert paths == ["spec.bgp.classes.gold.asPathPrepend", "spec.bgp.classes.gold.communities[0]",
                     "spec.bgp.classes.gold.localPref", "spec.bgp.classes.gold.weight"]  # fmt: skip
    unknown = dict(found)["spec.bgp.classes.gold.weight"]
    assert "valid fields here: asPathPrepend, communities, largeCommunities, localPref, med" in (
        unknown
    )


def test_classes_must_be_an_object_of_at_most_eight() -> None:
    assert errors({"classes": ["premium"]}) == [
        ("spec.bgp.classes", "must be an object: class name -> its BGP attributes")
    ]
    many: dict[str, Any] = {f"c{i}": {} for i in range(api.MAX_CLASSES + 1)}
    assert errors({"classes": many}) == [("spec.bgp.classes", "declares 9 classes; at most 8")]
    assert errors({"classes": {f"c{i}": {} for i in range(api.MAX_CLASSES)}}) == []


def test_a_broken_class_costs_only_its_group() -> None:
    bad = group("bad", [{"cidr": "198.51.100.0/24"}], bgp={"classes": {"Nope": {}}})
    model = api.load([TIERS, bad, PEER, NODE])
    assert [p.ref.name for p in model.errors] == ["bad"]
    text = render_view(build_view(model, api.Router.BIRD, "node-a"))
    assert "lbr_sg_tiers" in text and "lbr_sg_bad" not in text


# -- what a Service picks, and the prefix and number its addresses get


def state(objects: list[dict[str, Any]], node_name: str = "node-a") -> DesiredState:
    services_raw = [o for o in objects if o["kind"] == "Service"]
    rest = [o for o in objects if o["kind"] not in ("Service", "EndpointSlice")]
    slices = [o for o in objects if o["kind"] == "EndpointSlice"]
    model = api.load([*rest, node("node-a"), node("node-b")])
    problems: list[Problem] = []
    services = [s for s in (parse_service(o, default_class=False, problems=problems)
                            for o in services_raw) if s]  # fmt: skip
    return desired_state(model, services, ready_nodes(slices), node_name, ready_counts(slices))


def announced(objects: list[dict[str, Any]]) -> dict[str, tuple[str | None, int]]:
    return {
        str(a.interface): (a.bgp_class.name if a.bgp_class else None, a.weight)
        for a in state(objects).announcements
    }


def test_the_annotation_is_read_as_written_and_bounded() -> None:
    def read(value: Any) -> str | None:
        parsed = parse_service(classed("web", "192.0.2.7", bgp_class=value), default_class=False)
        assert parsed is not None and parsed.problems == ()  # never costs the address
        return parsed.bgp_class

    assert read("premium") == "premium"
    assert read(7) == "7" and read("") is None
    assert read("x" * 10_000) == "x" * 254


def test_a_service_with_a_class_gets_its_own_host_prefix_with_the_class_number() -> None:
    got = state([TIERS, classed("web", "192.0.2.7", "2001:db8::7", bgp_class="premium"),
                 classed("api", "192.0.2.8")])  # fmt: skip
    assert {str(i): c for i, c in got.classes.items()} == {"192.0.2.7/32": 2, "2001:db8::7/128": 2}
    assert sorted(str(a.interface) for a in got.announcements) == [
        "192.0.2.7/32",
        "192.0.2.8/24",
        "2001:db8::7/128",
    ]
    assert got.problems == ()


def test_an_unknown_class_is_the_groups_default_with_one_warning() -> None:
    got = state([TIERS, classed("web", "192.0.2.7", "2001:db8::7", bgp_class="gold")])
    assert got.classes == {}
    assert sorted(str(a.interface) for a in got.announcements) == ["192.0.2.7/24", "2001:db8::7/64"]
    (problem,) = got.problems
    assert problem.path == "metadata.annotations[lbroute.io/bgp-class]"
    assert problem.message == (
        "'gold' is not a BGP class of ServiceGroup lbroute/tiers (it declares: backup, "
        "premium); the group's default policy applies"
    )


def test_services_sharing_an_address_must_agree_on_the_class() -> None:
    agree = [TIERS, classed("web", "192.0.2.7", bgp_class="backup"),
             classed("api", "192.0.2.7", bgp_class="backup")]  # fmt: skip
    assert announced(agree) == {"192.0.2.7/32": ("backup", 0)}
    for other in ("premium", None):
        differ = [TIERS, classed("web", "192.0.2.7", bgp_class="backup"),
                  classed("api", "192.0.2.7", bgp_class=other)]  # fmt: skip
        got = state(differ)
        assert got.classes == {}, other
        assert [p.ref.name for p in got.problems] == ["api", "web"]
        assert "ask for different BGP classes" in got.problems[0].message


def test_a_class_and_a_weight_travel_together() -> None:
    weighted = group("tiers", POOLS, bgp={"weightByEndpoints": True, "classes": CLASSES})
    objects = [weighted, classed("web", "192.0.2.7", bgp_class="backup", etp="Local"),
               slice_("web", {"node-a": 3})]  # fmt: skip
    assert announced(objects) == {"192.0.2.7/32": ("backup", 3)}


# -- the netlink plan and the bytes

A4 = ipaddress.ip_interface("192.0.2.7/32")
A6 = ipaddress.ip_interface("2001:db8::7/128")


def test_a_new_class_replaces_the_route_and_frr_gets_class_and_weight_in_one_metric() -> None:
    owned = frozenset({A4, A6})
    routes = frozenset({A4.network, A6.network})
    plan = plan_reconcile(owned=owned, routes=routes, desired=owned, weights={A4: 3, A6: 3},
                          classes={A4: 2, A6: 2}, marks={A4.network: (3, 1), A6.network: (3, 1)},
                          metrics={A4: 131, A6: 131}, address_marks=True)  # fmt: skip
    assert plan.add == plan.delete == plan.add_routes == plan.delete_routes == plan.swap == ()
    assert plan.reweight_routes == (A4.network, A6.network)
    assert plan.route_marks == {A4.network: (3, 2), A6.network: (3, 2)}
    assert plan.metrics == {A4: 2 * api.CLASS_STRIDE + 3, A6: 2 * api.CLASS_STRIDE + 3}
    assert plan.reweight == (A4,) and plan.readd == (A6,)
    # Back to the group's default: no mark left anywhere.
    back = plan_reconcile(owned=owned, routes=routes, desired=owned,
                          marks={A4.network: (0, 2), A6.network: (0, 2)},
                          metrics={A4: 256, A6: 256}, address_marks=True)  # fmt: skip
    assert back.route_marks == {} and back.metrics == {}
    assert back.reweight_routes == (A4.network, A6.network) and back.reweight == (A4,)


def test_the_route_carries_its_class_in_rtax_rtt_beside_the_weight() -> None:
    _, _, body = wire.add_route(A6.network, 4242, 7, 76, (3, 2))
    route = wire.parse_route(body)
    assert route is not None and route.mark == (3, 2)
    _, _, only = wire.replace_route(A4.network, 4242, 7, 76, (0, 1))
    parsed = wire.parse_route(only)
    assert parsed is not None and (parsed.window, parsed.rtt) == (0, 1)


# -- what each router is given


def render(router: api.Router, objects: list[dict[str, Any]], drain: Drain = Drain.NONE) -> str:
    model = api.load(objects)
    assert not model.errors, [str(p) for p in model.errors]
    return render_view(build_view(model, router, "node-a", drain=drain))


def _function(text: str, name: str) -> str:
    start = text.index(f"function {name}(")
    return text[start : text.index("\n}\n", start)]


def test_bird_reads_the_class_from_krt_rtt_per_session_kind() -> None:
    text = render(api.Router.BIRD, [TIERS, PEER, IBGP, NODE])
    ebgp, ibgp = _function(text, "lbr_sg_tiers_ebgp"), _function(text, "lbr_sg_tiers_ibgp")
    for body in (ebgp, ibgp):
        assert "case krt_rtt {" in body and "1: # class backup" in body
        assert "2: # class premium" in body and "bgp_med = 10;" in body
    assert ebgp.count("bgp_path.prepend(local_as);") == 2 and "bgp_local_pref" not in ebgp
    assert "bgp_path.prepend" not in ibgp and "bgp_local_pref = 200;" in ibgp
    assert re.search(
        r"^    \d+: lbr_sg_tiers_ebgp\(local_as\); # ServiceGroup lbroute/tiers$", text, re.M
    )
    assert "lbr_bgp_actions_ebgp(64512); accept;" in text


def test_while_draining_a_class_never_lifts_the_de_preference() -> None:
    text = render(api.Router.BIRD, [TIERS, PEER, IBGP, NODE], Drain.DEPREFER)
    ibgp = _function(text, "lbr_sg_tiers_ibgp")
    assert "bgp_local_pref = 0;" in ibgp and "bgp_local_pref = 200" not in ibgp
    assert "bgp_med = 10" not in text and "bgp_community.add((64512, 100));" in text


def test_frr_tags_the_class_at_redistribution_and_the_outbound_entry_calls_its_map() -> None:
    text = render(api.Router.FRR, [TIERS, PEER, IBGP, NODE])
    entries = {e.split("\n", 1)[0]: e for e in text.split("\nroute-map ")}
    assert entries["lbr-class permit 256"] == (
        "lbr-class permit 256\n match metric 256\n set metric 0\n set tag 2\nexit\n!"
    )
    assert "lbr-class permit 257" not in entries  # no weighted group: weight 0 only
    redist = [  # the groups' entries, not the origin's first nor the last deny
        e
        for k, e in entries.items()
        if k.startswith("lbr-bgp-export") and not k.endswith((" permit 1", " deny 65535"))
    ]
    assert redist and all(" call lbr-class\n" in e for e in redist)
    ebgp = entries["lbr-sg-tiers-ebgp-class-64512 permit 1"]
    assert " match tag 1\n set as-path prepend 64512 64512\n" in ebgp
    assert " set community 64512:900 additive\n" in ebgp
    ibgp = entries["lbr-sg-tiers-ibgp-class permit 2"]
    assert " set local-preference 200\n set metric 10\n" in ibgp
    calls = [e for e in entries.values() if " call lbr-sg-tiers-" in e]
    # The call first, as FRR prints it; FRR runs the called map after the entry's sets.
    assert len(calls) == 2 and all(e.split("\n")[1].startswith(" call ") for e in calls)
    # The origin is set once, where routes enter BGP, not in each outbound entry.
    assert not any("set origin" in e for e in calls)
    assert " on-match next\n set origin igp\n" in entries["lbr-bgp-export-v4 permit 1"]


def test_frr_keeps_the_class_out_of_the_isis_metric() -> None:
    isis = {"apiVersion": api.API_VERSION, "kind": "Peer",
            "metadata": {"name": "core", "namespace": "lbroute"},
            "spec": {"isis": {"area": "49.0001", "interfaces": [{"name": "eth1"}]}}}  # fmt: skip
    text = render(api.Router.FRR, [TIERS, PEER, isis, NODE])
    isis_entries = [e for e in text.split("\nroute-map ") if e.startswith("lbr-isis")]
    assert isis_entries and all(" set metric 0\n" in e for e in isis_entries)


def test_no_class_map_without_classes() -> None:
    for router in api.Router:
        text = render(router, [group("plain", POOLS), PEER, NODE])
        assert "class" not in text and "krt_rtt" not in text, router


# -- what the status shows


def test_status_and_node_state_show_the_class() -> None:
    announced_ = [
        status_mod.Announced(address="192.0.2.7/32", group="lbroute/tiers",
                             services=("default/web",), bgp_class="premium"),
        status_mod.Announced(address="192.0.2.9/24", group="lbroute/tiers"),
    ]  # fmt: skip
    assert announced_groups(announced_) == [
        {"group": "lbroute/tiers", "prefixes": ["192.0.2.0/24", "192.0.2.7/32"],
         "classes": {"192.0.2.7/32": "premium"}}
    ]  # fmt: skip
    doc = status_mod.Status(node="node-a", announced=announced_)
    assert status_mod.Status.from_json(doc.to_json()).announced == announced_
    assert doc.to_json().count('"bgp_class"') == 1


# -- the allocator's Event, against the fake API


def test_the_allocator_says_once_per_value_that_a_class_is_unknown(
    fake: FakeAPI,  # noqa: F811
    replicas: Callable[..., Running],  # noqa: F811
) -> None:
    public = ipam_group("public", "192.0.2.0/24", default=True)
    public["spec"]["bgp"] = {"classes": {"premium": {"communities": ["64512:100"]}}}
    fake.put_all([public])
    gold = ipam_service("gold")
    gold["metadata"]["annotations"] = {"lbroute.io/bgp-class": "gold"}
    premium = ipam_service("premium")
    premium["metadata"]["annotations"] = {"lbroute.io/bgp-class": "premium"}
    fake.put_all([gold, premium])
    running = replicas("a")
    wait(lambda: ips(fake, "gold") and ips(fake, "premium"), "addresses, whatever the class")
    wait(lambda: events(fake, "UnknownBgpClass", "gold"), "the Event")
    wait(lambda: running.allocator.passes >= 2 and not writes_pending(fake), "a quiet pass")
    (event,) = events(fake, "UnknownBgpClass")
    assert event["type"] == "Warning" and event["regarding"]["name"] == "gold"
    assert event["note"] == (
        "metadata.annotations[lbroute.io/bgp-class]: 'gold' is not a BGP class of "
        "ServiceGroup lbroute/public (it declares: premium); the group's default policy applies"
    )
    # A new value is said again; a declared one never.
    edited = fake.get("services", "gold")
    assert edited is not None
    edited["metadata"]["annotations"]["lbroute.io/bgp-class"] = "silver"
    fake.put("services", edited)
    wait(lambda: len(events(fake, "UnknownBgpClass")) == 2, "the new value")
    assert events(fake, "UnknownBgpClass", "premium") == []
