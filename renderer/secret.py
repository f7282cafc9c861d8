"""Router passwords and keys as the view holds them: printable in one place only.

A Peer's BGP password or OSPF/RIP key reaches the view as a :class:`Secret` (the model's
:class:`~lbroute.model.secrets.SecretValue`, from the moment the Secret was decoded),
never as a string. It has no text of its own: ``str()``, ``format()``, ``~``, filters and
string methods refuse it, a sandboxed template can read none of its attributes, and
``repr()`` (so a view printed whole, or a log line) shows ``<secret>``. The one way out
is printing it, ``{{ n.password }}``, and the renderer lets that through only as the
value of a password or key statement (:data:`renderer.printing.SECRET_STATEMENT`),
which is where the built-in templates print it and where the agent's redaction finds it.
"""

from __future__ import annotations

from lbroute.model.secrets import SecretValue

Secret = SecretValue
"""The view's name for a password or key."""


def sealed(value: SecretValue | str | None) -> Secret | None:
    """``value`` as a :class:`Secret` (``None`` stays ``None``)."""
    if value is None or isinstance(value, SecretValue):
        return value
    return SecretValue(value)
