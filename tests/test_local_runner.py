"""The local loop's pure parts: its inputs from the objects, where the addresses this node
won go on its NIC, and the outage rule (keep what we hold, take nothing new)."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

from lbroute.model import api
from lbroute.model.agentconfig import LocalLease
from lbroute.model.errors import ObjectRef
from lbroute.model.service import parse_service
from nodeagent.local.election import Election, NoHolder, elect
from nodeagent.local.leasedir import DirectoryLeaseStore
from nodeagent.local.membership import Membership
from nodeagent.local.plan import holdings, local_inputs
from nodeagent.local.runner import LocalRunner, keep_on_outage
from nodeagent.netlink.nic import Snapshot
from nodeagent.netlink.wire import Address, DefaultRoute, Link

NS = "lbroute"


def group(name: str, announce: str, *ranges: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": "ServiceGroup",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"announce": announce, "pools": [{"range": r} for r in ranges], **spec},
    }


def service(name: str, *addresses: str, local: bool = False) -> Any:
    spec: dict[str, Any] = {"type": "LoadBalancer", "loadBalancerClass": "lbroute.io/lbroute"}
    if local:
        spec["externalTrafficPolicy"] = "Local"
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": a} for a in addresses]}},
    }
    parsed = parse_service(obj, default_class=False)
    assert parsed is not None
    return parsed


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def model(*objects: dict[str, Any]) -> api.Model:
    return api.load(list(objects))


IP = ipaddress.ip_address


def test_only_local_groups_addresses_shared_ips_elected_once() -> None:
    m = model(
        group("lan", "local", "10.0.0.50-10.0.0.59", nodeSelector={"matchLabels": {"lan": "y"}}),
        group("wan", "routed", "198.51.100.1-198.51.100.9"),
        node("n1", lan="y"),
        node("n2"),
    )
    services = [
        service("a", "10.0.0.50"),
        service("b", "10.0.0.50", local=True),
        service("c", "198.51.100.1"),
    ]
    inputs = local_inputs(m, services, {}, node="n1", lease=LocalLease(duration=4, renew=1))
    assert [a.address for a in inputs.addresses] == [IP("10.0.0.50")]
    shared = inputs.addresses[0]
    assert [s.ref.name for s in shared.services] == ["a", "b"]
    assert [s.local_traffic for s in shared.services] == [False, True]
    assert inputs.pools[IP("10.0.0.50")].first == IP("10.0.0.50")
    assert len(inputs.serving_pools) == 1  # n1 is selected
    assert inputs.lease.address_lifetime == 3
    # n2 is not selected: it publishes no subnet for the pool
    assert local_inputs(m, services, {}, node="n2").serving_pools == ()
    # nothing local: nothing for the loop to do
    routed = local_inputs(
        model(group("wan", "routed", "198.51.100.1-198.51.100.9")), services, {}, node="n1"
    )
    assert not routed.any_local


def snapshot() -> Snapshot:
    eth0 = Link(index=2, name="eth0", up=True, mac=b"\x02" * 6)
    lb = Link(index=3, name="kube-lb0", up=True, mac=b"")
    return Snapshot(
        links=(Link(index=1, name="lo", up=True, mac=b""), eth0, lb),
        addresses=(Address(index=2, address="10.0.0.11", prefixlen=24, proto=0),),
        defaults=(DefaultRoute(family=socket.AF_INET, oif=2, metric=0),),
    )


def test_won_addresses_placed_on_the_subnets_interface() -> None:
    m = model(group("lan", "local", "10.0.0.50-10.0.0.59", "10.1.0.50-10.1.0.59"))
    services = [service("a", "10.0.0.50"), service("b", "10.1.0.50"), service("c", "10.0.0.51")]
    inputs = local_inputs(m, services, {}, node="n1")
    net = ipaddress.ip_network("10.0.0.0/24")
    members = {
        "n1": Membership(subnets=frozenset({net})),
        "n2": Membership(subnets=frozenset({net})),
    }
    elections = elect(inputs.addresses, members, node_labels={}, ready={})
    mine = {a for a, e in elections.items() if e.holder == "n1"}
    placement = holdings(inputs, elections, snapshot())
    assert {h.interface.ip for h in placement.holdings} == mine
    assert all(h.link == "eth0" and h.interface.network == net for h in placement.holdings)
    # 10.1.0.50: nobody serves its subnet, no holder, nothing placed
    assert elections[IP("10.1.0.50")].holder is None
    # an address won without a subnet on the NIC is reported, not placed
    forced = {IP("10.1.0.50"): Election(address=IP("10.1.0.50"), holder="n1")}
    unplaced = holdings(inputs, forced, snapshot())
    assert unplaced.holdings == ()
    assert "10.1.0.50" in str(unplaced.unplaced[0][0])


def test_etp_local_goes_where_the_endpoint_is() -> None:
    m = model(group("lan", "local", "10.0.0.50-10.0.0.59"))
    svc = service("a", "10.0.0.50", local=True)
    net = ipaddress.ip_network("10.0.0.0/24")
    members = {n: Membership(subnets=frozenset({net})) for n in ("n1", "n2", "n3")}
    ref = ObjectRef(kind="Service", namespace="default", name="a")
    for where in ("n1", "n2", "n3"):
        inputs = local_inputs(m, [svc], {ref: frozenset({where})}, node="n1")
        result = elect(inputs.addresses, members, node_labels={}, ready=inputs.ready)
        assert result[IP("10.0.0.50")].holder == where


def test_outage_keeps_what_is_held_and_takes_nothing() -> None:
    a, b = IP("10.0.0.50"), IP("10.0.0.51")
    elections = {
        a: Election(address=a, holder="n2"),
        b: Election(address=b, holder="n1"),
    }
    kept = keep_on_outage(elections, "n1", frozenset({a}))
    assert kept[a].holder == "n1"  # held: kept (and renewed)
    assert kept[b].holder is None  # won but not held: not taken


def test_the_report_carries_the_settled_elections_typed(tmp_path: Path) -> None:
    """What the reporter writes the ServiceGroup's LocalHeld condition and the
    LocalNotPlaced Event from: each address's election with its group, Services and
    why; the live members; what this node won and cannot place, with its interfaces."""
    m = model(group("lan", "local", "10.0.0.50-10.0.0.59", "10.1.0.50-10.1.0.59"))
    services = [service("a", "10.0.0.50"), service("b", "10.0.0.51", local=True)]
    services.append(service("c", "10.1.0.50"))
    inputs = local_inputs(m, services, {}, node="n1", local_interface=("eth*",))
    net = ipaddress.ip_network("10.0.0.0/24")
    members = {
        "n1": Membership(subnets=frozenset({net})),
        "n2": Membership(subnets=frozenset({net}), alive=False),
    }
    runner = LocalRunner(DirectoryLeaseStore(tmp_path, namespace=NS), node="n1", namespace=NS)
    runner.elections = elect(inputs.addresses, members, node_labels={}, ready={})
    runner._found = members
    forced = {IP("10.1.0.50"): Election(address=IP("10.1.0.50"), holder="n1")}
    unplaced = holdings(inputs, forced, snapshot()).unplaced
    view = runner._elected(inputs, unplaced, snapshot())
    by_address = {e.address: e for e in view.elections}
    a, b, c = (by_address[IP(x)] for x in ("10.0.0.50", "10.0.0.51", "10.1.0.50"))
    group_ref = ObjectRef(kind="ServiceGroup", namespace=NS, name="lan")
    assert (a.holder, a.why, a.group) == ("n1", None, group_ref)
    assert [s.name for s in a.services] == ["a"]
    assert (b.holder, b.why) == (None, NoHolder.NO_ENDPOINT)
    assert [s.name for s in b.local_traffic] == ["b"]
    assert (c.holder, c.why) == (None, NoHolder.NO_INTERFACE)
    assert view.alive == ("n1",)
    [lost] = view.unplaced
    assert (lost.address, lost.group, lost.setting) == (IP("10.1.0.50"), group_ref, ("eth*",))
    assert lost.interfaces == ("eth0",), "neither lo nor the Service interface"
    assert "10.1.0.50" in lost.message


def test_without_a_local_group_the_loop_sleeps(tmp_path: Path) -> None:
    """No local ServiceGroup (the common case): the loop has nothing due, so it waits
    for the next update instead of spinning; it was busy at 100% of a core."""
    import time

    routed = model(group("web", "routed", "192.0.2.0/24"))
    inputs = local_inputs(routed, [service("a", "192.0.2.1")], {}, node="n1")
    runner = LocalRunner(DirectoryLeaseStore(tmp_path, namespace=NS), node="n1", namespace=NS)
    assert not inputs.any_local
    runner.update(inputs)
    assert runner._due() > runner.clock() + 60
    steps = 0
    real = runner.step

    def counted(now: float) -> object:
        nonlocal steps
        steps += 1
        return real(now)

    runner.step = counted  # type: ignore[method-assign,assignment]
    runner.start()
    try:
        time.sleep(0.5)
        assert steps <= 2, f"{steps} steps in 0.5 s with nothing to do"
    finally:
        runner.stop()
