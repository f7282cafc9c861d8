"""The view of one node: everything a template prints, computed from the model.

:func:`build_view` selects what applies to one node (its NodeAgent, the Peers whose
nodeSelector matches, the ServiceGroups those Peers carry), runs the per-node checks
(conflicting settings of one protocol, IS-IS asked of BIRD, ...) and computes every
name and sequence number, so templates only format. It is pure and deterministic: the
same model gives the same view, whatever order the objects came in.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lbroute.model.api import (
    ROUTE_PROTO,
    ROUTE_TABLE_DEFAULT,
    Announce,
    Bfd,
    BgpPeer,
    BgpPolicy,
    ExportPrefix,
    Family,
    IsisInterface,
    IsisLevel,
    IsisPolicy,
    LabelSelector,
    Mode,
    Model,
    Node,
    NodeAgent,
    OspfInterface,
    OspfPolicy,
    Peer,
    Protocol,
    RipPolicy,
    RipTimers,
    Router,
    ServiceGroup,
)
from lbroute.model.errors import ObjectRef, Problem, RouterError, Severity
from lbroute.model.fields import IPAddress, IPNetwork


@dataclass(frozen=True, kw_only=True)
class FastConvergence:
    """Timers rendered when the NodeAgent asks for fast convergence (the default)."""

    bgp_connect_retry: int = 5
    bgp_advertisement_interval: int = 0
    ospf_spf_delay_ms: int = 0
    ospf_spf_hold_ms: int = 50
    ospf_spf_max_hold_ms: int = 1000
    ospf_lsa_min_interval_ms: int = 0
    isis_lsp_gen_interval: int = 1
    rip_timers: RipTimers = field(
        default_factory=lambda: RipTimers(update=5, timeout=30, garbage=20)
    )


FAST = FastConvergence()

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


# -- views ------------------------------------------------------------------------------


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

    bgp_function: str = ""
    """BIRD function holding this group's BGP actions (called from every peer's filter)."""

    def __hash__(self) -> int:
        return hash(self.ref)

    @property
    def has_bgp_actions(self) -> bool:
        b = self.bgp
        return bool(
            b.communities or b.large_communities or b.prepend
            or b.local_pref is not None or b.med is not None
        )  # fmt: skip

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

    @functools.cached_property
    def by_seq(self) -> tuple[GroupView, ...]:
        """The groups in FRR's route-map order (by sequence number)."""
        return tuple(sorted(self.groups, key=lambda g: g.seq))


@dataclass(frozen=True, kw_only=True)
class BfdView:
    name: str
    """FRR bfd profile name."""
    min_rx: int
    min_tx: int
    multiplier: int


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
    password: str | None
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
    auth_key: str | None


@dataclass(frozen=True, kw_only=True)
class OspfView:
    family: Family
    version: int
    protocol_name: str
    areas: tuple[tuple[ipaddress.IPv4Address, tuple[OspfInterfaceView, ...]], ...]
    export: ExportView
    peers: tuple[ObjectRef, ...]

    @property
    def interfaces(self) -> tuple[OspfInterfaceView, ...]:
        return tuple(i for _, ifaces in self.areas for i in ifaces)


@dataclass(frozen=True, kw_only=True)
class RipInterfaceView:
    name: str
    version: int
    auth_key: str | None


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

    @property
    def version(self) -> int:
        versions = {i.version for i in self.interfaces}
        return versions.pop() if len(versions) == 1 else 2


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
        out = []
        for export in self.exports:
            for level in self.levels:
                groups = tuple(
                    g for g in export.groups if g.isis.level in (None, level, IsisLevel.LEVEL_1_2)
                )
                if groups:
                    suffix = "l1" if level is IsisLevel.LEVEL_1 else "l2"
                    name = f"{export.name}-{suffix}"
                    out.append((ExportView(family=export.family, name=name, groups=groups), level))
        return tuple(out)


@dataclass(frozen=True, kw_only=True)
class InterfaceBlock:
    """Everything one IGP interface carries; FRR prints it as one interface block."""

    name: str
    ospf2: OspfInterfaceView | None = None
    ospf3: OspfInterfaceView | None = None
    rip: RipInterfaceView | None = None
    ripng: RipInterfaceView | None = None
    isis: IsisInterfaceView | None = None


@dataclass(frozen=True, kw_only=True)
class NodeView:
    router: Router
    mode: Mode
    node: str
    hostname: str
    router_id: ipaddress.IPv4Address
    local_asn: int
    interface: str
    """The dummy interface that carries Service addresses (kube-lb0)."""
    fast_convergence: bool
    fast: FastConvergence
    groups: tuple[GroupView, ...]
    bgp: tuple[BgpNeighborView, ...]
    bgp_redistribute: tuple[ExportView, ...]
    """Per family, every group some BGP neighbor exports (FRR's redistribute filter)."""
    ospf: tuple[OspfView, ...]
    rip: tuple[RipView, ...]
    isis: IsisView | None
    bfd_profiles: tuple[BfdView, ...]
    problems: tuple[Problem, ...] = ()
    kernel_table: int = ROUTE_TABLE_DEFAULT
    """Kernel table where the agent keeps one route per announced prefix (BIRD learns it)."""
    route_proto: int = ROUTE_PROTO
    """Routing protocol number of those routes."""

    @property
    def families(self) -> tuple[Family, ...]:
        return tuple(f for f in Family if any(g.has(f) for g in self.groups))

    @property
    def table_families(self) -> tuple[Family, ...]:
        """Families that need a table: every family a group or a protocol uses."""
        used = set(self.families)
        used |= {e.family for b in self.bgp for e in b.exports}
        used |= {o.family for o in self.ospf} | {r.family for r in self.rip}
        if self.isis is not None:
            used |= set(self.isis.families)
        return tuple(f for f in Family if f in used)

    @property
    def uses_bfd(self) -> bool:
        return bool(self.bfd_profiles)

    @property
    def bfd_interfaces(self) -> tuple[tuple[str, BfdView], ...]:
        """Interfaces whose IGP sessions use BFD, with their timers (first one wins)."""
        found: dict[str, BfdView] = {}
        for o in self.ospf:
            for i in o.interfaces:
                if i.bfd is not None:
                    found.setdefault(i.name, i.bfd)
        for ii in self.isis.interfaces if self.isis is not None else ():
            if ii.bfd is not None:
                found.setdefault(ii.name, ii.bfd)
        return tuple(sorted(found.items()))

    @property
    def interface_blocks(self) -> tuple[InterfaceBlock, ...]:
        blocks: dict[str, dict[str, object]] = {}
        for o in self.ospf:
            for oi in o.interfaces:
                blocks.setdefault(oi.name, {})[f"ospf{o.version}"] = oi
        for r in self.rip:
            for ri in r.interfaces:
                blocks.setdefault(ri.name, {})["rip" if r.family is Family.IPV4 else "ripng"] = ri
        for ii in self.isis.interfaces if self.isis is not None else ():
            blocks.setdefault(ii.name, {})["isis"] = ii
        return tuple(
            InterfaceBlock(name=name, **blocks[name])  # type: ignore[arg-type]
            for name in sorted(blocks)
        )

    @property
    def bgp_export_maps(self) -> tuple[tuple[BgpNeighborView, ExportView], ...]:
        """FRR: every distinct outbound route-map once (neighbors may share one), with
        a neighbor that uses it (for its local ASN), in neighbor order."""
        found: dict[str, tuple[BgpNeighborView, ExportView]] = {}
        for n in self.bgp:
            for e in n.exports:
                found.setdefault(e.name, (n, e))
        return tuple(found.values())

    @property
    def table(self) -> dict[Family, str]:
        """BIRD routing tables that hold lbroute's routes, apart from the host's."""
        return {Family.IPV4: "lbroute4", Family.IPV6: "lbroute6"}


# -- building --------------------------------------------------------------------------

BfdOf = Callable[[Bfd | None], BfdView | None]


class _Names:
    """Router-specific naming of filters, prefix sets and route-maps."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def join(self, *parts: str) -> str:
        if self.router is Router.BIRD:
            return "_".join(("lbr", *parts))
        return "-".join(("lbr", *(p.replace("_", "-") for p in parts)))

    def group_set(self, group: str, family: Family) -> str:
        return self.join("sg", group, _fam(family))

    def bgp_export(self, peer: str, family: Family) -> str:
        return self.join("bgp", peer, "out", _fam(family))

    def bgp_protocol(self, peer: str) -> str:
        return self.join("bgp", peer)

    def export(self, proto: str, family: Family) -> str:
        return self.join(proto, "export", _fam(family))


def _fam(family: Family) -> str:
    return "v4" if family is Family.IPV4 else "v6"


def _problem(ref: ObjectRef, path: str, message: str, *, warning: bool = False) -> Problem:
    severity = Severity.WARNING if warning else Severity.ERROR
    return Problem(severity=severity, ref=ref, path=path, message=message)


def system_id(router_id: ipaddress.IPv4Address) -> str:
    """IS-IS system id from an IPv4 router id: 10.0.0.1 -> 0100.0000.0001."""
    digits = "".join(f"{octet:03d}" for octet in router_id.packed)
    return ".".join(digits[i : i + 4] for i in range(0, 12, 4))


def select_agent(model: Model, node: Node) -> tuple[NodeAgent | None, list[Problem]]:
    """The NodeAgent for a node: the first (by namespace/name) whose selector matches."""
    labels = dict(node.labels)
    matching = [a for a in model.node_agents if a.node_selector.matches(labels)]
    problems = [
        _problem(
            a.ref,
            "spec.nodeSelector",
            f"also selects node {node.name}, already configured by {matching[0].ref}; "
            "make the NodeAgents' nodeSelectors disjoint (this one is ignored there)",
        )
        for a in matching[1:]
    ]
    return (matching[0] if matching else None), problems


def build_view(
    model: Model,
    router: Router | None,
    node_name: str,
    *,
    mode: Mode | None = None,
    router_id: ipaddress.IPv4Address | None = None,
    hostname: str | None = None,
) -> NodeView:
    """Everything to render for ``node_name``. ``router``, ``mode`` and ``router_id``
    override the NodeAgent's settings when given. ``hostname`` is the host's name as
    the router daemon sees it (FRR prints it in its running config); default: the node
    name.

    Raises RouterError when the node cannot have a configuration at all (no router id).
    Problems with single objects are in ``NodeView.problems``; those objects are left out.
    """
    problems: list[Problem] = []
    node = model.node(node_name)
    if node is None:
        node = Node(name=node_name)
        problems.append(
            _problem(
                ObjectRef(kind="Node", namespace="", name=node_name),
                "",
                "not found among the inputs; node selectors see a node without labels",
                warning=True,
            )
        )
    agent, agent_problems = select_agent(model, node)
    problems += agent_problems
    agent = agent or NodeAgent(ref=ObjectRef(kind="NodeAgent", namespace="", name="defaults"))
    router = router or agent.router
    mode = mode or agent.mode
    if router is Router.FRR and mode is Mode.INCLUDE:
        raise RouterError(
            "include mode is for an existing BIRD 2; FRR has no include directive, so run it "
            "in managed mode (frr-reload.py then applies only what changed)"
        )
    rid = router_id or agent.router_id or node.ipv4
    if rid is None:
        raise RouterError(
            f"no router id for node {node_name}: set spec.routerID on its NodeAgent, give the "
            "Node an IPv4 InternalIP address, or pass --router-id"
        )
    names = _Names(router)
    labels = dict(node.labels)

    # ServiceGroups announced by routing on this node.
    groups = [
        g
        for g in model.service_groups
        if g.announce is Announce.ROUTED and g.node_selector.matches(labels)
    ]
    group_views = _group_views(groups, names)
    by_ref = {v.ref: v for v in group_views}

    peers = [p for p in model.peers if p.node_selector.matches(labels)]
    peers = _drop_unsupported(peers, router, problems)
    _check_groups(groups, peers, router, node_name, problems)
    # Peers with the same selector and protocol carry the same groups: match once each.
    carried_by: dict[tuple[LabelSelector, Protocol], tuple[GroupView, ...]] = {}
    carried: dict[ObjectRef, tuple[GroupView, ...]] = {}
    for p in peers:
        key = (p.service_group_selector, p.protocol)
        if key not in carried_by:
            carried_by[key] = tuple(
                by_ref[g.ref] for g in groups if g.ref in by_ref and p.carries(g)
            )
        carried[p.ref] = carried_by[key]

    bfd_views: dict[Bfd, BfdView] = {}

    def bfd_view(bfd: Bfd | None) -> BfdView | None:
        if bfd is None:
            return None
        if bfd not in bfd_views:
            name = f"lbr-{bfd.min_rx}-{bfd.min_tx}-{bfd.multiplier}"
            bfd_views[bfd] = BfdView(
                name=name, min_rx=bfd.min_rx, min_tx=bfd.min_tx, multiplier=bfd.multiplier
            )
        return bfd_views[bfd]

    fast = agent.fast_convergence
    bgp = _bgp_views(
        [p for p in peers if p.bgp is not None], carried, agent, names, fast, bfd_view, problems
    )
    ospf = _ospf_views([p for p in peers if p.ospf is not None], carried, names, bfd_view, problems)
    rip = _rip_views([p for p in peers if p.rip is not None], carried, names, fast, problems)
    isis = _isis_view(
        [p for p in peers if p.isis is not None], carried, names, rid, bfd_view, problems
    )

    used = {g for b in bgp for e in b.exports for g in e.groups}
    used |= {g for o in ospf for g in o.export.groups} | {g for r in rip for g in r.export.groups}
    if isis is not None:
        used |= {g for e in isis.exports for g in e.groups}
    return NodeView(
        router=router,
        mode=mode,
        node=node_name,
        hostname=hostname or node_name,
        router_id=rid,
        local_asn=agent.local_asn,
        interface=agent.interface,
        fast_convergence=fast,
        fast=FAST,
        groups=tuple(g for g in group_views if g in used),
        bgp=bgp,
        bgp_redistribute=tuple(
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
        ),
        ospf=ospf,
        rip=rip,
        isis=isis,
        bfd_profiles=tuple(sorted(bfd_views.values(), key=lambda b: b.name)),
        problems=tuple(problems),
    )


def _group_views(groups: list[ServiceGroup], names: _Names) -> list[GroupView]:
    used_seqs: set[int] = set()
    views = []
    seen: dict[str, ObjectRef] = {}
    for g in sorted(groups, key=lambda g: g.ref):
        gid = ident(g.name)
        if gid in seen:
            continue  # same name in another namespace: reported by _check_groups
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
                bgp_function=names.join("sg", gid, "bgp"),
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


def _drop_unsupported(peers: list[Peer], router: Router, problems: list[Problem]) -> list[Peer]:
    kept = []
    for p in peers:
        if router is Router.BIRD and p.isis is not None:
            problems.append(
                _problem(
                    p.ref,
                    "spec.isis",
                    "IS-IS is available with FRR only; set router: frr on the "
                    "NodeAgent of this node, or use bgp, ospf or rip",
                )
            )
            continue
        if router is Router.BIRD and p.bgp is not None and p.bgp.interface is not None:
            problems.append(
                _problem(
                    p.ref,
                    "spec.bgp.interface",
                    "unnumbered BGP (interface) is available with FRR only; set "
                    "bgp.address for BIRD",
                )
            )
            continue
        kept.append(p)
    return kept


def _check_groups(
    groups: list[ServiceGroup],
    peers: list[Peer],
    router: Router,
    node: str,
    problems: list[Problem],
) -> None:
    seen: dict[str, ObjectRef] = {}
    speaking = {p.protocol for p in peers}
    for g in sorted(groups, key=lambda g: g.ref):
        gid = ident(g.name)
        if gid in seen:
            problems.append(
                _problem(
                    g.ref,
                    "metadata.name",
                    f"has the same router name as {seen[gid]}; ServiceGroups "
                    "announced on one node need distinct names",
                )
            )
            continue
        seen[gid] = g.ref
        wanted = g.protocols if g.protocols is not None else frozenset()
        if router is Router.BIRD and Protocol.ISIS in wanted:
            problems.append(
                _problem(
                    g.ref,
                    "spec.protocols",
                    f"IS-IS is available with FRR only; node {node} runs BIRD, "
                    "so this group is not announced by IS-IS there",
                )
            )
        for proto in sorted(
            wanted - speaking - ({Protocol.ISIS} if router is Router.BIRD else set())
        ):
            problems.append(
                _problem(
                    g.ref,
                    "spec.protocols",
                    f"asks for {proto}, but no {proto} Peer applies to node {node}",
                    warning=True,
                )
            )


def _family_groups(
    groups: tuple[GroupView, ...], families: Iterable[Family]
) -> list[tuple[Family, tuple[GroupView, ...]]]:
    return [(f, tuple(g for g in groups if g.has(f))) for f in families]


def _bgp_views(
    peers: list[Peer],
    carried: dict[ObjectRef, tuple[GroupView, ...]],
    agent: NodeAgent,
    names: _Names,
    fast: bool,
    bfd_view: BfdOf,
    problems: list[Problem],
) -> tuple[BgpNeighborView, ...]:
    accepted: list[tuple[Peer, BgpPeer, str, int]] = []
    seen: dict[str, ObjectRef] = {}
    ids: dict[str, ObjectRef] = {}
    for p in peers:
        spec = p.bgp
        assert spec is not None
        key = str(spec.address) if spec.address is not None else f"interface {spec.interface}"
        if key in seen:
            problems.append(
                _problem(
                    p.ref,
                    "spec.bgp",
                    f"{key} is already a neighbor through {seen[key]} on this "
                    "node; one Peer per neighbor",
                )
            )
            continue
        pid = ident(p.name)
        if pid in ids:
            problems.append(
                _problem(p.ref, "metadata.name", f"has the same router name as {ids[pid]}")
            )
            continue
        seen[key], ids[pid] = p.ref, p.ref
        accepted.append((p, spec, pid, spec.local_asn or agent.local_asn))
    shared = _shared_exports(accepted, carried, names)
    views: list[BgpNeighborView] = []
    for p, spec, pid, local_asn in accepted:
        exports = tuple(
            ExportView(
                family=f,
                name=shared.get((f, local_asn, gs)) or names.bgp_export(pid, f),
                groups=gs,
            )
            for f, gs in _family_groups(carried[p.ref], spec.families)
        )
        views.append(_bgp_neighbor(p, spec, pid, local_asn, agent, names, fast, exports, bfd_view))
    return tuple(sorted(views, key=_neighbor_order))


def _shared_exports(
    accepted: list[tuple[Peer, BgpPeer, str, int]],
    carried: dict[ObjectRef, tuple[GroupView, ...]],
    names: _Names,
) -> dict[tuple[Family, int, tuple[GroupView, ...]], str]:
    """FRR: neighbors whose outbound route-maps would be identical (same family, same
    groups, same local ASN for ``set as-path prepend``) share one; otherwise every
    neighbor's route-map would repeat one entry per group (1,000 groups and 500 peers:
    288,000 lines instead of 47,000). A shared route-map is named after what it exports
    (a hash of the local ASN and the groups), never after a neighbor, so neighbors that
    come or go never rename the one the others use; a neighbor whose groups change
    moves to another one, which the FRR driver sends as a re-point. BIRD keeps one
    filter per protocol (empty result)."""
    if names.router is not Router.FRR:
        return {}
    found: dict[tuple[Family, int, tuple[GroupView, ...]], str] = {}
    for p, spec, _, local_asn in accepted:
        for f, gs in _family_groups(carried[p.ref], spec.families):
            content = f"{local_asn}:{','.join(g.ident for g in gs)}"
            digest = hashlib.sha256(content.encode()).hexdigest()[:12]
            found.setdefault((f, local_asn, gs), names.join("bgp", "out", digest, _fam(f)))
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
    agent: NodeAgent,
    names: _Names,
    fast: bool,
    exports: tuple[ExportView, ...],
    bfd_view: BfdOf,
) -> BgpNeighborView:
    connect = spec.connect_time
    if connect is None and fast:
        connect = FAST.bgp_connect_retry
    return BgpNeighborView(
        ref=p.ref,
        ident=pid,
        protocol_name=names.bgp_protocol(pid),
        address=spec.address,
        interface=spec.interface,
        remote_asn=spec.asn,
        local_asn=local_asn,
        local_asn_override=local_asn != agent.local_asn,
        ibgp=spec.asn == local_asn,
        port=spec.port,
        hold_time=spec.hold_time,
        keepalive_time=spec.keepalive_time,
        connect_retry=connect,
        advertisement_interval=FAST.bgp_advertisement_interval if fast else None,
        ebgp_multihop=spec.ebgp_multihop,
        source_address=spec.source_address,
        password=spec.password,
        bfd=bfd_view(spec.bfd),
        graceful_restart=spec.graceful_restart,
        exports=exports,
    )


def _union_groups(
    peers: list[Peer], carried: dict[ObjectRef, tuple[GroupView, ...]]
) -> tuple[GroupView, ...]:
    found = {g for p in peers for g in carried[p.ref]}
    return tuple(sorted(found, key=lambda g: g.ref))


def _ospf_views(
    peers: list[Peer],
    carried: dict[ObjectRef, tuple[GroupView, ...]],
    names: _Names,
    bfd_view: BfdOf,
    problems: list[Problem],
) -> tuple[OspfView, ...]:
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
                problems.append(
                    _problem(
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
                        i, spec.area, bfd_view(spec.bfd), spec.auth_key if version == 2 else None
                    )
                )
        areas: dict[ipaddress.IPv4Address, list[OspfInterfaceView]] = {}
        for iv in ifaces:
            areas.setdefault(iv.area, []).append(iv)
        groups = tuple(g for g in _union_groups(kept, carried) if g.has(family))
        views.append(
            OspfView(
                family=family,
                version=version,
                protocol_name=f"lbr_ospf_v{version}",
                areas=tuple(
                    (a, tuple(sorted(areas[a], key=lambda i: i.name))) for a in sorted(areas)
                ),
                export=ExportView(family=family, name=names.export("ospf", family), groups=groups),
                peers=tuple(p.ref for p in kept),
            )
        )
    return tuple(views)


def _ospf_iface(
    i: OspfInterface,
    area: ipaddress.IPv4Address,
    bfd: BfdView | None,
    auth_key: str | None,
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
        auth_key=auth_key,
    )


def _rip_views(
    peers: list[Peer],
    carried: dict[ObjectRef, tuple[GroupView, ...]],
    names: _Names,
    fast: bool,
    problems: list[Problem],
) -> tuple[RipView, ...]:
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
                problems.append(
                    _problem(
                        p.ref,
                        "spec.rip.interfaces",
                        f"interface {clash[0]} is already in RIP through "
                        f"{owner[clash[0]]}; one Peer per interface",
                    )
                )
                continue
            if spec.timers is not None and timers is not None and spec.timers != timers:
                problems.append(
                    _problem(
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
                        auth_key=spec.auth_key if family is Family.IPV4 else None,
                    )
                )
        if timers is None and fast:
            timers = FAST.rip_timers
        groups = tuple(g for g in _union_groups(kept, carried) if g.has(family))
        used: set[int] = set()
        out_entries = tuple(
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
        if family is Family.IPV6 and names.router is Router.FRR:
            for g in groups:
                if g.rip.metric is not None:
                    problems.append(
                        _problem(
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
                    name=names.export("rip" if family is Family.IPV4 else "ripng", family),
                    groups=groups,
                ),
                peers=tuple(p.ref for p in kept),
                out_filter=names.join("ripng", "out", _fam(family)),
                out_entries=out_entries,
            )
        )
    return tuple(views)


def _isis_view(
    peers: list[Peer],
    carried: dict[ObjectRef, tuple[GroupView, ...]],
    names: _Names,
    router_id: ipaddress.IPv4Address,
    bfd_view: BfdOf,
    problems: list[Problem],
) -> IsisView | None:
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
            problems.append(
                _problem(
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
            problems.append(
                _problem(
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
            ifaces.append(_isis_iface(i, spec.metric, bfd_view(spec.bfd)))
    groups = _union_groups(kept, carried)
    exports = tuple(
        ExportView(family=f, name=names.export("isis", f), groups=gs)
        for f, gs in _family_groups(groups, [f for f in Family if f in families])
    )
    return IsisView(
        tag="lbroute",
        net=f"{first.area}.{system_id(router_id)}.00",
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
