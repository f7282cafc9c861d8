"""How lbroute writes objects it shares with others: read, change, write; conditions.

Other writers change the same objects (the agents all write the ``Valid`` condition of
one ServiceGroup, the allocator its ``Allocatable`` condition and the Services' status,
users and other controllers everything else), so nothing is written blind:
:func:`read_change_write` reads the object, lets the caller compute a merge patch from
what it read, and writes it with the resourceVersion read. A write in between makes
ours fail with 409, and the whole is done again, a few times (:data:`CONFLICT_RETRIES`).
A condition changes only its own entry in ``status.conditions``
(:func:`with_condition`), keeping its ``lastTransitionTime`` while its status stays.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lbroute.kube.trim import JSON
from lbroute.model.errors import Conflict, NotFound, ObjectRef
from lbroute.model.logs import about

if TYPE_CHECKING:
    from lbroute.kube.client import Api

log = logging.getLogger(__name__)

MERGE = "application/merge-patch+json"
"""The content type of every patch lbroute sends."""
CONFLICT_RETRIES = 5
"""Reads and writes of one change before it is left to the next pass."""
MAX_MESSAGE = 32768
"""The longest condition message the API takes."""

State = tuple[str, str, str]
"""A condition's (status, reason, message)."""


def micro_time(now: datetime.datetime | None = None) -> str:
    """A MicroTime (Events' eventTime, Leases' renewTime): now unless given."""
    now = now or datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seconds_time() -> str:
    """A Time (a condition's lastTransitionTime): now, to the second."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_change_write(
    api: Api,
    ref: ObjectRef,
    change: Callable[[JSON], JSON | None],
    *,
    status: bool = False,
    allowed: Callable[[], bool] = lambda: True,
) -> bool:
    """Change an object without undoing anyone else's change to it: read it (through
    its status subresource with ``status``), let ``change`` compute a merge patch from
    what was read (None: nothing to do), and write it with the resourceVersion read, so
    that a write in between fails with 409 and the whole is done again. An object that
    is gone (404) needs nothing. ``allowed`` is asked before each write (a leader that
    lost its lease stops). True when the patch was written."""
    for _ in range(CONFLICT_RETRIES):
        try:
            current = api.read(ref, status=status)
        except NotFound:
            return False
        patch = change(current)
        if patch is None or not allowed():
            return False
        meta = patch.setdefault("metadata", {})
        meta["resourceVersion"] = (current.get("metadata") or {})["resourceVersion"]
        try:
            api.patch(ref, patch, status=status)
        except Conflict:
            continue
        except NotFound:
            return False
        return True
    log.warning("%s: kept changing under us; the next pass tries again", ref, extra=about(ref))
    return False


def condition(kind: str, status: str, reason: str, message: str, previous: JSON | None) -> JSON:
    """A condition; its lastTransitionTime kept from ``previous`` when the status is."""
    old = next((c for c in (previous or {}).get("conditions") or () if c.get("type") == kind), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status else seconds_time()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "lastTransitionTime": since,
    }


def with_condition(current: Mapping[str, Any], kind: str, want: State) -> JSON:
    """``current``'s status with condition ``kind`` set to (status, reason, message) and
    every other condition as it was."""
    status = dict(current.get("status") or {})
    mine = condition(kind, *want, status)
    mine["observedGeneration"] = (current.get("metadata") or {}).get("generation", 0)
    status["conditions"] = [
        *(c for c in status.get("conditions") or () if c.get("type") != kind),
        mine,
    ]
    return status
