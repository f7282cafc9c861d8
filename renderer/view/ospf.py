"""OSPF: one instance per family (OSPFv2 for IPv4, OSPFv3 for IPv6) and its interfaces.

Rendered by ``templates/bird/ospf.j2`` and ``templates/frr/ospf.j2`` (FRR's interface
lines by ``templates/frr/interfaces.j2``, its route-maps by ``templates/frr/policy.j2``).
Every Peer of a family adds its interfaces to the node's one instance; an interface
already in the instance through another Peer is reported and that Peer left out.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from lbroute.model.api import Family, OspfInterface, Peer
from lbroute.model.errors import ObjectRef
from renderer.secret import Secret, sealed
from renderer.view.bfd import BfdView
from renderer.view.context import Context, problem
from renderer.view.names import OSPF_DRAIN_METRIC, ExportView, union_groups


@dataclass(frozen=True, kw_only=True)
class OspfInterfaceView:
    name: str
    area: ipaddress.IPv4Address
    cost: int | None
    network_type: str | None
    hello_interval: int | None
    dead_interval: int | None
    passive: bool
    bfd: BfdView | None
    auth_key: Secret | None


@dataclass(frozen=True, kw_only=True)
class OspfView:
    family: Family
    version: int
    protocol_name: str
    areas: tuple[tuple[ipaddress.IPv4Address, tuple[OspfInterfaceView, ...]], ...]
    export: ExportView
    peers: tuple[ObjectRef, ...]

    @functools.cached_property
    def interfaces(self) -> tuple[OspfInterfaceView, ...]:
        return tuple(i for _, ifaces in self.areas for i in ifaces)


def ospf_views(peers: list[Peer], ctx: Context) -> tuple[OspfView, ...]:
    """The node's OSPF instances from its OSPF ``peers``: v2 first, then v3."""
    views = []
    for family, version in ((Family.IPV4, 2), (Family.IPV6, 3)):
        members = [p for p in peers if p.ospf is not None and family in p.ospf.families]
        if not members:
            continue
        owner: dict[str, ObjectRef] = {}
        kept: list[Peer] = []
        ifaces: list[OspfInterfaceView] = []
        for p in members:
            spec = p.ospf
            assert spec is not None
            clash = [i.name for i in spec.interfaces if i.name in owner]
            if clash:
                ctx.problems.append(
                    problem(
                        p.ref,
                        "spec.ospf.interfaces",
                        f"interface {clash[0]} is already in OSPFv{version} "
                        f"through {owner[clash[0]]}; one Peer per interface",
                    )
                )
                continue
            kept.append(p)
            for i in spec.interfaces:
                owner[i.name] = p.ref
                ifaces.append(
                    _ospf_iface(
                        i,
                        spec.area,
                        ctx.bfd.view(spec.bfd),
                        spec.auth_key if version == 2 else None,
                    )
                )
        areas: dict[ipaddress.IPv4Address, list[OspfInterfaceView]] = {}
        for iv in ifaces:
            areas.setdefault(iv.area, []).append(iv)
        groups = tuple(g for g in union_groups(kept, ctx.carried) if g.has(family))
        views.append(
            OspfView(
                family=family,
                version=version,
                protocol_name=f"lbr_ospf_v{version}",
                areas=tuple(
                    (a, tuple(sorted(areas[a], key=lambda i: i.name))) for a in sorted(areas)
                ),
                export=ExportView(
                    family=family,
                    name=ctx.names.export("ospf", family),
                    groups=groups,
                    drain_metric=ctx.drain_metric(OSPF_DRAIN_METRIC),
                    withdrawn=ctx.withdrawn,
                ),
                peers=tuple(p.ref for p in kept),
            )
        )
    return tuple(views)


def _ospf_iface(
    i: OspfInterface,
    area: ipaddress.IPv4Address,
    bfd: BfdView | None,
    auth_key: Secret | None,
) -> OspfInterfaceView:
    return OspfInterfaceView(
        name=i.name,
        area=area,
        cost=i.cost,
        network_type=i.network_type.value if i.network_type else None,
        hello_interval=i.hello_interval,
        dead_interval=i.dead_interval,
        passive=i.passive,
        bfd=bfd,
        auth_key=sealed(auth_key),
    )
