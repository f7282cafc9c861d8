"""The allocator's bookkeeping on a Service: where its addresses came from, and writing them.

A Service is read by :mod:`lbroute.model.service`, as for the agent; the allocator adds
the ``lbroute.io/allocated-from`` annotation it wrote (:class:`AllocatedFrom`), which
marks addresses as lbroute's so they are released when the Service stops being lbroute's
(type or class change). Services that lbroute neither serves nor once served and that
hold no address do not concern the allocator and are dropped here. :func:`ingress` and
:func:`with_allocation` write an assignment back into a Service's status and annotation.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lbroute.model.fields import IPAddress, list_at, mapping_at
from lbroute.model.service import Service, service_annotations
from lbroute.model.vocabulary import ALLOCATED_FROM_ANNOTATION, SERVICE_GROUP_LABEL

MAX_TEXT = 1024
"""What lbroute writes fits many times over: a group name (253 characters), ':' and one
pool per family (an IPv6 range is at most 91)."""


@dataclass(frozen=True, kw_only=True)
class AllocatedFrom:
    """The ``lbroute.io/allocated-from`` annotation: ``GROUP:POOL,POOL``.

    Says which ServiceGroup and pools a Service's addresses came from; an address kept
    outside every pool is listed as itself. It marks the addresses as lbroute's, so
    they are released when the Service stops being lbroute's (type or class change).
    Whoever can edit the Service can write anything there, so only its first
    :data:`MAX_TEXT` characters are read.
    """

    group: str
    pools: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.group}:{','.join(self.pools)}"

    @classmethod
    def parse(cls, text: str) -> AllocatedFrom:
        group, _, rest = text[:MAX_TEXT].partition(":")
        return cls(group=group.strip(), pools=tuple(p.strip() for p in rest.split(",") if p))

    def covers(self, address: IPAddress) -> bool:
        return any(self.spans(spec, address) for spec in self.pools)

    @staticmethod
    def spans(spec: str, address: IPAddress) -> bool:
        """Whether one pool entry (a network, a range or an address) holds ``address``."""
        bounds = _bounds(spec)
        return (
            bounds is not None
            and bounds[0] == address.version
            and (bounds[1] <= int(address) <= bounds[2])
        )


@functools.lru_cache(maxsize=4096)
def _bounds(spec: str) -> tuple[int, int, int] | None:
    """(IP version, first, last) of a pool entry; None when it is not one."""
    try:
        if "-" in spec:
            a, b = (ipaddress.ip_address(x.strip()) for x in spec.split("-", 1))
            return (a.version, int(a), int(b)) if a.version == b.version else None
        net = ipaddress.ip_network(spec, strict=False)
    except ValueError:
        return None
    return net.version, int(net.network_address), int(net.broadcast_address)


@dataclass(frozen=True, kw_only=True)
class LBService(Service):
    """A Service with the record of the allocation it holds."""

    allocated_from: AllocatedFrom | None = None
    label: str | None = None
    """Its :data:`SERVICE_GROUP_LABEL` (None: not set)."""


def group_label(allocated_from: str | None) -> str | None:
    """The :data:`SERVICE_GROUP_LABEL` value that goes with an allocated-from annotation
    (None: no label): the group's name, empty when it is too long for a label value."""
    if allocated_from is None:
        return None
    group = AllocatedFrom.parse(allocated_from).group
    return group if len(group) <= 63 else ""


def parse_service(obj: Mapping[str, Any], *, default_class: bool) -> LBService | None:
    """The Service as the allocator needs it, or None when it does not concern it."""
    allocated_text = service_annotations(obj).get(ALLOCATED_FROM_ANNOTATION)
    allocated = (
        AllocatedFrom.parse(allocated_text)
        if isinstance(allocated_text, str) and allocated_text
        else None
    )
    labels = mapping_at(mapping_at(obj, "metadata"), "labels")
    label = labels.get(SERVICE_GROUP_LABEL)
    service = LBService.read(
        obj,
        default_class=default_class,
        allocated_from=allocated,
        label=label if isinstance(label, str) else None,
    )
    if not service.ours and allocated is None and not service.addresses:
        return None
    return service


def ingress(obj: Mapping[str, Any], addresses: tuple[IPAddress, ...]) -> list[dict[str, Any]]:
    """status.loadBalancer.ingress for ``addresses``, in their order; the other fields of
    an entry that already named one of them (ipMode, ports) are kept."""
    old: dict[str, Mapping[str, Any]] = {}
    for item in list_at(mapping_at(mapping_at(obj, "status"), "loadBalancer"), "ingress"):
        if isinstance(item, Mapping) and isinstance(item.get("ip"), str):
            old.setdefault(item["ip"], item)
    return [{**old.get(str(a), {}), "ip": str(a)} for a in addresses]


def with_allocation(
    obj: Mapping[str, Any],
    addresses: tuple[IPAddress, ...],
    allocated_from: str | None,
    *,
    label: str | bool | None = False,
) -> dict[str, Any]:
    """A copy of the Service dict with these addresses and allocated-from annotation, and
    with ``label`` as its :data:`SERVICE_GROUP_LABEL` (None: none; False: as it is)."""
    out = copy.deepcopy(dict(obj))
    meta = out.setdefault("metadata", {})
    if label is not False:
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != SERVICE_GROUP_LABEL}
        if isinstance(label, str):
            labels[SERVICE_GROUP_LABEL] = label
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels", None)
    annotations = dict(meta.get("annotations") or {})
    if allocated_from is None:
        annotations.pop(ALLOCATED_FROM_ANNOTATION, None)
    else:
        annotations[ALLOCATED_FROM_ANNOTATION] = allocated_from
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    status = out.setdefault("status", {})
    lb = dict(status.get("loadBalancer") or {})
    entries = ingress(obj, addresses)
    if entries:
        lb["ingress"] = entries
    else:
        lb.pop("ingress", None)
    status["loadBalancer"] = lb
    return out
