"""What the local loop works from, and what it decides, without I/O.

:func:`local_inputs` turns the agent's objects (the model, the Services, the ready
endpoints) into :class:`LocalInputs`: every local address with what decides who may
hold it (nodeagent.local.election), the pool it comes from (for the pool's
``subnet``), the local pools whose group selects this node (the subnets our
membership Lease publishes) and the node's localInterface and localLease.
:func:`holdings` places the addresses this node won on its NIC (nodeagent.netlink.nic).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lbroute.model.agentconfig import LocalLease
from lbroute.model.api import Announce, Model, Pool, ServiceGroup
from lbroute.model.errors import ObjectRef
from lbroute.model.fields import IPAddress
from lbroute.model.service import Service
from lbroute.model.vocabulary import DEFAULT_INTERFACE, DEFAULT_LOCAL_INTERFACE
from nodeagent.desired import PoolIndex
from nodeagent.local.election import Election, LocalAddress, Sharer
from nodeagent.netlink.nic import Holding, NotPlaced, Placed, Snapshot, place


@dataclass(frozen=True, kw_only=True)
class LocalInputs:
    """Everything the local loop needs from the objects, for one node."""

    node: str
    addresses: tuple[LocalAddress, ...] = ()
    pools: Mapping[IPAddress, Pool] = field(default_factory=dict)
    """The pool each local address comes from."""
    serving_pools: tuple[Pool, ...] = ()
    """The local pools of the groups whose nodeSelector selects this node."""
    node_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ready: Mapping[ObjectRef, frozenset[str]] = field(default_factory=dict)
    """Nodes with a ready endpoint, of the ETP Local Services of local addresses only
    (all the election reads: inputs of equal objects compare equal, cheaply)."""
    local_interface: tuple[str, ...] = DEFAULT_LOCAL_INTERFACE
    lease: LocalLease = field(default_factory=LocalLease)
    service_interface: str = DEFAULT_INTERFACE

    @property
    def any_local(self) -> bool:
        """Some ServiceGroup is local (so the loop has something to decide)."""
        return bool(self.addresses or self.serving_pools)


def local_inputs(
    model: Model,
    services: Iterable[Service],
    ready: Mapping[ObjectRef, frozenset[str]],
    *,
    node: str,
    local_interface: tuple[str, ...] = DEFAULT_LOCAL_INTERFACE,
    lease: LocalLease | None = None,
    service_interface: str = DEFAULT_INTERFACE,
) -> LocalInputs:
    """The local loop's inputs (see the module docstring)."""
    groups = [g for g in model.service_groups if g.announce is Announce.LOCAL]
    me = model.node(node)
    labels = dict(me.labels) if me is not None else {}
    serving = tuple(p for g in groups if g.node_selector.matches(labels) for p in g.pools)
    sharing: dict[IPAddress, tuple[ServiceGroup, Pool, list[Sharer]]] = {}
    if groups:
        index = PoolIndex(groups)
        for service in sorted(services, key=lambda s: s.ref):
            for address in service.addresses:
                entry = sharing.get(address)
                if entry is None:
                    found = index.find(address)
                    if found is None:
                        continue
                    entry = sharing[address] = (found[0], found[1], [])
                entry[2].append(Sharer(ref=service.ref, local_traffic=service.local))
    addresses = tuple(
        LocalAddress(
            address=address,
            group=group.ref,
            node_selector=group.node_selector,
            services=tuple(sharers),
        )
        for address, (group, _, sharers) in sorted(
            sharing.items(), key=lambda kv: (kv[0].version, int(kv[0]))
        )
    )
    return LocalInputs(
        node=node,
        addresses=addresses,
        pools={address: pool for address, (_, pool, _) in sharing.items()},
        serving_pools=serving,
        node_labels={n.name: dict(n.labels) for n in model.nodes},
        ready={
            sharer.ref: ready[sharer.ref]
            for entry in addresses
            for sharer in entry.services
            if sharer.local_traffic and sharer.ref in ready
        },
        local_interface=local_interface,
        lease=lease or LocalLease(),
        service_interface=service_interface,
    )


@dataclass(frozen=True, kw_only=True)
class Placement:
    holdings: tuple[Holding, ...] = ()
    unplaced: tuple[tuple[IPAddress, str], ...] = ()
    """Addresses this node won but cannot place, and why."""


def holdings(
    inputs: LocalInputs, elections: Mapping[IPAddress, Election], snapshot: Snapshot
) -> Placement:
    """Where the addresses this node won go on its NIC."""
    found: list[Holding] = []
    unplaced: list[tuple[IPAddress, str]] = []
    for address, election in sorted(elections.items(), key=lambda kv: (kv[0].version, int(kv[0]))):
        if election.holder != inputs.node:
            continue
        pool = inputs.pools.get(address)
        placed = place(
            inputs.local_interface,
            address,
            snapshot,
            subnet=pool.subnet if pool is not None else None,
            exclude={inputs.service_interface},
        )
        if isinstance(placed, Placed):
            found.append(Holding(interface=placed.interface, link=placed.link.name))
        else:
            assert isinstance(placed, NotPlaced)
            unplaced.append((address, placed.message))
    return Placement(holdings=tuple(found), unplaced=tuple(unplaced))
