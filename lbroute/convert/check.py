"""The conversion checks itself: its objects pass lbroute's own checks, and allocating
the converted Services moves no address.

The objects are loaded as ``lbroute validate`` loads them (:func:`lbroute.model.api.load`,
then each input Node's view, as the renderer builds it); every error is one of the
report's. Then one allocation pass (allocator.ipam, as ``lbroute allocate`` and the
controller make it) runs on the converted ServiceGroups and the patched Services: an
address assigned or released, a Service that cannot be placed, or an address that lies
outside every pool is an error. The router's own parser is not run here (it is a
process): ``lbroute validate`` on the output does that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from allocator.ipam import allocate, invalid_groups
from allocator.service import parse_service
from lbroute.convert.report import Report
from lbroute.model import api
from lbroute.model.errors import LbrouteError, Severity
from renderer.view import build_view


def check(
    objects: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    services: Sequence[Mapping[str, Any]],
    namespace: str,
    report: Report,
) -> None:
    """Fill ``report.invalid``, ``report.moves`` and ``report.check``."""
    model = api.load([*objects, *nodes])
    errors = [p for p in model.problems if p.severity is Severity.ERROR]
    report.invalid += [f"invalid: {p}" for p in errors]
    warnings = [p for p in model.problems if p.severity is not Severity.ERROR]
    for node in model.nodes:
        try:
            view = build_view(model, None, node.name)
        except LbrouteError as exc:
            report.invalid.append(f"invalid: node {node.name}: {exc}")
            continue
        for p in view.problems:
            if p.severity is Severity.ERROR:
                report.invalid.append(f"invalid: node {node.name}: {p}")
            elif p not in warnings:
                warnings.append(p)
    report.check.append(
        f"lbroute validate (model{' and node views' if model.nodes else ''}): "
        f"{_count(len(report.invalid), 'error')}, {_count(len(warnings), 'warning')}"
    )
    report.check += [f"  {p}" for p in warnings]
    parsed = [s for s in (parse_service(obj, default_class=True) for obj in services) if s]
    result = allocate(
        model.service_groups,
        parsed,
        invalid_groups=invalid_groups(model.problems),
        namespace=namespace,
    )
    moved = 0
    for a in result.assignments:
        held_families = {x.version for x in a.before}
        for address in a.assigned:
            if address.version in held_families:
                report.moves.append(
                    f"moved: {a.ref}: would get {address} (holds "
                    f"{', '.join(map(str, a.before))} now)"
                )
                moved += 1
            elif a.before:
                report.check.append(f"  {a.ref}: would get {address} too (a family it had none of)")
        for address in a.released:
            report.moves.append(f"moved: {a.ref}: would lose {address}")
            moved += 1
    for failure in result.failures:
        report.moves.append(f"cannot place: {failure}")
    for outside in result.outside:
        report.moves.append(f"outside: {outside}")
    held = sum(1 for a in result.assignments if a.before)
    new = sum(1 for a in result.assignments if not a.before and a.assigned)
    summary = (
        f"allocation: {_count(moved, 'address', 'addresses')} moved "
        f"({_count(held, 'Service')} holding addresses"
    )
    if new:
        summary += f", {_count(new, 'Service')} without one to get one"
    report.check.append(summary + ")")


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"
