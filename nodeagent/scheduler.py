"""When the agent applies a router configuration: coalescing, retries, re-applying.

:class:`ApplySchedule` is a state machine on the texts the agent rendered. It knows
what the router runs (``applied``), what last failed (``failed``) and what waits to be
applied (``pending``), and answers two questions: what to apply now (:meth:`take`), and
when to ask again (:meth:`due`). The agent offers each new text (:meth:`offer`), says
what came of an apply (:meth:`done`) and that the router restarted (:meth:`restarted`).
It never talks to the router, and every time is an argument, so it is tested with a
clock of the test's own.

The rules, and why:

- a burst of changes is coalesced: the newest text is applied once no newer one
  arrived for ``settle`` seconds, and at the latest ``max_delay`` seconds after the
  first of the burst: every reload costs the router work, and the texts in between
  are out of date before they could run;
- a text the router's parser rejected is not tried again until the input changes: the
  same text would be rejected again, and the last good one keeps running meanwhile;
- an apply that failed otherwise (the router not answering yet, a reload that did not
  take) is retried after each step of ``retry_backoff``, then not until a change;
- a new text replaces a retry planned for the old one;
- coming back to the text the router runs (a broken input fixed) applies nothing, and
  the failure no longer describes the node;
- after a router restart a text is applied again at once, the newest the agent has:
  the pending one, else the one the router ran, else the one that failed (rejected or
  not: the new daemon may take it). The new daemon runs whatever it started from (FRR
  may start empty), not necessarily what the agent applied.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from nodeagent.routers import ApplyResult
from nodeagent.settings import ApplyTiming

log = logging.getLogger(__name__)

NEVER = float("inf")


class Offer(enum.Enum):
    """What became of a text offered to the schedule."""

    PENDING = "pending"
    """To be applied once due (:meth:`ApplySchedule.due`)."""
    CURRENT = "current"
    """The router runs it already: nothing to do."""
    RECOVERED = "recovered"
    """The router runs it already, and the failure since no longer holds (the agent
    reports the node unchanged)."""
    FAILED_BEFORE = "failed before"
    """It failed before: retried as planned, or not until the input changes."""


@dataclass
class ApplySchedule:
    """Which text to apply when; see the module docstring for the rules."""

    timing: ApplyTiming
    applied: str | None = None
    """The text the router runs, as far as the agent knows."""
    failed: str | None = None
    """The text whose apply failed last (the router runs ``applied``, or nothing of ours)."""
    pending: str | None = None
    """The newest text, waiting to be applied."""
    pending_since: float = 0.0
    """When the first text of the burst ``pending`` ends arrived."""
    pending_last: float = 0.0
    """When ``pending`` arrived."""
    retry_at: float = NEVER
    """When ``failed`` is applied again (inf: not before a change or a restart)."""
    retries: int = 0
    """Retries of ``failed`` planned so far (steps of the backoff used)."""

    @property
    def fresh(self) -> bool:
        """Nothing applied, failed or pending yet: the router may run the first text
        already (a restarted agent), which only the router can tell."""
        return self.applied is None and self.failed is None and self.pending is None

    def adopt(self, text: str) -> None:
        """The router runs ``text`` already (the agent asked it): nothing to apply."""
        self.applied, self.failed, self.pending = text, None, None
        self._no_retry()

    def offer(self, text: str, now: float) -> Offer:
        """The newest rendered text, at ``now``."""
        if text != self.failed:
            self._no_retry()
        if text == self.applied:
            self.pending = None
            if self.failed is not None:
                self.failed = None
                return Offer.RECOVERED
            return Offer.CURRENT
        if text == self.failed:
            return Offer.FAILED_BEFORE
        if self.pending is None:
            self.pending_since = now
        self.pending, self.pending_last = text, now
        return Offer.PENDING

    def due(self) -> float:
        """When :meth:`take` has something next (inf: nothing until a change)."""
        return min(self._apply_due(), self.retry_at)

    def _apply_due(self) -> float:
        if self.pending is None:
            return NEVER
        return min(
            self.pending_last + self.timing.settle, self.pending_since + self.timing.max_delay
        )

    def take(self, now: float) -> str | None:
        """The text to apply at ``now``, if any; the agent applies it and calls
        :meth:`done`."""
        if self.pending is not None and now >= self._apply_due():
            text, self.pending = self.pending, None
            return text
        if now >= self.retry_at:
            self.retry_at = NEVER
            if self.failed is not None and self.pending is None:
                text, self.failed = self.failed, None
                return text
        return None

    def done(self, text: str, result: ApplyResult, now: float) -> None:
        """What applying ``text`` at ``now`` came to: plans a retry when one may help."""
        if result.ok:
            self.applied, self.failed = text, None
        else:
            self.failed = text
        if result.ok or result.rejected:
            self._no_retry()
        elif self.retries < len(self.timing.retry_backoff):
            delay = self.timing.retry_backoff[self.retries]
            self.retries += 1
            self.retry_at = now + delay
            log.warning("applying again in %g s (attempt %d)", delay, self.retries + 1)
        else:
            self.retry_at = NEVER
            log.error("giving up after %d attempts; waiting for a change", self.retries + 1)

    def restarted(self) -> str | None:
        """The router daemon (re)started: the text to apply again at once, if any."""
        text = self.pending or self.applied or self.failed
        if text is None:
            return None
        self.applied = self.failed = self.pending = None
        self._no_retry()
        return text

    def _no_retry(self) -> None:
        self.retry_at, self.retries = NEVER, 0
