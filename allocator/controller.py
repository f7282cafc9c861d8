"""The allocator from the Kubernetes API: leader election, status, annotations, Events.

Every replica lists and watches Services (all namespaces) and the ServiceGroups of the
install namespace (lbroute.kube.reflector: bookmarks, relist on 410, backoff with
jitter). Only the holder of a ``coordination.k8s.io/v1`` Lease writes:

- the replicas elect the holder with lbroute.kube.lease: a Lease held by another
  replica is taken over only once it has not changed for its whole duration, measured
  on this replica's own clock; a leader counts as one only until ``renew_deadline``
  after its last successful renew, shorter than the Lease's duration, so a replica that
  cannot renew stops writing before anyone else may start, and one that sees another
  holder stops at once. On a clean stop the Lease is handed back;
- each pass computes every Service's addresses with allocator.ipam from the current
  objects, then writes what changed: ``status.loadBalancer.ingress`` through the
  status subresource, then the ``lbroute.io/allocated-from`` annotation, each by read,
  change, write with the resourceVersion read. A 409, or a Service that changed since
  the pass read it, is read again; when what the pass decided on no longer holds, the
  write is left to the next pass, which recomputes from the new objects;
- Events on Services: ``AddressAssigned``, ``AddressReleased`` (after the write landed),
  ``AllocationFailed`` and ``AddressOutsidePool`` (once each, while they last);
- on each ServiceGroup, ``status.allocated`` and ``status.available`` per family and an
  ``Allocatable`` condition, by read, change only those, write (the node agents' ``Valid``
  condition is never touched);
- metrics: pool size and addresses in use per pool, allocation failures by reason,
  leadership.

Passes run only while every watch is connected, so a new leader decides from what the
API says now; even so, two Services that claim one address are found and the younger
one moves (allocator.ipam). Should the lease thread or the watch feeder fail
unexpectedly, the run ends (allocator.main: the process exits 1 and is started again).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from allocator.ipam import Allocation, Assignment, Failure, GroupStats, allocate, invalid_groups
from allocator.service import LBService, ingress, parse_service
from lbroute.kube.client import Api, ApiClient
from lbroute.kube.directory import Snapshot
from lbroute.kube.events import EventRecorder
from lbroute.kube.lease import LeaderElector
from lbroute.kube.reflector import KubernetesSource, Timing, lbroute_kind, service_kind
from lbroute.kube.serving import Health
from lbroute.kube.trim import JSON, trim_service, trim_service_group
from lbroute.kube.writes import CONFLICT_RETRIES, MAX_MESSAGE, read_change_write, with_condition
from lbroute.model import api
from lbroute.model.errors import Conflict, KubernetesError, NotFound, ObjectRef
from lbroute.model.vocabulary import (
    ALLOCATED_FROM_ANNOTATION,
    ALLOCATOR_CONTROLLER,
    SERVICE_GROUP,
)

log = logging.getLogger(__name__)

CONDITION = "Allocatable"


@dataclass(frozen=True, kw_only=True)
class Settings:
    identity: str
    """This replica's name in the Lease (the pod name, made unique)."""
    namespace: str = "lbroute"
    """Where the ServiceGroups and the Lease live."""
    default_class: bool = False
    """Also serve LoadBalancer Services that set no loadBalancerClass."""
    lease_name: str = "lbroute-allocator"
    lease_duration: float = 15.0
    """Seconds a lease lasts without renewal before another replica may take it."""
    renew_deadline: float = 10.0
    """Seconds after its last renewal that a leader stops writing (< lease_duration)."""
    retry_period: float = 2.0
    """Seconds between attempts to acquire or renew."""
    timing: Timing = field(default_factory=Timing)
    debounce: float = 0.05
    """Seconds a pass waits for a burst of changes to land."""
    retry: float = 2.0
    """Seconds before a failed pass is tried again."""


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
        self.events_dropped = Counter(
            "lbroute_allocator_events_dropped",
            "Events not sent because of the rate limit.",
            registry=self.registry,
        )


# -- the controller ---------------------------------------------------------------------------


class Allocator:
    """Runs the passes of one replica; only the leader's passes write."""

    def __init__(
        self,
        api_client: ApiClient,
        settings: Settings,
        *,
        metrics: AllocatorMetrics | None = None,
        health: Health | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or AllocatorMetrics()
        self.health = health or Health()
        self.kube = Api(api_client)
        self.core, self.custom = self.kube.core, self.kube.custom
        """The generated clients under ``kube`` (a test races another writer against ours
        through them)."""
        ns = settings.namespace
        self.source = KubernetesSource(
            api_client,
            namespace=ns,
            timing=settings.timing,
            debounce=settings.debounce,
            kinds=[
                service_kind(self.kube, functools.partial(trim_service, allocation=True)),
                lbroute_kind(self.kube, ns, SERVICE_GROUP, trim_service_group),
            ],
        )
        self.elector = LeaderElector(
            self.kube,
            namespace=ns,
            name=settings.lease_name,
            identity=settings.identity,
            duration=settings.lease_duration,
            renew_deadline=settings.renew_deadline,
            retry_period=settings.retry_period,
            on_change=self._leadership,
        )
        self.recorder = EventRecorder(
            self.kube,
            controller=ALLOCATOR_CONTROLLER,
            instance=f"lbroute-allocator-{settings.identity}",
            source="allocator",
            namespace=ns,
            on_dropped_event=self.metrics.events_dropped.inc,
        )
        self._cond = threading.Condition()
        self._latest: Snapshot | None = None
        self._dirty = False
        self._parsed: dict[tuple[str, str], tuple[str, LBService | None]] = {}
        self._reported: set[tuple[ObjectRef, str, str]] = set()
        self.passes = 0
        """Passes that ran to the end (as leader)."""

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set: by the caller, or by the lease thread or the watch
        feeder when it fails (logged with its traceback), since a replica that no longer
        renews its lease, or no longer sees changes, must not run on as if it did."""
        elector = threading.Thread(
            target=_until_failure,
            args=("the lease", self.elector.run, stop),
            name="lbroute-lease",
            daemon=True,
        )
        feeder = threading.Thread(
            target=_until_failure,
            args=("the watch of Services and ServiceGroups", self._feed, stop),
            name="lbroute-watch",
            daemon=True,
        )
        elector.start()
        feeder.start()
        waker = threading.Thread(target=self._wake_on, args=(stop,), daemon=True)
        waker.start()
        try:
            self._loop(stop)
        finally:
            stop.set()
            elector.join(timeout=10)
            feeder.join(timeout=10)

    def _feed(self, stop: threading.Event) -> None:
        for snapshot in self.source.snapshots(stop):
            with self._cond:
                self._latest = snapshot
                self._dirty = True
                self._cond.notify_all()

    def _wake_on(self, stop: threading.Event) -> None:
        stop.wait()
        with self._cond:
            self._cond.notify_all()

    def _leadership(self, leader: bool) -> None:
        self.metrics.leader.set(1 if leader else 0)
        with self._cond:
            self._dirty = self._dirty or leader
            self._reported.clear()
            self._cond.notify_all()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._dirty or stop.is_set(), timeout=5.0)
                snapshot, dirty = self._latest, self._dirty
                self._dirty = False
            self.health.beat()
            if stop.is_set() or not dirty or snapshot is None:
                continue
            self.health.ready = True
            if not self.elector.is_leader():
                continue
            if not self.source.healthy:
                self._again(stop, "a watch is not connected")
                continue
            try:
                self.reconcile(snapshot)
            except KubernetesError as exc:
                log.warning("allocation pass failed, trying again: %s", exc)
                self._again(stop, "")

    def _again(self, stop: threading.Event, why: str) -> None:
        if why:
            log.debug("pass postponed: %s", why)
        stop.wait(self.settings.retry)
        with self._cond:
            self._dirty = True

    # -- one pass ----------------------------------------------------------------------------

    def compute(self, snapshot: Snapshot) -> tuple[Allocation, api.Model, dict[str, str]]:
        """Every Service's addresses from the objects of ``snapshot`` (no writes)."""
        groups = [o for o in snapshot.objects if o.get("kind") == SERVICE_GROUP]
        model = api.load(groups)
        invalid = invalid_groups(model.problems)
        services = []
        for obj in snapshot.objects:
            if obj.get("kind") == "Service":
                parsed = self._parse(obj)
                if parsed is not None:
                    services.append(parsed)
        result = allocate(
            model.service_groups,
            services,
            invalid_groups=invalid,
            namespace=self.settings.namespace,
        )
        return result, model, invalid

    def _parse(self, obj: Mapping[str, Any]) -> LBService | None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        rv = str(meta.get("resourceVersion") or "")
        cached = self._parsed.get(key)
        if cached is not None and cached[0] == rv and rv:
            return cached[1]
        parsed = parse_service(obj, default_class=self.settings.default_class)
        self._parsed[key] = (rv, parsed)
        return parsed

    def reconcile(self, snapshot: Snapshot) -> None:
        start = time.perf_counter()
        result, model, invalid = self.compute(snapshot)
        self.metrics.pass_seconds.set(time.perf_counter() - start)
        present = {
            (str((o.get("metadata") or {}).get("namespace")), str(o["metadata"].get("name")))
            for o in snapshot.objects
            if o.get("kind") == "Service"
        }
        self._parsed = {k: v for k, v in self._parsed.items() if k in present}
        expected = {
            key: parsed for key, (_rv, parsed) in self._parsed.items() if parsed is not None
        }
        for assignment in result.changes():
            if not self.elector.is_leader():
                return
            svc = expected.get((assignment.ref.namespace, assignment.ref.name))
            if svc is not None:
                self._write_service(assignment, svc)
        if not self.elector.is_leader():
            return
        self._report(result)
        refs = {g.ref: g for g in result.groups}
        for g in model.service_groups:
            self._write_group(g.ref, refs.get(g.ref), None)
        for name, why in sorted(invalid.items()):
            ref = ObjectRef(kind=SERVICE_GROUP, namespace=self.settings.namespace, name=name)
            self._write_group(ref, None, why)
        self._pool_metrics(result)
        self.passes += 1

    # -- Services ----------------------------------------------------------------------------

    def _write_service(self, a: Assignment, expected: LBService) -> None:
        ref = a.ref
        for _ in range(CONFLICT_RETRIES):
            if not self.elector.is_leader():
                return
            try:
                fresh = self.kube.read(ref)
            except NotFound:
                return  # deleted meanwhile
            if parse_service(fresh, default_class=self.settings.default_class) != expected:
                log.debug("%s changed since the pass read it; the next pass decides", ref)
                return
            rv = str(fresh["metadata"]["resourceVersion"])
            if not self.elector.is_leader():
                return
            if a.addresses != expected.addresses:
                lb = dict((fresh.get("status") or {}).get("loadBalancer") or {})
                lb["ingress"] = ingress(fresh, a.addresses)
                body = {"metadata": {"resourceVersion": rv}, "status": {"loadBalancer": lb}}
                try:
                    written = self.kube.patch(ref, body, status=True)
                except Conflict:
                    continue
                except NotFound:
                    return
                rv = str(written["metadata"]["resourceVersion"])
                expected = parse_service(written, default_class=self.settings.default_class) or (
                    expected
                )
                self._announce(a)
            if a.allocated_from != a.allocated_before:
                if not self.elector.is_leader():
                    return
                body = {
                    "metadata": {
                        "resourceVersion": rv,
                        "annotations": {ALLOCATED_FROM_ANNOTATION: a.allocated_from},
                    }
                }
                try:
                    self.kube.patch(ref, body)
                except Conflict:
                    continue  # read again: the status is written, only this is left
                except NotFound:
                    return
            return
        log.warning("%s kept changing under us; the next pass tries again", ref)

    def _announce(self, a: Assignment) -> None:
        group = f" from {a.group}" if a.group else ""
        if a.assigned:
            text = ", ".join(map(str, a.assigned))
            log.info("%s: assigned %s%s", a.ref, text, group)
            self._emit(a.ref, "Normal", "AddressAssigned", f"{text} assigned{group}", uid=a.uid)
            self.metrics.assigned.inc(len(a.assigned))
        if a.released:
            text = ", ".join(map(str, a.released))
            log.info("%s: released %s", a.ref, text)
            self._emit(a.ref, "Normal", "AddressReleased", f"{text} released", uid=a.uid)
            self.metrics.released.inc(len(a.released))

    def _emit(
        self, ref: ObjectRef, kind: str, reason: str, note: str, *, uid: str | None = None
    ) -> None:
        if self.elector.is_leader():
            self.recorder.emit(ref, kind, reason, note, uid=uid)

    def _report(self, result: Allocation) -> None:
        uids = {a.ref: a.uid for a in result.assignments}
        now: set[tuple[ObjectRef, str, str]] = set()
        failure: Failure
        for failure in result.failures:
            key = (failure.ref, str(failure.reason), str(failure))
            now.add(key)
            if key in self._reported:
                continue
            self.metrics.failures.labels(reason=str(failure.reason)).inc()
            note = f"{failure.reason}: " + (
                f"{failure.path}: {failure.message}" if failure.path else failure.message
            )
            log.info("%s: allocation failed: %s", failure.ref, note)
            self._emit(failure.ref, "Warning", "AllocationFailed", note, uid=uids.get(failure.ref))
        for outside in result.outside:
            key = (outside.ref, "AddressOutsidePool", str(outside))
            now.add(key)
            if key not in self._reported:
                self._emit(
                    outside.ref,
                    "Warning",
                    "AddressOutsidePool",
                    str(outside).split(": ", 1)[1],
                    uid=uids.get(outside.ref),
                )
        self._reported = now

    # -- ServiceGroups -----------------------------------------------------------------------

    def _write_group(self, ref: ObjectRef, stats: GroupStats | None, invalid: str | None) -> None:
        want = _group_status(stats, invalid)

        def change(current: JSON) -> JSON | None:
            if _group_status_is(dict(current.get("status") or {}), want):
                return None
            status = with_condition(current, CONDITION, want["condition"])
            for key in ("allocated", "available"):
                if want[key] is None:
                    status.pop(key, None)
                else:
                    status[key] = want[key]
            return {"status": status}

        read_change_write(self.kube, ref, change, status=True, allowed=self.elector.is_leader)

    def _pool_metrics(self, result: Allocation) -> None:
        self.metrics.pool_size.clear()
        self.metrics.pool_in_use.clear()
        for p in result.pools:
            labels = {"group": p.group.name, "pool": p.pool, "family": str(p.family)}
            self.metrics.pool_size.labels(**labels).set(p.size)
            self.metrics.pool_in_use.labels(**labels).set(p.in_use)


def _until_failure(
    what: str, run: Callable[[threading.Event], None], stop: threading.Event
) -> None:
    """``run(stop)``; should it raise, log why and set ``stop``."""
    try:
        run(stop)
    except Exception:
        log.exception("%s failed; stopping", what)
        stop.set()


def _count(n: int) -> int | str:
    """The CRD takes a decimal string where an integer would not fit in 64 bits."""
    return n if n < 2**63 else str(n)


def _group_status(stats: GroupStats | None, invalid: str | None) -> dict[str, Any]:
    if stats is None:
        message = f"not used for allocation until it is valid: {invalid or 'invalid'}"
        return {
            "allocated": None,
            "available": None,
            "condition": ("False", "Invalid", message[:MAX_MESSAGE]),
        }
    parts = [
        f"{f}: {stats.allocated[f]} allocated, {stats.available[f]} free" for f in stats.allocated
    ]
    if stats.exhausted:
        families = " and ".join(str(f) for f in stats.exhausted)
        state = ("False", "Exhausted", f"no free {families} address left; add a pool")
    else:
        state = ("True", "Allocatable", "; ".join(parts))
    if stats.outside:
        message = f"{state[2]}; {stats.outside} Services keep addresses outside every pool"
        state = (state[0], state[1], message)
    return {
        "allocated": {str(f): n for f, n in stats.allocated.items()},
        "available": {str(f): _count(n) for f, n in stats.available.items()},
        "condition": state,
    }


def _group_status_is(status: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    mine = next((c for c in status.get("conditions") or () if c.get("type") == CONDITION), None)
    have = None if mine is None else (mine.get("status"), mine.get("reason"), mine.get("message"))
    return bool(
        have == want["condition"]
        and status.get("allocated") == want["allocated"]
        and status.get("available") == want["available"]
    )
