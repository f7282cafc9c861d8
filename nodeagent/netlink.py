"""kube-lb0 through netlink (pyroute2): the one place lbroute touches the kernel.

Ownership is kept in the kernel itself: every address lbroute adds carries the
address protocol :data:`ADDRESS_PROTO` (``IFA_PROTO``), so after a restart the agent
knows exactly which addresses are its own and never touches one an operator added by
hand. Reconciling is a diff: add what is missing, delete what is no longer wanted,
nothing else; ``EEXIST`` on add and ``EADDRNOTAVAIL``/``ENOENT`` on delete count as done.

Why a route of its own per prefix (see docs/shared-prefix-notes.md): Services share an
aggregate (192.0.2.7/24 and 192.0.2.8/24). The kernel's prefix route, and BIRD's
``protocol direct``, are tied to individual addresses, so removing one Service's
address can withdraw (BIRD) or briefly replace (kernel) the route every other Service
of that aggregate relies on. Instead, addresses are added with ``noprefixroute``, and
lbroute keeps exactly one route per announced prefix in its own kernel table
(:data:`ROUTE_TABLE`, protocol :data:`ROUTE_PROTO`): added before it is needed, deleted
before the prefix's last address goes. BIRD learns these routes (``protocol kernel``);
FRR announces the interface's connected prefixes, which zebra keeps stable as long as
``promote_secondaries`` is on.

Addresses and routes are read and written in bulk through :class:`_Rtnl`, a plain
rtnetlink socket: requests are sent many to a datagram and their acknowledgements
collected afterwards, and dumps are filtered by the kernel (interface, table). Going
through pyroute2 one request at a time costs about a millisecond per address, so
10,000 Services took over ten seconds; pyroute2 still handles the interface itself.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from lbroute.model.api import ROUTE_PROTO, ROUTE_TABLE_DEFAULT
from lbroute.model.errors import InterfaceError
from nodeagent.desired import Interface

log = logging.getLogger(__name__)

ADDRESS_PROTO = 0x4C
"""IFA_PROTO value that marks an address as lbroute's ('L')."""
ROUTE_TABLE = ROUTE_TABLE_DEFAULT
IFA_F_NODAD = 0x02
"""IPv6: usable at once, no duplicate address detection (the address is a VIP)."""
IFA_F_NOPREFIXROUTE = 0x200
"""The kernel adds no prefix route of its own; lbroute keeps one per prefix instead."""
RT_SCOPE_LINK = 253


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, kw_only=True)
class Changes:
    added: tuple[Interface, ...] = ()
    removed: tuple[Interface, ...] = ()
    failed: tuple[tuple[Interface | Network, str], ...] = ()
    owned: frozenset[Interface] = frozenset()
    """lbroute's addresses on the interface afterwards."""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


class Kubelb:
    """The dummy interface that carries Service addresses, in the current netns."""

    def __init__(
        self,
        ifname: str,
        *,
        table: int = ROUTE_TABLE,
        sysctl_root: Path = Path("/proc/sys"),
    ) -> None:
        self.ifname = ifname
        self.table = table
        self.sysctl_root = sysctl_root
        self._ipr = IPRoute()
        self._bulk: _Rtnl | None = None
        self._index: int | None = None

    def close(self) -> None:
        self._ipr.close()
        if self._bulk is not None:
            self._bulk.close()

    def __enter__(self) -> Kubelb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the interface ----------------------------------------------------------------

    def ensure(self) -> int:
        """Create the interface as a dummy if absent, or adopt the existing one whatever
        its type; bring it up. Returns its index."""
        found = self._ipr.link_lookup(ifname=self.ifname)
        if not found:
            try:
                self._ipr.link("add", ifname=self.ifname, kind="dummy")
            except NetlinkError as exc:
                raise InterfaceError(
                    f"cannot create {self.ifname} as a dummy interface ({exc.args[-1]}): "
                    "this kernel may lack the dummy module. Load it (modprobe dummy) or "
                    f"create {self.ifname} yourself with another type (for example "
                    f"'ip link add {self.ifname} type ifb'); lbroute adopts an existing "
                    "interface of that name"
                ) from exc
            log.info("created interface %s (dummy)", self.ifname)
            found = self._ipr.link_lookup(ifname=self.ifname)
        index = int(found[0])
        link = self._ipr.link("get", index=index)[0]
        if not int(link["flags"]) & 1:  # IFF_UP
            self._ipr.link("set", index=index, state="up")
            log.info("brought %s up", self.ifname)
        self._promote_secondaries()
        self._index = index
        return index

    def _promote_secondaries(self) -> None:
        """Without it, deleting the first IPv4 address of a subnet deletes every other
        address of that subnet too: one Service leaving would take others with it.

        Set through netlink (needs only CAP_NET_ADMIN; in a container ``/proc/sys`` is
        mounted read-only), with the sysctl file as the fallback."""
        path = self.sysctl_root / "net/ipv4/conf" / self.ifname / "promote_secondaries"
        try:
            if path.read_text().strip() == "1":
                return
        except OSError:
            pass
        try:
            set_promote_secondaries(self._link_index())
            return
        except OSError as netlink_error:
            try:
                path.write_text("1\n")
            except OSError as exc:
                raise InterfaceError(
                    f"cannot enable promote_secondaries on {self.ifname}: netlink said "
                    f"{netlink_error}; {path}: {exc}"
                ) from exc

    def _link_index(self) -> int:
        found = self._ipr.link_lookup(ifname=self.ifname)
        if not found:
            raise InterfaceError(f"{self.ifname} does not exist")
        return int(found[0])

    @property
    def index(self) -> int:
        if self._index is None:
            return self.ensure()
        return self._index

    # -- addresses --------------------------------------------------------------------

    @property
    def _rtnl(self) -> _Rtnl:
        if self._bulk is None:
            self._bulk = _Rtnl()
        return self._bulk

    def owned(self) -> frozenset[Interface]:
        """Addresses on the interface that carry lbroute's mark."""
        index = self.index
        return frozenset(
            ipaddress.ip_interface(f"{a.address}/{a.prefixlen}")
            for a in self._rtnl.addresses(index)
            if a.index == index and a.proto == ADDRESS_PROTO
        )

    def routes(self) -> frozenset[Network]:
        """The prefixes lbroute keeps a route for in its table."""
        index = self.index
        found = set()
        for family in (socket.AF_INET, socket.AF_INET6):
            for r in self._rtnl.routes(family, self.table, index):
                if r.table == self.table and r.proto == ROUTE_PROTO and r.oif == index:
                    found.add(ipaddress.ip_network(f"{r.dst}/{r.dst_len}"))
        return frozenset(found)

    def reconcile(self, desired: frozenset[Interface]) -> Changes:
        """Make lbroute's addresses and routes match ``desired``.

        Order: new addresses, new routes, then old routes, then old addresses; so a
        prefix-length change never leaves a gap, and a route never outlives (nor is
        silently dropped with) the last address of its prefix. Each step is one batch
        of requests, which the kernel carries out in order.
        """
        current = self.owned()
        add = sorted(desired - current, key=_order)
        remove = sorted(current - desired, key=_order)
        want_routes = frozenset(i.network for i in desired)
        have_routes = self.routes()
        failed: list[tuple[Interface | Network, str]] = []
        added = self._batch(add, self._add_request, _ADD_OK, "add", failed)
        new_routes = sorted(want_routes - have_routes, key=_net_order)
        self._batch(new_routes, self._route_request("add"), _ADD_OK, "add route", failed)
        old_routes = sorted(have_routes - want_routes, key=_net_order)
        self._batch(old_routes, self._route_request("del"), _ROUTE_DEL_OK, "del route", failed)
        removed = self._batch(remove, self._delete_request, _ADDR_DEL_OK, "delete", failed)
        if added or removed:
            log.info(
                "%s: added %d, removed %d addresses%s",
                self.ifname,
                len(added),
                len(removed),
                f" ({', '.join(map(str, (*added, *removed)[:5]))}"
                f"{', ...' if len(added) + len(removed) > 5 else ''})",
            )
        for item, error in failed:
            log.warning("%s: %s: %s", self.ifname, item, error)
        return Changes(
            added=tuple(added),
            removed=tuple(removed),
            failed=tuple(failed),
            owned=(current | frozenset(added)) - frozenset(removed),
        )

    def _batch(
        self,
        items: Sequence[_Item],
        request: _Encoder[_Item],
        ok: frozenset[int],
        what: str,
        failed: list[tuple[Interface | Network, str]],
    ) -> list[_Item]:
        """Send one request per item; the items the kernel did (or found done)."""
        if not items:
            return []
        codes = self._rtnl.requests([request(item) for item in items])
        done = []
        for item, code in zip(items, codes, strict=True):
            if code == 0 or code in ok:
                done.append(item)
            else:
                failed.append((item, f"cannot {what}: {os.strerror(code)}"))
        return done

    def _route_request(self, command: str) -> _Encoder[Network]:
        def encode(net: Network) -> _Request:
            family = socket.AF_INET6 if net.version == 6 else socket.AF_INET
            header = _RTMSG.pack(
                family,
                net.prefixlen,
                0,
                0,
                self.table if self.table < 256 else _RT_TABLE_COMPAT,
                ROUTE_PROTO,
                RT_SCOPE_LINK,
                _RTN_UNICAST,
                0,
            )
            body = header + _attr(_RTA_DST, net.network_address.packed)
            body += _attr(_RTA_TABLE, _U32.pack(self.table))
            body += _attr(_RTA_OIF, _U32.pack(self.index))
            if command == "add":
                return _RTM_NEWROUTE, _CREATE, body
            return _RTM_DELROUTE, _NLM_F_REQUEST | _NLM_F_ACK, body

        return encode

    def _add_request(self, iface: Interface) -> _Request:
        flags = IFA_F_NOPREFIXROUTE | (IFA_F_NODAD if iface.version == 6 else 0)
        body = self._address(iface, flags) + _attr(_IFA_FLAGS, _U32.pack(flags))
        body += _attr(_IFA_PROTO, bytes([ADDRESS_PROTO]))
        return _RTM_NEWADDR, _CREATE, body

    def _delete_request(self, iface: Interface) -> _Request:
        return _RTM_DELADDR, _NLM_F_REQUEST | _NLM_F_ACK, self._address(iface, 0)

    def _address(self, iface: Interface, flags: int) -> bytes:
        family = socket.AF_INET6 if iface.version == 6 else socket.AF_INET
        packed = iface.ip.packed
        body = _IFADDRMSG.pack(family, iface.network.prefixlen, flags & 0xFF, 0, self.index)
        if iface.version == 4:
            body += _attr(_IFA_LOCAL, packed)
        return body + _attr(_IFA_ADDRESS, packed)


# -- rtnetlink in bulk --------------------------------------------------------------------

_NLMSGHDR = struct.Struct("=IHHII")
_NLMSGERR = struct.Struct("=i")
_RTATTR = struct.Struct("=HH")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_U32 = struct.Struct("=I")
_NLMSG_NOOP, _NLMSG_ERROR, _NLMSG_DONE = 1, 2, 3
_RTM_NEWADDR, _RTM_DELADDR, _RTM_GETADDR = 20, 21, 22
_RTM_NEWROUTE, _RTM_DELROUTE, _RTM_GETROUTE = 24, 25, 26
_NLM_F_REQUEST, _NLM_F_MULTI, _NLM_F_ACK, _NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
_CREATE = _NLM_F_REQUEST | _NLM_F_ACK | 0x400 | 0x200  # NLM_F_CREATE | NLM_F_EXCL
_IFA_ADDRESS, _IFA_LOCAL, _IFA_FLAGS, _IFA_PROTO = 1, 2, 8, 11
_RTA_DST, _RTA_OIF, _RTA_TABLE = 1, 4, 15
_RTN_UNICAST, _RT_TABLE_COMPAT = 1, 252
_SOL_NETLINK, _NETLINK_CAP_ACK, _NETLINK_GET_STRICT_CHK = 270, 10, 12
_ADD_OK = frozenset({errno.EEXIST})
_ROUTE_DEL_OK = frozenset({errno.ESRCH, errno.ENOENT})
_ADDR_DEL_OK = frozenset({errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV})

_Request = tuple[int, int, bytes]
"""Message type, flags and body (everything after the netlink header)."""
_Item = TypeVar("_Item", Interface, Network)
_Encoder = Callable[[_Item], _Request]


def _attr(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + bytes(-length % 4)


def _attrs(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    found = {}
    while offset + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            break
        found[kind & 0x3FFF] = data[offset + _RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    return found


def _ntop(family: int, packed: bytes) -> str:
    return socket.inet_ntop(family, packed)


@dataclass(frozen=True)
class _Address:
    index: int
    address: str
    prefixlen: int
    proto: int | None


@dataclass(frozen=True)
class _Route:
    dst: str
    dst_len: int
    table: int
    proto: int
    oif: int | None


class _Rtnl:
    """A plain rtnetlink socket for bulk work, in the current network namespace.

    :meth:`requests` sends up to :attr:`CHUNK` requests in one datagram and then
    reads the kernel's replies, so the kernel never waits for Python between two
    requests; the result is the error code of each request (0: done). :meth:`addresses`
    and :meth:`routes` are dumps the kernel filters (strict checking).
    """

    CHUNK = 1024

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                self._sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
            self._sock.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)
            self._sock.setsockopt(_SOL_NETLINK, _NETLINK_GET_STRICT_CHK, 1)
            self._sock.bind((0, 0))
        except OSError:
            self._sock.close()
            raise
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def _message(self, kind: int, flags: int, body: bytes) -> tuple[int, bytes]:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq, _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, self._seq, 0)

    def requests(self, requests: Sequence[_Request]) -> list[int]:
        codes: list[int] = []
        for start in range(0, len(requests), self.CHUNK):
            codes += self._chunk(requests[start : start + self.CHUNK])
        return codes

    def _chunk(self, chunk: Sequence[_Request]) -> list[int]:
        """The kernel reports only the requests that fail (no NLM_F_ACK); a no-op that
        asks for an acknowledgement closes the datagram, and since the kernel handles
        a datagram's requests in order, its acknowledgement means all are done."""
        seqs: dict[int, int] = {}
        data = bytearray()
        for i, (kind, flags, body) in enumerate(chunk):
            seq, header = self._message(kind, flags & ~_NLM_F_ACK, body)
            seqs[seq] = i
            data += header
            data += body
        barrier, header = self._message(_NLMSG_NOOP, _NLM_F_REQUEST | _NLM_F_ACK, b"")
        data += header
        self._sock.send(data)
        results = [0] * len(chunk)
        while True:
            try:
                replies = list(self._receive())
            except OSError as exc:  # ENOBUFS: failures were reported but lost
                return [exc.errno or errno.ENOBUFS] * len(chunk)
            for kind, seq, payload in replies:
                if kind != _NLMSG_ERROR:
                    continue
                if seq == barrier:
                    return results
                if seq in seqs:
                    results[seqs[seq]] = -_NLMSGERR.unpack_from(payload)[0]

    def _receive(self) -> Iterator[tuple[int, int, bytes]]:
        """The messages of one datagram: (type, sequence number, payload)."""
        data = self._sock.recv(1 << 20)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                break
            yield kind, seq, data[offset + _NLMSGHDR.size : offset + length]
            offset += (length + 3) & ~3

    def _dump(self, kind: int, body: bytes) -> Iterator[bytes]:
        """The payloads a dump request returns; a table that does not exist is empty."""
        seq, header = self._message(kind, _NLM_F_REQUEST | _NLM_F_DUMP, body)
        self._sock.send(header + body)
        while True:
            for reply, reply_seq, payload in self._receive():
                if reply_seq != seq:
                    continue
                if reply == _NLMSG_DONE:
                    return
                if reply == _NLMSG_ERROR:
                    code = -_NLMSGERR.unpack_from(payload)[0]
                    if code in (0, errno.ENOENT):
                        return
                    raise OSError(code, os.strerror(code))
                yield payload

    def addresses(self, index: int) -> Iterator[_Address]:
        body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, index)
        for payload in self._dump(_RTM_GETADDR, body):
            family, prefixlen, _flags, _scope, ifindex = _IFADDRMSG.unpack_from(payload)
            attrs = _attrs(payload, _IFADDRMSG.size, len(payload))
            packed = attrs.get(_IFA_ADDRESS, attrs.get(_IFA_LOCAL))
            if packed is None:
                continue
            proto = attrs.get(_IFA_PROTO)
            yield _Address(
                index=ifindex,
                address=_ntop(family, packed),
                prefixlen=prefixlen,
                proto=proto[0] if proto else None,
            )

    def routes(self, family: int, table: int, oif: int) -> Iterator[_Route]:
        body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        body += _attr(_RTA_TABLE, _U32.pack(table)) + _attr(_RTA_OIF, _U32.pack(oif))
        for payload in self._dump(_RTM_GETROUTE, body):
            fields = _RTMSG.unpack_from(payload)
            attrs = _attrs(payload, _RTMSG.size, len(payload))
            dst = attrs.get(_RTA_DST)
            if dst is None:
                continue
            table_attr, oif_attr = attrs.get(_RTA_TABLE), attrs.get(_RTA_OIF)
            yield _Route(
                dst=_ntop(fields[0], dst),
                dst_len=fields[1],
                table=_U32.unpack(table_attr)[0] if table_attr else fields[4],
                proto=fields[5],
                oif=_U32.unpack(oif_attr)[0] if oif_attr else None,
            )


def _order(iface: Interface) -> tuple[int, int, int]:
    return (iface.version, int(iface.ip), iface.network.prefixlen)


def _net_order(net: Network) -> tuple[int, int, int]:
    return (net.version, int(net.network_address), net.prefixlen)


_RTM_SETLINK, _NLMSG_ERROR = 19, 2
_NLM_F_REQUEST, _NLM_F_ACK = 0x1, 0x4
_IFLA_AF_SPEC, _IFLA_INET_CONF = 26, 1
_IPV4_DEVCONF_PROMOTE_SECONDARIES = 20


def _nla(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def set_promote_secondaries(index: int) -> None:
    """net.ipv4.conf.<link>.promote_secondaries = 1 by RTM_SETLINK (IFLA_AF_SPEC ->
    AF_INET -> IFLA_INET_CONF -> PROMOTE_SECONDARIES); OSError when refused."""
    conf = _nla(_IPV4_DEVCONF_PROMOTE_SECONDARIES, struct.pack("=I", 1))
    spec = _nla(_IFLA_AF_SPEC, _nla(socket.AF_INET, _nla(_IFLA_INET_CONF, conf)))
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, 0, 0) + spec
    header = struct.pack("=IHHII", 16 + len(body), _RTM_SETLINK, _NLM_F_REQUEST | _NLM_F_ACK, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(5)
        sock.sendto(header + body, (0, 0))
        reply = sock.recv(65536)
    _length, kind = struct.unpack_from("=IH", reply)
    if kind != _NLMSG_ERROR:
        raise OSError(errno.EPROTO, f"unexpected netlink reply type {kind}")
    (error,) = struct.unpack_from("=i", reply, 16)
    if error:
        raise OSError(-error, os.strerror(-error))
