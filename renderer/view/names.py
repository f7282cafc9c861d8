"""The names and numbers every protocol's view shares, computed here, never in templates.

A ServiceGroup becomes a :class:`GroupView`: a router-safe identifier, one prefix set
per family (BIRD ``define``, FRR ``prefix-list``) and a route-map sequence number. A
protocol instance or BGP neighbor exports a list of groups as an :class:`ExportView`
(a BIRD filter or an FRR route-map). :class:`Names` spells every such name for one
router: BIRD takes ``lbr_sg_web_v4``, FRR ``lbr-sg-web-v4``.

Sequence numbers come from a hash of what they number (:func:`stable_seq`), so an entry
keeps its number when unrelated entries come or go and frr-reload.py sends only the
difference.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from lbroute.model.api import (
    BgpPolicy,
    ExportPrefix,
    Family,
    IsisPolicy,
    OspfPolicy,
    Peer,
    RipPolicy,
    Router,
    ServiceGroup,
)
from lbroute.model.errors import ObjectRef
from lbroute.model.fields import IPNetwork

_IDENT_MAX = 40


def ident(name: str) -> str:
    """A router-safe identifier for a Kubernetes name: [a-z0-9_], at most 40 characters.

    Long names keep a readable start and end with a hash of the full name, so two
    names never share an identifier by truncation.
    """
    base = re.sub(r"[^a-z0-9]", "_", name.lower())
    if len(base) <= _IDENT_MAX:
        return base
    return f"{base[: _IDENT_MAX - 9]}_{zlib.crc32(name.encode()):08x}"


def stable_seq(key: str, used: set[int], lo: int, hi: int) -> int:
    """A sequence number derived from ``key`` alone, so it does not shift when unrelated
    entries come or go. On the rare hash collision the next free number is taken."""
    span = hi - lo + 1
    seq = lo + zlib.crc32(key.encode()) % span
    while seq in used:
        seq = lo + (seq - lo + 1) % span
    used.add(seq)
    return seq


def family_suffix(family: Family) -> str:
    return "v4" if family is Family.IPV4 else "v6"


class Drain(StrEnum):
    """Where a node is in a drain (issue 17, nodeagent.drain): announcing as usual,
    de-preferring its Service routes, or withdrawing them (sessions stay up)."""

    NONE = "none"
    DEPREFER = "deprefer"
    WITHDRAW = "withdraw"


OSPF_DRAIN_METRIC = 16777214
"""The largest OSPF external metric (LSInfinity, 16777215, would mean unreachable)."""
ISIS_DRAIN_METRIC = 16777215
"""The largest metric a ServiceGroup may set for IS-IS (a wide metric, 24 bits)."""
RIP_DRAIN_METRIC = 15
"""One short of RIP's infinity (16)."""


class Names:
    """Router-specific naming of filters, prefix sets and route-maps."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def join(self, *parts: str) -> str:
        if self.router is Router.BIRD:
            return "_".join(("lbr", *parts))
        return "-".join(("lbr", *(p.replace("_", "-") for p in parts)))

    def group_set(self, group: str, family: Family) -> str:
        return self.join("sg", group, family_suffix(family))

    def bgp_protocol(self, peer: str) -> str:
        return self.join("bgp", peer)

    def export(self, proto: str, family: Family) -> str:
        return self.join(proto, "export", family_suffix(family))


@dataclass(frozen=True, kw_only=True)
class PrefixEntry:
    network: IPNetwork
    ge: int
    le: int
    seq: int

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    @property
    def ge_printed(self) -> bool:
        """Whether FRR prints ``ge`` for this entry (only when it differs from the length)."""
        return self.ge != self.network.prefixlen

    @property
    def le_printed(self) -> bool:
        """Whether FRR prints ``le``: an exact match has neither ge nor le."""
        return not (self.ge == self.le == self.network.prefixlen)


@dataclass(frozen=True, kw_only=True)
class GroupView:
    ref: ObjectRef
    ident: str
    seq: int
    """Stable route-map sequence number of this group's entries (FRR)."""
    prefixes: dict[Family, tuple[PrefixEntry, ...]]
    set_names: dict[Family, str]
    bgp: BgpPolicy
    ospf: OspfPolicy
    isis: IsisPolicy
    rip: RipPolicy

    def __hash__(self) -> int:
        return hash(self.ref)

    @property
    def name(self) -> str:
        return self.ref.name

    def has(self, family: Family) -> bool:
        return bool(self.prefixes.get(family))


@dataclass(frozen=True, kw_only=True)
class ExportView:
    """What one routing instance (or one BGP neighbor) exports for one family."""

    family: Family
    name: str
    """Filter (BIRD) or route-map (FRR) name."""
    groups: tuple[GroupView, ...]
    drain_metric: int | None = None
    """While the node drains (phase 1): the metric every group's routes get instead of
    their own, the largest the protocol allows for them. BGP de-prefers by its actions."""
    withdrawn: bool = False
    """The node is drained (phase 2): the filter or route-map exports nothing; the
    groups stay listed so that undrain changes only this."""

    @functools.cached_property
    def by_seq(self) -> tuple[GroupView, ...]:
        """The groups in FRR's route-map order (by sequence number)."""
        return tuple(sorted(self.groups, key=lambda g: g.seq))


def group_views(groups: list[ServiceGroup], names: Names) -> list[GroupView]:
    """The views of ``groups``, by reference. Of groups whose names give the same
    identifier only the first is kept (the node's checks report the others)."""
    used_seqs: set[int] = set()
    views = []
    seen: dict[str, ObjectRef] = {}
    for g in sorted(groups, key=lambda g: g.ref):
        gid = ident(g.name)
        if gid in seen:
            continue
        seen[gid] = g.ref
        prefixes: dict[Family, tuple[PrefixEntry, ...]] = {}
        for family in Family:
            entries = g.export_prefixes(family)
            if entries:
                prefixes[family] = _prefix_entries(entries)
        views.append(
            GroupView(
                ref=g.ref,
                ident=gid,
                seq=stable_seq(gid, used_seqs, 10, 65000),
                prefixes=prefixes,
                set_names={f: names.group_set(gid, f) for f in prefixes},
                bgp=g.bgp,
                ospf=g.ospf,
                isis=g.isis,
                rip=g.rip,
            )
        )
    return views


def _prefix_entries(entries: Iterable[ExportPrefix]) -> tuple[PrefixEntry, ...]:
    used: set[int] = set()
    out = [
        PrefixEntry(
            network=e.network,
            ge=e.ge,
            le=e.le,
            seq=stable_seq(f"{e.network}/{e.ge}/{e.le}", used, 1, 999999),
        )
        for e in entries
    ]
    return tuple(sorted(out, key=lambda e: e.seq))


def family_groups(
    groups: tuple[GroupView, ...], families: Iterable[Family]
) -> list[tuple[Family, tuple[GroupView, ...]]]:
    """Per family, the groups that have prefixes of that family."""
    return [(f, tuple(g for g in groups if g.has(f))) for f in families]


def union_groups(
    peers: list[Peer], carried: Mapping[ObjectRef, tuple[GroupView, ...]]
) -> tuple[GroupView, ...]:
    """Every group some of ``peers`` carries, once, by reference."""
    found = {g for p in peers for g in carried[p.ref]}
    return tuple(sorted(found, key=lambda g: g.ref))
