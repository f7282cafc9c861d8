"""The allocator's core: ServiceGroups and Services in, each Service's addresses out.

Pure and deterministic: no I/O, no clock, no Kubernetes. The Services' current
``status.loadBalancer.ingress`` is the only record of what is taken, so an allocator
that restarts (or a new leader) rebuilds exactly the state the last one left, and no
address already given ever changes because of a restart or a pool edit.

One pass, :func:`allocate`:

1. every address any Service holds now is taken. Of two Services that claim one
   address without sharing it, the older keeps it and the other gets a new one
   (``AddressConflict``). Addresses a Service gives up in this pass stay taken until
   its status no longer shows them: an address is never handed to a second Service
   before the first has let go of it;
2. requested addresses (``lbroute.io/addresses``, ``spec.loadBalancerIP``) of every
   Service, so a request is never lost to a free allocation in the same pass (older
   Services first: of two asking for one address, the older gets it);
3. the rest: an address of a Service with the same ``lbroute.io/allow-shared-ip`` key
   (same namespace, no clashing port, same traffic policy) if there is one, else the
   lowest free address of the group's pools, pool by pool in the order the group lists
   them (a cursor per pool that only moves forward over taken addresses: no pool is
   ever enumerated).

A Service keeps its address when its pool is edited or shrunk, or when its group has
no pool of that family any more; one that now lies outside every pool of its group is
reported (``outside``). Addresses move only when the Service asks: another requested
address, a family its ``ipFamilyPolicy`` no longer wants, or its
``lbroute.io/service-group`` annotation naming another group than the one the address
came from.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from allocator.service import AllocatedFrom, LBService
from lbroute.model.api import Family, Pool, ServiceGroup
from lbroute.model.errors import ObjectRef, Problem
from lbroute.model.fields import IPAddress
from lbroute.model.service import Policy
from lbroute.model.vocabulary import SERVICE_GROUP_ANNOTATION


class Reason(StrEnum):
    """Why a Service did not get (all) the addresses it should have."""

    NO_GROUP = "NoServiceGroup"
    GROUP_NOT_FOUND = "ServiceGroupNotFound"
    GROUP_INVALID = "ServiceGroupInvalid"
    INVALID_SERVICE = "InvalidService"
    FAMILY_UNAVAILABLE = "FamilyUnavailable"
    EXHAUSTED = "PoolExhausted"
    REQUESTED_OUTSIDE = "RequestedOutsidePools"
    REQUESTED_RESERVED = "RequestedReserved"
    REQUESTED_TAKEN = "RequestedTaken"
    SHARE_CLASH = "SharedIPClash"
    CONFLICT = "AddressConflict"


@dataclass(frozen=True, kw_only=True)
class Failure:
    ref: ObjectRef
    reason: Reason
    path: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.ref}: {self.path}: {self.message}"
            if self.path
            else f"{self.ref}: {self.message}"
        )


@dataclass(frozen=True, kw_only=True)
class Outside:
    """A Service keeps an address that lies outside every pool of its group."""

    ref: ObjectRef
    address: IPAddress
    group: ObjectRef

    def __str__(self) -> str:
        return (
            f"{self.ref}: status.loadBalancer.ingress: {self.address} lies outside every pool "
            f"of {self.group}; the Service keeps it (an address is never renumbered)"
        )


@dataclass(frozen=True, kw_only=True)
class Assignment:
    """What one Service's status and allocated-from annotation should say."""

    ref: ObjectRef
    uid: str
    before: tuple[IPAddress, ...]
    addresses: tuple[IPAddress, ...]
    allocated_before: str | None
    allocated_from: str | None
    """The annotation's value; None removes it (the Service is no longer lbroute's)."""
    group: ObjectRef | None = None

    @property
    def assigned(self) -> tuple[IPAddress, ...]:
        return tuple(a for a in self.addresses if a not in self.before)

    @property
    def released(self) -> tuple[IPAddress, ...]:
        return tuple(a for a in self.before if a not in self.addresses)

    @property
    def changed(self) -> bool:
        return self.addresses != self.before or self.allocated_from != self.allocated_before


@dataclass(frozen=True, kw_only=True)
class PoolStats:
    group: ObjectRef
    pool: str
    family: Family
    size: int
    """Addresses the pool may hand out (its reserved ones left out)."""
    in_use: int


@dataclass(frozen=True, kw_only=True)
class GroupStats:
    ref: ObjectRef
    allocated: dict[Family, int]
    available: dict[Family, int]
    outside: int = 0
    """Services keeping an address outside every pool of this group."""

    @property
    def exhausted(self) -> tuple[Family, ...]:
        return tuple(f for f, n in self.available.items() if n == 0)


@dataclass(frozen=True, kw_only=True)
class Allocation:
    assignments: tuple[Assignment, ...]
    """Every Service that is lbroute's or carries its allocated-from annotation."""
    failures: tuple[Failure, ...]
    outside: tuple[Outside, ...]
    pools: tuple[PoolStats, ...]
    groups: tuple[GroupStats, ...]

    def changes(self) -> list[Assignment]:
        return [a for a in self.assignments if a.changed]

    def of(self, ref: ObjectRef) -> Assignment | None:
        for a in self.assignments:
            if a.ref == ref:
                return a
        return None


def invalid_groups(problems: Iterable[Problem]) -> dict[str, str]:
    """ServiceGroup name -> what is wrong with it, from :func:`lbroute.model.api.load`'s errors."""
    found: dict[str, list[str]] = {}
    for p in problems:
        if p.ref.kind == "ServiceGroup" and p.severity == "error":
            found.setdefault(p.ref.name, []).append(
                f"{p.path}: {p.message}" if p.path else p.message
            )
    return {name: "; ".join(msgs) for name, msgs in found.items()}


# -- bookkeeping ------------------------------------------------------------------------


@dataclass(eq=False)
class _PoolState:
    pool: Pool
    group: ServiceGroup
    first: int
    last: int
    reserved: frozenset[int]
    cursor: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1 - len(self.reserved)


@dataclass(eq=False)
class _Holding:
    """Who holds one address: one Service, or several that share it."""

    holders: list[LBService]
    share: tuple[str, str] | None
    scope: tuple[str, ...]
    ports: set[tuple[str, int]] = field(default_factory=set)

    def clash(self, svc: LBService) -> set[tuple[str, int]]:
        return self.ports & svc.ports

    def joinable(self, svc: LBService) -> bool:
        return self.share is not None and self.share == svc.share and self.scope == svc.share_scope

    def add(self, svc: LBService) -> None:
        self.holders.append(svc)
        self.ports |= svc.ports

    def remove(self, svc: LBService) -> None:
        self.holders = [h for h in self.holders if h.ref != svc.ref]
        self.ports = {p for h in self.holders for p in h.ports}

    def names(self, clashing_with: LBService | None = None) -> str:
        """The holders (those whose ports clash with ``clashing_with``'s, when given)."""
        holders = self.holders
        if clashing_with is not None:
            holders = [h for h in holders if h.ports & clashing_with.ports]
        return ", ".join(f"Service {h.ref.namespace}/{h.ref.name}" for h in holders)


def _ports(ports: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{proto}/{port}" for proto, port in sorted(ports))


class _Book:
    def __init__(self, groups: Sequence[ServiceGroup]) -> None:
        self.taken: dict[Family, dict[int, _Holding]] = {f: {} for f in Family}
        self.by_group: dict[str, list[_PoolState]] = {}
        spans: dict[Family, list[tuple[int, _PoolState]]] = {f: [] for f in Family}
        for g in groups:
            states = []
            for p in g.pools:
                state = _PoolState(
                    pool=p,
                    group=g,
                    first=int(p.first),
                    last=int(p.last),
                    reserved=frozenset(int(a) for a in p.reserved),
                    cursor=int(p.first),
                )
                states.append(state)
                spans[p.family].append((state.first, state))
            self.by_group[g.name] = states
        for f in Family:
            spans[f].sort(key=lambda t: t[0])
        self._starts = {f: [s for s, _ in spans[f]] for f in Family}
        self._spans = {f: [st for _, st in spans[f]] for f in Family}
        self.shares: dict[tuple[str, str, Family], set[int]] = {}

    def pool_of(self, address: IPAddress) -> _PoolState | None:
        f = Family.of(address)
        n = int(address)
        i = bisect.bisect_right(self._starts[f], n) - 1
        if i >= 0 and n <= self._spans[f][i].last:
            return self._spans[f][i]
        return None

    def holding(self, address: IPAddress) -> _Holding | None:
        return self.taken[Family.of(address)].get(int(address))

    def hold(self, address: IPAddress, svc: LBService) -> None:
        f = Family.of(address)
        n = int(address)
        holding = self.taken[f].get(n)
        if holding is None:
            holding = _Holding(holders=[], share=svc.share, scope=svc.share_scope)
            self.taken[f][n] = holding
        holding.add(svc)
        if svc.share is not None:
            self.shares.setdefault((*svc.share, f), set()).add(n)

    def unhold(self, address: IPAddress, svc: LBService) -> None:
        f = Family.of(address)
        n = int(address)
        holding = self.taken[f].get(n)
        if holding is None:
            return
        holding.remove(svc)
        if not holding.holders:
            del self.taken[f][n]
            if svc.share is not None:
                self.shares.get((*svc.share, f), set()).discard(n)
            state = self.pool_of(address)
            if state is not None:
                state.cursor = min(state.cursor, n)

    def free(self, group: ServiceGroup, family: Family) -> IPAddress | None:
        taken = self.taken[family]
        for state in self.by_group[group.name]:
            if state.pool.family is not family:
                continue
            n = state.cursor
            while n <= state.last and (n in taken or n in state.reserved):
                n += 1
            state.cursor = n
            if n <= state.last:
                return _address(family, n)
        return None

    def in_group(self, address: IPAddress, group: ServiceGroup) -> _PoolState | None:
        state = self.pool_of(address)
        return state if state is not None and state.group is group else None


def _address(family: Family, n: int) -> IPAddress:
    return ipaddress.IPv4Address(n) if family is Family.IPV4 else ipaddress.IPv6Address(n)


# -- one pass ---------------------------------------------------------------------------

_Fail = Callable[[LBService, "Reason", str, str], None]


@dataclass
class _Plan:
    """One lbroute Service during a pass."""

    svc: LBService
    group: ServiceGroup | None = None
    wanted: tuple[Family, ...] = ()
    keep: dict[Family, IPAddress] = field(default_factory=dict)
    new: dict[Family, IPAddress] = field(default_factory=dict)
    lost: set[IPAddress] = field(default_factory=set)
    """Current addresses another Service keeps (conflicts)."""
    frozen: bool = False
    """No decision possible (no usable group, invalid Service): keep what it has."""
    blocked: bool = False
    """A request it cannot have: no other address instead."""
    all_or_nothing: bool = False


def allocate(
    groups: Sequence[ServiceGroup],
    services: Iterable[LBService],
    *,
    invalid_groups: Mapping[str, str] | None = None,
    namespace: str = "lbroute",
) -> Allocation:
    """Compute every Service's addresses.

    ``groups`` are the valid ServiceGroups (as :func:`lbroute.model.api.load` keeps them);
    ``invalid_groups`` names the others, with why, so that a Service naming one is told
    so; ``namespace`` is where the ServiceGroups live (for messages).
    """
    invalid = dict(invalid_groups or {})
    by_name = {g.name: g for g in groups}
    default = next((g for g in groups if g.default), None)
    book = _Book(groups)
    failures: list[Failure] = []
    services = sorted(services, key=lambda s: s.ref)
    # Older Services first (then by name): an older request wins over a younger one.
    by_age = sorted(services, key=lambda s: (s.created, s.ref))
    plans = {s.ref: _Plan(svc=s) for s in by_age if s.ours}

    def fail(svc: LBService, reason: Reason, path: str, message: str) -> None:
        failures.append(Failure(ref=svc.ref, reason=reason, path=path, message=message))

    # 1. What every Service holds now; the older of two claimants keeps an address.
    for svc in by_age:
        for address in svc.addresses:
            holding = book.holding(address)
            if holding is None:
                book.hold(address, svc)
            elif holding.joinable(svc):
                clash = holding.clash(svc)
                if clash:
                    fail(
                        svc,
                        Reason.SHARE_CLASH,
                        "spec.ports",
                        f"{_ports(clash)} also used by {holding.names(svc)} on the shared "
                        f"address {address}; the Service keeps the address, but only one of "
                        "them receives that traffic: change the ports or the sharing key",
                    )
                book.hold(address, svc)
            elif svc.ref in plans:
                plans[svc.ref].lost.add(address)
                fail(
                    svc,
                    Reason.CONFLICT,
                    "status.loadBalancer.ingress",
                    f"{address} is also held by {holding.names()}, which keeps it (older); "
                    "this Service gets another address",
                )

    # Group, families and what each Service keeps.
    for plan in plans.values():
        _decide(plan, by_name, default, invalid, namespace, book, fail)

    # 2. Requested addresses first, for every Service.
    for plan in plans.values():
        if plan.frozen:
            continue
        for address in plan.svc.requested:
            f = Family.of(address)
            if f not in plan.wanted:
                fail(
                    plan.svc,
                    Reason.FAMILY_UNAVAILABLE,
                    plan.svc.requested_path,
                    f"{address} is {f} but the Service gets only "
                    + ", ".join(str(w) for w in plan.wanted)
                    + " addresses (spec.ipFamilies, spec.ipFamilyPolicy)",
                )
                plan.blocked = True
                continue
            if plan.keep.get(f) == address:
                continue
            if _take_requested(plan, address, book, fail):
                plan.new[f] = address

    # 3. The rest: a shared address, else the lowest free one.
    for plan in plans.values():
        if plan.frozen or plan.blocked or plan.group is None:
            continue
        requested = {Family.of(a) for a in plan.svc.requested}
        for f in plan.wanted:
            if f in plan.keep or f in plan.new or f in requested:
                continue
            got = _shared(plan, f, book, fail)
            if got is None:
                got = book.free(plan.group, f)
            if got is None:
                fail(
                    plan.svc,
                    Reason.EXHAUSTED,
                    "",
                    f"no free {f} address left in {plan.group.ref} (pools: "
                    + ", ".join(str(p) for p in plan.group.pools if p.family is f)
                    + "); add a pool or free an address",
                )
                continue
            book.hold(got, plan.svc)
            plan.new[f] = got
        if plan.all_or_nothing and any(
            f not in plan.keep and f not in plan.new for f in plan.wanted
        ):
            for address in plan.new.values():
                book.unhold(address, plan.svc)
            plan.new.clear()

    assignments = []
    for svc in services:
        found = plans.get(svc.ref)
        if found is not None:
            assignments.append(_assignment(found, book))
        elif svc.allocated_from is not None:
            assignments.append(_release(svc, book))
    outside = [
        Outside(ref=p.svc.ref, address=a, group=p.group.ref)
        for p in plans.values()
        if p.group is not None and not p.frozen
        for a in p.keep.values()
        if book.in_group(a, p.group) is None
    ]
    held = {a for s in assignments for a in s.addresses}
    held |= {a for s in services if not s.ours and s.allocated_from is None for a in s.addresses}
    pool_stats, group_stats = _stats(groups, book, held, outside)
    return Allocation(
        assignments=tuple(assignments),
        failures=tuple(failures),
        outside=tuple(outside),
        pools=pool_stats,
        groups=group_stats,
    )


def _decide(
    plan: _Plan,
    by_name: Mapping[str, ServiceGroup],
    default: ServiceGroup | None,
    invalid: Mapping[str, str],
    namespace: str,
    book: _Book,
    fail: _Fail,
) -> None:
    svc = plan.svc
    current = [a for a in svc.addresses if a not in plan.lost]
    if svc.problems:
        plan.frozen = True
        for p in svc.problems:
            fail(svc, Reason.INVALID_SERVICE, p.path, p.message)
        return
    group_path = f"metadata.annotations[{SERVICE_GROUP_ANNOTATION}]"
    if svc.group is not None:
        group = by_name.get(svc.group)
        if group is None:
            plan.frozen = True
            if svc.group in invalid:
                fail(
                    svc,
                    Reason.GROUP_INVALID,
                    group_path,
                    f"ServiceGroup {namespace}/{svc.group} is invalid ({invalid[svc.group]}); "
                    "fix it or name another group",
                )
            else:
                fail(
                    svc,
                    Reason.GROUP_NOT_FOUND,
                    group_path,
                    f"ServiceGroup {svc.group!r} not found in namespace {namespace}; valid: "
                    + (", ".join(sorted(by_name)) or "none (create a ServiceGroup)"),
                )
            return
    elif default is not None:
        group = default
    else:
        plan.frozen = True
        fail(
            svc,
            Reason.NO_GROUP,
            group_path,
            "is not set and no ServiceGroup is marked default: true; name one of: "
            + (", ".join(sorted(by_name)) or "none (create a ServiceGroup)"),
        )
        return
    plan.group = group
    moved = (
        svc.group is not None
        and svc.allocated_from is not None
        and svc.allocated_from.group != group.name
    )
    if moved:  # the Service was moved to another group: new addresses there
        current = [a for a in current if book.in_group(a, group) is not None]
    held = tuple(f for f in Family if any(Family.of(a) is f for a in current))
    wanted = _wanted(svc, group, held, fail)
    if wanted is None:
        plan.frozen = True
        return
    plan.wanted, plan.all_or_nothing = wanted, svc.policy is Policy.REQUIRE
    for address in current:
        f = Family.of(address)
        if f not in wanted or f in plan.keep:
            continue  # released: a family no longer wanted, or a second one of a family
        plan.keep[f] = address


def _wanted(
    svc: LBService, group: ServiceGroup, held: tuple[Family, ...], fail: _Fail
) -> tuple[Family, ...] | None:
    """The families the Service has an address of: those its spec asks for that its group
    has pools of or that it already holds an address of (a pool edit takes none away).
    ``held``: the families of the addresses it may keep."""
    have = group.families()
    base = svc.families
    if not base:
        requested = tuple(dict.fromkeys(Family.of(a) for a in svc.requested))
        if requested:
            base = requested
        elif svc.policy in (Policy.PREFER, Policy.REQUIRE):
            base = (Family.IPV4, Family.IPV6)
        else:
            base = (held or have)[:1]
    policy = svc.policy or (Policy.SINGLE if len(base) == 1 else Policy.PREFER)
    names = {Family.IPV4: "IPv4", Family.IPV6: "IPv6"}
    pools = " and ".join(names[f] for f in have)
    if policy is Policy.SINGLE:
        base = base[:1]
    if policy is Policy.REQUIRE and len(base) < 2:
        base = tuple(dict.fromkeys((*base, Family.IPV4, Family.IPV6)))
    wanted = tuple(f for f in base if f in have or f in held)
    missing = [f for f in base if f not in wanted]
    if (policy is Policy.PREFER and not wanted) or (policy is not Policy.PREFER and missing):
        path = "spec.ipFamilies" if svc.families else "spec.ipFamilyPolicy"
        fail(
            svc,
            Reason.FAMILY_UNAVAILABLE,
            path,
            f"{policy} with {', '.join(names[f] for f in base)} needs "
            f"{' and '.join(names[f] for f in missing)} pools; {group.ref} has only {pools} "
            "pools",
        )
        return None
    return wanted


def _take_requested(plan: _Plan, address: IPAddress, book: _Book, fail: _Fail) -> bool:
    svc, group = plan.svc, plan.group
    assert group is not None
    path = svc.requested_path
    state = book.in_group(address, group)
    if state is None:
        fail(
            svc,
            Reason.REQUESTED_OUTSIDE,
            path,
            f"{address} is not in a pool of {group.ref}; valid: "
            + ", ".join(str(p) for p in group.pools if p.family is Family.of(address)),
        )
        return False
    if int(address) in state.reserved:
        fail(
            svc,
            Reason.REQUESTED_RESERVED,
            path,
            f"{address} is the network or broadcast address of pool {state.pool} of "
            f"{group.ref}; set allowNetworkAndBroadcast: true on the pool to hand it out",
        )
        return False
    holding = book.holding(address)
    if holding is not None and svc not in holding.holders:
        if not holding.joinable(svc):
            fail(
                svc,
                Reason.REQUESTED_TAKEN,
                path,
                f"{address} is already assigned to {holding.names()}"
                + (
                    f" (sharing key {holding.share[1]!r})"
                    if holding.share is not None
                    else "; only Services with the same lbroute.io/allow-shared-ip key share one"
                ),
            )
            return False
        clash = holding.clash(svc)
        if clash:
            fail(
                svc,
                Reason.SHARE_CLASH,
                "spec.ports",
                f"cannot share {address} with {holding.names(svc)}: {_ports(clash)} used by both",
            )
            return False
    book.hold(address, svc)
    return True


def _shared(plan: _Plan, family: Family, book: _Book, fail: _Fail) -> IPAddress | None:
    """The lowest address of the Service's sharing key it may join, if any; when every
    one clashes, that is reported and the Service gets an address of its own."""
    svc, group = plan.svc, plan.group
    if svc.share is None or group is None:
        return None
    clashes = []
    for n in sorted(book.shares.get((*svc.share, family), ())):
        address = _address(family, n)
        holding = book.holding(address)
        if holding is None or not holding.joinable(svc) or book.in_group(address, group) is None:
            continue
        clash = holding.clash(svc)
        if not clash:
            return address
        clashes.append(f"{_ports(clash)} with {holding.names(svc)} on {address}")
    if clashes:
        fail(
            svc,
            Reason.SHARE_CLASH,
            "spec.ports",
            f"cannot share an address of key {svc.share_key!r}: "
            + "; ".join(clashes)
            + f"; it gets an {family} address of its own",
        )
    return None


def _assignment(plan: _Plan, book: _Book) -> Assignment:
    svc = plan.svc
    before_annotation = str(svc.allocated_from) if svc.allocated_from else None
    if plan.frozen or plan.group is None:
        return Assignment(
            ref=svc.ref,
            uid=svc.uid,
            before=svc.addresses,
            addresses=svc.addresses,
            allocated_before=before_annotation,
            allocated_from=before_annotation,
            group=plan.group.ref if plan.group else None,
        )
    addresses = tuple(
        a for f in plan.wanted if (a := plan.new.get(f) or plan.keep.get(f)) is not None
    )
    pools: list[str] = []
    previous = svc.allocated_from
    if previous is not None and previous.group != plan.group.name:
        previous = None
    for a in addresses:
        # What the annotation said stays while it holds (a pool edit rewrites nothing).
        spec = next((p for p in previous.pools if previous.spans(p, a)), None) if previous else None
        if spec is None:
            state = book.in_group(a, plan.group)
            spec = str(state.pool) if state is not None else str(a)
        if spec not in pools:
            pools.append(spec)
    annotation = (
        str(AllocatedFrom(group=plan.group.name, pools=tuple(pools))) if addresses else None
    )
    return Assignment(
        ref=svc.ref,
        uid=svc.uid,
        before=svc.addresses,
        addresses=addresses,
        allocated_before=before_annotation,
        allocated_from=annotation,
        group=plan.group.ref,
    )


def _release(svc: LBService, book: _Book) -> Assignment:
    """A Service that is no longer lbroute's: drop the addresses lbroute gave it."""
    assert svc.allocated_from is not None
    keep = tuple(
        a for a in svc.addresses if book.pool_of(a) is None and not svc.allocated_from.covers(a)
    )
    return Assignment(
        ref=svc.ref,
        uid=svc.uid,
        before=svc.addresses,
        addresses=keep,
        allocated_before=str(svc.allocated_from),
        allocated_from=None,
    )


def _stats(
    groups: Sequence[ServiceGroup],
    book: _Book,
    held: set[IPAddress],
    outside: Sequence[Outside],
) -> tuple[tuple[PoolStats, ...], tuple[GroupStats, ...]]:
    in_use: dict[int, int] = {}
    for address in held:
        state = book.pool_of(address)
        if state is not None and int(address) not in state.reserved:
            in_use[id(state)] = in_use.get(id(state), 0) + 1
    pool_stats: list[PoolStats] = []
    group_stats: list[GroupStats] = []
    for g in groups:
        allocated = {f: 0 for f in g.families()}
        available = {f: 0 for f in g.families()}
        for state in book.by_group[g.name]:
            used = in_use.get(id(state), 0)
            f = state.pool.family
            pool_stats.append(
                PoolStats(group=g.ref, pool=str(state.pool), family=f, size=state.size, in_use=used)
            )
            allocated[f] += used
            available[f] += state.size - used
        group_stats.append(
            GroupStats(
                ref=g.ref,
                allocated=allocated,
                available=available,
                outside=sum(1 for o in outside if o.group == g.ref),
            )
        )
    return tuple(pool_stats), tuple(group_stats)
