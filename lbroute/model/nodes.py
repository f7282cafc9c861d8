"""The core Node kind, as far as lbroute reads it: its name, labels and InternalIPs.

Labels decide which NodeAgents, Peers and ServiceGroups apply to a node; the first
InternalIPv4 is the default router ID.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lbroute.model.common import envelope, meta_labels, raise_if_failed
from lbroute.model.fields import IPAddress, Reader


@dataclass(frozen=True, kw_only=True)
class Node:
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    addresses: tuple[IPAddress, ...] = ()
    """InternalIP addresses, in the order the Node lists them."""

    @property
    def ipv4(self) -> ipaddress.IPv4Address | None:
        for a in self.addresses:
            if isinstance(a, ipaddress.IPv4Address):
                return a
        return None


def parse_node(obj: Mapping[str, Any]) -> Node:
    ref, meta, _spec = envelope(obj, "Node", namespaced=False, spec_required=False)
    status = Reader(obj.get("status"), ref, "status", meta.problems)
    addresses = []
    for _i, item, path in status.items("addresses"):
        a = status.item_reader(item, path)
        if a.raw("type") in ("InternalIP", "ExternalIP"):
            ip = a.ip("address")
            if ip is not None and a.raw("type") == "InternalIP":
                addresses.append(ip)
    raise_if_failed(meta)
    return Node(name=ref.name, labels=meta_labels(meta), addresses=tuple(addresses))
