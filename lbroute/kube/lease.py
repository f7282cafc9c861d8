"""Holding a coordination.k8s.io/v1 Lease: leader election, or membership.

Candidates that share a Lease name elect one holder (the allocator's replicas elect the
one that writes); a Lease with one candidate says that candidate is alive (membership).
:class:`LeaderElector` is the same for both, and holds its Lease as client-go does:

- the Lease is acquired and renewed by read, change, write with the resourceVersion
  read (a 409 means someone else wrote it first);
- a Lease held by another identity is taken over only once it has not changed for its
  whole duration, measured on this holder's own clock from when it saw the change: no
  trust in the other clocks;
- a holder counts as one only until ``renew_deadline`` after its last successful renew,
  shorter than the Lease's duration: one that cannot renew stops acting before anyone
  else may take over, and one that sees another holder stops at once;
- on a clean stop the Lease is handed back (holder cleared), so another candidate takes
  over without waiting for it to expire.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from lbroute.kube.client import Api
from lbroute.kube.writes import micro_time
from lbroute.model.errors import Conflict, KubernetesError, NotFound, ObjectRef

log = logging.getLogger(__name__)


class LeaderElector:
    """Holds the Lease ``namespace/name`` as ``identity``; :meth:`is_leader` says whether
    it does now (and so may act on it).

    ``duration`` is how long the Lease lasts without renewal before another candidate
    may take it, ``renew_deadline`` (shorter) how long after its last renewal a holder
    stops counting as one, ``retry_period`` the time between attempts to acquire or
    renew (all in seconds). ``clock`` is the monotonic clock they are measured on;
    ``on_change`` is called with True or False whenever holding starts or ends.
    """

    def __init__(
        self,
        api: Api,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] = lambda leader: None,
    ) -> None:
        self.api = api
        self.ref = ObjectRef(kind="Lease", namespace=namespace, name=name)
        self.identity = identity
        self.duration = duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self.on_change = on_change
        self._renewed: float | None = None
        """Time (on ``clock``) the last successful acquire or renew was sent."""
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._was = False
        self._lock = threading.Lock()

    def is_leader(self) -> bool:
        with self._lock:
            renewed = self._renewed
        return renewed is not None and self.clock() - renewed < self.renew_deadline

    def run(self, stop: threading.Event) -> None:
        """Acquire and renew until ``stop``; then hand the Lease back if held."""
        period = self.retry_period
        while not stop.is_set():
            try:
                self.try_once()
            except KubernetesError as exc:  # the API away: the deadline ends holding
                log.warning("lease %s: %s", self.ref.name, exc)
            self._notice()
            stop.wait(period * random.uniform(0.8, 1.0) if self.is_leader() else period)
        self.release()

    def _notice(self) -> None:
        now = self.is_leader()
        if now != self._was:
            self._was = now
            log.info(
                "%s the lease %s/%s as %s",
                "holding" if now else "lost",
                self.ref.namespace,
                self.ref.name,
                self.identity,
            )
            self.on_change(now)

    def _lost(self) -> None:
        with self._lock:
            self._renewed = None

    def try_once(self) -> bool:
        """One acquire-or-renew; True when this identity holds the Lease afterwards."""
        sent = self.clock()
        try:
            lease = self.api.read(self.ref)
        except NotFound:
            return self._create(sent)
        spec = dict(lease.get("spec") or {})
        record = tuple(
            spec.get(k) for k in ("holderIdentity", "renewTime", "acquireTime", "leaseTransitions")
        )
        if record != self._observed:
            self._observed, self._observed_at = record, sent
        holder = spec.get("holderIdentity")
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        if holder and holder != self.identity and sent < self._observed_at + duration:
            self._lost()
            self._notice()
            return False
        now = micro_time()
        if holder != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=max(1, round(self.duration)),
            renewTime=now,
        )
        lease["spec"] = spec
        try:
            self.api.replace(self.ref, lease)
        except (NotFound, Conflict):
            self._lost()
            return False
        with self._lock:
            self._renewed = sent
        return True

    def _create(self, sent: float) -> bool:
        now = micro_time()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.ref.name, "namespace": self.ref.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.duration)),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            self.api.create(self.ref, body)
        except Conflict:
            return False
        with self._lock:
            self._renewed = sent
        return True

    def release(self) -> None:
        """Hand the Lease back so another candidate takes over without waiting."""
        if not self.is_leader():
            return
        self._lost()
        try:
            lease = self.api.read(self.ref)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec.update(holderIdentity=None, leaseDurationSeconds=1, renewTime=micro_time())
            lease["spec"] = spec
            self.api.replace(self.ref, lease)
            log.info("handed the lease %s/%s back", self.ref.namespace, self.ref.name)
        except KubernetesError as exc:  # it expires by itself
            log.warning("could not hand the lease back: %s", exc)
        self._notice()
