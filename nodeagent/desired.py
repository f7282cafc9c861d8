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
import functools
import ipaddress
import itertools
from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
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


class AnnouncedByService(Mapping[ObjectRef, tuple[str, ...]]):
    """Service -> its addresses announced here, as ``address/prefixlen`` in the desired
    state's order: made from ``announcements`` (taken as they are, at C speed) when first
    read, by the reporter's thread and not the agent's loop (10,000 addresses took the
    loop 50 ms at each status write)."""

    def __init__(self, announcements: tuple[Announcement, ...]) -> None:
        self._announcements = announcements

    @functools.cached_property
    def _found(self) -> dict[ObjectRef, tuple[str, ...]]:
        ordered = tuple(sorted(self._announcements, key=announcement_order))
        return {
            ref: tuple(map(str, interfaces))
            for ref, interfaces in DesiredState(announcements=ordered).by_service().items()
        }

    def __getitem__(self, ref: ObjectRef) -> tuple[str, ...]:
        return self._found[ref]

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)


class LocalAnnounced(AbstractSet[ObjectRef]):
    """The Services of ``refs`` (ETP Local) among those ``announced``, made when first
    read (see :class:`AnnouncedByService`)."""

    def __init__(self, refs: tuple[ObjectRef, ...], announced: Mapping[ObjectRef, object]) -> None:
        self._refs, self._announced = refs, announced

    @functools.cached_property
    def _found(self) -> frozenset[ObjectRef]:
        return frozenset(r for r in self._refs if r in self._announced)

    def __contains__(self, ref: object) -> bool:
        return ref in self._found

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)


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
    tracker = DesiredTracker(node_name)
    tracker.rebuild(model, services, ready, counts)
    return tracker.state()


Change = tuple[Announcement | None, Announcement | None]
"""An address's announcement before and after an update (None: not announced)."""


class DesiredTracker:
    """:func:`desired_state` kept from pass to pass, with work in proportion to what
    changed (issue 20: at 10,000 Services computing it all again took 0.2 s a pass).

    :meth:`rebuild` computes it from every Service; :meth:`update` takes the Services
    that are new, gone, or whose ready endpoints changed, and redoes only them and the
    addresses they claim, returning what changed per address. What each Service asks of
    each of its addresses (a :class:`_Claim`) is kept, and per address the claims of
    every Service on it, so an address is merged again from its own claims only. An
    update goes on from the model of the last rebuild: another model (ServiceGroups,
    nodes) needs a rebuild (:meth:`current` tells). :meth:`state` is the whole desired
    state in :func:`desired_state`'s order, with its problems in its order."""

    def __init__(self, node_name: str) -> None:
        self.node_name = node_name
        self._model: Model | None = None
        self._reset()

    def _reset(self) -> None:
        self._pools: PoolIndex | None = None
        self._labels: dict[str, str] = {}
        self._selected: dict[ObjectRef, bool] = {}
        """ServiceGroup -> announced from this node (routed, and its selector takes it)."""
        self._parts: dict[int, tuple[Service, tuple[_Claim, ...], tuple[Problem, ...]]] = {}
        """id(Service) -> the Service (held, so that its id is not reused), its claims
        and the problems of its addresses."""
        self.local_traffic: dict[int, ObjectRef] = {}
        """The ETP Local Services, by id (for the reporter: :class:`LocalAnnounced`)."""
        self.local: dict[int, Service] = {}
        """The Services with an address in a pool of a local ServiceGroup (``announce:
        local``), by id: all the local address loop needs to read (nodeagent.local.plan)."""
        self._troubled: dict[int, tuple[Service, tuple[Problem, ...]]] = {}
        """The Services with problems, and theirs (a few, where _parts has every one)."""
        self._by_ref: dict[ObjectRef, list[Service]] = {}
        self._claims: dict[IPAddress, list[_Claim]] = {}
        """Address -> what each Service on it asks of it (a list: mostly one)."""
        self.announced: dict[IPAddress, Announcement] = {}
        """Address -> its announcement (read only: the tracker changes it in place)."""
        self._mixed: dict[IPAddress, tuple[Problem, ...]] = {}
        """Addresses whose Services disagree on their BGP class -> the warnings."""
        self._make = _Interfaces()

    def current(self, model: Model) -> bool:
        """Whether :meth:`update` may go on from the last pass, for ``model``."""
        return self._model is model

    def rebuild(
        self,
        model: Model,
        services: Iterable[Service],
        ready: Mapping[ObjectRef, frozenset[str]],
        counts: Mapping[ObjectRef, Mapping[str, int]] | None = None,
    ) -> None:
        """Everything again, from ``services``."""
        self._reset()
        self._model = model
        node = model.node(self.node_name)
        self._labels = dict(node.labels) if node is not None else {}
        self._pools = PoolIndex(model.service_groups)
        self._take(services, ready, counts)
        self._merge(list(self._claims))

    def update(
        self,
        fresh: Iterable[Service],
        gone: Iterable[Service],
        refs: Iterable[ObjectRef],
        ready: Mapping[ObjectRef, frozenset[str]],
        counts: Mapping[ObjectRef, Mapping[str, int]] | None = None,
    ) -> dict[IPAddress, Change]:
        """``fresh`` Services (new, or other objects than last time) and those of
        ``refs`` (their ready endpoints changed) done again, ``gone`` ones forgotten; the
        addresses whose announcement changed, with it before and after."""
        touched: set[IPAddress] = set()
        for service in gone:
            touched.update(self._drop(service))
        redo: dict[int, Service] = {}
        for ref in refs:
            for service in self._by_ref.get(ref, ()):
                redo[id(service)] = service
        for service in fresh:
            redo[id(service)] = service
        for service in redo.values():
            touched.update(self._drop(service))
        touched.update(self._take(redo.values(), ready, counts))
        before = {address: self.announced.get(address) for address in touched}
        self._merge(touched)
        changes: dict[IPAddress, Change] = {}
        for address, old in before.items():
            new = self.announced.get(address)
            if old != new:
                changes[address] = (old, new)
        return changes

    def state(self) -> DesiredState:
        """The whole desired state, in (version, network, prefix length, address) order."""
        order = sorted(
            (
                (_order(address, a.interface.network.prefixlen), a)
                for address, a in self.announced.items()
            ),
            key=itemgetter(0),  # unique: one entry per address
        )
        return DesiredState(announcements=tuple(a for _, a in order), problems=self.problems())

    def problems(self) -> tuple[Problem, ...]:
        """The Services' problems in the Services' order, then the addresses' in theirs."""
        services = sorted(
            ((_key_of_ref(service.ref), problems) for service, problems in self._troubled.values()),
            key=itemgetter(0),
        )
        mixed = sorted(
            (
                (_order(address, self.announced[address].interface.network.prefixlen), problems)
                for address, problems in self._mixed.items()
            ),
            key=itemgetter(0),
        )
        return tuple(p for _, found in (*services, *mixed) for p in found)

    # -- inside -----------------------------------------------------------------------

    def _drop(self, service: Service) -> tuple[IPAddress, ...]:
        """Forget ``service``; the addresses it claimed."""
        part = self._parts.pop(id(service), None)
        if part is None:
            return ()
        self._troubled.pop(id(service), None)
        self.local.pop(id(service), None)
        self.local_traffic.pop(id(service), None)
        held = self._by_ref.get(service.ref)
        if held is not None:
            held[:] = [s for s in held if s is not service]
            if not held:
                del self._by_ref[service.ref]
        for claim in part[1]:
            claims = self._claims.get(claim.address)
            if claims is not None:
                left = [c for c in claims if c is not claim]
                if left:
                    self._claims[claim.address] = left
                else:
                    del self._claims[claim.address]
        return tuple(c.address for c in part[1])

    def _take(
        self,
        services: Iterable[Service],
        ready: Mapping[ObjectRef, frozenset[str]],
        counts: Mapping[ObjectRef, Mapping[str, int]] | None,
    ) -> list[IPAddress]:
        """Work out and keep what each of ``services`` asks; the addresses they claim."""
        claimed: list[IPAddress] = []
        for service in services:
            claims, problems, local = self._claims_of(service, ready, counts)
            self._parts[id(service)] = (service, claims, problems)
            if local:
                self.local[id(service)] = service
            if service.local:
                self.local_traffic[id(service)] = service.ref
            if problems:
                self._troubled[id(service)] = (service, problems)
            self._by_ref.setdefault(service.ref, []).append(service)
            for claim in claims:
                self._claims.setdefault(claim.address, []).append(claim)
                claimed.append(claim.address)
        return claimed

    def _claims_of(
        self,
        service: Service,
        ready: Mapping[ObjectRef, frozenset[str]],
        counts: Mapping[ObjectRef, Mapping[str, int]] | None,
    ) -> tuple[tuple[_Claim, ...], tuple[Problem, ...], bool]:
        """What ``service`` asks of each of its addresses on this node; its problems;
        whether one of its addresses is in a local group's pool."""
        assert self._pools is not None
        node_name = self.node_name
        claims: list[_Claim] = []
        problems: list[Problem] = []
        local = False
        for address in service.addresses:
            found = self._pools.find(address)
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
            local = local or group.announce is Announce.LOCAL
            here = self._selected.get(group.ref)
            if here is None:
                here = self._selected[group.ref] = (
                    group.announce is Announce.ROUTED and group.node_selector.matches(self._labels)
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
            claims.append(_Claim(address, prefixlen, group.ref, service.ref, weight, bgp_class))
        return tuple(claims), tuple(problems), local

    def _merge(self, addresses: Iterable[IPAddress]) -> None:
        """Each of ``addresses`` announced again from the claims on it, in the Services'
        order (the first names the group, and the class the others must agree on)."""
        for address in addresses:
            self._mixed.pop(address, None)
            claims = self._claims.get(address)
            if not claims:
                self.announced.pop(address, None)
                continue
            ordered = sorted(claims, key=_claim_key) if len(claims) > 1 else claims
            first = ordered[0]
            prefixlen, weight = first.prefixlen, first.weight
            mixed: set[BgpClass | None] | None = None
            for claim in ordered[1:]:
                prefixlen = min(prefixlen, claim.prefixlen)
                weight = None if weight is None or claim.weight is None else weight + claim.weight
                if claim.bgp_class is not first.bgp_class or mixed is not None:
                    mixed = mixed or {first.bgp_class}
                    mixed.add(claim.bgp_class)
            refs = [c.ref for c in ordered]
            problems: list[Problem] = []
            self.announced[address] = Announcement(
                interface=self._make(address, prefixlen),
                group=first.group,
                services=tuple(refs),
                weight=min(weight or 0, MAX_WEIGHT) if prefixlen == address.max_prefixlen else 0,
                bgp_class=_agreed(address, first.bgp_class, mixed, refs, problems),
            )
            if problems:
                self._mixed[address] = tuple(problems)


@dataclass(frozen=True, slots=True)
class _Claim:
    """What one Service asks of one of its addresses on this node: the prefix length,
    the weight (None: not weighted) and the BGP class."""

    address: IPAddress
    prefixlen: int
    group: ObjectRef
    ref: ObjectRef
    weight: int | None
    bgp_class: BgpClass | None


def _claim_key(claim: _Claim) -> tuple[str, str, str]:
    return _key_of_ref(claim.ref)


def _key_of_ref(ref: ObjectRef) -> tuple[str, str, str]:
    return (ref.kind, ref.namespace, ref.name)  # ObjectRef's order, compared in C


def announcement_order(a: Announcement) -> tuple[int, int, int, int]:
    """Where ``a`` goes in the desired state's order."""
    return _order(a.interface.ip, a.interface.network.prefixlen)


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
    Python), every interface comes from the constructor. A host prefix's network is its
    own: it is not kept (the tracker makes interfaces pass after pass, and would keep one
    for every address that ever came and went)."""

    def __init__(self) -> None:
        self.networks: dict[tuple[int, int, int], Any] = {}

    def __call__(self, address: IPAddress, prefixlen: int) -> Interface:
        if not _FAST:
            return _interface(address, prefixlen)
        if prefixlen == address.max_prefixlen:
            return _fast_interface({}, address, prefixlen)
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
