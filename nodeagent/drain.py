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
either phase. The wall time the drain began is kept in a small file next to the status
file (:func:`began_file`), so an agent restarted mid-drain (its container restarting:
the status directory is kept) continues in the same phase with the same deadline
instead of starting phase 1 again (a new pod starts with an empty status directory:
its drain starts afresh). What each phase renders is the view's (renderer.view,
:class:`Drain`): it goes through the agent's normal validated, hitless apply path, once
per phase.
"""

from __future__ import annotations

import contextlib
import json
import logging
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

log = logging.getLogger(__name__)


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
        state_file: Path | None = None,
    ) -> None:
        self.clock = clock
        self.wall = wall
        self.state_file = state_file
        """Where the wall time the drain began is kept across restarts (None: nowhere)."""
        self.state = DrainState.SERVING
        self.reasons: tuple[Trigger, ...] = ()
        self._began: float | None = None
        """Monotonic time the drain began; None when serving."""
        self._began_wall = 0.0
        self._seconds = 0
        self._resumed = read_began(state_file) if state_file is not None else None
        """When a drain the previous agent ran began (epoch seconds), until the first
        :meth:`update` takes it (the triggers still there) or drops it (gone)."""

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
        resumed, self._resumed = self._resumed, None
        if not reasons:
            if self._began is not None or resumed is not None:
                self._forget()
            self.state, self._began = DrainState.SERVING, None
        elif self._began is None:
            now, wall = self.clock(), self.wall()
            if resumed is not None:
                # The previous agent's drain: the same deadline, counted from when it
                # began (never from the future, should the wall clock have stepped back).
                self._began, self._began_wall = now - max(0.0, wall - resumed), resumed
            else:
                self._began, self._began_wall = now, wall
                self._remember()
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

    def _remember(self) -> None:
        """Keep when the drain began; a file that cannot be written only costs the
        restart its deadline (logged), never the drain."""
        if self.state_file is not None:
            try:
                write_began(self.state_file, self._began_wall)
            except OSError as e:
                log.warning("cannot keep the drain's start in %s: %s", self.state_file, e)

    def _forget(self) -> None:
        if self.state_file is not None:
            try:
                os.unlink(self.state_file)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("cannot remove %s: %s", self.state_file, e)

    def status(self) -> DrainStatus:
        if self.state is DrainState.SERVING:
            return DrainStatus()
        return DrainStatus(
            state=self.state.value,
            reasons=tuple(r.value for r in self.reasons),
            since=utc(self._began_wall),
            withdraw_at=utc(self._began_wall + self._seconds),
        )


# -- the drain's start, kept across agent restarts -----------------------------------


def began_file(status_file: Path) -> Path:
    """Where the agent writing ``status_file`` keeps when its node's drain began."""
    return status_file.with_name(status_file.name + ".drain-began")


def write_began(path: Path, wall: float) -> None:
    write_atomic(path, json.dumps({"began": wall, "at": utc(wall)}) + "\n")


def read_began(path: Path) -> float | None:
    """When the drain recorded in ``path`` began (epoch seconds); None when there is no
    such file or it cannot be read (then a drain starts afresh, as it would have)."""
    try:
        began = json.loads(path.read_text()).get("began")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(began, bool) or not isinstance(began, int | float) or not math.isfinite(began):
        return None
    return float(began)


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
    """Withdraw the request; False when there was none. The drain's kept start goes too:
    with the agent stopped, an undrain then a new ``lbroute drain`` must start a new
    drain at phase 1, not resume the old one's deadline (a drain another trigger keeps
    up only loses its deadline across a restart, the agent keeps the drain itself)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(began_file(status_file))
    try:
        os.unlink(drain_file(status_file))
    except FileNotFoundError:
        return False
    return True


def drain_requested(status_file: Path) -> bool:
    """Whether ``lbroute drain`` asked the agent to drain (the request file exists)."""
    return drain_file(status_file).exists()
