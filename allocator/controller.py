"""The allocator from the Kubernetes API: one replica's loop, and who among them writes.

Every replica lists and watches Services (all namespaces) and the ServiceGroups of the
install namespace (lbroute.kube.reflector: bookmarks, relist on 410, backoff with
jitter), and computes every Service's addresses with allocator.ipam from the current
objects; a ServiceGroup edited into an invalid one counts as its last valid version
(lbroute.model.lastgood) until it is fixed or deleted. Only the holder of a
``coordination.k8s.io/v1`` Lease writes what a pass decided (allocator.writer: Services'
status and annotation, Events, ServiceGroups' status, pool metrics).

The replicas elect the holder with lbroute.kube.lease: a Lease held by another replica
is taken over only once it has not changed for its whole duration, measured on this
replica's own clock; a leader counts as one only until ``renew_deadline`` after its
last successful renew, shorter than the Lease's duration, so a replica that cannot renew
stops writing before anyone else may start, and one that sees another holder stops at
once. On a clean stop the Lease is handed back. A new leader says every standing
failure again.

A ServiceGroup with external pools (``spec.ipam.netbox``) has its addresses from that
IPAM: what a pass requests of it is asked by allocator.external's Broker (the token read
from the group's Secret), and the pass runs again with what it gave; the broker's
backoff and periodic comparison of records wake the loop when they are due.

Passes run only while every watch is connected, so a new leader decides from what the
API says now; even so, two Services that claim one address are found and the younger
one moves (allocator.ipam). A pass that fails on the API is tried again after
``retry``. Should the lease thread or the watch feeder fail unexpectedly, the run ends
(allocator.main: the process exits 1 and is started again). Each Service is parsed once
per resourceVersion.

A pass costs what changed since the last one: at 10,000 Services a full pass took about
0.6 s, for any change of any Service (bench/alloc_bench.py). The source hands over an
unchanged object as the same dict, so one costs a lookup by identity; the addresses are
computed by allocator.ipam's :class:`~allocator.ipam.Incremental`, which gives what a
full pass would and falls back to one when the ServiceGroups change; the writer then
looks only at the Services the pass names as changed.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from allocator.external import Broker, NetBoxProvider, Outcome, Refused
from allocator.ipam import Allocation, Incremental, allocate, invalid_groups
from allocator.metrics import AllocatorMetrics
from allocator.peers import PeerStatusWriter, trim_node_state, trim_peer
from allocator.service import LBService, parse_service
from allocator.writer import PassWriter, ServiceKey
from lbroute.kube.client import Api, ApiClient
from lbroute.kube.directory import Snapshot
from lbroute.kube.events import EventRecorder
from lbroute.kube.lease import LeaderElector
from lbroute.kube.reflector import KubernetesSource, Timing, lbroute_kind, service_kind
from lbroute.kube.serving import Health
from lbroute.kube.trim import trim_service, trim_service_group
from lbroute.kube.writes import seconds_time
from lbroute.model import api, lastgood
from lbroute.model.errors import KubernetesError, NotFound, ObjectRef
from lbroute.model.fields import IPAddress
from lbroute.model.secrets import parse_secret
from lbroute.model.vocabulary import ALLOCATOR_CONTROLLER, NODE_STATE, PEER, SERVICE_GROUP

log = logging.getLogger(__name__)


TOKEN_RE = re.compile(r"[\x21-\x7e]{8,512}")
TOKEN_VALID = "8 to 512 printable characters, no spaces"
TOKEN_TTL = 30.0
"""Seconds an external IPAM's token, read from its Secret, is used before it is read again."""


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
    ipam_resync: float = 60.0
    """Seconds between comparisons of an external IPAM's records with the Services."""


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
                lbroute_kind(self.kube, ns, PEER, trim_peer),
                lbroute_kind(self.kube, ns, NODE_STATE, trim_node_state),
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
        self.writer = PassWriter(
            self.kube,
            self.recorder,
            self.metrics,
            namespace=ns,
            default_class=settings.default_class,
            leading=self.elector.is_leader,
        )
        self.peer_status = PeerStatusWriter(self.kube, namespace=ns, leading=self.elector.is_leader)
        self._cond = threading.Condition()
        self._latest: Snapshot | None = None
        self._dirty = False
        self._parsed: dict[ServiceKey, tuple[str, LBService | None]] = {}
        self._expected: dict[ServiceKey, LBService] = {}
        """The Services of the last pass that concern the allocator, as parsed."""
        self._objects: dict[int, Mapping[str, Any]] = {}
        """id -> each Service object of the last snapshot (kept, so an id is never another
        object's)."""
        self._parsed_of: dict[int, LBService | None] = {}
        """id -> what each of them parsed to."""
        self.ipam = Incremental()
        """The passes, each at the cost of what changed since the one before."""
        self._last_valid = lastgood.Memory()
        """Each ServiceGroup's last valid version, seen by this replica's passes."""
        self.broker = Broker(self._provider, resync=settings.ipam_resync)
        """The ServiceGroups' external IPAMs (NetBox)."""
        self._reset_broker = False
        self._token_errors: dict[tuple[str, str, str], str] = {}
        self._tokens: dict[tuple[str, str, str], tuple[float, str | None]] = {}
        """(namespace, Secret, key) -> (when read, the token): read at most every
        TOKEN_TTL seconds."""
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
            self._reset_broker = True  # claims and records are read again from the IPAM
            self.writer.forget_reported()
            self.peer_status.forget()
            self._cond.notify_all()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._cond:
                due = self.broker.retry_at
                wait = 5.0 if due is None else min(5.0, max(0.0, due - time.monotonic()))
                self._cond.wait_for(lambda: self._dirty or stop.is_set(), timeout=wait)
                if due is not None and time.monotonic() >= due:
                    self._dirty = True  # an external IPAM to ask again, or to compare with
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

    def compute(
        self, snapshot: Snapshot
    ) -> tuple[Allocation, api.Model, dict[str, str], dict[str, str]]:
        """Every Service's addresses from the objects of ``snapshot`` (no writes but the
        external IPAMs' records); the ServiceGroups left out and why; those serving as
        their last valid version and what to say of them."""
        groups, services = self._read(snapshot)
        # A group edited into an invalid one is used as its last valid version (its
        # Services keep their addresses, new ones get theirs from it); the agents report it.
        loaded = lastgood.load(groups, self._last_valid, now=seconds_time())
        model, self._last_valid = loaded.model, loaded.memory
        used = {g.name for g in model.service_groups}
        invalid = {n: why for n, why in invalid_groups(model.problems).items() if n not in used}
        kept = {r.name: why for r, why in loaded.standing.items() if r.kind == SERVICE_GROUP}
        result = self.ipam.allocate(
            model.service_groups,
            services,
            invalid_groups=invalid,
            namespace=self.settings.namespace,
        )
        if self._reset_broker:
            self.broker.reset()
            self._reset_broker = False
        if any(g.netbox is not None for g in model.service_groups) or self.broker.retry_at:
            result = self._external(result, model, services, invalid)
        return result, model, invalid, kept

    def _external(
        self,
        result: Allocation,
        model: api.Model,
        services: list[LBService],
        invalid: Mapping[str, str],
    ) -> Allocation:
        """Ask the external IPAMs for what the pass requested, and pass again with what
        they gave; then compare their records with the Services when that is due."""
        broker = self.broker
        broker.groups(model.service_groups, key=self._provider_key)
        # Prefixes a selector chose anew are written into the group's status (the writer);
        # the pass that reads them back allocates from them.
        selected = broker.select(model.service_groups, (a for s in services for a in s.addresses))
        outcome = broker.fulfil(result.requests) if result.requests else Outcome()
        if outcome.claims:
            result = allocate(
                model.service_groups,
                services,
                invalid_groups=invalid,
                namespace=self.settings.namespace,
                claims=outcome.claims,
            )
        current = {s.ref: s.addresses for s in services}
        taken = {a.ref: a.addresses for a in result.assignments}
        broker.settle(current, taken)
        holders: dict[IPAddress, list[ObjectRef]] = {}
        for refs_addresses in (current, taken):
            for ref, addresses in refs_addresses.items():
                for address in addresses:
                    if ref not in holders.setdefault(address, []):
                        holders[address].append(ref)
        if broker.due(holders):
            group_of = {a.ref: a.group.name for a in result.assignments if a.group is not None}
            for line in broker.sync(model.service_groups, holders, group_of):
                log.info("%s", line)
        return dataclasses.replace(
            result,
            failures=result.failures + tuple(outcome.failures),
            drift=broker.drift,
            selected=tuple((name, c.status()) for name, c in selected.items()),
            ipam=tuple(
                (g.name, c)
                for g in model.service_groups
                if (c := broker.condition(g.name)) is not None
            ),
        )

    def _provider_key(self, group: api.ServiceGroup) -> object:
        return (group.netbox, group.announce, self._token(group))

    def _token(self, group: api.ServiceGroup) -> str | None:
        """The group's NetBox token from its Secret (read again after TOKEN_TTL seconds,
        so a rotated token is used within that time); None when there is none."""
        assert group.netbox is not None
        ref = group.netbox.token
        key = (group.ref.namespace, ref.name, ref.key)
        cached = self._tokens.get(key)
        if cached is not None and time.monotonic() - cached[0] < TOKEN_TTL:
            return cached[1]
        secret = ObjectRef(kind="Secret", namespace=group.ref.namespace, name=ref.name)
        try:
            value = parse_secret(self.kube.read(secret)).get(ref.key)
        except NotFound:
            value = None
        except KubernetesError as exc:  # 403 (the Role names another Secret), API away
            log.warning("%s: cannot read Secret %s: %s", group.ref, ref.name, exc)
            if cached is not None and cached[1] is not None:
                return cached[1]  # the last one read stays in use
            self._token_errors[key] = str(exc)
            value = None
        token = value.reveal().strip() if value is not None else None
        if token is not None and not TOKEN_RE.fullmatch(token):
            self._token_errors[key] = (
                f"the value of key {ref.key!r} is not a NetBox token (expected {TOKEN_VALID})"
            )
            token = None
        self._tokens[key] = (time.monotonic(), token)
        return token

    def _provider(self, group: api.ServiceGroup) -> NetBoxProvider:
        assert group.netbox is not None
        token = self._token(group)
        if token is None:
            ref = group.netbox.token
            why = self._token_errors.pop(
                (group.ref.namespace, ref.name, ref.key), f"no key {ref.key!r} or no such Secret"
            )
            raise Refused(
                f"{group.ref}: spec.ipam.netbox.tokenSecretRef: Secret {ref.name} in namespace "
                f"{group.ref.namespace}: {why} (the allocator's Role may read netbox-token)"
            )
        return NetBoxProvider(group, token)

    def _read(self, snapshot: Snapshot) -> tuple[list[dict[str, Any]], list[LBService]]:
        """The snapshot's ServiceGroups, and its Services that concern the allocator as
        parsed. The source hands over an unchanged object as the same dict, so one costs a
        lookup by identity (a pass after one change at 10,000 Services:
        bench/alloc_bench.py); a new object is parsed, unless its resourceVersion was
        parsed before (a relist)."""
        objects, known, parsed_of = snapshot.objects, self._objects, self._parsed_of
        misses = [o for o in objects if known.get(id(o)) is not o]
        stored = len(known)
        groups: list[dict[str, Any]] = []
        keys: set[ServiceKey] = set()
        """The Services that came as new objects."""
        for obj in misses:
            kind = obj.get("kind")
            if kind == SERVICE_GROUP:
                groups.append(obj)
            if kind == "Service":
                key, parsed = self._parse(obj)
                keys.add(key)
                known[id(obj)] = obj
                parsed_of[id(obj)] = parsed
        if len(objects) - len(misses) < stored:  # some changed or went: forget those gone
            present = {id(o) for o in objects}
            for i in [i for i in known if i not in present]:
                if (key := _key(known.pop(i))) not in keys:
                    self._parsed.pop(key, None)
                    self._expected.pop(key, None)
                del parsed_of[i]
        return groups, [p for o in objects if (p := parsed_of.get(id(o))) is not None]

    def _parse(self, obj: Mapping[str, Any]) -> tuple[ServiceKey, LBService | None]:
        key = _key(obj)
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        cached = self._parsed.get(key)
        if cached is not None and cached[0] == rv and rv:
            parsed = cached[1]
        else:
            parsed = parse_service(obj, default_class=self.settings.default_class)
            self._parsed[key] = (rv, parsed)
        if parsed is None:
            self._expected.pop(key, None)
        else:
            self._expected[key] = parsed
        return key, parsed

    def reconcile(self, snapshot: Snapshot) -> None:
        """One pass: compute, then (as the leader) write what changed."""
        start = time.perf_counter()
        result, model, invalid, kept = self.compute(snapshot)
        self.metrics.pass_seconds.set(time.perf_counter() - start)
        self.health.degraded = {
            f"ServiceGroup {name}: external IPAM": f"{reason}: {message}"
            for name, (status, reason, message) in result.ipam
            if reason in ("Unreachable", "Refused")
        }
        if self.writer.publish(result, model, invalid, self._expected, kept=kept):
            self.passes += 1
        self.peer_status.publish(snapshot.objects)


def _key(obj: Mapping[str, Any]) -> ServiceKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace")), str(meta.get("name")))


def _until_failure(
    what: str, run: Callable[[threading.Event], None], stop: threading.Event
) -> None:
    """``run(stop)``; should it raise, log why and set ``stop``."""
    try:
        run(stop)
    except Exception:
        log.exception("%s failed; stopping", what)
        stop.set()
