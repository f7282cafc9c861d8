"""Events (events.k8s.io/v1) about objects, as one controller instance reports them.

Rate limited by a token bucket, as Kubernetes' own recorders are: an Event storm (every
Service of a cluster at once after a router failed) must not flood the API; what does
not fit is logged and counted, not sent. The same Event again (same object, reason,
source and note) is counted in the existing Event's series instead of creating another.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from lbroute.kube.client import Api
from lbroute.kube.trim import JSON
from lbroute.kube.writes import micro_time
from lbroute.model.errors import Conflict, ObjectRef
from lbroute.model.logs import about
from lbroute.model.vocabulary import API_VERSION, CORE_KINDS

log = logging.getLogger(__name__)

MAX_NOTE = 1024
"""events.k8s.io/v1 rejects longer notes."""


class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate`` per second; one per Event."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class EventRecorder:
    """Sends Events about objects for one controller instance (``controller`` is its
    reportingController, ``instance`` its reportingInstance)."""

    def __init__(
        self,
        api: Api,
        *,
        controller: str,
        instance: str,
        source: str,
        namespace: str,
        events_per_second: float = 10.0,
        event_burst: int = 100,
        on_dropped_event: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.controller = controller
        self.instance = instance[:128]
        self.source = source
        """Part of an Event's name: the same Event from another source is another one."""
        self.namespace = namespace
        """For objects without a namespace."""
        self.bucket = TokenBucket(events_per_second, event_burst)
        self.on_dropped_event = on_dropped_event

    def emit(
        self, ref: ObjectRef, kind: str, reason: str, note: str, *, uid: str | None = None
    ) -> None:
        """Send an Event of type ``kind`` (Normal, Warning) about ``ref``."""
        if not self.bucket.take():
            log.info("event not sent (rate limit): %s %s %s", ref, reason, note, extra=about(ref))
            if self.on_dropped_event:
                self.on_dropped_event()
            return
        note = note if len(note) <= MAX_NOTE else note[: MAX_NOTE - 3] + "..."
        namespace = ref.namespace or self.namespace
        digest = hashlib.sha256(f"{reason}\0{self.source}\0{note}".encode()).hexdigest()[:10]
        name = f"{ref.name}.{digest}"[-253:].lstrip(".-")
        event = ObjectRef(kind="Event", namespace=namespace, name=name)
        now = micro_time()
        regarding: JSON = {
            "kind": ref.kind,
            "namespace": namespace,
            "name": ref.name,
            "apiVersion": CORE_KINDS.get(ref.kind, API_VERSION),
        }
        if uid:
            regarding["uid"] = uid
        body: JSON = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "eventTime": now,
            "reportingController": self.controller,
            "reportingInstance": self.instance,
            "action": reason,
            "reason": reason,
            "type": kind,
            "note": note,
            "regarding": regarding,
        }
        try:
            self.api.create(event, body)
        except Conflict:
            self._repeat(event, now)

    def _repeat(self, event: ObjectRef, now: str) -> None:
        """The same Event again: count it in its series."""
        series = self.api.read(event).get("series") or {"count": 1}
        patch = {"series": {"count": int(series["count"]) + 1, "lastObservedTime": now}}
        self.api.patch(event, patch)
