"""The allocator's pure core (allocator/ipam/, allocator/service.py), no Kubernetes.

Tables: assignment order and reserved addresses per pool kind, group choice and its
failures, class eligibility, dual-stack policies and their changes, requested addresses
(annotation and spec.loadBalancerIP), shared addresses, conflicts, release, pool edits
that never renumber, the ServiceGroup counts, and that big IPv6 pools are never walked.

Hypothesis: over random sequences of creating and deleting Services, editing the pools,
restarting and writes that only partly land, no address is ever held by two Services
(sharing aside) and no address already given ever changes.
"""

from __future__ import annotations

import copy
import ipaddress
import random
import time
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.ipam import Allocation, Reason, allocate, invalid_groups
from allocator.service import AllocatedFrom, parse_service, with_allocation
from lbroute.model import api
from lbroute.model.errors import ObjectRef
from lbroute.model.vocabulary import ALLOCATED_FROM_ANNOTATION as ALLOCATED_FROM
from lbroute.model.vocabulary import SERVICE_GROUP_LABEL

NS = "lbroute"
CLASS = "lbroute.io/lbroute"
Obj = dict[str, Any]


def group(name: str, *pools: Obj | str, default: bool = False) -> Obj:
    items = [{"cidr": p} if isinstance(p, str) and "-" not in p else p for p in pools]
    items = [{"range": p} if isinstance(p, str) else p for p in items]
    return {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "ServiceGroup",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"default": default, "pools": items},
    }


def service(
    name: str,
    *,
    namespace: str = "default",
    cls: str | None = CLASS,
    type_: str = "LoadBalancer",
    group: str | None = None,
    addresses: str | None = None,
    lb_ip: str | None = None,
    share: str | None = None,
    ports: Sequence[tuple[str, int]] = (("TCP", 80),),
    families: Sequence[str] | None = None,
    policy: str | None = None,
    ingress: Sequence[str] = (),
    allocated_from: str | None = None,
    local: dict[str, str] | None = None,
    created: str | None = None,
) -> Obj:
    annotations = {
        k: v
        for k, v in {
            "lbroute.io/service-group": group,
            "lbroute.io/addresses": addresses,
            "lbroute.io/allow-shared-ip": share,
            ALLOCATED_FROM: allocated_from,
        }.items()
        if v is not None
    }
    spec: Obj = {"type": type_, "ports": [{"protocol": p, "port": n} for p, n in ports]}
    if cls is not None:
        spec["loadBalancerClass"] = cls
    if families is not None:
        spec["ipFamilies"] = list(families)
    if policy is not None:
        spec["ipFamilyPolicy"] = policy
    if lb_ip is not None:
        spec["loadBalancerIP"] = lb_ip
    if local is not None:
        spec["externalTrafficPolicy"] = "Local"
        spec["selector"] = local
    meta: Obj = {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}"}
    if created is not None:
        meta["creationTimestamp"] = created
    if annotations:
        meta["annotations"] = annotations
    if allocated_from is not None:  # as the allocator writes them, together
        meta["labels"] = {SERVICE_GROUP_LABEL: allocated_from.partition(":")[0]}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}},
    }


def run(
    groups: Sequence[Obj], services: Sequence[Obj], *, default_class: bool = False
) -> Allocation:
    model = api.load(groups)
    invalid = invalid_groups(model.errors)
    parsed = [parse_service(s, default_class=default_class) for s in services]
    return allocate(
        model.service_groups, [p for p in parsed if p is not None], invalid_groups=invalid
    )


def ref(name: str, namespace: str = "default") -> ObjectRef:
    return ObjectRef(kind="Service", namespace=namespace, name=name)


def got(result: Allocation, name: str, namespace: str = "default") -> list[str]:
    a = result.of(ref(name, namespace))
    assert a is not None, name
    return [str(x) for x in a.addresses]


def reasons(result: Allocation, name: str | None = None) -> list[Reason]:
    return [f.reason for f in result.failures if name is None or f.ref.name == name]


def applied(services: Sequence[Obj], result: Allocation) -> list[Obj]:
    """The Services as they are once the allocator's writes landed."""
    out = []
    for s in services:
        a = result.of(ref(s["metadata"]["name"], s["metadata"]["namespace"]))
        out.append(
            s if a is None else with_allocation(s, a.addresses, a.allocated_from, label=a.label)
        )
    return out


# -- assignment and reserved addresses ------------------------------------------------------

ORDER_CASES = [
    # (pool, how many Services, the addresses they get in order)
    ("192.0.2.0/30", 3, ["192.0.2.1", "192.0.2.2"]),
    ({"cidr": "192.0.2.0/30", "allowNetworkAndBroadcast": True}, 5,
     ["192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3"]),
    ("192.0.2.0/31", 3, ["192.0.2.0", "192.0.2.1"]),
    ("192.0.2.7/32", 2, ["192.0.2.7"]),
    ("10.0.0.0-10.0.0.2", 4, ["10.0.0.0", "10.0.0.1", "10.0.0.2"]),
    ({"range": "10.0.0.254-10.0.1.1", "subnet": "10.0.0.0/23"}, 5,
     ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]),
    ({"range": "10.0.1.254-10.0.1.255", "subnet": "10.0.0.0/23"}, 3, ["10.0.1.254"]),
    ("2001:db8::/126", 5, ["2001:db8::1", "2001:db8::2", "2001:db8::3"]),
    ({"cidr": "2001:db8::/127"}, 3, ["2001:db8::", "2001:db8::1"]),
]  # fmt: skip


@pytest.mark.parametrize(("pool", "count", "want"), ORDER_CASES, ids=str)
def test_addresses_are_given_lowest_first_without_reserved_ones(
    pool: Obj | str, count: int, want: list[str]
) -> None:
    text = pool if isinstance(pool, str) else pool.get("cidr") or pool["range"]
    family = "IPv6" if ":" in text else "IPv4"
    services = [service(f"s{i}", families=[family]) for i in range(count)]
    result = run([group("g", pool, default=True)], services)
    assert [a for i in range(count) for a in got(result, f"s{i}")] == want
    exhausted = [f for f in result.failures if f.reason is Reason.EXHAUSTED]
    assert len(exhausted) == count - len(want)
    for f in exhausted:
        assert "ServiceGroup lbroute/g" in f.message and "add a pool" in f.message


def test_pools_fill_in_the_order_the_group_lists_them() -> None:
    g = group("g", "198.51.100.8/30", "192.0.2.0/30", default=True)
    result = run([g], [service(f"s{i}") for i in range(4)])
    assert [got(result, f"s{i}") for i in range(4)] == [
        ["198.51.100.9"],
        ["198.51.100.10"],
        ["192.0.2.1"],
        ["192.0.2.2"],
    ]
    (assignment,) = [a for a in result.assignments if a.ref.name == "s2"]
    assert assignment.allocated_from == "g:192.0.2.0/30"
    assert assignment.group == ObjectRef(kind="ServiceGroup", namespace=NS, name="g")


def test_a_huge_ipv6_pool_is_never_walked_and_counted_exactly() -> None:
    g = group("big", "2001:db8::/32", "fd00::/8", default=True)
    start = time.perf_counter()
    result = run([g], [service(f"s{i}", families=["IPv6"]) for i in range(2000)])
    assert time.perf_counter() - start < 5
    assert got(result, "s0") == ["2001:db8::1"]
    (stats,) = result.groups
    assert stats.allocated == {api.Family.IPV6: 2000}
    assert stats.available == {api.Family.IPV6: 2**96 - 1 + 2**120 - 1 - 2000}


# -- which Services, which group --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "default_class", "served"),
    [
        ({}, False, True),
        ({"cls": None}, False, False),
        ({"cls": None}, True, True),
        ({"cls": "example.com/other"}, True, False),
        ({"type_": "NodePort"}, False, False),
        ({"type_": "ClusterIP", "cls": None}, True, False),
    ],
)
def test_only_loadbalancers_of_lbroutes_class_are_served(
    spec: Obj, default_class: bool, served: bool
) -> None:
    result = run([group("g", "192.0.2.0/24", default=True)], [service("s", **spec)],
                 default_class=default_class)  # fmt: skip
    assert (result.of(ref("s")) is not None) == served
    if served:
        assert got(result, "s") == ["192.0.2.1"]


def test_the_group_annotation_wins_over_the_default() -> None:
    groups = [group("a", "192.0.2.0/24", default=True), group("b", "198.51.100.0/24")]
    result = run(groups, [service("x"), service("y", group="b")])
    assert got(result, "x") == ["192.0.2.1"]
    assert got(result, "y") == ["198.51.100.1"]


def test_a_missing_group_is_a_failure_naming_the_valid_ones() -> None:
    groups = [group("a", "192.0.2.0/24"), group("b", "198.51.100.0/24")]
    result = run(groups, [service("x", group="nope"), service("y")])
    assert got(result, "x") == [] and got(result, "y") == []
    (nope,) = [f for f in result.failures if f.ref.name == "x"]
    assert nope.reason is Reason.GROUP_NOT_FOUND
    assert nope.path == "metadata.annotations[lbroute.io/service-group]"
    assert "'nope' not found in namespace lbroute; valid: a, b" in nope.message
    (none,) = [f for f in result.failures if f.ref.name == "y"]
    assert none.reason is Reason.NO_GROUP and "default: true" in none.message


def test_an_invalid_group_is_a_failure_and_addresses_already_given_stay() -> None:
    broken = group("broken", "192.0.2.1/24")  # host bits set
    result = run(
        [broken],
        [
            service("x", group="broken"),
            service("y", group="broken", ingress=["192.0.2.9"], allocated_from="broken:"),
        ],
    )
    assert got(result, "x") == [] and got(result, "y") == ["192.0.2.9"]
    assert reasons(result) == [Reason.GROUP_INVALID, Reason.GROUP_INVALID]
    assert "spec.pools[0].cidr" in result.failures[0].message
    assert result.changes() == []
    # Given its address by an allocator that did not label: labeled, nothing else
    # changes (agents that watch only labeled Services must still see it).
    unlabeled = service("y", group="broken", ingress=["192.0.2.9"], allocated_from="broken:")
    del unlabeled["metadata"]["labels"]
    [change] = run([broken], [unlabeled]).changes()
    assert (change.label_before, change.label) == (None, "broken")
    assert change.addresses == change.before and change.allocated_from == "broken:"


# -- dual-stack ------------------------------------------------------------------------------

DUAL = group("dual", "192.0.2.0/24", "2001:db8::/64", default=True)
V4 = group("v4", "192.0.2.0/24", default=True)

FAMILY_CASES = [
    # (group, families, policy, ingress before, addresses after, failure)
    (DUAL, ["IPv4"], "SingleStack", [], ["192.0.2.1"], None),
    (DUAL, ["IPv6"], "SingleStack", [], ["2001:db8::1"], None),
    (DUAL, ["IPv4", "IPv6"], "RequireDualStack", [], ["192.0.2.1", "2001:db8::1"], None),
    (DUAL, ["IPv6", "IPv4"], "PreferDualStack", [], ["2001:db8::1", "192.0.2.1"], None),
    (DUAL, None, None, [], ["192.0.2.1"], None),
    (DUAL, None, "RequireDualStack", [], ["192.0.2.1", "2001:db8::1"], None),
    (V4, ["IPv4", "IPv6"], "PreferDualStack", [], ["192.0.2.1"], None),
    (V4, ["IPv4", "IPv6"], "RequireDualStack", [], [], Reason.FAMILY_UNAVAILABLE),
    (V4, ["IPv6"], "SingleStack", [], [], Reason.FAMILY_UNAVAILABLE),
    # a change of policy adds or releases the right family, keeping the other
    (DUAL, ["IPv4", "IPv6"], "RequireDualStack", ["192.0.2.77"],
     ["192.0.2.77", "2001:db8::1"], None),
    (DUAL, ["IPv4"], "SingleStack", ["192.0.2.77", "2001:db8::77"], ["192.0.2.77"], None),
    (DUAL, ["IPv6"], "SingleStack", ["192.0.2.77", "2001:db8::77"], ["2001:db8::77"], None),
    (DUAL, ["IPv6", "IPv4"], "PreferDualStack", ["192.0.2.77", "2001:db8::77"],
     ["2001:db8::77", "192.0.2.77"], None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("grp", "families", "policy", "before", "after", "failure"), FAMILY_CASES, ids=str
)
def test_one_address_per_family_following_the_policy(
    grp: Obj,
    families: list[str] | None,
    policy: str | None,
    before: list[str],
    after: list[str],
    failure: Reason | None,
) -> None:
    from_ = f"{grp['metadata']['name']}:" if before else None
    svc = service("s", families=families, policy=policy, ingress=before, allocated_from=from_)
    result = run([grp], [svc])
    assert got(result, "s") == (before if failure else after)
    assert reasons(result) == ([failure] if failure else [])
    a = result.of(ref("s"))
    assert a is not None
    assert [str(x) for x in a.released] == [x for x in before if x not in after]


def test_require_dual_stack_gets_both_families_or_neither() -> None:
    g = group("g", "192.0.2.0/24", "2001:db8::/127", default=True)  # two IPv6 addresses
    services = [
        service(f"s{i}", families=["IPv4", "IPv6"], policy="RequireDualStack") for i in range(3)
    ]
    result = run([g], services)
    assert got(result, "s2") == [], "no IPv4 address alone"
    assert reasons(result) == [Reason.EXHAUSTED]
    assert result.groups[0].allocated == {api.Family.IPV4: 2, api.Family.IPV6: 2}
    # A Service that prefers dual-stack takes what there is.
    state = applied(services, result)
    result = run([g], [*state[:2], service("p", families=["IPv4", "IPv6"],
                                           policy="PreferDualStack")])  # fmt: skip
    assert got(result, "p") == ["192.0.2.3"]


# -- requested addresses ------------------------------------------------------------------------


def test_requested_addresses_from_the_annotation_and_the_deprecated_field() -> None:
    result = run(
        [DUAL],
        [
            service("a", addresses="192.0.2.50, 2001:db8::50", policy="RequireDualStack",
                    families=["IPv4", "IPv6"]),
            service("b", lb_ip="192.0.2.60"),
        ],
    )  # fmt: skip
    assert got(result, "a") == ["192.0.2.50", "2001:db8::50"]
    assert got(result, "b") == ["192.0.2.60"]
    assert result.failures == ()


def test_a_request_beats_a_free_allocation_in_the_same_pass() -> None:
    result = run([V4], [service("a"), service("b", addresses="192.0.2.1")])
    assert got(result, "a") == ["192.0.2.2"] and got(result, "b") == ["192.0.2.1"]


REQUEST_FAILURES = [
    ("198.51.100.1", {}, Reason.REQUESTED_OUTSIDE,
     "198.51.100.1 is not in a pool of ServiceGroup lbroute/v4; valid: 192.0.2.0/24"),
    ("192.0.2.255", {}, Reason.REQUESTED_RESERVED, "allowNetworkAndBroadcast: true"),
    ("192.0.2.9", {"holder": True}, Reason.REQUESTED_TAKEN,
     "192.0.2.9 is already assigned to Service default/holder; only Services with the same "
     "lbroute.io/allow-shared-ip key share one"),
    ("192.0.2.x", {}, Reason.INVALID_SERVICE, "'192.0.2.x' is not an IP address"),
    ("192.0.2.1,192.0.2.2", {}, Reason.INVALID_SERVICE, "at most one of each"),
    ("2001:db8::1", {}, Reason.FAMILY_UNAVAILABLE, "2001:db8::1 is ipv6"),
]  # fmt: skip


@pytest.mark.parametrize(("requested", "extra", "reason", "message"), REQUEST_FAILURES, ids=str)
def test_a_request_that_cannot_be_met_is_a_failure_and_no_other_address(
    requested: str, extra: Obj, reason: Reason, message: str
) -> None:
    services = [service("s", addresses=requested, families=["IPv4"], policy="SingleStack")]
    if extra.get("holder"):
        services.append(service("holder", ingress=["192.0.2.9"], allocated_from="v4:"))
    result = run([V4], services)
    assert got(result, "s") == []
    (failure,) = [f for f in result.failures if f.ref.name == "s"]
    assert failure.reason is reason
    assert failure.path == "metadata.annotations[lbroute.io/addresses]"
    assert message in failure.message


def test_the_deprecated_field_may_not_contradict_the_annotation() -> None:
    result = run([V4], [service("s", addresses="192.0.2.5", lb_ip="192.0.2.6")])
    assert got(result, "s") == []
    (failure,) = result.failures
    assert failure.path == "spec.loadBalancerIP" and "set only the annotation" in failure.message


def test_a_new_request_moves_the_service_and_the_old_address_is_not_reused_at_once() -> None:
    before = [service("s", addresses="192.0.2.7", ingress=["192.0.2.1"], allocated_from="v4:"),
              service("t")]  # fmt: skip
    result = run([V4], before)
    assert got(result, "s") == ["192.0.2.7"]
    assert got(result, "t") == ["192.0.2.2"], "192.0.2.1 is free only once s let go of it"
    again = run([V4], [*applied(before, result)[:1], service("u")])
    assert got(again, "u") == ["192.0.2.1"]


# -- sharing -----------------------------------------------------------------------------------


def test_services_with_one_key_share_an_address_when_their_ports_differ() -> None:
    services_ = [
        service("dns-tcp", share="dns", ports=[("TCP", 53)]),
        service("dns-udp", share="dns", ports=[("UDP", 53)]),
        service("web", share="dns", ports=[("TCP", 53)]),
        service("other-ns", namespace="team", share="dns", ports=[("TCP", 80)]),
        service("no-key", ports=[("TCP", 8080)]),
    ]
    result = run([V4], services_)
    assert got(result, "dns-tcp") == got(result, "dns-udp") == ["192.0.2.1"]
    assert got(result, "no-key") == ["192.0.2.2"]
    assert got(result, "web") == ["192.0.2.3"], "TCP/53 clashes: an address of its own"
    assert got(result, "other-ns", "team") == ["192.0.2.4"], "keys are per namespace"
    (clash,) = result.failures
    assert (clash.ref.name, clash.reason, clash.path) == ("web", Reason.SHARE_CLASH, "spec.ports")
    assert clash.message == (
        "cannot share an address of key 'dns': TCP/53 with Service default/dns-tcp on "
        "192.0.2.1; it gets an ipv4 address of its own"
    )
    again = run([V4], applied(services_, result))
    assert again.failures == () and again.changes() == [], "reported once, when it happens"
    assert result.groups[0].allocated == {api.Family.IPV4: 4}


def test_a_requested_shared_address_with_a_clashing_port_is_a_failure() -> None:
    result = run(
        [V4],
        [
            service("a", share="k", ports=[("TCP", 443)], addresses="192.0.2.5"),
            service("b", share="k", ports=[("TCP", 443)], addresses="192.0.2.5"),
            service("c", share="k", ports=[("TCP", 80)], addresses="192.0.2.5"),
        ],
    )
    assert got(result, "a") == got(result, "c") == ["192.0.2.5"]
    assert got(result, "b") == []
    (failure,) = result.failures
    assert failure.reason is Reason.SHARE_CLASH and failure.path == "spec.ports"
    assert "TCP/443 used by both" in failure.message


def test_local_traffic_policy_shares_only_with_the_same_selector() -> None:
    result = run(
        [V4],
        [
            service("a", share="k", ports=[("TCP", 1)], local={"app": "x"}),
            service("b", share="k", ports=[("TCP", 2)], local={"app": "x"}),
            service("c", share="k", ports=[("TCP", 3)], local={"app": "y"}),
            service("d", share="k", ports=[("TCP", 4)]),
        ],
    )
    assert got(result, "a") == got(result, "b") == ["192.0.2.1"]
    assert got(result, "c") == ["192.0.2.2"] and got(result, "d") == ["192.0.2.3"]


def test_ports_that_start_to_clash_keep_the_address_and_are_reported() -> None:
    services = [
        service("a", share="k", ports=[("TCP", 80)], ingress=["192.0.2.5"], allocated_from="v4:",
                created="2024-01-01T00:00:00Z"),
        service("b", share="k", ports=[("TCP", 80)], ingress=["192.0.2.5"], allocated_from="v4:",
                created="2024-01-02T00:00:00Z"),
    ]  # fmt: skip
    result = run([V4], services)
    assert got(result, "a") == got(result, "b") == ["192.0.2.5"]
    assert [(f.ref.name, f.reason) for f in result.failures] == [("b", Reason.SHARE_CLASH)]


# -- never renumber ------------------------------------------------------------------------------


def test_a_restart_changes_nothing() -> None:
    services = [service(f"s{i}", families=["IPv4", "IPv6"], policy="PreferDualStack")
                for i in range(20)]  # fmt: skip
    first = run([DUAL], services)
    assert len(first.changes()) == 20
    restarted = run([DUAL], applied(services, first))
    assert restarted.changes() == [] and restarted.failures == ()
    assert [a.addresses for a in restarted.assignments] == [a.addresses for a in first.assignments]


def test_a_shrunk_pool_keeps_every_address_and_reports_the_ones_outside() -> None:
    services = [service(f"s{i}") for i in range(4)]
    state = applied(services, run([group("g", "192.0.2.0/24", default=True)], services))
    shrunk = run([group("g", "192.0.2.1-192.0.2.2", default=True)], state)
    assert shrunk.changes() == []
    assert [(o.ref.name, str(o.address)) for o in shrunk.outside] == [
        ("s2", "192.0.2.3"),
        ("s3", "192.0.2.4"),
    ]
    assert "lies outside every pool of ServiceGroup lbroute/g" in str(shrunk.outside[0])
    assert shrunk.groups[0].outside == 2
    assert shrunk.groups[0].available == {api.Family.IPV4: 0}
    # A new Service gets nothing rather than an address someone keeps.
    more = run([group("g", "192.0.2.0/29", default=True)], [*state, service("new")])
    assert got(more, "new") == ["192.0.2.5"]


def test_a_family_whose_pools_go_away_keeps_its_address_and_gets_it_back_unchanged() -> None:
    """The sequence Hypothesis found: a dual-stack Service lost its IPv6 address when its
    group's IPv6 pools went away and got another one when they came back."""
    dual = [group("g", "10.0.0.0/29", "fd00::/125", default=True)]
    v4_only = [group("g", "10.0.1.0-10.0.1.2", default=True)]
    s1 = service("s1", families=["IPv4", "IPv6"], policy="PreferDualStack")
    state = applied([s1], run(dual, [s1]))
    assert got(run(dual, state), "s1") == ["10.0.0.1", "fd00::1"]
    s0 = service("s0", families=["IPv6"], policy="SingleStack")
    edited = run(v4_only, [*state, s0])
    assert got(edited, "s1") == ["10.0.0.1", "fd00::1"] and got(edited, "s0") == []
    assert [(f.ref.name, f.reason) for f in edited.failures] == [("s0", Reason.FAMILY_UNAVAILABLE)]
    assert [(o.ref.name, str(o.address)) for o in edited.outside] == [
        ("s1", "10.0.0.1"),
        ("s1", "fd00::1"),
    ]
    back = run(dual, [*state, s0])
    assert got(back, "s1") == ["10.0.0.1", "fd00::1"]
    assert got(back, "s0") == ["fd00::2"]


V6 = group("v6", "2001:db8::/64", default=True)

POOL_FAMILY_CASES = [
    # (families, policy, group before, group after the edit, addresses, outside after it)
    (["IPv4", "IPv6"], "PreferDualStack", DUAL, V4, ["192.0.2.1", "2001:db8::1"], ["2001:db8::1"]),
    (["IPv6", "IPv4"], "PreferDualStack", DUAL, V6, ["2001:db8::1", "192.0.2.1"], ["192.0.2.1"]),
    (None, "PreferDualStack", DUAL, V4, ["192.0.2.1", "2001:db8::1"], ["2001:db8::1"]),
    (["IPv4", "IPv6"], "RequireDualStack", DUAL, V4, ["192.0.2.1", "2001:db8::1"],
     ["2001:db8::1"]),
    (["IPv6"], "SingleStack", DUAL, V4, ["2001:db8::1"], ["2001:db8::1"]),
    (None, None, V6, DUAL, ["2001:db8::1"], []),
    (None, None, V4, V6, ["192.0.2.1"], ["192.0.2.1"]),
    (None, "SingleStack", V6, DUAL, ["2001:db8::1"], []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("families", "policy", "before", "after", "addresses", "outside"),
    POOL_FAMILY_CASES,
    ids=lambda v: v["metadata"]["name"] if isinstance(v, dict) else str(v),
)
def test_a_pool_edit_that_removes_or_adds_a_family_renumbers_nothing(
    families: list[str] | None,
    policy: str | None,
    before: Obj,
    after: Obj,
    addresses: list[str],
    outside: list[str],
) -> None:
    def edited(g: Obj) -> list[Obj]:
        """The one group ``g``, with these pools."""
        return [group("g", *g["spec"]["pools"], default=True)]

    services = [service("s", families=families, policy=policy)]
    state = applied(services, run(edited(before), services))
    assert got(run(edited(before), state), "s") == addresses
    result = run(edited(after), state)
    assert result.changes() == [] and result.failures == ()
    assert [str(o.address) for o in result.outside] == outside
    assert run(edited(before), state).changes() == [], "and nothing changes when it comes back"


def test_of_two_services_claiming_one_address_the_older_keeps_it() -> None:
    services = [
        service("young", ingress=["192.0.2.8"], created="2024-02-01T00:00:00Z"),
        service("old", ingress=["192.0.2.8"], created="2024-01-01T00:00:00Z"),
    ]  # fmt: skip
    result = run([V4], services)
    assert got(result, "old") == ["192.0.2.8"]
    assert got(result, "young") == ["192.0.2.1"]
    (failure,) = result.failures
    assert failure.reason is Reason.CONFLICT and "held by Service default/old" in failure.message


def test_a_service_moved_to_another_group_gets_an_address_there() -> None:
    groups = [V4, group("other", "198.51.100.0/24")]
    moved = service("s", group="other", ingress=["192.0.2.3"], allocated_from="v4:192.0.2.0/24")
    stays = service("t", ingress=["192.0.2.4"], allocated_from="v4:192.0.2.0/24")
    result = run(groups, [moved, stays])
    assert got(result, "s") == ["198.51.100.1"]
    assert got(result, "t") == ["192.0.2.4"]
    a = result.of(ref("s"))
    assert a is not None and a.allocated_from == "other:198.51.100.0/24"


# -- release ----------------------------------------------------------------------------------


@pytest.mark.parametrize("change", [{"type_": "ClusterIP"}, {"cls": "example.com/other"}])
def test_a_service_that_stops_being_ours_is_released(change: Obj) -> None:
    before = service("s", ingress=["192.0.2.3", "203.0.113.9"], allocated_from="v4:192.0.2.0/24",
                     **change)  # fmt: skip
    result = run([V4], [before])
    a = result.of(ref("s"))
    assert a is not None
    assert [str(x) for x in a.addresses] == ["203.0.113.9"], "only lbroute's address goes"
    assert a.allocated_from is None and [str(x) for x in a.released] == ["192.0.2.3"]
    # Until the release lands, nobody else gets it; afterwards the next Service does.
    assert got(run([V4], [before, service("n")]), "n") == ["192.0.2.1"]
    later = run([V4], [*applied([before], result), service("n"), service("m"), service("o")])
    assert {a for name in "nmo" for a in got(later, name)} == {"192.0.2.1", "192.0.2.2",
                                                               "192.0.2.3"}  # fmt: skip


def test_addresses_of_other_implementations_are_never_handed_out() -> None:
    foreign = service("f", cls="example.com/other", ingress=["192.0.2.1"])
    result = run([V4], [foreign, service("s")])
    assert result.of(ref("f")) is None
    assert got(result, "s") == ["192.0.2.2"]


def test_a_deleted_services_address_is_free_again() -> None:
    services = [service("a"), service("b")]
    state = applied(services, run([V4], services))
    result = run([V4], [state[1], service("c")])
    assert got(result, "c") == ["192.0.2.1"]


# -- bookkeeping ----------------------------------------------------------------------------------


def test_counts_per_pool_and_group() -> None:
    g = group("g", "192.0.2.0/29", "2001:db8::/125", "10.0.0.10-10.0.0.12", default=True)
    services = [service(f"s{i}", families=["IPv4", "IPv6"], policy="RequireDualStack")
                for i in range(3)]  # fmt: skip
    result = run([g], services)
    assert [(p.pool, p.size, p.in_use) for p in result.pools] == [
        ("192.0.2.0/29", 6, 3),
        ("2001:db8::/125", 7, 3),
        ("10.0.0.10-10.0.0.12", 3, 0),
    ]
    (stats,) = result.groups
    assert stats.allocated == {api.Family.IPV4: 3, api.Family.IPV6: 3}
    assert stats.available == {api.Family.IPV4: 6, api.Family.IPV6: 4}
    assert stats.exhausted == ()


def test_allocated_from_round_trips_and_covers_its_pools() -> None:
    a = AllocatedFrom.parse("web:192.0.2.0/24,2001:db8::/64,10.0.0.5-10.0.0.9,203.0.113.7")
    assert (
        a.group == "web"
        and str(a) == "web:192.0.2.0/24,2001:db8::/64,10.0.0.5-10.0.0.9,203.0.113.7"
    )
    for ip in ("192.0.2.200", "2001:db8::ff", "10.0.0.9", "203.0.113.7"):
        assert a.covers(ipaddress.ip_address(ip)), ip
    for ip in ("192.0.3.1", "10.0.0.10", "2001:db9::1"):
        assert not a.covers(ipaddress.ip_address(ip)), ip


def test_the_result_does_not_depend_on_the_order_services_arrive_in() -> None:
    services = [
        service(f"s{i}", share="k" if i % 3 == 0 else None, ports=[("TCP", i)],
                addresses="192.0.2.40" if i == 7 else None)
        for i in range(30)
    ]  # fmt: skip
    first = run([V4], services)
    shuffled = services[:]
    random.Random(7).shuffle(shuffled)
    assert run([V4], shuffled) == first


def test_parse_reports_unusable_fields_with_their_paths() -> None:
    bad = service("s", families=["IPv5"], policy="Sometimes")
    parsed = parse_service(bad, default_class=False)
    assert parsed is not None
    assert [(p.path, p.message) for p in parsed.problems] == [
        ("spec.ipFamilies[0]", "'IPv5' is not valid; expected IPv4 or IPv6"),
        ("spec.ipFamilyPolicy", "'Sometimes' is not valid; expected one of SingleStack, "
         "PreferDualStack, RequireDualStack"),
    ]  # fmt: skip
    assert parse_service(service("x", cls=None), default_class=False) is None


def test_writing_an_assignment_keeps_the_rest_of_the_service() -> None:
    svc = service("s", ingress=["192.0.2.1"])
    svc["status"]["loadBalancer"]["ingress"][0]["ipMode"] = "VIP"
    out = with_allocation(svc, (ipaddress.ip_address("192.0.2.1"),
                                ipaddress.ip_address("2001:db8::1")), "g:x")  # fmt: skip
    assert out["status"]["loadBalancer"]["ingress"] == [
        {"ip": "192.0.2.1", "ipMode": "VIP"},
        {"ip": "2001:db8::1"},
    ]
    assert out["metadata"]["annotations"] == {ALLOCATED_FROM: "g:x"}
    assert out["spec"] == svc["spec"] and svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    cleared = with_allocation(out, (), None)
    assert "annotations" not in cleared["metadata"]
    assert cleared["status"] == {"loadBalancer": {}}


# -- invariants ------------------------------------------------------------------------------------

POOL_SETS = [
    ["10.0.0.0/29", "fd00::/125"],
    ["10.0.0.0/30", "fd00::/126"],
    ["10.0.0.0/29", "10.0.1.0-10.0.1.2", "fd00::/125"],
    ["10.0.1.0-10.0.1.2"],
    ["10.0.0.0/28"],
    ["10.0.0.1/29"],  # invalid: the group is skipped, its Services keep what they have
]
POLICIES = [
    (["IPv4"], "SingleStack"),
    (["IPv6"], "SingleStack"),
    (["IPv4", "IPv6"], "PreferDualStack"),
    (["IPv6", "IPv4"], "RequireDualStack"),
]
create = st.tuples(
    st.just("create"),
    st.integers(0, 11),  # name
    st.sampled_from(POLICIES),
    st.sampled_from([None, "k", "j"]),  # sharing key
    st.sampled_from([80, 443, 53]),
    st.sampled_from([None, "10.0.0.3", "10.0.1.1", "fd00::2"]),  # requested
)
op = st.one_of(
    create,
    st.tuples(st.just("delete"), st.integers(0, 11)),
    st.tuples(st.just("pools"), st.integers(0, len(POOL_SETS) - 1)),
    st.tuples(st.just("restart")),
    st.tuples(st.just("partial"), st.integers(0, 5)),  # only the first N writes land
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=30))
def test_no_address_is_given_twice_and_none_ever_changes(ops: list[tuple[Any, ...]]) -> None:
    pools = POOL_SETS[0]
    services: dict[str, Obj] = {}
    given_: dict[tuple[str, str], str] = {}  # (service, family) -> the address it was given
    for step in ops:
        lands: int | None = None
        if step[0] == "create":
            _, i, (families, policy), key, port, requested = step
            name = f"s{i}"
            if name not in services:
                services[name] = service(
                    name, families=families, policy=policy, share=key,
                    ports=[("TCP", port)], addresses=requested,
                )  # fmt: skip
        elif step[0] == "delete":
            services.pop(f"s{step[1]}", None)
            given_ = {k: v for k, v in given_.items() if k[0] != f"s{step[1]}"}
        elif step[0] == "pools":
            pools = POOL_SETS[step[1]]
        elif step[0] == "restart":
            services = copy.deepcopy(services)  # nothing but the objects survives
        else:
            lands = step[1]
        result = run([group("g", *pools, default=True)], list(services.values()))
        changes = result.changes()
        for a in changes[:lands] if lands is not None else changes:
            svc = services[a.ref.name]
            services[a.ref.name] = with_allocation(svc, a.addresses, a.allocated_from)
        holders: dict[str, list[Obj]] = {}
        for name, svc in services.items():
            for entry in svc["status"]["loadBalancer"].get("ingress") or ():
                ip = entry["ip"]
                holders.setdefault(ip, []).append(svc)
                family = "v6" if ":" in ip else "v4"
                assert given_.setdefault((name, family), ip) == ip, (name, "renumbered")
        for ip, owners in holders.items():
            if len(owners) > 1:
                keys = {(o["metadata"]["annotations"] or {}).get("lbroute.io/allow-shared-ip")
                        for o in owners}  # fmt: skip
                ports = [p["port"] for o in owners for p in o["spec"]["ports"]]
                assert len(keys) == 1 and None not in keys, (ip, "given twice")
                assert len(ports) == len(set(ports)), (ip, "shared with a clashing port")
