"""What a conversion found: each source object and what it became, what could not be
converted and why, and what the self-check said.

A :class:`Finding` names the source object (kind, namespace/name), the field and what
lbroute would need; an ``error`` is something lbroute cannot express and that was left
out or changed (never approximated silently), a ``warning`` something the user must do
or know, an ``info`` a rule the conversion applied. :meth:`Report.text` is what
``lbroute convert`` prints; every value in it is quoted or escaped as lbroute's own
messages are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lbroute.model.errors import escape, quote
from lbroute.model.fields import mapping_at


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


def source_of(obj: Any) -> str:
    """``Kind namespace/name`` of a source object, escaped."""
    if not isinstance(obj, dict):
        return "(not an object)"
    meta = mapping_at(obj, "metadata")
    kind = escape(str(obj.get("kind") or "?"), 63)
    name = escape(str(meta.get("name") or "?"), 253)
    namespace = meta.get("namespace")
    return f"{kind} {escape(str(namespace), 63)}/{name}" if namespace else f"{kind} {name}"


@dataclass(frozen=True)
class Finding:
    level: Level
    source: str
    """``Kind namespace/name`` of the object it is about (or a short subject)."""
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}: " if self.path else f"{self.source}: "
        return f"{self.level}: {where}{self.message}"


@dataclass
class Report:
    converted: list[str] = field(default_factory=list)
    """``source -> target`` lines, in the order the objects were converted."""
    findings: list[Finding] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    """What happens to each Service: addresses pinned, annotations renamed."""
    recreate: list[str] = field(default_factory=list)
    """Services whose loadBalancerClass names the other tool: they must be recreated."""
    check: list[str] = field(default_factory=list)
    """The self-check's summary lines (validation, allocation)."""
    moves: list[str] = field(default_factory=list)
    """Addresses the allocation would move (each an error), or why it cannot tell."""
    invalid: list[str] = field(default_factory=list)
    """Problems ``lbroute validate`` finds in the converted objects (errors)."""

    def add(self, level: Level, obj: Any, path: str, message: str) -> None:
        source = obj if isinstance(obj, str) else source_of(obj)
        finding = Finding(level, source, path, message)
        if finding not in self.findings:
            self.findings.append(finding)

    def error(self, obj: Any, path: str, message: str) -> None:
        self.add(Level.ERROR, obj, path, message)

    def warning(self, obj: Any, path: str, message: str) -> None:
        self.add(Level.WARNING, obj, path, message)

    def info(self, obj: Any, path: str, message: str) -> None:
        self.add(Level.INFO, obj, path, message)

    def of(self, level: Level) -> list[Finding]:
        return [f for f in self.findings if f.level is level]

    @property
    def refused(self) -> list[Finding]:
        return self.of(Level.ERROR)

    @property
    def unsafe(self) -> bool:
        """The output must not be applied: it is invalid or would move an address."""
        return bool(self.moves or self.invalid)

    def text(self) -> str:
        out: list[str] = []

        def section(title: str, lines: list[str]) -> None:
            if lines:
                out.append(f"{title}:")
                out.extend(f"  {line}" for line in lines)

        section("Converted", self.converted)
        section("Not converted (no lbroute equivalent)", [str(f) for f in self.refused])
        section("Warnings", [str(f) for f in self.of(Level.WARNING)])
        section("Rules applied", [str(f) for f in self.of(Level.INFO)])
        section("Services", self.services)
        section(
            "Services to recreate (spec.loadBalancerClass is immutable)",
            self.recreate,
        )
        section("Check", [*self.check, *self.invalid, *self.moves])
        return "\n".join(out) + "\n"


def q(value: Any) -> str:
    """A value as the report shows it."""
    return quote(value, 80)
