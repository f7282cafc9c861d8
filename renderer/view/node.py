"""The view of one node, :class:`NodeView`, and :func:`build_view`, which assembles it.

:func:`build_view` selects what applies to one node (its NodeAgent, the Peers whose
nodeSelector matches, the ServiceGroups those Peers carry), runs the checks that span
protocols (IS-IS or unnumbered BGP asked of BIRD, a group asking for a protocol no Peer
speaks, two groups with one router name), then hands each protocol module its Peers.
The result, :class:`NodeView`, is what every template receives as ``view``.
:func:`select_agent` picks a node's NodeAgent (the agent and the CLI ask it directly).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from lbroute.model.api import (
    Announce,
    Family,
    LabelSelector,
    Mode,
    Model,
    Node,
    NodeAgent,
    Peer,
    Protocol,
    Router,
    ServiceGroup,
)
from lbroute.model.errors import ObjectRef, Problem, RouterError
from lbroute.model.vocabulary import ROUTE_PROTO, ROUTE_TABLE_DEFAULT
from renderer.view.bfd import BfdProfiles, BfdView
from renderer.view.bgp import (
    BgpActions,
    BgpDispatch,
    BgpExportView,
    BgpNeighborView,
    ClassMarkView,
    WeightView,
    bgp_dispatch,
    bgp_functions,
    bgp_redistribute,
    bgp_views,
    class_mark_view,
    weight_view,
)
from renderer.view.bgp_frr import FrrBgpPolicy, frr_bgp_policy
from renderer.view.context import FAST, Context, FastConvergence, problem
from renderer.view.host import HostSessionsView, host_sessions_view
from renderer.view.isis import IsisInterfaceView, IsisView, isis_view
from renderer.view.names import (
    Drain,
    ExportView,
    GroupView,
    Names,
    family_suffix,
    group_views,
    ident,
)
from renderer.view.ospf import OspfInterfaceView, OspfView, ospf_views
from renderer.view.rip import RipInterfaceView, RipView, rip_views


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
    drain: Drain = Drain.NONE
    """Where the node is in a drain (the protocols' exports say what it changes)."""
    kernel_table: int = ROUTE_TABLE_DEFAULT
    """Kernel table where the agent keeps one route per announced prefix (BIRD learns it)."""
    route_proto: int = ROUTE_PROTO
    """Routing protocol number of those routes."""
    host: HostSessionsView | None = None
    """Include mode: the host's own BGP sessions that carry lbroute's prefixes."""

    @functools.cached_property
    def families(self) -> tuple[Family, ...]:
        return tuple(f for f in Family if any(g.has(f) for g in self.groups))

    @functools.cached_property
    def table_families(self) -> tuple[Family, ...]:
        """Families that need a table: every family a group or a protocol uses."""
        used = set(self.families)
        used |= {e.family for b in self.bgp for e in b.exports}
        used |= {o.family for o in self.ospf} | {r.family for r in self.rip}
        used |= {p.family for p in self.host.pipes} if self.host is not None else set()
        if self.isis is not None:
            used |= set(self.isis.families)
        return tuple(f for f in Family if f in used)

    @functools.cached_property
    def uses_bfd(self) -> bool:
        return bool(self.bfd_profiles)

    @functools.cached_property
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

    @functools.cached_property
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

    @functools.cached_property
    def bgp_export_maps(self) -> tuple[BgpExportView, ...]:
        """FRR: every distinct outbound route-map once (neighbors may share one), in
        neighbor order."""
        found: dict[str, BgpExportView] = {}
        for n in self.bgp:
            for e in n.exports:
                found.setdefault(e.name, e)
        return tuple(found.values())

    @functools.cached_property
    def bgp_functions(self) -> tuple[BgpActions, ...]:
        """BIRD: each group's BGP actions per session kind that some filter calls."""
        found = bgp_functions(self.bgp)
        if self.host is None:
            return found
        # The host's sessions call the same function as a Peer of the same kind.
        merged = {a.function: a for a in (*found, *self.host.actions) if not a.empty}
        return tuple(sorted(merged.values(), key=lambda a: (a.group.ref, a.function)))

    @functools.cached_property
    def bgp_dispatch(self) -> dict[str, BgpDispatch]:
        """BIRD: per session kind ("eBGP", "iBGP"), the function that applies each
        group's actions by the group's number."""
        return {d.session.value: d for d in bgp_dispatch(self.bgp, Names(self.router))}

    @functools.cached_property
    def group_tags(self) -> dict[Family, str]:
        """BIRD: per family, the filter that gives each route from the kernel table its
        group's number (when some BGP neighbor exports that family)."""
        families = {e.family for b in self.bgp for e in b.exports}
        return {
            f: Names(self.router).join("tag", family_suffix(f)) for f in Family if f in families
        }

    @functools.cached_property
    def bgp_weights(self) -> WeightView | None:
        """The weight table (weighted ECMP), when a weighted group goes out over BGP."""
        groups = {g for b in self.bgp for e in b.exports for g in e.groups}
        groups |= set(self.host.groups) if self.host is not None else set()
        return weight_view(groups, Names(self.router), self.local_asn)

    @functools.cached_property
    def bgp_class_marks(self) -> ClassMarkView | None:
        """FRR: the route-map that reads a route's class (and weight) from its metric,
        when a group with classes goes out over BGP."""
        groups = {g for b in self.bgp for e in b.exports for g in e.groups}
        return class_mark_view(groups, Names(self.router), self.bgp_weights)

    @functools.cached_property
    def frr_bgp(self) -> FrrBgpPolicy:
        """FRR: the outbound policy (attributes at redistribution, a marker per group, an
        entry per selection, action maps per session kind)."""
        return frr_bgp_policy(self.bgp_export_maps, Names(self.router))

    @functools.cached_property
    def table(self) -> dict[Family, str]:
        """BIRD routing tables that hold lbroute's routes, apart from the host's."""
        return {Family.IPV4: "lbroute4", Family.IPV6: "lbroute6"}


def select_agent(model: Model, node: Node) -> tuple[NodeAgent | None, list[Problem]]:
    """The NodeAgent for a node: the first (by namespace/name) whose selector matches."""
    labels = dict(node.labels)
    matching = [a for a in model.node_agents if a.node_selector.matches(labels)]
    problems = [
        problem(
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
    drain: Drain = Drain.NONE,
) -> NodeView:
    """Everything to render for ``node_name``. ``router``, ``mode`` and ``router_id``
    override the NodeAgent's settings when given. ``hostname`` is the host's name as
    the router daemon sees it (FRR prints it in its running config); default: the node
    name. ``drain``: where the node is in a drain (nodeagent.drain decides).

    Raises RouterError when the node cannot have a configuration at all (no router id).
    Problems with single objects are in ``NodeView.problems``; those objects are left out.
    """
    problems: list[Problem] = []
    node = model.node(node_name)
    if node is None:
        node = Node(name=node_name)
        problems.append(
            problem(
                ObjectRef(kind="Node", namespace="", name=node_name),
                "",
                "not found among the inputs"
                + (f" (known: {_names(model.nodes)})" if model.nodes else "")
                + "; node selectors see a node without labels",
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
    names = Names(router)
    labels = dict(node.labels)

    # ServiceGroups announced by routing on this node.
    groups = [
        g
        for g in model.service_groups
        if g.announce is Announce.ROUTED and g.node_selector.matches(labels)
    ]
    views = group_views(groups, names)
    by_ref = {v.ref: v for v in views}

    peers = [p for p in model.peers if p.node_selector.matches(labels)]
    peers = _drop_unsupported(peers, router, problems)
    host_bgp = agent.host_sessions is not None and mode is Mode.INCLUDE
    if agent.host_sessions is not None and not host_bgp:
        problems.append(
            problem(
                agent.ref,
                "spec.hostSessions",
                "is ignored: it is for mode include, where the host's BIRD owns the "
                "sessions (in managed mode lbroute owns the router; its sessions are Peers)",
                warning=True,
            )
        )
    _check_groups(groups, peers, router, node_name, problems, host_bgp=host_bgp)
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

    ctx = Context(
        agent=agent,
        router_id=rid,
        names=names,
        carried=carried,
        fast_convergence=agent.fast_convergence,
        bfd=BfdProfiles(),
        problems=problems,
        drain=drain,
    )
    bgp = bgp_views([p for p in peers if p.bgp is not None], ctx)
    ospf = ospf_views([p for p in peers if p.ospf is not None], ctx)
    rip = rip_views([p for p in peers if p.rip is not None], ctx)
    isis = isis_view([p for p in peers if p.isis is not None], ctx)

    used = {g for b in bgp for e in b.exports for g in e.groups}
    used |= {g for o in ospf for g in o.export.groups} | {g for r in rip for g in r.export.groups}
    if isis is not None:
        used |= {g for e in isis.exports for g in e.groups}
    host = None
    if agent.host_sessions is not None and mode is Mode.INCLUDE:
        host = host_sessions_view(agent.host_sessions, groups, by_ref, ctx)
        used |= set(host.groups)
    return NodeView(
        router=router,
        mode=mode,
        node=node_name,
        hostname=hostname or node_name,
        router_id=rid,
        local_asn=agent.local_asn,
        interface=agent.interface,
        fast_convergence=agent.fast_convergence,
        fast=FAST,
        groups=tuple(g for g in views if g in used),
        bgp=bgp,
        bgp_redistribute=bgp_redistribute(bgp, names),
        ospf=ospf,
        rip=rip,
        isis=isis,
        bfd_profiles=ctx.bfd.profiles(),
        problems=tuple(problems),
        drain=drain,
        host=host,
    )


def _drop_unsupported(peers: list[Peer], router: Router, problems: list[Problem]) -> list[Peer]:
    """``peers`` without those asking for what ``router`` lacks (reported)."""
    kept = []
    for p in peers:
        if router is Router.BIRD and p.isis is not None:
            problems.append(
                problem(
                    p.ref,
                    "spec.isis",
                    "IS-IS is available with FRR only; set router: frr on the "
                    "NodeAgent of this node, or use bgp, ospf or rip",
                )
            )
            continue
        if router is Router.BIRD and p.bgp is not None and p.bgp.interface is not None:
            problems.append(
                problem(
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
    *,
    host_bgp: bool = False,
) -> None:
    """Reports groups that share a router name, IS-IS asked of BIRD, and protocols a
    group asks for that no Peer on the node speaks."""
    seen: dict[str, ObjectRef] = {}
    speaking = {p.protocol for p in peers}
    if host_bgp:
        speaking.add(Protocol.BGP)
    for g in sorted(groups, key=lambda g: g.ref):
        gid = ident(g.name)
        if gid in seen:
            problems.append(
                problem(
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
                problem(
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
                problem(
                    g.ref,
                    "spec.protocols",
                    f"asks for {proto}, but no {proto} Peer applies to node {node}",
                    warning=True,
                )
            )


def _names(nodes: Sequence[Node]) -> str:
    """The first ten Node names, for a message."""
    more = f" and {len(nodes) - 10} more" if len(nodes) > 10 else ""
    return ", ".join(n.name for n in nodes[:10]) + more
