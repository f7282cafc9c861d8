"""Kubernetes Services as lbroute reads them: one reading for the agent and the allocator.

A Service dict becomes a frozen :class:`Service` on ``ipaddress`` types, once, where it
enters. It is lbroute's (``ours``) when it is of type LoadBalancer with loadBalancerClass
``lbroute.io/lbroute``, or with no class where lbroute is the cluster's default
LoadBalancer implementation. Of a Service that is not ours only what names it and the
addresses it holds are read (the allocator releases what it once gave); of ours,
everything lbroute acts on: the ServiceGroup it names, its traffic policy, its IP
families, the addresses it requests and its sharing key.

MetalLB's and PureLB's annotations for the group (a MetalLB address pool names the
ServiceGroup of the same name), the requested addresses and the sharing key are read as
aliases of lbroute's own when it is not set (``FOREIGN_ALIASES``, in order of
precedence), so that a Service moved in from either keeps its address; what the other
tool wrote itself is not read. Every one present is kept on :attr:`Service.foreign` with
what was made of it, for the allocator and ``lbroute allocate`` to report. A foreign
annotation is checked as lbroute's own would be, its problems naming it.

Unusable values are problems naming the Service and the field, never exceptions. Those
of the request (its name, IP families, family policy, requested addresses, group and
sharing key) are kept on :attr:`Service.problems` for the allocator to report; the
allocator then changes nothing for that Service. An ingress entry that is not an IP is
left out, and reported to a caller that passes a problem list: the agent, which would
otherwise announce it.

A Service is written by a tenant, so what one costs is bounded whatever it holds: at most
one problem per field, each value quoted and cut to a short prefix, and a requested-address
annotation of more than :data:`MAX_REQUESTED` entries refused whole without reading them
(a Service has at most one address per family). A request with any unusable entry is
refused whole, never partly applied.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from lbroute.model.common import Family
from lbroute.model.errors import ObjectRef, Problem, Severity, quote
from lbroute.model.fields import IPAddress, list_at, mapping_at, name_text, parse_ip
from lbroute.model.servicegroup import ServiceGroup
from lbroute.model.vocabulary import (
    ADDRESSES_ANNOTATION,
    BGP_CLASS_ANNOTATION,
    FOREIGN_ALIASES,
    FOREIGN_KEYS,
    FOREIGN_RECORDS,
    LOADBALANCER_CLASS,
    SERVICE_GROUP_ANNOTATION,
    SHARED_ANNOTATION,
)

_FAMILIES = {"IPv4": Family.IPV4, "IPv6": Family.IPV6}
_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})
"""What spec.ports[].protocol may be; a port of any other is not read."""
MAX_REQUESTED = 2
"""Entries lbroute.io/addresses may name: one address per family."""
_SEPARATOR = re.compile(r"[\s,]+")
# Service names are DNS-1035 labels, namespaces DNS-1123 labels.
_SERVICE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_KEY_MAX = 253
"""The longest service-group or allow-shared-ip annotation value used."""
_NO_PORTS: frozenset[tuple[str, int]] = frozenset()


class Policy(StrEnum):
    """spec.ipFamilyPolicy."""

    SINGLE = "SingleStack"
    PREFER = "PreferDualStack"
    REQUIRE = "RequireDualStack"


_POLICIES = {p.value: p for p in Policy}


def annotation_path(key: str) -> str:
    """The field path of one annotation, for messages."""
    return f"metadata.annotations[{key}]"


_ADDRESSES_PATH = annotation_path(ADDRESSES_ANNOTATION)
_GROUP_PATH = annotation_path(SERVICE_GROUP_ANNOTATION)
_OWN_KEYS: Mapping[str, str] = {
    k: k for k in (ADDRESSES_ANNOTATION, SHARED_ANNOTATION, SERVICE_GROUP_ANNOTATION)
}
"""Each of lbroute's annotations -> the one read for it, when no foreign alias is set."""
_VALUE_SHOWN = 80
"""The longest part of a foreign annotation's value a report quotes."""


@dataclass(frozen=True, kw_only=True)
class Foreign:
    """A MetalLB or PureLB annotation on one of lbroute's Services, and what lbroute made
    of it: read as its own (``reads_as``), ignored because another annotation of the same
    meaning wins (``winner``), or a record the other tool wrote (neither)."""

    key: str
    value: str
    reads_as: str | None = None
    """lbroute's annotation it stands for; None for a record the other tool wrote."""
    winner: str | None = None
    """The annotation that wins over it (lbroute's own, or a foreign one before it)."""
    conflict: bool = False
    """The winner says something else: a warning."""

    @property
    def honoured(self) -> bool:
        return self.reads_as is not None and self.winner is None

    @property
    def message(self) -> str:
        """What lbroute made of it, for an Event and for ``lbroute allocate``."""
        value = quote(self.value, _VALUE_SHOWN)
        if self.reads_as is None:
            return (
                f"{annotation_path(self.key)}: {value} was written by another load balancer; "
                "not read (the address is kept when a ServiceGroup pool holds it)"
            )
        if self.winner is None:
            return (
                f"{annotation_path(self.key)}: {value} is read as {self.reads_as}; set that "
                "instead (lbroute convert renames it)"
            )
        if self.conflict:
            return (
                f"{annotation_path(self.key)}: {value} is ignored: {self.winner} is set too and "
                "says otherwise, and wins; remove one of them"
            )
        return (
            f"{annotation_path(self.key)}: {value} is ignored: {self.winner} says the same and "
            "wins; remove it"
        )


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
    requested_path: str = _ADDRESSES_PATH
    """Where the request came from, for messages."""
    group_path: str = _GROUP_PATH
    """Where the group came from (lbroute's annotation or a foreign alias), for messages."""
    share_key: str | None = None
    """lbroute.io/allow-shared-ip (sharing is among Services of one namespace)."""
    share_scope: tuple[str, ...] = ("Cluster",)
    """Services that share an address must agree on this: ETP and, for Local, the
    selector (an address announced only where one Service has endpoints must not
    carry another Service's traffic)."""
    ports: frozenset[tuple[str, int]] = frozenset()
    """(protocol, port) pairs of spec.ports."""
    bgp_class: str | None = None
    """lbroute.io/bgp-class, as written (cut to a bounded length): whether the group
    declares it is decided where the group is known, and an unknown one costs the Service
    nothing but its class (never its address)."""
    problems: tuple[Problem, ...] = field(default=())
    """What is unusable in the request (families, family policy, requested addresses)."""
    foreign: tuple[Foreign, ...] = ()
    """The MetalLB and PureLB annotations it carries, and what lbroute made of each."""

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
        in ``problems`` when given; ``extra`` are the fields a subclass adds.

        Every pass of the agent reads every Service, so a field that is absent costs one
        lookup and nothing more (``bench/kubelb_bench.py --python`` times it)."""
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

        _check_names(meta, error)
        annotations = mapping_at(meta, "annotations")
        families = _families(spec.get("ipFamilies"), error)
        value = spec.get("ipFamilyPolicy")
        policy = _POLICIES.get(value) if isinstance(value, str) else None
        if policy is None and value is not None:
            error(
                "spec.ipFamilyPolicy",
                f"{quote(value)} is not valid; expected one of "
                + ", ".join(p.value for p in Policy),
            )
        requested: tuple[IPAddress, ...] = ()
        requested_path = _ADDRESSES_PATH
        group_path = _GROUP_PATH
        share_key = group = None
        keys = _OWN_KEYS
        foreign: tuple[Foreign, ...] = ()
        if annotations and not FOREIGN_KEYS.isdisjoint(annotations):
            foreign, keys = _foreign(annotations)
        if annotations or spec.get("loadBalancerIP"):
            addresses_key = keys[ADDRESSES_ANNOTATION]
            requested = _requested(annotations, spec, error, addresses_key)
            if keys is not _OWN_KEYS:
                requested_path = annotation_path(addresses_key)
            if spec.get("loadBalancerIP") and not annotations.get(addresses_key):
                requested_path = "spec.loadBalancerIP"
        if annotations:
            share_key = _key(annotations, keys[SHARED_ANNOTATION], error)
        local = spec.get("externalTrafficPolicy") == "Local"
        scope: tuple[str, ...] = ("Cluster",)
        if local:
            selector = mapping_at(spec, "selector")
            scope = ("Local", *(f"{k}={v}" for k, v in sorted(selector.items())))
        bgp_class = None
        if annotations:
            group = _key(annotations, keys[SERVICE_GROUP_ANNOTATION], error)
            bgp_class = _class(annotations.get(BGP_CLASS_ANNOTATION))
            if keys is not _OWN_KEYS:
                group_path = annotation_path(keys[SERVICE_GROUP_ANNOTATION])
        return cls(
            ref=ref,
            uid=uid,
            created=created,
            ours=True,
            local=local,
            group=group,
            addresses=addresses,
            families=families,
            policy=policy,
            requested=requested,
            requested_path=requested_path,
            group_path=group_path,
            share_key=share_key,
            share_scope=scope,
            ports=_ports(spec.get("ports")),
            bgp_class=bgp_class,
            problems=tuple(found) if found else (),
            foreign=foreign,
            **extra,
        )


def _families(value: Any, error: Callable[[str, str], None]) -> tuple[Family, ...]:
    """spec.ipFamilies in order, each once; one problem for the entries that are not a
    family (a value that is not a list reads as unset)."""
    if not isinstance(value, list) or not value:
        return ()
    families: list[Family] = []
    bad: list[tuple[int, Any]] = []
    for i, item in enumerate(value):
        family = _FAMILIES.get(item) if isinstance(item, str) else None
        if family is None:
            bad.append((i, item))
        elif family not in families:
            families.append(family)
    if bad:
        i, item = bad[0]
        more = f" ({len(bad) - 1} more entries are not valid either)" if len(bad) > 1 else ""
        error(f"spec.ipFamilies[{i}]", f"{quote(item)} is not valid; expected IPv4 or IPv6{more}")
    return tuple(families)


def _ports(value: Any) -> frozenset[tuple[str, int]]:
    """(protocol, port) of each usable entry of spec.ports; the others are not read."""
    if not isinstance(value, list) or not value:
        return _NO_PORTS
    ports: set[tuple[str, int]] = set()
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("port"), int):
            continue
        protocol = item.get("protocol") or "TCP"
        if isinstance(protocol, str) and protocol in _PROTOCOLS:
            ports.add((protocol, int(item["port"])))
    return frozenset(ports)


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
        namespace=name_text(meta.get("namespace"), "default"),
        name=name_text(meta.get("name"), "<no name>"),
    )


def _check_names(meta: Mapping[str, Any], error: Callable[[str, str], None]) -> None:
    """The name and namespace as the API server has them (a manifest may hold anything)."""
    name, namespace = meta.get("name"), meta.get("namespace")
    if name is None or name == "":
        error("metadata.name", "is required")
    elif not isinstance(name, str) or not _SERVICE_NAME.fullmatch(name):
        error(
            "metadata.name",
            f"{quote(name)} is not a valid Service name; expected up to 63 lowercase letters, "
            "digits and '-', starting with a letter and ending with a letter or digit",
        )
    if namespace is not None and (
        not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace)
    ):
        error(
            "metadata.namespace",
            f"{quote(namespace)} is not a valid namespace; expected up to 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit",
        )


def _key(annotations: Mapping[str, Any], key: str, error: Callable[[str, str], None]) -> str | None:
    """A name-like annotation (the service group, the sharing key): None when unset."""
    value = annotations.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > _KEY_MAX or not value.isprintable():
        error(
            annotation_path(key),
            f"{quote(value)} is not valid; expected up to {_KEY_MAX} printable characters",
        )
        return None
    return value


def unknown_class(service: Service, group: ServiceGroup) -> Problem | None:
    """A warning when ``service`` asks for a BGP class that ``group`` does not declare
    (the agents log it, the allocator makes it an Event); None when it asks for none or
    for a declared one."""
    if service.bgp_class is None or group.bgp.bgp_class(service.bgp_class) is not None:
        return None
    declared = ", ".join(c.name for c in group.bgp.classes) or "none"
    return Problem(
        severity=Severity.WARNING,
        ref=service.ref,
        path=annotation_path(BGP_CLASS_ANNOTATION),
        message=f"{quote(service.bgp_class)} is not a BGP class of ServiceGroup "
        f"{group.ref.namespace}/{group.ref.name} (it declares: {declared}); the group's "
        "default policy applies",
    )


def _class(value: Any) -> str | None:
    """The bgp-class annotation as text, for the group to look up (anything else: a name
    no group declares, so the Service is told and keeps the group's default)."""
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else repr(value)
    return text[: _KEY_MAX + 1]


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
    bad: list[tuple[int, Any]] = []
    ingress = list_at(mapping_at(mapping_at(obj, "status"), "loadBalancer"), "ingress")
    for i, item in enumerate(ingress):
        ip = item.get("ip") if type(item) is dict or isinstance(item, Mapping) else None
        if ip is None:
            continue  # hostname-only ingress: nothing to announce
        try:
            found.append(parse_ip(ip))
        except (TypeError, ValueError):
            bad.append((i, ip))
    if len(found) > 1:  # hashing an address is slow: only when there is something to drop
        found = list(dict.fromkeys(found))
    if bad and problems is not None:
        i, ip = bad[0]
        more = f" ({len(bad) - 1} more entries are not IP addresses either)" if len(bad) > 1 else ""
        problems.append(
            Problem(
                severity=Severity.ERROR,
                ref=service_ref(obj),
                path=f"status.loadBalancer.ingress[{i}].ip",
                message=f"{quote(ip)} is not an IP address; it is not announced{more}",
            )
        )
    return tuple(found)


def _set(value: Any) -> bool:
    return value is not None and value != ""


def _same(a: Any, b: Any) -> bool:
    """Whether two annotation values say the same (addresses in any order, any spacing)."""
    if isinstance(a, str) and isinstance(b, str):
        return sorted(_SEPARATOR.split(a.strip())) == sorted(_SEPARATOR.split(b.strip()))
    return bool(a == b)


def _foreign(
    annotations: Mapping[str, Any],
) -> tuple[tuple[Foreign, ...], Mapping[str, str]]:
    """The MetalLB and PureLB annotations present, what each is read as, and which
    annotation is read for each of lbroute's: itself when it is set, else the first
    foreign alias that is set."""
    keys = dict(_OWN_KEYS)
    found: list[Foreign] = []
    for ours, aliases in FOREIGN_ALIASES.items():
        present = [k for k in aliases if _set(annotations.get(k))]
        if not present:
            continue
        winner = ours if _set(annotations.get(ours)) else present[0]
        keys[ours] = winner
        for key in present:
            value = annotations[key]
            text = value if isinstance(value, str) else quote(value)
            if key == winner:
                found.append(Foreign(key=key, value=text, reads_as=ours))
                continue
            conflict = not _same(value, annotations[winner])
            found.append(Foreign(key=key, value=text, reads_as=ours, winner=winner,
                                 conflict=conflict))  # fmt: skip
    for key in FOREIGN_RECORDS:
        value = annotations.get(key)
        if _set(value):
            found.append(Foreign(key=key, value=value if isinstance(value, str) else quote(value)))
    return tuple(found), keys


def _requested(
    annotations: Mapping[str, Any],
    spec: Mapping[str, Any],
    error: Callable[[str, str], None],
    key: str = ADDRESSES_ANNOTATION,
) -> tuple[IPAddress, ...]:
    """The requested addresses: the annotation ``key`` (lbroute.io/addresses or the foreign
    alias read for it), else spec.loadBalancerIP. An annotation with any unusable entry
    is refused whole: () and one problem."""
    text = annotations.get(key)
    legacy = spec.get("loadBalancerIP")
    found: tuple[IPAddress, ...] = ()
    if text:
        found = _addresses(text, annotation_path(key), error)
    if not legacy:
        return found
    path = "spec.loadBalancerIP"
    try:
        address = _address(legacy)
    except ValueError as exc:
        error(path, f"{quote(legacy)} {exc}")
        return found
    if not text:
        return (address,)
    if found and address not in found:
        error(
            path,
            f"{address} (deprecated) differs from the {key} annotation "
            f"({', '.join(map(str, found))}); set only the annotation",
        )
    return found


def _addresses(text: Any, path: str, error: Callable[[str, str], None]) -> tuple[IPAddress, ...]:
    expected = (
        "expected at most one IPv4 and one IPv6 address, separated by a comma "
        "(192.0.2.7,2001:db8::7)"
    )
    if not isinstance(text, str):
        error(path, f"must be a string, not {quote(text)}; {expected}")
        return ()
    parts = _SEPARATOR.split(text.strip(), maxsplit=MAX_REQUESTED)
    if len(parts) > MAX_REQUESTED:
        count = sum(1 for _ in _SEPARATOR.finditer(text.strip())) + 1
        error(path, f"{quote(text)} names {count} addresses; {expected}")
        return ()
    found: list[IPAddress] = []
    for part in parts:
        try:
            address = _address(part)
        except ValueError as exc:
            error(path, f"{quote(part)} {exc}; {expected}")
            return ()
        if any(a.version == address.version for a in found):
            error(
                path,
                f"{quote(text)} names two IPv{address.version} addresses; at most one of each "
                "family (192.0.2.7,2001:db8::7)",
            )
            return ()
        found.append(address)
    return tuple(found)


def _address(value: Any) -> IPAddress:
    """One requested address; ValueError says why it is not one."""
    try:
        address = parse_ip(value)
    except (TypeError, ValueError):
        raise ValueError("is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise ValueError(
            f"is an IPv4-mapped IPv6 address; write the IPv4 address {address.ipv4_mapped}"
        )
    return address
