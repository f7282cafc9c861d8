"""lbroute's vocabulary: every name it shares with Kubernetes and the kernel, said once.

The API group and version, the kinds and their plurals, the annotation keys a Service
carries (read by lbroute, or written by it), the LoadBalancerClass, the field managers
that write for lbroute, and the kernel numbers that mark what lbroute owns. Any other
module that needs one of these names imports it from here, never spells it again.
"""

from __future__ import annotations

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
ALLOCATED_FROM_ANNOTATION: Final = f"{GROUP}/allocated-from"
"""Written by the allocator: the ServiceGroup and pool each address came from."""
ANNOUNCING_ANNOTATION: Final = f"{GROUP}/announcing"
"""Written by the agents: which nodes announce the Service (and, for local pools, where)."""
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

DEFAULT_INTERFACE: Final = "kube-lb0"
ROUTE_TABLE_DEFAULT: Final = 4242
"""Kernel routing table where the agent keeps one route per announced prefix."""
ROUTE_PROTO: Final = 0x4C
"""Routing protocol number of those routes, and address protocol of lbroute's addresses
('L'): what lbroute owns in the kernel is marked there, so a restart needs no state."""
