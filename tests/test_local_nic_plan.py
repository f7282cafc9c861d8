"""Local addresses on a NIC, the parts decided without root.

- the rtnetlink bytes: a local address carries lbroute's mark, ``noprefixroute``
  (+ ``nodad`` for IPv6) and its lifetimes (IPv6 preferred 0, IPv4 preferred = valid);
  a renewal replaces in place, an add never does; link and default-route dumps parse;
- the interface choice (``NodeAgent.localInterface``: ``default``, a name, an ordered
  list with fnmatch patterns) over a snapshot, and the reason when there is none; the
  subnets a node can serve for its local pools;
- the reconcile plan: remove / add / renew, lbroute's addresses only, kube-lb0 and the
  operator's addresses never touched;
- the IPVS / ARP strictness finding and the sysctl reader;
- gratuitous ARP frames and the Neighbor Advertisement byte by byte, and the schedule
  of announcements.

tests/netns/test_local_nic.py checks the same against the real kernel on a LAN.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from lbroute.model.api import Family, Pool
from lbroute.model.vocabulary import ROUTE_PROTO
from nodeagent.local.announce import (
    DELAYS,
    Schedule,
    arp_frame,
    arp_frames,
    neighbor_advertisement,
)
from nodeagent.netlink import wire
from nodeagent.netlink.ipvs import ArpFinding, check_arp, ipvs_addresses, read_arp_sysctls
from nodeagent.netlink.nic import (
    Holding,
    NotPlaced,
    OnLink,
    Placed,
    Snapshot,
    Unplaced,
    owned,
    place,
    plan_local,
    serving_subnets,
)

MAC0 = bytes.fromhex("020000000011")
MAC1 = bytes.fromhex("020000000012")
LO = wire.Link(index=1, name="lo", up=True, mac=bytes(6))
ETH0 = wire.Link(index=2, name="eth0", up=True, mac=MAC0)
ETH1 = wire.Link(index=3, name="eth1", up=True, mac=MAC1)
KUBELB = wire.Link(index=4, name="kube-lb0", up=True, mac=bytes.fromhex("0200000000ff"))
DOWN = wire.Link(index=5, name="eth2", up=False, mac=bytes.fromhex("020000000013"))
IPVS = wire.Link(index=6, name="kube-ipvs0", up=False, mac=bytes(6))


def addr(link: wire.Link, text: str, proto: int | None = None) -> wire.Address:
    iface = ipaddress.ip_interface(text)
    return wire.Address(
        index=link.index, address=str(iface.ip), prefixlen=iface.network.prefixlen, proto=proto
    )


NODE = Snapshot(
    links=(LO, ETH0, ETH1, KUBELB, DOWN),
    addresses=(
        addr(LO, "127.0.0.1/8"),
        addr(ETH0, "10.0.0.11/24"),
        addr(ETH0, "10.0.0.11/16"),  # a wider network of the same link: the narrower wins
        addr(ETH0, "fd00::11/64"),
        addr(ETH1, "172.16.0.11/24"),
        addr(ETH1, "10.1.0.11/24"),
        addr(ETH1, "192.0.2.5/32", ROUTE_PROTO),  # lbroute's own: never a subnet
        addr(KUBELB, "198.51.100.7/24", ROUTE_PROTO),
        addr(DOWN, "10.2.0.11/24"),
    ),
    defaults=(
        wire.DefaultRoute(family=socket.AF_INET, oif=ETH1.index, metric=200),
        wire.DefaultRoute(family=socket.AF_INET, oif=ETH0.index, metric=100),
        wire.DefaultRoute(family=socket.AF_INET6, oif=ETH0.index, metric=1024),
    ),
)


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# -- the bytes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "flags", "preferred"),
    [
        ("10.0.0.50/24", wire.IFA_F_NOPREFIXROUTE, 30),
        ("fd00::50/64", wire.IFA_F_NOPREFIXROUTE | wire.IFA_F_NODAD, 0),
    ],
    ids=["IPv4: preferred = valid", "IPv6: preferred 0, never a source"],
)
def test_a_local_address_carries_the_mark_and_its_lifetimes(
    address: str, flags: int, preferred: int
) -> None:
    iface = ipaddress.ip_interface(address)
    kind, request_flags, body = wire.local_address(iface, 7, ROUTE_PROTO, valid=30)
    assert (kind, request_flags) == (wire.RTM_NEWADDR, wire.CREATE)
    assert request_flags & wire.NLM_F_REPLACE == 0, "an add never replaces an address"
    assert wire.parse_address(body) == wire.Address(
        index=7,
        address=str(iface.ip),
        prefixlen=iface.network.prefixlen,
        proto=ROUTE_PROTO,
        valid_lft=30,
        preferred_lft=preferred,
        created=0,
    )
    found = wire.attrs(body, wire.IFADDRMSG.size, len(body))
    assert wire.U32.unpack(found[wire.IFA_FLAGS])[0] == flags
    renew = wire.local_address(iface, 7, ROUTE_PROTO, valid=30, renew=True)
    assert renew == (wire.RTM_NEWADDR, wire.REPLACE, body)
    assert wire.REPLACE & 0x200 == 0, "a renewal is not exclusive: it changes what is there"


def test_links_and_default_routes_parse_from_dumps() -> None:
    kind, flags, body = wire.link_dump()
    assert (kind, flags) == (wire.RTM_GETLINK, wire.NLM_F_REQUEST | wire.NLM_F_DUMP)
    link = wire.IFINFOMSG.pack(0, 1, 9, wire.IFF_UP | 0x10000, 0)
    link += wire.attr(wire.IFLA_IFNAME, b"eth0\0") + wire.attr(wire.IFLA_ADDRESS, MAC0)
    assert wire.parse_link(link) == wire.Link(index=9, name="eth0", up=True, mac=MAC0)
    assert wire.parse_link(wire.IFINFOMSG.pack(0, 1, 9, 0, 0)) is None

    kind, flags, body = wire.default_route_dump(socket.AF_INET6)
    assert (kind, flags) == (wire.RTM_GETROUTE, wire.NLM_F_REQUEST | wire.NLM_F_DUMP)
    found = wire.attrs(body, wire.RTMSG.size, len(body))
    assert wire.U32.unpack(found[wire.RTA_TABLE])[0] == wire.RT_TABLE_MAIN

    def route(dst_len: int, kind: int, *attributes: bytes) -> bytes:
        header = wire.RTMSG.pack(socket.AF_INET, dst_len, 0, 0, 254, 3, 0, kind, 0)
        return header + b"".join(attributes)

    oif = wire.attr(wire.RTA_OIF, wire.U32.pack(9))
    metric = wire.attr(wire.RTA_PRIORITY, wire.U32.pack(100))
    assert wire.parse_default_route(route(0, wire.RTN_UNICAST, oif, metric)) == (
        wire.DefaultRoute(family=socket.AF_INET, oif=9, metric=100)
    )
    hops = wire.RTNEXTHOP.pack(8, 0, 0, 5) + wire.RTNEXTHOP.pack(8, 0, 0, 6)
    multipath = route(0, wire.RTN_UNICAST, wire.attr(wire.RTA_MULTIPATH, hops))
    assert wire.parse_default_route(multipath) == wire.DefaultRoute(
        family=socket.AF_INET, oif=5, metric=0
    )
    assert wire.parse_default_route(route(24, wire.RTN_UNICAST, oif)) is None, "not default"
    assert wire.parse_default_route(route(0, 6, oif)) is None, "a blackhole default"
    assert wire.parse_default_route(route(0, wire.RTN_UNICAST)) is None, "no link"


# -- which interface --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "address", "link", "prefix"),
    [
        ("default", "10.0.0.50", "eth0", 24),  # eth0's default route has the lower metric
        ("default", "10.1.0.50", None, 0),  # eth1's default route is only a backup
        ("default", "fd00::50", "eth0", 64),
        ("eth1", "10.1.0.50", "eth1", 24),
        (["eth1", "eth0"], "10.0.0.50", "eth0", 24),  # eth1 is not on the subnet
        (["eth1", "eth0"], "10.0.200.50", "eth0", 16),
        (["eth*"], "10.1.0.50", "eth1", 24),
        (["nope", "default"], "10.0.0.50", "eth0", 24),
    ],
)
def test_an_address_goes_on_the_first_named_interface_on_its_subnet(
    setting: str | list[str], address: str, link: str | None, prefix: int
) -> None:
    placed = place(setting, ip(address), NODE, exclude={"kube-lb0"})
    if link is None:
        assert isinstance(placed, NotPlaced) and placed.reason is Unplaced.NO_SUBNET
        return
    assert isinstance(placed, Placed)
    assert placed.link.name == link
    assert placed.interface == ipaddress.ip_interface(f"{address}/{prefix}")


def test_a_pool_subnet_gives_the_prefix_length() -> None:
    placed = place("eth1", ip("172.16.0.100"), NODE, subnet=ipaddress.ip_network("172.16.0.0/25"))
    assert isinstance(placed, Placed)
    assert placed.interface == ipaddress.ip_interface("172.16.0.100/25")
    assert placed.subnet == ipaddress.ip_network("172.16.0.0/25")


@pytest.mark.parametrize(
    ("setting", "address", "reason", "says"),
    [
        (
            "eth9",
            "10.0.0.50",
            Unplaced.NO_INTERFACE,
            "localInterface 'eth9' names no interface for 10.0.0.50: no interface of this "
            "node matches (its interfaces: 'eth0', 'eth1', 'eth2', 'kube-lb0')",
        ),
        (
            "eth2",
            "10.2.0.50",
            Unplaced.NO_INTERFACE,
            "localInterface 'eth2' names only interfaces that are down ('eth2')",
        ),
        (
            "kube-lb0",
            "198.51.100.50",
            Unplaced.NO_INTERFACE,
            "localInterface 'kube-lb0' names no interface for 198.51.100.50",
        ),
        (
            "default",
            "192.0.2.50",
            Unplaced.NO_SUBNET,
            "no interface that localInterface 'default' names has an IPv4 address on a "
            "subnet containing 192.0.2.50 (eth0 has 10.0.0.11/24, 10.0.0.11/16)",
        ),
        (
            ["eth1"],
            "fd00::50",
            Unplaced.NO_SUBNET,
            "eth1 has none",
        ),
    ],
    ids=["no such interface", "down", "kube-lb0 is no NIC", "no subnet", "no IPv6 there"],
)
def test_no_place_says_why(
    setting: str | list[str], address: str, reason: Unplaced, says: str
) -> None:
    placed = place(setting, ip(address), NODE, exclude={"kube-lb0"})
    assert isinstance(placed, NotPlaced)
    assert placed.reason is reason
    assert says in placed.message


def test_default_without_a_default_route_says_so() -> None:
    bare = Snapshot(links=NODE.links, addresses=NODE.addresses)
    placed = place("default", ip("fd00::50"), bare)
    assert isinstance(placed, NotPlaced) and placed.reason is Unplaced.NO_INTERFACE
    assert "this node has no IPv6 default route" in placed.message


def test_names_are_quoted_in_messages() -> None:
    placed = place("eth\n0", ip("10.0.0.50"), NODE)
    assert isinstance(placed, NotPlaced)
    assert "'eth\\n0'" in placed.message and "\n" not in placed.message


def _pool(first: str, last: str, subnet: str | None = None) -> Pool:
    a, b = ip(first), ip(last)
    return Pool(
        family=Family.IPV4 if a.version == 4 else Family.IPV6,
        cidr=None,
        first=a,
        last=b,
        subnet=ipaddress.ip_network(subnet) if subnet else None,
        aggregation=a.max_prefixlen,
    )


def test_the_subnets_a_node_serves_for_its_local_pools() -> None:
    pools = [
        _pool("10.0.0.50", "10.0.0.59"),  # eth0's /24 and its /16
        _pool("10.1.0.50", "10.1.0.59"),  # on eth1 only
        _pool("fd00::50", "fd00::59"),
        _pool("172.16.0.100", "172.16.0.110", "172.16.0.0/25"),
        _pool("192.0.2.1", "192.0.2.9"),  # nowhere
        _pool("10.2.0.50", "10.2.0.59"),  # only on a link that is down
    ]
    assert serving_subnets("default", pools, NODE) == tuple(
        map(ipaddress.ip_network, ["10.0.0.0/16", "10.0.0.0/24", "fd00::/64"])
    )
    assert serving_subnets(["eth*"], pools, NODE, exclude={"kube-lb0"}) == tuple(
        map(
            ipaddress.ip_network,
            ["10.0.0.0/16", "10.0.0.0/24", "10.1.0.0/24", "172.16.0.0/25", "fd00::/64"],
        )
    )


# -- reconciling ------------------------------------------------------------------------


def _hold(text: str, link: str = "eth0") -> Holding:
    return Holding(interface=ipaddress.ip_interface(text), link=link)


def _on(text: str, link: wire.Link = ETH0) -> OnLink:
    return OnLink(interface=ipaddress.ip_interface(text), index=link.index, link=link.name)


def _with(*extra: wire.Address) -> Snapshot:
    return Snapshot(links=NODE.links, addresses=(*NODE.addresses, *extra), defaults=NODE.defaults)


def test_plan_adds_renews_and_removes_only_lbroutes_addresses() -> None:
    snapshot = _with(
        addr(ETH0, "10.0.0.50/24", ROUTE_PROTO),
        addr(ETH0, "10.0.0.51/24", ROUTE_PROTO),
        addr(ETH0, "fd00::51/64", ROUTE_PROTO),
        addr(ETH0, "10.0.0.99/24"),  # the operator's
    )
    plan = plan_local(
        snapshot,
        [_hold("10.0.0.52/24"), _hold("10.0.0.50/24"), _hold("fd00::52/64")],
        exclude={"kube-lb0"},
    )
    assert plan.renew == (_on("10.0.0.50/24"),)
    assert plan.add == (_on("10.0.0.52/24"), _on("fd00::52/64"))
    # eth1's 192.0.2.5 is lbroute's and no longer held; kube-lb0's are not local addresses.
    assert plan.remove == (_on("10.0.0.51/24"), _on("192.0.2.5/32", ETH1), _on("fd00::51/64"))
    assert plan.blocked == ()


def test_a_move_to_another_link_or_prefix_is_remove_then_add() -> None:
    snapshot = _with(
        addr(ETH0, "10.0.0.50/24", ROUTE_PROTO), addr(ETH0, "fd00::50/64", ROUTE_PROTO)
    )
    plan = plan_local(
        snapshot, [_hold("10.0.0.50/24", "eth1"), _hold("fd00::50/80")], exclude={"kube-lb0"}
    )
    assert plan.remove == (_on("10.0.0.50/24"), _on("192.0.2.5/32", ETH1), _on("fd00::50/64"))
    assert plan.add == (_on("10.0.0.50/24", ETH1), _on("fd00::50/80"))
    assert plan.renew == ()


def test_an_operators_address_blocks_the_holding_and_is_left_alone() -> None:
    snapshot = _with(addr(ETH0, "10.0.0.60/24"), addr(ETH0, "fd00::60/64"))
    plan = plan_local(
        snapshot,
        [_hold("10.0.0.60/24"), _hold("fd00::60/64"), _hold("10.0.0.61/24", "eth7")],
        exclude={"kube-lb0"},
    )
    assert plan.add == () and plan.renew == ()
    assert all(o.link != "eth0" for o in plan.remove)
    assert [reason for _, reason in plan.blocked] == [
        "10.0.0.60 is already on eth0 as 10.0.0.60/24, not lbroute's: left alone",
        "interface 'eth7' does not exist",
        "fd00::60 is already on eth0 as fd00::60/64, not lbroute's: left alone",
    ]


def test_kube_lb0_is_never_a_local_address() -> None:
    assert owned(NODE, exclude={"kube-lb0"}) == (_on("192.0.2.5/32", ETH1),)
    assert plan_local(NODE, [], exclude={"kube-lb0"}).remove == (_on("192.0.2.5/32", ETH1),)


# -- IPVS and ARP strictness --------------------------------------------------------------

WEAK = {
    "net.ipv4.conf.all.arp_ignore": 0,
    "net.ipv4.conf.all.arp_announce": 0,
    "net.ipv4.conf.eth0.arp_ignore": 0,
    "net.ipv4.conf.eth0.arp_announce": 0,
}


def test_kube_ipvs0_holding_a_local_address_without_strict_arp_is_a_finding() -> None:
    snapshot = Snapshot(
        links=(ETH0, IPVS),
        addresses=(
            addr(IPVS, "10.0.0.50/32"),
            addr(IPVS, "10.96.0.1/32"),
            addr(ETH0, "10.0.0.11/24"),
        ),
    )
    on_ipvs = ipvs_addresses(snapshot)
    assert on_ipvs == {ip("10.0.0.50"), ip("10.96.0.1")}
    finding = check_arp(
        ipvs=on_ipvs, local=[ip("10.0.0.50"), ip("fd00::50")], nics=["eth0"], sysctls=WEAK
    )
    assert finding == ArpFinding(
        addresses=(ip("10.0.0.50"),),  # type: ignore[arg-type]
        weak=(
            "net.ipv4.conf.all.arp_ignore=0",
            "net.ipv4.conf.eth0.arp_ignore=0",
            "net.ipv4.conf.all.arp_announce=0",
            "net.ipv4.conf.eth0.arp_announce=0",
        ),
    )
    assert finding.message.startswith("kube-ipvs0 holds local address 10.0.0.50 while ARP")
    assert "strictARP: true" in finding.message
    assert "net.ipv4.conf.all.arp_ignore=1 and net.ipv4.conf.all.arp_announce=2" in finding.message


@pytest.mark.parametrize(
    ("changes", "weak"),
    [
        ({"net.ipv4.conf.all.arp_ignore": 1, "net.ipv4.conf.all.arp_announce": 2}, None),
        ({"net.ipv4.conf.eth0.arp_ignore": 1, "net.ipv4.conf.eth0.arp_announce": 2}, None),
        (
            {"net.ipv4.conf.all.arp_ignore": 1},
            ("net.ipv4.conf.all.arp_announce=0", "net.ipv4.conf.eth0.arp_announce=0"),
        ),
        (
            {"net.ipv4.conf.all.arp_announce": 2, "net.ipv4.conf.eth0.arp_announce": 1},
            ("net.ipv4.conf.all.arp_ignore=0", "net.ipv4.conf.eth0.arp_ignore=0"),
        ),
    ],
    ids=["kube-proxy strictARP", "per NIC", "announce too low", "ignore too low"],
)
def test_the_kernel_takes_the_larger_of_all_and_the_nic(
    changes: dict[str, int], weak: tuple[str, ...] | None
) -> None:
    finding = check_arp(
        ipvs=[ip("10.0.0.50")], local=[ip("10.0.0.50")], nics=["eth0"], sysctls=WEAK | changes
    )
    assert (finding.weak if finding else None) == weak


def test_no_finding_without_a_local_address_on_kube_ipvs0() -> None:
    assert (
        check_arp(ipvs=[ip("10.96.0.1")], local=[ip("10.0.0.50")], nics=["eth0"], sysctls=WEAK)
        is None
    )
    assert (
        check_arp(ipvs=[ip("fd00::50")], local=[ip("fd00::50")], nics=["eth0"], sysctls=WEAK)
        is None
    )


def test_sysctls_are_read_per_interface_and_unreadable_ones_left_out(tmp_path: Path) -> None:
    for name, value in (("all", "1"), ("eth0.100", "0")):
        conf = tmp_path / "net/ipv4/conf" / name
        conf.mkdir(parents=True)
        (conf / "arp_ignore").write_text(f"{value}\n")
    (tmp_path / "net/ipv4/conf/all/arp_announce").write_text("2\n")
    assert read_arp_sysctls(["eth0.100"], tmp_path) == {
        "net.ipv4.conf.all.arp_ignore": 1,
        "net.ipv4.conf.all.arp_announce": 2,
        "net.ipv4.conf.eth0.100.arp_ignore": 0,
    }


# -- announcements ------------------------------------------------------------------------


def test_gratuitous_arp_request_and_reply_byte_by_byte() -> None:
    request, reply = arp_frames(MAC0, ipaddress.IPv4Address("10.0.0.50"))

    def frame(op: str, target_mac: str) -> str:
        return "".join(
            [
                "ffffffffffff",  # Ethernet: to everyone
                "020000000011",  # from the NIC
                "0806",  # ARP
                "0001",  # hardware: Ethernet
                "0800",  # protocol: IPv4
                "06",
                "04",
                op,
                "020000000011",  # sender MAC
                "0a000032",  # sender IP: 10.0.0.50
                target_mac,
                "0a000032",  # target IP: the same
                "00" * 18,  # padding to 60 bytes
            ]
        )

    assert request.hex() == frame("0001", "000000000000")
    assert reply.hex() == frame("0002", "020000000011")
    assert len(request) == len(reply) == 60
    assert arp_frame(MAC0, ipaddress.IPv4Address("10.0.0.50"), 1) == request


def test_unsolicited_neighbor_advertisement_byte_by_byte() -> None:
    na = neighbor_advertisement(MAC0, ipaddress.IPv6Address("fd00::50"))
    assert na.hex() == "".join(
        [
            "88",  # type: Neighbor Advertisement
            "00",  # code
            "0000",  # checksum: the kernel's
            "20000000",  # override; not solicited, not a router
            "fd000000000000000000000000000050",  # target
            "02",  # option: target link-layer address
            "01",  # in 8-byte units
            "020000000011",
        ]
    )


def test_announcements_are_due_at_each_delay_and_cancelled_at_once() -> None:
    schedule = Schedule()
    assert DELAYS[0] == 0 and list(DELAYS) == sorted(DELAYS) and DELAYS[-1] > 1
    a, b = ip("10.0.0.50"), ip("fd00::50")
    schedule.start(a, ETH0, now=100.0)
    schedule.start(b, ETH0, now=100.1)
    assert schedule.due(100.0) == [(a, ETH0)]
    assert schedule.next == pytest.approx(100.1)
    assert schedule.due(100.1) == [(b, ETH0)]
    assert schedule.due(100.2) == []
    assert schedule.due(100.25) == [(a, ETH0)]
    schedule.cancel(b)
    sends = [t for t in (100.75, 101.0, 101.75, 105.0) if schedule.due(t)]
    assert sends == [100.75, 101.75], "each delay once, then done"
    assert schedule.pending() == frozenset() and schedule.next == float("inf")


def test_a_takeover_again_restarts_the_announcements() -> None:
    schedule = Schedule((0.0, 1.0))
    a = ip("10.0.0.50")
    schedule.start(a, ETH0, now=0.0)
    assert schedule.due(0.0) == [(a, ETH0)]
    schedule.start(a, ETH1, now=0.5)
    assert schedule.due(0.5) == [(a, ETH1)]
    assert schedule.due(1.0) == [] and schedule.due(1.5) == [(a, ETH1)]


@pytest.mark.parametrize("delays", [(), (0.5, 0.1), (-1.0, 0.0)])
def test_delays_must_ascend_from_zero_or_later(delays: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="ascending"):
        Schedule(delays)
