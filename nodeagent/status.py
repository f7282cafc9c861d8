"""What the agent reports: a status document, reports to publish, Prometheus metrics.

The status document (JSON, written atomically to the status file after every change,
readable by its owner only: :data:`STATUS_MODE`) is what ``lbroute status`` prints; the
:class:`Report` of every pass is what a :class:`Reporter` publishes (nodeagent.kubereport:
the node's NodeState, Events, conditions). The router's message in a failed apply has its
passwords and keys redacted before it is in either. The metrics are served with
``/healthz`` and ``/readyz`` on one port (lbroute.kube.serving).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from lbroute.model.errors import ObjectRef, Problem
from lbroute.model.fields import IPAddress
from lbroute.model.secrets import redact
from nodeagent.local.election import NoHolder
from nodeagent.routers.driver import Outcome

STATUS_MODE = 0o600
"""The status file's mode: the router's messages in it quote configuration lines."""


@dataclass(kw_only=True)
class LastApply:
    """The last attempt to make a configuration the router's running one."""

    time: str = ""
    """When it ended (UTC, ``2026-11-28T01:12:09Z``)."""
    result: str = ""
    """Applied, Unchanged or Failed (the NodeState enum)."""
    reason: str = ""
    """Why it failed ("" when it did not), a :class:`~nodeagent.routers.Outcome` value:
    Rejected (the router refused the text: not tried again until it changes),
    NotConverged (the router took it but still runs something else), Unavailable (the
    router did not answer), Refused (lbroute did not load it: the router is not set up
    for it). All but Rejected are retried on the backoff."""
    error: str = ""
    """The router's own message when it failed."""
    duration: float = 0.0
    """Seconds it took."""

    def summary(self, router: str) -> str:
        """What a failed apply came to, in one sentence (see ``reason``)."""
        try:
            return Outcome(self.reason).summary(router)
        except ValueError:  # a document from before reasons
            return f"the {router} did not take the new configuration"


@dataclass(frozen=True, kw_only=True)
class Announced:
    """One address on kube-lb0, and what it is for."""

    address: str
    """The address with its prefix length: ``192.0.2.7/24``."""
    group: str
    """The ServiceGroup that announces it: ``namespace/name``."""
    services: tuple[str, ...] = ()
    """The Services it serves: ``namespace/name`` each."""


@dataclass(frozen=True, kw_only=True)
class LocalHeld:
    """A local address (``announce: local``) this node holds on its NIC."""

    address: str
    """With the prefix length of its subnet on the NIC: ``192.0.2.7/24``."""
    interface: str
    """The NIC it is on."""
    group: str = ""
    """The ServiceGroup of its pool: ``namespace/name``."""
    services: tuple[str, ...] = ()
    """The Services that use it: ``namespace/name`` each."""
    since: str = ""
    """When this node took it (UTC)."""


@dataclass(frozen=True, kw_only=True)
class LocalElected:
    """The election of one local address, the same on every node."""

    address: IPAddress
    group: ObjectRef
    """The ServiceGroup of its pool."""
    services: tuple[ObjectRef, ...] = ()
    """The Services that use it."""
    holder: str | None = None
    """The node elected to hold it; None: no node may (``why``)."""
    why: NoHolder | None = None
    local_traffic: tuple[ObjectRef, ...] = ()
    """Its Services with ``externalTrafficPolicy: Local`` (``why`` NO_ENDPOINT: none of
    them has a ready endpoint on a node that could hold it)."""


@dataclass(frozen=True, kw_only=True)
class LocalUnplaced:
    """A local address this node won but cannot put on its NIC."""

    address: IPAddress
    group: ObjectRef | None
    setting: tuple[str, ...]
    """The NodeAgent's ``spec.localInterface``."""
    interfaces: tuple[str, ...]
    """The interfaces this node has (neither ``lo`` nor the Service interface)."""
    message: str
    """Why, with what the named interfaces have (nodeagent.netlink.nic)."""


@dataclass(frozen=True, kw_only=True)
class LocalElections:
    """What the local loop decided in its last settled step (not while it starts or
    cannot read the Leases), for the reporter: every local address's election, the live
    members (one of them writes each ServiceGroup's ``LocalHeld`` condition) and the
    addresses this node won but cannot place."""

    elections: tuple[LocalElected, ...] = ()
    alive: tuple[str, ...] = ()
    unplaced: tuple[LocalUnplaced, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SessionState:
    """One routing session or adjacency, as the router last reported it."""

    name: str
    """The router's name for it (a BIRD protocol, an FRR neighbor)."""
    protocol: str
    """``bgp``, ``ospf``, ``ospf6``, ``rip``, ``ripng``, ``isis`` or ``bfd``."""
    state: str
    """As the router prints it: ``Established``, ``Full``, ``up``..."""
    since: str = ""
    """Uptime or time of the last state change, as the router prints it."""


@dataclass(kw_only=True)
class Status:
    """The status document: what ``lbroute status`` prints, as JSON in the status file."""

    node: str
    router: str = ""
    mode: str = ""
    config_hash: str = ""
    """The first 16 hex digits of the SHA-256 of the configuration the router runs."""
    last_apply: LastApply = field(default_factory=LastApply)
    announced: list[Announced] = field(default_factory=list)
    sessions: list[SessionState] = field(default_factory=list)
    local: list[LocalHeld] | None = None
    """The local addresses this node holds; None (left out of the document): the agent
    runs no local address loop."""
    arp: str = ""
    """What is wrong with ARP strictness for local addresses (kube-ipvs0); empty: fine."""
    problems: list[str] = field(default_factory=list)
    """What is wrong with the objects or on this node, one line each."""
    updated: str = ""
    """When the document was written (UTC)."""

    def to_json(self) -> str:
        """The document; the router's message with passwords and keys redacted."""
        data = asdict(self)
        data["last_apply"]["error"] = redact(data["last_apply"]["error"])
        if data["local"] is None:
            del data["local"]
        if not data["arp"]:
            del data["arp"]
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Status:
        """The document ``text``; ValueError or TypeError when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        data["last_apply"] = LastApply(**data.get("last_apply", {}))
        data["announced"] = [_announced(a) for a in data.get("announced", [])]
        data["sessions"] = [SessionState(**dict(s)) for s in data.get("sessions", [])]
        if data.get("local") is not None:
            data["local"] = [_local(h) for h in data["local"]]
        return cls(**data)


def _local(entry: Any) -> LocalHeld:
    fields = dict(entry)
    fields["services"] = tuple(fields.get("services", ()))
    return LocalHeld(**fields)


def _announced(entry: Any) -> Announced:
    fields = dict(entry)
    fields["services"] = tuple(fields.get("services", ()))
    return Announced(**fields)


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
    elected: LocalElections | None = None
    """The local loop's last settled decisions; None: no local loop, or not settled."""


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
        self.local_holdings = Gauge(
            "lbroute_local_holdings",
            "Local addresses (announce: local) this node holds on its NIC.",
            registry=self.registry,
        )
        self.local_elections = Counter(
            "lbroute_local_elections",
            "Elections of local addresses whose outcome changed.",
            registry=self.registry,
        )
        self.local_handovers = Counter(
            "lbroute_local_handovers",
            "Local addresses this node took over or released, by direction.",
            ["direction"],
            registry=self.registry,
        )
        self.local_announcements = Counter(
            "lbroute_local_announcements",
            "Gratuitous ARP frames and unsolicited Neighbor Advertisements sent, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.local_failures = Counter(
            "lbroute_local_failures",
            "Steps of the local address loop that failed (retried).",
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "lbroute_events_dropped",
            "Kubernetes Events not sent because of the rate limit.",
            registry=self.registry,
        )
