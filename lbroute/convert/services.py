"""The cluster's Services, made lbroute's without renumbering one.

For each LoadBalancer Service: a JSON merge patch that renames MetalLB's and PureLB's
annotations to lbroute's (the address request, the sharing key, the pool or group),
removes the records the other tool wrote, and pins ``lbroute.io/addresses`` to the
addresses the Service holds now (``status.loadBalancer.ingress``), with
``lbroute.io/service-group`` naming the converted group that holds them when that is
not the group the Service would get anyway. A Service whose ``spec.loadBalancerClass``
names the other tool must be recreated (the field is immutable); one of no class is
served only by an lbroute running with ``--default-class``.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lbroute.convert.report import Report, q
from lbroute.convert.values import meta_name, meta_namespace, parse_block
from lbroute.model.errors import escape
from lbroute.model.fields import list_at, mapping_at
from lbroute.model.vocabulary import (
    ADDRESSES_ANNOTATION,
    LOADBALANCER_CLASS,
    SERVICE_GROUP_ANNOTATION,
    SHARED_ANNOTATION,
)

RENAMED = {
    "metallb.io/loadBalancerIPs": ADDRESSES_ANNOTATION,
    "metallb.universe.tf/loadBalancerIPs": ADDRESSES_ANNOTATION,
    "purelb.io/addresses": ADDRESSES_ANNOTATION,
    "metallb.io/allow-shared-ip": SHARED_ANNOTATION,
    "metallb.universe.tf/allow-shared-ip": SHARED_ANNOTATION,
    "purelb.io/allow-shared-ip": SHARED_ANNOTATION,
    "metallb.io/address-pool": SERVICE_GROUP_ANNOTATION,
    "metallb.universe.tf/address-pool": SERVICE_GROUP_ANNOTATION,
    "purelb.io/service-group": SERVICE_GROUP_ANNOTATION,
}
"""The other tools' annotations -> lbroute's of the same meaning."""
RECORDS = (
    "metallb.io/ip-allocated-from-pool",
    "metallb.universe.tf/ip-allocated-from-pool",
    "purelb.io/allocated-by",
    "purelb.io/allocated-from",
    "purelb.io/announcing-IPv4",
    "purelb.io/announcing-IPv6",
    "purelb.io/announcing-interface",
)
"""What the other tools wrote on a Service: removed (the address itself is pinned)."""
FOREIGN_PREFIXES = ("metallb.io/", "metallb.universe.tf/", "purelb.io/")
FOREIGN_CLASSES = ("metallb", "purelb")
"""A loadBalancerClass containing one of these names the other tool."""


@dataclass(frozen=True)
class GroupPools:
    """A converted group and the address blocks of its pools, to find where an address is."""

    name: str
    default: bool
    blocks: tuple[tuple[int, int, int], ...]
    """(IP version, first, last) of each pool."""

    def holds(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(v == address.version and lo <= int(address) <= hi for v, lo, hi in self.blocks)


def group_pools(objects: Sequence[Mapping[str, Any]]) -> list[GroupPools]:
    found = []
    for obj in objects:
        if obj.get("kind") != "ServiceGroup":
            continue
        blocks = []
        for pool in list_at(mapping_at(obj, "spec"), "pools"):
            block = parse_block(pool.get("cidr") or pool.get("range"))
            if block is not None:
                blocks.append((block.version, int(block.first), int(block.last)))
        default = bool(mapping_at(obj, "spec").get("default"))
        found.append(GroupPools(meta_name(obj), default, tuple(blocks)))
    return found


@dataclass(frozen=True)
class Patched:
    ref: str
    """``namespace/name``, escaped."""
    patch: dict[str, Any]
    """The JSON merge patch (metadata.annotations; null removes one)."""
    service: dict[str, Any]
    """The Service as it is after the patch (and, when it must be recreated, with
    lbroute's class), for the self-check."""
    recreate: bool = False
    """Its loadBalancerClass names the other tool: recreate it as :attr:`service`."""


def _ingress(obj: Mapping[str, Any]) -> list[str]:
    items = list_at(mapping_at(mapping_at(obj, "status"), "loadBalancer"), "ingress")
    return [i["ip"] for i in items if isinstance(i, Mapping) and isinstance(i.get("ip"), str)]


def convert_services(
    services: Sequence[Mapping[str, Any]], groups: Sequence[GroupPools], report: Report
) -> tuple[list[Patched], bool]:
    """The patch of each LoadBalancer Service, and whether any has no class (lbroute
    must then run with --default-class)."""
    out: list[Patched] = []
    no_class = False
    default = next((g for g in groups if g.default), None)
    for obj in sorted(services, key=lambda o: (meta_namespace(o), meta_name(o))):
        spec = mapping_at(obj, "spec")
        if spec.get("type") != "LoadBalancer":
            continue
        ref = f"{escape(meta_namespace(obj) or 'default', 63)}/{escape(meta_name(obj), 253)}"
        meta = mapping_at(obj, "metadata")
        annotations = dict(meta.get("annotations") or {})
        changes: dict[str, Any] = {}
        notes: list[str] = []
        for key, value in sorted(annotations.items()):
            if key in RENAMED:
                ours = RENAMED[key]
                if ours in annotations and annotations[ours] != value:
                    notes.append(f"{key} ignored: {ours} is set and wins")
                elif ours not in changes:
                    changes[ours] = value
                    notes.append(f"{key} -> {ours}")
                changes[key] = None
            elif key in RECORDS:
                changes[key] = None
            elif key.startswith(FOREIGN_PREFIXES):
                changes[key] = None
                report.error(
                    f"Service {ref}",
                    f"metadata.annotations[{key}]",
                    f"{q(value)}: no lbroute equivalent; removed",
                )
        addresses = _ingress(obj)
        if addresses:
            pinned = ",".join(addresses)
            if changes.get(ADDRESSES_ANNOTATION, annotations.get(ADDRESSES_ANNOTATION)) != pinned:
                notes.append(f"{ADDRESSES_ANNOTATION} pinned to {pinned}")
            changes[ADDRESSES_ANNOTATION] = pinned
            group = changes.get(SERVICE_GROUP_ANNOTATION, annotations.get(SERVICE_GROUP_ANNOTATION))
            holder = _holder(groups, addresses)
            if (
                holder is not None
                and group != holder.name
                and not (group is None and holder is default)
            ):
                changes[SERVICE_GROUP_ANNOTATION] = holder.name
                notes.append(
                    f"{SERVICE_GROUP_ANNOTATION} set to {holder.name}, the group holding it"
                )
        for key in list(changes):
            if changes[key] is not None and annotations.get(key) == changes[key]:
                del changes[key]  # already so
        cls = spec.get("loadBalancerClass")
        service = copy.deepcopy(dict(obj))
        recreate = False
        if isinstance(cls, str) and cls != LOADBALANCER_CLASS:
            if any(name in cls for name in FOREIGN_CLASSES):
                report.recreate.append(
                    f"{ref}: spec.loadBalancerClass {q(cls)} names the other tool and cannot be "
                    f"changed: recreate the Service with {LOADBALANCER_CLASS!r} (and the patched "
                    "annotations) to keep its address"
                )
                service["spec"] = {**spec, "loadBalancerClass": LOADBALANCER_CLASS}
                recreate = True
            else:
                report.services.append(f"{ref}: class {q(cls)} is not lbroute's: left alone")
                continue
        elif cls is None:
            no_class = True
        new = dict(annotations)
        for key, value in changes.items():
            if value is None:
                new.pop(key, None)
            else:
                new[key] = value
        service.setdefault("metadata", {})["annotations"] = new
        patch = {"metadata": {"annotations": changes}} if changes else {}
        report.services.append(f"{ref}: {'; '.join(notes) or 'nothing to change'}")
        out.append(Patched(ref, patch, service, recreate))
    return out, no_class


def _holder(groups: Sequence[GroupPools], addresses: list[str]) -> GroupPools | None:
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        for g in groups:
            if g.holds(address):
                return g
    return None
