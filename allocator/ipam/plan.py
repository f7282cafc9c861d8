"""The decision for one Service during a pass: group, families, what it keeps, its
requested address and a shared address it may join.

:func:`decide` picks the Service's ServiceGroup (its annotation, else the default), the
families it gets (``spec.ipFamilies`` and ``ipFamilyPolicy``, the group's pools and the
families it already holds an address of) and which of its current addresses it keeps.
:func:`take_requested` checks a requested address against the group's pools and the
book; :func:`shared` finds an address of the Service's sharing key it may join. Every
refusal is reported through ``fail`` with the field that caused it and what would be
valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from allocator.ipam.book import Book, ports_text, to_address
from allocator.ipam.results import Reason
from allocator.service import LBService
from lbroute.model.api import Family, ServiceGroup
from lbroute.model.fields import IPAddress
from lbroute.model.service import Policy
from lbroute.model.vocabulary import SERVICE_GROUP_ANNOTATION

Fail = Callable[[LBService, Reason, str, str], None]
"""How a decision reports a refusal: the Service, why, the field and the message."""


@dataclass
class Plan:
    """One lbroute Service during a pass."""

    svc: LBService
    group: ServiceGroup | None = None
    wanted: tuple[Family, ...] = ()
    keep: dict[Family, IPAddress] = field(default_factory=dict)
    new: dict[Family, IPAddress] = field(default_factory=dict)
    pending: dict[Family, IPAddress | None] = field(default_factory=dict)
    """Families to ask an external IPAM for: the requested address, or None for any."""
    lost: set[IPAddress] = field(default_factory=set)
    """Current addresses another Service keeps (conflicts)."""
    frozen: bool = False
    """No decision possible (no usable group, invalid Service): keep what it has."""
    blocked: bool = False
    """A request it cannot have: no other address instead."""
    all_or_nothing: bool = False


def decide(
    plan: Plan,
    by_name: Mapping[str, ServiceGroup],
    default: ServiceGroup | None,
    invalid: Mapping[str, str],
    namespace: str,
    book: Book,
    fail: Fail,
) -> None:
    """Set the Service's group, the families it gets and the addresses it keeps; or mark
    it ``frozen``, reported, when no decision is possible."""
    svc = plan.svc
    current = [a for a in svc.addresses if a not in plan.lost]
    if svc.problems:
        plan.frozen = True
        for p in svc.problems:
            fail(svc, Reason.INVALID_SERVICE, p.path, p.message)
        return
    group_path = svc.group_path
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
                    + (", ".join(sorted(by_name)) or "none (create a ServiceGroup)")
                    + _alias_hint(group_path),
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


def _alias_hint(path: str) -> str:
    """How a foreign group annotation is read, when ``path`` is one."""
    if path == f"metadata.annotations[{SERVICE_GROUP_ANNOTATION}]":
        return ""
    return (
        " (a MetalLB address pool or PureLB service group names the lbroute ServiceGroup "
        "of the same name; lbroute convert creates them)"
    )


def _wanted(
    svc: LBService, group: ServiceGroup, held: tuple[Family, ...], fail: Fail
) -> tuple[Family, ...] | None:
    """The families the Service has an address of: those its spec asks for that its group
    has pools of or that it already holds an address of (a pool edit takes none away).
    ``held``: the families of the addresses it may keep."""
    have = group.families()
    if not have and not held:
        selector = group.netbox.selector if group.netbox is not None else None
        fail(
            svc,
            Reason.IPAM_PENDING,
            "",
            f"{group.ref} has no addresses yet: "
            + (
                f"no NetBox prefix has been chosen by its prefixSelector ({selector.describe()})"
                " so far (its ExternalIPAM condition says why; status.ipam.netbox.prefixes "
                "lists the chosen ones)"
                if selector is not None
                else "it has no pools"
            ),
        )
        return None
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


def take_requested(
    plan: Plan, address: IPAddress, book: Book, fail: Fail, path: str | None = None
) -> bool:
    """Hold the requested ``address`` for the Service if it may have it; else report why
    (at ``path``, by default the field that requested it)."""
    svc, group = plan.svc, plan.group
    assert group is not None
    path = path or svc.requested_path
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
                f"cannot share {address} with {holding.names(svc)}: "
                f"{ports_text(clash)} used by both",
            )
            return False
    book.hold(address, svc)
    return True


def shared(plan: Plan, family: Family, book: Book, fail: Fail) -> IPAddress | None:
    """The lowest address of the Service's sharing key it may join, if any; when every
    one clashes, that is reported and the Service gets an address of its own."""
    svc, group = plan.svc, plan.group
    if svc.share is None or group is None:
        return None
    clashes = []
    for n in sorted(book.shares.get((*svc.share, family), ())):
        address = to_address(family, n)
        holding = book.holding(address)
        if holding is None or not holding.joinable(svc) or book.in_group(address, group) is None:
            continue
        clash = holding.clash(svc)
        if not clash:
            return address
        clashes.append(f"{ports_text(clash)} with {holding.names(svc)} on {address}")
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
