"""YAML decoded as the Kubernetes API server decodes it, with what that costs bounded.

The API server decodes YAML with go-yaml v2 (through sigs.k8s.io/yaml) and turns the
result into JSON; :func:`decode_documents` does the same with PyYAML (libyaml's parser
where PyYAML has it), one document at a time, so every value is JSON's: a str, int,
float, bool, None, list or dict with str keys. A document is refused, with a
:class:`~lbroute.model.errors.ManifestError` naming the file and line, when:

- it is not valid YAML (libyaml itself refuses more than 1000 levels of nesting);
- a mapping has a key twice (a key that came from a ``<<`` merge may be overridden:
  that is what a merge means), or a key that is not a string, integer or boolean;
- it nests collections more than :data:`MAX_DEPTH` deep, aliases included: every reader
  above this one may recurse once per level, and no manifest comes near;
- its aliases expand it out of proportion ("billion laughs"). The rule is go-yaml v2's:
  past 1000 nodes decoded as the aliases expand them, of which more than 100 through
  aliases, at most 99% may come through aliases up to 400,000 nodes, falling to 10% at
  4,000,000 and beyond. It is counted before anything is built and without expanding
  anything (each node's expanded size is computed once), so a 1 KB document that would
  expand to gigabytes costs a millisecond. An alias used inside the node it names is
  refused too.

Quoted scalars are always strings; a plain (unquoted) one is read as go-yaml v2 reads
it, where that differs from PyYAML's YAML 1.1 (PyYAML's reading in brackets):

- ``y``, ``Y``, ``n``, ``N`` are booleans, like ``yes``, ``on``, ``off``, ``true`` (PyYAML:
  strings); a field that wants a string refuses them, as the API server does;
- dates and times (``2024-01-02``, ``2024-01-02T03:04:05Z``) stay the string as written
  (date and datetime objects);
- ``1:30`` is a string (base 60: 90); ``=`` is a string (an error);
- integers are Go's: ``017`` and ``0o17`` are 15 (``0o17``: a string), ``09`` is 9.0;
  past 64 bits a float, past the float range the string (an int; past 4300 digits an
  error); ``1.`` is a string (1.0);
- ``!!binary`` is the decoded text (bytes); ``!!timestamp`` the string; ``!!set`` an
  object with null values (a set); ``!!omap`` and ``!!pairs`` lists of one-key objects
  (lists of tuples); a tag lbroute does not know (``!x 5``) reads as untagged, a
  scalar as its text (an error).

A mapping key that is an integer or a boolean becomes its text (``80:`` is ``"80"``,
``true:`` is ``"true"``), as sigs.k8s.io/yaml writes it into JSON. Where go-yaml and
JSON part (a float or null key, which sigs.k8s.io/yaml turns into text or refuses),
lbroute refuses. An explicit tag the value does not fit (``!!int abc``) is an error, as
in go-yaml. :func:`dump_document` writes YAML that reads back the same way (``"y"``
stays quoted).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from lbroute.model.errors import ManifestError, escape, quote

MAX_DEPTH = 100
"""Collections nested deeper than this are refused (a Service is 5 deep, a CRD's schema
rarely 30)."""

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_MERGE = _TAG + "merge"


@dataclass(frozen=True, kw_only=True)
class Document:
    """One YAML document of a file, and where its content stands in the text."""

    data: Any
    origin: str
    line: int
    """Of the content's first line (1-based)."""
    start: int
    end: int
    """``text[start:end]`` is the document's content, what a rewrite of it replaces: from
    its first character (an anchor or tag included) through the end of the line its last
    value ends on (when that value is an alias, through the comments after it too).
    Directives, ``---``, the comments before it and the other documents are outside."""


def decode_documents(text: str, origin: str) -> Iterator[Document]:
    """The documents of one file's text, one at a time; raises :class:`ManifestError`
    (naming ``origin`` and the line) at the first that cannot be read."""
    shift = 1 if text.startswith("\ufeff") else 0  # libyaml does not count the mark
    body = text[shift:]
    check = _check_aliases if "*" in body else _check_depth  # no '*', no alias
    loader = _Loader(body)
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
                if node is None:
                    return
                line = node.start_mark.line + 1
                check(node, origin)
                start = node.start_mark.index
                end = _content_end(node, body)
                data = loader.construct_document(node)  # (merges reorder node.value)
            except yaml.YAMLError as exc:
                raise ManifestError(_describe(exc, origin)) from exc
            except RecursionError as exc:  # the pure-Python parser, without libyaml's limit
                raise ManifestError(f"{origin}: nested too deeply to read") from exc
            finally:
                loader.explicit_keys.clear()
            yield Document(
                data=data,
                origin=origin,
                line=line,
                start=start + shift,
                end=end + shift,
            )
    finally:
        loader.dispose()


def _content_end(root: Node, text: str) -> int:
    """Where the document's content ends: through the end of the line its last value
    ends on (a block collection's own end would take in the comments after it). An
    alias's node is the one it names, written (and ending) before it: when the last
    value is one, the root's own end it is."""
    node, floor = root, root.start_mark.index
    while isinstance(node, MappingNode | SequenceNode) and not node.flow_style and node.value:
        if isinstance(node, MappingNode):
            key, last = node.value[-1]
            floor = max(floor, key.end_mark.index)
        else:
            last = node.value[-1]
            if len(node.value) > 1:
                floor = max(floor, node.value[-2].end_mark.index)
        if last.start_mark.index < floor:  # written before where it stands: an alias
            return int(root.end_mark.index)
        node, floor = last, last.start_mark.index
    end: int = node.end_mark.index
    if end and text[end - 1] != "\n":
        newline = text.find("\n", end)
        end = len(text) if newline < 0 else newline + 1
    return end


def _describe(exc: yaml.YAMLError, origin: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{origin}:{mark.line + 1}" if mark is not None else origin
    if isinstance(exc, ReaderError) and isinstance(exc.character, int):
        problem = f"unacceptable character #x{exc.character:04x}"
    else:
        problem = getattr(exc, "problem", None) or str(exc)
    return f"{where}: not valid YAML: {escape(problem, 200)}"


def _check_depth(root: Node, origin: str) -> None:
    """Refuse collections nested more than :data:`MAX_DEPTH` deep (no aliases)."""
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(origin, node)
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if not isinstance(key, ScalarNode):
                    stack.append((key, depth + 1))
                if not isinstance(value, ScalarNode):
                    stack.append((value, depth + 1))
        elif isinstance(node, SequenceNode):
            stack += ((item, depth + 1) for item in node.value if not isinstance(item, ScalarNode))


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _too_deep(origin: str, node: Node, through: str = "") -> ManifestError:
    return ManifestError(
        f"{origin}:{node.start_mark.line + 1}: collections nested more than {MAX_DEPTH} "
        f"deep{through}; refused"
    )


def _check_aliases(root: Node, origin: str) -> None:
    """Refuse excessive aliasing (go-yaml v2's rule, see the module docstring), aliases
    used inside what they name, and nesting past :data:`MAX_DEPTH` through aliases.

    One walk in document order: the first time a node is met is where it is written, any
    later time is an alias. Each node's size as go-yaml would decode it (aliases inside
    it expanded) and its height are known once it is finished, so an alias adds them in
    one step; a node met again before it is finished contains its own alias."""
    done: dict[int, tuple[int, int]] = {}  # id -> (decoded size, height)
    decoded, aliased = 2, 0  # the document and its root
    # frames: node, its children, the next child, decoded size so far, height so far
    stack: list[list[Any]] = [[root, _children(root), 0, 1, 1]]
    open_ids = {id(root)}
    while stack:
        frame = stack[-1]
        node, children, i = frame[0], frame[1], frame[2]
        if i == len(children):
            stack.pop()
            open_ids.discard(id(node))
            done[id(node)] = (frame[3], frame[4])
            if stack:
                stack[-1][3] += frame[3]
                stack[-1][4] = max(stack[-1][4], frame[4] + 1)
            continue
        frame[2] = i + 1
        child = children[i]
        seen = done.get(id(child))
        if seen is not None:
            size, height = seen
            frame[3] += 1 + size
            frame[4] = max(frame[4], height + 1)
            decoded += 1 + size
            aliased += size
            if len(stack) + height > MAX_DEPTH:
                raise _too_deep(origin, node, " through aliases")
            if aliased > 100 and decoded > 1000 and aliased > decoded * _alias_ratio(decoded):
                raise ManifestError(
                    f"{origin}:{root.start_mark.line + 1}: refused: its aliases expand it to "
                    f"more than {decoded:,} nodes, "
                    f"{aliased:,} of them through aliases (excessive aliasing, which the "
                    "Kubernetes API server refuses too)"
                )
        elif id(child) in open_ids:
            raise ManifestError(
                f"{origin}:{child.start_mark.line + 1}: the anchor there is used inside "
                "itself; refused"
            )
        elif isinstance(child, ScalarNode):
            decoded += 1
            frame[3] += 1
            done[id(child)] = (1, 0)
        else:
            decoded += 1
            if len(stack) >= MAX_DEPTH:
                raise _too_deep(origin, child)
            open_ids.add(id(child))
            stack.append([child, _children(child), 0, 1, 1])


def _alias_ratio(decoded: int) -> float:
    """The share of decoded nodes that may come through aliases (go-yaml v2)."""
    low, high = 400_000, 4_000_000
    if decoded <= low:
        return 0.99
    if decoded >= high:
        return 0.10
    return 0.99 - 0.89 * (decoded - low) / (high - low)


# Scalars as go-yaml v2 resolves them (resolve.go): what the first character allows,
# then the fixed words, then numbers. Anything else is a string.
_WORDS: dict[str, tuple[str, Any]] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE"), (_BOOL, True)),
    **dict.fromkeys(("on", "On", "ON"), (_BOOL, True)),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE"), (_BOOL, False)),
    **dict.fromkeys(("off", "Off", "OFF"), (_BOOL, False)),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), (_NULL, None)),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), (_FLOAT, math.nan)),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), (_FLOAT, math.inf)),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), (_FLOAT, -math.inf)),
    "<<": (_MERGE, "<<"),
}
_NOT_PLAIN_TEXT = frozenset("+-0123456789.yYnNtTfFoO~<")
_GO_INT = re.compile(r"([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_GO_FLOAT = re.compile(r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+][0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_BASES = {"x": 16, "X": 16, "o": 8, "O": 8, "b": 2, "B": 2}


def _plain(value: str) -> tuple[str, Any]:
    """The tag and value go-yaml v2 gives a plain scalar."""
    if value and value[0] not in _NOT_PLAIN_TEXT:
        return _STR, value
    word = _WORDS.get(value)
    if word is not None:
        return word
    if value[0] == ".":
        if _DOT_FLOAT.fullmatch(value) and not math.isinf(f := float(value)):
            return _FLOAT, f
    elif value[0] in "+-0123456789":
        plain = value.replace("_", "")
        if (number := _int(plain)) is not None:
            return _INT, number
        if _GO_FLOAT.fullmatch(plain) and not math.isinf(f := float(plain)):
            return _FLOAT, f
    return _STR, value


def _int(plain: str) -> int | None:
    """Go's strconv.ParseInt(plain, 0, 64), else ParseUint: None when neither takes it."""
    match = _GO_INT.fullmatch(plain)
    if match is None:
        return None
    sign, body = match.groups()
    if len(body) > 1 and body[0] == "0":
        base = _BASES.get(body[1], 8)
        digits = body[2:] if body[1] in _BASES else body[1:]
    elif len(body) > 20:  # decimal, past any 64-bit number
        return None
    else:
        base, digits = 10, body
    number = int(digits, base) if digits else 0
    if sign == "-":
        number = -number
    if -(2**63) <= number < 2**63 or (not sign and 0 <= number < 2**64):
        return number
    return None


def _resolve(kind: type[Node], value: str | None, implicit: tuple[bool, bool]) -> str:
    if kind is ScalarNode:
        return _plain(value or "")[0] if implicit[0] else _STR
    return _TAG + ("seq" if kind is SequenceNode else "map")


if TYPE_CHECKING:
    _Parser = yaml.SafeLoader
else:  # libyaml's parser where PyYAML was built with it (about six times faster)
    _Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Parser):
    """libyaml's parser (or PyYAML's), go-yaml v2's scalars, and a constructor that
    refuses duplicate keys and keys JSON cannot hold."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.merges = "<<" in text
        """Whether a mapping may merge others (without ``<<``, none does)."""
        self.explicit_keys: dict[int, int] = {}
        """For each mapping flattened so far (in this document): how many keys it had
        before ``<<`` merges put theirs in front."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode and (not implicit[0] or (value and value[0] not in _NOT_PLAIN_TEXT)):
            return _STR  # quoted, or plain text that cannot be anything else: the most common
        return _resolve(kind, value, implicit)

    def flatten_mapping(self, node: MappingNode) -> None:
        """Put the pairs of ``<<`` merges in front of the mapping's own (which win over
        them, as do earlier merged mappings over later ones), once per mapping. Unlike
        PyYAML's, it drops nothing: a merged mapping's own override of what it merged
        itself is kept. The alias check has bounded how long the lists can grow."""
        if id(node) in self.explicit_keys:
            return
        own = [(k, v) for k, v in node.value if k.tag != _MERGE]
        self.explicit_keys[id(node)] = len(own)
        merged: list[list[tuple[Node, Node]]] = []
        for key, value in node.value:
            if key.tag != _MERGE:
                continue
            for source in value.value if isinstance(value, SequenceNode) else [value]:
                if not isinstance(source, MappingNode):
                    raise ConstructorError(
                        None, None, f"<< merges objects, not {source.id}s", source.start_mark
                    )
                self.flatten_mapping(source)
                merged.append(source.value)
        if merged:
            node.value = [pair for pairs in reversed(merged) for pair in pairs] + own

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):
            raise ConstructorError(None, None, f"expected an object, found a {node.id}",
                                   node.start_mark)  # fmt: skip
        merged = 0
        if self.merges:
            self.flatten_mapping(node)
            merged = len(node.value) - self.explicit_keys[id(node)]
            if merged:
                self._refuse_duplicates(node.value[merged:])
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            # a plain string (most keys and values) is its text: no need to construct it
            if key_node.tag == _STR and key_node.__class__ is ScalarNode:
                key = key_node.value
            else:
                key = self._key(key_node)
            if value_node.tag == _STR and value_node.__class__ is ScalarNode:
                mapping[key] = value_node.value
            else:
                mapping[key] = self.construct_object(value_node, deep=deep)
        if not merged and len(mapping) < len(node.value):
            self._refuse_duplicates(node.value)
        return mapping

    def _refuse_duplicates(self, pairs: list[tuple[Node, Node]]) -> None:
        lines: dict[str, int] = {}
        for key_node, _ in pairs:
            key = self._key(key_node)
            if key in lines:
                raise ConstructorError(
                    None, None, f"duplicate key {quote(key)} (first on line {lines[key]})",
                    key_node.start_mark,
                )  # fmt: skip
            lines[key] = key_node.start_mark.line + 1

    def construct_sequence(self, node: SequenceNode, deep: bool = False) -> list[Any]:
        if not isinstance(node, SequenceNode):
            raise ConstructorError(None, None, f"expected a list, found a {node.id}",
                                   node.start_mark)  # fmt: skip
        return [
            item.value
            if item.tag == _STR and item.__class__ is ScalarNode
            else self.construct_object(item, deep=deep)
            for item in node.value
        ]

    def _key(self, node: Node) -> str:
        key = self.construct_object(node) if isinstance(node, ScalarNode) else None
        if isinstance(key, str):
            return key
        if isinstance(key, bool):
            return "true" if key else "false"
        if isinstance(key, int):
            return str(key)
        found = "null" if key is None else "a number"  # a scalar: nothing else is left
        if not isinstance(node, ScalarNode):
            found = "a list" if isinstance(node, SequenceNode) else "an object"
        raise ConstructorError(
            None, None, f"a key must be a string, integer or boolean, not {found}",
            node.start_mark,
        )  # fmt: skip

    def construct_resolved(self, node: ScalarNode) -> Any:
        """A scalar tagged (or resolved as) null, bool, int or float: its value, as go-yaml
        v2 reads it; an error when it is not one (``!!int abc``)."""
        value = self.construct_scalar(node)
        tag, resolved = _plain(value)
        if tag == node.tag:
            return resolved
        if node.tag == _FLOAT and tag == _INT:
            return float(resolved)
        raise ConstructorError(
            None, None, f"cannot read {quote(value)} as {node.tag.replace(_TAG, '!!')}",
            node.start_mark,
        )  # fmt: skip

    def construct_binary(self, node: ScalarNode) -> str:
        text = "".join(self.construct_scalar(node).split())  # a block scalar's line breaks
        try:
            data = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ConstructorError(None, None, f"!!binary that is not base64: {exc}",
                                   node.start_mark) from exc  # fmt: skip
        return data.decode("utf-8", errors="replace")

    def construct_untagged(self, node: Node) -> Any:
        """A tag go-yaml does not resolve: the scalar's text, or the list or object."""
        if isinstance(node, MappingNode):
            return self.construct_yaml_map(node)
        if isinstance(node, SequenceNode):
            return self.construct_yaml_seq(node)
        return node.value

    yaml_constructors: ClassVar[dict[str | None, Any]] = {
        _NULL: construct_resolved,
        _BOOL: construct_resolved,
        _INT: construct_resolved,
        _FLOAT: construct_resolved,
        _STR: yaml.SafeLoader.construct_yaml_str,
        _TAG + "timestamp": yaml.SafeLoader.construct_yaml_str,
        _TAG + "binary": construct_binary,
        _TAG + "seq": yaml.SafeLoader.construct_yaml_seq,
        _TAG + "omap": yaml.SafeLoader.construct_yaml_seq,
        _TAG + "pairs": yaml.SafeLoader.construct_yaml_seq,
        _TAG + "map": yaml.SafeLoader.construct_yaml_map,
        _TAG + "set": yaml.SafeLoader.construct_yaml_map,
        None: construct_untagged,
    }


class _Dumper(yaml.SafeDumper):
    """Quotes every string the loader would read as something else, and those PyYAML's
    YAML 1.1 would (``2024-01-02``, ``1:30``, ``=``), for the tools that read it so."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        tag = _resolve(kind, value, implicit)
        if tag != _STR:
            return tag
        pyyaml: str = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return pyyaml


def dump_document(data: Any) -> str:
    """``data`` as one YAML document (no ``---``) that :func:`parse_documents` reads back
    as the same value."""
    return str(yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True))
