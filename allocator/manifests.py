"""The allocator on a directory of manifests: one pass, written back into the files.

``lbroute allocate -f DIR`` reads the ServiceGroups and Services of the manifests, runs
the same pass as the controller (allocator.ipam) with the Services' current
``status.loadBalancer.ingress`` as the record of what is taken, and writes each changed
Service's ``status.loadBalancer.ingress`` and ``lbroute.io/allocated-from`` back into its
file, atomically, through a symbolic link if the file is one (the link stays).

Only the content of the YAML documents of changed Services is rewritten: everything
else stays byte for byte as it was, the other documents, directives such as ``%YAML
1.1``, separators, the comments before and after each document, line endings and a
byte-order mark. In a changed document only the lines of the fields written change
(``status.loadBalancer.ingress``, the ``lbroute.io/allocated-from`` annotation, and the
mappings that hold them when they are new): the document goes through a round-trip YAML
library (ruamel.yaml, for the rewrite only: reading is lbroute.model.yamldecode's, as
the API server reads), which keeps comments, key order, quoting and flow style, with
the indentation that reproduces the document best; of what it writes only the lines
that the change makes differ are put in place of the document's own, so a line it
would write otherwise (spacing, a long line) stays as it was. A value written through
an anchor or a ``<<`` merge would change every place that shares it: such a document,
or one that the library cannot write so that it reads back as the new Service, is
written anew as before (comments and style of that document lost). A file that cannot
be read is reported, left out of the pass and never written; the other files still
count. Its Services are not seen, so neither are the addresses they hold.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import io
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedBase, CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from allocator.external import Broker, NetBoxProvider
from allocator.ipam import Allocation, Failure, Reason, allocate, invalid_groups
from allocator.service import LBService, parse_service, with_allocation
from lbroute.model import api
from lbroute.model.api import ServiceGroup
from lbroute.model.errors import ManifestError, ObjectRef
from lbroute.model.files import write_atomic
from lbroute.model.manifests import document_objects, manifest_files, path_name, read_text
from lbroute.model.service import Foreign
from lbroute.model.yamldecode import Document, decode_documents, dump_document


@dataclass
class _Document:
    document: Document
    objects: list[dict[str, Any]]
    """The objects it holds, themselves (not copies): the items of a List too."""
    original: Any = None
    """A copy of its data from before the first change (None: not changed)."""

    @property
    def changed(self) -> bool:
        return self.original is not None

    def change(self) -> None:
        """Called before its objects change."""
        if self.original is None:
            self.original = copy.deepcopy(self.document.data)


@dataclass
class _File:
    path: Path
    text: str
    documents: list[_Document]

    def rewritten(self) -> str:
        """The text with the content of each changed document written anew."""
        newline = "\r\n" if "\r\n" in self.text[: self.text.find("\n") + 1] else "\n"
        out: list[str] = []
        done = 0
        for d in self.documents:
            if not d.changed:
                continue
            start, end = d.document.start, d.document.end
            content = self.text[start:end].replace("\r\n", "\n")
            body = round_trip(content, d.original, d.document.data)
            if body is None:
                body = dump_document(d.document.data)
                if start and self.text[start - 1] not in "\n\ufeff":  # on its --- line
                    body = "\n" + body
            out += (self.text[done:start], body.replace("\n", newline))
            done = end
        out.append(self.text[done:])
        return "".join(out)


_INDENTS = [
    (mapping, sequence, offset)
    for mapping in (2, 4, 3)
    for sequence, offset in ((2, 0), (4, 2), (3, 1), (4, 0))
]
"""The indentations tried (mapping, sequence, dash offset) when the one the document
seems to use does not do."""


class _Shared(Exception):
    """A value to write goes through an anchor or a merge, or the document is not what
    its data says."""


def round_trip(text: str, old: Any, new: Any) -> str | None:
    """``text``, one document's content whose data is ``old``, changed to read as
    ``new`` with only the lines of what changed differing; None: not possible (the
    caller writes it anew)."""
    original = text.splitlines(keepends=True)
    guess = _indentation(original)
    try:
        yaml = _yaml(*guess)
        tree = yaml.load(text)
        same = _dump(yaml, tree)
        _change(tree, old, new)
        body = _merge(original, same, _dump(yaml, tree))
        if body is not None and _reads_as(body, new):
            return body
        # Not indented as it seemed: try the others, keeping the closest's own text.
        tree = yaml.load(text)
        edited = yaml.load(text)
        _change(edited, old, new)
        closest: tuple[int, list[str]] | None = None
        for indent in (i for i in _INDENTS if i != guess):
            yaml = _yaml(*indent)
            same, changed = _dump(yaml, tree), _dump(yaml, edited)
            body = _merge(original, same, changed)
            if body is not None and _reads_as(body, new):
                return body
            cost = sum(
                max(i2 - i1, j2 - j1)
                for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
                    None, same, original, autojunk=False
                ).get_opcodes()
                if tag != "equal"
            )
            if closest is None or cost < closest[0]:
                closest = (cost, changed)
    except (YAMLError, _Shared, RecursionError, AttributeError, ValueError, TypeError, KeyError):
        return None
    body = "".join(closest[1]) if closest else ""
    return body if closest and _reads_as(body, new) else None


def _indentation(lines: list[str]) -> tuple[int, int, int]:
    """The indentation (mapping, sequence, dash offset) the document's block collections
    use most: a key's value indented by 2 and its list items' dashes by 0 (``- a``
    under ``key:``) by default."""
    steps: dict[int, int] = {}
    dashes: dict[int, int] = {}
    content = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    for line, below in itertools.pairwise(content):
        head = line.split(" #")[0].rstrip()
        if not head.endswith(":"):
            continue
        top = len(line) - len(line.lstrip(" "))
        if head.lstrip(" ").startswith("- "):
            top += 2
        step = len(below) - len(below.lstrip(" ")) - top
        if below.lstrip(" ").startswith("- ") and step >= 0:
            dashes[step] = dashes.get(step, 0) + 1
        elif step > 0:
            steps[step] = steps.get(step, 0) + 1
    mapping = max(steps, key=lambda k: (steps[k], -k)) if steps else 2
    offset = max(dashes, key=lambda k: (dashes[k], -k)) if dashes else 0
    return mapping, offset + 2, offset


def _yaml(mapping: int, sequence: int, offset: int) -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 1 << 16  # never fold a long line
    yaml.brace_single_entry_mapping_in_flow_sequence = True  # [{ip: 192.0.2.1}]
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _dump(yaml: YAML, tree: Any) -> list[str]:
    out = io.StringIO()
    yaml.dump(tree, out)
    return out.getvalue().splitlines(keepends=True)


def _change(node: Any, old: Any, new: Any) -> None:
    """Make ``node`` (the round-trip tree of ``old``) read as ``new``, touching only
    what differs; _Shared when that would go through an anchor or a merge."""
    if isinstance(node, CommentedBase) and node.anchor.value is not None:
        raise _Shared("an anchor")
    if isinstance(old, dict) and isinstance(new, dict) and isinstance(node, CommentedMap):
        if node.merge:
            raise _Shared("a merge")
        if len(node) != len(old) or any(not isinstance(k, str) or k not in old for k in node):
            raise _Shared("keys that are not the data's")
        for key in [k for k in old if k not in new]:
            del node[key]
        for key, value in new.items():
            if key not in old:
                node[key] = _fresh(value)
            elif old[key] != value:
                if isinstance(node[key], (CommentedMap, CommentedSeq)):
                    _change(node[key], old[key], value)
                else:
                    node[key] = _fresh(value)
    elif isinstance(old, list) and isinstance(new, list) and isinstance(node, CommentedSeq):
        if len(node) != len(old):
            raise _Shared("items that are not the data's")
        del node[len(new) :]
        for i, value in enumerate(new):
            if i >= len(old):
                node.append(_fresh(value))
            elif old[i] != value:
                if isinstance(node[i], (CommentedMap, CommentedSeq)):
                    _change(node[i], old[i], value)
                else:
                    node[i] = _fresh(value)
    else:
        raise _Shared("a value that is not the data's")


def _fresh(value: Any) -> Any:
    """A value to write: a copy, with the strings that lbroute (as go-yaml v2) would read
    as something else unquoted double-quoted (``1:2:3:4:5:6:7:8`` is a base-60 int)."""
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    if isinstance(value, str) and not _reads_as(f"{value}\n", value):
        return DoubleQuotedScalarString(value)
    return value


def _merge(original: list[str], same: list[str], changed: list[str]) -> str | None:
    """``original`` with the lines that ``changed`` has instead of ``same`` (the library's
    output of the document unchanged) put in their place; None when a line to replace
    is one where ``same`` and ``original`` differ. A line that takes the place of one
    keeps the space before its comment that the one it replaces had."""
    blocks = difflib.SequenceMatcher(None, same, original, autojunk=False).get_opcodes()
    where = {a1 + k: b1 + k for t, a1, a2, b1, _ in blocks if t == "equal" for k in range(a2 - a1)}

    def after(i: int) -> int | None:
        """Where lines put before line ``i`` of same go in original."""
        if i - 1 in where:
            return where[i - 1] + 1
        if i in where:
            return where[i]
        # In or at the end of lines the library writes otherwise: after them.
        return next((b2 for _, a1, a2, _, b2 in blocks if a1 < i <= a2 or i == a2 == a1), None)

    out = list(original)
    edits = difflib.SequenceMatcher(None, same, changed, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in reversed(edits):  # from the end: earlier places stay valid
        if tag == "equal":
            continue
        found = _region(blocks, i1, i2) if i1 < i2 else (after(i1), after(i1))
        if found[0] is None or found[1] is None:
            return None
        at, until = found
        lines = changed[j1:j2]
        if i1 < i2:
            lines = [
                _spaced(new, old) for new, old in zip(changed[j1:j2], out[at:until], strict=False)
            ]
            lines += changed[j1 + len(lines) : j2]
        out[at:until] = lines
    return "".join(out)


def _region(
    blocks: Sequence[tuple[str, int, int, int, int]], i1: int, i2: int
) -> tuple[int | None, int | None]:
    """Where the lines of original that lines ``i1`` to ``i2`` of same are begin and
    end; None for an edge that is not at a line the same in both or at the edge of lines
    written otherwise."""
    at = until = None
    for tag, a1, a2, b1, b2 in blocks:
        if a1 <= i1 < a2:
            at = b1 + (i1 - a1) if tag == "equal" else b1 if i1 == a1 else None
        if a1 < i2 <= a2:
            until = b1 + (i2 - a1) if tag == "equal" else b2 if i2 == a2 else None
    return at, until


def _spaced(line: str, was: str) -> str:
    """``line`` with the space before its comment that ``was`` had, if they end with the
    same comment (a value written before it moves it, or the library keeps its column)."""
    for k in range(1, len(was)):
        if was[k] == "#" and was[k - 1] in " \t":
            comment = was[k:]
            if line.endswith(comment) and line[: -len(comment)][-1:] in (" ", "\t"):
                gap = was[:k][len(was[:k].rstrip()) :]
                return line[: -len(comment)].rstrip() + gap + comment
    return line


def _reads_as(body: str, data: Any) -> bool:
    """Whether ``body`` is one document that lbroute reads as ``data``."""
    try:
        documents = list(decode_documents(body, "<rewritten>"))
    except ManifestError:
        return False
    return len(documents) == 1 and documents[0].data == data


def _read(path: Path) -> _File:
    text = read_text(path)
    documents = [
        _Document(document=d, objects=document_objects(d))
        for d in decode_documents(text, path_name(path))
    ]
    return _File(path=path, text=text, documents=documents)


@dataclass(frozen=True, kw_only=True)
class Result:
    allocation: Allocation
    problems: tuple[str, ...]
    """What is wrong with the ServiceGroups (as lbroute validate says; invalid ones are
    left out) and Services that appear twice (the first one counts)."""
    errors: tuple[str, ...]
    """The paths and files that could not be read (left out, not written), and the files
    that could not be written."""
    written: tuple[Path, ...]
    foreign: tuple[tuple[ObjectRef, Foreign], ...] = ()
    """The MetalLB and PureLB annotations of lbroute's Services, and what was made of each."""


@dataclass(frozen=True, kw_only=True)
class NetBoxAccess:
    """How ``lbroute allocate`` reaches the NetBox of ServiceGroups with ``ipam.netbox``:
    the token (the Secret the group names is in the cluster, not in the manifests) and,
    optionally, another URL than the group's (one reachable from where it runs)."""

    token: str
    url: str | None = None


def _broker(netbox: NetBoxAccess, dry_run: bool) -> Broker:
    def provider(group: ServiceGroup) -> NetBoxProvider:
        assert group.netbox is not None
        if netbox.url is not None:
            group = dataclasses.replace(
                group, netbox=dataclasses.replace(group.netbox, url=netbox.url)
            )
        return NetBoxProvider(group, netbox.token, dry_run=dry_run)

    return Broker(provider)


def _from_netbox(
    result: Allocation,
    model: api.Model,
    services: Sequence[LBService],
    namespace: str,
    broker: Broker | None,
) -> Allocation:
    """Ask NetBox for what the pass requested, and pass again with what it gave."""
    if broker is None:
        failures = tuple(
            Failure(
                ref=r.ref,
                reason=Reason.IPAM_PENDING,
                path="",
                message=f"needs an address from the NetBox prefixes of ServiceGroup {r.group}: "
                "give lbroute allocate a NetBox token (--netbox-token or LBROUTE_NETBOX_TOKEN)",
            )
            for r in result.requests
        )
        return dataclasses.replace(result, failures=result.failures + failures)
    broker.groups(model.service_groups, key=lambda g: g.netbox)
    outcome = broker.fulfil(result.requests)
    again = allocate(
        model.service_groups,
        services,
        invalid_groups=invalid_groups(model.problems),
        namespace=namespace,
        claims=outcome.claims,
    )
    return dataclasses.replace(again, failures=again.failures + tuple(outcome.failures))


def _select(
    broker: Broker,
    groups: list[dict[str, Any]],
    docs: Mapping[int, _Document],
    model: api.Model,
    services: Sequence[LBService],
) -> list[str]:
    """Ask NetBox which prefixes the groups' prefixSelectors match and write the chosen
    ones into the groups' ``status.ipam.netbox.prefixes`` (in memory; the file when it is
    written), as the allocator writes them into the cluster; what NetBox refused."""
    broker.groups(model.service_groups, key=lambda g: g.netbox)
    chosen = broker.select(model.service_groups, (a for s in services for a in s.addresses))
    for obj in groups:
        name = (obj.get("metadata") or {}).get("name")
        if name not in chosen:
            continue
        docs[id(obj)].change()  # before: it keeps the original
        status = dict(obj.get("status") or {})
        status["ipam"] = {"netbox": chosen[name].status()}
        obj["status"] = status
    said = []
    for g in model.service_groups:
        condition = broker.condition(g.name)
        if g.netbox is not None and g.netbox.selector and condition and condition[0] != "True":
            said.append(f"{g.ref}: {condition[2]}")
    return said


def allocate_manifests(
    paths: Iterable[Path],
    *,
    default_class: bool = False,
    dry_run: bool = False,
    netbox: NetBoxAccess | None = None,
) -> Result:
    """One pass over the manifests in ``paths``; rewrites the files unless ``dry_run``.

    Services of a group with NetBox prefixes get their addresses from NetBox through
    ``netbox`` (recorded there as for the allocator; with ``dry_run`` NetBox is only asked
    which addresses are free, and nothing is written to it). Addresses of Services no
    longer in the manifests are not released in NetBox: only the allocator, which sees
    every Service of the cluster, releases."""
    found, errors = manifest_files(paths)
    files: list[_File] = []
    for path in found:
        try:
            files.append(_read(path))
        except ManifestError as exc:
            errors.append(str(exc))
    where: dict[ObjectRef, tuple[_File, _Document, dict[str, Any]]] = {}
    groups: list[dict[str, Any]] = []
    services = []
    duplicates: list[str] = []
    places: dict[int, str] = {}
    docs: dict[int, _Document] = {}
    for f in files:
        for doc in f.documents:
            for obj in doc.objects:
                if obj.get("kind") == "ServiceGroup":
                    groups.append(obj)
                    places[id(obj)] = f"{doc.document.origin}:{doc.document.line}"
                    docs[id(obj)] = doc
                elif obj.get("kind") == "Service" and obj.get("apiVersion") == "v1":
                    svc = parse_service(obj, default_class=default_class)
                    if svc is not None and svc.ref in where:
                        first = path_name(where[svc.ref][0].path)
                        duplicates.append(
                            f"{path_name(f.path)}: {svc.ref} appears more than once; the first "
                            f"one ({first}) is used"
                        )
                    elif svc is not None:
                        services.append(svc)
                        where[svc.ref] = (f, doc, obj)
    model = api.load(groups, where=lambda obj: places.get(id(obj)))
    broker = _broker(netbox, dry_run) if netbox is not None else None
    if broker is not None and any(g.netbox and g.netbox.selector for g in model.service_groups):
        errors += _select(broker, groups, docs, model, services)
        model = api.load(groups, where=lambda obj: places.get(id(obj)))
    namespace = model.service_groups[0].ref.namespace if model.service_groups else "lbroute"
    result = allocate(
        model.service_groups,
        services,
        invalid_groups=invalid_groups(model.problems),
        namespace=namespace,
    )
    if result.requests:
        result = _from_netbox(result, model, services, namespace, broker)
    # No lbroute.io/allocated-group label in files: the allocator in the cluster sets it
    # (the agents' label selector is the API server's, not a directory's).
    result = dataclasses.replace(
        result,
        assignments=tuple(dataclasses.replace(a, label=a.label_before) for a in result.assignments),
    )
    for a in result.changes():
        f, doc, obj = where[a.ref]
        new = with_allocation(obj, a.addresses, a.allocated_from)
        doc.change()
        obj.clear()
        obj.update(new)  # in place: the object is the document, or an item of its List
    written = []
    for f in (f for f in files if any(d.changed for d in f.documents)):
        if not dry_run:
            try:
                write_atomic(f.path, f.rewritten(), mode=f.path.stat().st_mode & 0o7777)
            except OSError as exc:
                errors.append(f"{path_name(f.path)}: cannot write: {exc.strerror or exc}")
                continue
        written.append(f.path)
    return Result(
        allocation=result,
        problems=(*(str(p) for p in model.problems), *duplicates),
        errors=tuple(errors),
        written=tuple(written),
        foreign=tuple((s.ref, f) for s in services for f in s.foreign),
    )
