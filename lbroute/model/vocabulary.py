"""lbroute's vocabulary: every name it shares with Kubernetes and the kernel, said once.

The API group and version, the kinds and their plurals, the annotation keys a Service
carries (read by lbroute, or written by it), the LoadBalancerClass, the field managers
that write for lbroute, and the kernel numbers that mark what lbroute owns. Any other
module that needs one of these names imports it from here, never spells it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

GROUP: Final = "lbroute.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

SERVICE_GROUP: Final = "ServiceGroup"
PEER: Final = "Peer"
NODE_AGENT: Final = "NodeAgent"
NODE_STATE: Final = "NodeState"
PLURALS: Final = {
    SERVICE_GROUP: "servicegroups",
    PEER: "peers",
    NODE_AGENT: "nodeagents",
    NODE_STATE: "nodestates",
}
"""lbroute's kinds -> their resource names under ``/apis/lbroute.io/v1alpha1``."""
CORE_KINDS: Final = {"Service": "v1", "Secret": "v1", "Node": "v1", "Event": "v1"}
"""The core kinds lbroute reads or refers to -> their apiVersion."""

LOADBALANCER_CLASS: Final = f"{GROUP}/lbroute"
"""``spec.loadBalancerClass`` of the Services lbroute serves."""

ANNOTATION_PREFIX: Final = f"{GROUP}/"
SERVICE_GROUP_ANNOTATION: Final = f"{GROUP}/service-group"
"""Read: the ServiceGroup a Service asks for (else the default group)."""
ADDRESSES_ANNOTATION: Final = f"{GROUP}/addresses"
"""Read: the addresses a Service asks for, comma-separated, at most one per family."""
SHARED_ANNOTATION: Final = f"{GROUP}/allow-shared-ip"
"""Read: the sharing key; Services of one namespace with the same key may share an IP."""
BGP_CLASS_ANNOTATION: Final = f"{GROUP}/bgp-class"
"""Read: the BGP class (one its ServiceGroup declares in ``bgp.classes``) a Service's
routes carry; any other value is reported and the group's default policy applies."""
FOREIGN_ALIASES: Final = {
    ADDRESSES_ANNOTATION: (
        "metallb.io/loadBalancerIPs",
        "metallb.universe.tf/loadBalancerIPs",
        "purelb.io/addresses",
    ),
    SHARED_ANNOTATION: (
        "metallb.io/allow-shared-ip",
        "metallb.universe.tf/allow-shared-ip",
        "purelb.io/allow-shared-ip",
    ),
    SERVICE_GROUP_ANNOTATION: (
        "metallb.io/address-pool",
        "metallb.universe.tf/address-pool",
        "purelb.io/service-group",
    ),
}
"""Read: MetalLB's and PureLB's annotations that lbroute honours as read-only aliases of
its own (the key), in order of precedence after lbroute's own. A MetalLB address pool
names the ServiceGroup of the same name (``lbroute convert`` names groups after pools)."""
FOREIGN_RECORDS: Final = (
    "metallb.io/ip-allocated-from-pool",
    "metallb.universe.tf/ip-allocated-from-pool",
    "purelb.io/allocated-from",
)
"""Written by MetalLB or PureLB (the pool or group an address came from): reported, not
read; the address itself is kept when a pool of lbroute holds it."""
FOREIGN_KEYS: Final = frozenset(
    (*(k for v in FOREIGN_ALIASES.values() for k in v), *FOREIGN_RECORDS)
)
"""Every foreign annotation lbroute reads or reports (kept where Services are trimmed)."""
ALLOCATED_FROM_ANNOTATION: Final = f"{GROUP}/allocated-from"
"""Written by the allocator: the ServiceGroup and pool each address came from."""
SERVICE_GROUP_LABEL: Final = f"{GROUP}/allocated-group"
"""Set by the allocator on every Service it gave addresses (beside the allocated-from
annotation): the ServiceGroup's name, or empty when the name is longer than a label value
may be (not the ``lbroute.io/service-group`` annotation, by which a user picks a group).
The EndpointSlice controller copies a Service's labels to its EndpointSlices, so the
agents can list and watch only lbroute's Services and their EndpointSlices (a label
selector, filtered by the API server)."""
LABELED_STATUS: Final = "labeledServices"
"""A ServiceGroup's status field the allocator sets to true once every Service with
addresses of the group carries :data:`SERVICE_GROUP_LABEL`: an agent may then watch only
labeled Services and EndpointSlices without missing any of the group's."""
ANNOUNCING_ANNOTATION: Final = f"{GROUP}/announcing"
"""Written by the agents: which nodes announce the Service (and, for local pools, where).
Entries separated by ``,``, sorted: a node's name for a routed ETP Local Service, and
``node/interface/address`` for a local address (``node-b/eth1/192.0.2.10``); node and
interface names hold no ``/`` nor ``,``. Read and written through
:func:`parse_announcing` and :func:`format_announcing`."""
LOCAL_SUBNETS_ANNOTATION: Final = f"{GROUP}/local-subnets"
"""On a node's membership Lease: the subnets (comma-separated CIDRs) the node has an
interface on, of the local pools whose ServiceGroup selects it."""
LOCAL_HOLDING_ANNOTATION: Final = f"{GROUP}/local-holding"
"""On a node's membership Lease: the local addresses (comma-separated) it holds now."""

LEASE: Final = "Lease"
LEASE_API_VERSION: Final = "coordination.k8s.io/v1"
MEMBER_LEASE_PREFIX: Final = "lbroute-node-"
"""A node's membership Lease is named this prefix and the node's name."""
MEMBER_LABEL: Final = f"{GROUP}/member"
"""The label on every membership Lease (its value :data:`MEMBER_LABEL_VALUE`), so that the
agents list and watch those and no other Lease of the install namespace."""
MEMBER_LABEL_VALUE: Final = "node"

AGENT_CONTROLLER: Final = f"{GROUP}/agent"
"""The agents' field manager and Event reporting controller."""
ALLOCATOR_CONTROLLER: Final = f"{GROUP}/allocator"
"""The allocator's field manager and Event reporting controller."""

SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
"""The label that ties an EndpointSlice to its Service."""

ENDPOINT_COUNT = "lbroute.io/endpoints"
"""In a trimmed EndpointSlice entry (lbroute.kube.trim): how many endpoints of that
(node, ready) the entry stands for; absent means one. Never in an object the API holds."""

DEFAULT_INTERFACE: Final = "kube-lb0"
"""NodeAgent interface when unset: the dummy interface that carries Service addresses."""
DEFAULT_LOCAL_INTERFACE: Final = ("default",)
"""NodeAgent localInterface when unset: the interface holding the default route of the
local address's family."""
ROUTE_TABLE_DEFAULT: Final = 4242
"""Kernel routing table where the agent keeps one route per announced prefix."""
ROUTE_PROTO: Final = 0x4C
"""Routing protocol number of those routes, and address protocol of lbroute's addresses
('L'): what lbroute owns in the kernel is marked there, so a restart needs no state."""


@dataclass(frozen=True, kw_only=True)
class Announcer:
    """One entry of :data:`ANNOUNCING_ANNOTATION`: a node, and for a local address the
    interface and the address (no prefix length) it holds there."""

    node: str
    interface: str = ""
    address: str = ""

    def __str__(self) -> str:
        if not self.interface and not self.address:
            return self.node
        return f"{self.node}/{self.interface}/{self.address}"


def parse_announcing(value: str | None) -> tuple[Announcer, ...]:
    """The entries of an ``lbroute.io/announcing`` value, in its order. Leniently: an
    entry is split at its first two ``/`` (the node, the interface, the rest is the
    address), so whatever another writer put there keeps its node."""
    found = []
    for entry in (value or "").split(","):
        entry = entry.strip()
        if entry:
            node, _, rest = entry.partition("/")
            interface, _, address = rest.partition("/")
            found.append(Announcer(node=node, interface=interface, address=address))
    return tuple(found)


def format_announcing(entries: Iterable[Announcer | str]) -> str | None:
    """The annotation's value for ``entries`` (Announcers, or entries as read), each
    once, sorted; None (the annotation removed) when there is none."""
    return ",".join(sorted({str(e) for e in entries})) or None
