"""The ServiceGroup kind: pools of addresses and how their Services are announced.

A ServiceGroup lists its pools (a cidr or a range, with an optional subnet and the prefix
length its addresses are aggregated to), which nodes announce it, whether it is routed or
answered locally (ARP/NDP), the protocols that carry it and the per-protocol route
attributes (BGP communities, OSPF metric...). A pool knows what a router may export for
it (:attr:`Pool.export_prefixes`) and which addresses it never hands out
(:attr:`Pool.reserved`). Pools that overlap across groups are checked in
:mod:`lbroute.model.model`, where all groups are known.

A pool (and its subnet) must hold addresses a client can reach: a range that includes
special-purpose addresses (:data:`SPECIAL_PURPOSE`: "this network", loopback, link-local,
multicast, reserved) is refused, whatever else it holds. With ``0.0.0.0/0`` the agent would
put ``0.0.0.1/0`` on kube-lb0 and announce a default route; none of these ranges can carry
a Service's traffic, so no field allows them. Private (10.0.0.0/8, 192.168.0.0/16,
fc00::/7) and documentation ranges are ordinary pools.

Pools that overlap within a group are found by sorting them and sweeping once, so a group
of 20,000 pools validates in about a second.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lbroute.model.common import (
    EVERYTHING,
    Announce,
    Family,
    IsisLevel,
    LabelSelector,
    Protocol,
    choices,
    envelope,
    meta_labels,
    raise_if_failed,
    selector,
)
from lbroute.model.errors import ObjectRef, Problem, Severity, quote
from lbroute.model.fields import IPAddress, IPNetwork, Reader, parse_ip, parse_network
from lbroute.model.netbox import (
    NETBOX,
    Aggregation,
    NetBoxSource,
    netbox_prefix_path,
    parse_netbox,
)
from lbroute.model.vocabulary import SERVICE_GROUP

_IETF_RESERVED = (
    "reserved by the IETF: neither global unicast (2000::/3) nor unique local (fc00::/7)"
)
SPECIAL_PURPOSE: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("0.0.0.0/8", "'this network', never a destination"),
        ("127.0.0.0/8", "loopback, never leaves a host"),
        ("169.254.0.0/16", "link-local, never routed"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved, with the limited broadcast address 255.255.255.255"),
        ("::/8", "reserved by the IETF: unspecified, loopback, IPv4-mapped and -compatible"),
        *((net, _IETF_RESERVED) for net in (
            "100::/8", "200::/7", "400::/6", "800::/5", "1000::/4", "4000::/3", "6000::/3",
            "8000::/3", "a000::/3", "c000::/3", "e000::/4", "f000::/5", "f800::/6",
            "fe00::/9",
        )),
        ("fe80::/10", "link-local, never routed"),
        ("ff00::/8", "multicast"),
    )
)  # fmt: skip
"""Ranges no pool may touch, with why: what :mod:`ipaddress` calls unspecified, loopback,
link-local, multicast or reserved, and 0.0.0.0/8."""
_SPECIAL_SPANS = tuple(
    (net.version, int(net.network_address), int(net.broadcast_address), net, why)
    for net, why in SPECIAL_PURPOSE
)


def special_purpose(first: IPAddress, last: IPAddress) -> tuple[tuple[IPNetwork, str], ...]:
    """The special-purpose ranges that share an address with ``first`` to ``last``."""
    lo, hi = int(first), int(last)
    return tuple(
        (net, why)
        for version, a, b, net, why in _SPECIAL_SPANS
        if version == first.version and a <= hi and lo <= b
    )


def _special_text(found: tuple[tuple[IPNetwork, str], ...]) -> str:
    shown = "; ".join(f"{net} ({why})" for net, why in found[:2])
    more = f"; and {len(found) - 2} more special-purpose ranges" if len(found) > 2 else ""
    return (
        f"includes special-purpose addresses: {shown}{more}; a pool holds unicast addresses "
        "clients can reach: public, private (such as 10.0.0.0/8 or fd00::/8) or documentation "
        "ranges"
    )


@dataclass(frozen=True, kw_only=True)
class ExportPrefix:
    """Routes that may be announced for a pool: ``network`` with a length in ``ge..le``."""

    network: IPNetwork
    ge: int
    le: int

    @property
    def family(self) -> Family:
        return Family.of(self.network)


@dataclass(frozen=True, kw_only=True)
class Pool:
    """Addresses a ServiceGroup hands out: ``first`` to ``last`` inclusive."""

    family: Family
    cidr: IPNetwork | None
    first: IPAddress
    last: IPAddress
    subnet: IPNetwork | None
    aggregation: int
    """Prefix length a Service address gets on kube-lb0 with ETP Cluster."""
    allow_network_and_broadcast: bool = False
    """Hand out the network and broadcast addresses of an IPv4 pool wider than /31 too."""
    external: str | None = None
    """The IPAM that hands out this pool's addresses (``netbox``: a prefix of
    ``spec.ipam.netbox``); None: lbroute's own allocator."""

    @property
    def network(self) -> IPNetwork | None:
        """The network the pool lives in: its subnet, else its cidr (a plain range: None)."""
        return self.subnet or self.cidr

    @property
    def reserved(self) -> tuple[IPAddress, ...]:
        """Addresses the allocator never hands out unless allowed: the network and
        broadcast addresses of an IPv4 pool network wider than /31, and the Subnet-Router
        anycast address (the network address) of an IPv6 one wider than /127, where they
        fall inside the pool."""
        net = self.network
        if self.allow_network_and_broadcast or net is None:
            return ()
        if net.prefixlen >= net.max_prefixlen - 1:
            return ()
        ends: tuple[IPAddress, ...] = (net.network_address,)
        if net.version == 4:
            ends += (net.broadcast_address,)
        return tuple(a for a in ends if int(self.first) <= int(a) <= int(self.last))

    @property
    def export_prefixes(self) -> tuple[ExportPrefix, ...]:
        """What the router may announce for this pool (aggregates and host routes)."""
        host = self.family.host_length
        if self.subnet is not None:
            return (ExportPrefix(network=self.subnet, ge=self.aggregation, le=host),)
        if self.cidr is not None:
            return (ExportPrefix(network=self.cidr, ge=self.aggregation, le=host),)
        nets = ipaddress.summarize_address_range(self.first, self.last)
        return tuple(ExportPrefix(network=n, ge=n.prefixlen, le=host) for n in nets)

    def __str__(self) -> str:
        if self.cidr is not None:
            return str(self.cidr)
        return f"{self.first}-{self.last}"

    @property
    def source(self) -> str:
        """Where the pool is declared, for messages."""
        if self.external is not None:
            return f"NetBox prefix {self}"
        return f"pool {self}"


@dataclass(frozen=True, kw_only=True, order=True)
class Community:
    asn: int
    value: int

    def __str__(self) -> str:
        return f"{self.asn}:{self.value}"


@dataclass(frozen=True, kw_only=True, order=True)
class LargeCommunity:
    global_admin: int
    data1: int
    data2: int

    def __str__(self) -> str:
        return f"{self.global_admin}:{self.data1}:{self.data2}"


MAX_WEIGHT = 100
"""The most endpoints one node's weight counts for an address (docs/weighted-ecmp.md):
the routers map each weight through a table rendered once, one entry per value."""
MAX_CLASSES = 8
"""The most BGP classes one ServiceGroup declares (docs/bgp-classes.md): FRR maps every
(class, weight) pair through one route-map entry."""
CLASS_STRIDE = 128
"""FRR: an address's metric is ``class * CLASS_STRIDE + weight`` (class 0: the group's
default policy; weight 0: not weighted), the one number zebra passes on."""
_CLASS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def route_mark(weight: int, klass: int) -> int:
    """The metric FRR reads from an address's connected route: its class and weight."""
    return klass * CLASS_STRIDE + weight


@dataclass(frozen=True, kw_only=True)
class BgpClass:
    """One of a ServiceGroup's named BGP classes (``bgp.classes``), which a Service picks
    with ``lbroute.io/bgp-class``. Its attributes come on top of the group's: communities
    and large communities are added, localPref and med replace the group's, prepends are
    added to the group's (docs/bgp-classes.md)."""

    name: str
    index: int
    """1 + its position among the group's classes by name: the number the agent puts on
    the Service's route (krt_rtt for BIRD, the address metric for FRR)."""
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()
    local_pref: int | None = None
    med: int | None = None
    prepend: int = 0


@dataclass(frozen=True, kw_only=True)
class BgpPolicy:
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()
    local_pref: int | None = None
    med: int | None = None
    prepend: int = 0
    """How many times the local ASN is prepended to the AS path."""
    weight_by_endpoints: bool = False
    """``weightByEndpoints``: an ETP Local Service's host prefix carries the
    link-bandwidth extended community, 1 Mbps per ready endpoint on the node (capped at
    :data:`MAX_WEIGHT`), so that an upstream doing weighted ECMP splits the traffic in
    proportion (docs/weighted-ecmp.md)."""
    classes: tuple[BgpClass, ...] = ()
    """``classes``: named attribute sets a Service may pick, by name (index order)."""

    def bgp_class(self, name: str | None) -> BgpClass | None:
        """The class called ``name``; None when unset or not declared."""
        if name is None:
            return None
        return next((c for c in self.classes if c.name == name), None)


@dataclass(frozen=True, kw_only=True)
class OspfPolicy:
    metric: int | None = None
    metric_type: int | None = None  # 1 or 2 (external type)
    tag: int | None = None


@dataclass(frozen=True, kw_only=True)
class IsisPolicy:
    metric: int | None = None
    level: IsisLevel | None = None


@dataclass(frozen=True, kw_only=True)
class RipPolicy:
    metric: int | None = None


@dataclass(frozen=True, kw_only=True)
class ServiceGroup:
    ref: ObjectRef
    labels: tuple[tuple[str, str], ...] = ()
    node_selector: LabelSelector = EVERYTHING
    """Nodes that announce this group's Services (all nodes by default)."""
    default: bool = False
    announce: Announce = Announce.ROUTED
    pools: tuple[Pool, ...]
    protocols: frozenset[Protocol] | None = None
    """Protocols that carry this group; None means every protocol that has a Peer."""
    bgp: BgpPolicy = field(default_factory=BgpPolicy)
    ospf: OspfPolicy = field(default_factory=OspfPolicy)
    isis: IsisPolicy = field(default_factory=IsisPolicy)
    rip: RipPolicy = field(default_factory=RipPolicy)
    netbox: NetBoxSource | None = None
    """``spec.ipam.netbox``: the NetBox its NetBox pools are allocated from."""
    withdraw_without_endpoints: bool = False
    """``withdrawWithoutEndpoints``: an ETP Cluster Service with no ready endpoint on any
    node is withdrawn from every node (failover to another site announcing the same
    address), and its address is announced as a host route, never the pool's aggregate
    (nodeagent.desired)."""

    @property
    def name(self) -> str:
        return self.ref.name

    @functools.cached_property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def families(self) -> tuple[Family, ...]:
        return tuple(f for f in Family if any(p.family is f for p in self.pools))

    def pool_path(self, index: int) -> str:
        """The field that declares ``pools[index]``: ``spec.pools[i]``, or for a NetBox
        prefix (they follow the group's own pools) ``spec.ipam.netbox.prefixes[i]``."""
        own = sum(1 for p in self.pools if p.external is None)
        if index < own:
            return f"spec.pools[{index}]"
        assert self.netbox is not None
        return netbox_prefix_path(self.netbox, index - own)

    def export_prefixes(self, family: Family) -> tuple[ExportPrefix, ...]:
        out = {
            (e.network, e.ge, e.le): e
            for p in self.pools
            if p.family is family
            for e in p.export_prefixes
        }
        return tuple(out[k] for k in sorted(out))


def _aggregation(r: Reader, family: Family, subnet: IPNetwork | None, is_range: bool) -> int:
    host = family.host_length
    value = r.raw("aggregation")
    if value is None or value == "default":
        if subnet is not None:
            return subnet.prefixlen
        return host
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"/{value}"
    m = re.fullmatch(r"/([0-9]{1,3})", value) if isinstance(value, str) else None
    low = subnet.prefixlen if subnet is not None else host
    if m is None or not low <= int(m.group(1)) <= host:
        hint = f"'default' or a prefix length from /{low} to /{host}"
        if subnet is None and is_range:
            hint += " (set subnet to aggregate a range)"
        r.error("aggregation", f"{quote(value)} is not valid; expected {hint}")
        return low
    return int(m.group(1))


def _pool(r: Reader) -> Pool | None:
    r.unknown({"cidr", "range", "subnet", "aggregation", "allowNetworkAndBroadcast"})
    before = len(r.problems)
    has_cidr, has_range = r.has("cidr"), r.has("range")
    if has_cidr == has_range:
        r.error("", "set exactly one of cidr (192.0.2.0/24) or range (192.0.2.10-192.0.2.20)")
        return None
    cidr: IPNetwork | None = None
    if has_cidr:
        cidr = r.convert(
            "cidr", parse_network, "a network such as 192.0.2.0/24 with no host bits set"
        )
        if cidr is None:
            return None
        first, last = cidr[0], cidr[-1]
    else:
        bounds = r.convert("range", _parse_range, "a range such as 192.0.2.10-192.0.2.20")
        if bounds is None:
            return None
        first, last = bounds
    if special := special_purpose(first, last):
        field_ = "cidr" if has_cidr else "range"
        r.error(field_, f"{quote(r.raw(field_))} {_special_text(special)}")
    family = Family.of(first)
    subnet = r.convert("subnet", parse_network, "a network such as 192.0.2.0/24")
    if subnet is not None:
        if subnet.version != first.version:
            r.error("subnet", f"{subnet} is not of the pool's family ({family})")
            subnet = None
        elif first not in subnet or last not in subnet:
            r.error("subnet", f"{subnet} does not contain the whole pool {first}-{last}")
            subnet = None
        elif found := special_purpose(subnet[0], subnet[-1]):
            r.error("subnet", f"{subnet} {_special_text(found)}")
            subnet = None
    elif cidr is not None:
        subnet = None
    aggregation = _aggregation(r, family, subnet or cidr, cidr is None)
    allow = r.bool_("allowNetworkAndBroadcast", False)
    if len(r.problems) > before:
        return None
    return Pool(
        family=family,
        cidr=cidr,
        first=first,
        last=last,
        subnet=subnet,
        aggregation=aggregation,
        allow_network_and_broadcast=allow,
    )


def _overlapping(pools: list[Pool]) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, of pools that overlap, in order: each pool paired with
    the one before it in address order that reaches furthest, when that one reaches it (a
    sort and one sweep; a pool that overlaps several is named once)."""
    order = sorted(
        range(len(pools)),
        key=lambda i: (pools[i].first.version, int(pools[i].first), int(pools[i].last), i),
    )
    pairs: list[tuple[int, int]] = []
    reach: tuple[int, int, int] | None = None  # version, last address, index
    for i in order:
        pool = pools[i]
        version, first, last = pool.first.version, int(pool.first), int(pool.last)
        if reach is not None and reach[0] == version and first <= reach[1]:
            pairs.append((min(i, reach[2]), max(i, reach[2])))
        if reach is None or reach[0] != version or last > reach[1]:
            reach = (version, last, i)
    return sorted(pairs)


def _parse_range(value: Any) -> tuple[IPAddress, IPAddress]:
    if not isinstance(value, str) or value.count("-") != 1:
        raise ValueError("")
    a, b = (parse_ip(part.strip()) for part in value.split("-"))
    if a.version != b.version:
        raise ValueError("both ends must be of one family")
    if int(a) > int(b):
        raise ValueError("the first address is after the last")
    return a, b


_U32 = (0, 4294967295)
RESERVED_ASN = 4294967295
"""The last 32-bit ASN, reserved by RFC 7300: no large community of a ServiceGroup may
name it, since FRR's outbound policy marks each group's routes with
``4294967295:1:<number>`` (renderer/view/bgp_frr.py) and deletes those marks."""
LARGE_COMMUNITY_VALID = f"A:B:C, each 0-4294967295, A not {RESERVED_ASN}"


def _community(value: Any) -> Community:
    if not isinstance(value, str):
        raise TypeError("")
    m = re.fullmatch(r"([0-9]{1,5}):([0-9]{1,5})", value)
    if not m or int(m.group(1)) > 65535 or int(m.group(2)) > 65535:
        raise ValueError("")
    return Community(asn=int(m.group(1)), value=int(m.group(2)))


def _large_community(value: Any) -> LargeCommunity:
    if not isinstance(value, str):
        raise TypeError("")
    m = re.fullmatch(r"([0-9]{1,10}):([0-9]{1,10}):([0-9]{1,10})", value)
    if not m or any(int(g) > _U32[1] for g in m.groups()):
        raise ValueError("")
    a, b, c = (int(g) for g in m.groups())
    if a == RESERVED_ASN:
        raise ValueError(
            f"AS {RESERVED_ASN} is reserved (RFC 7300): lbroute marks routes with it inside FRR"
        )
    return LargeCommunity(global_admin=a, data1=b, data2=c)


_ATTRIBUTES = {"communities", "largeCommunities", "localPref", "med", "asPathPrepend"}


def _bgp_policy(r: Reader) -> BgpPolicy:
    r.unknown({*_ATTRIBUTES, "weightByEndpoints", "classes"})
    communities, larges = _communities(r)
    return BgpPolicy(
        communities=communities,
        large_communities=larges,
        local_pref=r.int_("localPref", *_U32),
        med=r.int_("med", *_U32),
        prepend=r.int_("asPathPrepend", 0, 10) or 0,
        weight_by_endpoints=r.bool_("weightByEndpoints", False),
        classes=_classes(r),
    )


def _communities(r: Reader) -> tuple[tuple[Community, ...], tuple[LargeCommunity, ...]]:
    communities = []
    for i, item, _ in r.items("communities"):
        c = r.convert_item("communities", i, item, _community, "ASN:VALUE, each 0-65535")
        if c is not None:
            communities.append(c)
    larges = []
    for i, item, _ in r.items("largeCommunities"):
        lc = r.convert_item("largeCommunities", i, item, _large_community, LARGE_COMMUNITY_VALID)
        if lc is not None:
            larges.append(lc)
    return tuple(sorted(set(communities))), tuple(sorted(set(larges)))


def _classes(r: Reader) -> tuple[BgpClass, ...]:
    """``bgp.classes``: name -> attributes, at most :data:`MAX_CLASSES`; names are DNS
    labels (they are matched against a tenant's annotation, never rendered)."""
    value = r.raw("classes")
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        r.error("classes", "must be an object: class name -> its BGP attributes")
        return ()
    if len(value) > MAX_CLASSES:
        r.error("classes", f"declares {len(value)} classes; at most {MAX_CLASSES}")
        return ()
    node = r.child("classes")
    found: list[tuple[str, Reader]] = []
    for name in sorted(value, key=str):
        if not isinstance(name, str) or not _CLASS_NAME.fullmatch(name):
            node.error(
                str(name)[:80],
                f"{quote(name)} is not a valid class name; expected up to 63 lowercase "
                "letters, digits and '-', starting and ending with a letter or digit",
            )
            continue
        c = node.child(name)
        c.unknown(_ATTRIBUTES)
        found.append((name, c))
    classes = []
    for index, (name, c) in enumerate(found, start=1):
        communities, larges = _communities(c)
        classes.append(
            BgpClass(
                name=name,
                index=index,
                communities=communities,
                large_communities=larges,
                local_pref=c.int_("localPref", *_U32),
                med=c.int_("med", *_U32),
                prepend=c.int_("asPathPrepend", 0, 10) or 0,
            )
        )
    return tuple(classes)


def parse_service_group(obj: Mapping[str, Any]) -> ServiceGroup:
    ref, meta, spec = envelope(obj, SERVICE_GROUP)
    spec.unknown(
        {
            "pools",
            "announce",
            "protocols",
            "default",
            "nodeSelector",
            "bgp",
            "ospf",
            "isis",
            "rip",
            "withdrawWithoutEndpoints",
            "ipam",
        }
    )
    pools: list[Pool] = []
    for _i, item, path in spec.items("pools"):
        pool = _pool(spec.item_reader(item, path))
        if pool is not None:
            pools.append(pool)
    ipam = spec.child("ipam")
    ipam.unknown({"netbox"})
    netbox = None
    if ipam.has("netbox"):
        # The prefixes a prefixSelector chose are the allocator's, in the status.
        status = obj.get("status")
        status_ipam = status.get("ipam") if isinstance(status, Mapping) else None
        selected = Reader(status_ipam, ref, "status.ipam", spec.problems).child("netbox")
        netbox = parse_netbox(ipam.child("netbox"), selected)
    if spec.has("ipam") and not ipam.has("netbox"):
        ipam.error("netbox", "is required in ipam: the NetBox to take addresses from")
    if netbox is not None:
        pools.extend(_netbox_pool(spec, i, netbox) for i in range(len(netbox.every_prefix)))
    if (not spec.has("pools") or not spec.raw("pools")) and not spec.has("ipam"):
        spec.error(
            "pools",
            "is required: at least one pool with a cidr or a range, or NetBox prefixes in "
            "ipam.netbox",
        )
    for i, j in _overlapping(pools):
        a, b = pools[i], pools[j]
        if a.external is None and b.external is None:
            text = f"pools {a} and {b} overlap; each address may be in one pool"
        else:
            text = f"{a.source} and {b.source} overlap; each address comes from one source"
        spec.error("pools", text)
    protocols: frozenset[Protocol] | None = None
    if spec.has("protocols"):
        found = []
        for i, item, _ in spec.items("protocols"):
            p = spec.convert_item("protocols", i, item, Protocol, "one of bgp, ospf, rip, isis")
            if p is not None:
                found.append(p)
        protocols = frozenset(found)
    bgp = _bgp_policy(spec.child("bgp"))
    o = spec.child("ospf")
    o.unknown({"metric", "metricType", "tag"})
    ospf = OspfPolicy(
        metric=o.int_("metric", 0, 16777214),
        metric_type=o.choice("metricType", {"1": 1, "2": 2}),
        tag=o.int_("tag", *_U32),
    )
    s = spec.child("isis")
    s.unknown({"metric", "level"})
    isis = IsisPolicy(
        metric=s.int_("metric", 0, 16777215), level=s.choice("level", choices(IsisLevel))
    )
    rp = spec.child("rip")
    rp.unknown({"metric"})
    rip = RipPolicy(metric=rp.int_("metric", 1, 15))
    group = ServiceGroup(
        ref=ref,
        labels=meta_labels(meta),
        node_selector=selector(spec, "nodeSelector"),
        default=spec.bool_("default", False),
        announce=spec.choice("announce", choices(Announce), default=Announce.ROUTED)
        or Announce.ROUTED,
        pools=tuple(pools),
        protocols=protocols,
        bgp=bgp,
        ospf=ospf,
        isis=isis,
        rip=rip,
        netbox=netbox,
        withdraw_without_endpoints=spec.bool_("withdrawWithoutEndpoints", False),
    )
    if group.announce is Announce.LOCAL:
        _check_local_pools(spec)
    raise_if_failed(spec)
    return group


def _netbox_pool(spec: Reader, index: int, netbox: NetBoxSource) -> Pool:
    """The pool a NetBox prefix is: every address of it, aggregated to its length."""
    net = netbox.every_prefix[index]
    if found := special_purpose(net[0], net[-1]):
        where = netbox_prefix_path(netbox, index)
        spec.problems.append(
            Problem(
                severity=Severity.ERROR,
                ref=spec.ref,
                path=where,
                message=f"{net} {_special_text(found)}",
            )
        )
    family = Family.of(net.network_address)
    return Pool(
        family=family,
        cidr=net,
        first=net[0],
        last=net[-1],
        subnet=None,
        aggregation=(
            family.host_length if netbox.aggregation is Aggregation.HOST else net.prefixlen
        ),
        # NetBox decides which of its addresses are free: a prefix marked as a pool
        # hands out its network and broadcast addresses too.
        allow_network_and_broadcast=True,
        external=NETBOX,
    )


_LOCAL_AGGREGATION = (
    "is for announce routed only: a local address goes on the node's NIC with the prefix "
    "length of the NIC's subnet and is answered by ARP/NDP, nothing is aggregated; remove "
    "aggregation or set it to 'default'"
)


def _check_local_pools(spec: Reader) -> None:
    """``announce: local`` with a pool ``aggregation`` other than ``default`` is an error."""
    for _i, item, path in spec.items("pools"):
        if not isinstance(item, Mapping):
            continue
        value = item.get("aggregation")
        if value is not None and value != "default":
            spec.item_reader(item, path).error(
                "aggregation", f"{quote(value)} {_LOCAL_AGGREGATION}"
            )


def local_problems(group: ServiceGroup) -> tuple[Problem, ...]:
    """Warnings about a local group's settings that only routing uses (they are ignored):
    ``protocols`` and the per-protocol route attributes. None for a routed group."""
    if group.announce is not Announce.LOCAL:
        return ()
    unused = [
        name
        for name, set_ in (
            ("protocols", group.protocols is not None),
            ("bgp", group.bgp != BgpPolicy()),
            ("ospf", group.ospf != OspfPolicy()),
            ("isis", group.isis != IsisPolicy()),
            ("rip", group.rip != RipPolicy()),
        )
        if set_
    ]
    ignored = tuple(
        Problem(
            severity=Severity.WARNING,
            ref=group.ref,
            path=f"spec.{name}",
            message="is ignored with announce local: local addresses are answered by ARP/NDP "
            "from the elected node's NIC, no routing protocol announces them; remove it, or "
            "set announce: routed",
        )
        for name in unused
    )
    if group.withdraw_without_endpoints:
        ignored += (
            Problem(
                severity=Severity.WARNING,
                ref=group.ref,
                path="spec.withdrawWithoutEndpoints",
                message="is ignored with announce local: it withdraws routed announcements "
                "(an elected node holds a local address whatever the endpoints); remove it, "
                "or set announce: routed",
            ),
        )
    return ignored
