"""Each object's last valid version: an edit that makes an object invalid does not take it away.

A ServiceGroup, Peer or NodeAgent that was valid and is edited into an invalid one (a
``/33`` CIDR, a misspelt ``pools``, a half-written file that still parses) would
otherwise drop out of the model at once, and its Services with it: the agent would take
their addresses off kube-lb0 and withdraw their routes because of a typo. So the agent
and the allocator load their objects through :func:`load`, which remembers the last
valid version of each of these objects and uses it in place of an invalid current one::

    objects, Memory -> load -> Model (from the current versions, or the last valid ones)
                            -> Memory (each object's last valid version, for the next load)

The rules:

- an object whose current version is invalid, and that had a valid one before, is
  used as that version; the current version is reported as one error naming what is
  wrong with it (the first few problems) and which version stays in use: its
  ``generation``, else its ``resourceVersion``, else when lbroute first read it
  (``now``, passed in: this module reads no clock). An error, so the object's ``Valid``
  condition turns false, with an ``Invalid`` Event, and ``lbroute status`` lists it;
- an object invalid from its first sight has no last valid version: it is reported and
  not used, as :func:`lbroute.model.api.load` does;
- an object that is gone from the objects (deleted, or its file removed) is forgotten,
  so it is withdrawn; a renamed object is a new one, and its old name is deleted;
- conflicts between objects (two ServiceGroups whose pools overlap): an object whose
  current version is the one remembered as valid, or that stands in as its last valid
  version, is *settled* and wins over one that changed. So the edited (newer) object is
  the invalid one, and the ServiceGroup that held the pool keeps it, whatever the
  names; between two objects that both changed, or on a first load, the earlier by
  namespace and name wins, as before;
- only lbroute's own kinds are kept so. A Peer's Secret is read as it is now: a Peer
  whose Secret is deleted or no longer valid cannot use its last valid version either
  (its password would be gone) and is not used.

A version counts as the same while its content is: the object without ``status``,
``resourceVersion``, ``generation`` and ``managedFields``, so the conditions lbroute
writes on an object do not make it a new version. The memory holds the objects as they
were read; callers must not change them afterwards.

Usually one :func:`~lbroute.model.model.load`; one more when an object stands in for its
current version (and, rarely, once more per settled object that pushes out another
object that had changed and had a valid version of its own). Each object is parsed
once, so a load after the first costs only the checks across objects: with 64,000
ServiceGroups, a small part of the first.

The memory lives in the process: an agent that restarts, or an allocator replica that
becomes leader, starts with none, and an object that is invalid at that moment is
treated as invalid from its first sight.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from lbroute.model.errors import InvalidObject, ObjectRef, Problem, Severity, quote
from lbroute.model.fields import name_text
from lbroute.model.model import SKIPPED, Model, Parsed, parse_object
from lbroute.model.model import load as load_model
from lbroute.model.vocabulary import GROUP, NODE_AGENT, PEER, SERVICE_GROUP

KEPT: Final = (SERVICE_GROUP, PEER, NODE_AGENT)
"""The kinds whose last valid version stands in for an invalid current one."""

SHOWN: Final = 5
"""How many problems of an invalid version the error quotes (the rest are counted)."""

_SERVER_SET: Final = frozenset({"resourceVersion", "generation", "managedFields"})


@dataclass(frozen=True, kw_only=True)
class Version:
    """One object as it was when it was last valid."""

    obj: Mapping[str, Any]
    """The object as it was read."""
    label: str
    """How messages name it: ``generation 3``, ``resourceVersion '812'`` or
    ``read at 2026-11-28T01:12:09Z``."""


@dataclass(frozen=True)
class Memory:
    """The last valid version of each object of the :data:`KEPT` kinds still present."""

    versions: Mapping[ObjectRef, Version] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Loaded:
    """What :func:`load` returns."""

    model: Model
    """The model to use: current versions where valid, last valid versions in place of
    invalid ones; its problems report the invalid versions."""
    memory: Memory
    """For the next :func:`load`."""
    kept: tuple[ObjectRef, ...] = ()
    """The objects whose last valid version stands in for their current one."""
    standing: Mapping[ObjectRef, str] = field(default_factory=dict)
    """Each of :attr:`kept` -> what to say of it where it is used (the allocator's
    ``Allocatable`` condition): ``serving as its last valid version (generation 3): <what
    is wrong with the current one>``."""


def load(objects: Iterable[Mapping[str, Any]], memory: Memory, *, now: str) -> Loaded:
    """Load ``objects`` as :func:`lbroute.model.api.load` does, with every object that
    turned invalid replaced by its last valid version in ``memory``; ``now`` (UTC, as
    ``2026-11-28T01:12:09Z``) labels versions that carry neither generation nor
    resourceVersion."""
    objects = list(objects)
    present: dict[ObjectRef, list[int]] = {}
    for i, obj in enumerate(objects):
        ref = _ref(obj)
        if ref is not None:
            present.setdefault(ref, []).append(i)
    remembered = memory.versions
    unchanged = frozenset(
        ref
        for ref, at in present.items()
        if ref in remembered and _content(objects[at[0]]) == _content(remembered[ref].obj)
    )
    settled = set(unchanged)
    current: dict[ObjectRef, list[Problem]] = {}
    """Objects standing in as their last valid version -> the problems of the current."""
    parse = _Parser()
    used_objects = objects
    while True:
        model = load_model(used_objects, settled=settled, parse=parse)
        used = _used(model)
        turned = [r for r in present if r not in used and r in remembered and r not in current]
        if not turned:
            break
        problems = _by_ref(model.problems)
        for ref in turned:
            current[ref] = problems.get(ref, [])
            settled.add(ref)
        used_objects = _standing_in(objects, present, current, remembered)
    return Loaded(
        model=_reported(model, used, current, remembered),
        memory=_remember(objects, present, used, current, unchanged, remembered, now, parse),
        kept=tuple(sorted(r for r in current if r in used)),
        standing={
            r: f"serving as its last valid version ({remembered[r].label}): {_shown(found)}"
            for r, found in sorted(current.items())
            if r in used
        },
    )


class _Parser:
    """:func:`~lbroute.model.model.parse_object` that parses each object once: a second
    load costs only the checks across objects. Keyed by identity, for objects that all
    outlive it (``objects`` and the memory hold them)."""

    def __init__(self) -> None:
        self._done: dict[int, Parsed | InvalidObject | None] = {}

    def __call__(self, obj: Mapping[str, Any]) -> Parsed | None:
        key = id(obj)
        if key not in self._done:
            try:
                self._done[key] = parse_object(obj)
            except InvalidObject as exc:
                self._done[key] = exc
        found = self._done[key]
        if isinstance(found, InvalidObject):
            raise found
        return found


def _ref(obj: Mapping[str, Any]) -> ObjectRef | None:
    """The object's reference if it is of a :data:`KEPT` kind of lbroute's group (any
    version: a version not served is an invalid edit too), as its parser names it."""
    if not isinstance(obj, Mapping) or obj.get("kind") not in KEPT:
        return None
    if not str(obj.get("apiVersion")).startswith(GROUP + "/"):
        return None
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return ObjectRef(
        kind=str(obj["kind"]),
        namespace=name_text(meta.get("namespace"), "default"),
        name=name_text(meta.get("name"), "<no name>"),
    )


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What makes a version: the object without its status and what the server sets."""
    meta = obj.get("metadata")
    out = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    if isinstance(meta, Mapping):
        out["metadata"] = {k: v for k, v in meta.items() if k not in _SERVER_SET}
    else:
        out["metadata"] = meta
    return out


def _used(model: Model) -> set[ObjectRef]:
    return {o.ref for kind in (model.service_groups, model.peers, model.node_agents) for o in kind}


def _by_ref(problems: Iterable[Problem]) -> dict[ObjectRef, list[Problem]]:
    found: dict[ObjectRef, list[Problem]] = {}
    for p in problems:
        found.setdefault(p.ref, []).append(p)
    return found


def _standing_in(
    objects: list[Mapping[str, Any]],
    present: Mapping[ObjectRef, list[int]],
    current: Mapping[ObjectRef, list[Problem]],
    remembered: Mapping[ObjectRef, Version],
) -> list[Mapping[str, Any]]:
    """``objects`` with each in ``current`` replaced by its last valid version (once, in
    the place of its first copy)."""
    out = list(objects)
    dropped: set[int] = set()
    for ref in current:
        first, *others = present[ref]
        out[first] = remembered[ref].obj
        dropped.update(others)
    return [o for i, o in enumerate(out) if i not in dropped] if dropped else out


def _reported(
    model: Model,
    used: set[ObjectRef],
    current: Mapping[ObjectRef, list[Problem]],
    remembered: Mapping[ObjectRef, Version],
) -> Model:
    """The model with the problems of the current versions: for an object whose last
    valid version stands in, one error that says so (and the warnings about the version
    in use); for one whose last valid version could not be used either, the problems of
    its current version, as if it had none."""
    if not current:
        return model
    problems = [
        p
        for p in model.problems
        if p.ref not in current or (p.ref in used and p.severity is Severity.WARNING)
    ]
    for ref, found in sorted(current.items()):
        if ref in used:
            problems.append(_standing_in_problem(ref, found, remembered[ref]))
        else:
            problems += found
    return replace(model, problems=tuple(problems))


def _standing_in_problem(ref: ObjectRef, found: list[Problem], version: Version) -> Problem:
    return Problem(
        severity=Severity.ERROR,
        ref=ref,
        path="",
        message=f"is invalid ({_shown(found)}); keeping its last valid version "
        f"({version.label}) until it is fixed or deleted",
    )


def _shown(found: list[Problem]) -> str:
    """The first :data:`SHOWN` errors of a current version whose last valid version stands
    in; "skipped" left out of them, since the object is not."""
    errors = [p for p in found if p.severity is Severity.ERROR]
    shown = "; ".join(
        (f"{p.path}: {p.message}" if p.path else p.message).replace(SKIPPED, "")
        for p in errors[:SHOWN]
    )
    if len(errors) > SHOWN:
        shown += f"; and {len(errors) - SHOWN} more"
    return shown or "not usable"


def _remember(
    objects: list[Mapping[str, Any]],
    present: Mapping[ObjectRef, list[int]],
    used: set[ObjectRef],
    current: Mapping[ObjectRef, list[Problem]],
    unchanged: frozenset[ObjectRef],
    remembered: Mapping[ObjectRef, Version],
    now: str,
    parse: _Parser,
) -> Memory:
    """The last valid version of every object still present: the current version of
    those used as they are, the remembered one of the others (objects no longer present
    are forgotten)."""
    versions: dict[ObjectRef, Version] = {}
    for ref, at in present.items():
        before = remembered.get(ref)
        if ref in used and ref not in current:
            if before is not None and ref in unchanged and len(at) == 1:
                versions[ref] = before
            else:
                obj = _valid_copy(objects, at, parse)
                versions[ref] = Version(obj=obj, label=_label(obj, now))
        elif before is not None:
            versions[ref] = before
    return Memory(versions)


def _valid_copy(
    objects: list[Mapping[str, Any]], at: list[int], parse: _Parser
) -> Mapping[str, Any]:
    """The copy the model was built from: the only one, or (an object written twice in a
    directory, the first valid copy counts) the first that parses."""
    for i in at if len(at) > 1 else ():
        try:
            parse(objects[i])
        except InvalidObject:
            continue
        return objects[i]
    return objects[at[0]]


def _label(obj: Mapping[str, Any], now: str) -> str:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    generation = meta.get("generation")
    if isinstance(generation, int) and not isinstance(generation, bool):
        return f"generation {generation}"
    version = meta.get("resourceVersion")
    if isinstance(version, str) and version:
        return f"resourceVersion {quote(version)}"
    return f"read at {now}"
