"""How every ``lbroute`` command ends: a message and an exit code, never a traceback.

Exit codes: 0 ok, 1 invalid input, an invalid configuration or a run that failed, 2
usage (click's own). Lines for the user go to stdout; errors, problems and warnings to
stderr, each through ``str()`` of lbroute's types (which escape names and values) or
:func:`~lbroute.model.errors.quote`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import NoReturn, TypeVar

import click

from lbroute.model.errors import LbrouteError, Problem, Severity

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit 1."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def report(problems: Iterable[Problem]) -> int:
    """Print problems to stderr; return how many were errors."""
    errors = 0
    for p in problems:
        click.echo(str(p), err=True)
        errors += p.severity is Severity.ERROR
    return errors


def exit_with(run: Callable[[T], int], options: T) -> NoReturn:
    """Run a long-running part (the agent, the allocator) and exit with its code; an
    :class:`~lbroute.model.errors.LbrouteError` it raises (it cannot start) is the
    message of exit 1."""
    try:
        code = run(options)
    except LbrouteError as exc:
        fail(str(exc))
    sys.exit(code)
