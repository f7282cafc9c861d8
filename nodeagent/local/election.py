"""Which node holds each local address: the candidates and the election, pure.

Every agent runs the same election on the same inputs (the Leases everyone publishes,
the ServiceGroups, the EndpointSlices) and so reaches the same answer without talking
to the others. No I/O and no clock here: :func:`elect` is a function of its arguments,
O(addresses x members): one hash per candidate of each address, the rest taken once per
(nodeSelector, subnet). 1,000 addresses over 100 nodes take 80 ms, 10,000 under a
second, so a loop elects again when its inputs change, not on every renewal.

Candidates for an address, in the order the reasons for having none are given
(:class:`NoHolder`):

1. selected by its ServiceGroup's nodeSelector. A node whose labels are not given is
   taken as selected: it publishes only the subnets of local pools whose group selects
   it (nodeagent.local.membership), so its subnets already say so;
2. with an interface on a subnet that holds the address (``Membership.serves``);
3. alive (its Lease renewed, judged on our clock: nodeagent.local.membership);
4. for an address of a Service with ``externalTrafficPolicy: Local``, with a ready
   endpoint of at least one of the ETP Local Services sharing it, and of as many of
   them as any node has: a node without an endpoint of a Local Service drops the
   traffic it receives for it, so the address goes where the most of them are served
   (all of them wherever one node can). Services with ETP Cluster on the same address
   are served from any node and do not count.

The holder, among the candidates:

- a candidate that claims the address now (lists it in its Lease) keeps it; when several
  do (a handover in flight), the one with the highest weight. A node that comes back
  does not pull addresses back (no flapping), unless the caller asks (``sticky=False``);
- otherwise the candidate with the highest rendezvous weight (highest random weight:
  blake2b of the address and the node's name, the same on every machine and run; never
  Python's ``hash()``). When a node joins, an address moves only to it, and only if it
  wins the address by weight and no candidate claims it; when a node leaves, only the
  addresses it held move. With no claims, about 1/(n+1) of the addresses move when an
  n+1st node joins.

The election is per address: Services sharing an IP are elected once, together, and the
IPv4 and IPv6 addresses of one Service are elected apart (they may land on two nodes).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lbroute.model.common import EVERYTHING, LabelSelector
from lbroute.model.errors import ObjectRef
from lbroute.model.fields import IPAddress, IPNetwork
from nodeagent.local.membership import Membership


@dataclass(frozen=True, kw_only=True)
class Sharer:
    """A Service that uses a local address."""

    ref: ObjectRef
    local_traffic: bool = False
    """``externalTrafficPolicy: Local``."""


@dataclass(frozen=True, kw_only=True)
class LocalAddress:
    """One local address to hold, with what decides who may hold it."""

    address: IPAddress
    group: ObjectRef
    """The ServiceGroup whose local pool it comes from."""
    node_selector: LabelSelector = EVERYTHING
    """The group's nodeSelector."""
    services: tuple[Sharer, ...]
    """The Services sharing it (one unless allow-shared-ip)."""


class NoHolder(enum.Enum):
    """Why an address has no holder: the first step of the candidate set that left none."""

    NOT_SELECTED = "no node with a membership Lease is selected by the ServiceGroup's nodeSelector"
    NO_INTERFACE = "no selected node has an interface on a subnet that holds the address"
    NOT_ALIVE = "no selected node with an interface on its subnet is alive"
    NO_ENDPOINT = (
        "externalTrafficPolicy is Local and no live node that could hold the address has a "
        "ready endpoint of its Service"
    )


@dataclass(frozen=True, kw_only=True)
class Election:
    """The outcome for one address."""

    address: IPAddress
    holder: str | None
    """The node that holds it; None when no node may (``why``)."""
    why: NoHolder | None = None
    candidates: tuple[str, ...] = ()
    """The nodes that may hold it, by weight, highest first."""
    kept: bool = False
    """The holder kept it because it claimed it already (it may not be the heaviest)."""


_PERSON = hashlib.blake2b(digest_size=8, person=b"lbroute-local")
"""The weight's hash, ready for the address and the node to be added (copied: cheaper
than setting it up for each weight)."""


def weight(address: IPAddress, node: str) -> int:
    """The rendezvous weight of ``node`` for ``address``: blake2b of the address's bytes
    and the node's name, stable across machines and runs."""
    return int.from_bytes(_digest(_hashing(address), node.encode("utf-8")), "big")


def _hashing(address: IPAddress) -> hashlib.blake2b:
    h = _PERSON.copy()
    h.update(address.packed)
    return h


def _digest(hashing: hashlib.blake2b, node: bytes) -> bytes:
    h = hashing.copy()
    h.update(node)
    return h.digest()


def elect(
    addresses: Iterable[LocalAddress],
    members: Mapping[str, Membership],
    *,
    node_labels: Mapping[str, Mapping[str, str]],
    ready: Mapping[ObjectRef, frozenset[str]],
    sticky: bool = True,
) -> dict[IPAddress, Election]:
    """The election of each address (see the module docstring for the rules).

    ``members``: every node with a membership Lease; ``node_labels``: the labels of the
    nodes whose labels are known; ``ready``: per Service, the nodes with a ready
    endpoint of it (lbroute.model.endpoints.ready_nodes). With ``sticky`` False a
    claimant keeps nothing: every address goes to its heaviest candidate.

    The steps before the endpoints depend on the address only through its group's
    nodeSelector and the subnets that hold it, so they are taken once per such pair;
    what is left per address is a hash per candidate.
    """
    subnets = sorted(
        {net for m in members.values() for net in m.subnets},
        key=lambda n: (n.version, int(n.network_address), n.prefixlen),
    )
    names = {node: node.encode("utf-8") for node in members}
    steps: dict[tuple[LabelSelector, tuple[int, ...]], _Alive] = {}
    out: dict[IPAddress, Election] = {}
    for local in addresses:
        address = local.address
        holding = tuple(i for i, net in enumerate(subnets) if address in net)
        key = (local.node_selector, holding)
        step = steps.get(key)
        if step is None:
            nets = [subnets[i] for i in holding]
            step = steps[key] = _alive(local.node_selector, nets, members, node_labels)
        if isinstance(step, NoHolder):
            out[address] = Election(address=address, holder=None, why=step)
            continue
        candidates = _with_endpoints(local, step, ready)
        if not candidates:
            out[address] = Election(address=address, holder=None, why=NoHolder.NO_ENDPOINT)
            continue
        hashing = _hashing(address)
        ranked = tuple(
            sorted(candidates, key=lambda n: (_digest(hashing, names[n]), n), reverse=True)
        )
        holder = ranked[0]
        if sticky:
            holder = next((n for n in ranked if address in members[n].holding), holder)
        out[address] = Election(
            address=address, holder=holder, candidates=ranked, kept=holder != ranked[0]
        )
    return out


_Alive = NoHolder | list[str]
"""The live nodes that are selected and on a subnet, or why there is none."""


def _alive(
    selector: LabelSelector,
    subnets: list[IPNetwork],
    members: Mapping[str, Membership],
    node_labels: Mapping[str, Mapping[str, str]],
) -> _Alive:
    selected = [
        node
        for node in sorted(members)
        if node not in node_labels or selector.matches(node_labels[node])
    ]
    if not selected:
        return NoHolder.NOT_SELECTED
    serving = [n for n in selected if any(net in members[n].subnets for net in subnets)]
    if not serving:
        return NoHolder.NO_INTERFACE
    alive = [n for n in serving if members[n].alive]
    return alive or NoHolder.NOT_ALIVE


def _with_endpoints(
    local: LocalAddress, alive: list[str], ready: Mapping[ObjectRef, frozenset[str]]
) -> list[str]:
    """The nodes of ``alive`` with ready endpoints of the most ETP Local Services
    sharing the address (at least one); all of ``alive`` when none is Local."""
    served = [ready.get(s.ref, frozenset()) for s in local.services if s.local_traffic]
    if not served:
        return alive
    counts = {node: sum(node in nodes for nodes in served) for node in alive}
    best = max(counts.values())
    return [node for node in alive if best and counts[node] == best]
