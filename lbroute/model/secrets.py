"""Secrets that hold router passwords, the references Peers make to them, and how a
password or key is kept from leaving the node.

A Peer names a Secret key (:class:`SecretRef`); the Secret's values are decoded here
(base64 ``data`` and plain ``stringData``) and only values that are inert in both
router syntaxes are usable (:data:`~lbroute.model.fields.SECRET_RE`). A missing Secret,
key or unusable value is reported on the Peer that refers to it.

From the moment it is decoded a value is a :class:`SecretValue`: it has no text of its
own (``str()`` and ``format()`` refuse it, ``repr()`` shows ``<secret>``), so a Peer, a
Secret or a whole model logged or printed shows no password. Where one may be printed,
and how text that leaves the node is cleaned of them, is one grammar, here:
:data:`SECRET_STATEMENT` says how a configuration line must end where the renderer puts
a secret (``renderer.printing`` checks every placement against it), and :func:`redact`
hides what follows the same keywords in any text (a router's error quoting the lines
around a fault, a diff) before it reaches a log, the status file, NodeState or an Event.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from lbroute.model.common import envelope
from lbroute.model.errors import ObjectRef
from lbroute.model.fields import NAME_RE, SECRET_CHARS, SECRET_RE, Reader


class SecretValue:
    """A password or key: compares and hashes by value, has no text of its own."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value: for the checks on it and the renderer's final placement only."""
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    def __str__(self) -> NoReturn:
        raise TypeError(
            "a secret has no text of its own; print it only as the value of its own "
            "statement (right after 'password', 'md5' or another key keyword)"
        )

    def __format__(self, spec: str) -> NoReturn:
        self.__str__()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash((SecretValue, self._value))


_KEYWORD = (
    r"(?:\b(?:password|key-string|authentication-key)|\bauthentication[ \t]+string"
    r"|(?<!keyed[ \t])(?<!mode[ \t])\bmd5)(?![\w-])"
)
"""The words a secret follows, in BIRD or FRR: ``password`` (BIRD ``password "..."``,
FRR ``neighbor X password``, IS-IS ``area-password``/``domain-password``/``isis
password``, vty passwords), ``key-string`` (key chains), ``authentication-key`` (OSPF),
``authentication string`` (RIP) and ``md5`` (``message-digest-key 1 md5``, OSPFv3
``hash-algo md5 key``), but not ``keyed md5`` or ``mode md5``, which name an algorithm."""

SECRET_STATEMENT = re.compile(_KEYWORD + r"""(?:[ \t]+(?:clear|md5|key))?[ \t]+"?\Z""")
"""How the line must end where a secret is printed: after a keyword of :data:`_KEYWORD`
(``clear``/``md5`` of IS-IS and ``key`` of OSPFv3 between them allowed), a space and, for
BIRD, the opening quote. Whatever follows a keyword :func:`redact` hides, so a secret
printed only here never leaves the node in an error text."""

_REDACTED = re.compile(rf"(?P<keyword>{_KEYWORD})[ \t]+[^\n]*")

REDACTED = "<redacted>"


def redact(text: str) -> str:
    """``text`` with the rest of every line after a password or key keyword replaced by
    :data:`REDACTED`: ``neighbor 10.0.0.1 password <redacted>``. The whole rest, not one
    word, so no value, however a template surrounded it, survives."""
    return _REDACTED.sub(lambda m: f"{m['keyword']} {REDACTED}", text)


class RedactSecrets(logging.Filter):
    """A logging filter (on a handler) that redacts every record's message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


@dataclass(frozen=True, kw_only=True)
class SecretRef:
    """A key of a Secret in the referring object's namespace."""

    name: str
    key: str


def secret_ref(r: Reader, key: str) -> SecretRef | None:
    """The ``{name, key}`` reference at ``key`` (the key defaults to ``password``)."""
    if not r.has(key):
        return None
    s = r.child(key)
    s.unknown({"name", "key"})
    name = s.str_("name", pattern=NAME_RE, valid="a Secret name", required=True)
    k = s.str_(
        "key",
        pattern=re.compile(r"[-._a-zA-Z0-9]{1,253}"),
        valid="a key in the Secret's data",
    )
    if name is None:
        return None
    return SecretRef(name=name, key=k or "password")


@dataclass(frozen=True, kw_only=True)
class Secret:
    ref: ObjectRef
    data: tuple[tuple[str, SecretValue], ...]
    """Decoded values; whether one is usable is checked where a Peer uses it."""

    def get(self, key: str) -> SecretValue | None:
        return dict(self.data).get(key)


def parse_secret(obj: Mapping[str, Any]) -> Secret:
    ref, _meta, _spec = envelope(obj, "Secret", spec_required=False)
    values: dict[str, str] = {}
    data = obj.get("data") or {}
    if isinstance(data, Mapping):
        for k, v in data.items():
            try:
                values[str(k)] = base64.b64decode(str(v), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
    string_data = obj.get("stringData") or {}
    if isinstance(string_data, Mapping):
        values.update({str(k): str(v) for k, v in string_data.items()})
    return Secret(ref=ref, data=tuple((k, SecretValue(v)) for k, v in sorted(values.items())))


def secret_value(
    ref: SecretRef, secret: Secret | None, owner: Reader, path: str
) -> SecretValue | None:
    """Resolve a secret for a Peer, reporting a missing or unusable one on the Peer."""
    if secret is None:
        owner.error(
            path,
            f"Secret {ref.name} not found in namespace {owner.ref.namespace} (from the API, "
            "the agent reads only the Secrets its Role lbroute-agent-secrets names)",
        )
        return None
    value = secret.get(ref.key)
    if value is None:
        owner.error(path, f"Secret {ref.name} has no key {ref.key!r}")
        return None
    if not SECRET_RE.fullmatch(value.reveal()):
        owner.error(
            path,
            f"the value of Secret {ref.name} key {ref.key!r} is not usable; "
            f"expected {SECRET_CHARS}",
        )
        return None
    return value
