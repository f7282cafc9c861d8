"""The allocator's Prometheus metrics, in a registry of their own.

Pool size and addresses in use per pool, allocation failures by reason, addresses
written and taken back, whether each group's external IPAM answers, leadership, the
time a pass takes to decide, and Events dropped by the rate limit. The controller
(allocator.controller) sets leadership and the pass time; what a pass writes
(allocator.writer) sets the rest; allocator.main serves them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class AllocatorMetrics:
    """The allocator's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["group", "pool", "family"]
        self.pool_size = Gauge(
            "lbroute_allocator_pool_addresses",
            "Addresses a pool may hand out (network, broadcast and anycast left out).",
            labels,
            registry=self.registry,
        )
        self.pool_in_use = Gauge(
            "lbroute_allocator_pool_in_use",
            "Addresses of a pool held by Services.",
            labels,
            registry=self.registry,
        )
        self.failures = Counter(
            "lbroute_allocator_allocation_failures",
            "Services that could not get (all) their addresses, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.assigned = Counter(
            "lbroute_allocator_addresses_assigned",
            "Addresses written to Services.",
            registry=self.registry,
        )
        self.released = Counter(
            "lbroute_allocator_addresses_released",
            "Addresses taken back from Services.",
            registry=self.registry,
        )
        self.leader = Gauge(
            "lbroute_allocator_leader",
            "1 while this replica holds the lease and writes.",
            registry=self.registry,
        )
        self.pass_seconds = Gauge(
            "lbroute_allocator_pass_seconds",
            "Time the last pass took to compute every Service's addresses.",
            registry=self.registry,
        )
        self.ipam_up = Gauge(
            "lbroute_allocator_external_ipam_up",
            "1 while a ServiceGroup's external IPAM (NetBox) answers, 0 while it is "
            "unreachable or refuses lbroute (no token, no prefix).",
            ["group"],
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "lbroute_allocator_events_dropped",
            "Events not sent because of the rate limit.",
            registry=self.registry,
        )
