"""BGP: one neighbor per Peer, its outbound filters, and FRR's redistribution filter.

Rendered by ``templates/bird/bgp.j2`` and ``templates/frr/bgp.j2`` (the route-maps by
``templates/frr/policy.j2``). A neighbor is keyed by its address, or by its interface
when unnumbered (FRR only); a second Peer for the same neighbor on one node is
reported and left out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lbroute.model.api import BgpPeer, Family, Peer, Router
from lbroute.model.errors import ObjectRef
from lbroute.model.fields import IPAddress
from renderer.secret import Secret, sealed
from renderer.view.bfd import BfdView
from renderer.view.context import FAST, Context, problem
from renderer.view.names import ExportView, GroupView, Names, family_groups, family_suffix, ident


@dataclass(frozen=True, kw_only=True)
class BgpNeighborView:
    ref: ObjectRef
    ident: str
    protocol_name: str
    """BIRD protocol name."""
    address: IPAddress | None
    interface: str | None
    remote_asn: int | None
    local_asn: int
    local_asn_override: bool
    ibgp: bool
    port: int
    hold_time: int | None
    keepalive_time: int | None
    connect_retry: int | None
    advertisement_interval: int | None
    ebgp_multihop: int | None
    source_address: IPAddress | None
    password: Secret | None
    bfd: BfdView | None
    graceful_restart: bool
    exports: tuple[ExportView, ...]

    @property
    def key(self) -> str:
        """How FRR names the neighbor: its address or its interface."""
        return str(self.address) if self.address is not None else str(self.interface)

    @property
    def families(self) -> tuple[Family, ...]:
        return tuple(e.family for e in self.exports)


_Accepted = tuple[Peer, BgpPeer, str, int]
"""A Peer kept as a neighbor: its spec, router identifier and local ASN."""


def bgp_views(peers: list[Peer], ctx: Context) -> tuple[BgpNeighborView, ...]:
    """The neighbors of the node's BGP ``peers``, in FRR's order."""
    accepted: list[_Accepted] = []
    seen: dict[str, ObjectRef] = {}
    ids: dict[str, ObjectRef] = {}
    for p in peers:
        spec = p.bgp
        assert spec is not None
        key = str(spec.address) if spec.address is not None else f"interface {spec.interface}"
        if key in seen:
            ctx.problems.append(
                problem(
                    p.ref,
                    "spec.bgp",
                    f"{key} is already a neighbor through {seen[key]} on this "
                    "node; one Peer per neighbor",
                )
            )
            continue
        pid = ident(p.name)
        if pid in ids:
            ctx.problems.append(
                problem(p.ref, "metadata.name", f"has the same router name as {ids[pid]}")
            )
            continue
        seen[key], ids[pid] = p.ref, p.ref
        accepted.append((p, spec, pid, spec.local_asn or ctx.agent.local_asn))
    shared = _shared_exports(accepted, ctx)
    views: list[BgpNeighborView] = []
    for p, spec, pid, local_asn in accepted:
        exports = tuple(
            ExportView(
                family=f,
                name=shared.get((f, local_asn, gs)) or ctx.names.bgp_export(pid, f),
                groups=gs,
            )
            for f, gs in family_groups(ctx.carried[p.ref], spec.families)
        )
        views.append(_bgp_neighbor(p, spec, pid, local_asn, exports, ctx))
    return tuple(sorted(views, key=_neighbor_order))


def bgp_redistribute(bgp: tuple[BgpNeighborView, ...], names: Names) -> tuple[ExportView, ...]:
    """Per family, every group some neighbor exports (FRR's redistribute filter)."""
    return tuple(
        ExportView(
            family=f,
            name=names.export("bgp", f),
            groups=tuple(
                sorted(
                    {g for b in bgp for e in b.exports if e.family is f for g in e.groups},
                    key=lambda g: g.ref,
                )
            ),
        )
        for f in Family
        if any(e.family is f for b in bgp for e in b.exports)
    )


def _shared_exports(
    accepted: list[_Accepted], ctx: Context
) -> dict[tuple[Family, int, tuple[GroupView, ...]], str]:
    """FRR: neighbors whose outbound route-maps would be identical (same family, same
    groups, same local ASN for ``set as-path prepend``) share one; otherwise every
    neighbor's route-map would repeat one entry per group (1,000 groups and 500 peers:
    288,000 lines instead of 47,000). A shared route-map is named after what it exports
    (a hash of the local ASN and the groups), never after a neighbor, so neighbors that
    come or go never rename the one the others use; a neighbor whose groups change
    moves to another one, which the FRR driver sends as a re-point. BIRD keeps one
    filter per protocol (empty result)."""
    if ctx.names.router is not Router.FRR:
        return {}
    found: dict[tuple[Family, int, tuple[GroupView, ...]], str] = {}
    for p, spec, _, local_asn in accepted:
        for f, gs in family_groups(ctx.carried[p.ref], spec.families):
            content = f"{local_asn}:{','.join(g.ident for g in gs)}"
            digest = hashlib.sha256(content.encode()).hexdigest()[:12]
            found.setdefault(
                (f, local_asn, gs), ctx.names.join("bgp", "out", digest, family_suffix(f))
            )
    return found


def _neighbor_order(n: BgpNeighborView) -> tuple[int, int, str]:
    """FRR's order: unnumbered neighbors by interface, then IPv4, then IPv6 by address."""
    if n.address is None:
        return (0, 0, str(n.interface))
    return (n.address.version, int(n.address), "")


def _bgp_neighbor(
    p: Peer,
    spec: BgpPeer,
    pid: str,
    local_asn: int,
    exports: tuple[ExportView, ...],
    ctx: Context,
) -> BgpNeighborView:
    fast = ctx.fast_convergence
    connect = spec.connect_time
    if connect is None and fast:
        connect = FAST.bgp_connect_retry
    return BgpNeighborView(
        ref=p.ref,
        ident=pid,
        protocol_name=ctx.names.bgp_protocol(pid),
        address=spec.address,
        interface=spec.interface,
        remote_asn=spec.asn,
        local_asn=local_asn,
        local_asn_override=local_asn != ctx.agent.local_asn,
        ibgp=spec.asn == local_asn,
        port=spec.port,
        hold_time=spec.hold_time,
        keepalive_time=spec.keepalive_time,
        connect_retry=connect,
        advertisement_interval=FAST.bgp_advertisement_interval if fast else None,
        ebgp_multihop=spec.ebgp_multihop,
        source_address=spec.source_address,
        password=sealed(spec.password),
        bfd=ctx.bfd.view(spec.bfd),
        graceful_restart=spec.graceful_restart,
        exports=exports,
    )
