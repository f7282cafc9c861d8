"""What every kind of the lbroute API shares: its enums, label selectors and the envelope.

The enums name the values the objects choose from (IP family, routing protocol, router,
mode, how a group is announced, IS-IS level); label selectors are read the Kubernetes
way (the empty one matches everything). The envelope is what each parser reads before
its own spec: the metadata (name, namespace, labels) and the apiVersion, with every
problem collected on one :class:`~lbroute.model.fields.Reader` so that an object reports
all its mistakes at once (:func:`raise_if_failed`). Labels, and the labels a selector
asks for, are checked as the API server checks them; a value YAML read as a boolean or
a number is an error, never quietly turned into ``'True'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lbroute.model.errors import InvalidObject, ObjectRef, Problem, Severity, quote
from lbroute.model.fields import (
    LABEL_KEY_RE,
    LABEL_KEY_VALID,
    NAME_RE,
    IPAddress,
    IPNetwork,
    Reader,
    label_key_problem,
    label_value_problem,
    name_text,
)
from lbroute.model.vocabulary import API_VERSION, CORE_KINDS


class Family(StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @property
    def host_length(self) -> int:
        return 32 if self is Family.IPV4 else 128

    @classmethod
    def of(cls, value: IPAddress | IPNetwork) -> Family:
        return cls.IPV4 if value.version == 4 else cls.IPV6


class Protocol(StrEnum):
    BGP = "bgp"
    OSPF = "ospf"
    RIP = "rip"
    ISIS = "isis"


class Router(StrEnum):
    BIRD = "bird"
    FRR = "frr"


class Mode(StrEnum):
    MANAGED = "managed"
    INCLUDE = "include"


class Announce(StrEnum):
    ROUTED = "routed"
    LOCAL = "local"


class IsisLevel(StrEnum):
    LEVEL_1 = "level-1"
    LEVEL_2 = "level-2"
    LEVEL_1_2 = "level-1-2"


def choices(enum: type[StrEnum]) -> dict[str, Any]:
    """An enum's values -> its members, for :meth:`Reader.choice`."""
    return {member.value: member for member in enum}


# -- selectors --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True, kw_only=True)
class LabelSelector:
    """A Kubernetes label selector. The empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )


EVERYTHING = LabelSelector()


def selector(r: Reader, key: str) -> LabelSelector:
    """The label selector at ``key``; :data:`EVERYTHING` when it is not set."""
    if not r.has(key):
        return EVERYTHING
    s = r.child(key)
    s.unknown({"matchLabels", "matchExpressions"})
    labels: list[tuple[str, str]] = []
    ml = s.child("matchLabels")
    for k, v in sorted(ml.data.items(), key=lambda kv: str(kv[0])):
        problem = label_key_problem(k)
        if problem is not None:
            ml.error(str(k), problem)
        elif (problem := label_value_problem(v)) is not None:
            ml.error(k, problem)
        else:
            labels.append((k, v))
    exprs: list[Requirement] = []
    for _i, item, path in s.items("matchExpressions"):
        e = s.item_reader(item, path)
        e.unknown({"key", "operator", "values"})
        key_ = e.str_("key", pattern=LABEL_KEY_RE, valid=LABEL_KEY_VALID, required=True)
        if key_ is not None and (problem := label_key_problem(key_)) is not None:
            e.error("key", problem)
            key_ = None
        op = e.choice(
            "operator",
            {"In": "In", "NotIn": "NotIn", "Exists": "Exists", "DoesNotExist": "DoesNotExist"},
        )
        if op is None and not e.has("operator"):
            e.error("operator", "is required: one of In, NotIn, Exists, DoesNotExist")
        values: list[str] = []
        for _j, v, vpath in e.items("values"):
            if (problem := label_value_problem(v)) is not None:
                e.item_reader({}, vpath).error("", problem)
            else:
                values.append(v)
        if op in ("In", "NotIn") and not values:
            e.error("values", f"must not be empty with operator {op}")
        if op in ("Exists", "DoesNotExist") and values:
            e.error("values", f"must be empty with operator {op}")
        if key_ is not None and op is not None:
            exprs.append(Requirement(key=key_, operator=op, values=tuple(sorted(values))))
    return LabelSelector(match_labels=tuple(labels), match_expressions=tuple(exprs))


# -- the envelope ---------------------------------------------------------------------------


def envelope(
    obj: Mapping[str, Any], kind: str, *, namespaced: bool = True, spec_required: bool = True
) -> tuple[ObjectRef, Reader, Reader]:
    """The object's reference and readers of its metadata and spec (sharing one problem
    list); the name, namespace and apiVersion are checked here."""
    raw_meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    meta = raw_meta if isinstance(raw_meta, Mapping) else {}
    namespace = name_text(meta.get("namespace"), "default" if namespaced else "")
    ref = ObjectRef(kind=kind, namespace=namespace, name=name_text(meta.get("name"), "<no name>"))
    problems: list[Problem] = []
    m = Reader(meta, ref, "metadata", problems)
    if raw_meta is not None and meta is not raw_meta:
        m.error("", f"must be an object such as {{name: web}}, not {quote(raw_meta)}")
    else:
        m.str_("name", pattern=NAME_RE, valid="a lowercase DNS name", required=True)
    if namespaced:
        m.str_("namespace", pattern=NAME_RE, valid="a lowercase DNS label")
    want_version = CORE_KINDS.get(kind, API_VERSION)
    if obj.get("apiVersion") != want_version:
        m.problems.append(
            Problem(
                severity=Severity.ERROR,
                ref=ref,
                path="apiVersion",
                message=f"{quote(obj.get('apiVersion'))} is not {want_version}",
            )
        )
    _check_labels(m)
    spec = Reader(obj.get("spec"), ref, "spec", problems)
    if spec_required and obj.get("spec") is None:
        spec.error("", "is required")
    return ref, m, spec


def _check_labels(meta: Reader) -> None:
    """Each of ``metadata.labels`` as the API server checks it: the key a qualified name,
    the value a label value and a string."""
    labels = meta.raw("labels")
    if labels is None:
        return
    if not isinstance(labels, Mapping):
        meta.error("labels", "must be an object of label key to value")
        return
    r = meta.child("labels")
    for k, v in labels.items():
        problem = label_key_problem(k)
        if problem is None:
            problem = label_value_problem(v)
        if problem is not None:
            r.error(str(k) if isinstance(k, str) else "", problem)


def meta_labels(meta: Reader) -> tuple[tuple[str, str], ...]:
    """``metadata.labels`` as sorted (key, value) pairs; the envelope has checked them, and
    an object with an invalid one is not used."""
    labels = meta.raw("labels")
    if not isinstance(labels, Mapping):
        return ()
    return tuple(
        sorted((k, v) for k, v in labels.items() if isinstance(k, str) and isinstance(v, str))
    )


def raise_if_failed(r: Reader) -> None:
    """Raise :class:`InvalidObject` with every problem of the object if one is an error."""
    if r.failed:
        raise InvalidObject(r.ref, tuple(r.problems))
