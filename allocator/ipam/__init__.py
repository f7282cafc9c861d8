"""The allocator's core: ServiceGroups and Services in, each Service's addresses out.

Pure and deterministic: no I/O, no clock, no Kubernetes. The Services' current
``status.loadBalancer.ingress`` is the only record of what is taken, so an allocator
that restarts (or a new leader) rebuilds exactly the state the last one left, and no
address already given ever changes because of a restart or a pool edit.

A Service keeps its address when its pool is edited or shrunk, or when its group has
no pool of that family any more; one that now lies outside every pool of its group is
reported (``outside``). Addresses move only when the Service asks: another requested
address, a family its ``ipFamilyPolicy`` no longer wants, or its
``lbroute.io/service-group`` annotation naming another group than the one the address
came from.

The modules, each standing on the ones after it:

- :mod:`~allocator.ipam.incremental`: the same pass at the cost of what changed since
  the last one (:class:`Incremental`, the controller's);
- :mod:`~allocator.ipam.assign`: one pass, :func:`allocate`, in its three steps (each
  step's work for one Service or address a function of its own, shared with the above);
- :mod:`~allocator.ipam.plan`: the decision for one Service (group, families, what it
  keeps, its requested address, a shared address);
- :mod:`~allocator.ipam.stats`: the counts per pool and ServiceGroup;
- :mod:`~allocator.ipam.journal`: a book whose changes by steps 2 and 3 can be undone;
- :mod:`~allocator.ipam.book`: what is taken and by whom, and each pool's cursor;
- :mod:`~allocator.ipam.results`: what a pass returns (assignments, failures and their
  reasons, addresses kept outside every pool, counts, what differs from the pass before).

This package exports what the controller and ``lbroute allocate`` use.
"""

from allocator.ipam.assign import allocate, invalid_groups
from allocator.ipam.incremental import Incremental
from allocator.ipam.results import (
    Allocation,
    Assignment,
    Delta,
    ExternalRequest,
    Failure,
    GroupStats,
    Outside,
    PoolStats,
    Reason,
)

__all__ = [
    "Allocation",
    "Assignment",
    "Delta",
    "ExternalRequest",
    "Failure",
    "GroupStats",
    "Incremental",
    "Outside",
    "PoolStats",
    "Reason",
    "allocate",
    "invalid_groups",
]
