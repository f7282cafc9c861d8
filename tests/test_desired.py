"""The node's desired addresses on kube-lb0: a pure function of the objects.

Table-driven: each case is a set of Services (with their ETP and ready endpoints) and
the addresses one node must carry, with the prefix length a network engineer expects
(the pool's aggregation for ETP Cluster, a host prefix for ETP Local with a ready local
endpoint, nothing without one), plus which Services lbroute must ignore.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from lbroute.model import api
from lbroute.model.endpoints import ready_nodes, split_objects
from lbroute.model.errors import Problem
from lbroute.model.service import parse_service
from nodeagent.desired import DesiredState, desired_state

NS = "lbroute"


def group(name: str, pools: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": "ServiceGroup",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"pools": pools, **spec},
    }


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def service(
    name: str,
    *ips: str,
    etp: str = "Cluster",
    cls: str | None = "lbroute.io/lbroute",
    type_: str = "LoadBalancer",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_, "externalTrafficPolicy": etp}
    if cls is not None:
        spec["loadBalancerClass"] = cls
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


def endpoints(service_name: str, *nodes: str, ready: bool | None = True) -> dict[str, Any]:
    conditions = {} if ready is None else {"ready": ready}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-x",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "endpoints": [
            {"addresses": ["10.244.0.1"], "nodeName": n, "conditions": conditions} for n in nodes
        ],
    }


BASE = [
    group("web", [{"cidr": "192.0.2.0/24"}, {"cidr": "2001:db8::/64"}]),
    group("hosts", [{"range": "198.51.100.10-198.51.100.20"}]),
    group("agg", [{"cidr": "203.0.113.0/24", "aggregation": "/28"}]),
    group("rack1-only", [{"cidr": "10.99.0.0/24"}], nodeSelector={"matchLabels": {"rack": "r1"}}),
    node("node-a", rack="r1"),
    node("node-b", rack="r2"),
]


def addresses(
    objects: list[dict[str, Any]], node_name: str, *, default_class: bool = False
) -> list[str]:
    return [str(a.interface) for a in state_of(objects, node_name, default_class).announcements]


def state_of(
    objects: list[dict[str, Any]], node_name: str, default_class: bool = False
) -> DesiredState:
    services_raw, slices, rest = split_objects(objects)
    model = api.load(rest)
    problems: list[Problem] = []
    services = [
        s
        for s in (
            parse_service(o, default_class=default_class, problems=problems) for o in services_raw
        )
        if s
    ]
    return desired_state(model, services, ready_nodes(slices), node_name)


CASES = [
    ("cluster: aggregate of the pool", [service("s", "192.0.2.7")], "node-a", ["192.0.2.7/24"]),
    (
        "dual-stack gets both families",
        [service("s", "192.0.2.7", "2001:db8::7")],
        "node-a",
        ["192.0.2.7/24", "2001:db8::7/64"],
    ),
    (
        "range without subnet: host prefix",
        [service("s", "198.51.100.12")],
        "node-a",
        ["198.51.100.12/32"],
    ),
    ("explicit aggregation", [service("s", "203.0.113.77")], "node-a", ["203.0.113.77/28"]),
    (
        "local with a ready endpoint here: host prefix",
        [service("s", "192.0.2.7", etp="Local"), endpoints("s", "node-a")],
        "node-a",
        ["192.0.2.7/32"],
    ),
    (
        "local with the endpoint elsewhere: nothing",
        [service("s", "192.0.2.7", etp="Local"), endpoints("s", "node-b")],
        "node-a",
        [],
    ),
    (
        "local with an unready endpoint: nothing",
        [service("s", "192.0.2.7", etp="Local"), endpoints("s", "node-a", ready=False)],
        "node-a",
        [],
    ),
    (
        "ready unset counts as ready",
        [service("s", "2001:db8::9", etp="Local"), endpoints("s", "node-a", ready=None)],
        "node-a",
        ["2001:db8::9/128"],
    ),
    ("group's nodeSelector excludes this node", [service("s", "10.99.0.5")], "node-b", []),
    (
        "group's nodeSelector includes this node",
        [service("s", "10.99.0.5")],
        "node-a",
        ["10.99.0.5/24"],
    ),
    ("address in no pool is not announced", [service("s", "100.64.0.1")], "node-a", []),
    (
        "other LoadBalancer class is not ours",
        [service("s", "192.0.2.7", cls="other.io/lb")],
        "node-a",
        [],
    ),
    ("no class and not the default class", [service("s", "192.0.2.7", cls=None)], "node-a", []),
    ("not a LoadBalancer", [service("s", "192.0.2.7", type_="ClusterIP")], "node-a", []),
    (
        "shared address: one entry, aggregate wins",
        [
            service("s1", "192.0.2.7", etp="Local"),
            service("s2", "192.0.2.7"),
            endpoints("s1", "node-a"),
        ],
        "node-a",
        ["192.0.2.7/24"],
    ),
    (
        "two services in one aggregate keep both addresses",
        [service("s1", "192.0.2.7"), service("s2", "192.0.2.8")],
        "node-a",
        ["192.0.2.7/24", "192.0.2.8/24"],
    ),
]


@pytest.mark.parametrize(
    ("objects", "node_name", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_desired_addresses(
    objects: list[dict[str, Any]], node_name: str, expected: list[str]
) -> None:
    assert addresses(BASE + objects, node_name) == expected


def test_default_class_takes_services_without_a_class() -> None:
    assert addresses(
        [*BASE, service("s", "192.0.2.7", cls=None)], "node-a", default_class=True
    ) == ["192.0.2.7/24"]


def test_order_of_objects_does_not_matter() -> None:
    objects = [service("b", "192.0.2.9"), service("a", "192.0.2.8", "2001:db8::8"), *BASE]
    assert addresses(objects, "node-a") == addresses(list(reversed(objects)), "node-a")


def test_addresses_by_service_list_every_address_of_a_service_once() -> None:
    state = state_of(
        [
            *BASE,
            service("dual", "192.0.2.7", "2001:db8::7"),
            service("shared", "192.0.2.7"),
            service("other", "192.0.2.9"),
        ],
        "node-a",
    )
    got = {ref.name: [str(i) for i in ifaces] for ref, ifaces in state.by_service().items()}
    assert got == {
        "dual": ["192.0.2.7/24", "2001:db8::7/64"],
        "shared": ["192.0.2.7/24"],
        "other": ["192.0.2.9/24"],
    }


def test_bad_ingress_ip_is_a_problem_naming_the_service() -> None:
    problems: list[Problem] = []
    svc = parse_service(
        service("s", "not-an-ip", "192.0.2.7"), default_class=False, problems=problems
    )
    assert svc is not None and svc.addresses == (ipaddress.ip_address("192.0.2.7"),)
    assert [str(p) for p in problems] == [
        "error: Service default/s: status.loadBalancer.ingress[0].ip: 'not-an-ip' is not an "
        "IP address; it is not announced"
    ]


def test_address_outside_pools_is_reported() -> None:
    services_raw, _slices, rest = split_objects([*BASE, service("s", "100.64.0.1")])
    model = api.load(rest)
    svc = parse_service(services_raw[0], default_class=False, problems=[])
    assert svc is not None
    state = desired_state(model, [svc], {}, "node-a")
    assert [str(p) for p in state.problems] == [
        "warning: Service default/s: status.loadBalancer.ingress: 100.64.0.1 is in no pool of "
        "a valid ServiceGroup; it is not announced"
    ]


LAN_V4 = {"cidr": "198.51.100.128/25", "subnet": "198.51.100.0/24"}


def test_local_groups_never_go_on_kube_lb0() -> None:
    """A ServiceGroup with announce local is answered from one node's NIC (nodeagent.local):
    none of its addresses is on kube-lb0, with ETP Cluster or Local, on any node, even
    when an address is shared with a Service of that group."""
    objects = [
        *BASE,
        group("lan", [LAN_V4, {"cidr": "2001:db8:1::/64"}], announce="local"),
        service("lan-cluster", "198.51.100.130", "2001:db8:1::5"),
        service("lan-local", "198.51.100.131", etp="Local"),
        endpoints("lan-local", "node-a", "node-b"),
        service("routed", "192.0.2.7"),
    ]
    for name in ("node-a", "node-b"):
        state = state_of(objects, name)
        assert [str(a.interface) for a in state.announcements] == ["192.0.2.7/24"]
        assert state.problems == (), "a local address is in a pool: nothing to report"


# -- interfaces made fast ---------------------------------------------------------------------


def test_interfaces_made_from_a_shared_network_are_the_constructors_own() -> None:
    """desired_state makes each network once and the interfaces around it; they must be
    indistinguishable from what ``ipaddress`` makes (equal, same hash, text, network,
    attributes, and usable in sets with the constructor's)."""
    import random

    from nodeagent import desired

    assert desired._FAST, "the fast path checks itself on import; here it should hold"
    rng = random.Random(7)
    networks: dict[tuple[int, int, int], Any] = {}
    for _ in range(2000):
        v6 = rng.random() < 0.5
        bits = 128 if v6 else 32
        value = rng.getrandbits(bits)
        address = ipaddress.IPv6Address(value) if v6 else ipaddress.IPv4Address(value)
        prefixlen = rng.choice([bits, bits - 1, 24 if not v6 else 64, 0, rng.randint(0, bits)])
        fast = desired._fast_interface(networks, address, prefixlen)
        slow = desired._interface(address, prefixlen)
        assert fast == slow and hash(fast) == hash(slow) and str(fast) == str(slow)
        assert fast.network == slow.network and fast.ip == slow.ip
        assert fast.with_netmask == slow.with_netmask and vars(fast) == vars(slow)
        assert {fast} == {slow} and not (fast < slow) and not (slow < fast)  # type: ignore[operator]


def test_the_fast_and_the_plain_pass_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from nodeagent import desired

    objs = [
        *BASE,
        *(service(f"s{i}", f"192.0.2.{i}", f"2001:db8::{i:x}") for i in range(1, 60)),
        *(service(f"l{i}", f"203.0.113.{i}", etp="Local") for i in range(1, 20)),
        *(endpoints(f"l{i}", "node-a") for i in range(1, 20, 2)),
        service("shared-a", "198.51.100.11"),
        service("shared-b", "198.51.100.11"),
    ]
    fast = state_of(objs, "node-a")
    monkeypatch.setattr(desired, "_FAST", False)
    plain = state_of(objs, "node-a")
    assert fast == plain and len(fast.announcements) == 59 * 2 + 10 + 1
    assert [str(a.interface) for a in fast.announcements] == [
        str(a.interface) for a in plain.announcements
    ]
