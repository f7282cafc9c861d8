"""Status where operators look: NodeState, Events, conditions and one annotation.

The agent hands a :class:`~nodeagent.status.Report` to :meth:`KubeReporter.publish`
after every pass; a thread of the reporter's own publishes the newest one, so a slow
or absent API never holds up the agent. What is published only when it changed:

- the node's ``NodeState`` (created when missing; the status subresource carries the
  router, mode, configuration hash, last apply, sessions, announced addresses and a
  Ready condition; after a failed apply, ``lastApply.reason`` and the condition's
  reason, ``Apply`` and the reason, say how it failed: Rejected, NotConverged,
  Unavailable or Refused, see :class:`~nodeagent.routers.Outcome`);
- Events (events.k8s.io/v1) on Services: ``Announced`` and ``Withdrawn`` from this
  node, ``ApplyFailed`` when an apply failed (also on the NodeState and the NodeAgent),
  its note saying how (tenants read Events on their Services, so the note only says
  where the router's message is, never configuration text); ``InvalidOnNode`` on an
  object that cannot be used on this node;
- a ``Valid`` condition on every ServiceGroup, Peer and NodeAgent, with the same
  messages as ``lbroute validate``. Every agent computes the same value; each writes
  only when the object does not already say it (read, change only that condition,
  write with the resourceVersion read: a 409 means read again), so agents and other
  writers of the status never undo each other, and only the agent whose write changed
  the condition sends the ``Invalid`` Event;
- ``lbroute.io/announcing`` on ETP Local Services: the nodes that announce the address,
  each agent adding or removing only its own name, by the same read-change-write.

Events are rate limited (lbroute.kube.events); what does not fit is logged and
counted, not sent. The first report after a start only records what is announced, so
restarting an agent sends no Event storm.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from lbroute.kube.client import Api, ApiClient
from lbroute.kube.events import EventRecorder
from lbroute.kube.trim import JSON
from lbroute.kube.writes import MAX_MESSAGE, State, condition, read_change_write, with_condition
from lbroute.model.errors import KubernetesError, NotFound, ObjectRef, Problem, Severity
from lbroute.model.secrets import redact
from lbroute.model.vocabulary import (
    AGENT_CONTROLLER,
    ANNOUNCING_ANNOTATION,
    API_VERSION,
    NODE_AGENT,
    NODE_STATE,
    PEER,
    SERVICE_GROUP,
)
from nodeagent.status import LocalHeld, Report

log = logging.getLogger(__name__)

VALIDATED = (SERVICE_GROUP, PEER, NODE_AGENT)
"""The kinds that get a ``Valid`` condition."""


_SESSION_PROTOCOLS = {"bgp": "bgp", "ospf": "ospf", "ospf6": "ospf", "ospfv3": "ospf"}
_SESSION_PROTOCOLS |= {"rip": "rip", "ripng": "rip", "isis": "isis"}
_ISO = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d+)?Z?$")


def node_state_status(report: Report, previous: JSON | None) -> JSON:
    """The NodeState status for ``report`` (as the CRD's schema allows)."""
    st = report.status
    out: JSON = {
        "router": st.router or None,
        "mode": st.mode or None,
        "configHash": st.config_hash[:64],
        "announcedAddresses": len(st.announced),
    }
    out = {k: v for k, v in out.items() if v is not None}
    if st.last_apply.result:
        error = redact(st.last_apply.error)[:MAX_MESSAGE]
        last: JSON = {"result": st.last_apply.result, "error": error}
        if st.last_apply.reason:
            last["reason"] = st.last_apply.reason
        if st.last_apply.time:
            last["time"] = st.last_apply.time
        out["lastApply"] = last
    peers: dict[str, JSON] = {}
    for s in st.sessions:
        protocol = _SESSION_PROTOCOLS.get(s.protocol)
        if protocol is None:  # BFD: a property of the sessions above, not a peer
            continue
        peer: JSON = {"name": s.name, "protocol": protocol, "state": s.state}
        m = _ISO.match(s.since)
        if m:
            peer["since"] = f"{m.group(1)}T{m.group(2)}Z"
        peers.setdefault(peer["name"], peer)
    out["peers"] = [peers[k] for k in sorted(peers)]
    failed = st.last_apply.result == "Failed"
    errors = [p for p in st.problems if p.startswith("error:")]
    if failed:
        reason = f"Apply{st.last_apply.reason or 'Failed'}"
        message = f"{st.last_apply.summary(st.router or 'router')}: {st.last_apply.error}"
        status, message = "False", redact(message)
    elif not st.last_apply.result:
        status, reason, message = "Unknown", "Pending", "no configuration applied yet"
    elif errors:
        status, reason, message = "True", "AppliedWithProblems", "\n".join(errors)
    else:
        status, reason, message = "True", "Applied", "the router runs the rendered configuration"
    conditions = [condition("Ready", status, reason, message, previous)]
    if st.local:
        out["local"] = [
            {
                k: v
                for k, v in {
                    "address": h.address,
                    "interface": h.interface,
                    "group": h.group or None,
                    "services": list(h.services),
                    "since": h.since or None,
                }.items()
                if v is not None
            }
            for h in st.local or ()
        ]
    if st.arp:
        conditions.append(
            condition("LocalArpStrict", "False", "KubeIpvsAnswers", st.arp[:MAX_MESSAGE], previous)
        )
    elif st.local:
        conditions.append(
            condition(
                "LocalArpStrict",
                "True",
                "ArpStrict",
                "no second answerer for local addresses on this node (kube-ipvs0)",
                previous,
            )
        )
    out["conditions"] = conditions
    return out


def _valid_condition(problems: list[Problem]) -> State:
    errors = [str(p) for p in problems if p.severity is Severity.ERROR]
    if errors:
        return "False", "Invalid", "\n".join(errors)
    warnings = [str(p) for p in problems]
    return "True", "Valid", "\n".join(warnings) or "valid"


def _ref_of(obj: Mapping[str, Any]) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(
        kind=str(obj.get("kind")),
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name")),
    )


class KubeReporter:
    """Publishes the newest :class:`~nodeagent.status.Report` of the agent of ``node``
    from a thread of its own (:meth:`start`), or at once with :meth:`sync`."""

    def __init__(
        self,
        api_client: ApiClient,
        *,
        node: str,
        namespace: str,
        events_per_second: float = 10.0,
        event_burst: int = 100,
        retry: float = 5.0,
        on_dropped_event: Callable[[], None] | None = None,
    ) -> None:
        self.node = node
        self.namespace = namespace
        self.kube = Api(api_client)
        self.custom = self.kube.custom
        """The generated client of lbroute's kinds under ``kube`` (a test races another
        writer against ours through it)."""
        self.recorder = EventRecorder(
            self.kube,
            controller=AGENT_CONTROLLER,
            instance=f"lbroute-agent-{node}",
            source=node,
            namespace=namespace,
            events_per_second=events_per_second,
            event_burst=event_burst,
            on_dropped_event=on_dropped_event,
        )
        self.retry = retry
        self._on_failure: Callable[[], None] = lambda: None
        self._cond = threading.Condition()
        self._latest: Report | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lbroute-report", daemon=True)
        # What was published (so only changes are sent).
        self._node_status: JSON | None = None
        self._announced: dict[ObjectRef, tuple[str, ...]] | None = None
        self._failure: tuple[str, str] | None = None
        self._node_problems: set[tuple[ObjectRef, str]] = set()
        self._local: dict[str, LocalHeld] | None = None
        self._arp = ""
        self._objects: tuple[dict[str, Any], ...] = ()
        self._uids: dict[ObjectRef, str] | None = None
        """uid by object, built from ``_objects`` when the first Event of a sync needs it."""

    # -- the thread -----------------------------------------------------------------

    def start(self, on_failure: Callable[[], None]) -> KubeReporter:
        """Publish from a thread of the reporter's own until :meth:`stop`. Should that
        thread fail unexpectedly (a bug, or input no code path expected), it logs why
        and calls ``on_failure`` (the agent stops: it must not run on unreported)."""
        self._on_failure = on_failure
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def publish(self, report: Report) -> None:
        with self._cond:
            self._latest = report
            self._cond.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while self._latest is None and not self._stop.is_set():
                    self._cond.wait()
                report, self._latest = self._latest, None
            if report is None:
                continue
            try:
                self.sync(report)
            except KubernetesError as exc:  # the API away, or refusing: try again later
                log.warning("cannot publish the node's status: %s", exc)
                with self._cond:
                    if self._latest is None:
                        self._latest = report
                self._stop.wait(self.retry)
            except Exception:
                log.exception("publishing the node's status failed")
                self._on_failure()
                return

    # -- one report -----------------------------------------------------------------

    def sync(self, report: Report) -> None:
        """Publish what changed since the last successful sync (in this thread or a
        test's)."""
        self._objects, self._uids = report.objects, None
        self._node_state(report)
        self._service_events(report)
        self._apply_failure(report)
        self._validity(report)
        self._node_problem_events(report)
        self._local_events(report)
        self._announcing(report)

    def _node_state(self, report: Report) -> None:
        status = node_state_status(report, self._node_status)
        if status == self._node_status:
            return
        ref = ObjectRef(kind=NODE_STATE, namespace=self.namespace, name=self.node)
        try:
            self.kube.patch(ref, {"status": status}, status=True)
        except NotFound:
            body = {
                "apiVersion": API_VERSION,
                "kind": NODE_STATE,
                "metadata": {"name": self.node, "namespace": self.namespace},
                "spec": {"nodeName": self.node},
            }
            self.kube.create(ref, body)
            self.kube.patch(ref, {"status": status}, status=True)
        self._node_status = status

    def _service_events(self, report: Report) -> None:
        previous, self._announced = self._announced, dict(report.announced)
        if previous is None:
            return  # just started: what is announced is not news
        for ref in sorted(report.announced.keys() - previous.keys()):
            addresses = ", ".join(report.announced[ref])
            self._event(ref, "Normal", "Announced", f"{addresses} announced from {self.node}")
        for ref in sorted(previous.keys() - report.announced.keys()):
            self._event(ref, "Normal", "Withdrawn", f"no longer announced from {self.node}")

    def _apply_failure(self, report: Report) -> None:
        last = report.status.last_apply
        failure = (last.time, last.error) if last.result == "Failed" else None
        if failure is None or failure == self._failure:
            self._failure = failure
            return
        # Tenants read the Events on their Services: no configuration text, however
        # redacted, goes into one; the router's message is on the NodeState.
        note = (
            f"{last.summary(f'{report.status.router} on {self.node}')}; its message: "
            f"lbroute status on node {self.node}, or NodeState {self.namespace}/{self.node}"
        )
        targets = [ObjectRef(kind=NODE_STATE, namespace=self.namespace, name=self.node)]
        if report.agent is not None:
            targets.append(report.agent)
        targets += sorted(report.announced)
        for ref in targets:
            self._event(ref, "Warning", "ApplyFailed", note)
        self._failure = failure

    def _validity(self, report: Report) -> None:
        by_ref: dict[ObjectRef, list[Problem]] = {}
        for p in report.object_problems:
            by_ref.setdefault(p.ref, []).append(p)
        for obj in report.objects:
            ref = _ref_of(obj)
            if ref.kind not in VALIDATED or obj.get("apiVersion") != API_VERSION:
                continue
            want = _valid_condition(by_ref.get(ref, []))
            if _current_valid(obj) != want:
                self._set_valid(ref, want)

    def _set_valid(self, ref: ObjectRef, want: State) -> None:
        before: list[State | None] = []

        def change(current: JSON) -> JSON | None:
            before[:] = [_current_valid(current)]
            if before[0] == want:
                return None  # another agent said it already
            return {"status": with_condition(current, "Valid", want)}

        written = read_change_write(self.kube, ref, change, status=True)
        if not written:
            return
        if want[0] == "False":
            self._event(ref, "Warning", "Invalid", want[2])
        elif before[0] is not None and before[0][0] == "False":
            self._event(ref, "Normal", "Valid", "the problems reported before are fixed")

    def _node_problem_events(self, report: Report) -> None:
        now = {(p.ref, str(p)) for p in report.node_problems if p.ref.kind != "Node"}
        for ref, text in sorted(now - self._node_problems):
            self._event(ref, "Warning", "InvalidOnNode", f"on node {self.node}: {text}")
        self._node_problems = now

    def _local_events(self, report: Report) -> None:
        """``AnnouncingLocal`` on the Services of a local address this node took,
        ``LocalHandover`` on those of one it gave up (and ``LocalArpStrict`` trouble
        as a Warning on the NodeState once)."""
        held = {h.address: h for h in report.status.local or ()}
        previous, self._local = self._local, held
        arp, self._arp = self._arp, report.status.arp
        if report.status.arp and report.status.arp != arp:
            ref = ObjectRef(kind=NODE_STATE, namespace=self.namespace, name=self.node)
            self._event(ref, "Warning", "KubeIpvsAnswers", report.status.arp)
        if previous is None:
            return  # just started: what is held is not news
        for address in sorted(held.keys() - previous.keys()):
            h = held[address]
            for ref in _service_refs(h.services):
                note = f"{address} on node {self.node}, interface {h.interface} (elected)"
                self._event(ref, "Normal", "AnnouncingLocal", note)
        for address in sorted(previous.keys() - held.keys()):
            h = previous[address]
            for ref in _service_refs(h.services):
                note = (
                    f"{address} no longer on node {self.node}: another node was elected, "
                    "the Service no longer uses it, or the agent is stopping"
                )
                self._event(ref, "Normal", "LocalHandover", note)

    def _announcing(self, report: Report) -> None:
        holding = {ref for h in report.status.local or () for ref in _service_refs(h.services)}
        for obj in report.objects:
            if obj.get("kind") != "Service" or obj.get("apiVersion") != "v1":
                continue
            ref = _ref_of(obj)
            nodes = _nodes(obj)
            want = ref in report.local or ref in holding
            if (self.node in nodes) != want:
                self._set_announcing(ref, want)

    def _set_announcing(self, ref: ObjectRef, here: bool) -> None:
        def change(current: JSON) -> JSON | None:
            nodes = _nodes(current)
            if (self.node in nodes) == here:
                return None
            nodes = (nodes | {self.node}) if here else (nodes - {self.node})
            annotation = ",".join(sorted(nodes)) or None
            return {"metadata": {"annotations": {ANNOUNCING_ANNOTATION: annotation}}}

        read_change_write(self.kube, ref, change)

    # -- Events ---------------------------------------------------------------------

    def _event(self, ref: ObjectRef, kind: str, reason: str, note: str) -> None:
        if self._uids is None:
            self._uids = {
                _ref_of(o): str((o.get("metadata") or {}).get("uid") or "") for o in self._objects
            }
        self.recorder.emit(ref, kind, reason, redact(note), uid=self._uids.get(ref))


def _service_refs(services: tuple[str, ...]) -> list[ObjectRef]:
    """The Services named ``namespace/name`` (as the status lists them)."""
    refs = []
    for text in services:
        namespace, _, name = text.partition("/")
        if name:
            refs.append(ObjectRef(kind="Service", namespace=namespace, name=name))
    return refs


def _current_valid(obj: Mapping[str, Any]) -> State | None:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Valid":
            return str(c.get("status")), str(c.get("reason")), str(c.get("message"))
    return None


def _nodes(obj: Mapping[str, Any]) -> set[str]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ANNOUNCING_ANNOTATION) or ""
    return {n for n in str(value).split(",") if n}
