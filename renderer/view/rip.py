"""RIP: one instance per family (RIP for IPv4, RIPng for IPv6) and its interfaces.

Rendered by ``templates/bird/rip.j2`` and ``templates/frr/rip.j2`` (FRR's interface
lines by ``templates/frr/interfaces.j2``, its route-maps and RIPng's prefix-list by
``templates/frr/policy.j2``). RIP timers are per node: Peers that set different ones
are reported and left out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from lbroute.model.api import Family, Peer, RipTimers, Router
from lbroute.model.errors import ObjectRef
from renderer.secret import Secret, sealed
from renderer.view.context import FAST, Context, problem
from renderer.view.names import (
    RIP_DRAIN_METRIC,
    ExportView,
    GroupView,
    PrefixEntry,
    family_suffix,
    stable_seq,
    union_groups,
)


@dataclass(frozen=True, kw_only=True)
class RipInterfaceView:
    name: str
    version: int
    auth_key: Secret | None


@dataclass(frozen=True, kw_only=True)
class RipView:
    family: Family
    protocol_name: str
    interfaces: tuple[RipInterfaceView, ...]
    timers: RipTimers | None
    export: ExportView
    peers: tuple[ObjectRef, ...]
    out_filter: str
    """FRR ripngd cannot match prefix-lists in route-maps: its prefixes are filtered by a
    distribute-list of this name instead (the union of the groups' entries)."""
    out_entries: tuple[PrefixEntry, ...]

    @functools.cached_property
    def version(self) -> int:
        versions = {i.version for i in self.interfaces}
        return versions.pop() if len(versions) == 1 else 2


def rip_views(peers: list[Peer], ctx: Context) -> tuple[RipView, ...]:
    """The node's RIP instances from its RIP ``peers``: RIP first, then RIPng."""
    views = []
    for family, proto_name in ((Family.IPV4, "lbr_rip"), (Family.IPV6, "lbr_ripng")):
        members = [p for p in peers if p.rip is not None and family in p.rip.families]
        if not members:
            continue
        owner: dict[str, ObjectRef] = {}
        kept: list[Peer] = []
        timers: RipTimers | None = None
        timers_from: ObjectRef | None = None
        ifaces: list[RipInterfaceView] = []
        for p in members:
            spec = p.rip
            assert spec is not None
            clash = [i for i in spec.interfaces if i in owner]
            if clash:
                ctx.problems.append(
                    problem(
                        p.ref,
                        "spec.rip.interfaces",
                        f"interface {clash[0]} is already in RIP through "
                        f"{owner[clash[0]]}; one Peer per interface",
                    )
                )
                continue
            if spec.timers is not None and timers is not None and spec.timers != timers:
                ctx.problems.append(
                    problem(
                        p.ref,
                        "spec.rip.timers",
                        f"differ from the timers of {timers_from} on this node; "
                        "RIP timers are per node, set the same values",
                    )
                )
                continue
            if spec.timers is not None:
                timers, timers_from = spec.timers, p.ref
            kept.append(p)
            for name in spec.interfaces:
                owner[name] = p.ref
                ifaces.append(
                    RipInterfaceView(
                        name=name,
                        version=spec.version if family is Family.IPV4 else 2,
                        auth_key=sealed(spec.auth_key) if family is Family.IPV4 else None,
                    )
                )
        if timers is None and ctx.fast_convergence:
            timers = FAST.rip_timers
        groups = tuple(g for g in union_groups(kept, ctx.carried) if g.has(family))
        if family is Family.IPV6 and ctx.names.router is Router.FRR:
            for g in groups:
                if g.rip.metric is not None:
                    ctx.problems.append(
                        problem(
                            g.ref,
                            "spec.rip.metric",
                            "FRR's RIPng cannot set a metric per ServiceGroup; its IPv6 "
                            "prefixes are announced with the default metric",
                            warning=True,
                        )
                    )
        views.append(
            RipView(
                family=family,
                protocol_name=proto_name,
                interfaces=tuple(sorted(ifaces, key=lambda i: i.name)),
                timers=timers,
                export=ExportView(
                    family=family,
                    name=ctx.names.export("rip" if family is Family.IPV4 else "ripng", family),
                    groups=groups,
                    drain_metric=ctx.drain_metric(RIP_DRAIN_METRIC),
                    withdrawn=ctx.withdrawn,
                ),
                peers=tuple(p.ref for p in kept),
                out_filter=ctx.names.join("ripng", "out", family_suffix(family)),
                out_entries=_out_entries(groups, family),
            )
        )
    return tuple(views)


def _out_entries(groups: tuple[GroupView, ...], family: Family) -> tuple[PrefixEntry, ...]:
    """Every prefix entry of ``groups`` in one list (FRR RIPng's distribute-list)."""
    used: set[int] = set()
    return tuple(
        sorted(
            (
                PrefixEntry(
                    network=e.network,
                    ge=e.ge,
                    le=e.le,
                    seq=stable_seq(f"{g.ident}/{e.network}/{e.ge}/{e.le}", used, 1, 999999),
                )
                for g in groups
                for e in g.prefixes[family]
            ),
            key=lambda e: e.seq,
        )
    )
