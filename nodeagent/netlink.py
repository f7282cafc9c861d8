"""kube-lb0 through netlink (pyroute2): the one place lbroute touches the kernel.

Ownership is kept in the kernel itself: every address lbroute adds carries the
address protocol :data:`ADDRESS_PROTO` (``IFA_PROTO``), so after a restart the agent
knows exactly which addresses are its own and never touches one an operator added by
hand. Reconciling is a diff: add what is missing, delete what is no longer wanted,
nothing else; ``EEXIST`` on add and ``EADDRNOTAVAIL``/``ENOENT`` on delete count as done.
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
from renderer.errors import LbrouteError

log = logging.getLogger(__name__)

ADDRESS_PROTO = 0x4C
"""IFA_PROTO value that marks an address as lbroute's ('L')."""
IFA_F_NODAD = 0x02
"""IPv6: usable at once, no duplicate address detection (the address is a VIP)."""


class InterfaceError(LbrouteError):
    """kube-lb0 could not be created, found or configured."""


@dataclass(frozen=True, kw_only=True)
class Changes:
    added: tuple[Interface, ...] = ()
    removed: tuple[Interface, ...] = ()
    failed: tuple[tuple[Interface, str], ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


class Kubelb:
    """The dummy interface that carries Service addresses, in the current netns."""

    def __init__(self, ifname: str, *, sysctl_root: Path = Path("/proc/sys")) -> None:
        self.ifname = ifname
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

    def reconcile(self, desired: frozenset[Interface]) -> Changes:
        """Make lbroute's addresses equal ``desired``: add first, then delete, so a
        prefix-length change of one address never leaves a gap."""
        current = self.owned()
        add = sorted(desired - current, key=_order)
        remove = sorted(current - desired, key=_order)
        added, removed, failed = [], [], []
        for iface in add:
            error = self._add(iface)
            if error is None:
                added.append(iface)
            else:
                failed.append((iface, error))
        for iface in remove:
            error = self._delete(iface)
            if error is None:
                removed.append(iface)
            else:
                failed.append((iface, error))
        if added or removed:
            log.info(
                "%s: added %d, removed %d addresses%s",
                self.ifname,
                len(added),
                len(removed),
                f" ({', '.join(map(str, (*added, *removed)[:5]))}"
                f"{', ...' if len(added) + len(removed) > 5 else ''})",
            )
        for iface, error in failed:
            log.warning("%s: %s: %s", self.ifname, iface, error)
        return Changes(added=tuple(added), removed=tuple(removed), failed=tuple(failed))

    def _add(self, iface: Interface) -> str | None:
        kwargs: dict[str, Any] = {
            "index": self.index,
            "address": str(iface.ip),
            "prefixlen": iface.network.prefixlen,
            "proto": ADDRESS_PROTO,
        }
        if iface.version == 6:
            kwargs["family"] = socket.AF_INET6
            kwargs["flags"] = IFA_F_NODAD
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
