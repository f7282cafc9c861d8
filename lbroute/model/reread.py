"""Reading objects pass after pass, again only where an object changed.

The sources hand over the very same dict for an object that did not change (the
manifest directory per file, the API reflectors per object), so what was made of an
object last pass still holds while the object is the same object. :class:`Reread`
keeps that per object, by identity: a pass for one changed Service at 10,000 Services
reads one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Pass(Generic[T]):
    """One pass of :meth:`Reread.update`."""

    values: list[T]
    """What each object reads as, in the objects' order."""
    fresh: list[T]
    """Those of the objects read this pass (new, or other objects than last time)."""
    gone: list[T]
    """Those of last pass's objects that are not among this pass's."""


class Reread(Generic[T]):
    """``read(obj)`` for every object of a pass, read again only for an object that is
    not the very object it was last pass. It holds the objects it read, so an ``id`` is
    never reused while it is remembered."""

    def __init__(self, read: Callable[[Obj], T]) -> None:
        self._read = read
        self._last: dict[int, tuple[Obj, T]] = {}

    def update(self, objects: Iterable[Obj]) -> Pass[T]:
        last, now = self._last, {}
        values: list[T] = []
        fresh: list[T] = []
        for obj in objects:
            hit = last.get(id(obj))
            if hit is None or hit[0] is not obj:
                hit = (obj, self._read(obj))
                fresh.append(hit[1])
            now[id(obj)] = hit
            values.append(hit[1])
        gone = [value for key, (_obj, value) in last.items() if key not in now]
        self._last = now
        return Pass(values=values, fresh=fresh, gone=gone)


class Delta:
    """The objects of each pass against the last pass's, by identity: which are new
    (or other objects than last time) and which went. Each object is in a pass at most
    once (the sources hand over one dict per object).

    The sources keep their order, so the objects that changed are mostly together:
    what both passes share at their start and at their end is found by comparing the
    two lists in place (the interpreter's own loops, not Python code), and only what
    is between is compared by identity through sets. At 20,000 objects a pass costs
    about 1 ms; reading them one by one in Python cost 15 ms (issue 20). It holds the
    last pass's objects, so an ``id`` is never reused while it is compared."""

    def __init__(self) -> None:
        self._last: list[Obj] = []

    def update(self, objects: Iterable[Obj]) -> tuple[list[Obj], list[Obj]]:
        """(the objects new since the last pass, those of the last pass now gone)."""
        now, last = list(objects), self._last
        self._last = now
        start = _common(now, last)
        end = _common(now[start:][::-1], last[start:][::-1])
        new = now[start : len(now) - end]
        old = last[start : len(last) - end]
        if not new or not old:
            return new, old
        fresh = dict(zip(map(id, new), new, strict=True))
        went = dict(zip(map(id, old), old, strict=True))
        return (
            [fresh[key] for key in fresh.keys() - went.keys()],
            [went[key] for key in went.keys() - fresh.keys()],
        )


def _common(a: list[Obj], b: list[Obj]) -> int:
    """How many objects ``a`` and ``b`` share at their start, by identity."""
    same = list(map(operator.is_, a, b))
    try:
        return same.index(False)
    except ValueError:
        return len(same)
