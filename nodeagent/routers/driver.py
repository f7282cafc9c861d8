"""What the agent asks of a router, and what every driver does with its file.

:class:`RouterDriver` is the agent's whole view of a router: apply a configuration,
say which daemon instance runs (to notice a restart), list the sessions, tell whether
a text already runs. An apply never raises for a refusal: it returns an
:class:`ApplyResult` whose error, like every message a driver returns, has passwords
and keys :func:`redact`-ed.

A driver replaces its configuration file with :func:`replace_file` and, when the
router refuses the new one, puts the old text back with :func:`restore_file`: the
file on disk is always one the router ran, so a restarted daemon comes up with the
last good configuration.
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lbroute.model.files import write_atomic


@dataclass(frozen=True, kw_only=True)
class ApplyResult:
    ok: bool
    error: str = ""
    """The router's own message, with the offending lines when it names them."""
    duration: float = 0.0
    """Seconds the whole apply took."""
    rejected: bool = False
    """The router's parser refused the text itself: applying it again cannot help."""


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


class RouterDriver(Protocol):
    def apply(self, text: str) -> ApplyResult:
        """Validate ``text`` with the real parser, write it atomically and make it the
        running configuration; on failure the previous configuration keeps running."""
        ...

    def generation(self) -> str | None:
        """Identifies the running daemon instance (changes when it restarts); ``None``
        when the router does not answer."""
        ...

    def sessions(self) -> list[Session]: ...

    def is_current(self, text: str) -> bool:
        """The router already runs ``text`` (so an agent restart applies nothing)."""
        ...


def failed(error: str, started: float, *, rejected: bool = False) -> ApplyResult:
    """A failed apply that began at ``started`` (``time.monotonic()``)."""
    return ApplyResult(
        ok=False, error=redact(error), duration=time.monotonic() - started, rejected=rejected
    )


_SECRETS = re.compile(
    r"""(?P<key>\bpassword\s+|\bkey-string\s+|\bmd5\s+|\bauthentication\s+string\s+)"""
    r"""(?P<value>"[^"\n]*"|\S+)"""
)


def redact(text: str) -> str:
    """``text`` with passwords and keys (BIRD or FRR syntax) replaced by ``<redacted>``."""
    return _SECRETS.sub(
        lambda m: m["key"] + ('"<redacted>"' if m["value"].startswith('"') else "<redacted>"),
        text,
    )


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
