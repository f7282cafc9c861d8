"""Secrets that hold router passwords, and the references Peers make to them.

A Peer names a Secret key (:class:`SecretRef`); the Secret's values are decoded here
(base64 ``data`` and plain ``stringData``) and only values that are inert in both
router syntaxes are usable (:data:`~lbroute.model.fields.SECRET_RE`). A missing Secret,
key or unusable value is reported on the Peer that refers to it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lbroute.model.common import envelope
from lbroute.model.errors import ObjectRef
from lbroute.model.fields import NAME_RE, SECRET_CHARS, SECRET_RE, Reader


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
    data: tuple[tuple[str, str], ...]
    """Decoded values that are valid router secrets; others are left out."""

    def get(self, key: str) -> str | None:
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
    return Secret(ref=ref, data=tuple(sorted(values.items())))


def secret_value(ref: SecretRef, secret: Secret | None, owner: Reader, path: str) -> str | None:
    """Resolve a secret for a Peer, reporting a missing or unusable one on the Peer."""
    if secret is None:
        owner.error(path, f"Secret {ref.name} not found in namespace {owner.ref.namespace}")
        return None
    value = secret.get(ref.key)
    if value is None:
        owner.error(path, f"Secret {ref.name} has no key {ref.key!r}")
        return None
    if not SECRET_RE.fullmatch(value):
        owner.error(
            path,
            f"the value of Secret {ref.name} key {ref.key!r} is not usable; "
            f"expected {SECRET_CHARS}",
        )
        return None
    return value
