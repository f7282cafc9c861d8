"""Services as the allocator sees them: converted once, where they enter.

A Kubernetes Service dict becomes a frozen :class:`LBService` on ``ipaddress`` types.
Unusable values (a requested address that is not an address, an unknown IP family) are
problems naming the Service and the field, never exceptions. Services that lbroute
neither serves nor once served and that hold no address are dropped here.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lbroute.model.api import LOADBALANCER_CLASS, Family
from lbroute.model.errors import ObjectRef, Problem, Severity
from lbroute.model.fields import IPAddress, parse_ip
from lbroute.model.objects import list_at, mapping_at

SERVICE_GROUP = "lbroute.io/service-group"
ADDRESSES = "lbroute.io/addresses"
SHARED = "lbroute.io/allow-shared-ip"
ALLOCATED_FROM = "lbroute.io/allocated-from"

_FAMILIES = {"IPv4": Family.IPV4, "IPv6": Family.IPV6}
PROTOCOLS = ("TCP", "UDP", "SCTP")


class Policy(StrEnum):
    """spec.ipFamilyPolicy."""

    SINGLE = "SingleStack"
    PREFER = "PreferDualStack"
    REQUIRE = "RequireDualStack"


def _annotation_path(key: str) -> str:
    return f"metadata.annotations[{key}]"


@dataclass(frozen=True, kw_only=True)
class AllocatedFrom:
    """The ``lbroute.io/allocated-from`` annotation: ``GROUP:POOL,POOL``.

    Says which ServiceGroup and pools a Service's addresses came from; an address kept
    outside every pool is listed as itself. It marks the addresses as lbroute's, so
    they are released when the Service stops being lbroute's (type or class change).
    """

    group: str
    pools: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.group}:{','.join(self.pools)}"

    @classmethod
    def parse(cls, text: str) -> AllocatedFrom:
        group, _, rest = text.partition(":")
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
class LBService:
    ref: ObjectRef
    uid: str = ""
    created: str = ""
    """creationTimestamp: of two Services that claim one address, the older keeps it."""
    ours: bool = True
    """type LoadBalancer of lbroute's class (or of no class when lbroute is the default)."""
    group: str | None = None
    """The lbroute.io/service-group annotation."""
    families: tuple[Family, ...] = ()
    """spec.ipFamilies in order (the first is the primary family); () when unset."""
    policy: Policy | None = None
    requested: tuple[IPAddress, ...] = ()
    """lbroute.io/addresses, else spec.loadBalancerIP; at most one per family."""
    requested_path: str = f"metadata.annotations[{ADDRESSES}]"
    """Where the request came from, for messages."""
    share_key: str | None = None
    """lbroute.io/allow-shared-ip (sharing is among Services of one namespace)."""
    share_scope: tuple[str, ...] = ("Cluster",)
    """Services that share an address must agree on this: ETP and, for Local, the
    selector (an address announced only where one Service has endpoints must not
    carry another Service's traffic)."""
    ports: frozenset[tuple[str, int]] = frozenset()
    """(protocol, port) pairs of spec.ports."""
    current: tuple[IPAddress, ...] = ()
    """status.loadBalancer.ingress IPs, in order, each once."""
    allocated_from: AllocatedFrom | None = None
    problems: tuple[Problem, ...] = field(default=())

    @property
    def share(self) -> tuple[str, str] | None:
        return (self.ref.namespace, self.share_key) if self.share_key else None


def is_ours(obj: Mapping[str, Any], *, default_class: bool) -> bool:
    spec = mapping_at(obj, "spec")
    if spec.get("type") != "LoadBalancer":
        return False
    cls = spec.get("loadBalancerClass")
    return cls == LOADBALANCER_CLASS or (cls is None and default_class)


def ingress_ips(obj: Mapping[str, Any]) -> tuple[IPAddress, ...]:
    """The IPs of status.loadBalancer.ingress, each once; entries that are not IPs are
    left out (the caller that needs to report them reads them itself)."""
    found: list[IPAddress] = []
    for item in list_at(mapping_at(mapping_at(obj, "status"), "loadBalancer"), "ingress"):
        ip = item.get("ip") if isinstance(item, Mapping) else None
        if ip is None:
            continue
        try:
            address = parse_ip(ip)
        except (TypeError, ValueError):
            continue
        if address not in found:
            found.append(address)
    return tuple(found)


def parse_service(obj: Mapping[str, Any], *, default_class: bool) -> LBService | None:
    """The Service as the allocator needs it, or None when it does not concern it."""
    meta = mapping_at(obj, "metadata")
    annotations = mapping_at(meta, "annotations")
    ours = is_ours(obj, default_class=default_class)
    allocated_text = annotations.get(ALLOCATED_FROM)
    allocated = AllocatedFrom.parse(str(allocated_text)) if allocated_text else None
    current = ingress_ips(obj)
    if not ours and allocated is None and not current:
        return None
    ref = ObjectRef(
        kind="Service",
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or "<no name>"),
    )
    base = LBService(
        ref=ref,
        uid=str(meta.get("uid") or ""),
        created=str(meta.get("creationTimestamp") or ""),
        ours=ours,
        current=current,
        allocated_from=allocated,
    )
    if not ours:
        return base
    problems: list[Problem] = []

    def error(path: str, message: str) -> None:
        problems.append(Problem(severity=Severity.ERROR, ref=ref, path=path, message=message))

    spec = mapping_at(obj, "spec")
    families: list[Family] = []
    for i, value in enumerate(list_at(spec, "ipFamilies")):
        family = _FAMILIES.get(str(value))
        if family is None:
            error(f"spec.ipFamilies[{i}]", f"{value!r} is not valid; expected IPv4 or IPv6")
        elif family not in families:
            families.append(family)
    policy = None
    if spec.get("ipFamilyPolicy") is not None:
        try:
            policy = Policy(str(spec["ipFamilyPolicy"]))
        except ValueError:
            error(
                "spec.ipFamilyPolicy",
                f"{spec['ipFamilyPolicy']!r} is not valid; expected one of "
                + ", ".join(p.value for p in Policy),
            )
    requested = _requested(annotations, spec, error)
    requested_path = (
        "spec.loadBalancerIP"
        if spec.get("loadBalancerIP") and not annotations.get(ADDRESSES)
        else _annotation_path(ADDRESSES)
    )
    ports: set[tuple[str, int]] = set()
    for item in list_at(spec, "ports"):
        if isinstance(item, Mapping) and isinstance(item.get("port"), int):
            ports.add((str(item.get("protocol") or "TCP"), int(item["port"])))
    share_key = annotations.get(SHARED)
    scope: tuple[str, ...] = ("Cluster",)
    if spec.get("externalTrafficPolicy") == "Local":
        selector = mapping_at(spec, "selector")
        scope = ("Local", *(f"{k}={v}" for k, v in sorted(selector.items())))
    group = annotations.get(SERVICE_GROUP)
    return LBService(
        ref=ref,
        uid=base.uid,
        created=base.created,
        ours=True,
        group=str(group) if group else None,
        families=tuple(families),
        policy=policy,
        requested=requested,
        requested_path=requested_path,
        share_key=str(share_key) if share_key else None,
        share_scope=scope,
        ports=frozenset(ports),
        current=current,
        allocated_from=allocated,
        problems=tuple(problems),
    )


def _requested(
    annotations: Mapping[str, Any], spec: Mapping[str, Any], error: Callable[[str, str], None]
) -> tuple[IPAddress, ...]:
    text = annotations.get(ADDRESSES)
    legacy = spec.get("loadBalancerIP")
    path = _annotation_path(ADDRESSES)
    found: list[IPAddress] = []
    if text:
        for part in re.split(r"[\s,]+", str(text).strip()):
            try:
                address = parse_ip(part)
            except (TypeError, ValueError):
                error(
                    path,
                    f"{part!r} is not an IP address; expected at most one IPv4 and one IPv6 "
                    "address, separated by a comma (192.0.2.7,2001:db8::7)",
                )
                continue
            if any(a.version == address.version for a in found):
                error(path, f"{text!r} names two addresses of one family; at most one of each")
                continue
            found.append(address)
    if legacy:
        try:
            address = parse_ip(legacy)
        except (TypeError, ValueError):
            error("spec.loadBalancerIP", f"{legacy!r} is not an IP address")
            return tuple(found)
        if text and address not in found:
            error(
                "spec.loadBalancerIP",
                f"{legacy} (deprecated) differs from the {ADDRESSES} annotation ({text}); "
                f"set only the annotation",
            )
        elif not text:
            found.append(address)
    return tuple(found)


def ingress(obj: Mapping[str, Any], addresses: tuple[IPAddress, ...]) -> list[dict[str, Any]]:
    """status.loadBalancer.ingress for ``addresses``, in their order; the other fields of
    an entry that already named one of them (ipMode, ports) are kept."""
    old: dict[str, Mapping[str, Any]] = {}
    for item in list_at(mapping_at(mapping_at(obj, "status"), "loadBalancer"), "ingress"):
        if isinstance(item, Mapping) and isinstance(item.get("ip"), str):
            old.setdefault(item["ip"], item)
    return [{**old.get(str(a), {}), "ip": str(a)} for a in addresses]


def with_allocation(
    obj: Mapping[str, Any], addresses: tuple[IPAddress, ...], allocated_from: str | None
) -> dict[str, Any]:
    """A copy of the Service dict with these addresses and allocated-from annotation."""
    out = copy.deepcopy(dict(obj))
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    if allocated_from is None:
        annotations.pop(ALLOCATED_FROM, None)
    else:
        annotations[ALLOCATED_FROM] = allocated_from
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
