"""What a template may print: the one check every printed value passes, and secrets.

Every value a template prints, built-in or user, goes through :meth:`Printer.finalize`:
only integers, IP addresses, networks and strings made of characters that are inert
in BIRD and FRR syntax pass. Text a template renders and captures (a macro's or
``caller()``'s output, ``self.block()``, ``super()``) comes back as :class:`Rendered`,
which prints as it is because every value in it was checked when it was written.
A filter or string method applied to it keeps it Rendered only when every other
argument is inert too (``indent(2)``, ``upper``, ``replace('a', 'b')``: nothing but
template text and checked values can come out, :func:`keeps_rendered`); anything else
(``format('\n}...')``, ``+``, a slice) makes a plain string, checked like any value.
A ``{% filter %}`` or ``{% call %}`` block writes through the same check
(:mod:`renderer.sandbox` compiles them so).

A :class:`~renderer.secret.Secret` prints as a placeholder that text made from it cannot
carry (a NUL character, never inert); :meth:`Printer.place_secrets` puts the values
in at the end, and only where the line so far ends with a password or key keyword
(:data:`SECRET_STATEMENT`, the model's grammar of secrets): the place the built-in
templates print them, and where :func:`~lbroute.model.secrets.redact` finds them before
any configuration text leaves the node.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import jinja2

from lbroute.model.errors import RenderError, quote
from lbroute.model.secrets import SECRET_STATEMENT
from renderer.budget import Budget
from renderer.secret import Secret

# What a printed string may contain: names, numbers, addresses, passwords (which are
# validated against a narrower set), never whitespace, quotes, braces, ';' or '#'.
_INERT = re.compile(r"[A-Za-z0-9_.:/\-+=@%^*!~,()\[\]<>?&$|]*")

_PLACEHOLDER = re.compile("\x00([0-9]+)\x00")


class Rendered(str):
    """Template output captured by a macro, ``caller()`` or a block: template text
    whose values were each checked when written, so it prints as it is."""


def keeps_rendered(value: Any, args: Iterable[Any], result: Any) -> Any:
    """``result`` of a filter or string method applied to ``value`` with ``args``: as
    Rendered when ``value`` was and every argument is inert (so only template text and
    checked values can be in it), else as it is."""
    if isinstance(value, Rendered) and isinstance(result, str) and all(map(_inert, args)):
        return Rendered(result)
    return result


def _inert(value: Any) -> bool:
    if isinstance(value, str):
        return isinstance(value, Rendered) or _INERT.fullmatch(value) is not None
    return value is None or isinstance(value, int | float)


class UnsafeValue(Exception):
    """A template printed something that is not inert (internal; the renderer reports
    it as a RenderError naming the template line)."""


@dataclass(frozen=True)
class _Printed:
    """A secret printed, and the template file and line that printed it."""

    secret: Secret
    template: str | None
    line: int | None


class Printer:
    """The checks on what one render prints, and the secrets it printed."""

    def __init__(
        self,
        budget: Budget | None,
        template_line: Callable[[], tuple[str | None, int | None]],
    ) -> None:
        self._budget = budget
        self._template_line = template_line
        self._secrets: list[_Printed] = []

    def finalize(self, value: Any) -> Any:
        """Jinja's ``finalize``: what ``{{ value }}`` writes, or UnsafeValue."""
        if isinstance(value, str):
            if not isinstance(value, Rendered) and not _INERT.fullmatch(value):
                raise UnsafeValue(
                    f"refusing to print {quote(value)}: it contains characters that "
                    "could change the configuration's structure"
                )
        elif isinstance(value, jinja2.Undefined):
            value._fail_with_undefined_error()
        elif isinstance(value, bool) or value is None:
            raise UnsafeValue(f"refusing to print {value!r}; print a field's value, not a test")
        elif isinstance(value, int):
            return value
        elif isinstance(value, _ADDRESSES):
            value = str(value)
        elif isinstance(value, Secret):
            template, line = self._template_line()
            self._secrets.append(_Printed(secret=value, template=template, line=line))
            value = f"\x00{len(self._secrets) - 1}\x00"
        else:
            raise UnsafeValue(
                f"refusing to print a {type(value).__name__}; print one of its fields"
            )
        if self._budget is not None:
            self._budget.make(len(value))
        return value

    def checked_text(self, value: Any) -> str:
        """What a ``{% call %}`` or ``{% filter %}`` block writes: its result, checked
        as if printed."""
        return str(self.finalize(value))

    def place_secrets(self, text: str, origin: Callable[[str], str]) -> str:
        """``text`` with each secret's value where it was printed, once every place is
        checked to be the value of a password or key statement."""
        if "\x00" not in text:
            return text
        parts: list[str] = []
        start = 0
        for m in _PLACEHOLDER.finditer(text):
            index = int(m[1])
            if index >= len(self._secrets):
                break
            printed = self._secrets[index]
            line_start = text.rfind("\n", 0, m.start()) + 1
            if not SECRET_STATEMENT.search(text, line_start, m.start()):
                where = origin(printed.template) if printed.template is not None else None
                raise RenderError(
                    f"a secret is printed outside the statement it belongs to (output "
                    f"line {text.count(chr(10), 0, m.start()) + 1}); print it only right "
                    "after 'password', 'md5', 'authentication string', 'authentication-key' "
                    "or 'key-string'",
                    template=where,
                    line=printed.line,
                )
            parts += (text[start : m.start()], printed.secret.reveal())
            start = m.end()
        parts.append(text[start:])
        placed = "".join(parts)
        if "\x00" in placed:
            raise RenderError(
                "the configuration contains a NUL character (a template wrote one, or cut "
                "or copied a secret)"
            )
        return placed


_ADDRESSES = (
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)


def current_template_line(
    names: frozenset[str], env: jinja2.Environment
) -> tuple[str | None, int | None]:
    """The innermost template (by name) and line running now: where a secret is printed."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if name in names:
            return name, env.get_template(name).get_corresponding_lineno(frame.f_lineno)
        frame = frame.f_back
    return None, None
