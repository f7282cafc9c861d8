"""What the leader writes after a pass: Services, their Events, ServiceGroups, metrics.

A pass (allocator.controller) decides every Service's addresses; :class:`PassWriter`
then writes what changed, asking before each write whether this replica still leads
(a replica that lost the Lease must not write another word):

- ``status.loadBalancer.ingress`` through the status subresource, then the
  ``lbroute.io/allocated-from`` annotation, each by read, change, write with the
  resourceVersion read. A 409, or a Service that changed since the pass read it, is read
  again; when what the pass decided on no longer holds (the Service reads differently
  now), the write is left to the next pass, which recomputes from the new objects;
- Events on Services: ``AddressAssigned``, ``AddressReleased`` (after the write landed),
  ``AllocationFailed`` and ``AddressOutsidePool`` (once each, while they last; forgotten
  when leadership changes, so a new leader says them again); ``ForeignAnnotation`` once
  per Service and MetalLB or PureLB annotation value (Normal when it is honoured, Warning
  when lbroute's own annotation says otherwise), remembered by this process only: a
  restarted allocator says each once more; ``UnknownBgpClass`` (Warning) once per Service
  and ``lbroute.io/bgp-class`` value its ServiceGroup does not declare (the agents then
  announce the Service with the group's default policy);
- ``ExternalIPAMDrift`` (Warning) once per Service and message while it lasts: its
  address is recorded in the group's external IPAM (NetBox) for something else;
- on each ServiceGroup, ``status.allocated`` and ``status.available`` per family and an
  ``Allocatable`` condition, and for a group with an external IPAM an ``ExternalIPAM``
  condition (InSync, Unreachable, Refused or Drift), by read, change only those, write
  (the node agents' ``Valid`` condition is never touched);
- the pool metrics, from the pass's counts.

What a pass writes is found without looking at each Service when the pass says what
differs from the one before (:attr:`~allocator.ipam.Allocation.delta`, from
allocator.ipam.incremental) and that one was published to the end; otherwise every
Service is looked at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from allocator.ipam import Allocation, Assignment, Failure, GroupStats
from allocator.metrics import AllocatorMetrics
from allocator.service import LBService, ingress, parse_service
from lbroute.kube.client import Api
from lbroute.kube.events import EventRecorder
from lbroute.kube.trim import JSON
from lbroute.kube.writes import CONFLICT_RETRIES, MAX_MESSAGE, read_change_write, with_condition
from lbroute.model import api
from lbroute.model.errors import Conflict, NotFound, ObjectRef
from lbroute.model.logs import about
from lbroute.model.service import unknown_class
from lbroute.model.vocabulary import (
    ALLOCATED_FROM_ANNOTATION,
    LABELED_STATUS,
    SERVICE_GROUP,
    SERVICE_GROUP_LABEL,
)

log = logging.getLogger(__name__)

CONDITION = "Allocatable"
IPAM_CONDITION = "ExternalIPAM"

ServiceKey = tuple[str, str]
"""A Service's (namespace, name)."""


class PassWriter:
    """Writes the outcome of passes for one replica, only while ``leading()`` says so."""

    def __init__(
        self,
        kube: Api,
        recorder: EventRecorder,
        metrics: AllocatorMetrics,
        *,
        namespace: str,
        default_class: bool,
        leading: Callable[[], bool],
    ) -> None:
        self.kube = kube
        self.recorder = recorder
        self.metrics = metrics
        self.namespace = namespace
        self.default_class = default_class
        self.leading = leading
        self._reported: set[tuple[ObjectRef, str, str]] = set()
        self._foreign: dict[ServiceKey, frozenset[tuple[str, str, str]]] = {}
        """Per Service, (its uid, annotation, value) of the foreign annotations reported."""
        self._classes: dict[ServiceKey, tuple[str, str, ObjectRef]] = {}
        """Per Service, (its uid, class, group) of the unknown BGP class reported."""
        self._taken_in: object | None = None
        """The pass last published to the end (:attr:`Allocation.delta`'s token): the next
        one, if it follows that one, is looked at only where it differs."""

    def forget_reported(self) -> None:
        """Say every standing failure again at the next pass (leadership changed)."""
        self._reported.clear()

    def publish(
        self,
        result: Allocation,
        model: api.Model,
        invalid: Mapping[str, str],
        expected: Mapping[ServiceKey, LBService],
        *,
        kept: Mapping[str, str] | None = None,
    ) -> bool:
        """Write one pass's ``result``: ``expected`` is each Service as the pass read it,
        ``invalid`` the ServiceGroups left out and why, ``kept`` those used as their last
        valid version (:mod:`lbroute.model.lastgood`) and what to say of them. False when
        leadership was lost on the way (the rest is left unwritten).

        A pass of 10,000 Services costs what changed, not a look at each Service: a pass
        that follows the last one published (its ``delta``) is taken in only for the
        Services it names (``expected`` must be the Services that pass was given)."""
        delta = result.delta
        since = (
            delta.services
            if delta is not None and delta.after is not None and delta.after is self._taken_in
            else None
        )
        self._taken_in = None
        for assignment in result.changes():
            if not self.leading():
                return False
            svc = expected.get((assignment.ref.namespace, assignment.ref.name))
            if svc is not None:
                self._write_service(assignment, svc)
        if not self.leading():
            return False
        self._report(result)
        self._report_foreign(expected, since)
        self._report_classes(result, model, expected, since)
        refs = {g.ref: g for g in result.groups}
        ipam = dict(result.ipam)
        selected = dict(result.selected)
        # A group's Services all carry the label once a pass found none to label (the
        # agents then watch labeled Services only: nodeagent, KubernetesSource).
        unlabeled = {a.group for a in result.changes() if a.label != a.label_before}
        for g in model.service_groups:
            prefixes: Mapping[str, list[str]] | bool | None = False  # as it is
            if g.name in selected:
                prefixes = selected[g.name]
            elif g.netbox is None or g.netbox.selector is None:
                prefixes = None
            self._write_group(
                g.ref,
                refs.get(g.ref),
                None,
                (kept or {}).get(g.name),
                ipam.get(g.name),
                prefixes,
                labeled=g.ref not in unlabeled,
            )
        for name, why in sorted(invalid.items()):
            ref = ObjectRef(kind=SERVICE_GROUP, namespace=self.namespace, name=name)
            self._write_group(ref, None, why)
        self._pool_metrics(result)
        self._taken_in = delta.token if delta is not None else None
        return True

    # -- Services ----------------------------------------------------------------------------

    def _parse(self, obj: Mapping[str, Any]) -> LBService | None:
        return parse_service(obj, default_class=self.default_class)

    def _write_service(self, a: Assignment, expected: LBService) -> None:
        ref = a.ref
        for _ in range(CONFLICT_RETRIES):
            if not self.leading():
                return
            try:
                fresh = self.kube.read(ref)
            except NotFound:
                return  # deleted meanwhile
            if self._parse(fresh) != expected:
                log.debug("%s changed since the pass read it; the next pass decides", ref)
                return
            rv = str(fresh["metadata"]["resourceVersion"])
            if not self.leading():
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
                expected = self._parse(written) or expected
                self._announce(a)
            if a.allocated_from != a.allocated_before or a.label != a.label_before:
                if not self.leading():
                    return
                # After the status: an agent that watches only labeled Services sees the
                # Service once it has its addresses (a merge patch: None removes).
                body = {
                    "metadata": {
                        "resourceVersion": rv,
                        "annotations": {ALLOCATED_FROM_ANNOTATION: a.allocated_from},
                        "labels": {SERVICE_GROUP_LABEL: a.label},
                    }
                }
                try:
                    self.kube.patch(ref, body)
                except Conflict:
                    continue  # read again: the status is written, only this is left
                except NotFound:
                    return
            return
        log.warning("%s kept changing under us; the next pass tries again", ref, extra=about(ref))

    def _announce(self, a: Assignment) -> None:
        group = f" from {a.group}" if a.group else ""
        if a.assigned:
            text = ", ".join(map(str, a.assigned))
            log.info(
                "%s: assigned %s%s",
                a.ref,
                text,
                group,
                extra=about(a.ref, address=text, from_group=a.group),
            )
            self._emit(a.ref, "Normal", "AddressAssigned", f"{text} assigned{group}", uid=a.uid)
            self.metrics.assigned.inc(len(a.assigned))
        if a.released:
            text = ", ".join(map(str, a.released))
            log.info("%s: released %s", a.ref, text, extra=about(a.ref, address=text))
            self._emit(a.ref, "Normal", "AddressReleased", f"{text} released", uid=a.uid)
            self.metrics.released.inc(len(a.released))

    def _emit(
        self, ref: ObjectRef, kind: str, reason: str, note: str, *, uid: str | None = None
    ) -> None:
        if self.leading():
            self.recorder.emit(ref, kind, reason, note, uid=uid)

    def _report(self, result: Allocation) -> None:
        found: dict[ObjectRef, str] | None = None

        def uid(ref: ObjectRef) -> str | None:
            nonlocal found
            if found is None:  # only when there is something new to say
                found = {a.ref: a.uid for a in result.assignments}
            return found.get(ref)

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
            log.info(
                "%s: allocation failed: %s",
                failure.ref,
                note,
                extra=about(failure.ref, reason=failure.reason, field=failure.path or None),
            )
            self._emit(failure.ref, "Warning", "AllocationFailed", note, uid=uid(failure.ref))
        for drift in result.drift:
            key = (drift.ref, "ExternalIPAMDrift", str(drift))
            now.add(key)
            if key not in self._reported:
                log.warning("%s", drift, extra=about(drift.ref, address=str(drift.address)))
                self._emit(
                    drift.ref,
                    "Warning",
                    "ExternalIPAMDrift",
                    drift.message,
                    uid=uid(drift.ref),
                )
        for outside in result.outside:
            key = (outside.ref, "AddressOutsidePool", str(outside))
            now.add(key)
            if key not in self._reported:
                self._emit(
                    outside.ref,
                    "Warning",
                    "AddressOutsidePool",
                    str(outside).split(": ", 1)[1],
                    uid=uid(outside.ref),
                )
        self._reported = now

    def _report_foreign(
        self,
        expected: Mapping[ServiceKey, LBService],
        since: Mapping[ObjectRef, Assignment | None] | None,
    ) -> None:
        """A ForeignAnnotation Event per MetalLB or PureLB annotation value, once while
        it is there; ``since``: only these Services may differ from the last pass."""
        if since is None:
            before = set().union(*self._foreign.values())
            self._foreign = {}
            keys: Iterable[ServiceKey] = expected
        else:
            before = None
            keys = sorted((r.namespace, r.name) for r in since)
        for key in keys:
            svc = expected.get(key)
            old = self._foreign.pop(key, frozenset()) if before is None else before
            if svc is None or not svc.foreign:
                continue
            who = svc.uid or str(svc.ref)
            self._foreign[key] = frozenset((who, f.key, f.value) for f in svc.foreign)
            for f in svc.foreign:
                if (who, f.key, f.value) in old:
                    continue
                kind = "Warning" if f.conflict else "Normal"
                log.info("%s: %s", svc.ref, f.message, extra=about(svc.ref, annotation=f.key))
                self._emit(svc.ref, kind, "ForeignAnnotation", f.message, uid=svc.uid or None)

    def _report_classes(
        self,
        result: Allocation,
        model: api.Model,
        expected: Mapping[ServiceKey, LBService],
        since: Mapping[ObjectRef, Assignment | None] | None,
    ) -> None:
        """An UnknownBgpClass Event per Service and class its group does not declare,
        once while it lasts (the allocator speaks for all the agents, which only log it);
        ``since``: only these Services may differ from the last pass."""
        groups = {g.ref: g for g in model.service_groups}
        if since is None:
            before = set(self._classes.values())
            self._classes = {}
            pairs: Iterable[tuple[ObjectRef, Assignment | None]] = (
                (a.ref, a) for a in result.assignments
            )
        else:
            before = None
            pairs = sorted(since.items(), key=lambda p: p[0])
        for ref, a in pairs:
            key = (ref.namespace, ref.name)
            old = self._classes.pop(key, None) if before is None else None
            svc = expected.get(key)
            group = groups.get(a.group) if a is not None and a.group is not None else None
            if svc is None or group is None or a is None or not a.addresses:
                continue
            unknown = unknown_class(svc, group)
            if unknown is None or svc.bgp_class is None:
                continue
            found = (svc.uid or str(svc.ref), svc.bgp_class, group.ref)
            self._classes[key] = found
            if found == old or (before is not None and found in before):
                continue
            note = f"{unknown.path}: {unknown.message}"
            log.info("%s: %s", svc.ref, note, extra=about(svc.ref))
            self._emit(svc.ref, "Warning", "UnknownBgpClass", note, uid=svc.uid or None)

    # -- ServiceGroups -----------------------------------------------------------------------

    def _write_group(
        self,
        ref: ObjectRef,
        stats: GroupStats | None,
        invalid: str | None,
        kept: str | None = None,
        ipam: tuple[str, str, str] | None = None,
        prefixes: Mapping[str, list[str]] | bool | None = False,
        *,
        labeled: bool = False,
    ) -> None:
        """``prefixes``: the NetBox prefixes a prefixSelector chose, for
        ``status.ipam.netbox``; None: the group has no selector (no ``status.ipam``);
        False: leave them as they are."""
        want = _group_status(stats, invalid, kept)
        if ipam is not None:
            want["ipam"] = (ipam[0], ipam[1], ipam[2][:MAX_MESSAGE])
        if prefixes is not False:
            want["selected"] = (
                None if not isinstance(prefixes, Mapping) else {"netbox": dict(prefixes)}
            )
        if labeled:
            want["labeled"] = True

        def change(current: JSON) -> JSON | None:
            if _group_status_is(dict(current.get("status") or {}), want):
                return None
            status = with_condition(current, CONDITION, want["condition"])
            if "ipam" in want:
                status = with_condition({**current, "status": status}, IPAM_CONDITION, want["ipam"])
            else:  # the group no longer has an external IPAM
                status["conditions"] = [
                    c for c in status["conditions"] if c.get("type") != IPAM_CONDITION
                ]
            # A merge patch: None removes a field.
            for key in ("allocated", "available"):
                status[key] = want[key]
            if want.get("labeled"):
                status[LABELED_STATUS] = True
            if want.get("selected") is not None:  # retained: None removes it
                status["ipam"] = {"netbox": {"retained": None, **want["selected"]["netbox"]}}
            elif "selected" in want:
                status["ipam"] = None
            return {"status": status}

        read_change_write(self.kube, ref, change, status=True, allowed=self.leading)

    def _pool_metrics(self, result: Allocation) -> None:
        self.metrics.ipam_up.clear()
        for name, (_status, reason, _message) in result.ipam:
            up = reason not in ("Unreachable", "Refused")
            self.metrics.ipam_up.labels(group=name).set(1 if up else 0)
        self.metrics.pool_size.clear()
        self.metrics.pool_in_use.clear()
        for p in result.pools:
            labels = {"group": p.group.name, "pool": p.pool, "family": str(p.family)}
            self.metrics.pool_size.labels(**labels).set(p.size)
            self.metrics.pool_in_use.labels(**labels).set(p.in_use)


def _count(n: int) -> int | str:
    """The CRD takes a decimal string where an integer would not fit in 64 bits."""
    return n if n < 2**63 else str(n)


def _group_status(
    stats: GroupStats | None, invalid: str | None, kept: str | None = None
) -> dict[str, Any]:
    """What the group's status should be; ``kept`` (the group serves as its last valid
    version, and why) leads the condition's message, whatever its state."""
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
    if kept:
        state = (state[0], state[1], f"{kept}; {state[2]}"[:MAX_MESSAGE])
    return {
        "allocated": {str(f): n for f, n in stats.allocated.items()},
        "available": {str(f): _count(n) for f, n in stats.available.items()},
        "condition": state,
    }


def _group_status_is(status: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    return bool(
        _condition(status, CONDITION) == want["condition"]
        and _condition(status, IPAM_CONDITION) == want.get("ipam")
        and status.get("allocated") == want["allocated"]
        and status.get("available") == want["available"]
        and ("selected" not in want or status.get("ipam") == want["selected"])
        and ("labeled" not in want or status.get(LABELED_STATUS) is True)
    )


def _condition(status: Mapping[str, Any], kind: str) -> tuple[Any, Any, Any] | None:
    mine = next((c for c in status.get("conditions") or () if c.get("type") == kind), None)
    return None if mine is None else (mine.get("status"), mine.get("reason"), mine.get("message"))
