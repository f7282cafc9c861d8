"""A plain rtnetlink socket, for work in bulk: many requests to a datagram.

Going through pyroute2 one request at a time costs about a millisecond per address,
so 10,000 Services took over ten seconds. :class:`Rtnl` sends up to
:attr:`Rtnl.CHUNK` requests in one datagram and collects the kernel's answers
afterwards, so the kernel never waits for Python between two requests; its dumps are
filtered by the kernel (interface, table). :func:`set_promote_secondaries` is the one
link setting lbroute makes this way. The bytes themselves: :mod:`nodeagent.netlink.wire`.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator, Sequence

from nodeagent.netlink import wire

_SOL_NETLINK, _NETLINK_CAP_ACK, _NETLINK_GET_STRICT_CHK = 270, 10, 12


class Rtnl:
    """A plain rtnetlink socket for bulk work, in the current network namespace.

    :meth:`requests` sends up to :attr:`CHUNK` requests in one datagram and then
    reads the kernel's replies, so the kernel never waits for Python between two
    requests; the result is the error code of each request (0: done). :meth:`addresses`
    (of one link, or of all with index 0) and :meth:`routes` are dumps the kernel
    filters (strict checking); :meth:`links` and :meth:`default_routes` read what a
    NIC is chosen from.
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

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def requests(self, requests: Sequence[wire.Request]) -> list[int]:
        codes: list[int] = []
        for start in range(0, len(requests), self.CHUNK):
            codes += self._chunk(requests[start : start + self.CHUNK])
        return codes

    def _chunk(self, chunk: Sequence[wire.Request]) -> list[int]:
        """The kernel reports only the requests that fail (no NLM_F_ACK); a no-op that
        asks for an acknowledgement closes the datagram, and since the kernel handles
        a datagram's requests in order, its acknowledgement means all are done."""
        seqs: dict[int, int] = {}
        data = bytearray()
        for i, (kind, flags, body) in enumerate(chunk):
            seq = self._next_seq()
            seqs[seq] = i
            data += wire.message(kind, flags & ~wire.NLM_F_ACK, seq, body)
        barrier = self._next_seq()
        data += wire.message(wire.NLMSG_NOOP, wire.NLM_F_REQUEST | wire.NLM_F_ACK, barrier, b"")
        self._sock.send(data)
        results = [0] * len(chunk)
        while True:
            try:
                replies = list(self._receive())
            except OSError as exc:  # ENOBUFS: failures were reported but lost
                return [exc.errno or errno.ENOBUFS] * len(chunk)
            for kind, seq, payload in replies:
                if kind != wire.NLMSG_ERROR:
                    continue
                if seq == barrier:
                    return results
                if seq in seqs:
                    results[seqs[seq]] = wire.error_code(payload)

    def _receive(self) -> Iterator[tuple[int, int, bytes]]:
        """The messages of one datagram: (type, sequence number, payload)."""
        return wire.messages(self._sock.recv(1 << 20))

    def _dump(self, request: wire.Request) -> Iterator[bytes]:
        """The payloads a dump request returns; a table that does not exist is empty."""
        kind, flags, body = request
        seq = self._next_seq()
        self._sock.send(wire.message(kind, flags, seq, body))
        while True:
            for reply, reply_seq, payload in self._receive():
                if reply_seq != seq:
                    continue
                if reply == wire.NLMSG_DONE:
                    return
                if reply == wire.NLMSG_ERROR:
                    code = wire.error_code(payload)
                    if code in (0, errno.ENOENT):
                        return
                    raise OSError(code, os.strerror(code))
                yield payload

    def addresses(self, index: int) -> Iterator[wire.Address]:
        for payload in self._dump(wire.address_dump(index)):
            address = wire.parse_address(payload)
            if address is not None:
                yield address

    def links(self) -> Iterator[wire.Link]:
        for payload in self._dump(wire.link_dump()):
            link = wire.parse_link(payload)
            if link is not None:
                yield link

    def default_routes(self, family: int) -> Iterator[wire.DefaultRoute]:
        """The unicast default routes of ``family`` in the main table."""
        for payload in self._dump(wire.default_route_dump(family)):
            route = wire.parse_default_route(payload)
            if route is not None:
                yield route

    def routes(self, family: int, table: int, oif: int) -> Iterator[wire.Route]:
        for payload in self._dump(wire.route_dump(family, table, oif)):
            route = wire.parse_route(payload)
            if route is not None:
                yield route


def set_promote_secondaries(index: int) -> None:
    """net.ipv4.conf.<link>.promote_secondaries = 1 by RTM_SETLINK; OSError when
    refused."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(5)
        sock.sendto(wire.promote_secondaries(index, seq=1), (0, 0))
        reply = sock.recv(65536)
    _length, kind = wire.NLMSGHDR.unpack_from(reply)[:2]
    if kind != wire.NLMSG_ERROR:
        raise OSError(errno.EPROTO, f"unexpected netlink reply type {kind}")
    error = wire.error_code(reply[wire.NLMSGHDR.size :])
    if error:
        raise OSError(error, os.strerror(error))
