"""rtnetlink on the wire: the bytes of the messages lbroute sends and reads.

Pure functions, no socket: the message header and attribute formats, the requests that
add and delete an address or a route and ask for dumps of them (addresses, routes,
links, default routes), the requests for local addresses on a NIC (with lifetimes, and
their renewal), and the parsers of what a dump returns. :mod:`nodeagent.netlink.rtnl`
sends and receives them; the unit tests take them apart without root.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from lbroute.model.fields import IPNetwork
from nodeagent.desired import Interface

NLMSGHDR = struct.Struct("=IHHII")
"""length, type, flags, sequence number, port id"""
NLMSGERR = struct.Struct("=i")
RTATTR = struct.Struct("=HH")
IFADDRMSG = struct.Struct("=BBBBI")
RTMSG = struct.Struct("=BBBBBBBBI")
IFINFOMSG = struct.Struct("=BxHiII")
"""family, link type (ARPHRD_*), index, flags (IFF_*), change mask"""
U32 = struct.Struct("=I")
IFA_CACHEINFO_FMT = struct.Struct("=IIII")
"""preferred lifetime, valid lifetime (seconds), created, updated (1/100 s since boot)"""
RTNEXTHOP = struct.Struct("=HBBi")
"""length, flags, hops, link index: one next hop of RTA_MULTIPATH"""

NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
RTM_GETLINK, RTM_SETLINK = 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_REPLACE = 0x100
CREATE = NLM_F_REQUEST | NLM_F_ACK | 0x400 | 0x200  # NLM_F_CREATE | NLM_F_EXCL
REPLACE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE
"""Change an existing address in place (its lifetimes); the kernel creates it if absent."""

IFA_ADDRESS, IFA_LOCAL, IFA_CACHEINFO, IFA_FLAGS, IFA_RT_PRIORITY, IFA_PROTO = 1, 2, 6, 8, 9, 11
INFINITY_LIFE_TIME = 0xFFFFFFFF
IFA_F_NODAD = 0x02
"""IPv6: usable at once, no duplicate address detection (the address is a VIP)."""
IFA_F_NOPREFIXROUTE = 0x200
"""The kernel adds no prefix route of its own; lbroute keeps one per prefix instead."""
RTA_DST, RTA_OIF, RTA_PRIORITY, RTA_METRICS, RTA_MULTIPATH, RTA_TABLE = 1, 4, 6, 8, 9, 15
RTAX_WINDOW, RTAX_RTT = 3, 4
"""The route metrics that carry a weight (docs/weighted-ecmp.md) and a BGP class
(docs/bgp-classes.md) in lbroute's table: not part of the route's key, so a route is
replaced in place; the table is never used for forwarding, so the values change
nothing else."""
REPLACE_ROUTE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE | 0x400  # | NLM_F_CREATE
RTN_UNICAST, RT_TABLE_COMPAT, RT_TABLE_MAIN, RT_SCOPE_LINK = 1, 252, 254, 253
IFLA_ADDRESS, IFLA_IFNAME = 1, 3
IFLA_AF_SPEC, IFLA_INET_CONF = 26, 1
IFF_UP = 0x1
IPV4_DEVCONF_PROMOTE_SECONDARIES = 20

Request = tuple[int, int, bytes]
"""Message type, flags and body (everything after the netlink header)."""


@dataclass(frozen=True)
class Address:
    index: int
    address: str
    prefixlen: int
    proto: int | None
    valid_lft: int | None = None
    """Seconds left (:data:`INFINITY_LIFE_TIME`: forever); None without IFA_CACHEINFO."""
    preferred_lft: int | None = None
    created: int | None = None
    """When the kernel created the address (1/100 s since boot): a re-added address has
    a new one, a renewed address keeps it."""
    metric: int = 0
    """IFA_RT_PRIORITY: the weight FRR reads from the connected route (0: none)."""


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    up: bool
    mac: bytes
    """The link-layer address (6 bytes on Ethernet; empty when the link has none)."""


@dataclass(frozen=True)
class DefaultRoute:
    """A default route of the main table: the link it leaves through, and its metric."""

    family: int
    oif: int
    metric: int


@dataclass(frozen=True)
class Route:
    dst: str
    dst_len: int
    table: int
    proto: int
    oif: int | None
    window: int = 0
    """RTAX_WINDOW: the weight BIRD reads as ``krt_window`` (0: none)."""
    rtt: int = 0
    """RTAX_RTT: the BGP class BIRD reads as ``krt_rtt`` (0: none)."""

    @property
    def mark(self) -> tuple[int, int]:
        """(weight, class)."""
        return (self.window, self.rtt)


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute (rtattr, nlattr), padded to four bytes."""
    length = RTATTR.size + len(payload)
    return RTATTR.pack(length, kind) + payload + bytes(-length % 4)


def attrs(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    """The attributes in ``data[offset:end]``: kind (flags masked off) -> payload."""
    found = {}
    while offset + RTATTR.size <= end:
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size:
            break
        found[kind & 0x3FFF] = data[offset + RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    return found


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """The messages of one datagram: (type, sequence number, payload)."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, _flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size:
            break
        yield kind, seq, data[offset + NLMSGHDR.size : offset + length]
        offset += (length + 3) & ~3


def error_code(payload: bytes) -> int:
    """The errno of an NLMSG_ERROR payload (0: an acknowledgement)."""
    return -int(NLMSGERR.unpack_from(payload)[0])


def _family(version: int) -> int:
    return socket.AF_INET6 if version == 6 else socket.AF_INET


def add_address(iface: Interface, index: int, proto: int, metric: int = 0) -> Request:
    """Add ``iface`` on link ``index``, marked ``proto``, without a prefix route (and,
    for IPv6, without duplicate address detection); ``metric``: its IFA_RT_PRIORITY."""
    flags = IFA_F_NOPREFIXROUTE | (IFA_F_NODAD if iface.version == 6 else 0)
    body = _address(iface, index, flags) + attr(IFA_FLAGS, U32.pack(flags))
    body += attr(IFA_PROTO, bytes([proto]))
    if metric:
        body += attr(IFA_RT_PRIORITY, U32.pack(metric))
    return RTM_NEWADDR, CREATE, body


def change_address(iface: Interface, index: int, proto: int, metric: int) -> Request:
    """Set the metric of lbroute's address ``iface`` in place (NLM_F_REPLACE)."""
    kind, _flags, body = add_address(iface, index, proto, metric)
    if not metric:  # 0 must be said to replace a metric
        body += attr(IFA_RT_PRIORITY, U32.pack(0))
    return kind, REPLACE, body


def local_address(
    iface: Interface, index: int, proto: int, *, valid: int, renew: bool = False
) -> Request:
    """Add (or with ``renew``, refresh in place) a local address on a NIC: like
    :func:`add_address`, with a valid lifetime of ``valid`` seconds after which the
    kernel removes the address by itself. IPv6: preferred lifetime 0, so it is never
    picked as a source address; IPv4: preferred = valid (IPv4 source selection ignores
    deprecation, so marking it would change nothing but how ``ip addr`` shows it).

    A renewal (``NLM_F_REPLACE``) also rewrites the address's mark and creates the
    address if it is gone, so send it only for an address the dump showed as lbroute's."""
    preferred = 0 if iface.version == 6 else valid
    kind, flags, body = add_address(iface, index, proto)
    body += attr(IFA_CACHEINFO, IFA_CACHEINFO_FMT.pack(preferred, valid, 0, 0))
    return kind, REPLACE if renew else flags, body


def delete_address(iface: Interface, index: int) -> Request:
    return RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, _address(iface, index, 0)


def _address(iface: Interface, index: int, flags: int) -> bytes:
    packed = iface.ip.packed
    body = IFADDRMSG.pack(_family(iface.version), iface.network.prefixlen, flags & 0xFF, 0, index)
    if iface.version == 4:
        body += attr(IFA_LOCAL, packed)
    return body + attr(IFA_ADDRESS, packed)


def add_route(
    net: IPNetwork, table: int, oif: int, proto: int, mark: tuple[int, int] = (0, 0)
) -> Request:
    """A link-scope route to ``net`` through link ``oif`` in ``table``, marked ``proto``;
    ``mark``: the (weight, class) its RTAX_WINDOW and RTAX_RTT carry, none when 0."""
    return RTM_NEWROUTE, CREATE, _route(net, table, oif, proto) + _metrics(mark)


def replace_route(
    net: IPNetwork, table: int, oif: int, proto: int, mark: tuple[int, int]
) -> Request:
    """The route of :func:`add_route` with a new ``mark``, replaced in place."""
    return RTM_NEWROUTE, REPLACE_ROUTE, _route(net, table, oif, proto) + _metrics(mark)


def _metrics(mark: tuple[int, int]) -> bytes:
    window, rtt = mark
    inner = attr(RTAX_WINDOW, U32.pack(window)) if window else b""
    inner += attr(RTAX_RTT, U32.pack(rtt)) if rtt else b""
    return attr(RTA_METRICS, inner) if inner else b""


def delete_route(net: IPNetwork, table: int, oif: int, proto: int) -> Request:
    return RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, _route(net, table, oif, proto)


def _route(net: IPNetwork, table: int, oif: int, proto: int) -> bytes:
    header = RTMSG.pack(
        _family(net.version),
        net.prefixlen,
        0,
        0,
        table if table < 256 else RT_TABLE_COMPAT,
        proto,
        RT_SCOPE_LINK,
        RTN_UNICAST,
        0,
    )
    body = header + attr(RTA_DST, net.network_address.packed)
    body += attr(RTA_TABLE, U32.pack(table))
    return body + attr(RTA_OIF, U32.pack(oif))


def address_dump(index: int) -> Request:
    """Ask for the addresses of link ``index`` (filtered by the kernel, strict checking)."""
    body = IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, index)
    return RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, body


def link_dump() -> Request:
    """Ask for every link of the namespace."""
    return RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)


def default_route_dump(family: int) -> Request:
    """Ask for the routes of ``family`` in the main table (the default routes among them
    are picked out by :func:`parse_default_route`)."""
    body = RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, 0, 0, 0, 0)
    return RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, body + attr(RTA_TABLE, U32.pack(RT_TABLE_MAIN))


def route_dump(family: int, table: int, oif: int) -> Request:
    """Ask for the routes of ``family`` in ``table`` through link ``oif``."""
    body = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    body += attr(RTA_TABLE, U32.pack(table)) + attr(RTA_OIF, U32.pack(oif))
    return RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, body


def parse_address(payload: bytes) -> Address | None:
    """One RTM_NEWADDR of a dump; None without an address attribute."""
    family, prefixlen, _flags, _scope, ifindex = IFADDRMSG.unpack_from(payload)
    found = attrs(payload, IFADDRMSG.size, len(payload))
    packed = found.get(IFA_ADDRESS, found.get(IFA_LOCAL))
    if packed is None:
        return None
    proto = found.get(IFA_PROTO)
    metric = found.get(IFA_RT_PRIORITY)
    cache = found.get(IFA_CACHEINFO)
    preferred, valid, created, _updated = (
        IFA_CACHEINFO_FMT.unpack(cache[: IFA_CACHEINFO_FMT.size])
        if cache is not None and len(cache) >= IFA_CACHEINFO_FMT.size
        else (None, None, None, None)
    )
    return Address(
        index=ifindex,
        address=socket.inet_ntop(family, packed),
        prefixlen=prefixlen,
        proto=proto[0] if proto else None,
        valid_lft=valid,
        preferred_lft=preferred,
        created=created,
        metric=U32.unpack(metric[:4])[0] if metric and len(metric) >= 4 else 0,
    )


def parse_link(payload: bytes) -> Link | None:
    """One RTM_NEWLINK of a dump; None without a name."""
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(payload)
    found = attrs(payload, IFINFOMSG.size, len(payload))
    name = found.get(IFLA_IFNAME)
    if name is None:
        return None
    return Link(
        index=index,
        name=name.split(b"\0", 1)[0].decode(errors="replace"),
        up=bool(flags & IFF_UP),
        mac=found.get(IFLA_ADDRESS, b""),
    )


def parse_default_route(payload: bytes) -> DefaultRoute | None:
    """One RTM_NEWROUTE of a main-table dump if it is a unicast default route with a
    link (the first next hop's, when it has several); else None."""
    family, dst_len, _src_len, _tos, _table, _proto, _scope, kind, _flags = RTMSG.unpack_from(
        payload
    )
    if dst_len != 0 or kind != RTN_UNICAST:
        return None
    found = attrs(payload, RTMSG.size, len(payload))
    metric = found.get(RTA_PRIORITY)
    oif: int | None = U32.unpack(found[RTA_OIF])[0] if RTA_OIF in found else None
    hops = found.get(RTA_MULTIPATH)
    if oif is None and hops is not None and len(hops) >= RTNEXTHOP.size:
        oif = RTNEXTHOP.unpack_from(hops)[3]
    if not oif:
        return None
    return DefaultRoute(family=family, oif=oif, metric=U32.unpack(metric)[0] if metric else 0)


def parse_route(payload: bytes) -> Route | None:
    """One RTM_NEWROUTE of a dump; None without a destination (a default route)."""
    fields = RTMSG.unpack_from(payload)
    found = attrs(payload, RTMSG.size, len(payload))
    dst = found.get(RTA_DST)
    if dst is None:
        return None
    table_attr, oif_attr = found.get(RTA_TABLE), found.get(RTA_OIF)
    metrics = found.get(RTA_METRICS)
    inner = attrs(metrics, 0, len(metrics)) if metrics else {}
    window, rtt = inner.get(RTAX_WINDOW), inner.get(RTAX_RTT)
    return Route(
        dst=socket.inet_ntop(fields[0], dst),
        dst_len=fields[1],
        table=U32.unpack(table_attr)[0] if table_attr else fields[4],
        proto=fields[5],
        oif=U32.unpack(oif_attr)[0] if oif_attr else None,
        window=U32.unpack(window[:4])[0] if window and len(window) >= 4 else 0,
        rtt=U32.unpack(rtt[:4])[0] if rtt and len(rtt) >= 4 else 0,
    )


def promote_secondaries(index: int, seq: int) -> bytes:
    """RTM_SETLINK setting net.ipv4.conf.<link>.promote_secondaries = 1 (IFLA_AF_SPEC ->
    AF_INET -> IFLA_INET_CONF -> PROMOTE_SECONDARIES), asking for an acknowledgement."""
    conf = attr(IPV4_DEVCONF_PROMOTE_SECONDARIES, U32.pack(1))
    spec = attr(IFLA_AF_SPEC, attr(socket.AF_INET, attr(IFLA_INET_CONF, conf)))
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0) + spec
    return message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body)
