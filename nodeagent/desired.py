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
from operator import itemgetter
from typing import Any, cast

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
    wanted: dict[IPAddress, _Wanted] = {}
    """Address -> how it goes on kube-lb0 (one dict: hashing an address is not free)."""
    problems: list[Problem] = []
    pools = PoolIndex(model.service_groups)
    selected: dict[ObjectRef, bool] = {}
    """ServiceGroup -> announced from this node (routed, and its selector takes it)."""
    for service in sorted(services, key=_ref_key):
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
            entry = wanted.get(address)
            if entry is not None:
                entry.refs.append(service.ref)
                entry.prefixlen = min(entry.prefixlen, prefixlen)
                before = entry.weight
                entry.weight = None if before is None or weight is None else before + weight
                if bgp_class is not entry.bgp_class or entry.mixed is not None:
                    entry.mixed = entry.mixed or {entry.bgp_class}
                    entry.mixed.add(bgp_class)
            else:
                wanted[address] = _Wanted(prefixlen, group.ref, [service.ref], weight, bgp_class)
    # In (version, network, prefix length, address) order, from integers: comparing
    # ipaddress objects, or making their networks, is what a pass would spend its time on.
    make = _Interfaces()
    order = sorted(
        ((_order(address, w.prefixlen), address, w) for address, w in wanted.items()),
        key=itemgetter(0),  # unique: one entry per address
    )
    announcements = tuple(
        Announcement(
            interface=make(address, w.prefixlen),
            group=w.group,
            services=tuple(sorted(w.refs, key=_key_of_ref)) if len(w.refs) > 1 else (w.refs[0],),
            weight=min(w.weight or 0, MAX_WEIGHT) if w.prefixlen == address.max_prefixlen else 0,
            bgp_class=_agreed(address, w.bgp_class, w.mixed, w.refs, problems),
        )
        for _, address, w in order
    )
    return DesiredState(announcements=announcements, problems=tuple(problems))


class _Wanted:
    """One address of the pass: its prefix length (the shortest its Services want), group,
    Services, summed weight (None once a Service without weighting shares it), the class
    its first Service asks for and, when its Services disagree, the classes they ask for."""

    __slots__ = ("bgp_class", "group", "mixed", "prefixlen", "refs", "weight")

    def __init__(
        self,
        prefixlen: int,
        group: ObjectRef,
        refs: list[ObjectRef],
        weight: int | None,
        bgp_class: BgpClass | None,
    ) -> None:
        self.prefixlen = prefixlen
        self.group = group
        self.refs = refs
        self.weight = weight
        self.bgp_class = bgp_class
        self.mixed: set[BgpClass | None] | None = None


def _key_of_ref(ref: ObjectRef) -> tuple[str, str, str]:
    return (ref.kind, ref.namespace, ref.name)  # ObjectRef's order, compared in C


def _ref_key(service: Service) -> tuple[str, str, str]:
    return _key_of_ref(service.ref)


def _order(address: IPAddress, prefixlen: int) -> tuple[int, int, int, int]:
    """The order of ``(interface.version, interface)`` (network first, then the address)."""
    value, bits = int(address), address.max_prefixlen
    return (address.version, value >> (bits - prefixlen) << (bits - prefixlen), prefixlen, value)


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


class _Interfaces:
    """Makes ``ipaddress`` interfaces, each network made once: most addresses of a pass
    share their pool's aggregate, and making the network is most of what making an
    interface costs (2 us of 2.2). The interface is then the standard library's own
    object with the attributes its constructor sets, checked against the constructor
    once per process (:func:`_fast_interfaces_work`); should they ever differ (another
    Python), every interface comes from the constructor."""

    def __init__(self) -> None:
        self.networks: dict[tuple[int, int, int], Any] = {}

    def __call__(self, address: IPAddress, prefixlen: int) -> Interface:
        if not _FAST:
            return _interface(address, prefixlen)
        return _fast_interface(self.networks, address, prefixlen)


def _fast_interface(
    networks: dict[tuple[int, int, int], Any], address: IPAddress, prefixlen: int
) -> Interface:
    value, bits = int(address), address.max_prefixlen
    key = (address.version, value >> (bits - prefixlen), prefixlen)
    network = networks.get(key)
    v4 = address.version == 4
    if network is None:
        kind = ipaddress.IPv4Network if v4 else ipaddress.IPv6Network
        network = networks[key] = kind((key[1] << (bits - prefixlen), prefixlen))
    iface: Any = object.__new__(ipaddress.IPv4Interface if v4 else ipaddress.IPv6Interface)
    iface._ip = value
    if not v4:
        iface._scope_id = None
    iface.network = network
    iface.netmask = network.netmask
    iface._prefixlen = prefixlen
    return cast(Interface, iface)


def _fast_interfaces_work() -> bool:
    """Whether :func:`_fast_interface` makes what the constructor makes, here."""
    samples = [("192.0.2.77", 24), ("198.51.100.1", 32), ("2001:db8::5", 64), ("fd00::1", 128)]
    for text, prefixlen in samples:
        address = ipaddress.ip_address(text)
        fast = _fast_interface({}, address, prefixlen)
        slow = _interface(address, prefixlen)
        if (
            fast != slow
            or hash(fast) != hash(slow)
            or str(fast) != str(slow)
            or fast.network != slow.network
            or fast.ip != slow.ip
            or type(fast) is not type(slow)
            or getattr(fast, "__dict__", None) != getattr(slow, "__dict__", None)
        ):
            return False
    return True


_FAST = _fast_interfaces_work()
