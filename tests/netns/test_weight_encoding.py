"""The per-prefix weight encoding that weighted ECMP (issue 16, docs/weighted-ecmp.md)
rests on, checked on the real routers before lbroute renders it.

An FRR upstream (multipath, nothing else configured) and two nodes running the same
router, BIRD or FRR; each node holds 192.0.2.10/32 and 2001:db8::10/128 on kube-lb0 and
announces them over eBGP (IPv4 and IPv6 sessions). Node a has weight 3, node b weight 1,
carried the way the design says:

- BIRD: the ``window`` attribute (RTAX_WINDOW) of the prefix's route in kernel table
  4242, which BIRD's kernel protocol learns as ``krt_window``; a function maps it to the
  link-bandwidth extended community, built as a generic one (type 0x00, subtype 0x04,
  the node's ASN; the value is the IEEE float of weight x 125,000 bytes/s, 1 Mbps per
  endpoint). The route is replaced in place (window is not part of the route's key).
- FRR: the address's metric (IFA_RT_PRIORITY), which zebra gives the connected route;
  the redistribution route-map calls a map with one entry per weight (``match metric N``
  -> ``set extcommunity bandwidth N`` and ``set metric 0``, so the weight never becomes
  the MED: paths with different MEDs would not be multipath). FRR 8.4's zebra takes a
  new IPv4 address metric in place, but not an IPv6 one: the IPv6 address is removed
  and added again with the new metric.

The upstream installs next-hop weights 75/25 for both families; after the weights change
to 1 and 4 (no configuration change on either node), 20/80; the changed node's sessions
are never reset, and the upstream receives one UPDATE per family for the change (no
withdrawal first).
"""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lbroute.lab import BirdInstance, FrrInstance, Netns, veth, vtysh_conf

V4, V6 = "192.0.2.10/32", "2001:db8::10/128"
NODE_ASN, UPSTREAM_ASN = 64512, 65000
MAX_WEIGHT = 10  # the probe's table; the product renders its own cap


def bandwidth_bits(weight: int) -> int:
    """The link-bandwidth value FRR's ``set extcommunity bandwidth N`` (Mbps) sends:
    the IEEE 754 single of N x 125,000 bytes per second."""
    return int(struct.unpack(">I", struct.pack(">f", weight * 125_000.0))[0])


BIRD_WEIGHTS = "\n".join(
    f"    {n}: bgp_ext_community.add((generic, {(0x0004 << 16) | NODE_ASN:#010x}, "
    f"{bandwidth_bits(n):#010x}));"
    for n in range(1, MAX_WEIGHT + 1)
)

BIRD = """router id {v4};
protocol device {{ }}
ipv4 table lbr4;
ipv6 table lbr6;
protocol kernel lbr_kernel4 {{
  ipv4 {{ table lbr4; import where krt_source = 242; export none; }};
  kernel table 4242; learn; scan time 10;
}}
protocol kernel lbr_kernel6 {{
  ipv6 {{ table lbr6; import where krt_source = 242; export none; }};
  kernel table 4242; learn; scan time 10;
}}
function lbr_weight() {{
  case krt_window {{
{weights}
  }}
}}
protocol bgp up4 {{
  local {v4} as {asn}; neighbor {peer4} as {upstream_asn};
  connect delay time 1; connect retry time 1; error wait time 1, 5;
  ipv4 {{ table lbr4; import none; export filter {{ lbr_weight(); accept; }}; }};
}}
protocol bgp up6 {{
  local {v6} as {asn}; neighbor {peer6} as {upstream_asn};
  connect delay time 1; connect retry time 1; error wait time 1, 5;
  ipv6 {{ table lbr6; import none; export filter {{ lbr_weight(); accept; }}; }};
}}
"""

FRR_WEIGHTS = "".join(
    f"route-map lbr-weight permit {n}\n match metric {n}\n"
    f" set extcommunity bandwidth {n}\n set metric 0\nexit\n"
    for n in range(1, MAX_WEIGHT + 1)
)

FRR = (
    """frr defaults traditional
router bgp {asn}
 bgp router-id {v4}
 no bgp ebgp-requires-policy
 neighbor {peer4} remote-as {upstream_asn}
 neighbor {peer4} timers connect 1
 neighbor {peer6} remote-as {upstream_asn}
 neighbor {peer6} timers connect 1
 address-family ipv4 unicast
  redistribute connected route-map lbr-export
  no neighbor {peer6} activate
 exit-address-family
 address-family ipv6 unicast
  redistribute connected route-map lbr-export
  neighbor {peer6} activate
 exit-address-family
exit
route-map lbr-export permit 10
 match interface kube-lb0
 call lbr-weight
exit
"""
    + FRR_WEIGHTS
    + "route-map lbr-weight permit 65535\nexit\n"
)

UPSTREAM = """frr defaults traditional
router bgp {upstream_asn}
 bgp router-id 10.255.0.1
 no bgp ebgp-requires-policy
{neighbors} address-family ipv4 unicast
  maximum-paths 8
{v6_off} exit-address-family
 address-family ipv6 unicast
  maximum-paths 8
{v6_on} exit-address-family
exit
"""


@dataclass
class Node:
    name: str
    index: int
    router: str
    ns: Netns
    daemon: BirdInstance | FrrInstance | None = None

    @property
    def v4(self) -> str:
        return f"10.{self.index}.0.2"

    @property
    def v6(self) -> str:
        return f"fd0{self.index}::2"

    def set_weight(self, weight: int, *, first: bool = False) -> None:
        """The weight through the router's carrier (no configuration change)."""
        if self.router == "bird":
            for prefix in (V4, V6):
                self.ns.ip("route", "add" if first else "replace", prefix, "dev", "kube-lb0",
                           "table", "4242", "proto", "242", "window", str(weight))  # fmt: skip
            return
        if first:
            self.ns.ip("addr", "add", V4, "dev", "kube-lb0", "metric", str(weight))
            self.ns.ip("addr", "add", V6, "dev", "kube-lb0", "metric", str(weight), "nodad")
            return
        self.ns.ip("addr", "change", V4, "dev", "kube-lb0", "metric", str(weight))
        self.ns.ip("-6", "addr", "del", V6, "dev", "kube-lb0")
        self.ns.ip("addr", "add", V6, "dev", "kube-lb0", "metric", str(weight), "nodad")


@dataclass
class Probe:
    upstream: Netns
    frr: FrrInstance
    nodes: list[Node] = field(default_factory=list)

    def weights(self, prefix: str) -> dict[str, int]:
        """The upstream kernel's next-hop weights for ``prefix``, by node."""
        family = "-6" if ":" in prefix else "-4"
        text = self.upstream.ip(family, "route", "show", prefix.partition("/")[0])
        found = {}
        for m in re.finditer(r"nexthop via \S+ dev (\S+) weight (\d+)", text):
            found[f"node-{m.group(1)[-1]}"] = int(m.group(2))
        return found

    def wait_weights(self, wanted: dict[str, int], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        seen: dict[str, dict[str, int]] = {}
        while time.monotonic() < deadline:
            seen = {p: self.weights(p) for p in (V4, V6)}
            if all(w == wanted for w in seen.values()):
                return
            time.sleep(0.05)
        detail = self.frr.vtysh(f"show bgp ipv6 unicast {V6}", check=False).stdout
        raise AssertionError(f"upstream weights {seen}, wanted {wanted}: {detail}")

    def neighbors(self) -> dict[str, dict[str, Any]]:
        out = self.frr.vtysh("show bgp neighbors json", check=False).stdout
        return {k: v for k, v in json.loads(out or "{}").items() if isinstance(v, dict)}


@pytest.fixture(params=["bird", "frr"])
def probe(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Probe]:
    router = str(request.param)
    upstream = Netns(tag="wup").create()
    probe = Probe(upstream=upstream, frr=FrrInstance(upstream))
    try:
        for index, name in ((1, "node-a"), (2, "node-b")):
            node = Node(name=name, index=index, router=router, ns=Netns(tag="w").create())
            probe.nodes.append(node)
            dev = f"e{name[-1]}"
            veth(upstream, dev, node.ns, "eth0")
            upstream.ip("addr", "add", f"10.{index}.0.1/24", "dev", dev)
            upstream.ip("addr", "add", f"fd0{index}::1/64", "dev", dev, "nodad")
            node.ns.ip("addr", "add", f"{node.v4}/24", "dev", "eth0")
            node.ns.ip("addr", "add", f"{node.v6}/64", "dev", "eth0", "nodad")
            node.ns.add_ifb("kube-lb0")
            if router == "bird":
                node.ns.ip("addr", "add", V4, "dev", "kube-lb0")
                node.ns.ip("addr", "add", V6, "dev", "kube-lb0", "nodad")
            node.set_weight(3 if name == "node-a" else 1, first=True)
            conf = tmp_path / name
            conf.mkdir()
            values = {
                "v4": node.v4,
                "v6": node.v6,
                "peer4": f"10.{index}.0.1",
                "peer6": f"fd0{index}::1",
                "asn": NODE_ASN,
                "upstream_asn": UPSTREAM_ASN,
            }
            if router == "bird":
                (conf / "bird.conf").write_text(BIRD.format(weights=BIRD_WEIGHTS, **values))
                node.daemon = BirdInstance(node.ns, conf)
                node.daemon.start(conf / "bird.conf")
            else:
                vtysh_conf(conf)
                (conf / "frr.conf").write_text(FRR.format(**values))
                node.daemon = FrrInstance(node.ns, conf)
                node.daemon.start(("zebra", "bgpd"), config=conf / "frr.conf")
        peers = [(f"10.{i}.0.2", f"fd0{i}::2") for i in (1, 2)]
        conf = tmp_path / "upstream"
        conf.mkdir()
        vtysh_conf(conf)
        (conf / "frr.conf").write_text(
            UPSTREAM.format(
                upstream_asn=UPSTREAM_ASN,
                neighbors="".join(
                    f" neighbor {a} remote-as {NODE_ASN}\n" for pair in peers for a in pair
                ),
                v6_off="".join(f"  no neighbor {v6} activate\n" for _, v6 in peers),
                v6_on="".join(f"  neighbor {v6} activate\n" for _, v6 in peers),
            )
        )
        probe.frr = FrrInstance(upstream, conf)
        probe.frr.start(("zebra", "bgpd"), config=conf / "frr.conf")
        yield probe
    finally:
        probe.frr.stop()
        for node in probe.nodes:
            if node.daemon is not None:
                node.daemon.stop()
            node.ns.delete()
        upstream.delete()


def test_the_weight_reaches_the_upstream_as_link_bandwidth_and_changes_in_place(
    probe: Probe,
) -> None:
    probe.wait_weights({"node-a": 75, "node-b": 25})
    path = json.loads(probe.frr.vtysh(f"show bgp ipv4 unicast {V4} json").stdout)["paths"]
    communities = sorted(p["extendedCommunity"]["string"] for p in path)
    assert communities == [f"LB:{NODE_ASN}:125000 (1.000 Mbps)",
                           f"LB:{NODE_ASN}:375000 (3.000 Mbps)"]  # fmt: skip
    before = probe.neighbors()
    a, b = probe.nodes
    a.set_weight(1)
    b.set_weight(4)
    started = time.monotonic()
    probe.wait_weights({"node-a": 20, "node-b": 80}, timeout=10)
    took = time.monotonic() - started
    time.sleep(1)  # anything late (a second UPDATE) would arrive now
    after = probe.neighbors()
    for address in (a.v4, a.v6):
        was, now = before[address], after[address]
        assert now["bgpState"] == "Established"
        assert now["connectionsEstablished"] == was["connectionsEstablished"], "session reset"
        received = now["messageStats"]["updatesRecv"] - was["messageStats"]["updatesRecv"]
        assert received == 1, (address, "UPDATEs for one weight change", received)
    print(f"{a.router}: weights followed in {took:.2f}s")
