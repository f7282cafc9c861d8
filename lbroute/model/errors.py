"""Errors raised by the renderer, and the problems it reports about objects.

Hierarchy::

    LbrouteError                   base of every error lbroute raises on purpose
    ├── InvalidObject              one API object failed validation (all its problems at once)
    ├── RenderError                a template failed: names the template file and line
    └── RouterError                a router could not be used for a node (for example
                                   IS-IS asked of BIRD); raised only when nothing can be rendered

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
