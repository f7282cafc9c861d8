"""Hostile and mistyped input at the model layer (issue 24): what one object may cost.

Covers, each as a user would notice it:

- a Service whose ``lbroute.io/addresses`` names 10,000 addresses costs one short
  message and little memory, and every other Service still gets its address;
- a request with one unusable entry (an IPv4-mapped IPv6 address) is refused whole;
- the overlap checks stay O(n log n): 20,000 pools in one group, 64,000 small groups,
  2,000 Peers against 20,000 groups; on small inputs the same problems as before;
- special-purpose ranges (0.0.0.0/0, loopback, link-local, multicast, reserved) are
  refused as pools, private and documentation ranges are not;
- a newline or a terminal escape in a name or value cannot fake a line of output;
- labels and the labels selectors ask for are checked as Kubernetes checks them: an
  unquoted ``true`` is an error naming the label, never ``'True'``;
- and an object reports a bounded number of problems of bounded size.
"""

from __future__ import annotations

import ipaddress
import re
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.ipam import Reason, allocate, invalid_groups
from allocator.service import parse_service
from lbroute.model import api
from lbroute.model.errors import InvalidObject, ObjectRef, Problem, Severity
from lbroute.model.fields import MAX_PROBLEMS
from lbroute.model.servicegroup import special_purpose

Obj = dict[str, Any]
NS = "lbroute"
ADDRESSES = "metadata.annotations[lbroute.io/addresses]"
MiB = 1024 * 1024


def group(name: str, *pools: Obj, labels: Obj | None = None, **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": NS}
    if labels is not None:
        meta["labels"] = labels
    return {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "ServiceGroup",
        "metadata": meta,
        "spec": {"pools": list(pools), **spec},
    }


def cidr(net: str) -> Obj:
    return {"cidr": net}


def service(name: str, *, addresses: str | None = None, **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": "shop", "uid": f"uid-{name}"}
    if addresses is not None:
        meta["annotations"] = {"lbroute.io/addresses": addresses}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "lbroute.io/lbroute", **spec},
    }


def parsed_group(obj: Obj) -> api.ServiceGroup:
    parsed = api.parse_object(obj)
    assert isinstance(parsed, api.ServiceGroup)
    return parsed


def problems_of(obj: Obj) -> tuple[Problem, ...]:
    with pytest.raises(InvalidObject) as caught:
        api.parse_object(obj)
    return caught.value.problems


def paths(problems: Sequence[Problem]) -> list[str]:
    return [p.path for p in problems if p.severity is Severity.ERROR]


# -- one Service, 10,000 requested addresses --------------------------------------------------


def flood(count: int = 10_000) -> str:
    """``count`` addresses, IPv4 and IPv6 in turn: about 140 KB for 10,000."""
    return ",".join(
        f"198.51.{i // 256 % 256}.{i % 256}" if i % 2 else f"2001:db8::{i:x}" for i in range(count)
    )


def test_an_annotation_of_10000_addresses_is_one_short_problem() -> None:
    text = flood()
    assert 116_000 <= len(text) <= 140_000
    svc = parse_service(service("flood", addresses=text), default_class=False)
    assert svc is not None and svc.requested == ()
    (problem,) = svc.problems
    assert problem.path == ADDRESSES
    assert "names 10000 addresses" in problem.message
    assert "at most one IPv4 and one IPv6 address" in problem.message
    assert len(str(problem)) < 400


def test_the_allocator_facing_such_a_service_stays_small_and_serves_the_others() -> None:
    model = api.load([group("web", cidr("192.0.2.0/24"), default=True)])
    objects = [service(f"s{i}") for i in range(50)]
    objects.insert(25, service("flood", addresses=flood()))
    tracemalloc.start()
    try:
        parsed = [parse_service(o, default_class=False) for o in objects]
        result = allocate(model.service_groups, [p for p in parsed if p is not None])
        output = "\n".join(str(f) for f in result.failures)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * MiB, f"peak {peak / MiB:.1f} MiB"
    (failure,) = result.failures
    assert (failure.ref.name, failure.reason) == ("flood", Reason.INVALID_SERVICE)
    assert len(output) < 400
    given_ = {a.ref.name: a.addresses for a in result.assignments}
    assert given_["flood"] == ()
    assert all(len(given_[f"s{i}"]) == 1 for i in range(50)), "every other Service is served"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("192.0.2.1,192.0.2.2,192.0.2.3", "names 3 addresses"),
        ("192.0.2.1 2001:db8::1 x", "names 3 addresses"),
        ("192.0.2.1,192.0.2.2", "names two IPv4 addresses"),
        ("192.0.2.1," + "x" * 5000, "... (5000 characters)"),
    ],
)
def test_each_unusable_request_is_one_bounded_problem(text: str, says: str) -> None:
    svc = parse_service(service("s", addresses=text), default_class=False)
    assert svc is not None and svc.requested == ()
    (problem,) = svc.problems
    assert problem.path == ADDRESSES and says in problem.message
    assert len(problem.message) < 300


# -- a half-valid request ---------------------------------------------------------------------


def test_a_half_valid_request_is_refused_whole() -> None:
    model = api.load([group("web", cidr("192.0.2.0/24"), default=True)])
    svc = parse_service(
        service("s", addresses="::ffff:192.0.2.51,192.0.2.52", ipFamilyPolicy="PreferDualStack"),
        default_class=False,
    )
    assert svc is not None and svc.requested == ()
    result = allocate(model.service_groups, [svc])
    assert [a.addresses for a in result.assignments] == [()], "nothing of it applied"
    (failure,) = result.failures
    assert failure.reason is Reason.INVALID_SERVICE and failure.path == ADDRESSES
    assert "'::ffff:192.0.2.51' is an IPv4-mapped IPv6 address" in failure.message
    assert "write the IPv4 address 192.0.2.51" in failure.message


def test_an_ipv4_mapped_load_balancer_ip_is_refused() -> None:
    svc = parse_service(service("s", loadBalancerIP="::ffff:192.0.2.51"), default_class=False)
    assert svc is not None and svc.requested == ()
    assert [p.path for p in svc.problems] == ["spec.loadBalancerIP"]


# -- sizes: sort and sweep, never every pair --------------------------------------------------


def test_20000_pools_in_one_group_validate_quickly() -> None:
    pools = [cidr(f"10.{i // 256}.{i % 256}.0/24") for i in range(20_000)]
    start = time.perf_counter()
    model = api.load([group("big", *pools)])
    assert time.perf_counter() - start < 10
    assert model.problems == () and len(model.service_groups[0].pools) == 20_000


def test_20000_copies_of_one_pool_are_a_bounded_report() -> None:
    start = time.perf_counter()
    problems = problems_of(group("big", *[cidr("192.0.2.0/24")] * 20_000))
    assert time.perf_counter() - start < 10
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0].message == (
        "pools 192.0.2.0/24 and 192.0.2.0/24 overlap; each address may be in one pool"
    )
    assert "more problems than the 100 shown" in problems[-1].message


def test_64000_small_groups_load_quickly() -> None:
    objects = [group(f"g{i}", cidr(f"fd00:{i:x}::/64")) for i in range(64_000)]
    objects.append(group("late", cidr("fd00:0::/80")))
    start = time.perf_counter()
    model = api.load(objects)
    assert time.perf_counter() - start < 60
    assert len(model.service_groups) == 64_000
    (problem,) = model.problems
    assert (problem.ref.name, problem.path) == ("late", "spec.pools[0]")
    assert "overlaps pool fd00::/64 of ServiceGroup lbroute/g0" in problem.message


def test_2000_peers_against_20000_groups_are_checked_quickly() -> None:
    groups = [group(f"g{i}", cidr(f"fd00:{i:x}::/64"), labels={"tier": f"g{i}"})
              for i in range(20_000)]  # fmt: skip
    peers = [
        {
            "apiVersion": "lbroute.io/v1alpha1",
            "kind": "Peer",
            "metadata": {"name": f"p{i}", "namespace": NS},
            "spec": {
                "bgp": {"address": "10.0.0.1", "asn": 65001},
                "serviceGroupSelector": {"matchLabels": {"tier": f"p{i}"}},
            },
        }
        for i in range(2_000)
    ]
    start = time.perf_counter()
    model = api.load([*groups, *peers])
    assert time.perf_counter() - start < 10
    warned = [p for p in model.problems if p.path == "spec.serviceGroupSelector"]
    assert len(warned) == 2_000 and "selects no ServiceGroup" in warned[0].message


def test_overlaps_across_groups_are_named_as_before() -> None:
    model = api.load(
        [
            group("a", cidr("192.0.2.0/26")),  # .0-.63, kept
            group("b", {"range": "192.0.2.32-192.0.2.95"}),  # overlaps a: skipped
            group("c", cidr("192.0.2.64/26")),  # overlaps only b, which was skipped: kept
            group("d", cidr("198.51.100.128/25")),  # kept
            group("e", cidr("203.0.113.0/25"), {"range": "198.51.100.100-198.51.100.130"}),
        ]
    )
    assert [g.name for g in model.service_groups] == ["a", "c", "d"]
    assert [(p.ref.name, p.path, p.message) for p in model.problems] == [
        ("b", "spec.pools[0]", "pool 192.0.2.32-192.0.2.95 overlaps pool 192.0.2.0/26 of "
         "ServiceGroup lbroute/a; pools of different ServiceGroups must not overlap (this "
         "ServiceGroup is skipped)"),
        ("e", "spec.pools[1]", "pool 198.51.100.100-198.51.100.130 overlaps pool "
         "198.51.100.128/25 of ServiceGroup lbroute/d; pools of different ServiceGroups must "
         "not overlap (this ServiceGroup is skipped)"),
    ]  # fmt: skip


_SPANS = st.tuples(st.integers(0, 60), st.integers(0, 8)).map(
    lambda t: {"range": f"192.0.2.{t[0]}-192.0.2.{t[0] + t[1]}"}
)


def _bounds(pool: Obj) -> tuple[int, int]:
    a, b = pool["range"].split("-")
    return int(a.rsplit(".", 1)[1]), int(b.rsplit(".", 1)[1])


def _overlap(p: Obj, q: Obj) -> bool:
    (a, b), (c, d) = _bounds(p), _bounds(q)
    return a <= d and c <= b


@settings(max_examples=200, deadline=None)
@given(st.lists(_SPANS, min_size=1, max_size=6))
def test_pools_of_one_group_are_refused_exactly_when_two_overlap(spans: list[Obj]) -> None:
    pairs = [(p, q) for i, p in enumerate(spans) for q in spans[i + 1 :] if _overlap(p, q)]
    model = api.load([group("g", *spans)])
    assert bool(model.problems) == bool(pairs)
    for problem in model.problems:
        named = re.fullmatch(r"pools (\S+) and (\S+) overlap; each address may be in one pool",
                             problem.message)  # fmt: skip
        assert named is not None and problem.path == "spec.pools"
        assert _overlap({"range": named.group(1)}, {"range": named.group(2)}), problem


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_SPANS, min_size=1, max_size=2), min_size=1, max_size=6))
def test_groups_are_kept_in_order_while_they_overlap_none_kept(groups: list[list[Obj]]) -> None:
    objects = [group(f"g{i}", *spans) for i, spans in enumerate(groups)]
    model = api.load(objects)
    invalid = {p.ref.name for p in model.problems if p.path == "spec.pools"}
    kept = [g.name for g in model.service_groups]
    chosen: list[int] = []
    for i, spans in enumerate(groups):
        if f"g{i}" in invalid:
            continue
        clash = any(_overlap(p, q) for k in chosen for p in spans for q in groups[k])
        assert (f"g{i}" in kept) is not clash, i
        if not clash:
            chosen.append(i)


# -- special-purpose ranges -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "field", "named"),
    [
        (cidr("0.0.0.0/0"), "cidr", "0.0.0.0/8 ('this network'"),
        (cidr("::/0"), "cidr", "::/8 (reserved by the IETF"),
        (cidr("127.0.0.0/8"), "cidr", "loopback"),
        ({"range": "126.255.255.250-127.0.0.5"}, "range", "127.0.0.0/8 (loopback"),
        (cidr("224.0.0.0/24"), "cidr", "multicast"),
        (cidr("ff02::/16"), "cidr", "ff00::/8 (multicast)"),
        (cidr("fe80::/64"), "cidr", "fe80::/10 (link-local"),
        (cidr("169.254.0.0/16"), "cidr", "link-local"),
        (cidr("0.0.0.0/8"), "cidr", "'this network'"),
        (cidr("240.0.0.0/4"), "cidr", "reserved"),
        (cidr("255.255.255.255/32"), "cidr", "limited broadcast"),
        (cidr("::1/128"), "cidr", "::/8"),
        (cidr("::ffff:192.0.2.0/120"), "cidr", "IPv4-mapped"),
        ({"range": "192.0.2.10-192.0.2.20", "subnet": "0.0.0.0/0"}, "subnet", "0.0.0.0/8"),
    ],
    ids=str,
)
def test_special_purpose_pools_are_refused(pool: Obj, field: str, named: str) -> None:
    (problem,) = problems_of(group("g", pool))
    assert problem.path == f"spec.pools[0].{field}"
    assert "includes special-purpose addresses" in problem.message and named in problem.message


@pytest.mark.parametrize(
    "net",
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "192.0.2.0/24",
     "198.51.100.0/24", "203.0.113.0/24", "fc00::/7", "fd00::/8", "2001:db8::/32",
     "1.0.0.0/8", "223.255.255.0/24", "2000::/3"],
)  # fmt: skip
def test_private_documentation_and_public_pools_are_ordinary(net: str) -> None:
    assert parsed_group(group("g", cidr(net))).pools[0].cidr == ipaddress.ip_network(net)


def test_a_group_with_a_default_route_pool_hands_out_nothing() -> None:
    model = api.load([group("all", cidr("0.0.0.0/0"), default=True)])
    assert model.service_groups == ()
    result = allocate(
        model.service_groups,
        [s for s in [parse_service(service("s"), default_class=False)] if s is not None],
        invalid_groups=invalid_groups(model.errors),
    )
    assert [a.addresses for a in result.assignments] == [()]


def _predicates(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        address.is_loopback
        or address.is_multicast
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
        or (address.version == 4 and address in ipaddress.ip_network("0.0.0.0/8"))
    )


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.ip_addresses(),
        st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
        st.sampled_from(["0.255.255.255", "1.0.0.0", "126.255.255.255", "127.255.255.255",
                         "128.0.0.0", "169.253.255.255", "169.255.0.0", "223.255.255.255",
                         "224.0.0.0", "255.255.255.255", "::", "::1", "::2", "ff:ffff::",
                         "100::", "1fff:ffff::", "2000::", "3fff::", "4000::", "fbff::",
                         "fc00::", "fdff::", "fe00::", "fe7f::", "fe80::", "febf::",
                         "fec0::", "feff::", "ff00::"]).map(ipaddress.ip_address),
    )
)  # fmt: skip
def test_special_purpose_is_what_ipaddress_calls_it(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    if address.version == 6 and address.ipv4_mapped is not None:
        return  # newer Pythons judge these by the IPv4 address; ::/8 holds them all
    assert bool(special_purpose(address, address)) == _predicates(address), address


# -- names and values printed raw -------------------------------------------------------------

HOSTILE = "x\nFAKE: assigned 1.2.3.4\x1b[31m"


def _one_line_each(text: str, lines: int) -> None:
    assert "\x1b" not in text and "FAKE" not in text.replace("\\nFAKE", "")
    assert len(text.split("\n")) == lines, text


def test_a_hostile_name_prints_on_one_line_escaped() -> None:
    ref = ObjectRef(kind="Service", namespace="shop", name=HOSTILE)
    assert str(ref) == "Service shop/x\\nFAKE: assigned 1.2.3.4\\x1b[31m"
    problem = Problem(severity=Severity.ERROR, ref=ref, path="a\nb", message="m\x1b[0m")
    assert str(problem) == f"error: {ref}: a\\nb: m\\x1b[0m"
    model = api.load([group(HOSTILE, cidr("192.0.2.0/24"))])
    text = "\n".join(str(p) for p in model.problems)
    _one_line_each(text, len(model.problems))
    assert "metadata.name: 'x\\nFAKE: assigned 1.2.3.4\\x1b[31m' is not valid" in text


def test_hostile_values_and_field_names_are_quoted() -> None:
    obj = group("g", {"cidr": f"192.0.2.0/24{HOSTILE}"})
    obj["spec"][HOSTILE] = 1
    obj["metadata"]["labels"] = {HOSTILE: "v", "k": HOSTILE}
    problems = problems_of(obj)
    text = str(InvalidObject(problems[0].ref, problems))
    _one_line_each(text, len(problems))
    quoted = "['x\\nFAKE: assigned 1.2.3.4\\x1b[31m']"
    assert sorted(paths(problems)) == sorted(
        [f"metadata.labels{quoted}", "metadata.labels.k", "spec.pools[0].cidr", f"spec{quoted}"]
    )


def test_a_service_with_a_hostile_name_gets_nothing_and_prints_one_line() -> None:
    model = api.load([group("web", cidr("192.0.2.0/24"), default=True)])
    bad = service("ok")
    bad["metadata"]["name"] = HOSTILE
    parsed = [parse_service(o, default_class=False) for o in (bad, service("ok"))]
    result = allocate(model.service_groups, [p for p in parsed if p is not None])
    given_ = {a.ref.name: a.addresses for a in result.assignments}
    assert given_[HOSTILE] == () and len(given_["ok"]) == 1
    (failure,) = result.failures
    assert failure.path == "metadata.name" and "is not a valid Service name" in failure.message
    _one_line_each(str(failure), 1)


def test_a_hostile_name_holding_an_address_is_named_escaped_in_others_failures() -> None:
    model = api.load([group("web", cidr("192.0.2.0/24"), default=True)])
    holder = service("holder", ports=[{"port": 80, "protocol": "TCP\x1b[2J" * 1000}])
    holder["metadata"]["name"] = HOSTILE
    holder["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}
    parsed = [parse_service(o, default_class=False)
              for o in (holder, service("asker", addresses="192.0.2.9"))]  # fmt: skip
    held = parsed[0]
    assert held is not None and held.ports == frozenset(), "a port of no known protocol"
    result = allocate(model.service_groups, [p for p in parsed if p is not None])
    (failure,) = [f for f in result.failures if f.ref.name == "asker"]
    assert failure.reason is Reason.REQUESTED_TAKEN
    assert "already assigned to Service shop/x\\nFAKE" in failure.message
    _one_line_each(str(failure), 1)


# -- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "path", "says"),
    [
        ({"enabled": True}, "metadata.labels.enabled", "quote the value ('true')"),
        ({"enabled": False}, "metadata.labels.enabled", "quote the value ('false')"),
        ({"rack": 5}, "metadata.labels.rack", "not a number"),
        ({"rack": None}, "metadata.labels.rack", "write '' for an empty label value"),
        ({"rack": ["a"]}, "metadata.labels.rack", "must be a string, not a list"),
        ({"rack": "a b"}, "metadata.labels.rack", "is not a valid label value"),
        ({"rack": "a" * 64}, "metadata.labels.rack", "is not a valid label value"),
        ({"rack": "-a"}, "metadata.labels.rack", "is not a valid label value"),
        ({"-rack": "a"}, "metadata.labels.-rack", "is not a valid label key"),
        ({"a..b/rack": "a"}, "metadata.labels.a..b/rack", "is not a valid label key"),
        ({"A.io/rack": "a"}, "metadata.labels.A.io/rack", "is not a valid label key"),
        ({"a/b/c": "a"}, "metadata.labels.a/b/c", "is not a valid label key"),
        ({"x" * 64: "a"}, "metadata.labels.xxx", "is not a valid label key"),
        ({"a" * 254 + "/rack": "a"}, "metadata.labels['aaa", "is not a valid label key"),
        ({7: "a"}, "metadata.labels", "7 is not a valid label key: not a string"),
        (["rack=a"], "metadata.labels", "must be an object"),
    ],
    ids=repr,
)
def test_labels_are_checked_as_kubernetes_does(labels: Any, path: str, says: str) -> None:
    obj = group("g", cidr("192.0.2.0/24"))
    obj["metadata"]["labels"] = labels
    (problem,) = problems_of(obj)
    assert problem.path.startswith(path) and says in problem.message, str(problem)


@pytest.mark.parametrize(
    "labels",
    [{}, {"rack": ""}, {"lbroute.io/tier": "edge"}, {"app.kubernetes.io/name": "web.v1_2-3"},
     {"a" * 63: "b" * 63}, {"a" * 253 + "/" + "b" * 63: "x"}],
    ids=repr,
)  # fmt: skip
def test_valid_labels_are_kept(labels: dict[str, str]) -> None:
    obj = group("g", cidr("192.0.2.0/24"))
    obj["metadata"]["labels"] = labels
    assert dict(parsed_group(obj).labels) == labels


def test_every_kind_checks_its_labels() -> None:
    spec = {
        "Peer": {"bgp": {"address": "10.0.0.1", "asn": 65001}},
        "NodeAgent": {},
        "ServiceGroup": {"pools": [cidr("192.0.2.0/24")]},
    }
    for kind, body in spec.items():
        meta = {"name": "x", "namespace": NS, "labels": {"on": True}}
        obj = {"apiVersion": "lbroute.io/v1alpha1", "kind": kind, "metadata": meta, "spec": body}
        assert paths(problems_of(obj)) == ["metadata.labels.on"], kind
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "labels": {"a": 1}}}
    assert paths(problems_of(node)) == ["metadata.labels.a"]


@pytest.mark.parametrize(
    ("selector", "path", "says"),
    [
        ({"matchLabels": {"edge": True}}, "matchLabels.edge", "quote the value ('true')"),
        ({"matchLabels": {"edge": 1}}, "matchLabels.edge", "quote the value ('1')"),
        ({"matchExpressions": [{"key": "edge", "operator": "In", "values": ["a", True]}]},
         "matchExpressions[0].values[1]", "quote the value ('true')"),
        ({"matchExpressions": [{"key": "a..b/edge", "operator": "Exists"}]},
         "matchExpressions[0].key", "is not valid"),
    ],
)  # fmt: skip
def test_selectors_check_the_labels_they_ask_for(selector: Obj, path: str, says: str) -> None:
    (problem,) = problems_of(group("g", cidr("192.0.2.0/24"), nodeSelector=selector))
    assert problem.path == f"spec.nodeSelector.{path}" and says in problem.message


# -- what one object may cost -------------------------------------------------------------------


def test_an_object_reports_a_bounded_number_of_problems() -> None:
    obj = group("g", cidr("192.0.2.0/24"))
    obj["spec"].update({f"typo{i}": 1 for i in range(10_000)})
    problems = problems_of(obj)
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1].severity is Severity.ERROR
    assert problems[-1].message == "has more problems than the 100 shown; fix these first"


def test_a_huge_or_deeply_shared_value_costs_a_short_message() -> None:
    bomb: list[Any] = ["lol"]
    for _ in range(7):
        bomb = [bomb] * 9  # 9**7 items when printed in full
    obj = group("g", {"cidr": "192.0.2.0/24" * 100_000}, default=bomb)
    tracemalloc.start()
    try:
        problems = problems_of(obj)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * MiB
    assert paths(problems) == ["spec.pools[0].cidr", "spec.default"]
    assert all(len(str(p)) < 300 for p in problems), [str(p) for p in problems]
