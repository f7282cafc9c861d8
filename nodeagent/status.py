"""What the agent reports: a status document, reports to publish, Prometheus metrics.

The status document (JSON, written atomically to the status file after every change,
readable by its owner only: :data:`STATUS_MODE`) is what ``lbroute status`` prints; the
:class:`Report` of every pass is what a :class:`Reporter` publishes (nodeagent.kubereport:
the node's NodeState, Events, conditions). The router's message in a failed apply has its
passwords and keys redacted before it is in either. The metrics are served with
``/healthz`` and ``/readyz`` on one port (lbroute.kube.serving).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
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

PID_MAX = 1 << 22
"""The largest pid Linux gives (``PID_MAX_LIMIT``)."""

HEARTBEAT = 5.0
"""Seconds after which the agent writes the status document again though nothing
changed (:meth:`Status.due`), so that a reader can tell a current document from one
that an agent which stopped left behind."""


@dataclass(frozen=True, kw_only=True)
class Writer:
    """The process that wrote the status document: ``lbroute status`` checks that it
    still runs. A pid alone could be another process's by now; with its start time (in
    clock ticks after boot, field 22 of ``/proc/PID/stat``) and the boot's id it is
    this one. Pids only mean something in the pid namespace they were written in."""

    pid: int
    start: int = 0
    """Its start in clock ticks after boot; 0: unknown."""
    boot: str = ""
    """``/proc/sys/kernel/random/boot_id`` when it started."""
    pidns: str = ""
    """Its pid namespace, as ``/proc/self/ns/pid`` links to it: ``pid:[4026531836]``."""
    started: str = ""
    """When it started (UTC), for people."""
    heartbeat: float = HEARTBEAT
    """It writes the document at least this often (seconds)."""

    @classmethod
    def this_process(cls) -> Writer:
        """This process (what /proc tells of it; fields it cannot read left empty)."""
        return _this_process(os.getpid())


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
    weight: int = 0
    """Weighted ECMP: the ready endpoints behind it on this node, as announced in the
    link-bandwidth community (0: not weighted; left out of the document then)."""
    bgp_class: str = ""
    """The BGP class its Services picked (docs/bgp-classes.md; "": the group's default,
    left out of the document then)."""


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


@dataclass(frozen=True, kw_only=True)
class DrainStatus:
    """Where the node is in a drain (nodeagent.drain): Serving, Draining (routes
    announced de-preferred) or Drained (withdrawn, sessions up)."""

    state: str = "Serving"
    reasons: tuple[str, ...] = ()
    """What makes it drain: the exclusion label, a cordon, a shutdown, ``lbroute drain``."""
    since: str = ""
    """When the drain began (UTC); empty when serving."""
    withdraw_at: str = ""
    """When the routes are (or were) withdrawn (UTC); empty when serving."""


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
    drain: DrainStatus = field(default_factory=DrainStatus)
    """Left out of the document while the node serves."""
    updated: str = ""
    """When the document was written (UTC)."""
    writer: Writer | None = field(default_factory=Writer.this_process)
    """The process that writes it: this one for a new document; None (left out of the
    document) when a document read says nothing of it (an agent from before)."""
    _encoded: _Encoded = field(
        default_factory=lambda: _Encoded(), init=False, repr=False, compare=False
    )

    def due(self) -> bool:
        """Whether the document written is :data:`HEARTBEAT` seconds old: the agent
        writes it again then, though nothing changed (the first one is its first
        pass's)."""
        return bool(self.updated) and self.updated <= stamp(time.time() - HEARTBEAT)

    def to_json(self) -> str:
        """The document; the router's message with passwords and keys redacted. Each
        announced address (10,000 at scale) is encoded once, when it first appears in
        the document (:class:`_Encoded`), so that a document written after one Service
        changed costs about what the change does: encoding every address each time was
        most of a pass at 10,000 Services."""
        data = asdict(dataclasses.replace(self, announced=[]))
        del data["_encoded"]
        data["last_apply"]["error"] = redact(data["last_apply"]["error"])
        if data["local"] is None:
            del data["local"]
        if not data["arp"]:
            del data["arp"]
        if data["writer"] is None:
            del data["writer"]
        if self.drain == DrainStatus():
            del data["drain"]
        text = json.dumps(data, sort_keys=True)  # no indent: the C encoder, 10x faster
        # The only "announced": [] outside a string: quotes inside strings are escaped.
        head, tail = text.split('"announced": []', 1)
        return f'{head}"announced": [{", ".join(self._encoded.encode(self.announced))}]{tail}'

    def copy(self) -> Status:
        """What :meth:`from_json` of :meth:`to_json` gives, without the JSON: the
        router's message redacted, the lists the agent replaces (never changes) shared.
        At 10,000 addresses the round trip took 30 ms of every status write."""
        apply = dataclasses.replace(self.last_apply, error=redact(self.last_apply.error))
        return dataclasses.replace(self, last_apply=apply)

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
        drain = dict(data.get("drain") or {})
        drain["reasons"] = tuple(drain.get("reasons", ()))
        data["drain"] = DrainStatus(**drain)
        writer = data.get("writer")
        data["writer"] = None if writer is None else Writer(**dict(writer))
        pid = data["writer"] and data["writer"].pid
        if pid is not None and (
            not isinstance(pid, int) or isinstance(pid, bool) or not 1 <= pid <= PID_MAX
        ):
            raise ValueError(f"writer.pid: {pid!r} is not a process id (1 to {PID_MAX})")
        return cls(**data)


class _Encoded:
    """Each announced address's JSON, kept while the address is in the document (by
    identity: the agent keeps the same :class:`Announced` while the address does not
    change; held here, so that an id is not reused while it is kept)."""

    def __init__(self) -> None:
        self._held: dict[int, Announced] = {}
        self._text: dict[int, str] = {}

    def encode(self, announced: list[Announced]) -> list[str]:
        ids = list(map(id, announced))
        now = set(ids)
        for key in self._held.keys() - now:
            del self._held[key], self._text[key]
        if len(now) > len(self._held):
            for a in announced:
                if id(a) not in self._held:
                    self._held[id(a)], self._text[id(a)] = a, _encode(a)
        return list(map(self._text.__getitem__, ids))


def _encode(a: Announced) -> str:
    entry: dict[str, Any] = {"address": a.address, "group": a.group, "services": list(a.services)}
    if a.weight:
        entry["weight"] = a.weight
    if a.bgp_class:
        entry["bgp_class"] = a.bgp_class
    return json.dumps(entry, sort_keys=True)


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, ValueError):
        return ""


def process_start(pid: int) -> tuple[int, str] | None:
    """The start of process ``pid`` (clock ticks after boot) and its state letter
    (``Z``: a zombie, gone but not reaped), from ``/proc/PID/stat``; None: no such file
    or not readable."""
    text = _read(f"/proc/{pid}/stat")
    fields = text[text.rfind(")") + 1 :].split()  # its name, in parentheses, may hold spaces
    try:
        return int(fields[19]), fields[0]
    except (IndexError, ValueError):
        return None


def boot_id() -> str:
    return _read("/proc/sys/kernel/random/boot_id")


def pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@functools.cache
def _this_process(pid: int) -> Writer:
    found = process_start(pid)
    start = found[0] if found else 0
    started = ""
    if start:
        btime = next(
            (int(line.split()[1]) for line in _read("/proc/stat").splitlines()
             if line.startswith("btime ")),
            0,
        )  # fmt: skip
        if btime:
            started = stamp(btime + start / os.sysconf("SC_CLK_TCK"))
    return Writer(pid=pid, start=start, boot=boot_id(), pidns=pid_namespace(), started=started)


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
    announced: Mapping[ObjectRef, tuple[str, ...]]
    """Services announced from this node -> their addresses on kube-lb0."""
    local: AbstractSet[ObjectRef]
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


def stamp(seconds: float) -> str:
    """``seconds`` after the epoch as the document writes times (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def now() -> str:
    return stamp(time.time())


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
        self.pass_seconds = Histogram(
            "lbroute_agent_pass_seconds",
            "Where a pass's time goes, by phase: wait (from the change reaching the source "
            "to the pass starting: reading changed files, queueing), objects (reading "
            "Services and the model), desired (the node's addresses), netlink (kube-lb0 "
            "and table 4242), rest (rendering when the policy changed, status).",
            ["phase"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
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
        self.session_up = Gauge(
            "lbroute_session_up",
            "1 while a routing session carries routes (BGP Established, OSPF Full, "
            "IS-IS/RIP/BFD up), else 0; one series per session the router reports; "
            "peer: the Peer objects the session is for (comma-separated, empty if none).",
            ["protocol", "session", "peer"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "lbroute_ready",
            "1 while the agent is ready: its router runs a configuration it applied.",
            registry=self.registry,
        )
        self.last_apply_ok = Gauge(
            "lbroute_last_apply_ok",
            "1 when the router runs the newest configuration, 0 after an apply that "
            "failed (the last good one keeps running).",
            registry=self.registry,
        )
        self.group_addresses = Gauge(
            "lbroute_group_addresses",
            "Service addresses this node announces, per ServiceGroup (bounded by the "
            "groups; no per-Service series).",
            ["group"],
            registry=self.registry,
        )
        self.drain = Gauge(
            "lbroute_drain_state",
            "1 for the node's drain state (Serving, Draining: routes de-preferred, "
            "Drained: withdrawn), 0 for the others.",
            ["state"],
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
