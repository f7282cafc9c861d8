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
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from nodeagent.desired import Interface
from renderer.api import ROUTE_PROTO, ROUTE_TABLE_DEFAULT
from renderer.errors import LbrouteError

log = logging.getLogger(__name__)

ADDRESS_PROTO = 0x4C
"""IFA_PROTO value that marks an address as lbroute's ('L')."""
ROUTE_TABLE = ROUTE_TABLE_DEFAULT
IFA_F_NODAD = 0x02
"""IPv6: usable at once, no duplicate address detection (the address is a VIP)."""
IFA_F_NOPREFIXROUTE = 0x200
"""The kernel adds no prefix route of its own; lbroute keeps one per prefix instead."""
RT_SCOPE_LINK = 253


class InterfaceError(LbrouteError):
    """kube-lb0 could not be created, found or configured."""


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
        self._index: int | None = None

    def close(self) -> None:
        self._ipr.close()

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
        # Without it, deleting the first IPv4 address of a subnet deletes every other
        # address of that subnet too: one Service leaving would take others with it.
        path = self.sysctl_root / "net/ipv4/conf" / self.ifname / "promote_secondaries"
        try:
            if path.read_text().strip() != "1":
                path.write_text("1\n")
        except OSError as exc:
            raise InterfaceError(
                f"cannot enable promote_secondaries on {self.ifname}: {exc}"
            ) from exc

    @property
    def index(self) -> int:
        if self._index is None:
            return self.ensure()
        return self._index

    # -- addresses --------------------------------------------------------------------

    def owned(self) -> frozenset[Interface]:
        """Addresses on the interface that carry lbroute's mark."""
        found = set()
        for msg in self._ipr.get_addr(index=self.index):
            if msg.get_attr("IFA_PROTO") != ADDRESS_PROTO:
                continue
            address = msg.get_attr("IFA_ADDRESS")
            found.add(ipaddress.ip_interface(f"{address}/{msg['prefixlen']}"))
        return frozenset(found)

    def routes(self) -> frozenset[Network]:
        """The prefixes lbroute keeps a route for in its table."""
        found = set()
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in self._ipr.get_routes(family=family, table=self.table):
                if msg["proto"] != ROUTE_PROTO or msg.get_attr("RTA_OIF") != self.index:
                    continue
                dst = msg.get_attr("RTA_DST")
                found.add(ipaddress.ip_network(f"{dst}/{msg['dst_len']}"))
        return frozenset(found)

    def reconcile(self, desired: frozenset[Interface]) -> Changes:
        """Make lbroute's addresses and routes match ``desired``.

        Order: new addresses, new routes, then old routes, then old addresses; so a
        prefix-length change never leaves a gap, and a route never outlives (nor is
        silently dropped with) the last address of its prefix.
        """
        current = self.owned()
        add = sorted(desired - current, key=_order)
        remove = sorted(current - desired, key=_order)
        want_routes = frozenset(i.network for i in desired)
        have_routes = self.routes()
        failed: list[tuple[Interface | Network, str]] = []
        added = [i for i in add if not self._did(self._add(i), i, failed)]
        for net in sorted(want_routes - have_routes, key=_net_order):
            self._did(self._route("add", net), net, failed)
        for net in sorted(have_routes - want_routes, key=_net_order):
            self._did(self._route("del", net), net, failed)
        removed = [i for i in remove if not self._did(self._delete(i), i, failed)]
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

    @staticmethod
    def _did(
        error: str | None,
        item: Interface | Network,
        failed: list[tuple[Interface | Network, str]],
    ) -> bool:
        """Record ``error``; True when there was one."""
        if error is not None:
            failed.append((item, error))
        return error is not None

    def _route(self, command: str, net: Network) -> str | None:
        try:
            self._ipr.route(
                command,
                dst=str(net),
                table=self.table,
                proto=ROUTE_PROTO,
                scope=RT_SCOPE_LINK,
                oif=self.index,
                family=socket.AF_INET6 if net.version == 6 else socket.AF_INET,
            )
        except NetlinkError as exc:
            if command == "add" and exc.code == errno.EEXIST:
                return None
            if command == "del" and exc.code in (errno.ESRCH, errno.ENOENT):
                return None
            return f"cannot {command} route: {exc.args[-1]}"
        return None

    def _add(self, iface: Interface) -> str | None:
        kwargs: dict[str, Any] = {
            "index": self.index,
            "address": str(iface.ip),
            "prefixlen": iface.network.prefixlen,
            "proto": ADDRESS_PROTO,
        }
        kwargs["flags"] = IFA_F_NOPREFIXROUTE
        if iface.version == 6:
            kwargs["family"] = socket.AF_INET6
            kwargs["flags"] |= IFA_F_NODAD
        try:
            self._ipr.addr("add", **kwargs)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return None
            return f"cannot add: {exc.args[-1]}"
        return None

    def _delete(self, iface: Interface) -> str | None:
        family = socket.AF_INET6 if iface.version == 6 else socket.AF_INET
        try:
            self._ipr.addr(
                "del",
                index=self.index,
                address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
                family=family,
            )
        except NetlinkError as exc:
            if exc.code in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV):
                return None
            return f"cannot delete: {exc.args[-1]}"
        return None


def _order(iface: Interface) -> tuple[int, int, int]:
    return (iface.version, int(iface.ip), iface.network.prefixlen)


def _net_order(net: Network) -> tuple[int, int, int]:
    return (net.version, int(net.network_address), net.prefixlen)
