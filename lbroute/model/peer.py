"""The Peer kind: one peering of the node's router, over exactly one protocol.

A Peer is a BGP neighbor (by address, or unnumbered on an interface), an OSPF area, a
RIP instance or an IS-IS area on some of the node's interfaces, with its timers, BFD,
address families and authentication (a reference to a Secret, resolved in
:mod:`lbroute.model.model` where the Secrets are known, into a
:class:`~lbroute.model.secrets.SecretValue` that no repr or message shows). Its
selectors say on which nodes it exists and which ServiceGroups it carries
(:meth:`Peer.carries`). Adding an option to one protocol means its dataclass here and
its reader below it.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
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
    raise_if_failed,
    selector,
)
from lbroute.model.errors import ObjectRef, quote
from lbroute.model.fields import INTERFACE_RE, INTERFACE_VALID, IPAddress, Reader
from lbroute.model.secrets import SecretRef, SecretValue, secret_ref
from lbroute.model.servicegroup import ServiceGroup
from lbroute.model.vocabulary import PEER


class OspfNetworkType(StrEnum):
    BROADCAST = "broadcast"
    POINT_TO_POINT = "point-to-point"
    NON_BROADCAST = "non-broadcast"
    POINT_TO_MULTIPOINT = "point-to-multipoint"


class IsisNetworkType(StrEnum):
    BROADCAST = "broadcast"
    POINT_TO_POINT = "point-to-point"


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
    password: SecretValue | None = None
    """Resolved from ``password_ref`` by the model; shows as ``<secret>``."""
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
    auth_key: SecretValue | None = None
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
    auth_key: SecretValue | None = None
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
        """The Peer announces the group's routes: its selector takes the group, the group
        uses the Peer's protocol, and the group is routed (no router announces a local
        group's addresses: one node holds each on its NIC)."""
        if group.announce is Announce.LOCAL:
            return False
        if not self.service_group_selector.matches(group.label_map):
            return False
        return group.protocols is None or self.protocol in group.protocols


def _bfd(r: Reader) -> Bfd | None:
    """``bfd: {}`` turns BFD on with default timers; ``enabled: false`` turns it off."""
    if not r.has("bfd"):
        return None
    if not isinstance(r.raw("bfd"), dict):
        r.error("bfd", f"must be an object such as {{}} or {{minRx: 300, minTx: 300}}, not "
                       f"{quote(r.raw('bfd'))}")  # fmt: skip
        return None
    b = r.child("bfd")
    b.unknown({"enabled", "minRx", "minTx", "multiplier"})
    bfd = Bfd(
        min_rx=b.int_("minRx", 10, 60000, unit="ms") or 300,
        min_tx=b.int_("minTx", 10, 60000, unit="ms") or 300,
        multiplier=b.int_("multiplier", 2, 255) or 3,
    )
    return bfd if b.bool_("enabled", True) else None


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
        password_ref=secret_ref(r, "passwordSecretRef"),
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
                                              f"{quote(item)}")  # fmt: skip
            continue
        if not objects and not isinstance(item, str):
            r.item_reader({}, path).error("", f"must be an interface name such as eth0, not "
                                              f"{quote(item)}")  # fmt: skip
            continue
        ir = r.item_reader(item if objects else {"name": item}, path)
        name = ir.interface("name", required=True) if objects else _name_only(ir, item, path)
        if name is not None:
            out.append((ir, name))
    if not r.raw("interfaces"):
        r.error("interfaces", "is required: at least one interface (for example eth0)")
    names = [n for _, n in out]
    for dup in sorted(n for n, times in Counter(names).items() if times > 1):
        r.error("interfaces", f"interface {dup} is listed more than once")
    return out


def _name_only(r: Reader, item: str, path: str) -> str | None:
    if INTERFACE_RE.fullmatch(item):
        return item
    r.item_reader({}, path).error("", f"{quote(item)} is not valid; expected {INTERFACE_VALID}")
    return None


_OSPF_IFACE = ("cost", "networkType", "helloInterval", "deadInterval")


def _ospf_iface_values(r: Reader) -> dict[str, Any]:
    """Validated per-interface OSPF settings present in ``r`` (absent ones left out)."""
    values = {
        "cost": r.int_("cost", 1, 65535),
        "networkType": r.choice("networkType", choices(OspfNetworkType)),
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
        auth_ref=secret_ref(r, "authSecretRef"),
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
    auth_ref = secret_ref(r, "authSecretRef")
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
                network_type=ir.choice("networkType", choices(IsisNetworkType)),
                passive=ir.bool_("passive", False),
            )
        )
    return IsisPeer(
        area=(area or "49.0001").lower(),
        level=r.choice("level", choices(IsisLevel), default=IsisLevel.LEVEL_2) or IsisLevel.LEVEL_2,
        interfaces=tuple(sorted(interfaces, key=lambda i: i.name)),
        metric=r.int_("metric", 1, 16777215),
        bfd=_bfd(r),
        families=_families(r, (Family.IPV4,)),
    )


def parse_peer(obj: Mapping[str, Any]) -> Peer:
    ref, _meta, spec = envelope(obj, PEER)
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
        node_selector=selector(spec, "nodeSelector"),
        service_group_selector=selector(spec, "serviceGroupSelector"),
        **kwargs,
    )
    raise_if_failed(spec)
    return peer
