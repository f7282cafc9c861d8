"""What the agent asks of a router, and what every driver does with its file.

:class:`RouterDriver` is the agent's whole view of a router: apply a configuration,
say which daemon instance runs (to notice a restart), list the sessions, tell whether
a text already runs. An apply never raises for a refusal: it returns an
:class:`ApplyResult` whose error, like every message a driver returns, has passwords
and keys :func:`redact`-ed (the model's one redaction, :func:`lbroute.model.secrets.redact`).
Its :class:`Outcome` says what happened, because each calls for something else: a text
the router rejected is not tried again until it changes, one it took but does not run
exactly, or a router that did not answer, is retried.

A driver replaces its configuration file with :func:`replace_file` and, when the
router refuses the new one, puts the old text back with :func:`restore_file`: the
file on disk is always one the router ran, so a restarted daemon comes up with the
last good configuration. (A text the router loaded without converging stays: it is
what the router runs, all but the lines the error names, and what the retries load.)
"""

from __future__ import annotations

import enum
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lbroute.model.files import write_atomic
from lbroute.model.secrets import redact as redact


class Outcome(enum.Enum):
    """What came of an apply (the value is what the status and NodeState say)."""

    APPLIED = "Applied"
    """The router runs the text."""
    REJECTED = "Rejected"
    """The router said no: its parser refused the text, or the daemon refused a line of
    it while loading it. The same text would be refused again; the last good
    configuration keeps running."""
    NOT_CONVERGED = "NotConverged"
    """The parser accepted the text and the router loaded it, but what it runs
    afterwards still differs from it (the error says which lines): worth trying again."""
    UNAVAILABLE = "Unavailable"
    """The router did not answer, or its configuration file could not be written:
    nothing was loaded; worth trying again."""
    REFUSED = "Refused"
    """lbroute did not load the text, because the router is not set up as the mode
    needs (BIRD runs another file than the agent's; a host's own configuration where
    nobody chose managed mode): nothing was touched, and the error says what to change."""

    def summary(self, router: str) -> str:
        """One sentence on what happened, for logs, conditions and Events (without the
        router's message); ``router`` names the router (``frr``, ``bird on node-a``),
        printed as its makers spell it (``FRR``, ``BIRD on node-a``)."""
        name, sep, rest = router.partition(" ")
        shown = {"bird": "BIRD", "frr": "FRR"}.get(name, name) + sep + rest
        return _SUMMARY[self].format(router=shown)


@dataclass(frozen=True, kw_only=True)
class ApplyResult:
    outcome: Outcome = Outcome.APPLIED
    error: str = ""
    """The router's own message, with the offending lines when it names them."""
    duration: float = 0.0
    """Seconds the whole apply took."""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.APPLIED

    @property
    def rejected(self) -> bool:
        """The router refused the text itself: applying it again cannot help."""
        return self.outcome is Outcome.REJECTED

    def summary(self, router: str) -> str:
        """See :meth:`Outcome.summary`."""
        return self.outcome.summary(router)


_SUMMARY = {
    Outcome.APPLIED: "{router} runs the new configuration",
    Outcome.REJECTED: "{router} rejected the new configuration; the last good one keeps running",
    Outcome.NOT_CONVERGED: "{router} accepted the new configuration, but after loading it "
    "still runs something else",
    Outcome.UNAVAILABLE: "{router} could not be reached to load the new configuration",
    Outcome.REFUSED: "lbroute did not load the new configuration into {router}, which is "
    "not set up for it",
}


UP_STATES = frozenset({"established", "full", "2-way", "up"})
"""Session states, lowercased, in which a session carries routes."""


@dataclass(frozen=True, kw_only=True)
class Session:
    """One routing session or adjacency, as the router reports it."""

    name: str
    """BIRD protocol name (``lbr_bgp_tor``); FRR BGP neighbor (address or interface);
    ``<neighbor>@<interface>`` for FRR OSPF, OSPFv3 and IS-IS; the BFD peer address
    (``@<interface>`` when bound to one)."""
    protocol: str
    """``bgp``, ``ospf``, ``ospf6``, ``rip``, ``ripng``, ``isis`` or ``bfd``."""
    state: str
    """``Established``, ``Active``, ``Full``, ``Up``, ``up``, ``down``... as printed."""
    since: str = ""
    """Uptime or time of the last state change, as the router prints it."""

    @property
    def up(self) -> bool:
        """The session carries routes: BGP Established, an OSPF neighbour Full (or
        2-Way, as between two non-designated routers), IS-IS, RIP or BFD up."""
        return self.state.lower() in UP_STATES


class RouterDriver(Protocol):
    def apply(self, text: str) -> ApplyResult:
        """Validate ``text`` with the real parser, write it atomically and make it the
        running configuration; when the router rejects it, the previous configuration
        keeps running."""
        ...

    def generation(self) -> str | None:
        """Identifies the running daemon instance (changes when it restarts); ``None``
        when the router does not answer."""
        ...

    def sessions(self) -> list[Session]: ...

    def is_current(self, text: str) -> bool:
        """The router already runs ``text`` (so an agent restart applies nothing)."""
        ...

    def written(self) -> str | None:
        """The configuration file the driver writes, as it is now (None when there is
        none): what a router restarted from its file would run."""
        ...


def failed(error: str, started: float, outcome: Outcome) -> ApplyResult:
    """A failed apply that began at ``started`` (``time.monotonic()``)."""
    return ApplyResult(outcome=outcome, error=redact(error), duration=time.monotonic() - started)


def read_file(path: Path) -> str | None:
    """The file's text; None when there is no file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def replace_file(path: Path, text: str) -> str | None:
    """Write ``text`` to ``path`` atomically; return the previous content (None if new)."""
    previous = read_file(path)
    _write(path, text)
    return previous


def restore_file(path: Path, previous: str | None) -> None:
    """Put back what :func:`replace_file` returned: the old text, or no file."""
    if previous is None:
        # Through a link, the file it names goes and the link stays, as it was.
        Path(os.path.realpath(path)).unlink(missing_ok=True)
    else:
        _write(path, previous)


def _write(path: Path, text: str) -> None:
    """Mode 0600; when the file exists its owner and group are kept, and so is group read
    (Debian ships bird.conf and frr.conf group-readable for the daemon's group). The
    directory must exist: a driver creates no directories."""
    try:
        old = path.stat()
    except FileNotFoundError:
        write_atomic(path, text, mode=0o600, parents=False)
        return
    write_atomic(
        path,
        text,
        mode=0o600 | (stat.S_IMODE(old.st_mode) & stat.S_IRGRP),
        owner=(old.st_uid, old.st_gid),
        parents=False,
    )
