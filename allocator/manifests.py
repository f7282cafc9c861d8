"""The allocator on a directory of manifests: one pass, written back into the files.

``lbroute allocate -f DIR`` reads the ServiceGroups and Services of the manifests, runs
the same pass as the controller (allocator.ipam) with the Services' current
``status.loadBalancer.ingress`` as the record of what is taken, and writes each changed
Service's ``status.loadBalancer.ingress`` and ``lbroute.io/allocated-from`` back into its
file, atomically. Only the YAML documents of changed Services are rewritten (their
leading comments kept); every other document stays byte for byte as it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from allocator.ipam import Allocation, allocate, invalid_groups
from allocator.service import parse_service, with_allocation
from lbroute.model import api
from lbroute.model.errors import ManifestError, ObjectRef
from lbroute.model.files import write_atomic
from lbroute.model.manifests import manifest_files, parse_manifest_text

_SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)


@dataclass
class _Document:
    text: str
    """As it stands in the file, from the newline that ends the separator before it."""
    data: Any
    """One document, or (a file read whole) the list of its documents."""
    changed: bool = False

    @property
    def objects(self) -> list[dict[str, Any]]:
        """The objects it holds, themselves (not copies): the items of a List too."""
        return list(_flatten(self.data if isinstance(self.data, list) else [self.data]))

    def render(self, first: bool) -> str:
        if not self.changed:
            return self.text
        if isinstance(self.data, list):
            return str(yaml.safe_dump_all(self.data, sort_keys=False, allow_unicode=True))
        lead = "" if first else "\n"
        text = self.text[len(lead) :] if self.text.startswith(lead) else self.text
        body = yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True)
        return lead + _leading_comments(text) + body


def _flatten(docs: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if str(doc.get("kind", "")).endswith("List"):
            yield from _flatten(doc.get("items") or [])
        else:
            yield doc


@dataclass
class _File:
    path: Path
    documents: list[_Document]
    separators: list[str]

    def text(self) -> str:
        out = []
        for i, doc in enumerate(self.documents):
            if i:
                out.append(self.separators[i - 1])
            out.append(doc.render(first=i == 0))
        return "".join(out)


def _split(path: Path, text: str) -> _File:
    """The file's documents, each with its own text, so unchanged ones stay as they are."""
    parts = _SEPARATOR.split(text)
    documents = []
    for part in parts:
        try:
            docs = [d for d in yaml.safe_load_all(part) if d is not None]
        except yaml.YAMLError:
            docs = None
        if docs is None or len(docs) > 1:  # not one document per chunk: take the file whole
            whole = [d for d in yaml.safe_load_all(text) if d is not None]
            return _File(path=path, documents=[_Document(text=text, data=whole)], separators=[])
        documents.append(_Document(text=part, data=docs[0] if docs else None))
    return _File(path=path, documents=documents, separators=_SEPARATOR.findall(text))


def _leading_comments(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


@dataclass(frozen=True, kw_only=True)
class Result:
    allocation: Allocation
    problems: tuple[str, ...]
    """What is wrong with the ServiceGroups (as lbroute validate says; invalid ones are
    left out) and Services that appear twice (the first one counts)."""
    written: tuple[Path, ...]


def allocate_manifests(
    paths: Iterable[Path], *, default_class: bool = False, dry_run: bool = False
) -> Result:
    """One pass over the manifests in ``paths``; rewrites the files unless ``dry_run``.

    Raises :class:`~lbroute.model.manifests.ManifestError` for a file that cannot be read.
    """
    files: list[_File] = []
    for path in manifest_files(list(paths)):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path}: cannot read: {exc}") from exc
        parse_manifest_text(text, str(path))  # a file that is not YAML: its own error
        files.append(_split(path, text))
    where: dict[ObjectRef, tuple[_File, _Document, dict[str, Any]]] = {}
    groups: list[dict[str, Any]] = []
    services = []
    duplicates: list[str] = []
    for f in files:
        for doc in f.documents:
            for obj in doc.objects:
                if obj.get("kind") == "ServiceGroup":
                    groups.append(obj)
                elif obj.get("kind") == "Service" and obj.get("apiVersion") == "v1":
                    svc = parse_service(obj, default_class=default_class)
                    if svc is not None and svc.ref in where:
                        first = where[svc.ref][0].path
                        duplicates.append(
                            f"{f.path}: {svc.ref} appears more than once; the first one "
                            f"({first}) is used"
                        )
                    elif svc is not None:
                        services.append(svc)
                        where[svc.ref] = (f, doc, obj)
    model = api.load(groups)
    namespace = model.service_groups[0].ref.namespace if model.service_groups else "lbroute"
    result = allocate(
        model.service_groups,
        services,
        invalid_groups=invalid_groups(model.problems),
        namespace=namespace,
    )
    for a in result.changes():
        f, doc, obj = where[a.ref]
        new = with_allocation(obj, a.addresses, a.allocated_from)
        obj.clear()
        obj.update(new)  # in place: the object is the document, or an item of its List
        doc.changed = True
    written = []
    for f in files:
        if any(d.changed for d in f.documents):
            if not dry_run:
                write_atomic(f.path, f.text(), mode=f.path.stat().st_mode & 0o7777)
            written.append(f.path)
    return Result(
        allocation=result,
        problems=(*(str(p) for p in model.problems), *duplicates),
        written=tuple(written),
    )
