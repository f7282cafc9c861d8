"""``nodeagent.netlink.wire``: the rtnetlink bytes kube-lb0's requests are made of,
checked without root.

Attributes are padded to four bytes and read back with their flags masked off; a
datagram splits into its messages; the address and route requests carry what the
kernel needs (lbroute's mark, ``noprefixroute``, ``nodad`` for IPv6, the table also as
an attribute when its number does not fit the header) and read back through the same
parsers the dumps use; deletes never ask to create.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from nodeagent.netlink import wire

PROTO = 0x4C
INDEX = 7


def test_attributes_are_padded_and_read_back() -> None:
    packed = wire.attr(1, b"abcde") + wire.attr(2 | 0x8000, b"") + wire.attr(3, b"xyzw")
    assert len(packed) == 12 + 4 + 8
    assert wire.attrs(packed, 0, len(packed)) == {1: b"abcde", 2: b"", 3: b"xyzw"}


def test_a_datagram_splits_into_its_messages() -> None:
    data = wire.message(wire.NLMSG_ERROR, 0, 5, bytes(4)) + wire.message(
        wire.NLMSG_DONE, wire.NLM_F_REQUEST, 6, b"abc"
    )
    assert list(wire.messages(data + bytes(3))) == [
        (wire.NLMSG_ERROR, 5, bytes(4)),
        (wire.NLMSG_DONE, 6, b"abc"),
    ]
    assert wire.error_code(wire.NLMSGERR.pack(-17)) == 17
    assert wire.error_code(wire.NLMSGERR.pack(0)) == 0


@pytest.mark.parametrize(
    ("address", "flags", "local"),
    [
        ("192.0.2.7/24", wire.IFA_F_NOPREFIXROUTE, True),
        ("2001:db8::7/64", wire.IFA_F_NOPREFIXROUTE | wire.IFA_F_NODAD, False),
    ],
    ids=["IPv4", "IPv6"],
)
def test_adding_an_address_marks_it_and_asks_for_no_prefix_route(
    address: str, flags: int, local: bool
) -> None:
    iface = ipaddress.ip_interface(address)
    kind, request_flags, body = wire.add_address(iface, INDEX, PROTO)
    assert (kind, request_flags) == (wire.RTM_NEWADDR, wire.CREATE)
    parsed = wire.parse_address(body)
    assert parsed == wire.Address(
        index=INDEX, address=str(iface.ip), prefixlen=iface.network.prefixlen, proto=PROTO
    )
    found = wire.attrs(body, wire.IFADDRMSG.size, len(body))
    assert wire.U32.unpack(found[wire.IFA_FLAGS])[0] == flags
    assert (wire.IFA_LOCAL in found) is local


def test_deleting_an_address_names_it_without_a_mark() -> None:
    iface = ipaddress.ip_interface("192.0.2.7/24")
    kind, flags, body = wire.delete_address(iface, INDEX)
    assert (kind, flags) == (wire.RTM_DELADDR, wire.NLM_F_REQUEST | wire.NLM_F_ACK)
    assert wire.parse_address(body) == wire.Address(
        index=INDEX, address="192.0.2.7", prefixlen=24, proto=None
    )


@pytest.mark.parametrize(
    ("prefix", "table", "header_table"),
    [("192.0.2.0/24", 4242, 252), ("2001:db8::/64", 4242, 252), ("198.51.100.5/32", 100, 100)],
    ids=["IPv4, large table", "IPv6, large table", "table that fits the header"],
)
def test_route_requests_name_the_table_the_link_and_the_mark(
    prefix: str, table: int, header_table: int
) -> None:
    net = ipaddress.ip_network(prefix)
    add = wire.add_route(net, table, INDEX, PROTO)
    delete = wire.delete_route(net, table, INDEX, PROTO)
    assert add[:2] == (wire.RTM_NEWROUTE, wire.CREATE)
    assert delete[:2] == (wire.RTM_DELROUTE, wire.NLM_F_REQUEST | wire.NLM_F_ACK)
    assert add[2] == delete[2]
    family, dst_len, _, _, in_header, proto, scope, kind, _ = wire.RTMSG.unpack_from(add[2])
    assert family == (socket.AF_INET6 if net.version == 6 else socket.AF_INET)
    assert (dst_len, in_header, proto) == (net.prefixlen, header_table, PROTO)
    assert (scope, kind) == (wire.RT_SCOPE_LINK, wire.RTN_UNICAST)
    assert wire.parse_route(add[2]) == wire.Route(
        dst=str(net.network_address), dst_len=net.prefixlen, table=table, proto=PROTO, oif=INDEX
    )


def test_dumps_are_filtered_by_link_and_table() -> None:
    kind, flags, body = wire.address_dump(INDEX)
    assert (kind, flags) == (wire.RTM_GETADDR, wire.NLM_F_REQUEST | wire.NLM_F_DUMP)
    assert wire.IFADDRMSG.unpack_from(body)[-1] == INDEX
    kind, flags, body = wire.route_dump(socket.AF_INET6, 4242, INDEX)
    assert (kind, flags) == (wire.RTM_GETROUTE, wire.NLM_F_REQUEST | wire.NLM_F_DUMP)
    found = wire.attrs(body, wire.RTMSG.size, len(body))
    assert wire.U32.unpack(found[wire.RTA_TABLE])[0] == 4242
    assert wire.U32.unpack(found[wire.RTA_OIF])[0] == INDEX


def test_a_route_without_destination_is_skipped() -> None:
    body = wire.RTMSG.pack(socket.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0)
    assert wire.parse_route(body) is None


def test_promote_secondaries_is_one_nested_setting() -> None:
    data = wire.promote_secondaries(INDEX, seq=1)
    ((kind, seq, payload),) = wire.messages(data)
    assert (kind, seq) == (wire.RTM_SETLINK, 1)
    assert wire.IFINFOMSG.unpack_from(payload)[2] == INDEX  # family, type, index
    spec = wire.attrs(payload, wire.IFINFOMSG.size, len(payload))[wire.IFLA_AF_SPEC]
    inet = wire.attrs(spec, 0, len(spec))[socket.AF_INET]
    conf = wire.attrs(inet, 0, len(inet))[wire.IFLA_INET_CONF]
    setting = wire.attrs(conf, 0, len(conf))[wire.IPV4_DEVCONF_PROMOTE_SECONDARIES]
    assert wire.U32.unpack(setting)[0] == 1
