"""Every error lbroute raises on purpose, and the problems it reports about objects.

Hierarchy::

    LbrouteError                   base of every error lbroute raises on purpose
    ├── InvalidObject              one API object failed validation (all its problems at once)
    ├── ManifestError              a manifest file could not be read or parsed
    ├── RenderError                a template failed: names the template file and line
    ├── RouterError                a router could not be used for a node (for example
    │                              IS-IS asked of BIRD); raised only when nothing can be rendered
    ├── RouterToolMissing          the router's command-line tool is not installed
    ├── InterfaceError             kube-lb0 or a NIC could not be created, found or configured
    ├── ServingError               health and metrics cannot be served (address, port)
    └── KubernetesError            the API server said no, or did not answer
        ├── Conflict               409: someone wrote first; read again and retry   (retryable)
        ├── NotFound               404: the object is not there
        ├── Gone                   410: a watch's resourceVersion expired; list again (retryable)
        ├── Rejected               any other 4xx: forbidden, invalid, too large     (permanent)
        └── Unavailable            no answer, 429 or 5xx: try again with backoff    (retryable)

The Kubernetes client's own exceptions are turned into these in one place, the
Kubernetes layer (``lbroute.kube.errors``), with ``raise ... from exc``; no other module
catches the client's exceptions. ``retryable`` says whether trying the same request
again later can succeed.

A :class:`Problem` is one finding about one object: an error (the object is skipped,
the rest still renders) or a warning (it renders, but probably not as meant).

Input values reach messages only through :func:`quote` (repr-like quoting, cut to a short
prefix), and an :class:`ObjectRef` or a :class:`Problem` prints with control characters
escaped, so a name or value holding a newline or a terminal escape cannot fake a line of
output or repaint the terminal.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

QUOTE_LIMIT = 64
"""How many characters of an input value a message shows."""

_NAME_LIMIT = 253
"""The longest valid object name: a longer one is printed cut."""

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 2, 4, 4, 4
_REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 4
_REPR.maxstring = _REPR.maxother = QUOTE_LIMIT
_REPR.maxlong = 40


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """An input value as a message shows it: quoted like :func:`repr` (control characters
    escaped) and cut to its first ``limit`` characters; containers are shown two levels
    deep and four items wide, so no value costs more than a short line."""
    if isinstance(value, str | bytes):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    try:
        return _REPR.repr(value)
    except ValueError:  # an integer too long to print
        return f"<an integer of {int(value).bit_length()} bits>"


def escape(text: str, limit: int | None = None) -> str:
    """``text`` with every non-printable character written as its escape (``\\n``,
    ``\\x1b``, ``\\u202e``), cut to ``limit`` characters when given."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, kw_only=True, order=True)
class ObjectRef:
    """Which object a problem is about: ``ServiceGroup lbroute/web``."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        name = escape(self.name, _NAME_LIMIT)
        if self.namespace:
            return f"{escape(self.kind)} {escape(self.namespace, _NAME_LIMIT)}/{name}"
        return f"{escape(self.kind)} {name}"


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One finding: the object, the field path inside it and what would be valid."""

    severity: Severity
    ref: ObjectRef
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.ref}: {escape(self.path)}: " if self.path else f"{self.ref}: "
        return f"{self.severity}: {where}{escape(self.message)}"


class LbrouteError(Exception):
    """Base of every error lbroute raises on purpose."""


class InvalidObject(LbrouteError):
    """An API object failed validation; ``problems`` holds every finding for it."""

    def __init__(self, ref: ObjectRef, problems: tuple[Problem, ...]) -> None:
        self.ref = ref
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RenderError(LbrouteError):
    """A template could not be rendered. The message names the template file and line."""

    def __init__(self, message: str, *, template: str | None = None, line: int | None = None):
        self.template = template
        self.line = line
        where = ""
        if template is not None:
            where = f"{template}:{line}: " if line is not None else f"{template}: "
        super().__init__(f"{where}{message}")


class RouterError(LbrouteError):
    """The model cannot be rendered for this router at all."""


class ManifestError(LbrouteError):
    """A manifest file could not be read or parsed."""


class RouterToolMissing(LbrouteError):
    """The router's command-line tool is not installed."""


class InterfaceError(LbrouteError):
    """kube-lb0 or a NIC could not be created, found or configured."""


class ServingError(LbrouteError):
    """/metrics, /healthz and /readyz cannot be served: the address is not an IP address
    or not this node's, or the port is taken."""


class KubernetesError(LbrouteError):
    """The API server refused a request or did not answer; ``status`` is its HTTP status
    (0 when there was no answer)."""

    retryable = False

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


class Conflict(KubernetesError):
    """409: the object changed since it was read (or already exists); read it again."""

    retryable = True


class NotFound(KubernetesError):
    """404: the object (or its kind) is not there."""


class Gone(KubernetesError):
    """410: the resourceVersion a watch started from has expired; list again."""

    retryable = True


class Rejected(KubernetesError):
    """Any other 4xx: forbidden, invalid, too large. Retrying the same request fails again."""


class Unavailable(KubernetesError):
    """No answer (connection refused, reset, timed out), 429 or 5xx: try again later."""

    retryable = True
