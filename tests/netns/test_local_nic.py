"""Local addresses on a real NIC, answered by the real kernel, seen from a client on a LAN.

A Linux bridge in a namespace of its own is the LAN; two node namespaces (A, B) and a
client are plugged into it. The agent's code (interface choice from the kernel's own
snapshot, ``LocalAddresses``, the GARP/NA sender, the IPVS check) runs inside a node's
namespace (``ip netns exec``), as on a node; what the client sees is read with the
client's own tools (arping, ndisc6, ping, ``ip neigh``) and a packet capture.

Covered: exactly one responder (the holder's MAC) for IPv4 and IPv6; a handover from A
to B moves the client's neighbour entry by GARP/NA alone, with both ARP forms and the
override flag on the wire and no probe from the client; announcements stop once the
address is no longer this node's; an operator's addresses (and kube-lb0's) survive every
reconcile; a restart with the same holdings neither removes nor re-adds anything; an
address that is not renewed expires by itself; kube-ipvs0 holding the address with
``arp_ignore=0`` makes a second responder, and is reported.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.netns.lab import Lan, Netns, run

V4, V6 = "10.77.0.50", "fd77::50"

HOLD = textwrap.dedent(
    """
    import ipaddress, json, sys, time
    from nodeagent.local.addresses import LocalAddresses
    from nodeagent.local.announce import DELAYS
    from nodeagent.netlink.lan import Lan
    from nodeagent.netlink.nic import Holding, Placed, place

    args = json.loads(sys.argv[1])
    with Lan() as lan:
        snapshot = lan.snapshot()
    holdings, unplaced = [], []
    for text in args["addresses"]:
        placed = place(
            args.get("setting", "default"), ipaddress.ip_address(text), snapshot,
            exclude={"kube-lb0"},
        )
        if isinstance(placed, Placed):
            holdings.append(Holding(interface=placed.interface, link=placed.link.name))
        else:
            unplaced.append(placed.message)
    asked = []

    def still_mine(address):
        asked.append(str(address))
        return args.get("mine_for") is None or len(asked) <= args["mine_for"]

    def show(items):
        return sorted(f"{o.interface}@{o.link}" for o in items)

    with LocalAddresses(
        service_interface="kube-lb0", lifetime=args.get("lifetime", 30), still_mine=still_mine,
        delays=tuple(args.get("delays", DELAYS)),
    ) as local:
        started = time.monotonic()
        changes = local.reconcile(holdings)
        if args.get("settle"):
            local.settle()
        while time.monotonic() < started + args.get("renew_for", 0):
            time.sleep(0.5)
            local.reconcile(holdings)
        with Lan() as lan:
            after = lan.snapshot()
        print(json.dumps({
            "added": show(changes.added), "renewed": show(changes.renewed),
            "removed": show(changes.removed), "failed": [e for _, e in changes.failed],
            "blocked": [reason for _, reason in changes.blocked], "unplaced": unplaced,
            "holding": show(changes.holding), "holdings": local.holdings,
            "garp_sent": local.garp_sent, "na_sent": local.na_sent, "asked": asked,
            "created": {
                f"{a.address}/{a.prefixlen}": a.created for a in after.addresses
                if a.proto == 0x4C
            },
        }))
    """
)

CAPTURE = textwrap.dedent(
    """
    import json, socket, struct, sys, time
    from pathlib import Path
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    sock.bind(("eth0", 0))
    sock.settimeout(0.1)
    Path(sys.argv[2]).touch()
    seen, end = [], time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        try:
            frame, where = sock.recvfrom(65535)
        except TimeoutError:
            continue
        out, src, kind = where[2] == socket.PACKET_OUTGOING, frame[6:12].hex(), frame[12:14]
        if kind == b"\\x08\\x06":
            op, = struct.unpack("!H", frame[20:22])
            seen.append({"arp": op, "out": out, "src": src, "sha": frame[22:28].hex(),
                         "spa": socket.inet_ntoa(frame[28:32]), "tha": frame[32:38].hex(),
                         "tpa": socket.inet_ntoa(frame[38:42])})
        elif kind == b"\\x86\\xdd" and frame[20] == 58 and frame[54] in (135, 136):
            seen.append({"nd": frame[54], "out": out, "src": src, "hops": frame[21],
                         "flags": frame[58:62].hex(),
                         "target": socket.inet_ntop(socket.AF_INET6, frame[62:78])})
    print(json.dumps(seen))
    """
)

CHECK_ARP = textwrap.dedent(
    """
    import ipaddress, json, sys
    from nodeagent.netlink.ipvs import check_arp, ipvs_addresses, read_arp_sysctls
    from nodeagent.netlink.lan import Lan
    with Lan() as lan:
        snapshot = lan.snapshot()
    finding = check_arp(
        ipvs=ipvs_addresses(snapshot), local=[ipaddress.ip_address(sys.argv[1])],
        nics=["eth0"], sysctls=read_arp_sysctls(["eth0"]),
    )
    print(json.dumps(finding and finding.message))
    """
)


@pytest.fixture(autouse=True)
def _probes() -> None:
    for tool in ("arping", "ndisc6", "ping"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (run make install)")


@dataclass
class Site:
    lan: Lan
    a: Netns
    b: Netns
    client: Netns
    mac: dict[str, str]


@pytest.fixture
def site() -> Iterator[Site]:
    lan = Lan("lan")
    nodes = {"a": Netns("a"), "b": Netns("b"), "client": Netns("cl")}
    try:
        lan.create()
        mac = {}
        for (name, ns), host in zip(nodes.items(), ("11", "12", "100"), strict=True):
            ns.create()
            mac[name] = lan.plug(ns)
            ns.ip("addr", "add", f"10.77.0.{host}/24", "dev", "eth0")
            ns.ip("addr", "add", f"fd77::{host}/64", "dev", "eth0", "nodad")
            ns.ip("route", "add", "default", "via", "10.77.0.1")
            ns.ip("-6", "route", "add", "default", "via", "fd77::1")
        yield Site(lan=lan, a=nodes["a"], b=nodes["b"], client=nodes["client"], mac=mac)
    finally:
        for ns in nodes.values():
            ns.delete()
        lan.delete()


def hold(ns: Netns, addresses: list[str], **options: Any) -> dict[str, Any]:
    """Run LocalAddresses once in ``ns`` with ``addresses`` placed by localInterface."""
    done = ns.exec(sys.executable, "-c", HOLD, json.dumps({"addresses": addresses, **options}))
    return dict(json.loads(done.stdout))


def arp_responders(client: Netns, address: str, probes: int = 3) -> list[str]:
    """The MAC of every ARP reply to ``probes`` broadcast requests from the client."""
    done = client.exec(
        "arping", "-b", "-c", str(probes), "-w", str(probes + 1), "-I", "eth0", address, check=False
    )
    return [m.lower() for m in re.findall(r"reply from \S+ \[([0-9A-Fa-f:]+)\]", done.stdout)]


def nd_responders(client: Netns, address: str) -> list[str]:
    """The MAC of every Neighbor Advertisement answering the client's solicitations."""
    done = client.exec("ndisc6", "-m", "-n", "-r", "2", address, "eth0", check=False)
    return [m.lower() for m in re.findall(r"link-layer address: ([0-9A-Fa-f:]+)", done.stdout)]


def neighbour(client: Netns, address: str) -> str | None:
    entries = json.loads(client.ip("-j", "neigh", "show", address, "dev", "eth0"))
    return str(entries[0]["lladdr"]) if entries and "lladdr" in entries[0] else None


def eth0(ns: Netns) -> dict[str, dict[str, Any]]:
    """eth0's addresses as ``ip`` shows them, by address/prefix."""
    data = json.loads(ns.ip("-j", "addr", "show", "dev", "eth0"))
    return {f"{a['local']}/{a['prefixlen']}": a for a in data[0]["addr_info"]}


class Capture:
    """Records ARP and neighbour discovery on the client's eth0 for ``seconds``."""

    def __init__(self, ns: Netns, seconds: float, tmp: Path) -> None:
        self.ready = tmp / "capture-ready"
        self.result: list[dict[str, Any]] = []
        args = (sys.executable, "-c", CAPTURE, str(seconds), str(self.ready))
        self.thread = threading.Thread(target=self._run, args=(ns, args), daemon=True)

    def _run(self, ns: Netns, args: tuple[str, ...]) -> None:
        self.result = json.loads(ns.exec(*args, timeout=60).stdout)

    def __enter__(self) -> Capture:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.ready.exists():
            assert time.monotonic() < deadline, "the capture did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=60)


def test_the_holder_alone_answers_with_its_mac(site: Site) -> None:
    routes_before = site.a.ip("-j", "route", "show", "dev", "eth0")
    out = hold(site.a, [V4, V6, "192.0.2.50"], lifetime=30)
    assert out["added"] == [f"{V4}/24@eth0", f"{V6}/64@eth0"], "placed by the default route"
    assert out["unplaced"] == [
        "no interface that localInterface 'default' names has an IPv4 address on a subnet "
        "containing 192.0.2.50 (eth0 has 10.77.0.11/24)"
    ]
    assert out["garp_sent"] == 2 and out["na_sent"] == 1, "the first announcement, at once"
    kernel = eth0(site.a)
    v4, v6 = kernel[f"{V4}/24"], kernel[f"{V6}/64"]
    assert v4["noprefixroute"] and v6["noprefixroute"] and v6.get("nodad")
    assert 0 < v4["valid_life_time"] <= 30 and v4["preferred_life_time"] == v4["valid_life_time"]
    assert 0 < v6["valid_life_time"] <= 30 and v6["preferred_life_time"] == 0
    assert site.a.ip("-j", "route", "show", "dev", "eth0") == routes_before, "no second route"

    assert set(arp_responders(site.client, V4)) == {site.mac["a"]}
    assert set(nd_responders(site.client, V6)) == {site.mac["a"]}
    for address in (V4, V6):
        site.client.exec("ping", "-c", "1", "-W", "2", address)
        assert neighbour(site.client, address) == site.mac["a"]


def test_another_interface_by_name_or_pattern_and_a_name_that_matches_nothing(
    site: Site,
) -> None:
    site.a.add_ifb("eth1")
    site.a.ip("addr", "add", "172.31.0.11/24", "dev", "eth1")
    out = hold(site.a, ["172.31.0.50", V4], setting=["eth9", "eth*"])
    assert out["added"] == ["10.77.0.50/24@eth0", "172.31.0.50/24@eth1"]
    out = hold(site.a, [V4], setting="eth9")
    assert out["unplaced"] == [
        "localInterface 'eth9' names no interface for 10.77.0.50: no interface of this node "
        "matches (its interfaces: 'eth0', 'eth1')"
    ]
    assert out["removed"] == ["10.77.0.50/24@eth0", "172.31.0.50/24@eth1"]


def test_a_handover_moves_the_clients_entry_by_garp_and_na_alone(
    site: Site, tmp_path: Path
) -> None:
    hold(site.a, [V4, V6])
    for address in (V4, V6):
        site.client.exec("ping", "-c", "1", "-W", "2", address)
        assert neighbour(site.client, address) == site.mac["a"]
    assert hold(site.a, [])["removed"] == [f"{V4}/24@eth0", f"{V6}/64@eth0"]

    with Capture(site.client, 3.5, tmp_path) as capture:
        out = hold(site.b, [V4, V6], settle=True)
    assert out["added"] == [f"{V4}/24@eth0", f"{V6}/64@eth0"]
    sends = 4  # nodeagent.local.announce.DELAYS
    assert (out["garp_sent"], out["na_sent"]) == (2 * sends, sends)

    b = site.mac["b"].replace(":", "")
    garp = [p for p in capture.result if "arp" in p and not p["out"] and p["spa"] == V4]
    assert all(p["src"] == p["sha"] == b and p["tpa"] == V4 for p in garp)
    requests = [p for p in garp if p["arp"] == 1]
    replies = [p for p in garp if p["arp"] == 2]
    assert len(requests) == len(replies) == sends
    assert {p["tha"] for p in requests} == {"000000000000"} and {p["tha"] for p in replies} == {b}
    na = [p for p in capture.result if p.get("nd") == 136 and not p["out"] and p["target"] == V6]
    assert len(na) == sends
    assert all(p["src"] == b and p["hops"] == 255 and p["flags"] == "20000000" for p in na)
    probes = [
        p
        for p in capture.result
        if p["out"] and (p.get("tpa") == V4 or (p.get("nd") == 135 and p["target"] == V6))
    ]
    assert probes == [], "the client did not ask: the announcements told it"

    for address in (V4, V6):
        assert neighbour(site.client, address) == site.mac["b"]
    assert set(arp_responders(site.client, V4)) == {site.mac["b"]}
    assert set(nd_responders(site.client, V6)) == {site.mac["b"]}


def test_announcements_stop_when_the_address_is_no_longer_this_nodes(site: Site) -> None:
    out = hold(site.b, [V4], settle=True, mine_for=2, delays=[0, 0.1, 0.2, 0.3])
    assert out["asked"] == [V4, V4, V4], "asked before each send; the third answer was no"
    assert out["garp_sent"] == 4


def test_an_operators_addresses_and_kube_lb0s_survive_every_reconcile(site: Site) -> None:
    site.a.ip("addr", "add", "10.77.0.60/24", "dev", "eth0")
    site.a.ip("addr", "add", "fd77::60/64", "dev", "eth0", "nodad")
    site.a.add_ifb("kube-lb0")
    kubelb = "import ipaddress; from nodeagent.netlink import Kubelb; " + (
        "Kubelb('kube-lb0').reconcile(frozenset({ipaddress.ip_interface('10.77.0.50/32')}))"
    )
    site.a.exec(sys.executable, "-c", kubelb)
    operators = {"10.77.0.11/24", "10.77.0.60/24", "fd77::11/64", "fd77::60/64"}

    out = hold(site.a, [V4, "10.77.0.60", "fd77::60"])
    assert out["added"] == [f"{V4}/24@eth0"]
    assert out["blocked"] == [
        "10.77.0.60 is already on eth0 as 10.77.0.60/24, not lbroute's: left alone",
        "fd77::60 is already on eth0 as fd77::60/64, not lbroute's: left alone",
    ]
    for holdings in ([], ["10.77.0.60"], [V4], []):
        hold(site.a, holdings)
        kernel = eth0(site.a)
        assert operators <= set(kernel)
        assert all(kernel[a]["valid_life_time"] == 4294967295 for a in operators), "untouched"
    assert f"{V4}/24" not in eth0(site.a)
    lb = json.loads(site.a.ip("-j", "-4", "addr", "show", "dev", "kube-lb0"))[0]["addr_info"]
    assert [f"{a['local']}/{a['prefixlen']}" for a in lb] == ["10.77.0.50/32"]


def test_a_restart_with_the_same_holdings_removes_and_adds_nothing(site: Site) -> None:
    first = hold(site.a, [V4, V6])
    monitor = subprocess.Popen(
        ["ip", "-n", site.a.name, "monitor", "address"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(0.3)
        second = hold(site.a, [V4, V6])  # a new process: a new LocalAddresses
        time.sleep(0.3)
    finally:
        monitor.terminate()
        events, _ = monitor.communicate(timeout=10)
    assert second["added"] == second["removed"] == []
    assert second["renewed"] == [f"{V4}/24@eth0", f"{V6}/64@eth0"]
    assert second["created"] == first["created"], "the same addresses, renewed in place"
    assert (second["garp_sent"], second["na_sent"]) == (0, 0), "nothing moved"
    assert "Deleted" not in events
    assert set(arp_responders(site.client, V4, probes=1)) == {site.mac["a"]}


def test_an_address_that_is_not_renewed_expires_by_itself(site: Site) -> None:
    lifetime = 2
    started = time.monotonic()
    out = hold(site.a, [V4, V6], lifetime=lifetime, renew_for=3)
    renewed_until = time.monotonic()
    assert out["holdings"] == 2
    assert {f"{V4}/24", f"{V6}/64"} <= set(eth0(site.a)), "renewed past its lifetime"
    assert renewed_until - started > lifetime + 1
    while {f"{V4}/24", f"{V6}/64"} & set(eth0(site.a)):
        assert time.monotonic() - renewed_until < lifetime + 3, "did not expire"
        time.sleep(0.1)
    gone_after = time.monotonic() - renewed_until
    print(f"lifetime {lifetime} s: gone {gone_after:.2f} s after the last renewal")
    assert gone_after > lifetime - 1
    assert arp_responders(site.client, V4, probes=1) == []
    assert {"10.77.0.11/24", "fd77::11/64"} <= set(eth0(site.a))


def test_kube_ipvs0_holding_the_address_without_strict_arp_is_reported(site: Site) -> None:
    hold(site.b, [V4])
    site.a.add_ifb("kube-ipvs0")  # kube-proxy's is a dummy; this kernel has none
    site.a.ip("addr", "add", f"{V4}/32", "dev", "kube-ipvs0")
    assert set(arp_responders(site.client, V4)) == {site.mac["a"], site.mac["b"]}, (
        "the situation is real: A answers for an address only kube-ipvs0 has"
    )
    message = json.loads(site.a.exec(sys.executable, "-c", CHECK_ARP, V4).stdout)
    assert message.startswith(f"kube-ipvs0 holds local address {V4} while ARP is not strict (")
    assert "net.ipv4.conf.all.arp_ignore=0" in message
    assert "strictARP: true" in message
    assert json.loads(site.b.exec(sys.executable, "-c", CHECK_ARP, V4).stdout) is None

    site.a.sysctl("net.ipv4.conf.all.arp_ignore", "1")
    site.a.sysctl("net.ipv4.conf.all.arp_announce", "2")
    assert json.loads(site.a.exec(sys.executable, "-c", CHECK_ARP, V4).stdout) is None
    assert set(arp_responders(site.client, V4)) == {site.mac["b"]}


def test_the_lan_is_gone_afterwards() -> None:
    lan = Lan("gone").create()
    node = Netns("gone").create()
    try:
        lan.plug(node)
    finally:
        node.delete()
        lan.delete()
    names = run("ip", "netns", "list").stdout
    assert lan.ns.name not in names and node.name not in names
