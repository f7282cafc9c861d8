"""Local addresses (``announce: local``) seen from the manifests: which pools a node can serve.

A local address goes on one elected node's NIC, on the interface whose subnet holds it,
and the kernel answers ARP/NDP for it there (nodeagent.local); no router announces it,
so it is in no view of :mod:`renderer.view.node`. What the manifests tell about it is
little: a Node's InternalIP addresses carry no prefix length, so a node is known to be
on a pool's subnet only when the pool names its ``subnet`` and an InternalIP lies in
it; otherwise only the agent, which sees the node's interfaces, can tell. This module
says so per node (``lbroute render`` and ``validate``) and reports the local groups that
cannot work whatever the NICs: those whose nodeSelector selects none of the Nodes given,
and pools whose subnet holds no InternalIP of a selected node. A ``localInterface`` that
names no interface is only known on the node; the agent reports it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from lbroute.model.api import Announce, Model, Node, Pool, ServiceGroup
from lbroute.model.errors import ObjectRef, Problem, escape
from lbroute.model.fields import IPAddress
from renderer.view.context import problem
from renderer.view.node import select_agent


class Servable(enum.Enum):
    YES = "can serve"
    NO = "cannot serve"
    UNKNOWN = "needs the node's NIC to tell"


@dataclass(frozen=True, kw_only=True)
class LocalPool:
    """One pool of a local ServiceGroup that selects the node, and what is known of it."""

    group: ObjectRef
    pool: Pool
    servable: Servable
    addresses: tuple[IPAddress, ...] = ()
    """The node's InternalIPs in the pool's subnet (when it has one)."""

    def describe(self, node: str) -> str:
        subnet = self.pool.subnet
        if self.servable is Servable.YES:
            found = ", ".join(str(a) for a in self.addresses)
            why = f"InternalIP {found} is in subnet {subnet}"
        elif self.servable is Servable.NO:
            why = (
                f"no InternalIP of {escape(node)} is in subnet {subnet}: only if one of its "
                "NICs has an address there"
            )
        elif subnet is None:
            why = "the pool sets no subnet; the agent checks the node's interfaces"
        else:
            why = (
                f"the inputs give no InternalIP of {escape(node)}; the agent checks its interfaces"
            )
        return f"{self.group} pool {self.pool}: {self.servable.value} ({why})"


@dataclass(frozen=True, kw_only=True)
class LocalView:
    """What one node can do for the local ServiceGroups."""

    node: str
    interfaces: tuple[str, ...]
    """The NodeAgent's localInterface: the NICs tried, in order."""
    pools: tuple[LocalPool, ...]
    """Pools of the local groups whose nodeSelector takes the node."""
    other_groups: tuple[ObjectRef, ...]
    """Local groups whose nodeSelector leaves the node out."""

    def lines(self) -> list[str]:
        """The per-node listing ``render`` and ``validate`` print ([] without local groups)."""
        if not self.pools and not self.other_groups:
            return []
        node = escape(self.node)
        out = [
            f"local addresses (announce local) on node {node}: one elected node holds each "
            f"address on its NIC (localInterface: {', '.join(self.interfaces)}) and answers "
            "ARP/NDP for it; no router announces it"
        ]
        out += [f"  {p.describe(self.node)}" for p in self.pools]
        if not self.pools:
            out.append(f"  no local ServiceGroup selects node {node}")
        out += [f"  {g}: its nodeSelector leaves node {node} out" for g in self.other_groups]
        if self.pools:
            out.append(
                f"  which interface localInterface names on node {node}, and who wins each "
                "address, only the agent there knows: see lbroute status or its NodeState"
            )
        return out


def _local_groups(model: Model) -> list[ServiceGroup]:
    return [g for g in model.service_groups if g.announce is Announce.LOCAL]


def _in_subnet(pool: Pool, nodes: Sequence[Node]) -> tuple[IPAddress, ...]:
    subnet = pool.subnet
    if subnet is None:
        return ()
    return tuple(
        a for n in nodes for a in n.addresses if a.version == subnet.version and a in subnet
    )


def local_view(model: Model, node_name: str) -> LocalView:
    node = model.node(node_name) or Node(name=node_name)
    labels = dict(node.labels)
    agent, _ = select_agent(model, node)
    interfaces = agent.local_interface if agent is not None else ("default",)
    pools: list[LocalPool] = []
    others: list[ObjectRef] = []
    for g in _local_groups(model):
        if not g.node_selector.matches(labels):
            others.append(g.ref)
            continue
        for pool in g.pools:
            found = _in_subnet(pool, [node])
            if pool.subnet is None or not node.addresses:
                servable = Servable.UNKNOWN
            else:
                servable = Servable.YES if found else Servable.NO
            pools.append(LocalPool(group=g.ref, pool=pool, servable=servable, addresses=found))
    return LocalView(
        node=node_name, interfaces=interfaces, pools=tuple(pools), other_groups=tuple(others)
    )


def local_problems(model: Model) -> tuple[Problem, ...]:
    """Local groups that no node given can serve: a nodeSelector that selects none of the
    Nodes, a pool subnet that holds no InternalIP of a selected Node. Warnings, since the
    input may not hold every Node, nor every NIC's address; nothing without Nodes."""
    if not model.nodes:
        return ()
    problems: list[Problem] = []
    for g in _local_groups(model):
        selected = [n for n in model.nodes if g.node_selector.matches(dict(n.labels))]
        if not selected:
            names = ", ".join(n.name for n in model.nodes[:5])
            more = f" and {len(model.nodes) - 5} more" if len(model.nodes) > 5 else ""
            problems.append(
                problem(
                    g.ref,
                    "spec.nodeSelector",
                    f"selects none of the Nodes given ({names}{more}): no node can hold its "
                    "local addresses, so they are unreachable; fix the nodeSelector or the "
                    "Nodes' labels",
                    warning=True,
                )
            )
            continue
        for i, pool in enumerate(g.pools):
            if pool.subnet is not None and not _in_subnet(pool, selected):
                chosen = ", ".join(n.name for n in selected[:5])
                problems.append(
                    problem(
                        g.ref,
                        f"spec.pools[{i}].subnet",
                        f"{pool.subnet} holds no InternalIP of the nodes the group selects "
                        f"({chosen}{' ...' if len(selected) > 5 else ''}): its addresses are "
                        "reachable only if one of those nodes has a NIC on that subnet (the "
                        "agent reports a node that has none)",
                        warning=True,
                    )
                )
    return tuple(problems)
