"""External IPAM, the pure parts (no NetBox): ``spec.ipam.netbox`` read and refused, how
lbroute knows its own records, the pass's requests and claims, and the broker's
decisions (claims kept until written, shared keys, backoff, release and drift) over an
in-memory provider. The same behaviour against a real NetBox: tests/netbox/.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence
from typing import Any

import pytest

from allocator.external import Broker, Exhausted, Owner, Record, Refused, Unavailable
from allocator.ipam import Allocation, Reason, allocate, invalid_groups
from allocator.service import parse_service
from lbroute.model import api
from lbroute.model.api import Family
from lbroute.model.errors import InvalidObject, ObjectRef
from lbroute.model.fields import IPAddress, IPNetwork
from lbroute.model.netbox import description, dns_name, owner_of
from lbroute.model.servicegroup import parse_service_group
from tests.test_ipam import got, reasons, ref, service

NS = "lbroute"
Obj = dict[str, Any]


def nb_group(
    name: str = "nb",
    prefixes: Sequence[str] = ("198.51.100.0/29",),
    *,
    pools: Sequence[str] = (),
    default: bool = True,
    **netbox: Any,
) -> Obj:
    spec: Obj = {
        "default": default,
        "ipam": {
            "netbox": {
                "url": "https://netbox.example.com",
                "tokenSecretRef": {"name": "netbox-token"},
                "prefixes": list(prefixes),
                **netbox,
            }
        },
    }
    if pools:
        spec["pools"] = [{"cidr": p} for p in pools]
    return {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "ServiceGroup",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def errors_of(obj: Obj) -> list[str]:
    try:
        parse_service_group(obj)
    except InvalidObject as exc:
        return [f"{p.path}: {p.message}" for p in exc.problems]
    return []


def run(
    groups: Sequence[Obj],
    services: Sequence[Obj],
    claims: dict[ObjectRef, dict[Family, IPAddress]] | None = None,
) -> Allocation:
    model = api.load(groups)
    parsed = [parse_service(s, default_class=False) for s in services]
    return allocate(
        model.service_groups,
        [p for p in parsed if p is not None],
        invalid_groups=invalid_groups(model.errors),
        claims=claims,
    )


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


# -- the field --------------------------------------------------------------------------------


def test_a_netbox_group_needs_no_pools_and_its_prefixes_are_pools() -> None:
    g = parse_service_group(nb_group(prefixes=["198.51.100.0/24", "2001:db8:5::/64"]))
    assert g.netbox is not None
    assert g.netbox.token.key == "token"
    assert g.netbox.tags == ("lbroute",)
    assert [(str(p), p.external, p.aggregation) for p in g.pools] == [
        ("198.51.100.0/24", "netbox", 24),
        ("2001:db8:5::/64", "netbox", 64),
    ]
    host = parse_service_group(nb_group(aggregation="host"))
    assert [p.aggregation for p in host.pools] == [32]


@pytest.mark.parametrize(
    ("netbox", "path", "words"),
    [
        ({"url": "ftp://x"}, "spec.ipam.netbox.url", "http or https URL"),
        ({"url": "https://a b"}, "spec.ipam.netbox.url", "http or https URL"),
        ({"url": "https://nb/x?token=1"}, "spec.ipam.netbox.url", "no user, query"),
        ({"prefixes": ["198.51.100.1/24"]}, "spec.ipam.netbox.prefixes[0]", "host bits set"),
        ({"prefixes": []}, "spec.ipam.netbox.prefixes", "at least one"),
        ({"prefixes": ["127.0.0.0/8"]}, "spec.ipam.netbox.prefixes[0]", "loopback"),
        (
            {"prefixSelector": {"tags": ["k8s"]}},
            "spec.ipam.netbox",
            "exactly one of them",
        ),
        (
            {"prefixes": None, "prefixSelector": {}},
            "spec.ipam.netbox.prefixSelector",
            "at least one",
        ),
        (
            {"prefixes": None, "prefixSelector": {"tags": ["K8s LB"]}},
            "spec.ipam.netbox.prefixSelector.tags[0]",
            "NetBox slug",
        ),
        (
            {"prefixes": None, "prefixSelector": {"role": "lb;x"}},
            "spec.ipam.netbox.prefixSelector.role",
            "prefix role's slug",
        ),
        (
            {"prefixes": None, "prefixSelector": {"site": "dc1"}},
            "spec.ipam.netbox.prefixSelector.site",
            "unknown field",
        ),
        ({"tags": ["Bad Tag"]}, "spec.ipam.netbox.tags[0]", "NetBox slug"),
        ({"tenant": "acme\nx"}, "spec.ipam.netbox.tenant", "NetBox slug"),
        ({"dnsName": "{name}.{secret}"}, "spec.ipam.netbox.dnsName", "placeholders"),
        ({"dnsName": "{{name.__class__}}"}, "spec.ipam.netbox.dnsName", "placeholders"),
        ({"role": "vrrp"}, "spec.ipam.netbox.role", "anycast, vip, none"),
        ({"onRelease": "keep"}, "spec.ipam.netbox.onRelease", "delete, deprecate"),
        ({"clusterName": "East"}, "spec.ipam.netbox.clusterName", "DNS label"),
        ({"tokenSecretRef": None}, "spec.ipam.netbox.tokenSecretRef", "NetBox API token"),
        ({"prefixe": ["x"]}, "spec.ipam.netbox.prefixe", "unknown field"),
    ],
)
def test_a_bad_netbox_field_names_itself_and_what_is_valid(
    netbox: Obj, path: str, words: str
) -> None:
    obj = nb_group()
    obj["spec"]["ipam"]["netbox"].update(netbox)
    obj["spec"]["ipam"]["netbox"] = {
        k: v for k, v in obj["spec"]["ipam"]["netbox"].items() if v is not None
    }
    found = errors_of(obj)
    assert any(e.startswith(path + ":") and words in e for e in found), found


def test_exactly_one_source_per_address() -> None:
    found = errors_of(nb_group(prefixes=["198.51.100.0/24"], pools=["198.51.100.128/25"]))
    assert any(
        "pool 198.51.100.128/25 and NetBox prefix 198.51.100.0/24 overlap; each address "
        "comes from one source" in e
        for e in found
    ), found
    other = nb_group("other", prefixes=["198.51.100.0/25"], default=False)
    model = api.load([nb_group(prefixes=["198.51.100.0/24"]), other])
    assert any("overlap" in p.message for p in model.errors), model.errors


def test_ipam_without_netbox_is_refused() -> None:
    obj = nb_group()
    obj["spec"]["ipam"] = {}
    assert any(e.startswith("spec.ipam.netbox: is required") for e in errors_of(obj))


def test_descriptions_say_whose_an_object_is() -> None:
    assert description(None, "shop", "web") == "lbroute: shop/web"
    assert description("east", "shop", "web") == "lbroute/east: shop/web"
    assert owner_of(None, "lbroute: shop/web") == ("shop", "web")
    assert owner_of("east", "lbroute/east: shop/web") == ("shop", "web")
    # Another cluster's, someone else's, or a hand-edited one: not ours.
    assert owner_of(None, "lbroute/east: shop/web") is None
    assert owner_of("east", "lbroute: shop/web") is None
    assert owner_of(None, "router loopback") is None
    assert owner_of(None, "lbroute: shop") is None
    assert owner_of(None, "lbroute: Shop/web") is None


def test_dns_names_come_only_from_the_placeholders() -> None:
    template = "{name}.{namespace}.lb.example.com"
    assert dns_name(template, name="web", namespace="shop", group="nb") == (
        "web.shop.lb.example.com"
    )
    assert dns_name("{name}-" * 20 + ".x", name="a" * 20, namespace="s", group="g") is None


# -- the pass ---------------------------------------------------------------------------------


def test_a_service_of_a_netbox_group_is_a_request_not_an_address() -> None:
    result = run([nb_group()], [service("web")])
    assert got(result, "web") == []
    assert [(r.ref.name, r.group, r.family, r.address) for r in result.requests] == [
        ("web", "nb", Family.IPV4, None)
    ]
    assert reasons(result) == []


def test_a_claim_is_taken_like_a_requested_address() -> None:
    claims = {ref("web"): {Family.IPV4: ip("198.51.100.3")}}
    result = run([nb_group()], [service("web")], claims)
    assert got(result, "web") == ["198.51.100.3"]
    assert result.requests == ()
    a = result.of(ref("web"))
    assert a is not None and a.allocated_from == "nb:198.51.100.0/29"


def test_a_claim_another_service_holds_is_refused_not_given_twice() -> None:
    claims = {ref("new"): {Family.IPV4: ip("198.51.100.3")}}
    old = service("old", ingress=["198.51.100.3"], allocated_from="nb:198.51.100.0/29")
    result = run([nb_group()], [old, service("new")], claims)
    assert got(result, "new") == []
    assert got(result, "old") == ["198.51.100.3"]
    assert Reason.REQUESTED_TAKEN in reasons(result, "new")


def test_a_requested_netbox_address_is_held_and_asked_for() -> None:
    result = run(
        [nb_group()],
        [service("a", addresses="198.51.100.5"), service("b", addresses="198.51.100.5")],
    )
    assert [(r.ref.name, r.address) for r in result.requests] == [("a", ip("198.51.100.5"))]
    assert Reason.REQUESTED_TAKEN in reasons(result, "b")
    outside = run([nb_group()], [service("c", addresses="203.0.113.5")])
    assert Reason.REQUESTED_OUTSIDE in reasons(outside, "c")


def test_own_pools_first_then_netbox() -> None:
    g = nb_group(prefixes=["198.51.100.0/29"], pools=["203.0.113.0/31"])
    result = run([g], [service(f"s{i}", created=f"2026-01-0{i + 1}T00:00:00Z") for i in range(3)])
    assert got(result, "s0") == ["203.0.113.0"]
    assert got(result, "s1") == ["203.0.113.1"]
    assert [r.ref.name for r in result.requests] == ["s2"]


def test_require_dual_stack_waits_for_both_families() -> None:
    g = nb_group(prefixes=["198.51.100.0/29"], pools=["2001:db8:9::/120"])
    svc = service("dual", policy="RequireDualStack", families=["IPv4", "IPv6"])
    first = run([g], [svc])
    assert got(first, "dual") == []  # not the IPv6 one alone
    assert [r.family for r in first.requests] == [Family.IPV4]
    second = run([g], [svc], {ref("dual"): {Family.IPV4: ip("198.51.100.1")}})
    assert got(second, "dual") == ["198.51.100.1", "2001:db8:9::1"]


def test_an_address_on_a_service_stays_whatever_netbox_says() -> None:
    kept = service("kept", ingress=["198.51.100.4"], allocated_from="nb:198.51.100.0/29")
    result = run([nb_group()], [kept])
    assert got(result, "kept") == ["198.51.100.4"]
    assert result.requests == () and result.changes() == []


# -- the broker, over an in-memory IPAM -------------------------------------------------------


class MemoryIpam:
    """An IPAM in a dict, for the broker's decisions; the real one: tests/netbox/."""

    name = "memory IPAM"

    def __init__(self, prefix: str = "198.51.100.0/29") -> None:
        self.net = ipaddress.ip_network(prefix)
        self.objects: dict[IPAddress, Record] = {}
        self.down = False
        self.calls = 0
        self.batches = 0
        self.next_id = 1
        self.matching: list[IPNetwork] = [self.net]
        """What a prefixSelector matches here."""
        self.refuse = ""
        self.selects = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise Unavailable("memory IPAM did not answer: ConnectTimeout")

    def _add(self, address: IPAddress, owner: Owner | None, shown: str = "") -> None:
        self.objects[address] = Record(
            address=address, ident=str(self.next_id), owner=owner, shown=shown or str(owner)
        )
        self.next_id += 1

    def claim(self, family: Family, owner: Owner, address: IPAddress | None) -> IPAddress:
        self._check()
        for rec in self.objects.values():
            if rec.owner == owner and (address is None or rec.address == address):
                return rec.address
        if address is not None:
            if address in self.objects:
                raise Refused(f"{address} is taken by {self.objects[address].shown}")
            self._add(address, owner)
            return address
        for host in self.net.hosts():
            a = ip(str(host))
            if a not in self.objects:
                self._add(a, owner)
                return a
        raise Exhausted("nothing left")

    def claim_free(self, family: Family, owners: Sequence[Owner]) -> dict[Owner, IPAddress]:
        self.batches += 1
        given = {}
        for owner in owners:
            try:
                given[owner] = self.claim(family, owner, None)
            except Exhausted:
                break
        return given

    def release(self, record: Record) -> None:
        self._check()
        self.objects.pop(record.address, None)

    def restore(self, address: IPAddress, owner: Owner) -> None:
        self._check()
        self._add(address, owner)

    def adopt(self, record: Record, owner: Owner) -> None:
        self._check()
        self.objects[record.address] = dataclasses.replace(record, owner=owner, shown=str(owner))

    def records(self) -> Sequence[Record]:
        self._check()
        return list(self.objects.values())

    def select(self) -> list[IPNetwork]:
        self._check()
        self.selects += 1
        if self.refuse:
            raise Refused(self.refuse)
        return list(self.matching)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def broker_for(ipam: MemoryIpam, clock: Clock, groups: Sequence[api.ServiceGroup]) -> Broker:
    b = Broker(lambda g: ipam, clock=clock, resync=60.0)
    b.groups(groups, key=lambda g: g.netbox)
    return b


def one_pass(b: Broker, groups: Sequence[Obj], services: list[Obj]) -> tuple[Allocation, list[str]]:
    """A controller's pass without Kubernetes: request, claim, pass again, settle, sync."""
    model = api.load(groups)
    b.groups(model.service_groups, key=lambda g: g.netbox)  # as the controller, every pass
    parsed = [p for s in services if (p := parse_service(s, default_class=False)) is not None]
    result = allocate(model.service_groups, parsed)
    outcome = b.fulfil(result.requests)
    if outcome.claims:
        result = allocate(model.service_groups, parsed, claims=outcome.claims)
    current = {s.ref: s.addresses for s in parsed}
    b.settle(current, {a.ref: a.addresses for a in result.assignments})
    holders: dict[IPAddress, list[ObjectRef]] = {}
    for a in result.assignments:
        for address in a.addresses:
            holders.setdefault(address, []).append(a.ref)
    done: list[str] = []
    if b.due(holders):
        group_of = {a.ref: a.group.name for a in result.assignments if a.group is not None}
        done = b.sync(model.service_groups, holders, group_of)
    failures = tuple(outcome.failures)
    return dataclasses.replace(result, failures=result.failures + failures), done


def written(services: list[Obj], result: Allocation) -> list[Obj]:
    from tests.test_ipam import applied

    return applied(services, result)


def test_a_claim_is_asked_once_and_given_again_until_written() -> None:
    ipam, clock = MemoryIpam(), Clock()
    groups = [nb_group()]
    b = broker_for(ipam, clock, api.load(groups).service_groups)
    services = [service("web")]
    result, _ = one_pass(b, groups, services)
    assert got(result, "web") == ["198.51.100.1"]
    # The write did not land: the next pass gets the same address, without a new record.
    again, _ = one_pass(b, groups, services)
    assert got(again, "web") == ["198.51.100.1"]
    assert list(ipam.objects) == [ip("198.51.100.1")]


def test_services_with_one_sharing_key_get_one_address() -> None:
    ipam, clock = MemoryIpam(), Clock()
    groups = [nb_group()]
    b = broker_for(ipam, clock, api.load(groups).service_groups)
    services = [
        service("dns-tcp", share="dns", ports=[("TCP", 53)]),
        service("dns-udp", share="dns", ports=[("UDP", 53)]),
    ]
    result, _ = one_pass(b, groups, services)
    assert got(result, "dns-tcp") == got(result, "dns-udp") == ["198.51.100.1"]
    assert len(ipam.objects) == 1


def test_an_ipam_that_is_down_leaves_existing_services_alone_and_backs_off() -> None:
    ipam, clock = MemoryIpam(), Clock()
    groups = [nb_group()]
    b = broker_for(ipam, clock, api.load(groups).service_groups)
    kept = service("kept", ingress=["198.51.100.1"], allocated_from="nb:198.51.100.0/29")
    ipam._add(ip("198.51.100.1"), Owner(namespace="default", name="kept"))
    one_pass(b, groups, [kept])
    ipam.down = True
    result, _ = one_pass(b, groups, [kept, service("new")])
    assert got(result, "kept") == ["198.51.100.1"] and got(result, "new") == []
    assert reasons(result, "new") == [Reason.IPAM_PENDING]
    assert "did not answer" in result.failures[0].message
    cond = b.condition("nb")
    assert cond is not None and cond[:2] == ("False", "Unreachable")
    calls = ipam.calls
    again, _ = one_pass(b, groups, [kept, service("new")])
    assert ipam.calls == calls, "asked again before the backoff"
    assert again.failures == result.failures, "the same words: one Event, not one per pass"
    assert b.retry_at is not None and b.retry_at <= clock.now + 1.2
    clock.now += 1.5
    ipam.down = False
    back, _ = one_pass(b, groups, [kept, service("new")])
    assert got(back, "new") == ["198.51.100.2"]
    assert b.condition("nb") is not None and b.condition("nb")[0] == "True"  # type: ignore[index]


def test_a_refusal_names_what_has_the_address() -> None:
    ipam, clock = MemoryIpam(), Clock()
    groups = [nb_group()]
    b = broker_for(ipam, clock, api.load(groups).service_groups)
    ipam._add(ip("198.51.100.5"), None, "'core router loopback'")
    result, _ = one_pass(b, groups, [service("web", addresses="198.51.100.5")])
    assert got(result, "web") == []
    assert reasons(result, "web") == [Reason.IPAM_REFUSED]
    assert "core router loopback" in result.failures[0].message


def test_records_of_gone_services_are_released_and_lost_ones_recorded_again() -> None:
    ipam, clock = MemoryIpam(), Clock()
    groups = [nb_group()]
    b = broker_for(ipam, clock, api.load(groups).service_groups)
    a = service("a")
    first, _ = one_pass(b, groups, [a, service("b")])
    services = written([a, service("b")], first)
    one_pass(b, groups, services)
    assert len(ipam.objects) == 2
    # b deleted (while the allocator was down, say): released at the next pass.
    _, done = one_pass(b, groups, services[:1])
    assert list(ipam.objects) == [ip("198.51.100.1")]
    assert any("release 198.51.100.2 (default/b)" in line for line in done)
    # a's record deleted by hand: recorded again at the next sync.
    ipam.objects.clear()
    clock.now += 61
    _, done = one_pass(b, groups, services[:1])
    assert [r.owner for r in ipam.objects.values()] == [Owner(namespace="default", name="a")]
    assert any("again" in line for line in done)


def test_an_address_recorded_for_something_else_is_drift_and_kept() -> None:
    ipam, clock = MemoryIpam(), Clock()
    groups = [nb_group()]
    b = broker_for(ipam, clock, api.load(groups).service_groups)
    svc = service("web", ingress=["198.51.100.3"], allocated_from="nb:198.51.100.0/29")
    ipam._add(ip("198.51.100.3"), None, "'printer'")
    result, _ = one_pass(b, groups, [svc])
    assert got(result, "web") == ["198.51.100.3"]
    assert [(d.ref.name, str(d.address)) for d in b.drift] == [("web", "198.51.100.3")]
    assert "printer" in b.drift[0].message
    cond = b.condition("nb")
    assert cond is not None and cond[:2] == ("False", "Drift")
    assert ipam.objects[ip("198.51.100.3")].shown == "'printer'", "never repaired"


def test_a_group_without_its_token_is_refused_with_the_secret_named() -> None:
    def factory(g: api.ServiceGroup) -> MemoryIpam:
        raise Refused("spec.ipam.netbox.tokenSecretRef: Secret netbox-token not found")

    b = Broker(factory)
    groups = [nb_group()]
    b.groups(api.load(groups).service_groups, key=lambda g: g.netbox)
    result, _ = one_pass(b, groups, [service("web")])
    assert reasons(result, "web") == [Reason.IPAM_REFUSED]
    assert "netbox-token" in result.failures[0].message
    assert b.condition("nb") == (
        "False",
        "Refused",
        "spec.ipam.netbox.tokenSecretRef: Secret netbox-token not found",
    )


def test_a_burst_is_asked_in_batches_for_a_budget_at_a_time() -> None:
    ipam, clock = MemoryIpam("198.51.100.0/24"), Clock()
    batch = ipam.claim_free

    def slow(family: Family, owners: Sequence[Owner]) -> dict[Owner, IPAddress]:
        clock.now += 1.5  # each answer takes a second and a half
        return batch(family, owners)

    ipam.claim_free = slow  # type: ignore[method-assign]
    groups = [nb_group(prefixes=["198.51.100.0/24"])]
    b = broker_for(ipam, clock, api.load(groups).service_groups)
    services = [service(f"s{i:03}", created=f"2026-01-01T00:{i // 60:02}:{i % 60:02}Z")
                for i in range(120)]  # fmt: skip
    result, _ = one_pass(b, groups, services)
    assert ipam.batches == 2, "50 Services a request, not one each"
    assert sum(1 for a in result.assignments if a.addresses) == 100
    assert b.retry_at == clock.now, "the budget spent: the pass writes, the next comes at once"
    assert reasons(result) == [], "the others are not failures: they are next"
    second, _ = one_pass(b, groups, services)
    assert sum(1 for a in second.assignments if a.addresses) == 120
    assert len({a.addresses for a in second.assignments}) == 120


def test_an_ipam_that_stays_down_is_asked_after_its_backoff_not_in_a_loop() -> None:
    ipam, clock = MemoryIpam(), Clock()
    groups = [nb_group()]
    b = broker_for(ipam, clock, api.load(groups).service_groups)
    one_pass(b, groups, [service("a")])  # a good sync
    clock.now += 61
    ipam.down = True
    one_pass(b, groups, [service("a"), service("b")])
    for _ in range(5):
        due = b.retry_at
        assert due is not None and due > clock.now, "a pass again at once: a busy loop"
        clock.now = due
        one_pass(b, groups, [service("a"), service("b")])
    refused = Broker(lambda g: ipam, clock=clock)
    refused.groups(api.load(groups).service_groups, key=lambda g: g.netbox)
    ipam.down = False

    def no(*_: Any) -> Sequence[Record]:
        raise Refused("the token may not list addresses")

    ipam.records = no  # type: ignore[method-assign]
    one_pass(refused, groups, [service("a")])
    due = refused.retry_at
    assert due is not None and due >= clock.now + 59, "a refused sync is tried a resync later"


def test_records_of_services_still_waiting_are_never_released() -> None:
    ipam, clock = MemoryIpam("198.51.100.0/24"), Clock()
    names = [f"s{i:03}" for i in range(120)]
    for n in names:  # an earlier leader recorded them, then stopped before writing
        ipam.claim(Family.IPV4, Owner(namespace="default", name=n), None)
    batch = ipam.claim_free

    def slow(family: Family, owners: Sequence[Owner]) -> dict[Owner, IPAddress]:
        clock.now += 1.5
        return batch(family, owners)

    ipam.claim_free = slow  # type: ignore[method-assign]
    groups = [nb_group(prefixes=["198.51.100.0/24"])]
    b = broker_for(ipam, clock, api.load(groups).service_groups)
    services = [service(n) for n in names]
    result, _ = one_pass(b, groups, services)
    assert sum(1 for a in result.assignments if a.addresses) == 100
    assert len(ipam.objects) == 120, "the 20 left for the next pass keep their records"
    second, _ = one_pass(b, groups, services)
    assert sorted(str(a.addresses[0]) for a in second.assignments) == sorted(
        str(r.address) for r in ipam.objects.values()
    )


def test_a_record_of_a_deleted_sharer_passes_to_the_service_that_keeps_the_address() -> None:
    ipam, clock = MemoryIpam(), Clock()
    groups = [nb_group()]
    b = broker_for(ipam, clock, api.load(groups).service_groups)
    tcp = service("dns-tcp", share="dns", ports=[("TCP", 53)])
    udp = service("dns-udp", share="dns", ports=[("UDP", 53)])
    first, _ = one_pass(b, groups, [tcp, udp])
    services = written([tcp, udp], first)
    assert [str(r.owner) for r in ipam.objects.values()] == ["default/dns-tcp"]
    _, done = one_pass(b, groups, services[1:])  # dns-tcp deleted
    assert [str(r.owner) for r in ipam.objects.values()] == ["default/dns-udp"]
    assert any("instead of default/dns-tcp" in line for line in done), done
    assert b.drift == ()


def test_services_sharing_a_requested_netbox_address_share_one_record() -> None:
    ipam, clock = MemoryIpam(), Clock()
    groups = [nb_group()]
    b = broker_for(ipam, clock, api.load(groups).service_groups)
    services = [
        service("dns-tcp", share="dns", ports=[("TCP", 53)], addresses="198.51.100.5"),
        service("dns-udp", share="dns", ports=[("UDP", 53)], addresses="198.51.100.5"),
    ]
    result, _ = one_pass(b, groups, services)
    assert got(result, "dns-tcp") == got(result, "dns-udp") == ["198.51.100.5"]
    assert reasons(result) == [] and len(ipam.objects) == 1
    # Written: a third Service asking for it joins the address its holders have.
    later = [*written(services, result), service("dns-x", share="dns", ports=[("TCP", 853)],
                                                  addresses="198.51.100.5")]  # fmt: skip
    again, _ = one_pass(b, groups, later)
    assert got(again, "dns-x") == ["198.51.100.5"] and len(ipam.objects) == 1
