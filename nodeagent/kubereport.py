"""Status where operators look: NodeState, Events, conditions and one annotation.

The agent hands a :class:`~nodeagent.status.Report` to :meth:`KubeReporter.publish`
after every pass; a thread of the reporter's own publishes the newest one, so a slow
or absent API never holds up the agent. What is published only when it changed:

- the node's ``NodeState`` (created when missing; the status subresource carries the
  router, mode, configuration hash, last apply, sessions (each with the Peers it is
  for, ``peerNames``: :class:`SessionOwners`), the count of announced addresses and,
  per ServiceGroup, the prefixes announced (:func:`announced_groups`: bounded by the
  prefixes, never per Service), and a Ready condition; after a failed apply,
  ``lastApply.reason`` and the condition's reason, ``Apply`` and the reason, say how
  it failed: Rejected, NotConverged, Unavailable or Refused, see
  :class:`~nodeagent.routers.Outcome`);
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
- ``lbroute.io/announcing`` on the Services announced from here (routed ETP Local) or
  using a local address this node holds: entries separated by ``,``, sorted, a node's
  name for a routed one, ``node/interface/address`` for a local address
  (``node-b/eth1/192.0.2.10,node-c/eth1/2001:db8::10``), read and written by
  lbroute.model.vocabulary's one parser. Each agent adds or removes only the entries of
  its own node, by the same read-change-write;
- a ``LocalHeld`` condition on every local ServiceGroup: True ``Held`` naming where each
  address is (``2 local addresses held: 192.0.2.10 on node-b, ...``), True
  ``NoAddresses`` when no Service uses one, False ``NoHolder`` naming each address
  without a holder, its Services and why (nodeagent.local.election.NoHolder; ETP Local
  with no ready endpoint reads ``withdrawn: no node has a ready endpoint of ns/name``).
  Every agent elects the same, so only one writes it, to avoid dueling writes: of the
  live members (the local loop's Leases), the one with the highest rendezvous weight for
  the group (:func:`condition_writer`), which changes only when that node leaves. It
  writes only when the condition differs (read-change-write, as ``Valid``), and when its
  write changed it sends ``LocalNotHeld`` (Warning) on the Services of each address that
  lost its holder and ``LocalHeld`` (Normal) on those of each that has one again.
  Nothing is written while the local loop is not settled (starting, or the Leases
  unreadable); a group that is no longer local loses the condition;
- while the node drains (nodeagent.drain), two NodeState conditions: ``Draining`` True
  since the drain began (its message: why, and when the routes are withdrawn) and
  ``Drained`` True since they were withdrawn; both False (reason ``Serving``) once it
  is undrained, left out on a node that never drained. Events on the Node:
  ``Draining``, ``Drained`` and ``Undrained``, each once per change;
- ``LocalNotPlaced`` (Warning) on the NodeAgent (or, without one, the ServiceGroup) when
  this node won a local address but cannot put it on an interface, naming the node,
  ``spec.localInterface`` and the interfaces the node has.

Events are rate limited (lbroute.kube.events); what does not fit is logged and
counted, not sent. The first report after a start only records what is announced, so
restarting an agent sends no Event storm.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lbroute.kube.client import Api, ApiClient
from lbroute.kube.events import EventRecorder
from lbroute.kube.trim import JSON
from lbroute.kube.writes import MAX_MESSAGE, State, condition, read_change_write, with_condition
from lbroute.model.errors import (
    KubernetesError,
    NotFound,
    ObjectRef,
    Problem,
    Severity,
)
from lbroute.model.fields import IPAddress
from lbroute.model.secrets import redact
from lbroute.model.vocabulary import (
    AGENT_CONTROLLER,
    ANNOUNCING_ANNOTATION,
    API_VERSION,
    NODE_AGENT,
    NODE_STATE,
    PEER,
    SERVICE_GROUP,
    Announcer,
    format_announcing,
    parse_announcing,
)
from nodeagent.local.election import NoHolder
from nodeagent.sessions import SessionOwners
from nodeagent.status import Announced, DrainStatus, LocalElected, LocalHeld, Report

log = logging.getLogger(__name__)

VALIDATED = (SERVICE_GROUP, PEER, NODE_AGENT)
"""The kinds that get a ``Valid`` condition."""
LOCAL_HELD = "LocalHeld"
"""The condition on a local ServiceGroup saying where its addresses are."""


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
    owners = SessionOwners.of(report.objects, node=st.node, router=st.router)
    for s in st.sessions:
        protocol = _SESSION_PROTOCOLS.get(s.protocol)
        if protocol is None:  # BFD: a property of the sessions above, not a peer
            continue
        peer: JSON = {"name": s.name, "protocol": protocol, "state": s.state}
        m = _ISO.match(s.since)
        if m:
            peer["since"] = f"{m.group(1)}T{m.group(2)}Z"
        names = owners.of_session(s.name, s.protocol)
        if names:
            peer["peerNames"] = list(names)
        peers.setdefault(peer["name"], peer)
    out["peers"] = [peers[k] for k in sorted(peers)]
    out["groups"] = announced_groups(st.announced)
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
    conditions += _drain_conditions(st.drain, previous)
    out["conditions"] = conditions
    return out


MAX_GROUP_PREFIXES = 1000
"""Prefixes listed per ServiceGroup in NodeState ``status.groups`` (the rest counted in
``omitted``), so a NodeState stays far below the API's object size at any scale."""


def announced_groups(announced: Iterable[Announced]) -> list[JSON]:
    """NodeState ``status.groups``: per ServiceGroup, the prefixes this node announces
    (the connected prefix of each address on the Service interface: a host route, or
    the pool's aggregate once for all its addresses), sorted, with the weights of the
    weighted ones and the BGP classes of those with one; never per Service."""
    by_group: dict[str, set[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
    weights: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, int] = {}
    classes: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, str] = {}
    for a in announced:
        try:
            network = ipaddress.ip_interface(a.address).network
        except ValueError:
            continue
        by_group.setdefault(a.group, set()).add(network)
        if a.weight:
            weights[network] = a.weight
        if a.bgp_class:
            classes[network] = a.bgp_class
    out: list[JSON] = []
    for group in sorted(by_group):
        prefixes = sorted(by_group[group], key=lambda n: (n.version, n))[:MAX_GROUP_PREFIXES]
        entry: JSON = {"group": group, "prefixes": [str(n) for n in prefixes]}
        weighted = {str(n): weights[n] for n in prefixes if n in weights}
        if weighted:
            entry["weights"] = weighted
        classed = {str(n): classes[n] for n in prefixes if n in classes}
        if classed:
            entry["classes"] = classed
        if len(by_group[group]) > MAX_GROUP_PREFIXES:
            entry["omitted"] = len(by_group[group]) - MAX_GROUP_PREFIXES
        out.append(entry)
    return out


def _drain_conditions(drain: DrainStatus, previous: JSON | None) -> list[JSON]:
    """``Draining`` and ``Drained`` (see the module docstring)."""
    had = any(c.get("type") == "Draining" for c in (previous or {}).get("conditions") or ())
    if drain.state == "Serving":
        if not had:
            return []
        message = "the node announces its Service routes as usual"
        return [
            condition("Draining", "False", "Serving", message, previous),
            condition("Drained", "False", "Serving", message, previous),
        ]
    why = ", ".join(drain.reasons)
    draining = (
        f"draining since {drain.since} ({why}): Service routes de-preferred, withdrawn at "
        f"{drain.withdraw_at}"
    )
    drained = drain.state == "Drained"
    return [
        condition("Draining", "True", "Draining", draining, previous),
        condition(
            "Drained",
            "True" if drained else "False",
            "Drained" if drained else "Draining",
            f"Service routes withdrawn at {drain.withdraw_at} ({why}); sessions kept up"
            if drained
            else f"Service routes announced de-preferred until {drain.withdraw_at}",
            previous,
        ),
    ]


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
        self._elected: dict[IPAddress, LocalElected] | None = None
        """The elections of the last settled report (every agent keeps them, so that
        the one that becomes the writer knows what was reported)."""
        self._unplaced: set[tuple[IPAddress, str]] = set()
        self._arp = ""
        self._drain: str | None = None
        """The drain state last published (None: nothing yet)."""
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
        """Stop publishing. The local loop stops with the agent and releases its
        addresses, so this node's ``node/interface/address`` entries leave the Services'
        ``lbroute.io/announcing`` (best effort: one try each)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.ident is not None:  # started (a test may sync without)
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                return
        refs = {ref for h in (self._local or {}).values() for ref in _service_refs(h.services)}
        for ref in sorted(refs):
            try:
                self._set_announcing(ref, None)
            except KubernetesError as exc:
                log.warning("%s: cannot remove this node's local entries: %s", ref, exc)

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
        self._local_held(report)
        self._unplaced_events(report)
        self._announcing(report)
        self._dead_holders(report)
        self._drain_events(report)

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
        mine: dict[ObjectRef, set[str]] = {ref: {self.node} for ref in report.local}
        for h in report.status.local or ():
            address = h.address.partition("/")[0]
            entry = str(Announcer(node=self.node, interface=h.interface, address=address))
            for ref in _service_refs(h.services):
                mine.setdefault(ref, set()).add(entry)
        for obj in report.objects:
            if obj.get("kind") != "Service" or obj.get("apiVersion") != "v1":
                continue
            ref = _ref_of(obj)
            want = frozenset(mine.get(ref, ()))
            if _own_entries(obj, self.node) != want:
                self._set_announcing(ref, want)

    def _dead_holders(self, report: Report) -> None:
        """Remove the local entries of nodes that are no longer alive from the Services'
        ``lbroute.io/announcing`` (an agent killed, a node lost: nobody else removes
        them, and the address is held elsewhere by now). Done by the writer of the
        address's ServiceGroup's ``LocalHeld`` condition only, so one agent writes."""
        elected = report.elected
        if elected is None or not elected.alive or not elected.elections:
            return  # no local address: no Service to look through
        alive = set(elected.alive)
        group_of = {str(e.address): e.group for e in elected.elections}
        writes: dict[str, bool] = {}
        for obj in report.objects:
            if obj.get("kind") != "Service" or obj.get("apiVersion") != "v1":
                continue
            dead = frozenset(
                str(e)
                for e in _entries(obj)
                if e.address and e.node not in alive and self._writes(group_of, e, writes, alive)
            )
            if dead:
                self._drop_entries(_ref_of(obj), dead)

    def _writes(
        self,
        group_of: Mapping[str, ObjectRef],
        entry: Announcer,
        cache: dict[str, bool],
        alive: set[str],
    ) -> bool:
        group = group_of.get(entry.address)
        if group is None:
            return False
        key = f"{group.namespace}/{group.name}"
        if key not in cache:
            cache[key] = condition_writer(group, alive) == self.node
        return cache[key]

    def _drop_entries(self, ref: ObjectRef, dead: frozenset[str]) -> None:
        def change(current: JSON) -> JSON | None:
            entries = _entries(current)
            kept = [e for e in entries if str(e) not in dead]
            if len(kept) == len(entries):
                return None
            annotation = format_announcing(kept)
            return {"metadata": {"annotations": {ANNOUNCING_ANNOTATION: annotation}}}

        if read_change_write(self.kube, ref, change):
            log.info("removed %s from %s's announcing: not alive", ", ".join(sorted(dead)), ref)

    def _set_announcing(self, ref: ObjectRef, want: frozenset[str] | None) -> None:
        """Our node's entries of the Service's annotation made ``want`` (None: only its
        local ones removed), every other node's left as they are."""

        def change(current: JSON) -> JSON | None:
            own = _own_entries(current, self.node)
            mine = frozenset(e for e in own if "/" not in e) if want is None else want
            if own == mine:
                return None
            others = [e for e in _entries(current) if e.node != self.node]
            annotation = format_announcing([*others, *mine])
            return {"metadata": {"annotations": {ANNOUNCING_ANNOTATION: annotation}}}

        read_change_write(self.kube, ref, change)

    # -- local addresses: where each is, who cannot place one ----------------------

    def _local_held(self, report: Report) -> None:
        """The ``LocalHeld`` condition of the local ServiceGroups this agent writes
        (:func:`condition_writer`), and its Events."""
        elected = report.elected
        if elected is None:
            return  # not settled: what the loop would say is not the election's
        by_group: dict[ObjectRef, list[LocalElected]] = {}
        for e in elected.elections:
            by_group.setdefault(e.group, []).append(e)
        before = self._elected
        for obj in report.objects:
            ref = _ref_of(obj)
            if ref.kind != SERVICE_GROUP or obj.get("apiVersion") != API_VERSION:
                continue
            if condition_writer(ref, elected.alive) != self.node:
                continue
            local = (obj.get("spec") or {}).get("announce") == "local" or ref in by_group
            want = local_held_state(by_group.get(ref, ())) if local else None
            if _current_condition(obj, LOCAL_HELD) == want:
                continue
            if self._set_local_held(ref, want) and want is not None:
                self._local_held_events(by_group.get(ref, ()), before)
        self._elected = {e.address: e for e in elected.elections}

    def _set_local_held(self, ref: ObjectRef, want: State | None) -> bool:
        def change(current: JSON) -> JSON | None:
            if _current_condition(current, LOCAL_HELD) == want:
                return None  # another agent (the writer before) said it already
            if want is None:
                status = dict(current.get("status") or {})
                status["conditions"] = [
                    c for c in status.get("conditions") or () if c.get("type") != LOCAL_HELD
                ]
                return {"status": status}
            return {"status": with_condition(current, LOCAL_HELD, want)}

        return read_change_write(self.kube, ref, change, status=True)

    def _local_held_events(
        self, elected: Iterable[LocalElected], before: Mapping[IPAddress, LocalElected] | None
    ) -> None:
        for e in sorted(elected, key=lambda e: _address_key(e.address)):
            was = (before or {}).get(e.address)
            if e.holder is None:
                if was is not None and was.holder is None and was.why is e.why:
                    continue  # reported already
                note = f"{e.address} is held by no node: {not_held_reason(e)}"
                for ref in e.services:
                    self._event(ref, "Warning", "LocalNotHeld", note)
            elif was is not None and was.holder is None:
                for ref in e.services:
                    self._event(ref, "Normal", "LocalHeld", f"{e.address} held by node {e.holder}")

    def _unplaced_events(self, report: Report) -> None:
        """``LocalNotPlaced`` once for each address this node won but cannot place (for
        each reason)."""
        if report.elected is None:
            return
        now = {(u.address, u.message): u for u in report.elected.unplaced}
        new = sorted(now.keys() - self._unplaced, key=lambda k: (*_address_key(k[0]), k[1]))
        for key in new:
            u = now[key]
            target = report.agent or u.group
            if target is None:
                continue
            setting = u.setting[0] if len(u.setting) == 1 else list(u.setting)
            note = (
                f"node {self.node} cannot place local address {u.address}: "
                f"spec.localInterface {setting!r}: {u.message}; "
                f"the node's interfaces: {', '.join(u.interfaces) or 'none'}"
            )
            self._event(target, "Warning", "LocalNotPlaced", note)
        self._unplaced = set(now)

    def _drain_events(self, report: Report) -> None:
        """``Draining``, ``Drained``, ``Undrained`` on the Node when its drain state
        changes (not for the state found at start, but for a drain found then)."""
        drain = report.status.drain
        previous, self._drain = self._drain, drain.state
        if drain.state == previous or (previous is None and drain.state == "Serving"):
            return
        node = ObjectRef(kind="Node", namespace="", name=self.node)
        why = ", ".join(drain.reasons)
        if drain.state == "Draining":
            note = (
                f"lbroute de-prefers this node's Service routes ({why}); it withdraws them "
                f"at {drain.withdraw_at}"
            )
        elif drain.state == "Drained":
            note = f"lbroute withdrew this node's Service routes ({why}); sessions kept up"
        else:
            note = "lbroute announces this node's Service routes again"
        reason = "Undrained" if drain.state == "Serving" else drain.state
        self._event(node, "Normal", reason, note)

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
    return _current_condition(obj, "Valid")


def _current_condition(obj: Mapping[str, Any], kind: str) -> State | None:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == kind:
            return str(c.get("status")), str(c.get("reason")), str(c.get("message"))
    return None


def _entries(obj: Mapping[str, Any]) -> tuple[Announcer, ...]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return parse_announcing(str(annotations.get(ANNOUNCING_ANNOTATION) or ""))


def _own_entries(obj: Mapping[str, Any], node: str) -> frozenset[str]:
    """The entries of ``node`` in the object's ``lbroute.io/announcing``."""
    return frozenset(str(e) for e in _entries(obj) if e.node == node)


def _address_key(address: IPAddress) -> tuple[int, int]:
    return address.version, int(address)


def condition_writer(group: ObjectRef, alive: Iterable[str]) -> str | None:
    """The one agent that writes ``group``'s ``LocalHeld`` condition: of the live
    members, the one with the highest rendezvous weight for the group (blake2b of the
    group's namespace/name and the node's name, the same on every node), so the groups'
    writers spread over the nodes and a group's writer changes only when it leaves.
    None without live members."""
    key = f"{group.namespace}/{group.name}\0".encode()

    def weight(node: str) -> tuple[bytes, str]:
        digest = hashlib.blake2b(key + node.encode(), digest_size=8, person=b"lbroute-writer")
        return digest.digest(), node

    return max(alive, key=weight, default=None)


def not_held_reason(e: LocalElected) -> str:
    """Why ``e`` has no holder, for an operator."""
    if e.why is NoHolder.NO_ENDPOINT:
        names = ", ".join(f"{r.namespace}/{r.name}" for r in e.local_traffic)
        return (
            f"withdrawn: no node has a ready endpoint of {names} (among the live nodes "
            "that the ServiceGroup selects with an interface on the address's subnet)"
        )
    return e.why.value if e.why is not None else "no holder elected"


def local_held_state(elected: Iterable[LocalElected]) -> State:
    """The ``LocalHeld`` condition of a ServiceGroup whose addresses' elections are
    ``elected`` (see the module docstring)."""
    ordered = sorted(elected, key=lambda e: _address_key(e.address))
    if not ordered:
        return "True", "NoAddresses", "no Service uses a local address of this group"
    held = [e for e in ordered if e.holder is not None]
    where = ", ".join(f"{e.address} on {e.holder}" for e in held)
    missing = [e for e in ordered if e.holder is None]
    if not missing:
        plural = "" if len(held) == 1 else "es"
        return "True", "Held", f"{len(held)} local address{plural} held: {where}"[:MAX_MESSAGE]
    lines = [f"{len(missing)} of {len(ordered)} local addresses held by no node:"]
    for e in missing:
        services = ", ".join(f"{r.namespace}/{r.name}" for r in e.services)
        lines.append(f"{e.address} (Services {services}): {not_held_reason(e)}")
    if held:
        lines.append(f"{len(held)} held: {where}")
    return "False", "NoHolder", "\n".join(lines)[:MAX_MESSAGE]
