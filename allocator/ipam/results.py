"""What one allocation pass returns, and why a Service got less than it should.

Plain frozen data for the controller (each Service's status, allocated-from annotation
and Events; each ServiceGroup's status) and for ``lbroute allocate`` to act on: an
:class:`Assignment` per Service, a :class:`Failure` with its :class:`Reason` per thing
that could not be done, an :class:`Outside` per address a Service keeps outside every
pool of its group, and the counts per pool and group. Nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from lbroute.model.api import Family
from lbroute.model.errors import ObjectRef
from lbroute.model.fields import IPAddress


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
    IPAM_PENDING = "ExternalIPAMPending"
    """The address comes from an external IPAM (NetBox) that has not answered yet."""
    IPAM_REFUSED = "ExternalIPAMRefused"
    """The external IPAM said no: the requested address is taken there, or it has none left."""


@dataclass(frozen=True, kw_only=True)
class ExternalRequest:
    """A Service needs an address of ``family`` from an external IPAM's pools of its group:
    ``address`` when it asked for one (``lbroute.io/addresses``), else the next free one."""

    ref: ObjectRef
    group: str
    family: Family
    address: IPAddress | None = None
    share: tuple[str, str] | None = None
    """(namespace, key) of its ``lbroute.io/allow-shared-ip``: Services that make the same
    request with the same key get one address."""


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
class Drift:
    """A Service's address that the external IPAM records for something else."""

    ref: ObjectRef
    address: IPAddress
    group: ObjectRef
    message: str

    def __str__(self) -> str:
        return f"{self.ref}: status.loadBalancer.ingress: {self.message}"


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
    label_before: str | None = None
    """Its lbroute.io/service-group label as read."""
    label: str | None = None
    """The label it should have: it follows the allocated-from annotation
    (allocator.service.group_label)."""

    @property
    def assigned(self) -> tuple[IPAddress, ...]:
        return tuple(a for a in self.addresses if a not in self.before)

    @property
    def released(self) -> tuple[IPAddress, ...]:
        return tuple(a for a in self.before if a not in self.addresses)

    @property
    def changed(self) -> bool:
        return (
            self.addresses != self.before
            or self.allocated_from != self.allocated_before
            or self.label != self.label_before
        )


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
class Delta:
    """How a pass differs from the one before it, when one incremental allocator
    (:mod:`allocator.ipam.incremental`) made both: a reader that took in ``after`` in
    full need only look at ``services`` to take in this one."""

    token: object
    """This pass."""
    after: object | None
    """The pass this one follows; None: none (a reader takes this one in full)."""
    services: Mapping[ObjectRef, Assignment | None]
    """Every Service whose Service or assignment may differ from what ``after`` had,
    with its assignment now (None: it has none, or is gone)."""


@dataclass(frozen=True, kw_only=True)
class Allocation:
    assignments: tuple[Assignment, ...]
    """Every Service that is lbroute's or carries its allocated-from annotation."""
    failures: tuple[Failure, ...]
    outside: tuple[Outside, ...]
    pools: tuple[PoolStats, ...]
    groups: tuple[GroupStats, ...]
    requests: tuple[ExternalRequest, ...] = ()
    """Addresses to ask an external IPAM for (allocator.external), then pass again with
    what it gave as ``claims``."""
    drift: tuple[Drift, ...] = ()
    """Set by the controller from its external IPAMs' records."""
    ipam: tuple[tuple[str, tuple[str, str, str]], ...] = ()
    """Each group with an external IPAM and its ``ExternalIPAM`` condition (status, reason,
    message), set by the controller."""
    selected: tuple[tuple[str, Mapping[str, list[str]]], ...] = ()
    """The groups whose ``prefixSelector`` chose other NetBox prefixes than their status
    lists, and the ``status.ipam.netbox`` that says them, set by the controller."""

    changed: tuple[Assignment, ...] | None = field(default=None, compare=False, repr=False)
    """The assignments that change something, in the order of ``assignments``, when the
    pass kept them without looking at every one (allocator.ipam.incremental)."""
    delta: Delta | None = field(default=None, compare=False, repr=False)
    """What differs from the pass before, when the same incremental allocator made both."""

    def changes(self) -> list[Assignment]:
        if self.changed is not None:
            return list(self.changed)
        return [a for a in self.assignments if a.changed]

    def of(self, ref: ObjectRef) -> Assignment | None:
        for a in self.assignments:
            if a.ref == ref:
                return a
        return None
