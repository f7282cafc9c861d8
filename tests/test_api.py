"""The API boundary: converting ServiceGroup, Peer, NodeAgent, Node and Secret objects.

Covers what a user sees when they apply objects: valid objects become typed values
(ipaddress types, enums, documented defaults, the prefixes a pool may announce);
invalid ones are reported with the object, the exact field path and what would be
valid, every mistake of one object at once; label selectors; and the cross-object
checks of ``load()`` (overlapping pools, duplicates, missing or unusable Secrets,
Peers that carry nothing, two default groups), where an invalid object is skipped
and every valid one stays in the model.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbroute.model import api
from lbroute.model.agentconfig import LocalLease
from lbroute.model.api import (
    Announce,
    Bfd,
    Community,
    Family,
    IsisLevel,
    LargeCommunity,
    Mode,
    OspfNetworkType,
    Protocol,
    Router,
)
from lbroute.model.errors import InvalidObject, ObjectRef, Problem, Severity
from lbroute.model.secrets import SecretValue

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
NET = ipaddress.ip_network


# -- object builders ----------------------------------------------------------------------


def _obj(kind: str, spec: Any, name: str, namespace: str | None, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **meta}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": "lbroute.io/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}


def service_group(
    spec: Any, *, name: str = "web", namespace: str | None = "lbroute", **meta: Any
) -> dict[str, Any]:
    return _obj("ServiceGroup", spec, name, namespace, **meta)


def peer(spec: Any, *, name: str = "tor", namespace: str | None = "lbroute") -> dict[str, Any]:
    return _obj("Peer", spec, name, namespace)


def node_agent(
    spec: Any, *, name: str = "agent", namespace: str | None = "lbroute"
) -> dict[str, Any]:
    return _obj("NodeAgent", spec, name, namespace)


def node(
    name: str = "n1", *, labels: dict[str, str] | None = None, addresses: Any = ()
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "status": {"addresses": list(addresses)},
    }


def secret(
    *,
    name: str = "bgp-auth",
    namespace: str = "lbroute",
    data: dict[str, str] | None = None,
    string_data: dict[str, str] | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
    }
    if data is not None:
        obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    if string_data is not None:
        obj["stringData"] = string_data
    return obj


def pools(*items: dict[str, Any]) -> dict[str, Any]:
    return {"pools": list(items)}


BGP = {"address": "192.0.2.254", "asn": 65000}
OSPF: dict[str, Any] = {"interfaces": [{"name": "eth0"}]}
RIP: dict[str, Any] = {"interfaces": ["eth0"]}
ISIS: dict[str, Any] = {"area": "49.0001", "interfaces": [{"name": "eth0"}]}
POOL = {"cidr": "198.51.100.0/24"}


def parse(obj: dict[str, Any]) -> Any:
    return api.parse_object(obj)


def problems_of(obj: dict[str, Any]) -> tuple[Problem, ...]:
    with pytest.raises(InvalidObject) as caught:
        api.parse_object(obj)
    return caught.value.problems


def at(problems: tuple[Problem, ...] | list[Problem], path: str) -> list[Problem]:
    return [p for p in problems if p.path == path]


# -- ServiceGroup: valid ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        pytest.param(
            {"cidr": "192.0.2.0/24"},
            {"family": Family.IPV4, "cidr": NET("192.0.2.0/24"), "first": V4("192.0.2.0"),
             "last": V4("192.0.2.255"), "subnet": None, "aggregation": 24},
            id="cidr-aggregates-to-its-own-mask",
        ),
        pytest.param(
            {"cidr": "192.0.2.64/26", "subnet": "192.0.2.0/24"},
            {"family": Family.IPV4, "cidr": NET("192.0.2.64/26"), "first": V4("192.0.2.64"),
             "last": V4("192.0.2.127"), "subnet": NET("192.0.2.0/24"), "aggregation": 24},
            id="cidr-with-subnet-aggregates-to-subnet-mask",
        ),
        pytest.param(
            {"cidr": "192.0.2.0/24", "aggregation": "/28"},
            {"family": Family.IPV4, "cidr": NET("192.0.2.0/24"), "first": V4("192.0.2.0"),
             "last": V4("192.0.2.255"), "subnet": None, "aggregation": 28},
            id="explicit-aggregation",
        ),
        pytest.param(
            {"cidr": "192.0.2.0/24", "aggregation": 26},
            {"family": Family.IPV4, "cidr": NET("192.0.2.0/24"), "first": V4("192.0.2.0"),
             "last": V4("192.0.2.255"), "subnet": None, "aggregation": 26},
            id="aggregation-as-a-number",
        ),
        pytest.param(
            {"range": "192.0.2.10-192.0.2.20"},
            {"family": Family.IPV4, "cidr": None, "first": V4("192.0.2.10"),
             "last": V4("192.0.2.20"), "subnet": None, "aggregation": 32},
            id="range-without-subnet-is-host-routes",
        ),
        pytest.param(
            {"range": "192.0.2.10 - 192.0.2.20", "subnet": "192.0.2.0/24",
             "aggregation": "default"},
            {"family": Family.IPV4, "cidr": None, "first": V4("192.0.2.10"),
             "last": V4("192.0.2.20"), "subnet": NET("192.0.2.0/24"), "aggregation": 24},
            id="range-with-subnet-aggregates-to-subnet-mask",
        ),
        pytest.param(
            {"range": "2001:db8::10-2001:db8::20", "subnet": "2001:db8::/64",
             "aggregation": "/120"},
            {"family": Family.IPV6, "cidr": None, "first": V6("2001:db8::10"),
             "last": V6("2001:db8::20"), "subnet": NET("2001:db8::/64"), "aggregation": 120},
            id="ipv6-range",
        ),
        pytest.param(
            {"cidr": "2001:db8:1::/64"},
            {"family": Family.IPV6, "cidr": NET("2001:db8:1::/64"), "first": V6("2001:db8:1::"),
             "last": V6("2001:db8:1::ffff:ffff:ffff:ffff"), "subnet": None, "aggregation": 64},
            id="ipv6-cidr",
        ),
    ],
)  # fmt: skip
def test_pool_is_parsed_into_typed_values(pool: dict[str, Any], expected: dict[str, Any]) -> None:
    (parsed,) = parse(service_group(pools(pool))).pools
    assert {k: getattr(parsed, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("pool", "announced"),
    [
        pytest.param({"cidr": "192.0.2.0/24"}, [("192.0.2.0/24", 24, 32)], id="cidr"),
        pytest.param(
            {"cidr": "192.0.2.0/24", "aggregation": "/28"}, [("192.0.2.0/24", 28, 32)],
            id="cidr-finer-aggregation",
        ),
        pytest.param(
            {"cidr": "192.0.2.64/26", "subnet": "192.0.2.0/24"}, [("192.0.2.0/24", 24, 32)],
            id="cidr-in-subnet",
        ),
        pytest.param(
            {"range": "192.0.2.10-192.0.2.20", "subnet": "192.0.2.0/24"},
            [("192.0.2.0/24", 24, 32)],
            id="range-in-subnet",
        ),
        pytest.param(
            {"range": "192.0.2.10-192.0.2.20"},
            [("192.0.2.10/31", 31, 32), ("192.0.2.12/30", 30, 32), ("192.0.2.16/30", 30, 32),
             ("192.0.2.20/32", 32, 32)],
            id="range-without-subnet-only-its-own-addresses",
        ),
        pytest.param({"cidr": "2001:db8::/64"}, [("2001:db8::/64", 64, 128)], id="ipv6-cidr"),
    ],
)  # fmt: skip
def test_pool_export_prefixes(pool: dict[str, Any], announced: list[tuple[str, int, int]]) -> None:
    (parsed,) = parse(service_group(pools(pool))).pools
    assert [(str(e.network), e.ge, e.le) for e in parsed.export_prefixes] == announced


def test_group_export_prefixes_per_family() -> None:
    group = parse(
        service_group(
            pools({"cidr": "2001:db8::/64"}, {"cidr": "192.0.2.0/24"}, {"cidr": "198.51.100.0/24"})
        )
    )
    assert group.families() == (Family.IPV4, Family.IPV6)
    assert [str(e.network) for e in group.export_prefixes(Family.IPV4)] == [
        "192.0.2.0/24",
        "198.51.100.0/24",
    ]
    assert [str(e.network) for e in group.export_prefixes(Family.IPV6)] == ["2001:db8::/64"]


def test_every_pool_aggregate_is_announced_when_pools_share_a_subnet() -> None:
    group = parse(
        service_group(
            pools(
                {"range": "192.0.2.10-192.0.2.20", "subnet": "192.0.2.0/24", "aggregation": "/24"},
                {
                    "range": "192.0.2.100-192.0.2.120",
                    "subnet": "192.0.2.0/24",
                    "aggregation": "/28",
                },
            )
        )
    )
    allowed = group.export_prefixes(Family.IPV4)
    assert [(str(e.network), e.ge, e.le) for e in allowed] == [
        ("192.0.2.0/24", 24, 32),
        ("192.0.2.0/24", 28, 32),
    ]
    for route in ("192.0.2.0/24", "192.0.2.96/28", "192.0.2.15/32"):
        net = NET(route)
        assert any(net.subnet_of(e.network) and e.ge <= net.prefixlen <= e.le for e in allowed), (
            route
        )


def test_service_group_defaults() -> None:
    group = parse(service_group(pools(POOL), namespace=None))
    assert group.ref == ObjectRef(kind="ServiceGroup", namespace="default", name="web")
    assert group.announce is Announce.ROUTED
    assert group.default is False
    assert group.protocols is None
    assert group.node_selector.matches({}) and group.node_selector.matches({"any": "label"})
    assert group.bgp == api.BgpPolicy()
    assert (group.ospf, group.isis, group.rip) == (
        api.OspfPolicy(),
        api.IsisPolicy(),
        api.RipPolicy(),
    )


def test_service_group_with_every_field() -> None:
    group = parse(
        service_group(
            {
                "pools": [POOL],
                "announce": "local",
                "default": True,
                "protocols": ["ospf", "bgp", "bgp"],
                "nodeSelector": {"matchLabels": {"rack": "a"}},
                "bgp": {
                    "communities": ["65000:200", "65000:100", "65000:100"],
                    "largeCommunities": ["4200000000:1:2"],
                    "localPref": 200,
                    "med": 10,
                    "asPathPrepend": 2,
                },
                "ospf": {"metric": 20, "metricType": 1, "tag": 7},
                "isis": {"metric": 30, "level": "level-1"},
                "rip": {"metric": 3},
            },
            labels={"tier": "web"},
        )
    )
    assert group.labels == (("tier", "web"),)
    assert group.announce is Announce.LOCAL
    assert group.default is True
    assert group.protocols == frozenset({Protocol.BGP, Protocol.OSPF})
    assert group.node_selector.matches({"rack": "a"})
    assert not group.node_selector.matches({"rack": "b"})
    assert group.bgp == api.BgpPolicy(
        communities=(Community(asn=65000, value=100), Community(asn=65000, value=200)),
        large_communities=(LargeCommunity(global_admin=4200000000, data1=1, data2=2),),
        local_pref=200,
        med=10,
        prepend=2,
    )
    assert group.ospf == api.OspfPolicy(metric=20, metric_type=1, tag=7)
    assert group.isis == api.IsisPolicy(metric=30, level=IsisLevel.LEVEL_1)
    assert group.rip == api.RipPolicy(metric=3)


# -- invalid objects: one mistake, its path and what would be valid -------------------------

INVALID = [
    # ServiceGroup
    ("sg-no-pools", service_group({}), "spec.pools", "at least one pool"),
    ("sg-no-spec", service_group(None), "spec", "is required"),
    ("sg-pool-host-bits", service_group(pools(POOL, {"cidr": "192.0.2.1/24"})),
     "spec.pools[1].cidr", "192.0.2.0/24 with no host bits set"),
    ("sg-pool-not-a-network", service_group(pools({"cidr": "192.0.2.0"})),
     "spec.pools[0].cidr", "a network such as 192.0.2.0/24"),
    ("sg-pool-cidr-and-range",
     service_group(pools({"cidr": "192.0.2.0/24", "range": "192.0.2.1-192.0.2.2"})),
     "spec.pools[0]", "exactly one of cidr"),
    ("sg-pool-empty", service_group(pools({})), "spec.pools[0]", "exactly one of cidr"),
    ("sg-range-reversed", service_group(pools({"range": "192.0.2.9-192.0.2.1"})),
     "spec.pools[0].range", "the first address is after the last"),
    ("sg-range-two-families", service_group(pools({"range": "192.0.2.1-2001:db8::1"})),
     "spec.pools[0].range", "both ends must be of one family"),
    ("sg-range-garbage", service_group(pools({"range": "192.0.2.1"})),
     "spec.pools[0].range", "a range such as 192.0.2.10-192.0.2.20"),
    ("sg-range-zone-id", service_group(pools({"range": "fe80::1%eth0-fe80::9"})),
     "spec.pools[0].range", "a range such as 192.0.2.10-192.0.2.20"),
    ("sg-cidr-zone-id", service_group(pools({"cidr": "fe80::%eth0/64"})),
     "spec.pools[0].cidr", "a network such as 192.0.2.0/24"),
    ("sg-subnet-zone-id",
     service_group(pools({"range": "fe80::1-fe80::9", "subnet": "fe80::%eth0/64"})),
     "spec.pools[0].subnet", "a network such as 192.0.2.0/24"),
    ("sg-cidr-non-ascii-length", service_group(pools({"cidr": "192.0.2.0/\u0662\u0664"})),
     "spec.pools[0].cidr", "a network such as 192.0.2.0/24"),
    ("sg-subnet-too-small",
     service_group(pools({"cidr": "192.0.2.0/24", "subnet": "192.0.2.0/25"})),
     "spec.pools[0].subnet", "does not contain the whole pool"),
    ("sg-subnet-other-family",
     service_group(pools({"cidr": "192.0.2.0/24", "subnet": "2001:db8::/64"})),
     "spec.pools[0].subnet", "not of the pool's family"),
    ("sg-range-aggregation-needs-subnet",
     service_group(pools({"range": "192.0.2.10-192.0.2.20", "aggregation": "/24"})),
     "spec.pools[0].aggregation", "set subnet to aggregate a range"),
    ("sg-aggregation-wider-than-cidr",
     service_group(pools({"cidr": "192.0.2.0/26", "aggregation": "/24"})),
     "spec.pools[0].aggregation", "from /26 to /32"),
    ("sg-aggregation-non-ascii-digits",
     service_group(pools({"cidr": "192.0.2.0/24", "aggregation": "/\uff12\uff18"})),
     "spec.pools[0].aggregation", "from /24 to /32"),
    ("sg-aggregation-too-long", service_group(pools({"cidr": "2001:db8::/64", "aggregation": 129})),
     "spec.pools[0].aggregation", "from /64 to /128"),
    ("sg-pools-overlap",
     service_group(pools({"cidr": "192.0.2.0/24"}, {"range": "192.0.2.5-192.0.2.6"})),
     "spec.pools", "overlap"),
    ("sg-pools-not-a-list", service_group({"pools": "192.0.2.0/24"}), "spec.pools",
     "must be a list"),
    ("sg-protocol-unknown", service_group({**pools(POOL), "protocols": ["bgp", "eigrp"]}),
     "spec.protocols[1]", "one of bgp, ospf, rip, isis"),
    ("sg-announce", service_group({**pools(POOL), "announce": "bgp"}), "spec.announce",
     "one of routed, local"),
    ("sg-default-not-bool", service_group({**pools(POOL), "default": "yes"}), "spec.default",
     "true or false"),
    ("sg-community", service_group({**pools(POOL), "bgp": {"communities": ["65536:1"]}}),
     "spec.bgp.communities[0]", "ASN:VALUE, each 0-65535"),
    ("sg-community-non-ascii-digits",
     service_group({**pools(POOL), "bgp": {"communities": ["\u0666\u0665\u0660\u0660\u0660:1"]}}),
     "spec.bgp.communities[0]", "ASN:VALUE, each 0-65535"),
    ("sg-large-community",
     service_group({**pools(POOL), "bgp": {"largeCommunities": ["1:2"]}}),
     "spec.bgp.largeCommunities[0]", "A:B:C"),
    ("sg-large-community-reserved-asn",
     service_group({**pools(POOL), "bgp": {"largeCommunities": ["4294967295:1:7"]}}),
     "spec.bgp.largeCommunities[0]", "AS 4294967295 is reserved (RFC 7300)"),
    ("sg-class-large-community-reserved-asn",
     service_group({**pools(POOL), "bgp": {"classes": {"gold": {
         "largeCommunities": ["4294967295:0:0"]}}}}),
     "spec.bgp.classes.gold.largeCommunities[0]", "A not 4294967295"),
    ("sg-large-community-non-ascii-digits",
     service_group({**pools(POOL), "bgp": {"largeCommunities": ["\uff11:2:3"]}}),
     "spec.bgp.largeCommunities[0]", "A:B:C"),
    ("sg-prepend", service_group({**pools(POOL), "bgp": {"asPathPrepend": 11}}),
     "spec.bgp.asPathPrepend", "0 to 10"),
    ("sg-weight", service_group({**pools(POOL), "bgp": {"weightByEndpoints": "yes"}}),
     "spec.bgp.weightByEndpoints", "true or false"),
    ("sg-ospf-metric-type", service_group({**pools(POOL), "ospf": {"metricType": 3}}),
     "spec.ospf.metricType", "one of 1, 2"),
    ("sg-isis-level", service_group({**pools(POOL), "isis": {"level": "level-3"}}),
     "spec.isis.level", "level-1, level-2, level-1-2"),
    ("sg-rip-metric", service_group({**pools(POOL), "rip": {"metric": 16}}), "spec.rip.metric",
     "1 to 15"),
    ("sg-unknown-field", service_group({**pools(POOL), "pool": []}), "spec.pool",
     "unknown field; valid fields here: announce, bgp, default"),
    ("sg-unknown-pool-field", service_group(pools({"cdir": "192.0.2.0/24"})),
     "spec.pools[0].cdir",
     "valid fields here: aggregation, allowNetworkAndBroadcast, cidr, range, subnet"),
    ("sg-avoid-buggy-ips-is-gone", service_group(pools({**POOL, "avoidBuggyIPs": True})),
     "spec.pools[0].avoidBuggyIPs",
     "unknown field; valid fields here: aggregation, allowNetworkAndBroadcast, cidr"),
    ("sg-unknown-policy-field", service_group({**pools(POOL), "bgp": {"localpref": 1}}),
     "spec.bgp.localpref", "localPref"),
    ("sg-bad-name", service_group(pools(POOL), name="Web_1"), "metadata.name",
     "a lowercase DNS name"),
    # Peer
    ("peer-no-protocol", peer({}), "spec", "exactly one of bgp, ospf, rip, isis"),
    ("peer-two-protocols", peer({"bgp": BGP, "ospf": OSPF}), "spec", "(found bgp, ospf)"),
    ("peer-unknown-protocol", peer({"eigrp": {}}), "spec.eigrp", "unknown field"),
    ("bgp-bad-address", peer({"bgp": {**BGP, "address": "192.0.2.300"}}), "spec.bgp.address",
     "an IPv4 or IPv6 address"),
    ("bgp-address-with-space", peer({"bgp": {**BGP, "address": " 192.0.2.1"}}),
     "spec.bgp.address", "an IPv4 or IPv6 address"),
    ("bgp-address-zone-id", peer({"bgp": {**BGP, "address": "fe80::1%eth0"}}),
     "spec.bgp.address", "an IPv4 or IPv6 address"),
    ("bgp-address-non-ascii-digits", peer({"bgp": {**BGP, "address": "\uff11\uff19\uff12.0.2.1"}}),
     "spec.bgp.address", "an IPv4 or IPv6 address"),
    ("bgp-no-neighbor", peer({"bgp": {"asn": 65000}}), "spec.bgp",
     "exactly one of address (the neighbor's IP) or interface"),
    ("bgp-address-and-interface", peer({"bgp": {**BGP, "interface": "eth0"}}), "spec.bgp",
     "exactly one of address"),
    ("bgp-no-asn", peer({"bgp": {"address": "192.0.2.254"}}), "spec.bgp.asn",
     "is required: an integer from 1 to 4294967295"),
    ("bgp-asn-zero", peer({"bgp": {**BGP, "asn": 0}}), "spec.bgp.asn", "expected 1 to 4294967295"),
    ("bgp-asn-string", peer({"bgp": {**BGP, "asn": "65000"}}), "spec.bgp.asn",
     "must be an integer"),
    ("bgp-port", peer({"bgp": {**BGP, "port": 70000}}), "spec.bgp.port", "1 to 65535"),
    ("bgp-hold-time", peer({"bgp": {**BGP, "holdTime": 2}}), "spec.bgp.holdTime",
     "0 (no keepalives) or 3 to 65535"),
    ("bgp-keepalive-not-below-hold", peer({"bgp": {**BGP, "holdTime": 9, "keepaliveTime": 9}}),
     "spec.bgp.keepaliveTime", "holdTime (9)"),
    ("bgp-source-other-family", peer({"bgp": {**BGP, "sourceAddress": "2001:db8::1"}}),
     "spec.bgp.sourceAddress", "not of the same family"),
    ("bgp-interface-name", peer({"bgp": {"interface": "eth0;"}}), "spec.bgp.interface",
     "an interface name: 1 to 15 letters"),
    ("bgp-families", peer({"bgp": {**BGP, "families": ["ipv4", "ipv5"]}}),
     "spec.bgp.families[1]", "ipv4 or ipv6"),
    ("bgp-families-empty", peer({"bgp": {**BGP, "families": []}}), "spec.bgp.families",
     "at least one of ipv4, ipv6"),
    ("bgp-password-ref-without-name", peer({"bgp": {**BGP, "passwordSecretRef": {"key": "pw"}}}),
     "spec.bgp.passwordSecretRef.name", "is required"),
    ("bgp-bfd-timer", peer({"bgp": {**BGP, "bfd": {"minRx": 5}}}), "spec.bgp.bfd.minRx",
     "10 to 60000 ms"),
    ("bgp-bfd-true", peer({"bgp": {**BGP, "bfd": True}}), "spec.bgp.bfd",
     "must be an object such as {} or {minRx: 300, minTx: 300}, not True"),
    ("bgp-bfd-false", peer({"bgp": {**BGP, "bfd": False}}), "spec.bgp.bfd",
     "must be an object such as {}"),
    ("bgp-bfd-multiplier-1", peer({"bgp": {**BGP, "bfd": {"multiplier": 1}}}),
     "spec.bgp.bfd.multiplier", "expected 2 to 255"),
    ("bgp-bfd-multiplier-256", peer({"bgp": {**BGP, "bfd": {"multiplier": 256}}}),
     "spec.bgp.bfd.multiplier", "expected 2 to 255"),
    ("bgp-bfd-enabled-not-bool", peer({"bgp": {**BGP, "bfd": {"enabled": "yes"}}}),
     "spec.bgp.bfd.enabled", "true or false"),
    ("bgp-bfd-unknown-field", peer({"bgp": {**BGP, "bfd": {"interval": 100}}}),
     "spec.bgp.bfd.interval", "valid fields here: enabled, minRx, minTx, multiplier"),
    ("ospf-bfd-true", peer({"ospf": {**OSPF, "bfd": True}}), "spec.ospf.bfd",
     "must be an object such as {}"),
    ("isis-bfd-true", peer({"isis": {**ISIS, "bfd": True}}), "spec.isis.bfd",
     "must be an object such as {}"),
    ("bgp-unknown-field", peer({"bgp": {**BGP, "remoteAS": 1}}), "spec.bgp.remoteAS",
     "valid fields here: address, asn"),
    ("ospf-area", peer({"ospf": {**OSPF, "area": "backbone"}}), "spec.ospf.area",
     "a number or dotted quad such as 0.0.0.0"),
    ("ospf-area-non-ascii-digits", peer({"ospf": {**OSPF, "area": "\u0661\u0660"}}),
     "spec.ospf.area", "a number or dotted quad such as 0.0.0.0"),
    ("ospf-area-non-ascii-dotted-quad", peer({"ospf": {**OSPF, "area": "0.0.0.\u0661"}}),
     "spec.ospf.area", "a number or dotted quad such as 0.0.0.0"),
    ("ospf-interface-as-string", peer({"ospf": {"interfaces": ["eth0"]}}),
     "spec.ospf.interfaces[0]", "must be an object such as {name: eth0}, not 'eth0'"),
    ("ospf-no-interfaces", peer({"ospf": {"area": 0}}), "spec.ospf.interfaces",
     "is required: at least one interface"),
    ("ospf-empty-interfaces", peer({"ospf": {"interfaces": []}}), "spec.ospf.interfaces",
     "is required: at least one interface"),
    ("ospf-interface-twice", peer({"ospf": {"interfaces": [{"name": "eth0"}, {"name": "eth0"}]}}),
     "spec.ospf.interfaces", "interface eth0 is listed more than once"),
    ("ospf-interface-name", peer({"ospf": {"interfaces": [{"name": "eth0"}, {"name": "eth 1"}]}}),
     "spec.ospf.interfaces[1].name", "an interface name"),
    ("ospf-interface-without-name", peer({"ospf": {"interfaces": [{"cost": 10}]}}),
     "spec.ospf.interfaces[0].name", "is required: an interface name"),
    ("ospf-cost", peer({"ospf": {**OSPF, "cost": 0}}), "spec.ospf.cost", "1 to 65535"),
    ("ospf-interface-cost", peer({"ospf": {"interfaces": [{"name": "eth0", "cost": 0}]}}),
     "spec.ospf.interfaces[0].cost", "1 to 65535"),
    ("ospf-hello-interval", peer({"ospf": {**OSPF, "helloInterval": "10.5s"}}),
     "spec.ospf.helloInterval", "is not a whole number of seconds; expected whole seconds"),
    ("ospf-peer-dead-not-above-hello",
     peer({"ospf": {**OSPF, "helloInterval": 10, "deadInterval": 10}}),
     "spec.ospf.deadInterval", "greater than helloInterval (10)"),
    ("ospf-network-type", peer({"ospf": {"interfaces": [{"name": "eth0", "networkType": "nbma"}]}}),
     "spec.ospf.interfaces[0].networkType", "broadcast, point-to-point, non-broadcast"),
    ("ospf-dead-not-above-hello",
     peer({"ospf": {"interfaces": [{"name": "eth0", "helloInterval": 10, "deadInterval": 10}]}}),
     "spec.ospf.interfaces[0].deadInterval", "greater than helloInterval (10)"),
    ("ospf-interface-unknown-field",
     peer({"ospf": {"interfaces": [{"name": "eth0", "metric": 1}]}}),
     "spec.ospf.interfaces[0].metric", "valid fields here: cost, deadInterval"),
    ("rip-interface-as-object", peer({"rip": {"interfaces": [{"name": "eth0"}]}}),
     "spec.rip.interfaces[0]", "must be an interface name such as eth0, not {'name': 'eth0'}"),
    ("rip-interface-name", peer({"rip": {"interfaces": ["eth0", "eth 1"]}}),
     "spec.rip.interfaces[1]", "an interface name: 1 to 15 letters"),
    ("rip-interface-twice", peer({"rip": {"interfaces": ["eth0", "eth0"]}}),
     "spec.rip.interfaces", "interface eth0 is listed more than once"),
    ("rip-no-interfaces", peer({"rip": {"version": 2}}), "spec.rip.interfaces",
     "is required: at least one interface"),
    ("rip-version", peer({"rip": {**RIP, "version": 3}}), "spec.rip.version", "one of 1, 2"),
    ("rip-timers-order", peer({"rip": {**RIP, "timers": {"update": 30, "timeout": 30,
                                                            "garbage": 120}}}),
     "spec.rip.timers.timeout", "greater than update (30)"),
    ("rip-timers-incomplete", peer({"rip": {**RIP, "timers": {"update": 30, "timeout": 180}}}),
     "spec.rip.timers.garbage", "is required"),
    ("rip-v1-auth", peer({"rip": {**RIP, "version": 1, "authSecretRef": {"name": "rip-auth"}}}),
     "spec.rip.authSecretRef", "use version 2"),
    ("isis-area", peer({"isis": {**ISIS, "area": "49.1"}}), "spec.isis.area", "e.g. 49.0001"),
    ("isis-area-non-ascii-digits", peer({"isis": {**ISIS, "area": "\uff14\uff19.0001"}}),
     "spec.isis.area", "e.g. 49.0001"),
    ("isis-interface-as-string", peer({"isis": {**ISIS, "interfaces": ["eth0"]}}),
     "spec.isis.interfaces[0]", "must be an object such as {name: eth0}, not 'eth0'"),
    ("isis-no-area", peer({"isis": {"interfaces": [{"name": "eth0"}]}}), "spec.isis.area",
     "is required"),
    ("isis-no-interfaces", peer({"isis": {"area": "49.0001"}}), "spec.isis.interfaces",
     "is required: at least one interface"),
    ("isis-level", peer({"isis": {**ISIS, "level": "level-3"}}), "spec.isis.level",
     "level-1, level-2, level-1-2"),
    ("isis-interface-metric",
     peer({"isis": {**ISIS, "interfaces": [{"name": "eth0", "metric": 0}]}}),
     "spec.isis.interfaces[0].metric", "1 to 16777215"),
    ("isis-network-type",
     peer({"isis": {**ISIS, "interfaces": [{"name": "eth0", "networkType": "nbma"}]}}),
     "spec.isis.interfaces[0].networkType", "broadcast, point-to-point"),
    # NodeAgent
    ("agent-router", node_agent({"router": "quagga"}), "spec.router", "one of bird, frr"),
    ("agent-mode", node_agent({"mode": "owned"}), "spec.mode", "one of managed, include"),
    ("agent-router-id-v6", node_agent({"routerID": "2001:db8::1"}), "spec.routerID",
     "an IPv4 address such as 10.0.0.1"),
    ("agent-router-id-integer", node_agent({"routerID": 167772161}), "spec.routerID",
     "an IPv4 address such as 10.0.0.1"),
    ("agent-router-id-zone-id", node_agent({"routerID": "10.0.0.1%eth0"}), "spec.routerID",
     "an IPv4 address such as 10.0.0.1"),
    ("agent-local-asn", node_agent({"localASN": 0}), "spec.localASN", "1 to 4294967295"),
    ("agent-interface", node_agent({"interface": "kube lb0"}), "spec.interface",
     "an interface name"),
    ("agent-local-interface", node_agent({"localInterface": "eth0;"}), "spec.localInterface",
     "an interface name"),
    ("agent-local-interface-too-long", node_agent({"localInterface": "a" * 16}),
     "spec.localInterface", "1 to 15 of letters"),
    ("agent-local-interface-number", node_agent({"localInterface": 7}), "spec.localInterface",
     "must be a string or a non-empty list of strings: 'default', an interface name"),
    ("agent-local-interface-empty-list", node_agent({"localInterface": []}),
     "spec.localInterface", "a non-empty list"),
    ("agent-local-interface-object", node_agent({"localInterface": {"name": "eth0"}}),
     "spec.localInterface", "must be a string or a non-empty list"),
    ("agent-local-interface-duplicate", node_agent({"localInterface": ["eth0", "eth1", "eth0"]}),
     "spec.localInterface[2]", "'eth0' is listed twice"),
    ("agent-local-interface-bad-pattern", node_agent({"localInterface": ["eth0", "eth/*"]}),
     "spec.localInterface[1]", "'eth/*' is not valid; expected 'default', an interface name, "
     "or an fnmatch pattern such as 'eth*'"),
    ("agent-local-interface-item-type", node_agent({"localInterface": ["eth0", ["eth1"]]}),
     "spec.localInterface[1]", "is not valid; expected 'default'"),
    ("agent-local-lease-renew-over-half",
     node_agent({"localLease": {"durationSeconds": 4, "renewSeconds": 2.5}}),
     "spec.localLease.renewSeconds",
     "2.5 is more than half of durationSeconds 4: one late renewal would make the node look "
     "dead; expected at most half of durationSeconds"),
    ("agent-local-lease-renew-over-half-of-default",
     node_agent({"localLease": {"renewSeconds": 2}}),
     "spec.localLease.renewSeconds", "more than half of durationSeconds 2"),
    ("agent-local-lease-duration-low", node_agent({"localLease": {"durationSeconds": 0.5}}),
     "spec.localLease.durationSeconds", "0.5 is out of range; expected 1 to 300 seconds"),
    ("agent-local-lease-duration-high", node_agent({"localLease": {"durationSeconds": 301}}),
     "spec.localLease.durationSeconds", "301 is out of range; expected 1 to 300 seconds"),
    ("agent-local-lease-renew-low", node_agent({"localLease": {"renewSeconds": 0.05}}),
     "spec.localLease.renewSeconds", "0.05 is out of range; expected 0.1 to 60 seconds"),
    ("agent-local-lease-renew-high",
     node_agent({"localLease": {"durationSeconds": 300, "renewSeconds": 61}}),
     "spec.localLease.renewSeconds", "61 is out of range; expected 0.1 to 60 seconds"),
    ("agent-local-lease-huge", node_agent({"localLease": {"durationSeconds": 10**400}}),
     "spec.localLease.durationSeconds", "a number of seconds from 1 to 300"),
    ("agent-local-lease-string", node_agent({"localLease": {"durationSeconds": "10s"}}),
     "spec.localLease.durationSeconds", "a number of seconds from 1 to 300"),
    ("agent-local-lease-boolean", node_agent({"localLease": {"renewSeconds": True}}),
     "spec.localLease.renewSeconds", "a number of seconds from 0.1 to 60"),
    ("agent-local-lease-unknown-key", node_agent({"localLease": {"duration": 10}}),
     "spec.localLease.duration",
     "unknown field; valid fields here: durationSeconds, renewSeconds"),
    ("agent-local-lease-not-object", node_agent({"localLease": 10}), "spec.localLease",
     "must be an object"),
    ("agent-templates-relative", node_agent({"templatesDir": "templates"}), "spec.templatesDir",
     "an absolute path"),
    ("agent-include-needs-path", node_agent({"mode": "include"}), "spec.includePath",
     "required with mode include"),
    ("agent-reload-command", node_agent({"reloadCommand": ["birdc", "configure; reboot"]}),
     "spec.reloadCommand[1]", "one argument of letters, digits"),
    ("agent-fast-convergence", node_agent({"fastConvergence": "on"}), "spec.fastConvergence",
     "true or false"),
    ("agent-unknown-field", node_agent({"routerId": "10.0.0.1"}), "spec.routerId",
     "valid fields here: configPath, drainMED, drainOnCordon, drainPrepend, drainSeconds, "
     "fastConvergence"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("obj", "path", "valid"), [pytest.param(o, p, v, id=i) for i, o, p, v in INVALID]
)
def test_invalid_field_is_reported_with_its_path(
    obj: dict[str, Any], path: str, valid: str
) -> None:
    problems = problems_of(obj)
    meta = obj["metadata"]
    ref = ObjectRef(kind=obj["kind"], namespace=meta.get("namespace", "default"), name=meta["name"])
    assert [p.path for p in problems if p.path == path] == [path], [str(p) for p in problems]
    (problem,) = at(problems, path)
    assert problem.severity is Severity.ERROR
    assert problem.ref == ref
    assert valid in problem.message
    assert str(problem).startswith(f"error: {obj['kind']} {ref.namespace}/{ref.name}: {path}: ")


def test_invalid_node_address_is_reported() -> None:
    problems = problems_of(node("n1", addresses=[{"type": "InternalIP", "address": "10.0.0.300"}]))
    assert [str(p) for p in problems] == [
        "error: Node n1: status.addresses[0].address: '10.0.0.300' is not valid; "
        "expected an IPv4 or IPv6 address such as 192.0.2.1"
    ]


def test_every_mistake_of_one_object_is_reported_at_once() -> None:
    problems = problems_of(
        service_group(
            {
                "pools": [POOL, {"cidr": "nope"}, {"range": "192.0.2.9-192.0.2.1"}],
                "protocols": ["bgp", "eigrp"],
                "announce": "sometimes",
                "colour": "blue",
            },
            name="Bad_Name",
        )
    )
    assert sorted(p.path for p in problems) == [
        "metadata.name",
        "spec.announce",
        "spec.colour",
        "spec.pools[1].cidr",
        "spec.pools[2].range",
        "spec.protocols[1]",
    ]
    assert all(p.severity is Severity.ERROR for p in problems)


def test_invalid_object_message_lists_every_problem() -> None:
    with pytest.raises(InvalidObject) as caught:
        parse(peer({"bgp": {"address": "nope", "asn": 0, "port": 0}}))
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[2] for line in lines] == [
        "spec.bgp.address",
        "spec.bgp.asn",
        "spec.bgp.port",
    ]
    assert all(line.startswith("error: Peer lbroute/tor: ") for line in lines)


def test_unserved_api_version_is_reported() -> None:
    obj = {**peer({"bgp": BGP}), "apiVersion": "lbroute.io/v1beta1"}
    (problem,) = problems_of(obj)
    assert problem.path == "apiVersion"
    assert "use lbroute.io/v1alpha1" in problem.message


def test_unserved_api_version_names_the_namespace() -> None:
    obj = {**peer({"bgp": BGP}), "apiVersion": "lbroute.io/v1beta1"}
    (problem,) = problems_of(obj)
    assert problem.ref == ObjectRef(kind="Peer", namespace="lbroute", name="tor")


@pytest.mark.parametrize(
    ("ospf", "path"),
    [
        ({"cost": 0}, "spec.ospf.cost"),
        ({"networkType": "nbma"}, "spec.ospf.networkType"),
        ({"helloInterval": 0}, "spec.ospf.helloInterval"),
        ({"deadInterval": "40 s"}, "spec.ospf.deadInterval"),
    ],
    ids=["cost", "network-type", "hello-interval", "dead-interval"],
)
def test_invalid_ospf_default_is_reported_once_where_it_was_written(
    ospf: dict[str, Any], path: str
) -> None:
    interfaces = [{"name": "eth0"}, {"name": "eth1"}, {"name": "eth2", "cost": 5}]
    problems = problems_of(peer({"ospf": {**ospf, "interfaces": interfaces}}))
    assert [p.path for p in problems] == [path]


def test_invalid_ospf_interface_override_is_reported_on_that_interface() -> None:
    interfaces = [{"name": "eth0"}, {"name": "eth1", "cost": 0, "helloInterval": 0}]
    problems = problems_of(peer({"ospf": {"cost": 10, "interfaces": interfaces}}))
    assert sorted(p.path for p in problems) == [
        "spec.ospf.interfaces[1].cost",
        "spec.ospf.interfaces[1].helloInterval",
    ]


def test_inconsistent_ospf_peer_timers_are_reported_once() -> None:
    interfaces = [{"name": "eth0"}, {"name": "eth1"}]
    spec = {"helloInterval": 10, "deadInterval": 10, "interfaces": interfaces}
    problems = problems_of(peer({"ospf": spec}))
    assert [p.path for p in problems] == ["spec.ospf.deadInterval"], "reported once per interface"


@pytest.mark.parametrize("field", ["address", "sourceAddress"])
def test_ipv6_zone_id_cannot_smuggle_config(field: str) -> None:
    bgp = {"address": "fe80::1", "asn": 65000, field: "fe80::1%eth0 as 65001;\n  passive on;\n#"}
    problems = problems_of(peer({"bgp": bgp}))
    assert [p.path for p in problems] == [f"spec.bgp.{field}"]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(
            service_group({**pools(POOL), True: "x", "colour": "y"}),
            [("spec", "field name True is not a string"), ("spec.colour", "unknown field")],
            id="spec-key-on",
        ),
        pytest.param(
            peer({"bgp": {**BGP, 1: 2}}),
            [("spec.bgp", "field name 1 is not a string")],
            id="protocol-key-1",
        ),
        pytest.param(
            peer({"bgp": BGP, "nodeSelector": {"matchLabels": {"rack": "a", 1: "b"}}}),
            [("spec.nodeSelector.matchLabels.1", "is not a valid label key")],
            id="label-key-1",
        ),
    ],
)
def test_non_string_keys_are_reported_not_crashed_on(
    obj: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    model = api.load([obj])
    assert (model.service_groups, model.peers) == ((), ())
    assert [p.path for p in model.errors] == [path for path, _ in expected]
    for problem, (_, words) in zip(model.errors, expected, strict=True):
        assert words in problem.message


# -- Peer: valid ---------------------------------------------------------------------------


def test_bgp_peer_defaults() -> None:
    p = parse(peer({"bgp": BGP}))
    assert p.protocol is Protocol.BGP
    assert p.families == (Family.IPV4,)
    assert p.bgp == api.BgpPeer(address=V4("192.0.2.254"), asn=65000)
    assert (p.bgp.port, p.bgp.password, p.bgp.bfd, p.bgp.graceful_restart) == (
        179,
        None,
        None,
        False,
    )


def test_bgp_peer_with_every_field() -> None:
    p = parse(
        peer(
            {
                "bgp": {
                    "address": "2001:db8::1",
                    "asn": 4200000000,
                    "localASN": 65010,
                    "port": 1179,
                    "holdTime": 9,
                    "keepaliveTime": 3,
                    "connectTime": 5,
                    "ebgpMultihop": 2,
                    "sourceAddress": "2001:db8::2",
                    "passwordSecretRef": {"name": "bgp-auth"},
                    "bfd": {"minRx": 100, "minTx": 200, "multiplier": 5},
                    "gracefulRestart": True,
                    "families": ["ipv6", "ipv4"],
                }
            }
        )
    )
    assert p.bgp == api.BgpPeer(
        address=V6("2001:db8::1"),
        asn=4200000000,
        local_asn=65010,
        port=1179,
        hold_time=9,
        keepalive_time=3,
        connect_time=5,
        ebgp_multihop=2,
        source_address=V6("2001:db8::2"),
        password_ref=api.SecretRef(name="bgp-auth", key="password"),
        bfd=Bfd(min_rx=100, min_tx=200, multiplier=5),
        graceful_restart=True,
        families=(Family.IPV4, Family.IPV6),
    )


@pytest.mark.parametrize(
    ("bgp", "families", "asn"),
    [
        ({"address": "2001:db8::1", "asn": 1}, (Family.IPV6,), 1),
        ({"interface": "eth0"}, (Family.IPV4, Family.IPV6), None),
        ({"interface": "eth0", "asn": 65001, "families": ["ipv6"]}, (Family.IPV6,), 65001),
    ],
    ids=["ipv6-neighbor-speaks-ipv6", "unnumbered-dual-stack-external", "unnumbered-with-asn"],
)
def test_bgp_families_follow_the_neighbor(
    bgp: dict[str, Any], families: tuple[Family, ...], asn: int | None
) -> None:
    p = parse(peer({"bgp": bgp}))
    assert (p.families, p.bgp.asn) == (families, asn)


BFD_PROTOCOLS: dict[str, dict[str, Any]] = {"bgp": BGP, "ospf": OSPF, "isis": ISIS}


@pytest.mark.parametrize(
    ("bfd", "expected"),
    [
        ({}, Bfd(min_rx=300, min_tx=300, multiplier=3)),
        ({"enabled": True}, Bfd(min_rx=300, min_tx=300, multiplier=3)),
        ({"enabled": False}, None),
        ({"enabled": False, "minRx": 50}, None),
        ({"minTx": 50}, Bfd(min_rx=300, min_tx=50, multiplier=3)),
        ({"multiplier": 2}, Bfd(min_rx=300, min_tx=300, multiplier=2)),
        ({"minRx": 10, "minTx": 60000, "multiplier": 255},
         Bfd(min_rx=10, min_tx=60000, multiplier=255)),
        (None, None),
    ],
    ids=["empty-object-uses-defaults", "enabled", "disabled", "disabled-object",
         "partial-object", "lowest-multiplier", "bounds", "null-is-unset"],
)  # fmt: skip
@pytest.mark.parametrize("protocol", BFD_PROTOCOLS)
def test_bfd_settings(protocol: str, bfd: Any, expected: Bfd | None) -> None:
    base = BFD_PROTOCOLS[protocol]
    parsed = parse(peer({protocol: {**base, "bfd": bfd}}))
    assert getattr(parsed, protocol).bfd == expected


@pytest.mark.parametrize("protocol", BFD_PROTOCOLS)
@pytest.mark.parametrize("bfd", [True, False, "on", 1, []], ids=repr)
def test_bfd_shorthands_are_rejected(protocol: str, bfd: Any) -> None:
    base = BFD_PROTOCOLS[protocol]
    (problem,) = problems_of(peer({protocol: {**base, "bfd": bfd}}))
    assert problem.path == f"spec.{protocol}.bfd"
    assert problem.message == (
        f"must be an object such as {{}} or {{minRx: 300, minTx: 300}}, not {bfd!r}"
    )


@pytest.mark.parametrize(
    ("area", "expected"),
    [(0, "0.0.0.0"), ("10", "0.0.0.10"), ("0.0.0.1", "0.0.0.1"), (None, "0.0.0.0")],
    ids=["number", "number-as-text", "dotted-quad", "default-backbone"],
)
def test_ospf_area_forms(area: Any, expected: str) -> None:
    ospf = {**OSPF, "area": area} if area is not None else OSPF
    assert parse(peer({"ospf": ospf})).ospf.area == V4(expected)


def test_ospf_peer_interfaces_inherit_peer_settings() -> None:
    p = parse(
        peer(
            {
                "ospf": {
                    "area": "0.0.0.1",
                    "cost": 10,
                    "networkType": "point-to-point",
                    "interfaces": [{"name": "eth1"}, {"name": "eth0", "cost": 20, "passive": True}],
                    "authSecretRef": {"name": "ospf-auth", "key": "md5"},
                    "families": ["ipv4", "ipv6"],
                }
            }
        )
    )
    assert p.ospf.interfaces == (
        api.OspfInterface(
            name="eth0", cost=20, network_type=OspfNetworkType.POINT_TO_POINT, passive=True
        ),
        api.OspfInterface(name="eth1", cost=10, network_type=OspfNetworkType.POINT_TO_POINT),
    )
    assert p.ospf.auth_ref == api.SecretRef(name="ospf-auth", key="md5")
    assert p.families == (Family.IPV4, Family.IPV6)


def test_rip_peer() -> None:
    p = parse(
        peer(
            {
                "rip": {
                    "interfaces": ["eth1", "eth0"],
                    "timers": {"update": 10, "timeout": 60, "garbage": 40},
                }
            }
        )
    )
    assert p.rip == api.RipPeer(
        interfaces=("eth0", "eth1"),
        version=2,
        timers=api.RipTimers(update=10, timeout=60, garbage=40),
    )
    assert parse(peer({"rip": {**RIP, "version": 1}})).rip.version == 1


def test_isis_peer() -> None:
    p = parse(
        peer(
            {
                "isis": {
                    "area": "49.00AB",
                    "interfaces": [{"name": "eth0", "metric": 10, "networkType": "point-to-point"}],
                    "metric": 20,
                    "families": ["ipv6"],
                }
            }
        )
    )
    assert p.isis.area == "49.00ab"
    assert p.isis.level is IsisLevel.LEVEL_2
    assert p.isis.interfaces == (
        api.IsisInterface(name="eth0", metric=10, network_type=api.IsisNetworkType.POINT_TO_POINT),
    )
    assert (p.isis.metric, p.families) == (20, (Family.IPV6,))


# -- selectors -----------------------------------------------------------------------------

SELECTORS = [
    ({}, {}, True),
    ({}, {"rack": "a"}, True),
    ({"matchLabels": {"rack": "a"}}, {"rack": "a", "zone": "x"}, True),
    ({"matchLabels": {"rack": "a"}}, {"rack": "b"}, False),
    ({"matchLabels": {"rack": "a"}}, {}, False),
    ({"matchLabels": {"rack": "a", "zone": "x"}}, {"rack": "a"}, False),
    ({"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a", "b"]}]},
     {"rack": "b"}, True),
    ({"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a", "b"]}]},
     {"rack": "c"}, False),
    ({"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}]}, {}, False),
    ({"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["a"]}]},
     {"rack": "b"}, True),
    ({"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["a"]}]},
     {"rack": "a"}, False),
    ({"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["a"]}]}, {}, True),
    ({"matchExpressions": [{"key": "bgp", "operator": "Exists"}]}, {"bgp": ""}, True),
    ({"matchExpressions": [{"key": "bgp", "operator": "Exists"}]}, {"rack": "a"}, False),
    ({"matchExpressions": [{"key": "spare", "operator": "DoesNotExist"}]}, {"rack": "a"}, True),
    ({"matchExpressions": [{"key": "spare", "operator": "DoesNotExist"}]}, {"spare": "1"}, False),
    ({"matchLabels": {"rack": "a"},
      "matchExpressions": [{"key": "node-role.kubernetes.io/edge", "operator": "Exists"}]},
     {"rack": "a", "node-role.kubernetes.io/edge": ""}, True),
    ({"matchLabels": {"rack": "a"},
      "matchExpressions": [{"key": "node-role.kubernetes.io/edge", "operator": "Exists"}]},
     {"rack": "a"}, False),
]  # fmt: skip


@pytest.mark.parametrize(("selector", "labels", "selected"), SELECTORS)
def test_node_selector_matches_like_kubernetes(
    selector: dict[str, Any], labels: dict[str, str], selected: bool
) -> None:
    p = parse(peer({"bgp": BGP, "nodeSelector": selector}))
    assert p.node_selector.matches(labels) is selected


@pytest.mark.parametrize(
    ("selector", "path", "valid"),
    [
        ({"matchLabels": {"rack": "a b"}}, "spec.nodeSelector.matchLabels.rack",
         "not a valid label value"),
        ({"matchLabels": {"-rack": "a"}}, "spec.nodeSelector.matchLabels.-rack",
         "not a valid label key"),
        ({"matchLabels": ["rack=a"]}, "spec.nodeSelector.matchLabels", "must be an object"),
        ({"matchExpressions": [{"key": "rack", "operator": "In"}]},
         "spec.nodeSelector.matchExpressions[0].values", "must not be empty with operator In"),
        ({"matchExpressions": [{"key": "rack", "operator": "Exists", "values": ["a"]}]},
         "spec.nodeSelector.matchExpressions[0].values", "must be empty with operator Exists"),
        ({"matchExpressions": [{"key": "rack", "operator": "Equals", "values": ["a"]}]},
         "spec.nodeSelector.matchExpressions[0].operator",
         "one of In, NotIn, Exists, DoesNotExist"),
        ({"matchExpressions": [{"key": "rack", "values": ["a"]}]},
         "spec.nodeSelector.matchExpressions[0].operator", "is required"),
        ({"matchExpressions": [{"operator": "Exists"}]},
         "spec.nodeSelector.matchExpressions[0].key", "is required"),
        ({"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a", "b c"]}]},
         "spec.nodeSelector.matchExpressions[0].values[1]", "not a valid label value"),
        ({"matchLables": {"rack": "a"}}, "spec.nodeSelector.matchLables",
         "valid fields here: matchExpressions, matchLabels"),
    ],
)  # fmt: skip
def test_invalid_selector_is_reported(selector: dict[str, Any], path: str, valid: str) -> None:
    problems = problems_of(peer({"bgp": BGP, "nodeSelector": selector}))
    (problem,) = at(problems, path)
    assert valid in problem.message


def test_service_group_selector_chooses_groups_by_label() -> None:
    p = parse(
        peer({"bgp": BGP, "serviceGroupSelector": {"matchLabels": {"tier": "web"}}}),
    )
    web = parse(service_group(pools(POOL), labels={"tier": "web"}))
    db = parse(service_group(pools(POOL), name="db", labels={"tier": "db"}))
    ospf_only = parse(
        service_group({**pools(POOL), "protocols": ["ospf"]}, name="web2", labels={"tier": "web"})
    )
    assert [p.carries(g) for g in (web, db, ospf_only)] == [True, False, False]


# -- NodeAgent, Node, Secret -----------------------------------------------------------------


def test_node_agent_defaults() -> None:
    agent = parse(node_agent({}))
    assert agent == api.NodeAgent(
        ref=ObjectRef(kind="NodeAgent", namespace="lbroute", name="agent")
    )
    assert (agent.router, agent.mode, agent.router_id) == (Router.BIRD, Mode.MANAGED, None)
    assert (agent.local_asn, agent.interface, agent.local_interface) == (
        64512,
        "kube-lb0",
        ("default",),
    )
    assert agent.fast_convergence is True
    assert agent.local_lease == LocalLease(duration=2.0, renew=0.5)
    assert agent.local_lease.address_lifetime == 1


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("default", ("default",)),
        ("bond0", ("bond0",)),
        ("eth*", ("eth*",)),
        (["eth1", "en[ps]*", "default"], ("eth1", "en[ps]*", "default")),
        (["default"], ("default",)),
    ],
)
def test_node_agent_local_interface_forms(value: Any, parsed: tuple[str, ...]) -> None:
    assert parse(node_agent({"localInterface": value})).local_interface == parsed


@pytest.mark.parametrize(
    ("lease", "duration", "renew", "lifetime"),
    [
        ({"durationSeconds": 10, "renewSeconds": 2}, 10.0, 2.0, 8),
        ({"durationSeconds": 3}, 3.0, 0.5, 2),
        ({"renewSeconds": 1}, 2.0, 1.0, 1),
        ({"durationSeconds": 300, "renewSeconds": 60}, 300.0, 60.0, 240),
        ({}, 2.0, 0.5, 1),
    ],
)
def test_node_agent_local_lease(
    lease: dict[str, Any], duration: float, renew: float, lifetime: int
) -> None:
    agent = parse(node_agent({"localLease": lease}))
    assert (agent.local_lease.duration, agent.local_lease.renew) == (duration, renew)
    assert agent.local_lease.address_lifetime == lifetime


def test_node_agent_with_every_field() -> None:
    agent = parse(
        node_agent(
            {
                "nodeSelector": {"matchLabels": {"rack": "a"}},
                "router": "frr",
                "mode": "include",
                "routerID": "10.0.0.1",
                "localASN": 65001,
                "interface": "lb0",
                "localInterface": "eth1",
                "localLease": {"durationSeconds": 10, "renewSeconds": 2},
                "templatesDir": "/etc/lbroute/templates",
                "fastConvergence": False,
                "configPath": "/etc/frr/frr.conf",
                "socketPath": "/run/frr",
                "includePath": "/etc/bird/lbroute.conf",
                "reloadCommand": ["birdc", "configure"],
            }
        )
    )
    assert (agent.router, agent.mode, agent.router_id) == (Router.FRR, Mode.INCLUDE, V4("10.0.0.1"))
    assert (agent.local_asn, agent.interface, agent.local_interface) == (65001, "lb0", ("eth1",))
    assert agent.local_lease == LocalLease(duration=10.0, renew=2.0)
    assert agent.templates_dir == "/etc/lbroute/templates"
    assert agent.fast_convergence is False
    assert agent.include_path == "/etc/bird/lbroute.conf"
    assert agent.reload_command == ("birdc", "configure")
    assert agent.node_selector.matches({"rack": "a"})


def test_node_keeps_internal_ips_in_order() -> None:
    n = parse(
        node(
            "n1",
            labels={"rack": "a"},
            addresses=[
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "fd00::1"},
                {"type": "ExternalIP", "address": "203.0.113.1"},
                {"type": "InternalIP", "address": "10.0.0.1"},
                {"type": "InternalIP", "address": "10.0.0.2"},
            ],
        )
    )
    assert n == api.Node(
        name="n1",
        labels=(("rack", "a"),),
        addresses=(V6("fd00::1"), V4("10.0.0.1"), V4("10.0.0.2")),
    )
    assert n.ipv4 == V4("10.0.0.1")
    assert parse(node("n2", addresses=[{"type": "InternalIP", "address": "fd00::2"}])).ipv4 is None


def test_secret_values_are_decoded() -> None:
    s = parse(
        secret(
            data={"password": "from-data", "other": "x"},
            string_data={"password": "from-string-data"},
        )
    )
    assert s.ref == ObjectRef(kind="Secret", namespace="lbroute", name="bgp-auth")
    assert s.get("password") == SecretValue("from-string-data")
    assert s.get("other") == SecretValue("x")
    assert s.get("missing") is None


def test_unrelated_kinds_are_ignored() -> None:
    assert parse({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}) is None
    assert parse({"apiVersion": "apps/v1", "kind": "Peer", "metadata": {"name": "x"}}) is None


# -- load(): cross-object checks -----------------------------------------------------------


def names(model: api.Model) -> dict[str, list[str]]:
    return {
        "groups": [g.name for g in model.service_groups],
        "peers": [p.name for p in model.peers],
        "agents": [a.ref.name for a in model.node_agents],
        "nodes": [n.name for n in model.nodes],
    }


def test_invalid_object_is_skipped_and_the_rest_loads() -> None:
    documents: list[Any] = [  # as YAML gives them: not every document is an object
        service_group(pools(POOL), name="web"),
        service_group(pools({"cidr": "bad"}), name="broken"),
        peer({"bgp": BGP}, name="tor"),
        peer({"bgp": {"asn": 1}}, name="broken-peer"),
        node_agent({"router": "quagga"}),
        node_agent({}, name="ok-agent"),
        node("n1"),
        "not an object",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
    ]
    model = api.load(documents)
    assert names(model) == {
        "groups": ["web"],
        "peers": ["tor"],
        "agents": ["ok-agent"],
        "nodes": ["n1"],
    }
    assert sorted(str(p.ref) for p in model.errors) == [
        "NodeAgent lbroute/agent",
        "Peer lbroute/broken-peer",
        "ServiceGroup lbroute/broken",
    ]


def test_load_orders_objects_by_namespace_and_name() -> None:
    objs = [
        service_group(pools({"cidr": "192.0.2.0/24"}), name="b"),
        service_group(pools({"cidr": "198.51.100.0/24"}), name="a"),
        service_group(pools({"cidr": "203.0.113.0/24"}), name="a", namespace="aaa"),
    ]
    assert api.load(objs) == api.load(reversed(objs))
    assert [str(g.ref) for g in api.load(objs).service_groups] == [
        "ServiceGroup aaa/a",
        "ServiceGroup lbroute/a",
        "ServiceGroup lbroute/b",
    ]


def test_overlapping_pools_of_two_groups_skip_the_later_one() -> None:
    model = api.load(
        [
            service_group(pools({"cidr": "192.0.2.0/24"}), name="web"),
            service_group(
                pools({"cidr": "10.0.0.0/24"}, {"range": "192.0.2.5-192.0.2.6"}), name="api"
            ),
            service_group(pools({"cidr": "2001:db8::/64"}), name="v6"),
        ]
    )
    assert names(model)["groups"] == ["api", "v6"]
    (problem,) = model.problems
    assert problem.severity is Severity.ERROR
    assert problem.ref == ObjectRef(kind="ServiceGroup", namespace="lbroute", name="web")
    assert problem.path == "spec.pools[0]"
    assert "192.0.2.0/24" in problem.message
    assert "192.0.2.5-192.0.2.6 of ServiceGroup lbroute/api" in problem.message


def test_pools_of_different_families_never_overlap() -> None:
    model = api.load(
        [
            service_group(pools({"cidr": "192.0.2.0/24"}), name="all-v4"),
            service_group(pools({"cidr": "2001:db8::/32"}), name="all-v6"),
        ]
    )
    assert (names(model)["groups"], model.problems) == (["all-v4", "all-v6"], ())


def test_duplicate_object_keeps_the_first() -> None:
    model = api.load(
        [
            service_group(pools({"cidr": "192.0.2.0/24"})),
            service_group(pools({"cidr": "198.51.100.0/24"})),
            peer({"bgp": BGP}),
            peer({"bgp": BGP}),
            peer({"bgp": BGP}, namespace="other"),
        ]
    )
    (group,) = model.service_groups
    assert str(group.pools[0]) == "192.0.2.0/24"
    assert [str(p.ref) for p in model.peers] == ["Peer lbroute/tor", "Peer other/tor"]
    assert [(str(p.ref), p.path, p.severity) for p in model.problems] == [
        ("ServiceGroup lbroute/web", "metadata.name", Severity.ERROR),
        ("Peer lbroute/tor", "metadata.name", Severity.ERROR),
    ]
    assert all("more than once" in p.message for p in model.problems)


def test_a_duplicate_secret_or_node_is_an_error_and_the_first_is_used() -> None:
    """Not the last one silently: a Secret or Node written twice is reported, as a
    ServiceGroup or Peer is, and the first copy counts; the other objects still load."""
    first_pw, second_pw = "first-pw7", "second-pw7"
    objects = [
        node("n1", addresses=[{"type": "InternalIP", "address": "10.0.0.1"}]),
        secret(string_data={"password": first_pw}),
        peer({"bgp": {**BGP, "passwordSecretRef": {"name": "bgp-auth"}}}),
        service_group(pools({"cidr": "192.0.2.0/24"})),
        secret(string_data={"password": second_pw}),
        secret(string_data={"password": "other-ns"}, namespace="other"),
        node("n1", addresses=[{"type": "InternalIP", "address": "10.0.0.2"}]),
    ]
    places = {id(o): f"f.yaml:{n + 1}" for n, o in enumerate(objects)}
    model = api.load(objects, where=lambda o: places.get(id(o)))

    assert names(model) == {"groups": ["web"], "peers": ["tor"], "agents": [], "nodes": ["n1"]}
    (n1,) = model.nodes
    assert str(n1.addresses[0]) == "10.0.0.1"
    (tor,) = model.peers
    assert tor.bgp is not None and tor.bgp.password is not None
    assert tor.bgp.password.reveal() == first_pw
    assert [(str(p.ref), p.path, p.severity, p.message) for p in model.problems] == [
        (
            "Secret lbroute/bgp-auth",
            "metadata.name",
            Severity.ERROR,
            "appears more than once (in f.yaml:2 and again in f.yaml:5); the first one is "
            "used: each Secret in namespace 'lbroute' needs a name of its own, so remove one "
            "copy or rename it",
        ),
        (
            "Node n1",
            "metadata.name",
            Severity.ERROR,
            "appears more than once (in f.yaml:1 and again in f.yaml:7); the first one is "
            "used: each Node needs a name of its own, so remove one copy or rename it",
        ),
    ]
    # Without places (the agent's objects), the message still names the object.
    (_, again) = api.load(objects).problems
    assert str(again) == (
        "error: Node n1: metadata.name: appears more than once; the first one is used: each "
        "Node needs a name of its own, so remove one copy or rename it"
    )


@pytest.mark.parametrize(
    "peer_spec",
    [
        {"bgp": BGP, "serviceGroupSelector": {"matchLabels": {"tier": "db"}}},
        {"ospf": OSPF, "serviceGroupSelector": {"matchLabels": {"tier": "web"}}},
    ],
    ids=["selector-matches-nothing", "group-asks-for-another-protocol"],
)
def test_peer_that_carries_no_group_is_a_warning(peer_spec: dict[str, Any]) -> None:
    group = service_group({**pools(POOL), "protocols": ["bgp"]}, labels={"tier": "web"})
    model = api.load([group, peer(peer_spec)])
    assert names(model)["peers"] == ["tor"]
    (problem,) = model.problems
    assert (problem.severity, str(problem.ref), problem.path) == (
        Severity.WARNING,
        "Peer lbroute/tor",
        "spec.serviceGroupSelector",
    )
    assert "announces nothing" in problem.message


def test_two_default_groups_warn_on_the_later() -> None:
    model = api.load(
        [
            service_group({**pools({"cidr": "192.0.2.0/24"}), "default": True}, name="b"),
            service_group({**pools({"cidr": "198.51.100.0/24"}), "default": True}, name="a"),
            service_group({**pools({"cidr": "203.0.113.0/24"}), "default": False}, name="c"),
        ]
    )
    assert names(model)["groups"] == ["a", "b", "c"]
    (problem,) = model.problems
    assert (problem.severity, str(problem.ref), problem.path) == (
        Severity.WARNING,
        "ServiceGroup lbroute/b",
        "spec.default",
    )
    assert "ServiceGroup lbroute/a" in problem.message


# -- load(): Secrets -----------------------------------------------------------------------

BGP_AUTH = {**BGP, "passwordSecretRef": {"name": "bgp-auth"}}


def test_secret_is_resolved_into_the_peer() -> None:
    model = api.load(
        [
            service_group(pools(POOL)),
            peer({"bgp": BGP_AUTH}),
            peer({"ospf": {**OSPF, "authSecretRef": {"name": "igp", "key": "ospf"}}}, name="ospf"),
            peer({"rip": {**RIP, "authSecretRef": {"name": "igp", "key": "rip"}}}, name="rip"),
            secret(data={"password": "s3cret!"}),
            secret(name="igp", string_data={"ospf": "ospfkey", "rip": "ripkey"}),
        ]
    )
    assert model.problems == ()
    by_name = {p.name: p for p in model.peers}
    assert by_name["tor"].bgp is not None
    assert by_name["tor"].bgp.password == SecretValue("s3cret!")
    assert by_name["ospf"].ospf is not None
    assert by_name["ospf"].ospf.auth_key == SecretValue("ospfkey")
    assert by_name["rip"].rip is not None
    assert by_name["rip"].rip.auth_key == SecretValue("ripkey")


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        pytest.param([], "Secret bgp-auth not found in namespace lbroute", id="missing"),
        pytest.param(
            [secret(namespace="default", string_data={"password": "x"})],
            "Secret bgp-auth not found in namespace lbroute",
            id="other-namespace",
        ),
        pytest.param(
            [secret(string_data={"pw": "x"})], "Secret bgp-auth has no key 'password'",
            id="missing-key",
        ),
        pytest.param(
            [secret(data={"password": "s3cret\n"})], "is not usable; expected letters, digits",
            id="trailing-newline",
        ),
        pytest.param(
            [secret(string_data={"password": 'a";\n  passive on; #'})], "is not usable",
            id="quote-injection",
        ),
        pytest.param([secret(string_data={"password": "with space"})], "is not usable",
                     id="space"),
        pytest.param([secret(string_data={"password": ""})], "is not usable", id="empty"),
    ],
)  # fmt: skip
def test_unusable_secret_skips_the_peer(secrets: list[dict[str, Any]], message: str) -> None:
    model = api.load(
        [
            service_group(pools(POOL)),
            peer({"bgp": BGP_AUTH}),
            peer({"bgp": {**BGP, "address": "192.0.2.253"}}, name="other"),
            *secrets,
        ]
    )
    assert names(model)["peers"] == ["other"]
    (problem,) = model.problems
    assert (problem.severity, str(problem.ref), problem.path) == (
        Severity.ERROR,
        "Peer lbroute/tor",
        "spec.bgp.passwordSecretRef",
    )
    assert message in problem.message
    assert 'a";' not in str(problem)


@pytest.mark.parametrize(
    ("protocol", "path", "limit"),
    [("ospf", "spec.ospf.authSecretRef", "OSPF MD5 key is at most 16"),
     ("rip", "spec.rip.authSecretRef", "RIP MD5 key is at most 16")],
)  # fmt: skip
def test_igp_key_longer_than_md5_allows(protocol: str, path: str, limit: str) -> None:
    spec = {"ospf": OSPF, "rip": RIP}[protocol]
    model = api.load(
        [
            peer({protocol: {**spec, "authSecretRef": {"name": "igp"}}}),
            secret(name="igp", string_data={"password": "x" * 17}),
        ]
    )
    assert model.peers == ()
    assert [(p.path, limit in p.message) for p in model.errors] == [(path, True)]


# -- load(): invariant ---------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 70000),
    st.text(max_size=6),
    st.sampled_from(["192.0.2.0/24", "192.0.2.1-192.0.2.9", "10.0.0.1", "eth0", "In", "49.0001"]),
)
_keys = st.one_of(
    st.booleans(),
    st.integers(0, 9),
    st.sampled_from(
        [
            "pools",
            "cidr",
            "range",
            "subnet",
            "aggregation",
            "bgp",
            "ospf",
            "rip",
            "isis",
            "address",
            "asn",
            "interfaces",
            "name",
            "nodeSelector",
            "matchLabels",
            "matchExpressions",
            "key",
            "operator",
            "values",
            "protocols",
            "timers",
            "bfd",
            "families",
            "area",
            "level",
            "router",
            "mode",
            "routerID",
            "passwordSecretRef",
        ]
    ),
    st.text(max_size=4),
)
_data = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=16,
)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(kind=st.sampled_from(["ServiceGroup", "Peer", "NodeAgent"]), spec=_data)
def test_load_never_raises_and_reports_what_it_skips(kind: str, spec: Any) -> None:
    model = api.load([_obj(kind, spec, "x", "lbroute")])
    kept = len(model.service_groups) + len(model.peers) + len(model.node_agents)
    assert kept == 1 or model.errors
