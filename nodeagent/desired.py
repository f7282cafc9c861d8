"""What one node should announce: a pure function of the objects.

For each Service address lbroute announces, the ServiceGroup is the one whose pool
holds the address (pools never overlap). The address goes on kube-lb0:

- ETP Cluster: as ``IP/aggregation`` on every node the ServiceGroup selects, so the
  kernel's connected route is the pool's aggregate;
- ETP Local: only on nodes with a ready local endpoint, as a host prefix (/32, /128),
  so an aggregate never attracts traffic to a node without endpoints;
- ETP Cluster in a ServiceGroup with ``withdrawWithoutEndpoints``: on every node the
  group selects while some node has a ready endpoint of the Service, and on none while
  no node has (a warning says why: the status and ``lbroute status`` show it); as a
  host prefix, like ETP Local, since an aggregate that other Services keep announcing
  would hide the withdrawal. Opt-in: users failing over to another site that announces
  the same address want it; a single site would rather keep the address routed.

Services that share an address (allow-shared-ip) share one entry; if any of them
wants the aggregate, the aggregate is used (it covers the host route as well).

Weights (``bgp.weightByEndpoints``, docs/weighted-ecmp.md): an ETP Local Service's host
prefix in such a group has the weight of the node's ready endpoints of it, summed over
the Services sharing the address, at most ``MAX_WEIGHT``. An address that any Service
without weighting shares, or an aggregate, has weight 0 (no link-bandwidth community).

BGP classes (``bgp.classes``, docs/bgp-classes.md): a Service whose
``lbroute.io/bgp-class`` names a class of its group has its address announced as a host
prefix (an aggregate cannot carry one Service's attributes) with that class's number.
Services sharing an address must agree on the class (no class being a choice too);
when they do not, or the group does not declare the class, the address has the group's
default policy and a warning says why.

Addresses of ServiceGroups with ``announce: local`` never go on kube-lb0, whatever the
ETP, so neither the kernel nor the router ever routes or announces them: they go on one
elected node's NIC (nodeagent.local) and are answered by ARP/NDP there.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lbroute.model.api import MAX_WEIGHT, Announce, BgpClass, Model, Pool, ServiceGroup
from lbroute.model.errors import ObjectRef, Problem, Severity
from lbroute.model.fields import IPAddress
from lbroute.model.service import Service, annotation_path, unknown_class
from lbroute.model.vocabulary import BGP_CLASS_ANNOTATION

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True, kw_only=True)
class Announcement:
    """One address on kube-lb0 and why it is there."""

    interface: Interface
    group: ObjectRef
    services: tuple[ObjectRef, ...]
    weight: int = 0
    """Ready endpoints on this node behind a weighted host prefix (0: not weighted)."""
    bgp_class: BgpClass | None = None
    """The BGP class of the Services on this host prefix (None: the group's default)."""


@dataclass(frozen=True, kw_only=True)
class DesiredState:
    announcements: tuple[Announcement, ...]
    problems: tuple[Problem, ...] = ()

    @property
    def interfaces(self) -> frozenset[Interface]:
        return frozenset(a.interface for a in self.announcements)

    @property
    def weights(self) -> dict[Interface, int]:
        """The weighted addresses and their weights (the others have none)."""
        return {a.interface: a.weight for a in self.announcements if a.weight}

    @property
    def classes(self) -> dict[Interface, int]:
        """The addresses with a BGP class and its number (the others have none)."""
        return {a.interface: a.bgp_class.index for a in self.announcements if a.bgp_class}

    def by_service(self) -> dict[ObjectRef, tuple[Interface, ...]]:
        """Service -> the addresses announced for it, in announcement order (one pass:
        a Service per address at 10,000 Services must not mean 10,000 scans)."""
        found: dict[ObjectRef, list[Interface]] = {}
        for a in self.announcements:
            for service in a.services:
                found.setdefault(service, []).append(a.interface)
        return {service: tuple(interfaces) for service, interfaces in found.items()}


class PoolIndex:
    """Finds the pool that holds an address by binary search over the pools sorted by
    their first address (pools never overlap; when a hand-made model has overlapping
    pools, the first in the model's order wins, as a scan would find it)."""

    def __init__(self, groups: Iterable[ServiceGroup]) -> None:
        entries: dict[int, list[tuple[int, int, int, ServiceGroup, Pool]]] = {4: [], 6: []}
        order = 0
        for group in groups:
            for pool in group.pools:
                version = 4 if pool.family.value == "ipv4" else 6
                entries[version].append((int(pool.first), int(pool.last), order, group, pool))
                order += 1
        self._pools = {v: sorted(e, key=lambda t: (t[0], t[2])) for v, e in entries.items()}
        self._firsts = {v: [e[0] for e in pools] for v, pools in self._pools.items()}
        self._overlap = any(
            a[1] >= b[0] for pools in self._pools.values() for a, b in itertools.pairwise(pools)
        )

    def find(self, address: IPAddress) -> tuple[ServiceGroup, Pool] | None:
        value, pools = int(address), self._pools[address.version]
        if self._overlap:
            found = [e for e in pools if e[0] <= value <= e[1]]
            best = min(found, key=lambda e: e[2], default=None)
            return None if best is None else (best[3], best[4])
        i = bisect.bisect_right(self._firsts[address.version], value) - 1
        if i >= 0 and value <= pools[i][1]:
            return pools[i][3], pools[i][4]
        return None


def desired_state(
    model: Model,
    services: Iterable[Service],
    ready: Mapping[ObjectRef, frozenset[str]],
    node_name: str,
    counts: Mapping[ObjectRef, Mapping[str, int]] | None = None,
) -> DesiredState:
    """The addresses ``node_name`` puts on kube-lb0, with the reason for each;
    ``counts`` (Service -> node -> ready endpoints) gives weighted groups their weights."""
    node = model.node(node_name)
    labels = dict(node.labels) if node is not None else {}
    wanted: dict[IPAddress, tuple[int, ObjectRef, list[ObjectRef]]] = {}
    weights: dict[IPAddress, int | None] = {}
    """Address -> summed weight; None once a Service without weighting shares it."""
    classes: dict[IPAddress, BgpClass | None] = {}
    """Address -> the class its first Service asks for (None: the group's default)."""
    mixed: dict[IPAddress, set[BgpClass | None]] = {}
    """Addresses whose Services ask for different classes -> those classes."""
    problems: list[Problem] = []
    pools = PoolIndex(model.service_groups)
    selected: dict[ObjectRef, bool] = {}
    """ServiceGroup -> announced from this node (routed, and its selector takes it)."""
    for service in sorted(services, key=lambda s: s.ref):
        for address in service.addresses:
            found = pools.find(address)
            if found is None:
                problems.append(
                    Problem(
                        severity=Severity.WARNING,
                        ref=service.ref,
                        path="status.loadBalancer.ingress",
                        message=f"{address} is in no pool of a valid ServiceGroup; "
                        "it is not announced",
                    )
                )
                continue
            group, pool = found
            here = selected.get(group.ref)
            if here is None:
                here = selected[group.ref] = (
                    group.announce is Announce.ROUTED and group.node_selector.matches(labels)
                )
            if not here:
                continue
            prefixlen: int
            weight: int | None = None
            bgp_class = _class_of(service, group, problems)
            if service.local:
                if node_name not in ready.get(service.ref, frozenset()):
                    continue
                prefixlen = address.max_prefixlen
                if group.bgp.weight_by_endpoints and counts is not None:
                    weight = max(1, counts.get(service.ref, {}).get(node_name, 0))
            elif group.withdraw_without_endpoints:
                if not ready.get(service.ref):
                    problems.append(
                        Problem(
                            severity=Severity.WARNING,
                            ref=service.ref,
                            path="status.loadBalancer.ingress",
                            message=f"{address} is withdrawn: no ready endpoint in the "
                            f"cluster (ServiceGroup {group.ref.namespace}/{group.ref.name} "
                            "sets withdrawWithoutEndpoints)",
                        )
                    )
                    continue
                prefixlen = address.max_prefixlen
            elif bgp_class is not None:
                prefixlen = address.max_prefixlen
            else:
                prefixlen = pool.aggregation
            if address in wanted:
                old_len, old_group, refs = wanted[address]
                refs.append(service.ref)
                wanted[address] = (min(old_len, prefixlen), old_group, refs)
                before = weights[address]
                weights[address] = None if before is None or weight is None else before + weight
                if bgp_class is not classes[address] or address in mixed:
                    mixed.setdefault(address, {classes[address]}).add(bgp_class)
            else:
                wanted[address] = (prefixlen, group.ref, [service.ref])
                weights[address] = weight
                classes[address] = bgp_class
    announcements = tuple(
        sorted(
            (
                Announcement(
                    interface=_interface(address, prefixlen),
                    group=group_ref,
                    services=tuple(sorted(refs)),
                    weight=min(weights[address] or 0, MAX_WEIGHT)
                    if prefixlen == address.max_prefixlen
                    else 0,
                    bgp_class=_agreed(
                        address, classes[address], mixed.get(address), refs, problems
                    ),
                )
                for address, (prefixlen, group_ref, refs) in wanted.items()
            ),
            key=lambda a: _interface_order(a.interface),
        )
    )
    return DesiredState(announcements=announcements, problems=tuple(problems))


def _class_of(service: Service, group: ServiceGroup, problems: list[Problem]) -> BgpClass | None:
    """The class ``service`` asks for, if its group declares it; else a warning."""
    if service.bgp_class is None:
        return None
    unknown = unknown_class(service, group)
    if unknown is None:
        return group.bgp.bgp_class(service.bgp_class)
    if not problems or problems[-1] != unknown:  # once for all the Service's addresses
        problems.append(unknown)
    return None


def _agreed(
    address: IPAddress,
    first: BgpClass | None,
    mixed: set[BgpClass | None] | None,
    refs: list[ObjectRef],
    problems: list[Problem],
) -> BgpClass | None:
    """The class of an address: its Services' when they agree (``mixed`` is None), else
    none, with a warning for each of them."""
    if mixed is None:
        return first
    names = sorted(c.name if c else "(none)" for c in mixed)
    problems.extend(
        Problem(
            severity=Severity.WARNING,
            ref=ref,
            path=annotation_path(BGP_CLASS_ANNOTATION),
            message=f"the Services sharing {address} ask for different BGP classes "
            f"({', '.join(names)}); it is announced with the group's default policy",
        )
        for ref in sorted(refs)
    )
    return None


def _interface(address: IPAddress, prefixlen: int) -> Interface:
    if address.version == 4:
        return ipaddress.IPv4Interface((int(address), prefixlen))
    return ipaddress.IPv6Interface((int(address), prefixlen))


def _interface_order(iface: Interface) -> tuple[int, int, int, int]:
    """The order of ``(iface.version, iface)`` (network first, then the address), as
    integers: comparing ``ipaddress`` objects is slow."""
    network = iface.network
    return (iface.version, int(network.network_address), network.prefixlen, int(iface.ip))
