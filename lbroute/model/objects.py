"""The Kubernetes core objects the agent reads: Services and EndpointSlices.

Converted once, where they enter, into frozen dataclasses on ``ipaddress`` types. A
Service that is not of type LoadBalancer, or belongs to another LoadBalancer class, is
not ours and is dropped here. Unusable values (an ingress IP that is not an address)
are problems naming the Service and the field, never exceptions.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lbroute.model.api import LOADBALANCER_CLASS
from lbroute.model.errors import ObjectRef, Problem, Severity
from lbroute.model.fields import IPAddress, parse_ip

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True, kw_only=True)
class Service:
    ref: ObjectRef
    local: bool
    """externalTrafficPolicy: Local."""
    addresses: tuple[IPAddress, ...]
    """status.loadBalancer.ingress IPs, in order."""
    group: str | None = None
    """The lbroute.io/service-group annotation."""


@dataclass(frozen=True, kw_only=True)
class Endpoints:
    """Nodes with a ready endpoint of one Service, merged over its EndpointSlices."""

    service: ObjectRef
    ready_nodes: frozenset[str]


def mapping_at(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def list_at(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    return value if isinstance(value, list) else []


def _ref(obj: Mapping[str, Any], kind: str) -> ObjectRef:
    meta = mapping_at(obj, "metadata")
    return ObjectRef(
        kind=kind,
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or "<no name>"),
    )


def parse_service(
    obj: Mapping[str, Any], *, default_class: bool, problems: list[Problem]
) -> Service | None:
    """The Service if lbroute announces it, else None.

    Ours: type LoadBalancer with loadBalancerClass ``lbroute.io/lbroute``, or with no
    class when this agent is the cluster's default LoadBalancer implementation.
    """
    spec = mapping_at(obj, "spec")
    if spec.get("type") != "LoadBalancer":
        return None
    cls = spec.get("loadBalancerClass")
    if cls != LOADBALANCER_CLASS and not (cls is None and default_class):
        return None
    ref = _ref(obj, "Service")
    status = mapping_at(obj, "status")
    lb = mapping_at(status, "loadBalancer")
    ingress = list_at(lb, "ingress")
    addresses: list[IPAddress] = []
    for i, item in enumerate(ingress):
        ip = item.get("ip") if isinstance(item, Mapping) else None
        if ip is None:
            continue  # hostname-only ingress: nothing to announce
        try:
            address = parse_ip(ip)
        except (TypeError, ValueError):
            problems.append(
                Problem(
                    severity=Severity.ERROR,
                    ref=ref,
                    path=f"status.loadBalancer.ingress[{i}].ip",
                    message=f"{ip!r} is not an IP address; it is not announced",
                )
            )
            continue
        if address not in addresses:
            addresses.append(address)
    meta = mapping_at(obj, "metadata")
    annotations = mapping_at(meta, "annotations")
    group = annotations.get("lbroute.io/service-group")
    return Service(
        ref=ref,
        local=spec.get("externalTrafficPolicy") == "Local",
        addresses=tuple(addresses),
        group=str(group) if group else None,
    )


def ready_nodes(slices: Iterable[Mapping[str, Any]]) -> dict[ObjectRef, frozenset[str]]:
    """Service -> nodes that have at least one ready endpoint of it.

    An endpoint counts as ready when ``conditions.ready`` is true or unset (the
    EndpointSlice API says unset means ready).
    """
    found: dict[ObjectRef, set[str]] = {}
    for obj in slices:
        meta = mapping_at(obj, "metadata")
        labels = mapping_at(meta, "labels")
        service = labels.get(SERVICE_NAME_LABEL)
        if not service:
            continue
        ref = ObjectRef(
            kind="Service", namespace=str(meta.get("namespace") or "default"), name=str(service)
        )
        nodes = found.setdefault(ref, set())
        for ep in list_at(obj, "endpoints"):
            if not isinstance(ep, Mapping):
                continue
            conditions = mapping_at(ep, "conditions")
            if conditions.get("ready") is False:
                continue
            node = ep.get("nodeName")
            if isinstance(node, str) and node:
                nodes.add(node)
    return {ref: frozenset(nodes) for ref, nodes in found.items()}


def split_objects(
    objects: Iterable[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(Services, EndpointSlices, everything else) from a batch of objects."""
    services, slices, rest = [], [], []
    for obj in objects:
        kind = obj.get("kind")
        if kind == "Service" and obj.get("apiVersion") == "v1":
            services.append(obj)
        elif kind == "EndpointSlice" and str(obj.get("apiVersion", "")).startswith(
            "discovery.k8s.io/"
        ):
            slices.append(obj)
        else:
            rest.append(obj)
    return services, slices, rest


def host_interface(address: IPAddress) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return ipaddress.ip_interface(f"{address}/{address.max_prefixlen}")
