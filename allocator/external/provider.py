"""What an external IPAM is to the allocator: the :class:`Provider` interface.

One provider serves one ServiceGroup's external pools (NetBox today: allocator.external.
netbox; another IPAM is another class with these eight methods). Every method may raise
:class:`Unavailable` (the IPAM did not answer, or failed: try again later, change
nothing) or :class:`Refused` (it answered no: say why to the user). Addresses are
recorded in the IPAM as a Service's (:class:`Owner`), so that an allocator that restarts
finds what it made instead of making it again, and can tell its own records from
everyone else's (:class:`Record`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from lbroute.model.api import Family
from lbroute.model.fields import IPAddress, IPNetwork


class IpamError(Exception):
    """Base of what a provider raises; the text is for users (no secrets in it)."""


class Unavailable(IpamError):
    """The IPAM did not answer in time, or answered with a server error."""


class Refused(IpamError):
    """The IPAM answered no: the address is taken there, nothing is left, a tag or tenant
    it should set does not exist, or the token may not do this."""


class Exhausted(Refused):
    """No free address left in any of the group's prefixes of the family."""


@dataclass(frozen=True, kw_only=True, order=True)
class Owner:
    """The Service an address is recorded for."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, kw_only=True)
class Record:
    """One address object in the IPAM, inside the group's prefixes."""

    address: IPAddress
    ident: str
    """The IPAM's own id of the object."""
    owner: Owner | None
    """The Service lbroute recorded it for; None: not lbroute's (of this cluster)."""
    shown: str
    """How to name the object in a message (its description, or what it is assigned to)."""
    active: bool = True
    """False for an object lbroute released by marking it (``onRelease: deprecate``)."""


class Provider(Protocol):
    """One ServiceGroup's external IPAM."""

    @property
    def name(self) -> str:
        """For messages: ``NetBox at https://...``."""
        ...

    def claim(self, family: Family, owner: Owner, address: IPAddress | None) -> IPAddress:
        """Record an address of ``family`` for ``owner`` and return it: ``address`` if
        given (:class:`Refused` when another object has it), else the next free one of the
        group's prefixes (:class:`Exhausted` when none is left). An address already
        recorded for ``owner`` in that family (an earlier claim whose Service was never
        written) is returned again, not made twice."""
        ...

    def claim_free(self, family: Family, owners: Sequence[Owner]) -> Mapping[Owner, IPAddress]:
        """Record a free address of ``family`` for each of ``owners`` at once (an owner
        already recorded gets its address again); the owners missing from the result got
        none because the prefixes are full."""
        ...

    def release(self, record: Record) -> None:
        """Give ``record`` back: delete it, or mark it released, as the group says."""
        ...

    def adopt(self, record: Record, owner: Owner) -> None:
        """Record lbroute's ``record`` for ``owner`` instead (its Service let go of the
        address, which ``owner`` holds)."""
        ...

    def restore(self, address: IPAddress, owner: Owner) -> None:
        """Record ``address`` for ``owner`` again (its record was deleted by hand)."""
        ...

    def records(self) -> Sequence[Record]:
        """Every address object inside the group's prefixes."""
        ...

    def select(self) -> Sequence[IPNetwork]:
        """The prefixes the group's ``prefixSelector`` matches in the IPAM now, in the
        IPAM's own order (the allocator decides which of them the group takes)."""
        ...
