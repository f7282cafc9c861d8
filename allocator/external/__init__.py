"""External IPAMs: a ServiceGroup's addresses from NetBox (or, later, another IPAM).

- :mod:`~allocator.external.provider`: what an IPAM is to the allocator (the
  :class:`Provider` interface, its errors and records);
- :mod:`~allocator.external.netbox`: NetBox, through pynetbox;
- :mod:`~allocator.external.broker`: between the passes and the providers: requests,
  claims, backoff, and the periodic comparison of records with Services.
"""

from allocator.external.broker import Broker, Outcome
from allocator.external.netbox import NetBoxProvider
from allocator.external.provider import (
    Exhausted,
    IpamError,
    Owner,
    Provider,
    Record,
    Refused,
    Unavailable,
)

__all__ = [
    "Broker",
    "Exhausted",
    "IpamError",
    "NetBoxProvider",
    "Outcome",
    "Owner",
    "Provider",
    "Record",
    "Refused",
    "Unavailable",
]
