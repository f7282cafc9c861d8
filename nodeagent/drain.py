"""Draining a node (issue 17): de-prefer its Service routes, then withdraw them.

What makes a node drain, any one of (:func:`triggers`):

- the Node has the standard label ``node.kubernetes.io/exclude-from-external-load-balancers``
  (any value);
- the Node is cordoned (``spec.unschedulable``) and its NodeAgent sets ``drainOnCordon``
  (off by default: a cordon alone does not always mean maintenance);
- kubelet reports a graceful node shutdown: its Ready condition is False with the shutdown
  manager's message "node is shutting down" (lbroute.model.nodes);
- ``lbroute drain`` was run on the node: a small request file next to the agent's status
  file (:func:`drain_file`), which ``lbroute undrain`` removes. The agent looks at it every
  check interval (a second), so this works on hosts without Kubernetes too.

:class:`Drainer` is the state machine, driven by an injected clock: Serving, then Draining
(phase 1: the routes are announced de-preferred, sessions kept) as soon as a trigger is
there, then Drained (phase 2: the routes are withdrawn, sessions still up) ``drainSeconds``
after the drain began. When every trigger is gone the node is Serving again at once, from
either phase. What each phase renders is the view's (renderer.view, :class:`Drain`): it
goes through the agent's normal validated, hitless apply path, once per phase.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from lbroute.model.agentconfig import DrainPolicy
from lbroute.model.files import write_atomic
from lbroute.model.nodes import EXCLUDE_LABEL, Node
from nodeagent.status import DrainStatus
from renderer.view import Drain


class DrainState(StrEnum):
    SERVING = "Serving"
    DRAINING = "Draining"
    """Phase 1: announcing de-preferred."""
    DRAINED = "Drained"
    """Phase 2: withdrawn."""


class Trigger(StrEnum):
    """Why a node drains (the text is what the status and Events say)."""

    LABEL = f"label {EXCLUDE_LABEL}"
    CORDON = "cordoned (drainOnCordon)"
    SHUTDOWN = "kubelet reports the node shutting down"
    COMMAND = "lbroute drain"


def triggers(node: Node | None, policy: DrainPolicy, requested: bool) -> tuple[Trigger, ...]:
    """The triggers present for ``node`` (None: the agent does not see its Node)."""
    found = []
    if node is not None and node.excluded:
        found.append(Trigger.LABEL)
    if node is not None and node.unschedulable and policy.on_cordon:
        found.append(Trigger.CORDON)
    if node is not None and node.shutting_down:
        found.append(Trigger.SHUTDOWN)
    if requested:
        found.append(Trigger.COMMAND)
    return tuple(found)


def utc(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


class Drainer:
    """The drain state machine. ``clock`` is monotonic seconds (the phase timer),
    ``wall`` the epoch seconds the timestamps are printed from."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.wall = wall
        self.state = DrainState.SERVING
        self.reasons: tuple[Trigger, ...] = ()
        self._began: float | None = None
        """Monotonic time the drain began; None when serving."""
        self._began_wall = 0.0
        self._seconds = 0

    @property
    def phase(self) -> Drain:
        return {
            DrainState.SERVING: Drain.NONE,
            DrainState.DRAINING: Drain.DEPREFER,
            DrainState.DRAINED: Drain.WITHDRAW,
        }[self.state]

    def update(self, reasons: tuple[Trigger, ...], seconds: int) -> bool:
        """Take the triggers present now and the NodeAgent's ``drainSeconds``; True
        when the phase changed."""
        before = self.state
        self.reasons = reasons
        self._seconds = seconds
        if not reasons:
            self.state, self._began = DrainState.SERVING, None
        elif self._began is None:
            self._began, self._began_wall = self.clock(), self.wall()
            self.state = DrainState.DRAINING
        self._advance()
        return self.state is not before

    def tick(self) -> bool:
        """Move to Drained when the time has come; True when the phase changed."""
        before = self.state
        self._advance()
        return self.state is not before

    def due(self) -> float:
        """Monotonic time of the next phase change the clock alone makes (inf: none)."""
        if self.state is DrainState.DRAINING and self._began is not None:
            return self._began + self._seconds
        return math.inf

    def _advance(self) -> None:
        if self.state is DrainState.DRAINING and self.clock() >= self.due():
            self.state = DrainState.DRAINED

    def status(self) -> DrainStatus:
        if self.state is DrainState.SERVING:
            return DrainStatus()
        return DrainStatus(
            state=self.state.value,
            reasons=tuple(r.value for r in self.reasons),
            since=utc(self._began_wall),
            withdraw_at=utc(self._began_wall + self._seconds),
        )


# -- lbroute drain / undrain ----------------------------------------------------------


def drain_file(status_file: Path) -> Path:
    """The request file of ``lbroute drain``, next to the agent's status file."""
    return status_file.with_name(status_file.name + ".drain")


def request_drain(status_file: Path) -> Path:
    """Ask the agent that writes ``status_file`` to drain the node; the request file."""
    path = drain_file(status_file)
    write_atomic(path, json.dumps({"drain": True, "requested": utc(time.time())}) + "\n")
    return path


def cancel_drain(status_file: Path) -> bool:
    """Withdraw the request; False when there was none."""
    try:
        os.unlink(drain_file(status_file))
    except FileNotFoundError:
        return False
    return True


def drain_requested(status_file: Path) -> bool:
    """Whether ``lbroute drain`` asked the agent to drain (the request file exists)."""
    return drain_file(status_file).exists()
