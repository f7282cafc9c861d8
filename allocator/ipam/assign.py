"""One allocation pass, :func:`allocate`: every Service's addresses from the ServiceGroups
and the Services as they are now.

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

A group's pools from an external IPAM (NetBox prefixes) take part in every step but the
choice of an address: a Service that needs one of them, free or requested, is returned
as an :class:`~allocator.ipam.results.ExternalRequest` (its requested address held for
it in the pass), after the group's own pools of that family are used up. What the IPAM
gave comes back in the next pass as ``claims``, taken before any request like an
address the Service asked for (allocator.external).

Each step's work for one address or Service is a function of its own (:func:`claim`,
:func:`request`, :func:`rest`), so that allocator.ipam.incremental, which redoes only
what changed, does exactly what this pass does.

Then each Service's :class:`~allocator.ipam.results.Assignment`: its addresses in the
order of its families and the allocated-from annotation naming the pools they came
from; a Service that is no longer lbroute's gives back the addresses lbroute gave it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from allocator.ipam.book import Book, ports_text
from allocator.ipam.plan import Fail, Plan, decide, shared, take_requested
from allocator.ipam.results import (
    Allocation,
    Assignment,
    ExternalRequest,
    Failure,
    Outside,
    Reason,
)
from allocator.ipam.stats import counts
from allocator.service import AllocatedFrom, LBService, group_label
from lbroute.model.api import Family, ServiceGroup
from lbroute.model.errors import ObjectRef, Problem
from lbroute.model.fields import IPAddress


def invalid_groups(problems: Iterable[Problem]) -> dict[str, str]:
    """ServiceGroup name -> what is wrong with it, from :func:`lbroute.model.api.load`'s errors."""
    found: dict[str, list[str]] = {}
    for p in problems:
        if p.ref.kind == "ServiceGroup" and p.severity == "error":
            found.setdefault(p.ref.name, []).append(
                f"{p.path}: {p.message}" if p.path else p.message
            )
    return {name: "; ".join(msgs) for name, msgs in found.items()}


def allocate(
    groups: Sequence[ServiceGroup],
    services: Iterable[LBService],
    *,
    invalid_groups: Mapping[str, str] | None = None,
    namespace: str = "lbroute",
    claims: Mapping[ObjectRef, Mapping[Family, IPAddress]] | None = None,
) -> Allocation:
    """Compute every Service's addresses.

    ``groups`` are the valid ServiceGroups (as :func:`lbroute.model.api.load` keeps them);
    ``invalid_groups`` names the others, with why, so that a Service naming one is told
    so; ``namespace`` is where the ServiceGroups live (for messages); ``claims`` are the
    addresses an external IPAM gave Services for this pass's requests of the last one.
    """
    claims = claims or {}
    invalid = dict(invalid_groups or {})
    by_name = {g.name: g for g in groups}
    default = next((g for g in groups if g.default), None)
    book = Book(groups)
    failures: list[Failure] = []
    services = sorted(services, key=lambda s: s.ref)
    # Older Services first (then by name): an older request wins over a younger one.
    by_age = sorted(services, key=lambda s: (s.created, s.ref))
    plans = {s.ref: Plan(svc=s) for s in by_age if s.ours}

    def fail(svc: LBService, reason: Reason, path: str, message: str) -> None:
        failures.append(Failure(ref=svc.ref, reason=reason, path=path, message=message))

    # 1. What every Service holds now; the older of two claimants keeps an address.
    for svc in by_age:
        for address in svc.addresses:
            if not claim(address, svc, book, fail) and svc.ours:
                plans[svc.ref].lost.add(address)

    # Group, families and what each Service keeps.
    for plan in plans.values():
        decide(plan, by_name, default, invalid, namespace, book, fail)

    # 2. Requested addresses first, for every Service: those an external IPAM gave it
    # (claims), then those it asks for.
    for plan in plans.values():
        request(plan, claims.get(plan.svc.ref, {}), book, fail)

    # 3. The rest: a shared address, else the lowest free one.
    for plan in plans.values():
        rest(plan, book, fail)

    assignments = []
    for svc in services:
        found = plans.get(svc.ref)
        if found is not None:
            assignments.append(assignment(found, book))
        elif svc.allocated_from is not None:
            assignments.append(release(svc, book))
    outside = [
        Outside(ref=p.svc.ref, address=a, group=p.group.ref)
        for p in plans.values()
        if p.group is not None and not p.frozen
        for a in p.keep.values()
        if book.in_group(a, p.group) is None
    ]
    requests = tuple(
        ExternalRequest(
            ref=p.svc.ref, group=p.group.name, family=f, address=address, share=p.svc.share
        )
        for p in plans.values()
        if p.group is not None
        for f, address in p.pending.items()
    )
    held = {a for s in assignments for a in s.addresses}
    held |= {a for s in services if not s.ours and s.allocated_from is None for a in s.addresses}
    pool_stats, group_stats = counts(groups, book, held, outside)
    return Allocation(
        assignments=tuple(assignments),
        failures=tuple(failures),
        outside=tuple(outside),
        pools=pool_stats,
        groups=group_stats,
        requests=requests,
    )


def claim(address: IPAddress, svc: LBService, book: Book, fail: Fail) -> bool:
    """Step 1 for one address a Service holds now: hold it, or join the Services of its
    sharing key that hold it (a port clash reported); False when an older claimant that
    it may not share with keeps it (reported when the Service is lbroute's)."""
    holding = book.holding(address)
    if holding is None:
        book.hold(address, svc)
        return True
    if holding.joinable(svc):
        clash = holding.clash(svc)
        if clash:
            fail(
                svc,
                Reason.SHARE_CLASH,
                "spec.ports",
                f"{ports_text(clash)} also used by {holding.names(svc)} on the shared "
                f"address {address}; the Service keeps the address, but only one of "
                "them receives that traffic: change the ports or the sharing key",
            )
        book.hold(address, svc)
        return True
    if svc.ours:
        fail(
            svc,
            Reason.CONFLICT,
            "status.loadBalancer.ingress",
            f"{address} is also held by {holding.names()}, which keeps it (older); "
            "this Service gets another address",
        )
    return False


def request(plan: Plan, claims: Mapping[Family, IPAddress], book: Book, fail: Fail) -> None:
    """Step 2 for one Service: the addresses an external IPAM gave it (``claims``), then
    those it asks for."""
    if plan.frozen:
        return
    for f, address in claims.items():
        if f in plan.wanted and f not in plan.keep and f not in plan.new:
            path = "status.loadBalancer.ingress"
            if take_requested(plan, address, book, fail, path):
                plan.new[f] = address
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
        if plan.keep.get(f) == address or plan.new.get(f) == address:
            continue
        if take_requested(plan, address, book, fail):
            state = book.pool_of(address)
            holding = book.holding(address)
            recorded = holding is not None and any(
                address in h.addresses for h in holding.holders if h is not plan.svc
            )
            if state is not None and state.pool.external is not None and not recorded:
                plan.pending[f] = address  # held for it while the IPAM is asked
            else:
                plan.new[f] = address  # a pool's own, or shared with its holder


def rest(plan: Plan, book: Book, fail: Fail) -> None:
    """Step 3 for one Service: each family it still lacks from a shared address, else
    the lowest free one; for RequireDualStack, every family or none."""
    if plan.frozen or plan.blocked or plan.group is None:
        return
    requested = {Family.of(a) for a in plan.svc.requested}
    for f in plan.wanted:
        if f in plan.keep or f in plan.new or f in requested:
            continue
        got = shared(plan, f, book, fail)
        if got is None:
            got = book.free(plan.group, f)
        if got is None and book.external(plan.group, f):
            plan.pending[f] = None
            continue
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
    if plan.all_or_nothing and any(f not in plan.keep and f not in plan.new for f in plan.wanted):
        # Every family at once or none: what the IPAM is asked for comes next pass,
        # and the rest with it; nothing is asked when a family has no address at all.
        if any(
            f not in plan.keep and f not in plan.new and f not in plan.pending for f in plan.wanted
        ):
            plan.pending.clear()
        for address in plan.new.values():
            book.unhold(address, plan.svc)
        plan.new.clear()


def assignment(plan: Plan, book: Book) -> Assignment:
    """What the Service's status and annotations should say once its plan is made."""
    svc = plan.svc
    before_annotation = str(svc.allocated_from) if svc.allocated_from else None
    if plan.frozen or plan.group is None:
        return Assignment(
            ref=svc.ref,
            uid=svc.uid,
            before=svc.addresses,
            addresses=svc.addresses,
            allocated_before=before_annotation,
            label_before=svc.label,
            # Left as it is, but labeled like any Service holding lbroute's addresses: the
            # agents that watch labeled Services only must still see it.
            label=group_label(before_annotation),
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
        label_before=svc.label,
        label=group_label(annotation),
        allocated_from=annotation,
        group=plan.group.ref,
    )


def release(svc: LBService, book: Book) -> Assignment:
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
        label_before=svc.label,
        allocated_from=None,
    )
