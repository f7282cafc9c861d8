"""A second upstream router on the lab's link that speaks iBGP with the nodes, and the BGP
paths an upstream router holds for a prefix, read alike from FRR and BIRD.

The lab's own upstream (:class:`~lbroute.lab.topology.Lab`) is eBGP (AS 65000). Policy
that depends on the kind of session, such as a prepend that an iBGP neighbor would drop
as an AS-path loop or a local preference that only iBGP carries, needs an upstream in
the nodes' own AS as well: :class:`IbgpUpstream` adds one (a route reflector's place),
at 10.0.0.2 / fd00::2 on the same link, running FRR or BIRD, accepting every node as an
iBGP neighbor and exporting nothing. :func:`bgp_paths` reads what either kind of
upstream received: one :class:`BgpPath` per neighbor that announced the prefix, with the
attributes as the receiving router stored them.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from lbroute.lab.daemons import BirdInstance, FrrInstance
from lbroute.lab.netns import Netns, veth
from lbroute.lab.topology import Lab

IBGP_V4, IBGP_V6 = "10.0.0.2", "fd00::2"
NODES_ASN = 64512
"""The nodes' AS in the lab (the NodeAgent default), which the iBGP upstream shares."""

IBGP_FRR = """frr defaults traditional
!
router bgp {asn}
 bgp router-id {v4}
 neighbor nodes peer-group
 neighbor nodes remote-as internal
 neighbor nodes timers connect 1
 neighbor nodes6 peer-group
 neighbor nodes6 remote-as internal
 neighbor nodes6 timers connect 1
 bgp listen range 10.0.0.0/24 peer-group nodes
 bgp listen range fd00::/64 peer-group nodes6
 !
 address-family ipv4 unicast
  neighbor nodes activate
 exit-address-family
 !
 address-family ipv6 unicast
  neighbor nodes6 activate
 exit-address-family
exit
!
"""

IBGP_BIRD = """router id {v4};
protocol device {{ scan time 1; }}
# Retry a failed session after a second (BIRD waits 60 s by default): see configs.py.
protocol bgp nodes {{
  local {v4} as {asn};
  neighbor range 10.0.0.0/24 internal;
  direct;
  error wait time 1, 5;
  ipv4 {{ import all; export none; }};
}}
protocol bgp nodes6 {{
  local {v6} as {asn};
  neighbor range fd00::/64 internal;
  direct;
  error wait time 1, 5;
  ipv6 {{ import all; export none; }};
}}
"""


@dataclass(frozen=True, kw_only=True)
class BgpPath:
    """One path to a prefix in a router's BGP table, as that router stored it."""

    peer: str
    """The address of the neighbor it came from."""
    as_path: tuple[int, ...]
    local_pref: int | None
    """None when the route came without one and the router added none (FRR on eBGP;
    BIRD gives such routes its default, 100)."""
    med: int | None
    communities: tuple[str, ...]
    """``ASN:VALUE``, sorted."""
    large_communities: tuple[str, ...]
    """``A:B:C``, sorted."""


def bgp_paths(router: FrrInstance | BirdInstance, prefix: str) -> list[BgpPath]:
    """The paths to ``prefix`` in ``router``'s BGP table (valid ones: a route dropped
    as an AS-path loop, or refused by policy, is not there), by neighbor address."""
    if isinstance(router, FrrInstance):
        paths = _frr_paths(router, prefix)
    else:
        paths = _bird_paths(router, prefix)
    return sorted(paths, key=lambda p: p.peer)


def _frr_paths(frr: FrrInstance, prefix: str) -> list[BgpPath]:
    family = "ipv6" if ":" in prefix else "ipv4"
    out = frr.vtysh(f"show bgp {family} unicast {prefix} json").stdout
    found = []
    for path in json.loads(out or "{}").get("paths", []):
        if not path.get("valid"):
            continue
        segments = path.get("aspath", {}).get("segments", [])
        found.append(
            BgpPath(
                peer=str(path["peer"]["peerId"]),
                as_path=tuple(int(a) for s in segments for a in s.get("list", [])),
                local_pref=path.get("locPrf"),
                med=path.get("metric"),
                communities=tuple(sorted(path.get("community", {}).get("list", []))),
                large_communities=tuple(sorted(path.get("largeCommunity", {}).get("list", []))),
            )
        )
    return found


def _bird_paths(bird: BirdInstance, prefix: str) -> list[BgpPath]:
    out = bird.birdc("show", "route", prefix, "all", check=False).stdout
    found = []
    # One block per route: a line naming the protocol ("[nodes2 ...]"), then its
    # attributes, indented.
    for block in re.split(r"\n(?=\S|\s+unicast \[)", out):
        if "BGP.origin" not in block:
            continue

        def attr(name: str, text: str = block) -> str | None:
            m = re.search(rf"^\s+BGP\.{name}: (.*)$", text, re.M)
            return m.group(1).strip() if m else None

        protocol = re.search(r"unicast \[(\S+) ", block)
        communities = re.findall(r"\((\d+),\s*(\d+)\)", attr("community") or "")
        larges = re.findall(r"\((\d+),\s*(\d+),\s*(\d+)\)", attr("large_community") or "")
        local_pref, med = attr("local_pref"), attr("med")
        found.append(
            BgpPath(
                peer=_bird_neighbor(bird, protocol.group(1)) if protocol else "",
                as_path=tuple(int(a) for a in (attr("as_path") or "").split()),
                local_pref=int(local_pref) if local_pref is not None else None,
                med=int(med) if med is not None else None,
                communities=tuple(sorted(f"{a}:{b}" for a, b in communities)),
                large_communities=tuple(sorted(f"{a}:{b}:{c}" for a, b, c in larges)),
            )
        )
    return found


def _bird_neighbor(bird: BirdInstance, protocol: str) -> str:
    """The neighbor address of a BGP protocol (one a ``neighbor range`` spawned, too)."""
    out = bird.birdc("show", "protocols", "all", protocol, check=False).stdout
    m = re.search(r"^\s+Neighbor address:\s+(\S+)", out, re.M)
    return m.group(1) if m else ""


class IbgpUpstream:
    """An iBGP upstream router (FRR or BIRD) on ``lab``'s link, in AS ``asn``, from
    :meth:`start` until :meth:`stop` (which also runs when starting fails). Start it
    after the lab, stop it before the lab."""

    def __init__(self, lab: Lab, router: str, workdir: Path, asn: int = NODES_ASN) -> None:
        self.lab = lab
        self.router_kind = router
        self.workdir = workdir
        self.asn = asn
        self.ns: Netns | None = None
        self.router: FrrInstance | BirdInstance | None = None

    def start(self) -> IbgpUpstream:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        up = self.lab.upstream
        assert up is not None, "start the lab first"
        ns = self.ns = Netns(f"{self.lab.tag}ib").create()
        veth(up, "vib", ns, "eth0")
        up.ip("link", "set", "vib", "master", "br0")
        ns.ip("addr", "add", f"{IBGP_V4}/24", "dev", "eth0")
        ns.ip("addr", "add", f"{IBGP_V6}/64", "dev", "eth0", "nodad")
        if self.router_kind == "frr":
            frr = self.router = FrrInstance(ns, self.workdir / "ibgp-frr")
            frr.start(("zebra", "bgpd"))
            frr.load(IBGP_FRR.format(asn=self.asn, v4=IBGP_V4))
        else:
            bird = self.router = BirdInstance(ns, self.workdir / "ibgp-bird")
            conf = bird.dir / "bird.conf"
            conf.write_text(IBGP_BIRD.format(asn=self.asn, v4=IBGP_V4, v6=IBGP_V6))
            bird.start(conf)

    def paths(self, prefix: str) -> list[BgpPath]:
        assert self.router is not None
        return bgp_paths(self.router, prefix)

    def stop(self) -> None:
        if self.router is not None:
            with contextlib.suppress(Exception):
                self.router.stop()
        if self.ns is not None:
            self.ns.delete()
