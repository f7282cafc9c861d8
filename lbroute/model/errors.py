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
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One finding: the object, the field path inside it and what would be valid."""

    severity: Severity
    ref: ObjectRef
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.ref}: {self.path}: " if self.path else f"{self.ref}: "
        return f"{self.severity}: {where}{self.message}"


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
