"""Kubernetes Services as lbroute reads them: one reading for the agent and the allocator.

A Service dict becomes a frozen :class:`Service` on ``ipaddress`` types, once, where it
enters. It is lbroute's (``ours``) when it is of type LoadBalancer with loadBalancerClass
``lbroute.io/lbroute``, or with no class where lbroute is the cluster's default
LoadBalancer implementation. Of a Service that is not ours only what names it and the
addresses it holds are read (the allocator releases what it once gave); of ours,
everything lbroute acts on: the ServiceGroup it names, its traffic policy, its IP
families, the addresses it requests and its sharing key.

Unusable values are problems naming the Service and the field, never exceptions. Those
of the request (IP families, family policy, requested addresses) are kept on
:attr:`Service.problems` for the allocator to report. An ingress entry that is not an IP
is left out, and reported to a caller that passes a problem list: the agent, which would
otherwise announce it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from lbroute.model.common import Family
from lbroute.model.errors import ObjectRef, Problem, Severity
from lbroute.model.fields import IPAddress, list_at, mapping_at, parse_ip
from lbroute.model.vocabulary import (
    ADDRESSES_ANNOTATION,
    LOADBALANCER_CLASS,
    SERVICE_GROUP_ANNOTATION,
    SHARED_ANNOTATION,
)

_FAMILIES = {"IPv4": Family.IPV4, "IPv6": Family.IPV6}


class Policy(StrEnum):
    """spec.ipFamilyPolicy."""

    SINGLE = "SingleStack"
    PREFER = "PreferDualStack"
    REQUIRE = "RequireDualStack"


def annotation_path(key: str) -> str:
    """The field path of one annotation, for messages."""
    return f"metadata.annotations[{key}]"


@dataclass(frozen=True, kw_only=True)
class Service:
    """One Service: what names it, whether it is lbroute's, what it holds and asks for."""

    ref: ObjectRef
    uid: str = ""
    created: str = ""
    """creationTimestamp: of two Services that claim one address, the older keeps it."""
    ours: bool = True
    """type LoadBalancer of lbroute's class (or of no class when lbroute is the default)."""
    local: bool = False
    """externalTrafficPolicy: Local."""
    group: str | None = None
    """The lbroute.io/service-group annotation."""
    addresses: tuple[IPAddress, ...] = ()
    """status.loadBalancer.ingress IPs, in order, each once."""
    families: tuple[Family, ...] = ()
    """spec.ipFamilies in order (the first is the primary family); () when unset."""
    policy: Policy | None = None
    requested: tuple[IPAddress, ...] = ()
    """lbroute.io/addresses, else spec.loadBalancerIP; at most one per family."""
    requested_path: str = annotation_path(ADDRESSES_ANNOTATION)
    """Where the request came from, for messages."""
    share_key: str | None = None
    """lbroute.io/allow-shared-ip (sharing is among Services of one namespace)."""
    share_scope: tuple[str, ...] = ("Cluster",)
    """Services that share an address must agree on this: ETP and, for Local, the
    selector (an address announced only where one Service has endpoints must not
    carry another Service's traffic)."""
    ports: frozenset[tuple[str, int]] = frozenset()
    """(protocol, port) pairs of spec.ports."""
    problems: tuple[Problem, ...] = field(default=())
    """What is unusable in the request (families, family policy, requested addresses)."""

    @property
    def share(self) -> tuple[str, str] | None:
        return (self.ref.namespace, self.share_key) if self.share_key else None

    @classmethod
    def read(
        cls,
        obj: Mapping[str, Any],
        *,
        default_class: bool,
        problems: list[Problem] | None = None,
        **extra: Any,
    ) -> Self:
        """Read one Service dict. Ingress entries of ours that are not IPs are reported
        in ``problems`` when given; ``extra`` are the fields a subclass adds."""
        meta = mapping_at(obj, "metadata")
        spec = mapping_at(obj, "spec")
        ref = _ref(meta)
        uid = str(meta.get("uid") or "")
        created = str(meta.get("creationTimestamp") or "")
        ours = _ours(spec, default_class)
        addresses = ingress_ips(obj, problems if ours else None)
        if not ours:
            return cls(ref=ref, uid=uid, created=created, ours=False, addresses=addresses, **extra)
        found: list[Problem] = []

        def error(path: str, message: str) -> None:
            found.append(Problem(severity=Severity.ERROR, ref=ref, path=path, message=message))

        annotations = mapping_at(meta, "annotations")
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
            if spec.get("loadBalancerIP") and not annotations.get(ADDRESSES_ANNOTATION)
            else annotation_path(ADDRESSES_ANNOTATION)
        )
        ports: set[tuple[str, int]] = set()
        for item in list_at(spec, "ports"):
            if isinstance(item, Mapping) and isinstance(item.get("port"), int):
                ports.add((str(item.get("protocol") or "TCP"), int(item["port"])))
        share_key = annotations.get(SHARED_ANNOTATION)
        local = spec.get("externalTrafficPolicy") == "Local"
        scope: tuple[str, ...] = ("Cluster",)
        if local:
            selector = mapping_at(spec, "selector")
            scope = ("Local", *(f"{k}={v}" for k, v in sorted(selector.items())))
        group = annotations.get(SERVICE_GROUP_ANNOTATION)
        return cls(
            ref=ref,
            uid=uid,
            created=created,
            ours=True,
            local=local,
            group=str(group) if group else None,
            addresses=addresses,
            families=tuple(families),
            policy=policy,
            requested=requested,
            requested_path=requested_path,
            share_key=str(share_key) if share_key else None,
            share_scope=scope,
            ports=frozenset(ports),
            problems=tuple(found),
            **extra,
        )


def parse_service(
    obj: Mapping[str, Any], *, default_class: bool, problems: list[Problem] | None = None
) -> Service | None:
    """The Service if it is lbroute's, else None; see :meth:`Service.read`."""
    service = Service.read(obj, default_class=default_class, problems=problems)
    return service if service.ours else None


def service_ref(obj: Mapping[str, Any]) -> ObjectRef:
    """The Service's namespace and name (``default`` and ``<no name>`` when unset)."""
    return _ref(mapping_at(obj, "metadata"))


def _ref(meta: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef(
        kind="Service",
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or "<no name>"),
    )


def is_ours(obj: Mapping[str, Any], *, default_class: bool) -> bool:
    """Type LoadBalancer of lbroute's class, or of no class when lbroute is the default."""
    return _ours(mapping_at(obj, "spec"), default_class)


def _ours(spec: Mapping[str, Any], default_class: bool) -> bool:
    if spec.get("type") != "LoadBalancer":
        return False
    cls = spec.get("loadBalancerClass")
    return cls == LOADBALANCER_CLASS or (cls is None and default_class)


def service_annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping_at(mapping_at(obj, "metadata"), "annotations")


def ingress_ips(
    obj: Mapping[str, Any], problems: list[Problem] | None = None
) -> tuple[IPAddress, ...]:
    """The IPs of status.loadBalancer.ingress, in order, each once. Entries that are not
    IPs are left out, and reported in ``problems`` when given."""
    found: list[IPAddress] = []
    ingress = list_at(mapping_at(mapping_at(obj, "status"), "loadBalancer"), "ingress")
    for i, item in enumerate(ingress):
        ip = item.get("ip") if isinstance(item, Mapping) else None
        if ip is None:
            continue  # hostname-only ingress: nothing to announce
        try:
            address = parse_ip(ip)
        except (TypeError, ValueError):
            if problems is not None:
                problems.append(
                    Problem(
                        severity=Severity.ERROR,
                        ref=service_ref(obj),
                        path=f"status.loadBalancer.ingress[{i}].ip",
                        message=f"{ip!r} is not an IP address; it is not announced",
                    )
                )
            continue
        if address not in found:
            found.append(address)
    return tuple(found)


def _requested(
    annotations: Mapping[str, Any], spec: Mapping[str, Any], error: Callable[[str, str], None]
) -> tuple[IPAddress, ...]:
    text = annotations.get(ADDRESSES_ANNOTATION)
    legacy = spec.get("loadBalancerIP")
    path = annotation_path(ADDRESSES_ANNOTATION)
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
                f"{legacy} (deprecated) differs from the {ADDRESSES_ANNOTATION} annotation "
                f"({text}); set only the annotation",
            )
        elif not text:
            found.append(address)
    return tuple(found)
