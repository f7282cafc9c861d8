"""The node agent's loop: objects in, kube-lb0 addresses and router configuration out.

One direction only::

    source snapshot -> objects -> desired state for this node (pure)
      -> netlink diff on kube-lb0 (at once, every change)
      -> render; if the text changed: validate, write, reload (coalesced, see below)
      -> status, metrics

Per-Service churn only changes addresses; the router configuration changes only when
a ServiceGroup, Peer, NodeAgent or a template in the templates directory does (that
directory is watched, wherever it was named). Bursts of changes are coalesced: a new
configuration is applied once no newer one arrived for ``settle`` seconds, and at the
latest ``max_delay`` seconds after the first.

A configuration the router's parser rejects is not retried until the input changes or
the router restarts; the last good one keeps running. Any other failed apply (the
router not answering, a reload that did not take) is retried with exponential backoff,
a few times. When the router daemon restarts, the agent applies its configuration again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lbroute.kube.directory import DirectoryWatcher, Snapshot, Source
from lbroute.kube.serving import Health
from lbroute.model import api
from lbroute.model.endpoints import ready_nodes, split_objects
from lbroute.model.errors import LbrouteError, ObjectRef, Problem, Severity
from lbroute.model.files import write_atomic
from lbroute.model.service import parse_service
from nodeagent.desired import DesiredState, Interface, desired_state
from nodeagent.netlink import Kubelb
from nodeagent.routers import ApplyResult, RouterDriver, make_driver
from nodeagent.status import (
    LastApply,
    Metrics,
    Report,
    Reporter,
    Status,
    now,
)
from renderer.render import render_view
from renderer.templating import TemplateSet, load_template_set
from renderer.view import build_view, select_agent

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class AgentSettings:
    """How one agent runs. Unset router fields come from the node's NodeAgent object."""

    node: str
    """Name of the Node this agent runs on."""
    router: api.Router | None = None
    """Overrides NodeAgent.spec.router."""
    mode: api.Mode | None = None
    """Overrides NodeAgent.spec.mode."""
    config_path: Path | None = None
    """Router configuration file (managed mode); default per router."""
    socket_path: Path | None = None
    """BIRD control socket, or FRR vty socket directory."""
    templates_dir: Path | None = None
    """Overrides NodeAgent.spec.templatesDir."""
    default_class: bool = False
    """Also announce LoadBalancer Services that set no loadBalancerClass."""
    status_file: Path = Path("/run/lbroute/status.json")
    hostname: str = field(default_factory=socket.gethostname)
    settle: float = 0.2
    max_delay: float = 2.0
    check_interval: float = 1.0
    sessions_every: int = 5
    """Poll the router's sessions every this many checks."""
    retry_backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    """Seconds before each retry of an apply that failed for another reason than the
    router's parser rejecting the configuration; after the last, wait for a change."""
    isis_pace: float = 0.25
    """Addresses that only IS-IS announces are programmed at most this often (see
    :class:`Pacer`)."""


@dataclass
class Pacer:
    """When the addresses that only IS-IS announces reach kube-lb0.

    FRR's isisd postpones regenerating its LSP while redistributed routes keep changing
    less than 100 ms apart, so under a steady stream of Services (one every 50 ms) it
    would announce none of them until the stream stops. The first change of such an
    address is programmed at once; further ones wait until ``interval`` has passed since,
    then all go together, leaving isisd the quiet gap it waits for. Every other address
    is programmed at once, always.
    """

    interval: float
    on: frozenset[Interface] = frozenset()
    """The paced addresses as last programmed."""
    until: float = 0.0
    """No paced change before this time (monotonic)."""

    def target(
        self, wanted: frozenset[Interface], paced: frozenset[Interface], now: float
    ) -> tuple[frozenset[Interface], float]:
        """The addresses to program now, and when to program again (inf: no need)."""
        paced_wanted = wanted & paced
        if paced_wanted == self.on:
            return wanted, float("inf")
        if now < self.until:  # hold paced addresses as they are, added or removed
            return (wanted - paced) | self.on, self.until
        self.on, self.until = paced_wanted, now + self.interval
        return wanted, float("inf")


def isis_only(model: api.Model, desired: DesiredState) -> frozenset[Interface]:
    """The addresses that only ServiceGroups carried by IS-IS alone announce."""
    isis = {g.ref for g in model.service_groups if g.protocols == frozenset({api.Protocol.ISIS})}
    only: set[Interface] = set()
    other: set[Interface] = set()
    for a in desired.announcements:
        (only if a.group in isis else other).add(a.interface)
    return frozenset(only - other)


@dataclass(frozen=True, kw_only=True)
class RouterSettings:
    """Everything that decides which router the agent drives, and how."""

    router: api.Router
    mode: api.Mode
    config_path: Path
    socket_path: Path
    include_path: Path | None
    reload_command: tuple[str, ...]
    templates_dir: Path | None
    interface: str


DEFAULT_PATHS = {
    api.Router.BIRD: (Path("/etc/bird/bird.conf"), Path("/run/bird/bird.ctl")),
    api.Router.FRR: (Path("/etc/frr/frr.conf"), Path("/var/run/frr")),
}


def router_settings(settings: AgentSettings, agent: api.NodeAgent | None) -> RouterSettings:
    spec = agent or api.NodeAgent(ref=ObjectRef(kind="NodeAgent", namespace="", name=""))
    router = settings.router or spec.router
    default_config, default_socket = DEFAULT_PATHS[router]
    templates = settings.templates_dir or (Path(spec.templates_dir) if spec.templates_dir else None)
    return RouterSettings(
        router=router,
        mode=settings.mode or spec.mode,
        config_path=settings.config_path or Path(spec.config_path or default_config),
        socket_path=settings.socket_path or Path(spec.socket_path or default_socket),
        include_path=Path(spec.include_path) if spec.include_path else None,
        reload_command=spec.reload_command,
        templates_dir=templates,
        interface=spec.interface,
    )


DriverFactory = Callable[[RouterSettings], RouterDriver]


def _make_driver(rs: RouterSettings) -> RouterDriver:
    return make_driver(
        rs.router,
        config_path=rs.config_path,
        socket_path=rs.socket_path,
        mode=rs.mode,
        include_path=rs.include_path,
        reload_command=rs.reload_command,
    )


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        source: Source,
        *,
        driver_factory: DriverFactory = _make_driver,
        metrics: Metrics | None = None,
        health: Health | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.driver_factory = driver_factory
        self.metrics = metrics or Metrics()
        self.health = health or Health()
        self.status = Status(node=settings.node)
        self.reporter = reporter
        self._report: Report | None = None
        self._kubelb: Kubelb | None = None
        self._router: RouterSettings | None = None
        self._driver: RouterDriver | None = None
        self._applied: str | None = None
        self._failed: str | None = None
        self._pending: str | None = None
        self._pending_since = 0.0
        self._pending_last = 0.0
        self._generation: str | None = None
        self._checks = 0
        self._router_down = False
        self._problems: list[str] = []
        self._events: queue.Queue[Snapshot | None] = queue.Queue()
        """Snapshots from the source; None when a template changed."""
        self._snapshot: Snapshot | None = None
        self._templates: TemplateSet | None = None
        """The router's templates as last loaded; dropped when a template changes."""
        self._watcher: DirectoryWatcher | None = None
        self._retry_at = float("inf")
        self._retries = 0
        self._pacer = Pacer(settings.isis_pace)
        self._program_at = float("inf")
        """When addresses held back by the pacer are due."""
        self._programmed: tuple[DesiredState, frozenset[Interface]] | None = None
        """The newest desired state and its paced addresses, for a held-back program."""

    # -- the loop ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        feeder = threading.Thread(
            target=self._feed, args=(stop,), name="lbroute-source", daemon=True
        )
        feeder.start()
        next_check = time.monotonic()
        try:
            while not stop.is_set():
                due = min(self._apply_due(), self._retry_at, self._program_at, next_check)
                try:
                    first = self._events.get(timeout=max(0.0, due - time.monotonic()))
                    self._handle([first, *self._drain()])
                except queue.Empty:
                    pass
                if time.monotonic() >= self._program_at and self._programmed is not None:
                    self._program(*self._programmed)
                    self._write_status()
                if self._pending is not None and time.monotonic() >= self._apply_due():
                    self.apply_pending()
                if time.monotonic() >= self._retry_at:
                    self._retry()
                if time.monotonic() >= next_check:
                    self.check_router()
                    next_check = time.monotonic() + self.settings.check_interval
                self.health.beat()
        finally:
            stop.set()
            if self._watcher is not None:
                self._watcher.stop()
            if self._kubelb is not None:
                self._kubelb.close()

    def _drain(self) -> list[Snapshot | None]:
        events: list[Snapshot | None] = []
        while not self._events.empty():
            events.append(self._events.get_nowait())
        return events

    def _handle(self, events: list[Snapshot | None]) -> None:
        """Process the newest snapshot; a template change alone re-renders the last."""
        snapshots = [e for e in events if e is not None]
        if len(snapshots) < len(events):
            log.info("templates in %s changed", self._router and self._router.templates_dir)
            self._templates = None
        snapshot = snapshots[-1] if snapshots else self._snapshot
        if snapshot is not None:
            self.process(snapshot)

    def _feed(self, stop: threading.Event) -> None:
        try:
            for snapshot in self.source.snapshots(stop):
                self._events.put(snapshot)
        except Exception:  # the loop must learn that its source died
            log.exception("the object source failed")
            stop.set()

    def _apply_due(self) -> float:
        if self._pending is None:
            return float("inf")
        return min(
            self._pending_last + self.settings.settle, self._pending_since + self.settings.max_delay
        )

    # -- one pass ---------------------------------------------------------------------

    def process(self, snapshot: Snapshot) -> None:
        """Compute and program the node's addresses, and render its configuration."""
        self._snapshot = snapshot
        problems = [f"error: {e}" for e in snapshot.errors]
        services_raw, slices_raw, rest = split_objects(snapshot.objects)
        model = api.load(rest)
        svc_problems: list[Problem] = []
        services = [
            s
            for s in (
                parse_service(o, default_class=self.settings.default_class, problems=svc_problems)
                for o in services_raw
            )
            if s is not None
        ]
        node = model.node(self.settings.node) or api.Node(name=self.settings.node)
        agent_spec, agent_problems = select_agent(model, node)
        self._use_router(router_settings(self.settings, agent_spec))
        assert self._router is not None
        desired = desired_state(model, services, ready_nodes(slices_raw), self.settings.node)
        self._program(desired, isis_only(model, desired))
        self.metrics.invalid_objects.set(sum(p.severity is Severity.ERROR for p in model.problems))
        text, render_problems = self._render(model, agent_spec.ref if agent_spec else None)
        node_problems = (*agent_problems, *svc_problems, *desired.problems, *render_problems)
        problems += [str(p) for p in (*model.problems, *node_problems)]
        for problem in sorted(set(problems) - set(self._problems)):
            log.warning("%s", problem)
        self._problems = problems
        self.status.problems = problems
        if text is not None:
            self._offer(text)
        local = {s.ref for s in services if s.local}
        announced = {
            service: tuple(map(str, interfaces))
            for service, interfaces in desired.by_service().items()
        }
        self._report = Report(
            status=self.status,
            announced=announced,
            local=frozenset(local & announced.keys()),
            object_problems=tuple(model.problems),
            node_problems=tuple(node_problems),
            objects=snapshot.objects,
            agent=agent_spec.ref if agent_spec else None,
        )
        self._write_status()

    def _use_router(self, rs: RouterSettings) -> None:
        if rs == self._router:
            return
        if self._router is not None:
            log.info("router settings changed: %s %s", rs.router, rs.mode)
        self._router = rs
        self._driver = self.driver_factory(rs)
        self._applied = self._failed = self._pending = None
        self._generation = None
        self._templates = None
        self._not_retrying()
        self._watch_templates(rs.templates_dir)
        self.status.router, self.status.mode = rs.router.value, rs.mode.value
        if self._kubelb is None or self._kubelb.ifname != rs.interface:
            if self._kubelb is not None:
                self._kubelb.close()
            self._kubelb = Kubelb(rs.interface)
            self._kubelb.ensure()

    def _watch_templates(self, directory: Path | None) -> None:
        if self._watcher is not None:
            if self._watcher.path == directory:
                return
            self._watcher.stop()
            self._watcher = None
        if directory is not None:
            self._watcher = DirectoryWatcher(directory, lambda: self._events.put(None)).start()

    def _program(self, desired: DesiredState, paced: frozenset[Interface]) -> None:
        assert self._kubelb is not None
        self._programmed = (desired, paced)
        target, self._program_at = self._pacer.target(desired.interfaces, paced, time.monotonic())
        changes = self._kubelb.reconcile(target)
        if changes.failed:
            self.metrics.netlink_errors.inc(len(changes.failed))
        announced = changes.owned
        for family in api.Family:
            version = 4 if family is api.Family.IPV4 else 6
            self.metrics.addresses.labels(family.value).set(
                sum(1 for a in announced if a.version == version)
            )
        self.status.announced = [
            {
                "address": str(a.interface),
                "group": f"{a.group.namespace}/{a.group.name}",
                "services": [f"{s.namespace}/{s.name}" for s in a.services],
            }
            for a in desired.announcements
            if a.interface in announced
        ]

    def _render(
        self, model: api.Model, agent: ObjectRef | None
    ) -> tuple[str | None, list[Problem]]:
        assert self._router is not None
        rs = self._router
        started = time.monotonic()
        try:
            view = build_view(
                model, rs.router, self.settings.node, mode=rs.mode, hostname=self.settings.hostname
            )
            if self._templates is None:
                self._templates = load_template_set(rs.router, rs.templates_dir)
            text = render_view(view, self._templates)
        except LbrouteError as exc:
            ref = agent or ObjectRef(kind="Node", namespace="", name=self.settings.node)
            message = f"cannot render the {rs.router} configuration: {exc}"
            return None, [Problem(severity=Severity.ERROR, ref=ref, path="", message=message)]
        finally:
            self.metrics.render_seconds.observe(time.monotonic() - started)
        return text, list(view.problems)

    def _offer(self, text: str) -> None:
        if text != self._failed:
            self._not_retrying()
        if text == self._applied:
            self._pending = None
            if self.status.last_apply.result == "Failed":
                # Back to the configuration the router runs (a broken input was fixed):
                # nothing to apply, and the old failure no longer describes the node.
                self._record(text, ApplyResult(ok=True), result="Unchanged")
            return
        if text == self._failed:
            return  # rejected before; wait for a change
        if self._applied is None and self._failed is None and self._pending is None:
            assert self._driver is not None
            if self._driver.is_current(text):
                log.info("router already runs this configuration; nothing to apply")
                self._record(text, ApplyResult(ok=True), result="Unchanged")
                self._pending = None
                return
        now_ = time.monotonic()
        if self._pending is None:
            self._pending_since = now_
        self._pending, self._pending_last = text, now_

    def apply_pending(self) -> None:
        assert self._driver is not None and self._pending is not None
        text, self._pending = self._pending, None
        result = self._driver.apply(text)
        self.metrics.apply_seconds.observe(result.duration)
        self._record(text, result, result="Applied" if result.ok else "Failed")
        if result.ok or result.rejected:
            self._not_retrying()
        elif self._retries < len(self.settings.retry_backoff):
            delay = self.settings.retry_backoff[self._retries]
            self._retries += 1
            self._retry_at = time.monotonic() + delay
            log.warning("applying again in %g s (attempt %d)", delay, self._retries + 1)
        else:
            self._retry_at = float("inf")
            log.error("giving up after %d attempts; waiting for a change", self._retries + 1)
        self._write_status()

    def _retry(self) -> None:
        self._retry_at = float("inf")
        if self._failed is not None and self._pending is None:
            self._pending, self._failed = self._failed, None
            self.apply_pending()

    def _not_retrying(self) -> None:
        self._retry_at, self._retries = float("inf"), 0

    def _record(self, text: str, outcome: ApplyResult, *, result: str) -> None:
        self.status.last_apply = LastApply(
            time=now(), result=result, error=outcome.error, duration=round(outcome.duration, 3)
        )
        if outcome.ok:
            self._applied, self._failed = text, None
            self.status.config_hash = hashlib.sha256(text.encode()).hexdigest()[:16]
            self.health.ready = True
            if result == "Applied":
                self.metrics.applies.labels("applied").inc()
        else:
            self._failed = text
            self.metrics.applies.labels("failed").inc()
            log.error(
                "router rejected the new configuration; the last good one keeps running: %s",
                outcome.error,
            )

    # -- the router daemon ------------------------------------------------------------

    def check_router(self) -> None:
        """Notice a router restart (or its return after an outage) and apply again."""
        if self._driver is None:
            return
        generation = self._driver.generation()
        previous, self._generation = self._generation, generation
        if generation is None:
            if not self._router_down:
                log.warning("router %s is not answering", self.status.router)
            self._router_down = True
            self.health.ready = False
        else:
            restarted = previous is not None and generation != previous
            if restarted or self._router_down:
                self._reapply()
            self._router_down = False
            self.health.ready = self._applied is not None
        if self._checks % self.settings.sessions_every == 0 and generation is not None:
            self._poll_sessions()
        self._checks += 1

    def _reapply(self) -> None:
        text = self._pending or self._applied or self._failed
        if text is None:
            return
        log.info("router %s (re)started; applying the configuration again", self.status.router)
        self._applied = self._failed = None
        self._not_retrying()
        self._pending, self._pending_since, self._pending_last = text, 0.0, 0.0
        self.apply_pending()

    def _poll_sessions(self) -> None:
        assert self._driver is not None
        sessions = self._driver.sessions()
        self.status.sessions = [
            {"name": s.name, "protocol": s.protocol, "state": s.state, "since": s.since}
            for s in sessions
        ]
        self.metrics.sessions.clear()
        counts: dict[tuple[str, str], int] = {}
        for s in sessions:
            counts[(s.protocol, s.state)] = counts.get((s.protocol, s.state), 0) + 1
        for (proto, state), n in counts.items():
            self.metrics.sessions.labels(proto, state).set(n)
        self._write_status()

    def _write_status(self) -> None:
        self.status.updated = now()
        document = self.status.to_json()
        try:
            write_atomic(self.settings.status_file, document)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.settings.status_file, exc)
        if self.reporter is not None and self._report is not None:
            self.reporter.publish(
                dataclasses.replace(self._report, status=Status.from_json(document))
            )
