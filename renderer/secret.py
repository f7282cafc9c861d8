"""Router passwords and keys as the view holds them: printable in one place only.

A Peer's BGP password or OSPF/RIP key reaches the view as a :class:`Secret`, never as a
string. It has no text of its own: ``str()``, ``format()``, ``~``, filters and string
methods refuse it, a sandboxed template can read none of its attributes, and
``repr()`` (so a view printed whole, or a log line) shows ``<secret>``. The one way out
is printing it, ``{{ n.password }}``, and the renderer lets that through only as the
value of a password or key statement (:data:`renderer.printing.SECRET_STATEMENT`),
which is where the built-in templates print it and where the agent's redaction finds it.
"""

from __future__ import annotations

from typing import NoReturn


class Secret:
    """A password or key; see the module docstring for where it may be printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value, for the renderer's final placement check only."""
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    def __str__(self) -> NoReturn:
        raise TypeError(
            "a secret has no text of its own; print it only as the value of its "
            "password or key statement"
        )

    def __format__(self, spec: str) -> NoReturn:
        self.__str__()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))


def sealed(value: str | None) -> Secret | None:
    """``value`` as a :class:`Secret` (``None`` stays ``None``)."""
    return None if value is None else Secret(value)
