"""Typed reading of one API object's fields, collecting every problem with its path.

A :class:`Reader` wraps a plain dict (as it comes from YAML or the API) and a path.
Each accessor returns a typed value or ``None`` and records a problem that names the
field path and what would be valid. Validation of one object never stops at the first
problem: the caller raises :class:`~lbroute.model.errors.InvalidObject` once, with all of them.
What one object can cost is bounded: input values appear in messages only quoted and cut
(:func:`~lbroute.model.errors.quote`), a field name that is not plain is quoted in the
path, and an object reports at most :data:`MAX_PROBLEMS` problems (then one saying that
more were left out), whatever its size.
The patterns every kind shares (names, labels, interfaces, secrets, addresses) are here too.

Core objects that are read rather than validated (Services, EndpointSlices) use
:func:`mapping_at` and :func:`list_at`, where a value of the wrong shape reads as absent.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from fractions import Fraction
from typing import Any, TypeVar

from lbroute.model.errors import ObjectRef, Problem, Severity, escape, quote

T = TypeVar("T")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Names that end up in a router configuration (interfaces, object names). Linux
# interface names: 1-15 characters, no slash, no whitespace; we are stricter so that a
# name is inert in both BIRD and FRR syntax.
INTERFACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,14}")
# Kubernetes object names (RFC 1123 subdomain), label keys and values. A label key is a
# qualified name: an optional prefix (a DNS subdomain of at most 253 characters, checked
# by :func:`label_key_problem`) and '/', then a name of at most 63 characters.
NAME_RE = re.compile(r"[a-z0-9]([a-z0-9.\-]{0,251}[a-z0-9])?")
LABEL_KEY_RE = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([A-Za-z0-9_.\-]{0,61}[A-Za-z0-9])?"
)
LABEL_KEY_MAX = 253 + 1 + 63
LABEL_VALUE_RE = re.compile(r"([A-Za-z0-9]([A-Za-z0-9_.\-]{0,61}[A-Za-z0-9])?)?")
LABEL_KEY_VALID = (
    "an optional DNS prefix of up to 253 characters and '/', then a name of up to 63 "
    "letters, digits, '-', '_' or '.' that starts and ends with a letter or digit"
)
LABEL_VALUE_VALID = (
    "up to 63 letters, digits, '-', '_' or '.' that start and end with a letter or digit, or ''"
)
MAX_PROBLEMS = 100
"""Problems one object reports at most; past them one more says that others were left out."""
# A field name shown as is in a path; any other is quoted: spec.nodeSelector.matchLabels['a b'].
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.\-/\[\]]{1,253}")
# Secrets rendered into a config (BGP, OSPF, RIP passwords): printable ASCII without
# whitespace, quotes, backslash, braces, semicolon or '#', so they are inert in both syntaxes.
SECRET_RE = re.compile(r"[A-Za-z0-9!$%&()*+,\-./:<=>?@\[\]^_|~]{1,80}")
SECRET_CHARS = "letters, digits and !$%&()*+,-./:<=>?@[]^_|~ (1 to 80 characters)"
# Kubernetes-style durations, as MetalLB's manifests write them: one or more numbers, each
# with a unit of h, m, s or ms ("90s", "300ms", "1m30s", "1.5h"). The CRDs use the same
# pattern and length for the fields that take one.
DURATION_RE = re.compile(r"([0-9]{1,12}(\.[0-9]{1,9})?(h|ms|m|s))+")
DURATION_MAX = 32
"""The longest duration string read (the CRDs' maxLength)."""
_DURATION_PART = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,9})?)(h|ms|m|s)")
_DURATION_UNITS = {
    "h": Fraction(3600),
    "m": Fraction(60),
    "s": Fraction(1),
    "ms": Fraction(1, 1000),
}
DURATION_UNITS = {"seconds": Fraction(1), "ms": Fraction(1, 1000)}
"""The units of integer fields that also take a duration string -> that unit in seconds."""


class Reader:
    """Reads typed fields out of ``data`` and collects problems for ``ref``."""

    def __init__(
        self,
        data: Any,
        ref: ObjectRef,
        path: str = "",
        problems: list[Problem] | None = None,
    ) -> None:
        self.ref = ref
        self.path = path
        self.problems: list[Problem] = [] if problems is None else problems
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            self.error("", f"must be an object, not {_kind(data)}")
            data = {}
        self.data: Mapping[str, Any] = data

    # -- problems -------------------------------------------------------------------

    def at(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        if key == "":
            return self.path
        if not _PLAIN_KEY.fullmatch(key):
            return f"{self.path}[{quote(key)}]"
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | int, message: str) -> None:
        self._add(Severity.ERROR, key, message)

    def item_error(self, key: str, index: int, message: str) -> None:
        """A problem with element ``index`` of the list field ``key``."""
        Reader(None, self.ref, self.at(key), self.problems).error(index, message)

    def warning(self, key: str | int, message: str) -> None:
        self._add(Severity.WARNING, key, message)

    def _add(self, severity: Severity, key: str | int, message: str) -> None:
        problems = self.problems
        if len(problems) < MAX_PROBLEMS:
            problems.append(
                Problem(severity=severity, ref=self.ref, path=self.at(key), message=message)
            )
            return
        more = Problem(
            severity=severity,
            ref=self.ref,
            path="",
            message=f"has more problems than the {MAX_PROBLEMS} shown; fix these first",
        )
        if len(problems) == MAX_PROBLEMS:
            problems.append(more)
        elif severity is Severity.ERROR and problems[-1].severity is not Severity.ERROR:
            problems[-1] = more  # a dropped error still makes the object invalid

    @property
    def failed(self) -> bool:
        return any(p.severity is Severity.ERROR for p in self.problems)

    # -- structure ------------------------------------------------------------------

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def unknown(self, known: set[str]) -> None:
        """Report keys this object does not define (typos would otherwise be ignored)."""
        for key in sorted(set(self.data) - known, key=str):
            if not isinstance(key, str):
                self.error(
                    "",
                    f"field name {quote(key)} is not a string: YAML reads unquoted on/off/yes/"
                    "no/true/false as booleans and digits as numbers; quote the key",
                )
                continue
            self.error(key, f"unknown field; valid fields here: {', '.join(sorted(known))}")

    def child(self, key: str) -> Reader:
        return Reader(self.data.get(key), self.ref, self.at(key), self.problems)

    def items(self, key: str) -> Iterator[tuple[int, Any, str]]:
        """Yield ``(index, value, path)`` of a list field; a non-list is a problem."""
        value = self.data.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.error(key, f"must be a list, not {_kind(value)}")
            return
        for i, item in enumerate(value):
            yield i, item, f"{self.at(key)}[{i}]"

    def item_reader(self, item: Any, path: str) -> Reader:
        return Reader(item, self.ref, path, self.problems)

    # -- scalars --------------------------------------------------------------------

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def str_(
        self,
        key: str,
        *,
        pattern: re.Pattern[str] | None = None,
        valid: str = "",
        required: bool = False,
    ) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.error(key, f"is required{': ' + valid if valid else ''}")
            return None
        if not isinstance(value, str):
            self.error(key, f"must be a string{': ' + valid if valid else ''}, not {_kind(value)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.error(key, f"{quote(value)} is not valid; expected {valid}")
            return None
        return value

    def bool_(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, not {quote(value)}")
            return default
        return value

    def int_(
        self, key: str, lo: int, hi: int, *, required: bool = False, unit: str = ""
    ) -> int | None:
        """An integer from ``lo`` to ``hi``. A field in ``seconds`` or ``ms`` also takes a
        Kubernetes-style duration string ("90s", "300ms", "1m30s") of a whole number of
        its unit."""
        value = self.data.get(key)
        unit_text = f" {unit}" if unit else ""
        per = DURATION_UNITS.get(unit)
        if per is not None:
            example = '90 or "90s"' if unit == "seconds" else '300 or "300ms"'
            unit_text += f" (an integer or a duration such as {example})"
        if value is None:
            if required:
                self.error(key, f"is required: an integer from {lo} to {hi}{unit_text}")
            return None
        original = value
        if per is not None and isinstance(value, str):
            value = self._duration(key, value, per, unit, example)
            if value is None:
                return None
        elif isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be an integer from {lo} to {hi}{unit_text}, not {quote(value)}")
            return None
        if not lo <= value <= hi:
            shown = quote(original) + (f" ({value} {unit})" if original is not value else "")
            self.error(key, f"{shown} is out of range; expected {lo} to {hi}{unit_text}")
            return None
        return value

    def _duration(self, key: str, text: str, per: Fraction, unit: str, example: str) -> int | None:
        """A duration string as a whole number of ``unit`` (``per`` seconds each)."""
        try:
            seconds = parse_duration(text)
        except ValueError:
            self.error(
                key,
                f"{quote(text)} is not a duration; expected an integer number of {unit} or "
                f"a duration of numbers with units h, m, s or ms, such as {example}",
            )
            return None
        count = seconds / per
        if count.denominator != 1:
            self.error(
                key,
                f"{quote(text)} is not a whole number of {unit}; expected whole {unit}, "
                f"e.g. {example}",
            )
            return None
        return int(count)

    def choice(self, key: str, choices: Mapping[str, T], *, default: T | None = None) -> T | None:
        value = self.data.get(key)
        if value is None:
            return default
        valid = ", ".join(str(c) for c in choices)
        if not isinstance(value, str | int) or isinstance(value, bool):
            self.error(key, f"must be one of {valid}, not {quote(value)}")
            return default
        found = choices.get(str(value))
        if found is None:
            self.error(key, f"{quote(value)} is not valid; expected one of {valid}")
            return default
        return found

    def convert(
        self, key: str, func: Callable[[Any], T], valid: str, *, required: bool = False
    ) -> T | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.error(key, f"is required: {valid}")
            return None
        converted = self.convert_value(value, func, valid, key)
        return converted

    def convert_value(
        self, value: Any, func: Callable[[Any], T], valid: str, key: str | int
    ) -> T | None:
        try:
            return func(value)
        except (ValueError, TypeError) as exc:
            text = str(exc)
            quiet = not text or "does not appear" in text or "is not a valid" in text
            detail = "" if quiet else f" ({escape(text, 120)})"
            self.error(key, f"{quote(value)} is not valid{detail}; expected {valid}")
            return None

    def convert_item(
        self, key: str, index: int, value: Any, func: Callable[[Any], T], valid: str
    ) -> T | None:
        """Convert one element of the list field ``key``, reporting at ``key[index]``."""
        return self.convert_value(value, func, valid, f"{key}[{index}]")

    def ip(self, key: str, *, required: bool = False) -> IPAddress | None:
        return self.convert(
            key, parse_ip, "an IPv4 or IPv6 address such as 192.0.2.1", required=required
        )

    def interface(self, key: str, *, required: bool = False) -> str | None:
        return self.str_(key, pattern=INTERFACE_RE, valid=INTERFACE_VALID, required=required)


INTERFACE_VALID = (
    "an interface name: 1 to 15 letters, digits, '_', '.' or '-', starting with a letter or digit"
)


def parse_duration(text: Any) -> Fraction:
    """Seconds in a Kubernetes-style duration string ("90s", "300ms", "1m30s", "1.5h"),
    exactly; ValueError when it is not one (see :data:`DURATION_RE`)."""
    if not isinstance(text, str) or len(text) > DURATION_MAX or not DURATION_RE.fullmatch(text):
        raise ValueError("")
    return sum(
        (Fraction(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text)), Fraction(0)
    )


_IP_CHARS = re.compile(r"[0-9A-Fa-f.:]{2,45}")


def parse_ip(value: Any) -> IPAddress:
    """An IPv4 or IPv6 address; no zone ids, no surrounding text.

    Accepts exactly what :func:`ipaddress.ip_address` accepts and fails with its message,
    but faster (every Service's ingress goes through here on every pass): a dotted quad
    is read by ``inet_pton``, as strict as :mod:`ipaddress` (four decimal octets of at
    most 255, no leading zeros), and only text with a ``:`` is tried as IPv6."""
    if not isinstance(value, str):
        raise TypeError("must be a string")
    if not _IP_CHARS.fullmatch(value):
        raise ValueError("")
    try:
        if ":" in value:
            return ipaddress.IPv6Address(value)
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, value))
    except (OSError, ValueError):
        raise ValueError(f"{value!r} does not appear to be an IPv4 or IPv6 address") from None


_NET_CHARS = re.compile(r"[0-9A-Fa-f.:]{2,45}/[0-9]{1,3}")


def parse_network(value: Any) -> IPNetwork:
    if not isinstance(value, str) or not _NET_CHARS.fullmatch(value):
        raise ValueError("")
    return ipaddress.ip_network(value, strict=True)


def mapping_at(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``obj[key]`` if it is a mapping, else an empty one: for reading objects that are
    not validated field by field (Services, EndpointSlices), where a wrong shape reads
    as absent."""
    value = obj.get(key)
    if type(value) is dict:  # the usual case, without the slower check for any Mapping
        return value
    return value if isinstance(value, Mapping) else {}


def list_at(obj: Mapping[str, Any], key: str) -> list[Any]:
    """``obj[key]`` if it is a list, else an empty one (see :func:`mapping_at`)."""
    value = obj.get(key)
    return value if isinstance(value, list) else []


def name_text(value: Any, default: str) -> str:
    """A name or namespace read from metadata, for an :class:`ObjectRef`: ``default`` when
    unset, a quoted short form when it is not a string (the object is invalid then)."""
    if value is None or value == "":
        return default
    return value if isinstance(value, str) else quote(value)


def label_key_problem(key: Any) -> str | None:
    """Why ``key`` is not a Kubernetes label key (a qualified name), or None when it is one."""
    if not isinstance(key, str):
        return (
            f"{quote(key)} is not a valid label key: not a string (YAML reads unquoted true/"
            "false/yes/no/on/off as booleans and digits as numbers); quote the key"
        )
    prefix = key.rpartition("/")[0]
    if len(key) > LABEL_KEY_MAX or len(prefix) > 253 or not LABEL_KEY_RE.fullmatch(key):
        return f"{quote(key)} is not a valid label key; expected {LABEL_KEY_VALID}"
    return None


def label_value_problem(value: Any) -> str | None:
    """Why ``value`` is not a Kubernetes label value, or None when it is one. A value YAML
    read as a boolean or a number is refused, never turned into a string: ``true`` would
    become ``'True'`` and silently stop matching a selector that says ``'true'``."""
    if isinstance(value, str):
        if LABEL_VALUE_RE.fullmatch(value):
            return None
        return f"{quote(value)} is not a valid label value; expected {LABEL_VALUE_VALID}"
    if value is None:
        return "has no value (null); write '' for an empty label value"
    if not isinstance(value, bool | int | float):
        return f"must be a string, not {_kind(value)}"
    hint = str(value).lower() if isinstance(value, bool) else quote(value)
    return (
        f"must be a string, not {_kind(value)}: YAML reads unquoted true/false/yes/no/on/off "
        f"as booleans and digits as numbers; quote the value ('{hint}')"
    )


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)
