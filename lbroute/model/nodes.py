"""The core Node kind, as far as lbroute reads it: its name, labels and InternalIPs,
whether it is cordoned and whether kubelet reports it shutting down.

Labels decide which NodeAgents, Peers and ServiceGroups apply to a node; the first
InternalIPv4 is the default router ID. The exclusion label, the cordon and the shutdown
are what make a node drain (nodeagent.drain).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lbroute.model.common import envelope, meta_labels, raise_if_failed
from lbroute.model.fields import IPAddress, Reader

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
"""The standard label that takes a node out of external load balancers (any value)."""
SHUTDOWN_MESSAGE = "node is shutting down"
"""What kubelet's graceful node shutdown manager reports (its ShutdownStatus error),
which kubelet puts in the message of the Ready condition it sets to False with reason
KubeletNotReady while the node shuts down."""


@dataclass(frozen=True, kw_only=True)
class Node:
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    addresses: tuple[IPAddress, ...] = ()
    """InternalIP addresses, in the order the Node lists them."""
    unschedulable: bool = False
    """Cordoned (spec.unschedulable)."""
    shutting_down: bool = False
    """Kubelet reports a graceful node shutdown (Ready False, "node is shutting down")."""

    @property
    def excluded(self) -> bool:
        """The Node has the exclude-from-external-load-balancers label."""
        return any(k == EXCLUDE_LABEL for k, _ in self.labels)

    @property
    def ipv4(self) -> ipaddress.IPv4Address | None:
        for a in self.addresses:
            if isinstance(a, ipaddress.IPv4Address):
                return a
        return None


def parse_node(obj: Mapping[str, Any]) -> Node:
    ref, meta, spec = envelope(obj, "Node", namespaced=False, spec_required=False)
    status = Reader(obj.get("status"), ref, "status", meta.problems)
    addresses = []
    for _i, item, path in status.items("addresses"):
        a = status.item_reader(item, path)
        if a.raw("type") in ("InternalIP", "ExternalIP"):
            ip = a.ip("address")
            if ip is not None and a.raw("type") == "InternalIP":
                addresses.append(ip)
    shutting_down = False
    for _i, item, _path in status.items("conditions"):
        if isinstance(item, Mapping) and item.get("type") == "Ready":
            message = item.get("message")
            shutting_down = (
                item.get("status") == "False"
                and isinstance(message, str)
                and SHUTDOWN_MESSAGE in message
            )
    raise_if_failed(meta)
    return Node(
        name=ref.name,
        labels=meta_labels(meta),
        addresses=tuple(addresses),
        unschedulable=spec.raw("unschedulable") is True,
        shutting_down=shutting_down,
    )
