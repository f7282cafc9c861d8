"""kube-proxy in IPVS mode against local addresses: is ARP strict enough?

kube-proxy's IPVS mode puts every LoadBalancer IP on ``kube-ipvs0``. Linux answers ARP
on any interface for any address of the host unless told otherwise, so with
``arp_ignore = 0`` every node answers for a local address, not only the elected one,
and the LAN's switches and clients flap between them. And with ``arp_announce < 2`` a
node may use such an address as the sender of its own ARP requests, which overwrites
the neighbours' entry for it. kube-proxy's ``strictARP: true`` sets
``net.ipv4.conf.all.arp_ignore = 1`` and ``arp_announce = 2``; then a node answers only
for addresses on the interface the request came in on, which is where lbroute puts the
address of the node it elected.

:func:`check_arp` decides (pure); :func:`read_arp_sysctls` reads the sysctls of the
current network namespace. lbroute only reports: it never changes the host's sysctls.
IPv6 needs nothing: a node answers neighbour solicitations only for addresses on the
interface they came in on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lbroute.model.fields import IPAddress
from nodeagent.netlink.nic import Snapshot

IPVS_INTERFACE = "kube-ipvs0"
ALL = "all"
IGNORE, ANNOUNCE = "arp_ignore", "arp_announce"
_NEED = {IGNORE: 1, ANNOUNCE: 2}
"""The least value of each sysctl that keeps ARP to the interface holding the address."""


@dataclass(frozen=True, kw_only=True)
class ArpFinding:
    """kube-ipvs0 holds local addresses while ARP is not strict on the NICs that carry
    them."""

    addresses: tuple[ipaddress.IPv4Address, ...]
    weak: tuple[str, ...]
    """Each sysctl that is too low, as ``name=value``."""

    @property
    def message(self) -> str:
        shown = ", ".join(map(str, self.addresses[:5]))
        more = f" and {len(self.addresses) - 5} more" if len(self.addresses) > 5 else ""
        return (
            f"{IPVS_INTERFACE} holds local address{'es' if len(self.addresses) > 1 else ''} "
            f"{shown}{more} while ARP is not strict ({', '.join(self.weak)}): every node "
            "with kube-proxy in IPVS mode answers ARP for them, not only the elected one. "
            "Set strictARP: true in kube-proxy's ipvs configuration, or set the sysctls "
            "net.ipv4.conf.all.arp_ignore=1 and net.ipv4.conf.all.arp_announce=2"
        )


def sysctl_name(interface: str, setting: str) -> str:
    return f"net.ipv4.conf.{interface}.{setting}"


def ipvs_addresses(snapshot: Snapshot) -> frozenset[IPAddress]:
    """The addresses on kube-ipvs0 (none without it)."""
    link = snapshot.link(IPVS_INTERFACE)
    if link is None:
        return frozenset()
    return frozenset(
        ipaddress.ip_address(a.address) for a in snapshot.addresses if a.index == link.index
    )


def check_arp(
    *,
    ipvs: Iterable[IPAddress],
    local: Iterable[IPAddress],
    nics: Iterable[str],
    sysctls: Mapping[str, int],
) -> ArpFinding | None:
    """A finding if kube-ipvs0 holds any of the IPv4 ``local`` addresses while, on a NIC
    in ``nics`` (those local addresses go on), the kernel's value of ``arp_ignore`` or
    ``arp_announce`` (the larger of ``all`` and the NIC's own) is too low. A sysctl
    missing from ``sysctls`` counts as unknown, not as weak."""
    on_ipvs = frozenset(ipvs)
    held = sorted(
        a for a in frozenset(local) if isinstance(a, ipaddress.IPv4Address) and a in on_ipvs
    )
    if not held:
        return None
    weak: list[str] = []
    for nic in sorted(frozenset(nics)):
        for setting, need in _NEED.items():
            names = (sysctl_name(ALL, setting), sysctl_name(nic, setting))
            known = {n: sysctls[n] for n in names if n in sysctls}
            if known and max(known.values()) < need:
                weak += [f"{n}={v}" for n, v in known.items() if f"{n}={v}" not in weak]
    if not weak:
        return None
    return ArpFinding(addresses=tuple(held), weak=tuple(weak))


def read_arp_sysctls(nics: Iterable[str], root: Path = Path("/proc/sys")) -> dict[str, int]:
    """``arp_ignore`` and ``arp_announce`` of ``all`` and of each NIC, as the current
    network namespace has them; a file that cannot be read is left out."""
    found: dict[str, int] = {}
    for interface in (ALL, *sorted(frozenset(nics))):
        for setting in _NEED:
            path = root / "net/ipv4/conf" / interface / setting
            try:
                found[sysctl_name(interface, setting)] = int(path.read_text().strip())
            except (OSError, ValueError):
                continue
    return found
