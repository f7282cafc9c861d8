"""The lbroute API (group ``lbroute.io``, version ``v1alpha1``) as frozen, typed dataclasses.

Objects arrive as plain dicts (from YAML or the Kubernetes API) and are converted here,
once, by :func:`parse_object`. Everything downstream works on these types only. Each
parse collects every problem of one object and raises :class:`InvalidObject` with all
of them; :func:`load` turns a batch of dicts into a :class:`Model` and skips the
invalid objects so that the valid ones still render.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from lbroute.model.errors import InvalidObject, ObjectRef, Problem, Severity
from lbroute.model.fields import (
    INTERFACE_RE,
    INTERFACE_VALID,
    LABEL_KEY_RE,
    LABEL_VALUE_RE,
    NAME_RE,
    SECRET_CHARS,
    SECRET_RE,
    IPAddress,
    IPNetwork,
    Reader,
    parse_ip,
    parse_network,
)

GROUP = "lbroute.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
LOADBALANCER_CLASS = "lbroute.io/lbroute"
DEFAULT_INTERFACE = "kube-lb0"
DEFAULT_LOCAL_ASN = 64512
ROUTE_TABLE_DEFAULT = 4242
"""Kernel routing table where the agent keeps one route per announced prefix."""
ROUTE_PROTO = 0x4C
"""Routing protocol number of those routes ('L')."""


class Family(StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @property
    def host_length(self) -> int:
        return 32 if self is Family.IPV4 else 128

    @classmethod
    def of(cls, value: IPAddress | IPNetwork) -> Family:
        return cls.IPV4 if value.version == 4 else cls.IPV6


class Protocol(StrEnum):
    BGP = "bgp"
    OSPF = "ospf"
    RIP = "rip"
    ISIS = "isis"


class Router(StrEnum):
    BIRD = "bird"
    FRR = "frr"


class Mode(StrEnum):
    MANAGED = "managed"
    INCLUDE = "include"


class Announce(StrEnum):
    ROUTED = "routed"
    LOCAL = "local"


class IsisLevel(StrEnum):
    LEVEL_1 = "level-1"
    LEVEL_2 = "level-2"
    LEVEL_1_2 = "level-1-2"


class OspfNetworkType(StrEnum):
    BROADCAST = "broadcast"
    POINT_TO_POINT = "point-to-point"
    NON_BROADCAST = "non-broadcast"
    POINT_TO_MULTIPOINT = "point-to-multipoint"


class IsisNetworkType(StrEnum):
    BROADCAST = "broadcast"
    POINT_TO_POINT = "point-to-point"


def _choices(enum: type[StrEnum]) -> dict[str, Any]:
    return {member.value: member for member in enum}


# -- selectors --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True, kw_only=True)
class LabelSelector:
    """A Kubernetes label selector. The empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )


EVERYTHING = LabelSelector()


def _selector(r: Reader, key: str) -> LabelSelector:
    if not r.has(key):
        return EVERYTHING
    s = r.child(key)
    s.unknown({"matchLabels", "matchExpressions"})
    labels: list[tuple[str, str]] = []
    ml = s.child("matchLabels")
    for k, v in sorted(ml.data.items(), key=lambda kv: str(kv[0])):
        if not isinstance(k, str) or not LABEL_KEY_RE.fullmatch(k):
            ml.error(str(k), "is not a valid label key (prefix/name, letters, digits, '-_.')")
        elif not isinstance(v, str) or not LABEL_VALUE_RE.fullmatch(v):
            ml.error(k, f"{v!r} is not a valid label value (up to 63 letters, digits, '-_.')")
        else:
            labels.append((k, v))
    exprs: list[Requirement] = []
    for _i, item, path in s.items("matchExpressions"):
        e = s.item_reader(item, path)
        e.unknown({"key", "operator", "values"})
        key_ = e.str_("key", pattern=LABEL_KEY_RE, valid="a label key", required=True)
        op = e.choice(
            "operator",
            {"In": "In", "NotIn": "NotIn", "Exists": "Exists", "DoesNotExist": "DoesNotExist"},
        )
        if op is None and not e.has("operator"):
            e.error("operator", "is required: one of In, NotIn, Exists, DoesNotExist")
        values: list[str] = []
        for _j, v, vpath in e.items("values"):
            if not isinstance(v, str) or not LABEL_VALUE_RE.fullmatch(v):
                e.item_reader({}, vpath).error("", f"{v!r} is not a valid label value")
            else:
                values.append(v)
        if op in ("In", "NotIn") and not values:
            e.error("values", f"must not be empty with operator {op}")
        if op in ("Exists", "DoesNotExist") and values:
            e.error("values", f"must be empty with operator {op}")
        if key_ is not None and op is not None:
            exprs.append(Requirement(key=key_, operator=op, values=tuple(sorted(values))))
    return LabelSelector(match_labels=tuple(labels), match_expressions=tuple(exprs))


# -- ServiceGroup -------------------------------------------------------------------------


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

    def overlaps(self, other: Pool) -> bool:
        return (
            self.family == other.family
            and int(self.first) <= int(other.last)
            and int(other.first) <= int(self.last)
        )

    def __str__(self) -> str:
        if self.cidr is not None:
            return str(self.cidr)
        return f"{self.first}-{self.last}"


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


@dataclass(frozen=True, kw_only=True)
class BgpPolicy:
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()
    local_pref: int | None = None
    med: int | None = None
    prepend: int = 0
    """How many times the local ASN is prepended to the AS path."""


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

    @property
    def name(self) -> str:
        return self.ref.name

    @functools.cached_property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def families(self) -> tuple[Family, ...]:
        return tuple(f for f in Family if any(p.family is f for p in self.pools))

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
        r.error("aggregation", f"{value!r} is not valid; expected {hint}")
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
    family = Family.of(first)
    subnet = r.convert("subnet", parse_network, "a network such as 192.0.2.0/24")
    if subnet is not None:
        if subnet.version != first.version:
            r.error("subnet", f"{subnet} is not of the pool's family ({family})")
            subnet = None
        elif first not in subnet or last not in subnet:
            r.error("subnet", f"{subnet} does not contain the whole pool {first}-{last}")
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


def _parse_range(value: Any) -> tuple[IPAddress, IPAddress]:
    if not isinstance(value, str) or value.count("-") != 1:
        raise ValueError("")
    a, b = (parse_ip(part.strip()) for part in value.split("-"))
    if a.version != b.version:
        raise ValueError("both ends must be of one family")
    if int(a) > int(b):
        raise ValueError("the first address is after the last")
    return a, b


_U16 = (0, 65535)
_U32 = (0, 4294967295)


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
    return LargeCommunity(global_admin=a, data1=b, data2=c)


def _bgp_policy(r: Reader) -> BgpPolicy:
    r.unknown({"communities", "largeCommunities", "localPref", "med", "asPathPrepend"})
    communities = []
    for i, item, _ in r.items("communities"):
        c = r.convert_item("communities", i, item, _community, "ASN:VALUE, each 0-65535")
        if c is not None:
            communities.append(c)
    larges = []
    for i, item, _ in r.items("largeCommunities"):
        lc = r.convert_item(
            "largeCommunities", i, item, _large_community, "A:B:C, each 0-4294967295"
        )
        if lc is not None:
            larges.append(lc)
    return BgpPolicy(
        communities=tuple(sorted(set(communities))),
        large_communities=tuple(sorted(set(larges))),
        local_pref=r.int_("localPref", *_U32),
        med=r.int_("med", *_U32),
        prepend=r.int_("asPathPrepend", 0, 10) or 0,
    )


def parse_service_group(obj: Mapping[str, Any]) -> ServiceGroup:
    ref, meta, spec = _envelope(obj, "ServiceGroup")
    spec.unknown(
        {"pools", "announce", "protocols", "default", "nodeSelector", "bgp", "ospf", "isis", "rip"}
    )
    pools: list[Pool] = []
    for _i, item, path in spec.items("pools"):
        pool = _pool(spec.item_reader(item, path))
        if pool is not None:
            pools.append(pool)
    if not spec.has("pools") or not spec.raw("pools"):
        spec.error("pools", "is required: at least one pool with a cidr or a range")
    for i, a in enumerate(pools):
        for b in pools[i + 1 :]:
            if a.overlaps(b):
                spec.error("pools", f"pools {a} and {b} overlap; each address may be in one pool")
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
        metric=s.int_("metric", 0, 16777215), level=s.choice("level", _choices(IsisLevel))
    )
    rp = spec.child("rip")
    rp.unknown({"metric"})
    rip = RipPolicy(metric=rp.int_("metric", 1, 15))
    group = ServiceGroup(
        ref=ref,
        labels=_labels(meta),
        node_selector=_selector(spec, "nodeSelector"),
        default=spec.bool_("default", False),
        announce=spec.choice("announce", _choices(Announce), default=Announce.ROUTED)
        or Announce.ROUTED,
        pools=tuple(pools),
        protocols=protocols,
        bgp=bgp,
        ospf=ospf,
        isis=isis,
        rip=rip,
    )
    _raise_if_failed(spec)
    return group


# -- Peer -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SecretRef:
    name: str
    key: str


@dataclass(frozen=True, kw_only=True)
class Bfd:
    min_rx: int = 300
    """Milliseconds."""
    min_tx: int = 300
    multiplier: int = 3


@dataclass(frozen=True, kw_only=True)
class BgpPeer:
    address: IPAddress | None = None
    interface: str | None = None
    """Unnumbered BGP on this interface (FRR only)."""
    asn: int | None = None
    """Remote ASN; None with ``interface`` means 'external' (FRR)."""
    local_asn: int | None = None
    port: int = 179
    hold_time: int | None = None
    keepalive_time: int | None = None
    connect_time: int | None = None
    ebgp_multihop: int | None = None
    source_address: IPAddress | None = None
    password_ref: SecretRef | None = None
    password: str | None = None
    bfd: Bfd | None = None
    graceful_restart: bool = False
    families: tuple[Family, ...] = (Family.IPV4,)


@dataclass(frozen=True, kw_only=True)
class OspfInterface:
    name: str
    cost: int | None = None
    network_type: OspfNetworkType | None = None
    hello_interval: int | None = None
    dead_interval: int | None = None
    passive: bool = False


@dataclass(frozen=True, kw_only=True)
class OspfPeer:
    area: ipaddress.IPv4Address
    interfaces: tuple[OspfInterface, ...]
    bfd: Bfd | None = None
    auth_ref: SecretRef | None = None
    auth_key: str | None = None
    """OSPFv2 MD5 key (key id 1); OSPFv3 has no authentication here."""
    families: tuple[Family, ...] = (Family.IPV4,)


@dataclass(frozen=True, kw_only=True)
class RipTimers:
    update: int
    timeout: int
    garbage: int


@dataclass(frozen=True, kw_only=True)
class RipPeer:
    interfaces: tuple[str, ...]
    version: int = 2
    timers: RipTimers | None = None
    auth_ref: SecretRef | None = None
    auth_key: str | None = None
    families: tuple[Family, ...] = (Family.IPV4,)


@dataclass(frozen=True, kw_only=True)
class IsisInterface:
    name: str
    metric: int | None = None
    network_type: IsisNetworkType | None = None
    passive: bool = False


@dataclass(frozen=True, kw_only=True)
class IsisPeer:
    area: str
    """Area address such as 49.0001."""
    level: IsisLevel = IsisLevel.LEVEL_2
    interfaces: tuple[IsisInterface, ...]
    metric: int | None = None
    bfd: Bfd | None = None
    families: tuple[Family, ...] = (Family.IPV4,)


@dataclass(frozen=True, kw_only=True)
class Peer:
    ref: ObjectRef
    node_selector: LabelSelector = EVERYTHING
    service_group_selector: LabelSelector = EVERYTHING
    bgp: BgpPeer | None = None
    ospf: OspfPeer | None = None
    rip: RipPeer | None = None
    isis: IsisPeer | None = None

    @property
    def name(self) -> str:
        return self.ref.name

    @functools.cached_property
    def protocol(self) -> Protocol:
        for proto in Protocol:
            if getattr(self, proto.value) is not None:
                return proto
        raise AssertionError("a parsed Peer has exactly one protocol")

    @property
    def families(self) -> tuple[Family, ...]:
        spec: BgpPeer | OspfPeer | RipPeer | IsisPeer = getattr(self, self.protocol.value)
        return spec.families

    def carries(self, group: ServiceGroup) -> bool:
        if not self.service_group_selector.matches(group.label_map):
            return False
        return group.protocols is None or self.protocol in group.protocols


def _bfd(r: Reader) -> Bfd | None:
    """``bfd: {}`` turns BFD on with default timers; ``enabled: false`` turns it off."""
    if not r.has("bfd"):
        return None
    if not isinstance(r.raw("bfd"), dict):
        r.error("bfd", f"must be an object such as {{}} or {{minRx: 300, minTx: 300}}, not "
                       f"{r.raw('bfd')!r}")  # fmt: skip
        return None
    b = r.child("bfd")
    b.unknown({"enabled", "minRx", "minTx", "multiplier"})
    bfd = Bfd(
        min_rx=b.int_("minRx", 10, 60000, unit="ms") or 300,
        min_tx=b.int_("minTx", 10, 60000, unit="ms") or 300,
        multiplier=b.int_("multiplier", 2, 255) or 3,
    )
    return bfd if b.bool_("enabled", True) else None


def _secret_ref(r: Reader, key: str) -> SecretRef | None:
    if not r.has(key):
        return None
    s = r.child(key)
    s.unknown({"name", "key"})
    name = s.str_("name", pattern=NAME_RE, valid="a Secret name", required=True)
    k = s.str_(
        "key",
        pattern=re.compile(r"[-._a-zA-Z0-9]{1,253}"),
        valid="a key in the Secret's data",
    )
    if name is None:
        return None
    return SecretRef(name=name, key=k or "password")


def _families(r: Reader, default: tuple[Family, ...]) -> tuple[Family, ...]:
    if not r.has("families"):
        return default
    found: set[Family] = set()
    for i, item, _ in r.items("families"):
        f = r.convert_item("families", i, item, Family, "ipv4 or ipv6")
        if f is not None:
            found.add(f)
    if not found:
        r.error("families", "must name at least one of ipv4, ipv6")
        return default
    return tuple(f for f in Family if f in found)


def _bgp_peer(r: Reader) -> BgpPeer:
    r.unknown(
        {
            "address",
            "interface",
            "asn",
            "localASN",
            "port",
            "holdTime",
            "keepaliveTime",
            "connectTime",
            "ebgpMultihop",
            "sourceAddress",
            "passwordSecretRef",
            "bfd",
            "gracefulRestart",
            "families",
        }
    )
    address = r.ip("address")
    interface = r.interface("interface")
    if (address is None) == (interface is None) and not any(
        p.path.endswith(("address", "interface")) for p in r.problems
    ):
        r.error("", "set exactly one of address (the neighbor's IP) or interface (unnumbered)")
    asn = r.int_("asn", 1, 4294967295, required=interface is None)
    hold = r.int_("holdTime", 0, 65535, unit="seconds")
    if hold is not None and 0 < hold < 3:
        r.error("holdTime", f"{hold} is not valid; expected 0 (no keepalives) or 3 to 65535")
    keepalive = r.int_("keepaliveTime", 0, 65535, unit="seconds")
    if hold is not None and keepalive is not None and hold and keepalive > hold // 3:
        r.error(
            "keepaliveTime",
            f"{keepalive} is more than a third of holdTime ({hold}); expected at most {hold // 3}",
        )
    if hold == 0 and keepalive:
        r.error("keepaliveTime", "must be 0 (or unset) when holdTime is 0")
    source = r.ip("sourceAddress")
    default_fam = (Family.of(address),) if address is not None else (Family.IPV4, Family.IPV6)
    families = _families(r, default_fam)
    if address is not None and source is not None and source.version != address.version:
        r.error("sourceAddress", f"{source} is not of the same family as address {address}")
    multihop = r.int_("ebgpMultihop", 1, 255)
    bfd = _bfd(r)
    if multihop is not None and bfd is not None and not r.has("sourceAddress"):
        r.error(
            "sourceAddress",
            "is required when bfd is used with ebgpMultihop (multihop BFD "
            "sessions need a fixed local address)",
        )
    return BgpPeer(
        address=address,
        interface=interface,
        asn=asn,
        local_asn=r.int_("localASN", 1, 4294967295),
        port=r.int_("port", 1, 65535) or 179,
        hold_time=hold,
        keepalive_time=keepalive,
        connect_time=r.int_("connectTime", 1, 65535, unit="seconds"),
        ebgp_multihop=multihop,
        source_address=source,
        password_ref=_secret_ref(r, "passwordSecretRef"),
        bfd=bfd,
        graceful_restart=r.bool_("gracefulRestart", False),
        families=families,
    )


def _interfaces(r: Reader, *, objects: bool) -> list[tuple[Reader, str]]:
    """The ``interfaces`` list: objects with a ``name`` (OSPF, IS-IS) or plain names (RIP)."""
    out: list[tuple[Reader, str]] = []
    for _i, item, path in r.items("interfaces"):
        if objects and not isinstance(item, dict):
            r.item_reader({}, path).error("", f"must be an object such as {{name: eth0}}, not "
                                              f"{item!r}")  # fmt: skip
            continue
        if not objects and not isinstance(item, str):
            r.item_reader({}, path).error("", f"must be an interface name such as eth0, not "
                                              f"{item!r}")  # fmt: skip
            continue
        ir = r.item_reader(item if objects else {"name": item}, path)
        name = ir.interface("name", required=True) if objects else _name_only(ir, item, path)
        if name is not None:
            out.append((ir, name))
    if not r.raw("interfaces"):
        r.error("interfaces", "is required: at least one interface (for example eth0)")
    names = [n for _, n in out]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        r.error("interfaces", f"interface {dup} is listed more than once")
    return out


def _name_only(r: Reader, item: str, path: str) -> str | None:
    if INTERFACE_RE.fullmatch(item):
        return item
    r.item_reader({}, path).error("", f"{item!r} is not valid; expected {INTERFACE_VALID}")
    return None


_OSPF_IFACE = ("cost", "networkType", "helloInterval", "deadInterval")


def _ospf_iface_values(r: Reader) -> dict[str, Any]:
    """Validated per-interface OSPF settings present in ``r`` (absent ones left out)."""
    values = {
        "cost": r.int_("cost", 1, 65535),
        "networkType": r.choice("networkType", _choices(OspfNetworkType)),
        "helloInterval": r.int_("helloInterval", 1, 65535, unit="seconds"),
        "deadInterval": r.int_("deadInterval", 1, 65535, unit="seconds"),
    }
    return {k: v for k, v in values.items() if v is not None}


def _ospf_peer(r: Reader) -> OspfPeer:
    r.unknown({"area", "interfaces", *_OSPF_IFACE, "bfd", "authSecretRef", "families"})
    area = r.convert("area", _area, "an area as a number or dotted quad such as 0.0.0.0")
    base = _ospf_iface_values(r)
    hello, dead = base.get("helloInterval"), base.get("deadInterval")
    if hello is not None and dead is not None and dead <= hello:
        r.error("deadInterval", f"{dead} must be greater than helloInterval ({hello})")
    interfaces = []
    for ir, name in _interfaces(r, objects=True):
        ir.unknown({"name", *_OSPF_IFACE, "passive"})
        own = _ospf_iface_values(ir)
        merged = {**base, **own}
        hello, dead = merged.get("helloInterval"), merged.get("deadInterval")
        overridden = {"helloInterval", "deadInterval"} & set(own)
        if overridden and hello is not None and dead is not None and dead <= hello:
            ir.error("deadInterval", f"{dead} must be greater than helloInterval ({hello})")
        interfaces.append(
            OspfInterface(
                name=name,
                cost=merged.get("cost"),
                network_type=merged.get("networkType"),
                hello_interval=hello,
                dead_interval=dead,
                passive=ir.bool_("passive", False),
            )
        )
    return OspfPeer(
        area=area or ipaddress.IPv4Address(0),
        interfaces=tuple(sorted(interfaces, key=lambda i: i.name)),
        bfd=_bfd(r),
        auth_ref=_secret_ref(r, "authSecretRef"),
        families=_families(r, (Family.IPV4,)),
    )


def _area(value: Any) -> ipaddress.IPv4Address:
    if isinstance(value, int) and not isinstance(value, bool):
        return ipaddress.IPv4Address(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,10}", value):
        return ipaddress.IPv4Address(int(value))
    if isinstance(value, str):
        return ipaddress.IPv4Address(value)
    raise TypeError("")


def _rip_peer(r: Reader) -> RipPeer:
    r.unknown({"interfaces", "version", "timers", "authSecretRef", "families"})
    names = [name for _, name in _interfaces(r, objects=False)]
    timers = None
    if r.has("timers"):
        t = r.child("timers")
        t.unknown({"update", "timeout", "garbage"})
        update = t.int_("update", 1, 65535, required=True, unit="seconds")
        timeout = t.int_("timeout", 1, 65535, required=True, unit="seconds")
        garbage = t.int_("garbage", 1, 65535, required=True, unit="seconds")
        if update and timeout and timeout <= update:
            t.error("timeout", f"{timeout} must be greater than update ({update})")
        if update and timeout and garbage:
            timers = RipTimers(update=update, timeout=timeout, garbage=garbage)
    version = r.choice("version", {"1": 1, "2": 2}, default=2) or 2
    auth_ref = _secret_ref(r, "authSecretRef")
    if auth_ref is not None and version == 1:
        r.error("authSecretRef", "RIP version 1 has no authentication; use version 2")
    return RipPeer(
        interfaces=tuple(sorted(names)),
        version=version,
        timers=timers,
        auth_ref=auth_ref,
        families=_families(r, (Family.IPV4,)),
    )


ISIS_AREA_RE = re.compile(r"[0-9a-fA-F]{2}(\.[0-9a-fA-F]{4}){0,6}")


def _isis_peer(r: Reader) -> IsisPeer:
    r.unknown({"area", "level", "interfaces", "metric", "bfd", "families"})
    area = r.str_(
        "area",
        pattern=ISIS_AREA_RE,
        valid="an IS-IS area address: two hex digits then up to six .XXXX groups, e.g. 49.0001",
        required=True,
    )
    interfaces = []
    for ir, name in _interfaces(r, objects=True):
        ir.unknown({"name", "metric", "networkType", "passive"})
        interfaces.append(
            IsisInterface(
                name=name,
                metric=ir.int_("metric", 1, 16777215),
                network_type=ir.choice("networkType", _choices(IsisNetworkType)),
                passive=ir.bool_("passive", False),
            )
        )
    return IsisPeer(
        area=(area or "49.0001").lower(),
        level=r.choice("level", _choices(IsisLevel), default=IsisLevel.LEVEL_2)
        or IsisLevel.LEVEL_2,
        interfaces=tuple(sorted(interfaces, key=lambda i: i.name)),
        metric=r.int_("metric", 1, 16777215),
        bfd=_bfd(r),
        families=_families(r, (Family.IPV4,)),
    )


def parse_peer(obj: Mapping[str, Any]) -> Peer:
    ref, _meta, spec = _envelope(obj, "Peer")
    spec.unknown({"nodeSelector", "serviceGroupSelector", "bgp", "ospf", "rip", "isis"})
    chosen = [p for p in Protocol if spec.has(p.value)]
    kwargs: dict[str, Any] = {}
    if len(chosen) != 1:
        spec.error(
            "",
            "set exactly one of bgp, ospf, rip, isis"
            + (f" (found {', '.join(chosen)})" if chosen else ""),
        )
    else:
        proto = chosen[0]
        parser = {
            Protocol.BGP: _bgp_peer,
            Protocol.OSPF: _ospf_peer,
            Protocol.RIP: _rip_peer,
            Protocol.ISIS: _isis_peer,
        }[proto]
        kwargs[proto.value] = parser(spec.child(proto.value))
    peer = Peer(
        ref=ref,
        node_selector=_selector(spec, "nodeSelector"),
        service_group_selector=_selector(spec, "serviceGroupSelector"),
        **kwargs,
    )
    _raise_if_failed(spec)
    return peer


# -- NodeAgent ----------------------------------------------------------------------------

PATH_RE = re.compile(r"/[A-Za-z0-9_.\-/]{0,255}")
PATH_VALID = "an absolute path of letters, digits, '_', '.', '-' and '/'"


@dataclass(frozen=True, kw_only=True)
class NodeAgent:
    ref: ObjectRef
    node_selector: LabelSelector = EVERYTHING
    router: Router = Router.BIRD
    mode: Mode = Mode.MANAGED
    router_id: ipaddress.IPv4Address | None = None
    local_asn: int = DEFAULT_LOCAL_ASN
    interface: str = DEFAULT_INTERFACE
    """The dummy interface that carries Service addresses."""
    local_interface: str = "default"
    """NIC for local announcements; ``default`` = the one holding the default route."""
    templates_dir: str | None = None
    fast_convergence: bool = True
    config_path: str | None = None
    socket_path: str | None = None
    include_path: str | None = None
    reload_command: tuple[str, ...] = ()


def _ipv4(value: Any) -> ipaddress.IPv4Address:
    address = parse_ip(value)
    if not isinstance(address, ipaddress.IPv4Address):
        raise ValueError("")
    return address


def parse_node_agent(obj: Mapping[str, Any]) -> NodeAgent:
    ref, _meta, spec = _envelope(obj, "NodeAgent")
    spec.unknown(
        {
            "nodeSelector",
            "router",
            "mode",
            "routerID",
            "localASN",
            "interface",
            "localInterface",
            "templatesDir",
            "fastConvergence",
            "configPath",
            "socketPath",
            "includePath",
            "reloadCommand",
        }
    )
    router_id = spec.convert("routerID", _ipv4, "an IPv4 address such as 10.0.0.1")
    mode = spec.choice("mode", _choices(Mode), default=Mode.MANAGED) or Mode.MANAGED
    local_interface = spec.raw("localInterface")
    if local_interface != "default":
        local_interface = spec.interface("localInterface")
    reload_command: list[str] = []
    for i, item, _ in spec.items("reloadCommand"):
        if not isinstance(item, str) or not re.fullmatch(r"[A-Za-z0-9_.,:=@%+/\-]{1,255}", item):
            spec.child("reloadCommand").error(
                i, f"{item!r} is not valid; expected one argument of letters, digits, _.,:=@%+/-"
            )
        else:
            reload_command.append(item)
    include_path = spec.str_("includePath", pattern=PATH_RE, valid=PATH_VALID)
    if mode is Mode.INCLUDE and include_path is None and not spec.failed:
        spec.error("includePath", "is required with mode include: the file the fragment goes to")
    agent = NodeAgent(
        ref=ref,
        node_selector=_selector(spec, "nodeSelector"),
        router=spec.choice("router", _choices(Router), default=Router.BIRD) or Router.BIRD,
        mode=mode,
        router_id=router_id,
        local_asn=spec.int_("localASN", 1, 4294967295) or DEFAULT_LOCAL_ASN,
        interface=spec.interface("interface") or DEFAULT_INTERFACE,
        local_interface=local_interface or "default",
        templates_dir=spec.str_("templatesDir", pattern=PATH_RE, valid=PATH_VALID),
        fast_convergence=spec.bool_("fastConvergence", True),
        config_path=spec.str_("configPath", pattern=PATH_RE, valid=PATH_VALID),
        socket_path=spec.str_("socketPath", pattern=PATH_RE, valid=PATH_VALID),
        include_path=include_path,
        reload_command=tuple(reload_command),
    )
    _raise_if_failed(spec)
    return agent


# -- Node and Secret ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Node:
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    addresses: tuple[IPAddress, ...] = ()
    """InternalIP addresses, in the order the Node lists them."""

    @property
    def ipv4(self) -> ipaddress.IPv4Address | None:
        for a in self.addresses:
            if isinstance(a, ipaddress.IPv4Address):
                return a
        return None


def parse_node(obj: Mapping[str, Any]) -> Node:
    ref, meta, _spec = _envelope(obj, "Node", namespaced=False, spec_required=False)
    status = Reader(obj.get("status"), ref, "status", meta.problems)
    addresses = []
    for _i, item, path in status.items("addresses"):
        a = status.item_reader(item, path)
        if a.raw("type") in ("InternalIP", "ExternalIP"):
            ip = a.ip("address")
            if ip is not None and a.raw("type") == "InternalIP":
                addresses.append(ip)
    _raise_if_failed(meta)
    return Node(name=ref.name, labels=_labels(meta), addresses=tuple(addresses))


@dataclass(frozen=True, kw_only=True)
class Secret:
    ref: ObjectRef
    data: tuple[tuple[str, str], ...]
    """Decoded values that are valid router secrets; others are left out."""

    def get(self, key: str) -> str | None:
        return dict(self.data).get(key)


def parse_secret(obj: Mapping[str, Any]) -> Secret:
    ref, _meta, _spec = _envelope(obj, "Secret", spec_required=False)
    values: dict[str, str] = {}
    data = obj.get("data") or {}
    if isinstance(data, Mapping):
        for k, v in data.items():
            try:
                values[str(k)] = base64.b64decode(str(v), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
    string_data = obj.get("stringData") or {}
    if isinstance(string_data, Mapping):
        values.update({str(k): str(v) for k, v in string_data.items()})
    return Secret(ref=ref, data=tuple(sorted(values.items())))


def secret_value(ref: SecretRef, secret: Secret | None, owner: Reader, path: str) -> str | None:
    """Resolve a secret for a Peer, reporting a missing or unusable one on the Peer."""
    if secret is None:
        owner.error(path, f"Secret {ref.name} not found in namespace {owner.ref.namespace}")
        return None
    value = secret.get(ref.key)
    if value is None:
        owner.error(path, f"Secret {ref.name} has no key {ref.key!r}")
        return None
    if not SECRET_RE.fullmatch(value):
        owner.error(
            path,
            f"the value of Secret {ref.name} key {ref.key!r} is not usable; "
            f"expected {SECRET_CHARS}",
        )
        return None
    return value


# -- envelope and batch loading -------------------------------------------------------------


def _envelope(
    obj: Mapping[str, Any], kind: str, *, namespaced: bool = True, spec_required: bool = True
) -> tuple[ObjectRef, Reader, Reader]:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    name = meta.get("name")
    namespace = meta.get("namespace") or ("default" if namespaced else "")
    ref = ObjectRef(kind=kind, namespace=str(namespace), name=str(name or "<no name>"))
    problems: list[Problem] = []
    m = Reader(meta, ref, "metadata", problems)
    m.str_("name", pattern=NAME_RE, valid="a lowercase DNS name", required=True)
    if namespaced:
        m.str_("namespace", pattern=NAME_RE, valid="a lowercase DNS label")
    want_version = "v1" if kind in ("Node", "Secret") else API_VERSION
    if obj.get("apiVersion") != want_version:
        m.problems.append(
            Problem(
                severity=Severity.ERROR,
                ref=ref,
                path="apiVersion",
                message=f"{obj.get('apiVersion')!r} is not {want_version}",
            )
        )
    spec = Reader(obj.get("spec"), ref, "spec", problems)
    if spec_required and obj.get("spec") is None:
        spec.error("", "is required")
    return ref, m, spec


def _labels(meta: Reader) -> tuple[tuple[str, str], ...]:
    labels = meta.raw("labels") or {}
    if not isinstance(labels, Mapping):
        meta.error("labels", "must be an object of label key to value")
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def _raise_if_failed(r: Reader) -> None:
    if r.failed:
        raise InvalidObject(r.ref, tuple(r.problems))


Parsed = ServiceGroup | Peer | NodeAgent | Node | Secret

KINDS: dict[tuple[str, str], Callable[[Mapping[str, Any]], Parsed]] = {
    ("lbroute.io/v1alpha1", "ServiceGroup"): parse_service_group,
    ("lbroute.io/v1alpha1", "Peer"): parse_peer,
    ("lbroute.io/v1alpha1", "NodeAgent"): parse_node_agent,
    ("v1", "Node"): parse_node,
    ("v1", "Secret"): parse_secret,
}


def parse_object(obj: Mapping[str, Any]) -> Parsed | None:
    """Convert one API object; None for kinds lbroute ignores. Raises InvalidObject."""
    if not isinstance(obj, Mapping):
        return None
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    parser = KINDS.get((str(api_version), str(kind)))
    if parser is None:
        if str(api_version).startswith(GROUP + "/") and kind in (
            "ServiceGroup",
            "Peer",
            "NodeAgent",
        ):
            raw_meta = obj.get("metadata")
            meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
            ref = ObjectRef(
                kind=str(kind),
                namespace=str(meta.get("namespace") or "default"),
                name=str(meta.get("name", "<no name>")),
            )
            raise InvalidObject(
                ref,
                (
                    Problem(
                        severity=Severity.ERROR,
                        ref=ref,
                        path="apiVersion",
                        message=f"{api_version!r} is not served; use {API_VERSION}",
                    ),
                ),
            )
        return None
    return parser(obj)


@dataclass(frozen=True, kw_only=True)
class Model:
    """Every valid object, sorted by namespace and name, and the problems found loading."""

    service_groups: tuple[ServiceGroup, ...] = ()
    peers: tuple[Peer, ...] = ()
    node_agents: tuple[NodeAgent, ...] = ()
    nodes: tuple[Node, ...] = ()
    problems: tuple[Problem, ...] = ()

    def node(self, name: str) -> Node | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)


def load(objects: Iterable[Mapping[str, Any]]) -> Model:
    """Parse a batch of objects and run the cross-object checks; never raises for input."""
    problems: list[Problem] = []
    groups: list[ServiceGroup] = []
    peers: list[Peer] = []
    agents: list[NodeAgent] = []
    nodes: dict[str, Node] = {}
    secrets: dict[tuple[str, str], Secret] = {}
    for obj in objects:
        try:
            parsed = parse_object(obj)
        except InvalidObject as exc:
            problems.extend(exc.problems)
            continue
        if isinstance(parsed, ServiceGroup):
            groups.append(parsed)
        elif isinstance(parsed, Peer):
            peers.append(parsed)
        elif isinstance(parsed, NodeAgent):
            agents.append(parsed)
        elif isinstance(parsed, Node):
            nodes[parsed.name] = parsed
        elif isinstance(parsed, Secret):
            secrets[(parsed.ref.namespace, parsed.ref.name)] = parsed
    groups = _dedupe(groups, problems)
    peers = _dedupe(peers, problems)
    agents = _dedupe(agents, problems)
    peers = [p for p in (_resolve_secrets(p, secrets, problems) for p in peers) if p is not None]
    groups = _check_pool_overlaps(groups, problems)
    _check_peers_select_groups(peers, groups, problems)
    _check_defaults(groups, problems)
    return Model(
        service_groups=tuple(groups),
        peers=tuple(peers),
        node_agents=tuple(agents),
        nodes=tuple(sorted(nodes.values(), key=lambda n: n.name)),
        problems=tuple(problems),
    )


_Obj = TypeVar("_Obj", ServiceGroup, Peer, NodeAgent)


def _dedupe(items: list[_Obj], problems: list[Problem]) -> list[_Obj]:
    by_ref: dict[ObjectRef, _Obj] = {}
    for item in items:
        if item.ref in by_ref:
            problems.append(
                Problem(
                    severity=Severity.ERROR,
                    ref=item.ref,
                    path="metadata.name",
                    message="appears more than once; the first one is used",
                )
            )
            continue
        by_ref[item.ref] = item
    return [by_ref[k] for k in sorted(by_ref)]


def _resolve_secrets(
    peer: Peer, secrets: Mapping[tuple[str, str], Secret], problems: list[Problem]
) -> Peer | None:
    r = Reader({}, peer.ref, "spec", [])
    ns = peer.ref.namespace
    if peer.bgp is not None and peer.bgp.password_ref is not None:
        ref = peer.bgp.password_ref
        value = secret_value(ref, secrets.get((ns, ref.name)), r, "bgp.passwordSecretRef")
        peer = _replace(peer, bgp=_replace(peer.bgp, password=value))
    if peer.ospf is not None and peer.ospf.auth_ref is not None:
        ref = peer.ospf.auth_ref
        value = secret_value(ref, secrets.get((ns, ref.name)), r, "ospf.authSecretRef")
        if value is not None and len(value) > 16:
            r.error("ospf.authSecretRef", "an OSPF MD5 key is at most 16 characters")
        peer = _replace(peer, ospf=_replace(peer.ospf, auth_key=value))
    if peer.rip is not None and peer.rip.auth_ref is not None:
        ref = peer.rip.auth_ref
        value = secret_value(ref, secrets.get((ns, ref.name)), r, "rip.authSecretRef")
        if value is not None and len(value) > 16:
            r.error("rip.authSecretRef", "a RIP MD5 key is at most 16 characters")
        peer = _replace(peer, rip=_replace(peer.rip, auth_key=value))
    problems.extend(r.problems)
    return None if r.failed else peer


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def _check_pool_overlaps(groups: list[ServiceGroup], problems: list[Problem]) -> list[ServiceGroup]:
    """A pool may belong to one ServiceGroup; the later group (by namespace/name) is skipped.

    Kept pools are held sorted per family, so each check is a binary search.
    """
    kept: list[ServiceGroup] = []
    spans: dict[Family, list[tuple[int, int, Pool, ServiceGroup]]] = {f: [] for f in Family}
    for group in groups:
        clash = None
        for a in group.pools:
            taken = spans[a.family]
            i = bisect.bisect_left(taken, (int(a.first),))
            for first, last, b, other in taken[max(0, i - 1) : i + 1]:
                if first <= int(a.last) and int(a.first) <= last:
                    clash = (other, a, b)
                    break
            if clash:
                break
        if clash is not None:
            other, a, b = clash
            problems.append(
                Problem(
                    severity=Severity.ERROR,
                    ref=group.ref,
                    path=f"spec.pools[{group.pools.index(a)}]",
                    message=f"pool {a} overlaps pool {b} of {other.ref}; pools of different "
                    "ServiceGroups must not overlap (this ServiceGroup is skipped)",
                )
            )
            continue
        kept.append(group)
        for a in group.pools:
            bisect.insort(
                spans[a.family], (int(a.first), int(a.last), a, group), key=lambda t: t[:2]
            )
    return kept


def _check_peers_select_groups(
    peers: list[Peer], groups: list[ServiceGroup], problems: list[Problem]
) -> None:
    for peer in peers:
        if not any(peer.carries(g) for g in groups):
            problems.append(
                Problem(
                    severity=Severity.WARNING,
                    ref=peer.ref,
                    path="spec.serviceGroupSelector",
                    message=f"selects no ServiceGroup that uses {peer.protocol}; the session is "
                    "set up but announces nothing",
                )
            )


def _check_defaults(groups: list[ServiceGroup], problems: list[Problem]) -> None:
    defaults = [g for g in groups if g.default]
    for g in defaults[1:]:
        problems.append(
            Problem(
                severity=Severity.WARNING,
                ref=g.ref,
                path="spec.default",
                message=f"{defaults[0].ref} is also marked default; Services that name no group "
                f"get addresses from {defaults[0].ref}",
            )
        )
