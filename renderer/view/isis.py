"""IS-IS (FRR only): the node's one instance, its interfaces and its exports per level.

Rendered by ``templates/frr/isis.j2`` (interface lines by ``templates/frr/interfaces.j2``,
route-maps by ``templates/frr/policy.j2``). A node has one IS-IS area and level: Peers
that ask for another one, or for an interface already in the instance, are reported
and left out. The NET is the area and a system id derived from the router id.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from dataclasses import dataclass

from lbroute.model.api import Family, IsisInterface, IsisLevel, Peer
from lbroute.model.errors import ObjectRef
from renderer.view.bfd import BfdView
from renderer.view.context import Context, problem
from renderer.view.names import (
    ISIS_DRAIN_METRIC,
    Drain,
    ExportView,
    family_groups,
    family_suffix,
    union_groups,
)


@dataclass(frozen=True, kw_only=True)
class IsisInterfaceView:
    name: str
    metric: int | None
    network_type: str | None
    passive: bool
    bfd: BfdView | None


@dataclass(frozen=True, kw_only=True)
class IsisView:
    tag: str
    net: str
    level: IsisLevel
    interfaces: tuple[IsisInterfaceView, ...]
    exports: tuple[ExportView, ...]
    peers: tuple[ObjectRef, ...]

    @property
    def families(self) -> tuple[Family, ...]:
        return tuple(e.family for e in self.exports)

    @property
    def levels(self) -> tuple[IsisLevel, ...]:
        if self.level is IsisLevel.LEVEL_1_2:
            return (IsisLevel.LEVEL_1, IsisLevel.LEVEL_2)
        return (self.level,)

    @property
    def is_type(self) -> str | None:
        """FRR's ``is-type`` value; None for level-1-2, the default."""
        return {IsisLevel.LEVEL_1: "level-1", IsisLevel.LEVEL_2: "level-2-only"}.get(self.level)

    def redistributions(self) -> tuple[tuple[ExportView, IsisLevel], ...]:
        """(export, level) pairs: a group goes into the level it names, or into every
        level of the instance when it names none."""
        return self._redistributions

    @functools.cached_property
    def _redistributions(self) -> tuple[tuple[ExportView, IsisLevel], ...]:
        out = []
        for export in self.exports:
            for level in self.levels:
                groups = tuple(
                    g for g in export.groups if g.isis.level in (None, level, IsisLevel.LEVEL_1_2)
                )
                if groups:
                    suffix = "l1" if level is IsisLevel.LEVEL_1 else "l2"
                    name = f"{export.name}-{suffix}"
                    view = dataclasses.replace(export, name=name, groups=groups)
                    out.append((view, level))
        return tuple(out)


def _export_name(ctx: Context, family: Family) -> str:
    """The redistribution route-map's name; another one while the node drains, since
    isisd does not apply a changed route-map to what it already redistributes (measured,
    FRR 8.4: the LSP kept its metric): a new name changes the ``redistribute`` line,
    which isisd does act on."""
    if ctx.drain is Drain.NONE:
        return ctx.names.export("isis", family)
    return ctx.names.join("isis", "export", ctx.drain.value, family_suffix(family))


def system_id(router_id: ipaddress.IPv4Address) -> str:
    """IS-IS system id from an IPv4 router id: 10.0.0.1 -> 0100.0000.0001."""
    digits = "".join(f"{octet:03d}" for octet in router_id.packed)
    return ".".join(digits[i : i + 4] for i in range(0, 12, 4))


def isis_view(peers: list[Peer], ctx: Context) -> IsisView | None:
    """The node's IS-IS instance from its IS-IS ``peers`` (None without any); the first
    Peer sets the area and level."""
    if not peers:
        return None
    first = peers[0].isis
    assert first is not None
    kept: list[Peer] = []
    owner: dict[str, ObjectRef] = {}
    ifaces: list[IsisInterfaceView] = []
    families: set[Family] = set()
    for p in peers:
        spec = p.isis
        assert spec is not None
        if (spec.area, spec.level) != (first.area, first.level):
            ctx.problems.append(
                problem(
                    p.ref,
                    "spec.isis",
                    f"area {spec.area} {spec.level} conflicts with area "
                    f"{first.area} {first.level} of {peers[0].ref}; a node has "
                    "one IS-IS area and level",
                )
            )
            continue
        clash = [i.name for i in spec.interfaces if i.name in owner]
        if clash:
            ctx.problems.append(
                problem(
                    p.ref,
                    "spec.isis.interfaces",
                    f"interface {clash[0]} is already in IS-IS through "
                    f"{owner[clash[0]]}; one Peer per interface",
                )
            )
            continue
        kept.append(p)
        families.update(spec.families)
        for i in spec.interfaces:
            owner[i.name] = p.ref
            ifaces.append(_isis_iface(i, spec.metric, ctx.bfd.view(spec.bfd)))
    groups = union_groups(kept, ctx.carried)
    exports = tuple(
        ExportView(
            family=f,
            name=_export_name(ctx, f),
            groups=gs,
            drain_metric=ctx.drain_metric(ISIS_DRAIN_METRIC),
            withdrawn=ctx.withdrawn,
        )
        for f, gs in family_groups(groups, [f for f in Family if f in families])
    )
    return IsisView(
        tag="lbroute",
        net=f"{first.area}.{system_id(ctx.router_id)}.00",
        level=first.level,
        interfaces=tuple(sorted(ifaces, key=lambda i: i.name)),
        exports=exports,
        peers=tuple(p.ref for p in kept),
    )


def _isis_iface(i: IsisInterface, metric: int | None, bfd: BfdView | None) -> IsisInterfaceView:
    return IsisInterfaceView(
        name=i.name,
        metric=i.metric if i.metric is not None else metric,
        network_type=i.network_type.value if i.network_type else None,
        passive=i.passive,
        bfd=bfd,
    )
