"""Reading a Kubernetes Service once, for both the agent and the allocator.

Covers :mod:`lbroute.model.service`: which Services are lbroute's (type and class), what
is read from them (ServiceGroup, traffic policy, ingress addresses, families, requested
addresses, sharing), where each kind of problem goes (the request's on the Service for
the allocator; bad ingress IPs to the agent's list, and only for lbroute's Services), and
that the allocator's reading is the same one with its allocation record added.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from allocator.service import AllocatedFrom
from allocator.service import parse_service as allocator_parse
from lbroute.model.common import Family
from lbroute.model.errors import ObjectRef, Problem
from lbroute.model.service import Policy, Service, parse_service

Obj = dict[str, Any]
IP = ipaddress.ip_address


def service(
    *,
    type_: str = "LoadBalancer",
    cls: str | None = "lbroute.io/lbroute",
    annotations: dict[str, str] | None = None,
    ingress: list[Obj] | None = None,
    **spec: Any,
) -> Obj:
    meta: Obj = {"name": "web", "namespace": "shop", "uid": "u-1"}
    if annotations:
        meta["annotations"] = annotations
    full: Obj = {"type": type_, **spec}
    if cls is not None:
        full["loadBalancerClass"] = cls
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": full,
        "status": {"loadBalancer": {"ingress": ingress or []}},
    }


@pytest.mark.parametrize(
    ("type_", "cls", "default_class", "ours"),
    [
        ("LoadBalancer", "lbroute.io/lbroute", False, True),
        ("LoadBalancer", None, True, True),
        ("LoadBalancer", None, False, False),
        ("LoadBalancer", "example.com/other", True, False),
        ("ClusterIP", "lbroute.io/lbroute", True, False),
    ],
)
def test_ours_by_type_and_class(
    type_: str, cls: str | None, default_class: bool, ours: bool
) -> None:
    obj = service(type_=type_, cls=cls, ingress=[{"ip": "192.0.2.7"}])
    read = Service.read(obj, default_class=default_class)
    assert read.ours is ours
    assert read.ref == ObjectRef(kind="Service", namespace="shop", name="web")
    assert read.addresses == (IP("192.0.2.7"),), "held addresses are read either way"
    assert (parse_service(obj, default_class=default_class) is not None) is ours


def test_everything_lbroute_acts_on_is_read() -> None:
    obj = service(
        annotations={
            "lbroute.io/service-group": "web",
            "lbroute.io/addresses": "192.0.2.7, 2001:db8::7",
            "lbroute.io/allow-shared-ip": "k",
        },
        ingress=[{"ip": "192.0.2.7"}, {"hostname": "lb.example"}, {"ip": "192.0.2.7"}],
        externalTrafficPolicy="Local",
        selector={"app": "web", "tier": "front"},
        ipFamilies=["IPv6", "IPv4", "IPv6"],
        ipFamilyPolicy="RequireDualStack",
        ports=[{"port": 80}, {"protocol": "UDP", "port": 53}, {"port": "http"}],
    )
    svc = parse_service(obj, default_class=False)
    assert svc == Service(
        ref=ObjectRef(kind="Service", namespace="shop", name="web"),
        uid="u-1",
        ours=True,
        local=True,
        group="web",
        addresses=(IP("192.0.2.7"),),
        families=(Family.IPV6, Family.IPV4),
        policy=Policy.REQUIRE,
        requested=(IP("192.0.2.7"), IP("2001:db8::7")),
        share_key="k",
        share_scope=("Local", "app=web", "tier=front"),
        ports=frozenset({("TCP", 80), ("UDP", 53)}),
    )
    assert svc.share == ("shop", "k")


def test_the_request_is_read_from_load_balancer_ip_without_the_annotation() -> None:
    svc = parse_service(service(loadBalancerIP="192.0.2.9"), default_class=False)
    assert svc is not None
    assert (svc.requested, svc.requested_path) == ((IP("192.0.2.9"),), "spec.loadBalancerIP")


def test_each_problem_goes_to_who_reports_it() -> None:
    obj = service(
        ingress=[{"ip": "not-an-ip"}, {"ip": "192.0.2.7"}],
        ipFamilies=["IPv5"],
        annotations={"lbroute.io/addresses": "192.0.2.300"},
    )
    reported: list[Problem] = []
    svc = parse_service(obj, default_class=False, problems=reported)
    assert svc is not None and svc.addresses == (IP("192.0.2.7"),)
    assert [p.path for p in reported] == ["status.loadBalancer.ingress[0].ip"]
    assert [p.path for p in svc.problems] == [
        "spec.ipFamilies[0]",
        "metadata.annotations[lbroute.io/addresses]",
    ]
    foreign: list[Problem] = []
    other = service(cls="example.com/other", ingress=[{"ip": "x"}])
    assert parse_service(other, default_class=False, problems=foreign) is None
    assert foreign == [], "another implementation's Service is not lbroute's to report"


def test_the_allocator_reads_the_same_service_plus_its_allocation() -> None:
    obj = service(
        annotations={"lbroute.io/service-group": "web", "lbroute.io/allocated-from": "web:x"},
        ingress=[{"ip": "192.0.2.7"}],
        ipFamilies=["IPv4"],
    )
    agent = parse_service(obj, default_class=False)
    allocator = allocator_parse(obj, default_class=False)
    assert agent is not None and allocator is not None
    assert allocator.allocated_from == AllocatedFrom(group="web", pools=("x",))
    assert allocator.label is None, "no lbroute.io/allocated-group label yet"
    ours = ("allocated_from", "label")
    assert {k: v for k, v in vars(allocator).items() if k not in ours} == vars(agent)
    obj["metadata"]["labels"] = {"lbroute.io/allocated-group": "web", "team": "a"}
    labeled = allocator_parse(obj, default_class=False)
    assert labeled is not None and labeled.label == "web"


@pytest.mark.parametrize(
    ("ingress", "allocated_from", "kept"),
    [([], None, False), ([{"ip": "192.0.2.7"}], None, True), ([], "web:x", True)],
)
def test_the_allocator_keeps_a_foreign_service_only_while_it_holds_or_held_ours(
    ingress: list[Obj], allocated_from: str | None, kept: bool
) -> None:
    annotations = {"lbroute.io/allocated-from": allocated_from} if allocated_from else None
    obj = service(type_="ClusterIP", ingress=ingress, annotations=annotations)
    parsed = allocator_parse(obj, default_class=False)
    assert (parsed is not None) is kept
    if parsed is not None:
        assert not parsed.ours and parsed.group is None and parsed.problems == ()
