"""What the agent reports: a status document, reports to publish, Prometheus metrics.

The status document (JSON, written atomically to the status file after every change)
is what ``lbroute status`` prints; the :class:`Report` of every pass is what a
:class:`Reporter` publishes (nodeagent.kubereport: the node's NodeState, Events,
conditions). The metrics are served with ``/healthz`` and ``/readyz`` on one port
(lbroute.kube.serving).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from lbroute.model.errors import ObjectRef, Problem


@dataclass(kw_only=True)
class LastApply:
    time: str = ""
    result: str = ""
    """Applied, Unchanged or Failed (the NodeState enum)."""
    error: str = ""
    duration: float = 0.0


@dataclass(kw_only=True)
class Status:
    node: str
    router: str = ""
    mode: str = ""
    config_hash: str = ""
    last_apply: LastApply = field(default_factory=LastApply)
    announced: list[dict[str, Any]] = field(default_factory=list)
    """[{address: '192.0.2.7/24', group: 'ns/name', services: ['ns/name', ...]}]"""
    sessions: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    updated: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Status:
        data = json.loads(text)
        data["last_apply"] = LastApply(**data.get("last_apply", {}))
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class Report:
    """Everything a reporter may publish after a pass, an apply or a session poll."""

    status: Status
    """A copy of the agent's status document."""
    announced: dict[ObjectRef, tuple[str, ...]]
    """Services announced from this node -> their addresses on kube-lb0."""
    local: frozenset[ObjectRef]
    """The ETP Local Services among them."""
    object_problems: tuple[Problem, ...]
    """What is wrong with an object whatever the node (the same on every node)."""
    node_problems: tuple[Problem, ...]
    """What is wrong only here (a Peer this node's router cannot run, a Service...)."""
    objects: tuple[dict[str, Any], ...]
    """The source's objects the pass used, as they are (with their status)."""
    agent: ObjectRef | None = None
    """The NodeAgent that configures this node."""


class Reporter(Protocol):
    def publish(self, report: Report) -> None:
        """Take the newest report; must return at once (publishing happens elsewhere)."""
        ...


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Metrics:
    """The agent's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.addresses = Gauge(
            "lbroute_announced_addresses",
            "Service addresses on the dummy interface, by family.",
            ["family"],
            registry=self.registry,
        )
        self.applies = Counter(
            "lbroute_router_applies",
            "Router configuration applies, by result (applied, failed).",
            ["result"],
            registry=self.registry,
        )
        self.render_seconds = Histogram(
            "lbroute_render_seconds",
            "Time to render the router configuration.",
            registry=self.registry,
        )
        self.apply_seconds = Histogram(
            "lbroute_apply_seconds",
            "Time to validate, write and reload the router configuration.",
            registry=self.registry,
        )
        self.sessions = Gauge(
            "lbroute_sessions",
            "Routing sessions by protocol and state, as the router reports them.",
            ["protocol", "state"],
            registry=self.registry,
        )
        self.invalid_objects = Gauge(
            "lbroute_invalid_objects",
            "Objects left out because they are invalid.",
            registry=self.registry,
        )
        self.netlink_errors = Counter(
            "lbroute_netlink_errors",
            "Addresses that could not be added or removed.",
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "lbroute_events_dropped",
            "Kubernetes Events not sent because of the rate limit.",
            registry=self.registry,
        )
