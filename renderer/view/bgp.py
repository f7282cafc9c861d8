"""BGP: one neighbor per Peer, its outbound filters, and FRR's redistribution filter.

Rendered by ``templates/bird/bgp.j2`` and ``templates/frr/bgp.j2`` (the route-maps by
``templates/frr/policy.j2``). A neighbor is keyed by its address, or by its interface
when unnumbered (FRR only); a second Peer for the same neighbor on one node is
reported and left out.

A ServiceGroup's BGP attributes do not all mean something on every session, so each
neighbor's filter gets the group's :class:`BgpActions` for its :class:`Session` kind,
iBGP when its ASN is the local one, eBGP otherwise: ``asPathPrepend`` only towards
eBGP (an iBGP neighbor finds its own AS in the path and drops the route as a loop,
RFC 4271 9.1.2, so a prepending group could never reach a route reflector),
``localPref`` only towards iBGP (LOCAL_PREF is not sent to eBGP neighbors, RFC 4271
5.1.5; BIRD and FRR leave it out there), communities, large communities and MED
towards both.

While the node drains (issue 17), every group's actions also de-prefer its routes,
sessions kept: the GRACEFUL_SHUTDOWN community (65535:0, RFC 8326) towards both kinds,
local preference 0 towards iBGP, and towards eBGP the NodeAgent's ``drainPrepend``
more prepends and its ``drainMED`` as the MED. Once drained, the filters export
nothing (:attr:`ExportView.withdrawn`).

A group's BGP classes (docs/bgp-classes.md) come on top of its actions, chosen per
route by the number the agent puts on it: BIRD reads it as ``krt_rtt`` in the group's
function; FRR reads the address metric (``class * CLASS_STRIDE + weight``) in the
redistribution route-map :class:`ClassMarkView`, which turns it into the route's tag,
and the outbound route-map's entry for the group calls :class:`ClassMapView`, which
matches the tag. Per session kind as the group's own attributes, and while the node
drains a class sets no local preference and no MED (the drain's de-preference wins).
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from lbroute.model.agentconfig import DrainPolicy
from lbroute.model.api import (
    CLASS_STRIDE,
    MAX_WEIGHT,
    BgpClass,
    BgpPeer,
    Community,
    Family,
    LargeCommunity,
    Peer,
    Router,
)
from lbroute.model.errors import ObjectRef, quote
from lbroute.model.fields import IPAddress
from renderer.secret import Secret, sealed
from renderer.view.bfd import BfdView
from renderer.view.context import FAST, Context, problem
from renderer.view.names import (
    Drain,
    ExportView,
    GroupView,
    Names,
    family_groups,
    family_suffix,
    ident,
)

GRACEFUL_SHUTDOWN = Community(asn=65535, value=0)
"""RFC 8326's well-known community: the route's sender is about to withdraw it."""


class Session(StrEnum):
    """The kind of BGP session a neighbor runs: iBGP when its ASN is the local one."""

    IBGP = "iBGP"
    EBGP = "eBGP"


@dataclass(frozen=True, kw_only=True)
class ClassActions:
    """What one BGP class adds to its group's actions towards one session kind."""

    name: str
    index: int
    communities: tuple[Community, ...]
    large_communities: tuple[LargeCommunity, ...]
    local_pref: int | None
    med: int | None
    prepend: int

    @property
    def empty(self) -> bool:
        return not (
            self.communities or self.large_communities or self.prepend
            or self.local_pref is not None or self.med is not None
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class BgpActions:
    """What one ServiceGroup's routes get towards the neighbors of one ``session`` kind
    (or both): each attribute only where the receiving router uses it (see the module
    docstring)."""

    group: GroupView
    session: Session | None
    """None when the group's policy is the same on both kinds (no prepend, no local
    preference)."""
    function: str
    """BIRD function that applies them, called from the filter of every such neighbor:
    ``lbr_sg_<group>_bgp`` for both kinds, ``..._ibgp`` / ``..._ebgp`` for one."""
    communities: tuple[Community, ...]
    large_communities: tuple[LargeCommunity, ...]
    local_pref: int | None
    med: int | None
    prepend: int
    """How many times the neighbor's local ASN is prepended (BIRD passes it in)."""
    weighted: bool = False
    """``weightByEndpoints``: BIRD calls the weight function (:class:`WeightView`)."""
    classes: tuple[ClassActions, ...] = ()
    """The group's classes that change something towards this session kind."""

    @property
    def takes_asn(self) -> bool:
        """BIRD: the function prepends (its own or a class's), so it takes the ASN."""
        return bool(self.prepend) or any(c.prepend for c in self.classes)

    @property
    def empty(self) -> bool:
        return not (
            self.communities or self.large_communities or self.prepend or self.weighted
            or self.local_pref is not None or self.med is not None or self.classes
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ClassMapView:
    """FRR: the route-map an outbound entry of a group with classes calls; one entry per
    class, matching the tag :class:`ClassMarkView` set, adding the class's attributes."""

    name: str
    classes: tuple[ClassActions, ...]
    local_asn: int
    """What ``set as-path prepend`` repeats (the name holds it when a class prepends)."""


@dataclass(frozen=True, kw_only=True)
class ClassMarkEntry:
    seq: int
    """The address metric it matches, ``class * CLASS_STRIDE + weight`` (never 0)."""
    index: int
    weight: int


@dataclass(frozen=True, kw_only=True)
class ClassMarkView:
    """FRR: the route-map a redistribution entry of a group with classes calls: it reads
    the class and weight from the connected route's metric, tags the route with the
    class, sets the link-bandwidth community for the weight, and the metric back to 0."""

    name: str
    weights: WeightView | None
    """Where a route of class 0 goes on (its metric is its weight alone)."""
    classes: int
    """The most classes a group declares."""

    @functools.cached_property
    def entries(self) -> tuple[ClassMarkEntry, ...]:
        weights = range(MAX_WEIGHT + 1) if self.weights is not None else range(1)
        return tuple(
            ClassMarkEntry(seq=c * CLASS_STRIDE + w, index=c, weight=w)
            for c in range(1, self.classes + 1)
            for w in weights
        )


def class_mark_view(
    groups: Iterable[GroupView], names: Names, weights: WeightView | None
) -> ClassMarkView | None:
    """The class route-map, when some group of ``groups`` declares classes."""
    most = max((len(g.bgp.classes) for g in groups), default=0)
    if not most:
        return None
    return ClassMarkView(name=names.join("class"), weights=weights, classes=most)


LINK_BANDWIDTH = 0x0004
"""The link-bandwidth extended community's type (0x00: transitive, two-octet AS) and
subtype (0x04), the high half of its first 32 bits (docs/weighted-ecmp.md)."""
BYTES_PER_ENDPOINT = 125_000.0
"""1 Mbps per ready endpoint: FRR's ``set extcommunity bandwidth N`` with N endpoints."""
AS_TRANS = 23456


@dataclass(frozen=True, kw_only=True)
class WeightEntry:
    weight: int
    high: int
    """BIRD: the community's first 32 bits (type, subtype, ASN)."""
    value: int
    """BIRD: its last 32 bits, the IEEE 754 single of the bandwidth in bytes/s."""


@dataclass(frozen=True, kw_only=True)
class WeightView:
    """Weighted ECMP (docs/weighted-ecmp.md): the table, rendered once per node, that
    maps a prefix's weight (its ready endpoints on the node, which the agent puts in the
    route's window for BIRD and the address's metric for FRR) to the link-bandwidth
    community; weights 1 to MAX_WEIGHT."""

    name: str
    """BIRD function ``lbr_weight``; FRR route-map ``lbr-weight``."""
    asn: int
    """The node's ASN as the community's two-octet AS (AS_TRANS when it is larger)."""

    @functools.cached_property
    def entries(self) -> tuple[WeightEntry, ...]:
        high = (LINK_BANDWIDTH << 16) | self.asn
        return tuple(
            WeightEntry(weight=n, high=high, value=_float_bits(n * BYTES_PER_ENDPOINT))
            for n in range(1, MAX_WEIGHT + 1)
        )


def weight_view(groups: Iterable[GroupView], names: Names, local_asn: int) -> WeightView | None:
    """The weight table, when some group of ``groups`` weights by endpoints."""
    if not any(g.bgp.weight_by_endpoints for g in groups):
        return None
    return WeightView(name=names.join("weight"), asn=local_asn if local_asn < 65536 else AS_TRANS)


def _float_bits(value: float) -> int:
    return int(struct.unpack(">I", struct.pack(">f", value))[0])


@dataclass(frozen=True, kw_only=True)
class BgpExportEntry:
    """One group in a neighbor's outbound filter, with its actions towards that neighbor."""

    actions: BgpActions
    as_path_prepend: tuple[int, ...]
    """FRR: the ASNs ``set as-path prepend`` adds (the neighbor's local ASN, repeated)."""
    class_map: ClassMapView | None = None
    """FRR: the route-map of the group's classes this entry calls."""

    @property
    def group(self) -> GroupView:
        return self.actions.group


@dataclass(frozen=True, kw_only=True)
class BgpExportView(ExportView):
    """What one BGP neighbor exports for one family, and each group's actions there."""

    session: Session
    entries: tuple[BgpExportEntry, ...]
    """In the order of ``groups``; none once the node is drained (``withdrawn``)."""
    held: tuple[BgpExportEntry, ...] = ()
    """The entries whatever the drain: FRR keeps each group's attributes where its routes
    enter BGP while the node is drained, so that undraining changes only the outbound
    route-maps."""
    local_asn: int = 0
    """The local ASN of the neighbors that use it (BIRD passes it to the functions that
    prepend; filters of eBGP neighbors with another local ASN are others)."""

    @functools.cached_property
    def group_runs(self) -> tuple[tuple[int, int], ...]:
        """BIRD: the numbers of the groups it exports, as runs of consecutive numbers
        (first, last), for an int set such as ``[11, 40..45]``."""
        return number_runs(sorted(e.group.seq for e in self.entries))


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
    exports: tuple[BgpExportView, ...]

    @property
    def session(self) -> Session:
        return Session.IBGP if self.ibgp else Session.EBGP

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
        local_asn = spec.local_asn or ctx.agent.local_asn
        if _frr_refuses_local_as(spec, local_asn, ctx):
            ctx.problems.append(
                problem(
                    p.ref,
                    "spec.bgp.localASN",
                    f"{quote(local_asn)} is also the neighbor's asn: an iBGP session in "
                    f"another AS than the node's ({ctx.agent.local_asn}, the NodeAgent's "
                    "localASN), which FRR refuses (its local-as must differ from the "
                    "neighbor's AS); set localASN on the NodeAgent instead, or run BIRD "
                    "on this node",
                )
            )
            continue
        seen[key], ids[pid] = p.ref, p.ref
        accepted.append((p, spec, pid, local_asn))
    exports = _Exports(ctx)
    views = [
        _bgp_neighbor(p, spec, pid, local_asn, exports.of(p, spec, local_asn), ctx)
        for p, spec, pid, local_asn in accepted
    ]
    return tuple(sorted(views, key=_neighbor_order))


@dataclass(frozen=True, kw_only=True)
class BgpDispatch:
    """BIRD: the function that applies each group's actions towards the neighbors of one
    session kind, chosen by the group's number (``lbr_group``, set where the route
    enters from the kernel table): every export filter of that kind calls it, so a
    filter is one line whatever the number of groups it exports, and the configuration
    grows with groups plus peers (issue 20)."""

    session: Session
    name: str
    arms: tuple[BgpActions, ...]
    """The groups with actions, by number."""

    @property
    def takes_asn(self) -> bool:
        return any(a.takes_asn for a in self.arms)


def bgp_dispatch(bgp: tuple[BgpNeighborView, ...], names: Names) -> tuple[BgpDispatch, ...]:
    """BIRD: one :class:`BgpDispatch` per session kind some neighbor exports to."""
    found: dict[Session, dict[int, BgpActions]] = {}
    for n in bgp:
        for e in n.exports:
            arms = found.setdefault(e.session, {})
            for x in e.entries:
                if not x.actions.empty:
                    arms.setdefault(x.group.seq, x.actions)
    return tuple(
        BgpDispatch(
            session=session,
            name=names.join("bgp", "actions", session.value.lower()),
            arms=tuple(arms[seq] for seq in sorted(arms)),
        )
        for session, arms in sorted(found.items())
    )


def number_runs(numbers: list[int]) -> tuple[tuple[int, int], ...]:
    """((1, 1), (3, 5)) for [1, 3, 4, 5] (sorted, distinct)."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return tuple(runs)


def bgp_functions(bgp: tuple[BgpNeighborView, ...]) -> tuple[BgpActions, ...]:
    """BIRD: every group's actions that some neighbor's filter calls, once each, by
    group and function name."""
    found = {
        x.actions.function: x.actions
        for n in bgp
        for e in n.exports
        for x in e.entries
        if not x.actions.empty
    }
    return tuple(sorted(found.values(), key=lambda a: (a.group.ref, a.function)))


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


_Part = tuple[Family, tuple[GroupView, ...], tuple[BgpExportEntry, ...], str]
"""One family of a neighbor's exports: the groups, their entries, the name of the
filter or route-map it shares."""


class _Exports:
    """The exports of the node's neighbors. Peers with the same serviceGroupSelector
    carry the very same tuple of groups (``build_view`` matches once per selector), so
    what depends only on that tuple, the families, the session kind and the local ASN
    (the groups per family, their entries, the shared route-map name) is built once per
    combination, keyed by the tuple's identity: with 1,000 groups and 500 Peers, building
    and hashing the groups again for every neighbor cost more than the rest of the view.
    Each group's :class:`BgpActions` are built once per session kind, so every filter
    that carries the group calls the same BIRD function."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.actions: dict[tuple[str, Session], BgpActions] = {}
        self.parts: dict[tuple[int, tuple[Family, ...], Session, int], tuple[_Part, ...]] = {}

    def of(self, p: Peer, spec: BgpPeer, local_asn: int) -> tuple[BgpExportView, ...]:
        session = _session(spec, local_asn)
        carried = self.ctx.carried[p.ref]
        key = (id(carried), spec.families, session, local_asn)
        if key not in self.parts:
            self.parts[key] = tuple(
                (
                    f,
                    gs,
                    tuple(self._entry(g, session, local_asn) for g in gs),
                    self._shared_name(f, session, local_asn, gs),
                )
                for f, gs in family_groups(carried, spec.families)
            )
        return tuple(
            BgpExportView(
                family=f,
                name=shared,
                groups=gs,
                session=session,
                entries=() if self.ctx.withdrawn else entries,
                held=entries,
                withdrawn=self.ctx.withdrawn,
                local_asn=local_asn,
            )
            for f, gs, entries, shared in self.parts[key]
        )

    def _entry(self, group: GroupView, session: Session, local_asn: int) -> BgpExportEntry:
        key = (group.ident, session)
        if key not in self.actions:
            self.actions[key] = _actions(
                group, session, self.ctx.names, self.ctx.agent.drain, self.ctx.drain
            )
        found = self.actions[key]
        return BgpExportEntry(
            actions=found,
            as_path_prepend=(local_asn,) * found.prepend,
            class_map=self._class_map(found, local_asn),
        )

    def _class_map(self, actions: BgpActions, local_asn: int) -> ClassMapView | None:
        if not actions.classes or self.ctx.names.router is not Router.FRR:
            return None
        parts = ["sg", actions.group.ident, (actions.session or "bgp").lower(), "class"]
        if any(c.prepend for c in actions.classes):
            parts.append(str(local_asn))
        return ClassMapView(
            name=self.ctx.names.join(*parts), classes=actions.classes, local_asn=local_asn
        )

    def _shared_name(
        self, family: Family, session: Session, local_asn: int, groups: tuple[GroupView, ...]
    ) -> str:
        """Neighbors whose outbound filters (BIRD) or route-maps (FRR) would be
        identical (same family, same groups, same session kind, and for eBGP the same
        local ASN for the prepends) share one; otherwise every neighbor's would repeat
        one entry per group (1,000 groups and 500 peers: FRR 288,000 lines instead of
        47,000; BIRD 64,000 lines that its parser, quadratic in the number of blocks,
        took 9 s to read). A shared one is named after what it exports (a hash of the
        local ASN, or of "ibgp", and the groups), never after a neighbor, so neighbors
        that come or go never rename the one the others use; a neighbor whose groups
        change moves to another one (FRR: a re-point; BIRD: a new export filter on the
        channel, re-exported without a session reset)."""
        owner = local_asn if session is Session.EBGP else "ibgp"
        content = f"{owner}:{','.join(g.ident for g in groups)}"
        digest = hashlib.sha256(content.encode()).hexdigest()[:12]
        return self.ctx.names.join("bgp", "out", digest, family_suffix(family))


def _actions(
    group: GroupView, session: Session, names: Names, how: DrainPolicy, drain: Drain
) -> BgpActions:
    """``group``'s actions towards ``session`` neighbors, de-preferring while the node
    drains (see the module docstring)."""
    policy = group.bgp
    draining = drain is Drain.DEPREFER
    by_session = (
        bool(policy.prepend)
        or policy.local_pref is not None
        or draining
        or any(c.prepend or c.local_pref is not None for c in policy.classes)
    )
    ebgp = session is Session.EBGP
    communities = policy.communities
    local_pref = None if ebgp else policy.local_pref
    med = policy.med
    prepend = policy.prepend if ebgp else 0
    if draining:
        if GRACEFUL_SHUTDOWN not in communities:
            communities = (*communities, GRACEFUL_SHUTDOWN)
        if ebgp:
            prepend += how.prepend
            med = how.med if how.med is not None else med
        else:
            local_pref = 0
    return BgpActions(
        group=group,
        session=session if by_session else None,
        function=names.join("sg", group.ident, session.lower() if by_session else "bgp"),
        communities=communities,
        large_communities=policy.large_communities,
        local_pref=local_pref,
        med=med,
        prepend=prepend,
        weighted=policy.weight_by_endpoints,
        classes=tuple(
            a for a in (_class_actions(c, ebgp, draining) for c in policy.classes) if not a.empty
        ),
    )


def _class_actions(c: BgpClass, ebgp: bool, draining: bool) -> ClassActions:
    """One class's part towards eBGP or iBGP neighbors, as :func:`_actions` decides for
    the group's own; while draining, no local preference nor MED of its own."""
    return ClassActions(
        name=c.name,
        index=c.index,
        communities=c.communities,
        large_communities=c.large_communities,
        local_pref=None if ebgp or draining else c.local_pref,
        med=None if draining else c.med,
        prepend=c.prepend if ebgp else 0,
    )


def _session(spec: BgpPeer, local_asn: int) -> Session:
    """iBGP when the neighbor's ASN is the local one; an unnumbered neighbor without an
    ASN is FRR's ``remote-as external``."""
    return Session.IBGP if spec.asn == local_asn else Session.EBGP


def _frr_refuses_local_as(spec: BgpPeer, local_asn: int, ctx: Context) -> bool:
    """FRR's ``neighbor X local-as N`` must name another AS than the neighbor's, so it
    cannot turn a session into iBGP in an AS other than ``router bgp``'s."""
    return (
        ctx.names.router is Router.FRR
        and local_asn != ctx.agent.local_asn
        and spec.asn == local_asn
    )


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
    exports: tuple[BgpExportView, ...],
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
        ibgp=_session(spec, local_asn) is Session.IBGP,
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
