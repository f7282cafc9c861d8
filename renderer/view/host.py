"""Host sessions (issue 22): lbroute's prefixes announced through BGP sessions the
host's BIRD owns (a CNI's, such as Calico's), in include mode.

lbroute never configures those sessions. Its fragment (``templates/bird/host.j2``)
pipes the carried groups' routes from its own table into the table the host's
sessions export from (``master4``/``master6`` unless the NodeAgent says otherwise) and
defines ``lbroute_export()``, which the host's export filter calls once::

    if lbroute_export() then accept;

It is true only for lbroute's own routes (learned by its kernel protocols on this node,
never a CNI route nor one learned from another node), and sets the group's BGP
attributes on them, towards the NodeAgent's ``hostSessions.session`` kind (like a
Peer's, :mod:`renderer.view.bgp`). While the node is drained, or when nothing is
carried, it is false for every route: the function always exists, so the host's
configuration always parses. ``lbroute_route()`` is the same test without attributes,
for the host's other filters (to keep lbroute's routes out of its kernel table).
"""

from __future__ import annotations

from dataclasses import dataclass

from lbroute.model.agentconfig import HostSessions
from lbroute.model.api import Family, Protocol, ServiceGroup
from lbroute.model.errors import ObjectRef
from renderer.view.bgp import BgpActions, Session, _actions
from renderer.view.context import Context
from renderer.view.names import GroupView

CONTRACT = 1
"""Version of what the host's configuration relies on: ``lbroute_export()`` and
``lbroute_route()``, no arguments, true or false. Bumped only if that ever changes."""


@dataclass(frozen=True, kw_only=True)
class HostPipeView:
    """One family: the pipe from lbroute's table to the host's, and what it passes."""

    family: Family
    name: str
    """Pipe protocol: ``lbr_host4`` / ``lbr_host6``."""
    filter: str
    table: str
    """The host's table."""
    groups: tuple[GroupView, ...]


@dataclass(frozen=True, kw_only=True)
class HostSessionsView:
    protocols: tuple[str, ...]
    """The host's protocol names or patterns (status reads their state)."""
    session: Session
    local_asn: int
    """The ASN a prepending group prepends (the NodeAgent's localASN)."""
    groups: tuple[GroupView, ...]
    actions: tuple[BgpActions, ...]
    """Each carried group's actions, in ``groups`` order."""
    pipes: tuple[HostPipeView, ...]
    withdrawn: bool
    kernel_protocols: tuple[str, ...]
    """lbroute's kernel protocols: the routes ``lbroute_export()`` accepts come from them."""
    contract: int = CONTRACT


def host_sessions_view(
    spec: HostSessions, groups: list[ServiceGroup], views: dict[ObjectRef, GroupView], ctx: Context
) -> HostSessionsView:
    """What the host's sessions carry: the node's routed groups that the selector takes
    and that announce by BGP."""
    carried = tuple(
        views[g.ref]
        for g in groups
        if g.ref in views
        and spec.service_group_selector.matches(g.label_map)
        and (g.protocols is None or Protocol.BGP in g.protocols)
    )
    session = Session.IBGP if spec.ibgp else Session.EBGP
    actions = tuple(_actions(g, session, ctx.names, ctx.agent.drain, ctx.drain) for g in carried)
    tables = {Family.IPV4: spec.ipv4_table, Family.IPV6: spec.ipv6_table}
    pipes = tuple(
        HostPipeView(
            family=f,
            name=ctx.names.join("host", "4" if f is Family.IPV4 else "6"),
            filter=ctx.names.join("host", "pipe", "4" if f is Family.IPV4 else "6"),
            table=tables[f],
            groups=tuple(g for g in carried if g.has(f)),
        )
        for f in Family
        if any(g.has(f) for g in carried)
    )
    return HostSessionsView(
        protocols=spec.protocols,
        session=session,
        local_asn=ctx.agent.local_asn,
        groups=carried,
        actions=() if ctx.withdrawn else actions,
        pipes=pipes,
        withdrawn=ctx.withdrawn,
        kernel_protocols=tuple(
            ctx.names.join("kernel" + ("4" if f is Family.IPV4 else "6")) for f in Family
        ),
    )
