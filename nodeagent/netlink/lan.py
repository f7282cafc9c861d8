"""The node's LAN interfaces through rtnetlink: what local addresses are placed by, and
carrying out a :class:`~nodeagent.netlink.nic.LocalPlan`.

:meth:`Lan.snapshot` reads links, every address and the main table's default routes in
three dumps; :mod:`nodeagent.netlink.nic` decides on that. :meth:`Lan.carry_out` sends
each step of a plan as one batch (remove, add, renew), with the valid lifetime the
agent keeps renewing, so that a dead agent's addresses expire by themselves.

The kernel's answers: a remove that finds the address gone (it expired) is done; an add
that finds it there (``EEXIST``: someone else's, since the plan adds only what the
dump did not show as lbroute's) failed, and nothing of it was changed. Adds ask for
``NLM_F_EXCL``, never ``NLM_F_REPLACE``: a replace would quietly mark an operator's
address as lbroute's.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lbroute.model.vocabulary import ROUTE_PROTO
from nodeagent.netlink import wire
from nodeagent.netlink.nic import LocalPlan, OnLink, Snapshot
from nodeagent.netlink.rtnl import Rtnl

log = logging.getLogger(__name__)

_DEL_OK = frozenset({errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV})


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What the kernel did of a plan."""

    added: tuple[OnLink, ...] = ()
    renewed: tuple[OnLink, ...] = ()
    removed: tuple[OnLink, ...] = ()
    failed: tuple[tuple[OnLink, str], ...] = ()


class Lan:
    """The current network namespace's links, for local addresses."""

    def __init__(self) -> None:
        self._rtnl = Rtnl()

    def close(self) -> None:
        self._rtnl.close()

    def __enter__(self) -> Lan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> Snapshot:
        return Snapshot(
            links=tuple(self._rtnl.links()),
            addresses=tuple(self._rtnl.addresses(0)),
            defaults=tuple(
                route
                for family in (socket.AF_INET, socket.AF_INET6)
                for route in self._rtnl.default_routes(family)
            ),
        )

    def carry_out(self, plan: LocalPlan, *, lifetime: int) -> Outcome:
        """Remove, add, then renew, each in one batch; ``lifetime``: the valid lifetime in
        seconds that added and renewed addresses get."""
        failed: list[tuple[OnLink, str]] = []
        removed = self._batch(
            plan.remove,
            lambda o: wire.delete_address(o.interface, o.index),
            _DEL_OK,
            "remove",
            failed,
        )
        added = self._batch(
            plan.add,
            lambda o: wire.local_address(o.interface, o.index, ROUTE_PROTO, valid=lifetime),
            frozenset(),
            "add",
            failed,
        )
        renewed = self._batch(
            plan.renew,
            lambda o: wire.local_address(
                o.interface, o.index, ROUTE_PROTO, valid=lifetime, renew=True
            ),
            frozenset(),
            "renew",
            failed,
        )
        for item in (*added, *removed):
            log.info(
                "%s local address %s on %s",
                "added" if item in added else "removed",
                item.interface,
                item.link,
            )
        for item, error in failed:
            log.warning("local address %s on %s: %s", item.interface, item.link, error)
        return Outcome(
            added=tuple(added), renewed=tuple(renewed), removed=tuple(removed), failed=tuple(failed)
        )

    def _batch(
        self,
        items: Sequence[OnLink],
        request: Callable[[OnLink], wire.Request],
        ok: frozenset[int],
        what: str,
        failed: list[tuple[OnLink, str]],
    ) -> list[OnLink]:
        if not items:
            return []
        codes = self._rtnl.requests([request(item) for item in items])
        done = []
        for item, code in zip(items, codes, strict=True):
            if code == 0 or code in ok:
                done.append(item)
            elif code == errno.EEXIST:
                failed.append((item, f"cannot {what}: already on {item.link}, not lbroute's"))
            else:
                failed.append((item, f"cannot {what}: {os.strerror(code)}"))
        return done
