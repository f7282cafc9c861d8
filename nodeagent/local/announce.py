"""Telling the LAN that a local address moved: gratuitous ARP and unsolicited Neighbor
Advertisements.

The kernel answers ARP/ND for an address once it is on the NIC, but the LAN's
neighbours keep the old holder's MAC in their caches until it goes stale (tens of
seconds). After a takeover the new holder therefore announces itself:

- IPv4: one gratuitous ARP in each form, to the broadcast MAC, sender = target = the
  address (some hosts and switches heed only one of the forms): a request, target MAC
  zero (RFC 5227's announcement), and a reply whose target MAC is the sender's own
  (RFC 5944 4.6; Linux takes a reply as gratuitous only so).
- IPv6: an unsolicited Neighbor Advertisement to all nodes (ff02::1), hop limit 255,
  the Override flag set (so it replaces the cached MAC) and the target link-layer
  address option; the kernel fills in the checksum.

:data:`DELAYS` says when, counted from the takeover; :class:`Schedule` keeps the sends
due (pure, the time passed in); :class:`Announcer` sends on plain sockets (``AF_PACKET``
for ARP, a raw ICMPv6 socket for NA). The packet builders are pure and tested byte by
byte; ``nodeagent.local.addresses`` asks before each send whether the address is still
this node's.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from lbroute.model.fields import IPAddress
from nodeagent.netlink.wire import Link

log = logging.getLogger(__name__)

DELAYS: tuple[float, ...] = (0.0, 0.25, 0.75, 1.75)
"""Seconds after a takeover at which it is announced: at once, then at growing gaps. A
frame can be lost (a switch port just up, a busy LAN), and a neighbour may ignore one
that comes too soon after its entry last changed (Linux's ``locktime`` is 1 s where it
does not recognise the frame as gratuitous): the last send comes past that second."""

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
ARPOP_REQUEST, ARPOP_REPLY = 1, 2
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = bytes(6)
ETH_HEADER = struct.Struct("!6s6sH")
ARP_IPV4 = struct.Struct("!HHBBH6s4s6s4s")
ETH_MIN_FRAME = 60
"""The shortest Ethernet frame without its checksum: shorter ones are padded."""

ND_NEIGHBOR_ADVERT = 136
ND_NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LINKADDR = 2
NA_HEADER = struct.Struct("!BBHI16s")
"""type, code, checksum, flags (router, solicited, override) and reserved, target"""
ALL_NODES = "ff02::1"
ND_HOP_LIMIT = 255
_ICMP6_FILTER = 1
_BLOCK_ALL = b"\xff" * 32
"""An ICMPv6 filter that passes nothing in: the socket only sends."""


def arp_frame(mac: bytes, address: ipaddress.IPv4Address, op: int) -> bytes:
    """A gratuitous ARP frame from ``mac`` for ``address``: ``op`` ARPOP_REQUEST (target
    MAC zero) or ARPOP_REPLY (target MAC ``mac``); to the broadcast MAC, padded to the
    minimum frame size."""
    target_mac = ZERO_MAC if op == ARPOP_REQUEST else mac
    frame = ETH_HEADER.pack(BROADCAST_MAC, mac, ETH_P_ARP) + ARP_IPV4.pack(
        ARPHRD_ETHER, ETH_P_IP, 6, 4, op, mac, address.packed, target_mac, address.packed
    )
    return frame.ljust(ETH_MIN_FRAME, b"\0")


def arp_frames(mac: bytes, address: ipaddress.IPv4Address) -> tuple[bytes, bytes]:
    """The request form, then the reply form."""
    return arp_frame(mac, address, ARPOP_REQUEST), arp_frame(mac, address, ARPOP_REPLY)


def neighbor_advertisement(mac: bytes, target: ipaddress.IPv6Address) -> bytes:
    """An unsolicited Neighbor Advertisement (the ICMPv6 message, checksum left 0 for the
    kernel): Override set, Solicited and Router clear, the target link-layer address
    option carrying ``mac`` (padded to whole 8-byte units)."""
    option = bytes([ND_OPT_TARGET_LINKADDR, (2 + len(mac) + 7) // 8]) + mac
    option = option.ljust(-(-len(option) // 8) * 8, b"\0")
    return NA_HEADER.pack(ND_NEIGHBOR_ADVERT, 0, 0, ND_NA_FLAG_OVERRIDE, target.packed) + option


@dataclass
class _Pending:
    link: Link
    start: float
    sent: int = 0


class Schedule:
    """The announcements still due, per address: :meth:`start` at a takeover,
    :meth:`due` hands out those whose time has come (one send each per call)."""

    def __init__(self, delays: Sequence[float] = DELAYS) -> None:
        if not delays or list(delays) != sorted(delays) or delays[0] < 0:
            raise ValueError(f"delays must be ascending and not negative, got {delays!r}")
        self.delays = tuple(delays)
        self._pending: dict[IPAddress, _Pending] = {}

    def start(self, address: IPAddress, link: Link, now: float) -> None:
        """Announce ``address`` on ``link`` at each delay from ``now`` (from the start
        again if it was being announced)."""
        self._pending[address] = _Pending(link=link, start=now)

    def cancel(self, address: IPAddress) -> None:
        self._pending.pop(address, None)

    def pending(self) -> frozenset[IPAddress]:
        return frozenset(self._pending)

    @property
    def next(self) -> float:
        """When the next send is due (infinity: none)."""
        return min(
            (p.start + self.delays[p.sent] for p in self._pending.values()),
            default=float("inf"),
        )

    def due(self, now: float) -> list[tuple[IPAddress, Link]]:
        """The sends due at ``now``, each counted as done; an address whose last send it
        was is forgotten. In address order."""
        found = []
        for address in sorted(self._pending, key=lambda a: (a.version, int(a))):
            pending = self._pending[address]
            if pending.start + self.delays[pending.sent] <= now:
                found.append((address, pending.link))
                pending.sent += 1
                if pending.sent == len(self.delays):
                    del self._pending[address]
        return found


class Announcer:
    """Sends the announcements, on sockets opened at first use (in the current network
    namespace) and closed by :meth:`close`."""

    def __init__(self) -> None:
        self._packet: socket.socket | None = None
        self._icmp6: socket.socket | None = None

    def close(self) -> None:
        for sock in (self._packet, self._icmp6):
            if sock is not None:
                sock.close()
        self._packet = self._icmp6 = None

    def send(self, link: Link, address: IPAddress) -> int:
        """Announce ``address`` on ``link`` once; returns the packets sent (two ARP
        frames, or one NA). OSError when the kernel refuses (the link went down)."""
        if len(link.mac) == 0:
            return 0  # no link-layer address: nothing to tell, nobody caches one
        if isinstance(address, ipaddress.IPv4Address):
            if len(link.mac) != 6:
                return 0
            if self._packet is None:
                self._packet = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            for frame in arp_frames(link.mac, address):
                self._packet.sendto(frame, (link.name, ETH_P_ARP))
            return 2
        if self._icmp6 is None:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, _BLOCK_ALL)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ND_HOP_LIMIT)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            self._icmp6 = sock
        self._icmp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, link.index)
        self._icmp6.sendto(neighbor_advertisement(link.mac, address), (ALL_NODES, 0, 0, link.index))
        return 1
