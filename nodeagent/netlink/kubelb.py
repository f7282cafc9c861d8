"""kube-lb0 itself: :class:`Kubelb` creates or adopts the interface, reads lbroute's
addresses and routes from the kernel and carries out a reconcile plan.

pyroute2 handles the interface (create, bring up, look up); addresses and routes go
through :class:`~nodeagent.netlink.rtnl.Rtnl` in bulk. What to add and delete is
:func:`~nodeagent.netlink.plan.plan_reconcile`'s decision; here each step is sent as
one batch and the kernel's answers sorted into done and failed.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from lbroute.model.errors import InterfaceError
from lbroute.model.fields import IPNetwork
from lbroute.model.vocabulary import ROUTE_PROTO, ROUTE_TABLE_DEFAULT
from nodeagent.desired import Interface
from nodeagent.netlink import wire
from nodeagent.netlink.plan import NONE, Mark, Plan, plan_reconcile
from nodeagent.netlink.rtnl import Rtnl, set_promote_secondaries

log = logging.getLogger(__name__)

# The kernel's answers that mean it already is as asked: done, not failed.
_ADD_OK = frozenset({errno.EEXIST})
_ROUTE_DEL_OK = frozenset({errno.ESRCH, errno.ENOENT})
_ADDR_DEL_OK = frozenset({errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV})

_Item = TypeVar("_Item", Interface, IPNetwork)


@dataclass(frozen=True, kw_only=True)
class Changes:
    added: tuple[Interface, ...] = ()
    removed: tuple[Interface, ...] = ()
    failed: tuple[tuple[Interface | IPNetwork, str], ...] = ()
    owned: frozenset[Interface] = frozenset()
    """lbroute's addresses on the interface afterwards."""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


KNOWN_SECONDS = 5.0
"""How long :meth:`Kubelb.reconcile` trusts what it left on the interface instead of
reading it back from the kernel (a reconcile that failed in any part trusts nothing)."""


@dataclass(kw_only=True)
class _Known:
    """What a reconcile left: lbroute's addresses with their metrics and its routes with
    their marks, on the interface of ``index``, read from the kernel at ``read``; the
    addresses by IP, and how many are in each prefix (what a change of a few needs)."""

    index: int
    read: float
    addresses: dict[Interface, int]
    marks: dict[IPNetwork, Mark]
    by_ip: dict[tuple[int, int], Interface]
    """(version, IP as an integer) -> the address: ipaddress objects hash in Python."""
    users: dict[IPNetwork, int]

    @classmethod
    def of(
        cls,
        index: int,
        read: float,
        addresses: dict[Interface, int],
        marks: dict[IPNetwork, Mark],
    ) -> _Known:
        users: dict[IPNetwork, int] = {}
        for i in addresses:
            users[i.network] = users.get(i.network, 0) + 1
        return cls(
            index=index,
            read=read,
            addresses=addresses,
            marks=marks,
            by_ip={_ip_key(i): i for i in addresses},
            users=users,
        )

    def forget(self, iface: Interface) -> None:
        if iface not in self.addresses:
            return
        del self.addresses[iface]
        self.by_ip.pop(_ip_key(iface), None)
        left = self.users.get(iface.network, 0) - 1
        if left > 0:
            self.users[iface.network] = left
        else:
            self.users.pop(iface.network, None)

    def learn(self, iface: Interface, metric: int) -> None:
        self.addresses[iface] = metric
        self.by_ip[_ip_key(iface)] = iface
        self.users[iface.network] = self.users.get(iface.network, 0) + 1


def _ip_key(iface: Interface) -> tuple[int, int]:
    return (iface.version, int(iface))


class Kubelb:
    """The dummy interface that carries Service addresses, in the current netns."""

    def __init__(
        self,
        ifname: str,
        *,
        table: int = ROUTE_TABLE_DEFAULT,
        sysctl_root: Path = Path("/proc/sys"),
    ) -> None:
        self.ifname = ifname
        self.table = table
        self.sysctl_root = sysctl_root
        self.address_marks = False
        """Weights and classes go on the addresses' metrics too (the router is FRR: zebra
        reads the connected route's metric, docs/weighted-ecmp.md)."""
        self._ipr = IPRoute()
        self._bulk: Rtnl | None = None
        self._index: int | None = None
        self.known_seconds = KNOWN_SECONDS
        self._known: _Known | None = None

    def close(self) -> None:
        self._known = None
        self._ipr.close()
        if self._bulk is not None:
            self._bulk.close()

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
        """Without it, deleting the first IPv4 address of a subnet deletes every other
        address of that subnet too: one Service leaving would take others with it.

        Set through netlink (needs only CAP_NET_ADMIN; in a container ``/proc/sys`` is
        mounted read-only), with the sysctl file as the fallback."""
        path = self.sysctl_root / "net/ipv4/conf" / self.ifname / "promote_secondaries"
        try:
            if path.read_text().strip() == "1":
                return
        except OSError:
            pass
        try:
            set_promote_secondaries(self._link_index())
            return
        except OSError as netlink_error:
            try:
                path.write_text("1\n")
            except OSError as exc:
                raise InterfaceError(
                    f"cannot enable promote_secondaries on {self.ifname}: netlink said "
                    f"{netlink_error}; {path}: {exc}"
                ) from exc

    def _link_index(self) -> int:
        found = self._ipr.link_lookup(ifname=self.ifname)
        if not found:
            raise InterfaceError(f"{self.ifname} does not exist")
        return int(found[0])

    @property
    def index(self) -> int:
        if self._index is None:
            return self.ensure()
        return self._index

    # -- addresses --------------------------------------------------------------------

    @property
    def _rtnl(self) -> Rtnl:
        if self._bulk is None:
            self._bulk = Rtnl()
        return self._bulk

    def owned(self) -> frozenset[Interface]:
        """Addresses on the interface that carry lbroute's mark."""
        return frozenset(self._addresses())

    def _addresses(self) -> dict[Interface, int]:
        """lbroute's addresses on the interface, with their metrics."""
        index = self.index
        return {
            ipaddress.ip_interface(f"{a.address}/{a.prefixlen}"): a.metric
            for a in self._rtnl.addresses(index)
            if a.index == index and a.proto == ROUTE_PROTO
        }

    def routes(self) -> frozenset[IPNetwork]:
        """The prefixes lbroute keeps a route for in its table."""
        return frozenset(self._routes())

    def _routes(self) -> dict[IPNetwork, Mark]:
        """lbroute's routes in its table, with their marks (weight, class)."""
        index = self.index
        found = {}
        for family in (socket.AF_INET, socket.AF_INET6):
            for r in self._rtnl.routes(family, self.table, index):
                if r.table == self.table and r.proto == ROUTE_PROTO and r.oif == index:
                    found[ipaddress.ip_network(f"{r.dst}/{r.dst_len}")] = r.mark
        return found

    def reconcile(
        self,
        desired: frozenset[Interface],
        weights: Mapping[Interface, int] | None = None,
        classes: Mapping[Interface, int] | None = None,
        *,
        fresh: bool = False,
    ) -> Changes:
        """Make lbroute's addresses and routes match ``desired`` (with ``weights`` and
        ``classes``), in the order :mod:`~nodeagent.netlink.plan` gives; each step is one
        batch of requests, which the kernel carries out in order.

        What the interface holds is read from the kernel (two dumps: about 0.2 s at
        10,000 addresses) unless the last reconcile carried out every request and began
        from a reading less than :attr:`known_seconds` old: then what it left is the
        starting point, so a pass for one Service among 10,000 costs what changed. An
        address someone else removed meanwhile comes back at the first pass after that."""
        index = self.index
        known, started = self._known, time.monotonic()
        trusted = known is not None and started - known.read < self.known_seconds and not fresh
        if known is not None and known.index == index and trusted:
            addresses, marks, read = known.addresses, known.marks, known.read
        else:
            addresses, marks, read = self._addresses(), self._routes(), started
        self._known = None  # until this reconcile is carried out in full
        current = frozenset(addresses)
        plan = plan_reconcile(
            owned=current,
            routes=frozenset(marks),
            desired=desired,
            weights=weights,
            classes=classes,
            marks=marks,
            metrics=addresses,
            address_marks=self.address_marks,
        )
        added, removed, failed = self._carry_out(plan, index)
        if not failed:
            self._known = _Known.of(
                index,
                read,
                {i: plan.metrics.get(i, 0) for i in desired},
                {i.network: plan.route_marks.get(i.network, NONE) for i in desired},
            )
        return Changes(
            added=tuple(added),
            removed=tuple(removed),
            failed=tuple(failed),
            owned=(current | frozenset(added)) - frozenset(removed),
        )

    def update(
        self,
        old: Iterable[Interface],
        new: Mapping[Interface, Mark],
    ) -> Changes | None:
        """A change of a few addresses: ``old`` ones (as the last reconcile or update
        left them) make way for ``new`` ones, each with its (weight, class); the rest of
        the interface is left as it is. The plan is :func:`plan_reconcile`'s, for the
        IPs of ``old`` and ``new`` and the routes of their prefixes, from what the last
        reconcile left (:attr:`known_seconds` does not apply: :meth:`reconcile` is what
        reads the kernel again). ``owned`` in the result is of those IPs only.

        None, with nothing done: there is no such record (none yet, or the last one
        failed in a part, or the interface changed); a :meth:`reconcile` is needed."""
        index = self.index
        known = self._known
        if known is None or known.index != index:
            return None
        keys = {_ip_key(i) for i in old} | {_ip_key(i) for i in new}
        owned = {
            iface: known.addresses[iface]
            for key in keys
            if (iface := known.by_ip.get(key)) is not None
        }
        desired = frozenset(new)
        prefixes = {i.network for i in owned} | {i.network for i in desired}
        leaving: dict[IPNetwork, int] = {}
        for iface in owned:
            leaving[iface.network] = leaving.get(iface.network, 0) + 1
        keep = frozenset(n for n in prefixes if known.users.get(n, 0) > leaving.get(n, 0))
        routes = {n: known.marks[n] for n in prefixes if n in known.marks}
        plan = plan_reconcile(
            owned=frozenset(owned),
            routes=frozenset(routes),
            desired=desired,
            weights={i: mark[0] for i, mark in new.items() if mark[0]},
            classes={i: mark[1] for i, mark in new.items() if mark[1]},
            marks=routes,
            metrics=owned,
            address_marks=self.address_marks,
            keep_routes=keep,
        )
        self._known = None  # until this change is carried out in full
        added, removed, failed = self._carry_out(plan, index)
        if not failed:
            for iface in owned:
                known.forget(iface)
            for iface in desired:
                known.learn(iface, plan.metrics.get(iface, 0))
            for net in prefixes:
                if net in known.users:
                    known.marks[net] = plan.route_marks.get(net, NONE)
                else:
                    known.marks.pop(net, None)
            self._known = known
        return Changes(
            added=tuple(added),
            removed=tuple(removed),
            failed=tuple(failed),
            owned=(frozenset(owned) | frozenset(added)) - frozenset(removed),
        )

    def _carry_out(
        self, plan: Plan, index: int
    ) -> tuple[list[Interface], list[Interface], list[tuple[Interface | IPNetwork, str]]]:
        """Send ``plan``'s steps, one batch each; (added, removed, failed)."""
        table = self.table
        mark, metric = plan.route_marks, plan.metrics
        failed: list[tuple[Interface | IPNetwork, str]] = []
        removed_first: list[Interface] = []
        added = self._batch(
            plan.add,
            lambda i: wire.add_address(i, index, ROUTE_PROTO, metric.get(i, 0)),
            _ADD_OK,
            "add",
            failed,
        )
        swapped = self._remove_and_add(plan.swap, index, metric)
        for (old, new), (gone, back) in zip(plan.swap, swapped, strict=True):
            if gone in (0, *_ADDR_DEL_OK):
                removed_first.append(old)
            if back in (0, *_ADD_OK):
                added.append(new)
            else:
                failed.append((new, f"cannot add: {os.strerror(back)}"))
        self._batch(
            plan.add_routes,
            lambda n: wire.add_route(n, table, index, ROUTE_PROTO, mark.get(n, NONE)),
            _ADD_OK,
            "add route",
            failed,
        )
        self._batch(
            plan.delete_routes,
            lambda n: wire.delete_route(n, table, index, ROUTE_PROTO),
            _ROUTE_DEL_OK,
            "del route",
            failed,
        )
        removed = removed_first + self._batch(
            plan.delete, lambda i: wire.delete_address(i, index), _ADDR_DEL_OK, "delete", failed
        )
        self._batch(
            plan.reweight_routes,
            lambda n: wire.replace_route(n, table, index, ROUTE_PROTO, mark.get(n, NONE)),
            frozenset(),
            "weigh route",
            failed,
        )
        self._batch(
            plan.reweight,
            lambda i: wire.change_address(i, index, ROUTE_PROTO, metric.get(i, 0)),
            frozenset(),
            "weigh",
            failed,
        )
        readded = self._remove_and_add([(i, i) for i in plan.readd], index, metric)
        for i, (gone, back) in zip(plan.readd, readded, strict=True):
            if back not in (0, *_ADD_OK):
                failed.append((i, f"cannot weigh: {os.strerror(back)} (removed: {gone})"))
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
        return added, removed, failed

    def _remove_and_add(
        self,
        pairs: Sequence[tuple[Interface, Interface]],
        index: int,
        metric: Mapping[Interface, int],
    ) -> list[tuple[int, int]]:
        """Remove each pair's first address and add its second, all in one batch (each
        address is absent between two messages only); the kernel's two answers per pair."""
        if not pairs:
            return []
        requests: list[wire.Request] = []
        for old, new in pairs:
            requests += [
                wire.delete_address(old, index),
                wire.add_address(new, index, ROUTE_PROTO, metric.get(new, 0)),
            ]
        codes = self._rtnl.requests(requests)
        return list(zip(codes[::2], codes[1::2], strict=True))

    def _batch(
        self,
        items: Sequence[_Item],
        request: Callable[[_Item], wire.Request],
        ok: frozenset[int],
        what: str,
        failed: list[tuple[Interface | IPNetwork, str]],
    ) -> list[_Item]:
        """Send one request per item; the items the kernel did (or found done)."""
        if not items:
            return []
        codes = self._rtnl.requests([request(item) for item in items])
        done = []
        for item, code in zip(items, codes, strict=True):
            if code == 0 or code in ok:
                done.append(item)
            else:
                failed.append((item, f"cannot {what}: {os.strerror(code)}"))
        return done
