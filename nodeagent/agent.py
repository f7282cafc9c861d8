"""The node agent's loop: objects in, kube-lb0 addresses and router configuration out.

One direction only::

    source snapshot -> objects -> desired state for this node (pure, nodeagent.desired)
      -> netlink diff on kube-lb0 (at once; IS-IS-only ones paced: nodeagent.addresses)
      -> render; if the text changed: validate, write, reload (nodeagent.scheduler)
      -> status, metrics, reports (nodeagent.status; published by nodeagent.kubereport)

Per-Service churn only changes addresses; the router configuration changes only when
a ServiceGroup, Peer, NodeAgent or a template in the templates directory does (that
directory is watched, wherever it was named). A pass does again only what changed: the
sources hand over the very same dict for an object that did not change, so a Service
or an EndpointSlice is read again only when it is another object, the model is built
again and the configuration rendered again only when one of the other objects is (or
the drain phase, the templates, the router settings changed), the endpoints of a
Service are added up again only when one of its slices changed, the desired state is
updated for the Services that changed (nodeagent.desired.DesiredTracker) and only the
addresses whose announcement changed go to kube-lb0, which is read back and programmed
whole every 30 s (nodeagent.addresses). The status file is
written at most every :data:`STATUS_INTERVAL` after passes (at once after an apply).
Bursts of changes are coalesced: a new configuration is applied once no newer one
arrived for ``settle`` seconds, and at the latest ``max_delay`` seconds after the first
(nodeagent.settings holds the numbers).

A ServiceGroup, Peer or NodeAgent edited into an invalid one is used as its last valid
version (lbroute.model.lastgood) and reported, until it is fixed or deleted: a typo
withdraws nothing.

A configuration the router rejects is not retried until the input changes or the
router restarts; the last good one keeps running. Any other failed apply (the router not
answering; a configuration the router took but after which it still runs something
else) is retried with exponential backoff, a few times. Each is reported as what it is
(:class:`~nodeagent.routers.Outcome`: the status, the NodeState and an Event say which).
When the router daemon restarts, the agent applies its configuration again.
What to apply when is :class:`~nodeagent.scheduler.ApplySchedule`'s to decide; this
loop asks it, calls the router and tells it the outcome.

A node drains (nodeagent.drain: the exclusion label, kubelet's shutdown, ``lbroute
drain``, a cordon where the NodeAgent opts in): its configuration is rendered with its
Service routes de-preferred, then ``drainSeconds`` later withdrawn, each through the
same apply path; the addresses stay on kube-lb0 and the sessions stay up.

Which router the agent drives, and how, is decided on every pass by
:func:`~nodeagent.settings.decide_router`. Settings it keeps rather than change (an
agent in include mode whose NodeAgent went away; a NodeAgent that asks for a path or
command the command line does not allow) render nothing new: the router keeps what it
runs, and the reason is reported.

The source runs in a thread of its own; if it fails, the loop ends (and the process
with it, so that Kubernetes starts it again) rather than run on blind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbroute.kube.directory import DirectoryWatcher, Snapshot, Source
from lbroute.kube.serving import Health
from lbroute.model import api, lastgood
from lbroute.model.agentconfig import DrainPolicy
from lbroute.model.endpoints import ReadyCounter, split_objects
from lbroute.model.errors import LbrouteError, ObjectRef, Problem, Severity
from lbroute.model.files import write_atomic
from lbroute.model.reread import Delta
from lbroute.model.service import Service, parse_service
from lbroute.model.vocabulary import DEFAULT_INTERFACE, DEFAULT_LOCAL_INTERFACE
from nodeagent.addresses import Addresses
from nodeagent.desired import AnnouncedByService, DesiredTracker, LocalAnnounced
from nodeagent.drain import Drainer, began_file, drain_requested, triggers
from nodeagent.local.membership import LeaseStore
from nodeagent.local.plan import LocalInputs, local_inputs
from nodeagent.local.runner import LocalReport, LocalRunner
from nodeagent.pacing import isis_only, paced_groups
from nodeagent.routers import ApplyResult, RouterDriver, Session, make_driver
from nodeagent.scheduler import ApplySchedule, Offer
from nodeagent.sessions import SessionOwners
from nodeagent.settings import AgentSettings, RouterSettings, decide_router
from nodeagent.status import (
    STATUS_MODE,
    LastApply,
    Metrics,
    Report,
    Reporter,
    SessionState,
    Status,
    now,
)
from renderer.render import render_view
from renderer.templating import TemplateSet, load_template_set
from renderer.view import Drain, build_view, select_agent

log = logging.getLogger(__name__)

DriverFactory = Callable[[RouterSettings], RouterDriver]
STATUS_INTERVAL = 0.25
"""Seconds between two status writes after passes (issue 20): a burst of Service or
endpoint changes is written once its passes are done, at most this late; an apply, a
session change or a drain is written at once."""


def _make_driver(rs: RouterSettings) -> RouterDriver:
    return make_driver(
        rs.router,
        config_path=rs.config_path,
        socket_path=rs.socket_path,
        mode=rs.mode,
        include_path=rs.include_path,
        reload_command=rs.reload_command,
        replace_host_config=rs.mode_chosen,
    )


@dataclass(frozen=True, kw_only=True)
class _Rendered:
    """One render, and what it depended on."""

    model: api.Model
    router: RouterSettings
    agent: ObjectRef | None
    drain: Drain
    templates: TemplateSet | None
    text: str | None
    problems: tuple[Problem, ...]


def _same_objects(a: tuple[Mapping[str, Any], ...], b: tuple[Mapping[str, Any], ...]) -> bool:
    """The same objects, by identity, in the same order (the tuples hold them: no id is
    reused while they are compared)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


@dataclass(frozen=True, kw_only=True)
class RouterProbe:
    """What one check of the router found (:meth:`Agent._probe_loop`)."""

    driver: RouterDriver
    """The driver asked: a probe of one the agent has since replaced is dropped."""
    generation: str | None
    sessions: list[Session] | None
    """None: not polled this time."""


_Event = Snapshot | LocalReport | RouterProbe | None


class Agent:
    """One node's agent: :meth:`run` until ``stop``; :meth:`process` is one pass."""

    def __init__(
        self,
        settings: AgentSettings,
        source: Source,
        *,
        driver_factory: DriverFactory = _make_driver,
        metrics: Metrics | None = None,
        health: Health | None = None,
        reporter: Reporter | None = None,
        lease_store: LeaseStore | None = None,
        namespace: str = "lbroute",
    ) -> None:
        self.settings = settings
        self.source = source
        self.driver_factory = driver_factory
        self.metrics = metrics or Metrics()
        self.health = health or Health()
        self.status = Status(node=settings.node)
        self.reporter = reporter
        self.schedule = ApplySchedule(settings.apply)
        self.addresses = Addresses(settings.isis_pace, self.metrics)
        self._events: queue.Queue[_Event] = queue.Queue()
        """Snapshots from the source, reports of the local loop, what the router probe
        found; None when a template changed."""
        self.local = (
            None
            if lease_store is None
            else LocalRunner(
                lease_store,
                node=settings.node,
                namespace=namespace,
                on_report=self._events.put,
                metrics=self.metrics,
            )
        )
        """The local address loop (announce: local), in a thread of its own; None
        without a Lease store."""
        self._local_report = LocalReport()
        self._snapshot: Snapshot | None = None
        self._owners: tuple[tuple[Mapping[str, Any], ...] | None, str, SessionOwners] = (
            None,
            "",
            SessionOwners(),
        )
        self._report: Report | None = None
        """The last pass's report, without what :meth:`_write_status` adds."""
        self._problems: list[str] = []
        self._last_valid = lastgood.Memory()
        """Each ServiceGroup's, Peer's and NodeAgent's last valid version."""
        self._loaded: tuple[tuple[Mapping[str, Any], ...], api.Model] | None = None
        """The objects the model was last built from, and that model (issue 20: a pass
        for a Service or an endpoint reuses it instead of parsing every object again)."""
        self._rendered: _Rendered | None = None
        """The last render and what it was rendered from."""
        self._objects = Delta()
        """The objects of the last pass: each pass works on what is new and what went."""
        self._rest: tuple[Mapping[str, Any], ...] | None = None
        """The objects that are neither Services nor EndpointSlices, in their order."""
        self._counter = ReadyCounter()
        """Ready endpoints per Service and node, each EndpointSlice read once."""
        self._services: dict[int, Service] = {}
        """id(Service object) -> the lbroute Service it reads as, while the source keeps
        the object (the objects are held by ``_objects``)."""
        self._service_problems: dict[int, tuple[Problem, ...]] = {}
        """id(Service object) -> what is wrong with it, for those with problems."""
        self._tracker = DesiredTracker(settings.node)
        """The desired state, kept from pass to pass."""
        self._local_inputs: LocalInputs | None = None
        # The router the newest NodeAgent and the command line pick, and how it does.
        self._router: RouterSettings | None = None
        self._driver: RouterDriver | None = None
        self._templates: TemplateSet | None = None
        """The router's templates as last loaded; dropped when a template changes."""
        self._watcher: DirectoryWatcher | None = None
        self._generation: str | None = None
        self._router_down = False
        self.drainer = Drainer(state_file=began_file(settings.status_file))
        self._drain_requested = drain_requested(settings.status_file)
        """Whether ``lbroute drain`` asked for a drain, as last seen."""
        self._status_written = float("-inf")
        self._status_due = float("inf")
        """When a status write held back by :data:`STATUS_INTERVAL` is due (monotonic)."""

    # -- the loop ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        feeder = threading.Thread(
            target=self._feed, args=(stop,), name="lbroute-source", daemon=True
        )
        feeder.start()
        if self.local is not None:
            self.local.start()
            # A stop releases the local addresses at once, whatever the loop is doing.
            threading.Thread(
                target=self._release_on_stop, args=(stop,), name="lbroute-local-stop", daemon=True
            ).start()
        threading.Thread(
            target=self._probe_loop, args=(stop,), name="lbroute-router-probe", daemon=True
        ).start()
        next_check = time.monotonic()
        try:
            while not stop.is_set():
                due = min(
                    self.schedule.due(),
                    self.addresses.due,
                    self.addresses.audit_at,
                    next_check,
                    self.drainer.due(),
                    self._status_due,
                )
                try:
                    first = self._events.get(timeout=max(0.0, due - time.monotonic()))
                    self._handle([first, *self._drain()])
                except queue.Empty:
                    pass
                if self.addresses.again(time.monotonic()):
                    self._write_status_soon()
                if time.monotonic() >= self.addresses.audit_at and self._loaded is not None:
                    self._program_all(self._loaded[1], audit=True)  # what others removed
                if time.monotonic() >= self._status_due:
                    self._write_status()
                while (text := self.schedule.take(time.monotonic())) is not None:
                    self._apply(text)
                if self.drainer.tick() and self._snapshot is not None:
                    self.process(self._snapshot)  # drainSeconds are over: withdraw
                if time.monotonic() >= next_check:
                    self._check_drain_request()
                    next_check = time.monotonic() + self.settings.checks.interval
                    if self.status.due():  # a heartbeat: "lbroute status" tells stale
                        self._write_status()
                self.health.beat()
        finally:
            stop.set()
            if self._status_due != float("inf"):
                self._write_status()  # what a burst's last passes did
            if self.local is not None:
                self.local.stop()
            if self._watcher is not None:
                self._watcher.stop()
            self.addresses.close()

    def _release_on_stop(self, stop: threading.Event) -> None:
        stop.wait()
        if self.local is not None:
            self.local.stop()

    def _drain(self) -> list[_Event]:
        events: list[_Event] = []
        while not self._events.empty():
            events.append(self._events.get_nowait())
        return events

    def _handle(self, events: list[_Event]) -> None:
        """Process the newest snapshot; a template change alone re-renders the last; a
        report of the local loop only updates the status, and so does what the router
        probe found (unless the router restarted: then the configuration goes again)."""
        for probe in [e for e in events if isinstance(e, RouterProbe)]:
            self._probed(probe)
        events = [e for e in events if not isinstance(e, RouterProbe)]
        if not events:
            return
        reports = [e for e in events if isinstance(e, LocalReport)]
        if reports:
            self._local_report = reports[-1]
            self._show_local()
            events = [e for e in events if not isinstance(e, LocalReport)]
            if not events:
                self._write_status()
                return
        snapshots = [e for e in events if isinstance(e, Snapshot)]
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

    # -- one pass ---------------------------------------------------------------------

    def process(self, snapshot: Snapshot) -> None:
        """Compute and program the node's addresses, and render its configuration.

        A pass works on what changed since the last one (issue 20: at 10,000 Services
        one more costs what one costs): the objects new and gone, by identity
        (:class:`~lbroute.model.reread.Delta`); the Services among them read; the slices
        added up again for their Services only; the desired state updated for those
        Services (:class:`~nodeagent.desired.DesiredTracker`) and only the addresses
        whose announcement changed programmed (:meth:`Addresses.change`). Another model
        (a ServiceGroup, Peer, NodeAgent or Node changed) computes the desired state
        again from every Service and programs all of it."""
        started = time.monotonic()
        self._snapshot = snapshot
        problems = [f"error: {e}" for e in snapshot.errors]
        added, removed = self._objects.update(snapshot.objects)
        services_new, slices_new, rest_new = split_objects(added)
        services_gone, slices_gone, rest_gone = split_objects(removed)
        if self._rest is None or rest_new or rest_gone:
            self._rest = tuple(split_objects(snapshot.objects)[2])
        model = self._model(self._rest)
        fresh, gone = self._read_services(services_new, services_gone)
        seen = model.node(self.settings.node)
        node = seen or api.Node(name=self.settings.node)
        agent_spec, agent_problems = select_agent(model, node)
        policy = agent_spec.drain if agent_spec else DrainPolicy()
        self.drainer.update(triggers(seen, policy, self._drain_requested), policy.seconds)
        self._show_drain()
        decision = decide_router(self.settings, agent_spec, self._router)
        self._use_router(decision.settings)
        dirty = self._counter.change(slices_new, slices_gone)
        counts, ready = self._counter.totals, self._counter.ready
        read = time.monotonic()
        tracker = self._tracker
        changes = None
        if tracker.current(model):
            changes = tracker.update(fresh, gone, dirty, ready, counts)
        else:
            tracker.rebuild(model, self._all_services(), ready, counts)
        desired_problems = tracker.problems()
        computed = time.monotonic()
        inputs = local_inputs(
            model,
            tracker.local.values(),  # the Services of local pools, kept by the tracker
            ready,
            node=self.settings.node,
            local_interface=agent_spec.local_interface if agent_spec else DEFAULT_LOCAL_INTERFACE,
            lease=agent_spec.local_lease if agent_spec else None,
            service_interface=self._router.interface if self._router else DEFAULT_INTERFACE,
        )
        local_problems: list[Problem] = []
        if self.local is not None:
            if inputs != self._local_inputs:
                self.local.update(inputs)
        elif inputs.addresses:
            ref = inputs.addresses[0].group
            local_problems.append(
                Problem(
                    severity=Severity.ERROR,
                    ref=ref,
                    path="spec.announce",
                    message="announce local needs the agents to share their membership "
                    "Leases: run lbroute agent with --lease-dir DIR (the same directory for "
                    "every agent) in manifest-directory mode; its addresses are not held",
                )
            )
        self._local_inputs = inputs
        if self._router is not None and (
            changes is None
            or not self.addresses.change(changes, paced_groups(model), time.monotonic())
        ):
            self._program_all(model)
        programmed = time.monotonic()
        self.metrics.invalid_objects.set(sum(p.severity is Severity.ERROR for p in model.problems))
        text, render_problems = None, list[Problem]()
        if self._router is not None and not decision.kept:  # kept: nothing new renders
            text, render_problems = self._render(model, agent_spec.ref if agent_spec else None)
        node_problems = (
            *agent_problems,
            *decision.problems,
            *self._service_problem_list(),
            *desired_problems,
            *render_problems,
            *local_problems,
        )
        problems += [str(p) for p in (*model.problems, *node_problems)]
        for problem in sorted(set(problems) - set(self._problems)):
            log.warning("%s", problem)
        self._problems = problems
        self._show_local()
        if text is not None:
            self._offer(text)
        elif self._router is not None and not decision.kept:
            self._adopt_running()
        self._report = Report(
            status=self.status,
            announced={},
            local=frozenset(),
            object_problems=tuple(model.problems),
            node_problems=tuple(node_problems),
            objects=snapshot.objects,
            agent=agent_spec.ref if agent_spec else None,
        )
        self._write_status_soon()
        self._timed(snapshot.at, started, read, computed, programmed, time.monotonic())

    def _program_all(self, model: api.Model, *, audit: bool = False) -> None:
        """Program the whole desired state (after another model, while IS-IS-only
        addresses are paced, when a change could not be programmed alone, and every
        :data:`~nodeagent.addresses.AUDIT_SECONDS`)."""
        desired = self._tracker.state()
        self.addresses.program(desired, isis_only(model, desired), time.monotonic(), audit=audit)

    def _timed(self, *stamps: float) -> None:
        """The pass's phases into lbroute_agent_pass_seconds; at debug level, the
        monotonic stamps themselves (the clock every process of the machine shares: how
        bench/lab_bench.py breaks a Service's way to the router down)."""
        at, started, read, computed, programmed, ended = stamps
        phases = {
            "wait": started - at if at else None,
            "objects": read - started,
            "desired": computed - read,
            "netlink": programmed - computed,
            "rest": ended - programmed,
        }
        for phase, seconds in phases.items():
            if seconds is not None:
                self.metrics.pass_seconds.labels(phase=phase).observe(max(0.0, seconds))
        log.debug(
            "pass at %.6f: started %.6f read %.6f desired %.6f netlink %.6f ended %.6f", *stamps
        )

    def _show_local(self) -> None:
        """The local loop's last report in the status (its problems after the pass's)."""
        report = self._local_report
        self.status.local = None if self.local is None else list(report.holding)
        self.status.arp = report.arp or ""
        extra = [f"warning: {report.arp}"] if report.arp else []
        self.status.problems = [*self._problems, *report.problems, *extra]

    def _show_drain(self) -> None:
        """The drain state in the status and the metric; logged when it changes."""
        drain = self.drainer.status()
        if drain != self.status.drain:
            log.warning(
                "node %s: %s%s",
                self.settings.node,
                drain.state,
                f" since {drain.since} ({', '.join(drain.reasons)}); routes withdrawn at "
                f"{drain.withdraw_at}"
                if drain.reasons
                else "",
            )
        self.status.drain = drain
        for state in ("Serving", "Draining", "Drained"):
            self.metrics.drain.labels(state).set(1 if state == drain.state else 0)

    def _check_drain_request(self) -> None:
        """Notice ``lbroute drain`` / ``lbroute undrain`` (the request file)."""
        requested = drain_requested(self.settings.status_file)
        if requested != self._drain_requested:
            self._drain_requested = requested
            log.info("lbroute %s on this node", "drain" if requested else "undrain")
            if self._snapshot is not None:
                self.process(self._snapshot)

    def _use_router(self, rs: RouterSettings | None) -> None:
        if rs is None or rs == self._router:
            return
        if self._router is not None:
            log.info("router settings changed: %s %s", rs.router, rs.mode)
        self._router = rs
        self._driver = self.driver_factory(rs)
        self.schedule = ApplySchedule(self.settings.apply)
        self._generation = None
        self._templates = None
        self._watch_templates(rs.templates_dir)
        self.status.router, self.status.mode = rs.router.value, rs.mode.value
        self.addresses.use(rs.interface, address_marks=rs.router is api.Router.FRR)

    def _watch_templates(self, directory: Path | None) -> None:
        if self._watcher is not None:
            if self._watcher.path == directory:
                return
            self._watcher.stop()
            self._watcher = None
        if directory is not None:
            self._watcher = DirectoryWatcher(directory, lambda: self._events.put(None)).start()

    def _read_services(
        self, new: list[Mapping[str, Any]], gone: list[Mapping[str, Any]]
    ) -> tuple[list[Service], list[Service]]:
        """Read the Service objects new since the last pass and forget those gone; (the
        lbroute Services new, those gone). An object is read once: the sources hand over
        the same dict while a Service does not change."""
        fresh: list[Service] = []
        went: list[Service] = []
        for obj in gone:
            service = self._services.pop(id(obj), None)
            self._service_problems.pop(id(obj), None)
            if service is not None:
                went.append(service)
        for obj in new:
            service, found = self._read_service(obj)
            if found:
                self._service_problems[id(obj)] = found
            if service is not None:
                self._services[id(obj)] = service
                fresh.append(service)
        return fresh, went

    def _all_services(self) -> Iterable[Service]:
        return self._services.values()

    def _service_problem_list(self) -> list[Problem]:
        """The problems of the Services as read, in the Services' order."""
        return [
            p
            for _, found in sorted(
                self._service_problems.items(),
                key=lambda kv: (kv[1][0].ref.namespace, kv[1][0].ref.name),
            )
            for p in found
        ]

    def _read_service(self, obj: Mapping[str, Any]) -> tuple[Service | None, tuple[Problem, ...]]:
        found: list[Problem] = []
        service = parse_service(obj, default_class=self.settings.default_class, problems=found)
        return service, tuple(found)

    def _model(self, objects: tuple[Mapping[str, Any], ...]) -> api.Model:
        """The model of ``objects``, built again only when one of them is another object
        than last time: the sources hand over the same dict for an object that did not
        change (the manifest directory per file, the API reflectors per object), so a
        pass for a Service or an EndpointSlice finds every other object as it was."""
        if self._loaded is not None and _same_objects(self._loaded[0], objects):
            return self._loaded[1]
        loaded = lastgood.load(objects, self._last_valid, now=now())
        self._last_valid = loaded.memory
        self._loaded = (objects, loaded.model)
        return loaded.model

    def _render(
        self, model: api.Model, agent: ObjectRef | None
    ) -> tuple[str | None, list[Problem]]:
        """The configuration of ``model``; the last one again when nothing it depends on
        changed (the model, the router settings, the drain phase, the templates), so
        that Services and endpoints, which never change it, cost no render."""
        assert self._router is not None
        rs = self._router
        last = self._rendered
        if (
            last is not None
            and last.model is model
            and last.router == rs
            and last.agent == agent
            and last.drain is self.drainer.phase
            and last.templates is not None
            and last.templates is self._templates
        ):
            return last.text, list(last.problems)
        text, problems = self._render_now(model, agent)
        self._rendered = _Rendered(
            model=model,
            router=rs,
            agent=agent,
            drain=self.drainer.phase,
            templates=self._templates,
            text=text,
            problems=tuple(problems),
        )
        return text, problems

    def _render_now(
        self, model: api.Model, agent: ObjectRef | None
    ) -> tuple[str | None, list[Problem]]:
        assert self._router is not None
        rs = self._router
        started = time.monotonic()
        try:
            view = build_view(
                model,
                rs.router,
                self.settings.node,
                mode=rs.mode,
                hostname=self.settings.hostname,
                drain=self.drainer.phase,
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

    # -- applying ---------------------------------------------------------------------

    def _offer(self, text: str) -> None:
        assert self._driver is not None
        if self.schedule.fresh and self._driver.is_current(text):
            log.info("router already runs this configuration; nothing to apply")
            self.schedule.adopt(text)
            self._record(text, ApplyResult(), result="Unchanged")
        elif self.schedule.offer(text, time.monotonic()) is Offer.RECOVERED:
            # Back to the configuration the router runs (a broken input was fixed):
            # nothing to apply, and the old failure no longer describes the node.
            self._record(text, ApplyResult(), result="Unchanged")

    def _adopt_running(self) -> None:
        """Nothing renders (a broken user template) and nothing was applied since the
        agent started: the router keeps the configuration it runs. When that is the file
        lbroute last wrote, report its hash and take it as applied, so the status says
        what runs, and an input fixed back to it applies nothing."""
        if self._driver is None or not self.schedule.fresh or self.status.config_hash:
            return
        text = self._driver.written()
        if text is not None and self._driver.is_current(text):
            log.info("nothing renders; the router keeps running the configuration it has")
            self.schedule.adopt(text)
            self._record(text, ApplyResult(), result="Unchanged")

    def _apply(self, text: str) -> None:
        assert self._driver is not None
        result = self._driver.apply(text)
        self.metrics.apply_seconds.observe(result.duration)
        self._record(text, result, result="Applied" if result.ok else "Failed")
        self.schedule.done(text, result, time.monotonic())
        self._write_status()

    def _record(self, text: str, outcome: ApplyResult, *, result: str) -> None:
        self.status.last_apply = LastApply(
            time=now(),
            result=result,
            reason="" if outcome.ok else outcome.outcome.value,
            error=outcome.error,
            duration=round(outcome.duration, 3),
        )
        self.metrics.last_apply_ok.set(1 if outcome.ok else 0)
        if outcome.ok:
            self.status.config_hash = hashlib.sha256(text.encode()).hexdigest()[:16]
            self.health.ready = True
            if result == "Applied":
                self.metrics.applies.labels("applied").inc()
        else:
            self.metrics.applies.labels("failed").inc()
            log.error("%s: %s", outcome.summary(self.status.router), outcome.error)

    # -- the router daemon ------------------------------------------------------------

    def _probe_loop(self, stop: threading.Event) -> None:
        """Ask the router, every ``checks.interval``, for its generation and (every
        ``sessions_every`` time) its sessions, in a thread of its own, and hand what it
        found to the loop (:meth:`_probed`). The questions take FRR tens of milliseconds
        each (a vtysh each, seven in a session poll): asked in the loop, they held back
        the passes of Services that came meanwhile (the FRR rows' p99 in
        bench/RESULTS.md)."""
        checks = 0
        while not stop.is_set():
            driver = self._driver
            if driver is not None:
                try:
                    self._events.put(self._probe(driver, checks))
                except Exception:  # a probe that fails is a check missed, not a dead agent
                    log.exception("asking router %s failed", self.status.router)
                checks += 1
            stop.wait(self.settings.checks.interval)

    def _probe(self, driver: RouterDriver, checks: int) -> RouterProbe:
        generation = driver.generation()
        poll = checks % self.settings.checks.sessions_every == 0 and generation is not None
        return RouterProbe(
            driver=driver, generation=generation, sessions=driver.sessions() if poll else None
        )

    def _probed(self, probe: RouterProbe) -> None:
        """What a probe found: a restarted router (or one back after an outage) gets the
        configuration again; the sessions go into the status and the metrics. A probe
        of a driver that is no longer the agent's is dropped."""
        if probe.driver is not self._driver:
            return
        generation = probe.generation
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
            self.health.ready = self.schedule.applied is not None
        if probe.sessions is not None:
            self._show_sessions(probe.sessions)

    def _reapply(self) -> None:
        text = self.schedule.restarted()
        if text is None:
            return
        log.info("router %s (re)started; applying the configuration again", self.status.router)
        self._apply(text)

    def _show_sessions(self, sessions: list[Session]) -> None:
        self.status.sessions = [
            SessionState(name=s.name, protocol=s.protocol, state=s.state, since=s.since)
            for s in sessions
        ]
        self.metrics.sessions.clear()
        counts: dict[tuple[str, str], int] = {}
        for s in sessions:
            counts[(s.protocol, s.state)] = counts.get((s.protocol, s.state), 0) + 1
        for (proto, state), n in counts.items():
            self.metrics.sessions.labels(proto, state).set(n)
        self.metrics.session_up.clear()
        owners = self._session_owners()
        for s in sessions:
            peers = ",".join(owners.of_session(s.name, s.protocol))
            self.metrics.session_up.labels(s.protocol, s.name, peers).set(1 if s.up else 0)
        self._write_status()

    def _session_owners(self) -> SessionOwners:
        """The Peers of each session, from the newest objects other than Services and
        EndpointSlices (parsed again only when one of those changed: reading every
        object at 10,000 Services took the loop milliseconds at each session poll)."""
        rest, router = self._rest, self.status.router
        if rest is not None and (self._owners[0] is not rest or self._owners[1] != router):
            owners = SessionOwners.of(rest, node=self.settings.node, router=router)
            self._owners = (rest, router, owners)
        return self._owners[2]

    def _status_metrics(self) -> None:
        """The metrics that follow the status: readiness, addresses per ServiceGroup."""
        self.metrics.ready.set(1 if self.health.ready else 0)
        self.metrics.group_addresses.clear()
        for group, n in self.addresses.per_group.items():
            self.metrics.group_addresses.labels(group).set(n)

    def _write_status_soon(self) -> None:
        """Write the status now, or at most :data:`STATUS_INTERVAL` after the last write
        (the loop does it then), so passes in a burst do not each write it."""
        if time.monotonic() - self._status_written >= STATUS_INTERVAL:
            self._write_status()
        else:
            self._status_due = min(self._status_due, self._status_written + STATUS_INTERVAL)

    def _write_status(self) -> None:
        self._status_written, self._status_due = time.monotonic(), float("inf")
        self.status.announced = self.addresses.announced()
        self._status_metrics()
        self.status.updated = now()
        document = self.status.to_json()
        try:
            write_atomic(self.settings.status_file, document, mode=STATUS_MODE)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.settings.status_file, exc)
        if self.reporter is not None and self._report is not None:
            # Taken as they are now; made into what the reporter reads in its own thread.
            announced = AnnouncedByService(tuple(self._tracker.announced.values()))
            local = LocalAnnounced(tuple(self._tracker.local_traffic.values()), announced)
            self.reporter.publish(
                dataclasses.replace(
                    self._report,
                    status=self.status.copy(),
                    announced=announced,
                    local=local,
                    elected=self._local_report.elected,
                )
            )
