"""The allocator on a directory of manifests: one pass, written back into the files.

``lbroute allocate -f DIR`` reads the ServiceGroups and Services of the manifests, runs
the same pass as the controller (allocator.ipam) with the Services' current
``status.loadBalancer.ingress`` as the record of what is taken, and writes each changed
Service's ``status.loadBalancer.ingress`` and ``lbroute.io/allocated-from`` back into its
file, atomically, through a symbolic link if the file is one (the link stays).

Only the content of the YAML documents of changed Services is rewritten (a List
holding one is rewritten whole): everything else stays byte for byte as it was, the
other documents, directives such as ``%YAML 1.1``, separators, the comments before and
after each document, line endings and a byte-order mark. A file that cannot be read is
reported, left out of the pass and never written; the other files still count. Its
Services are not seen, so neither are the addresses they hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allocator.ipam import Allocation, allocate, invalid_groups
from allocator.service import parse_service, with_allocation
from lbroute.model import api
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
    changed: bool = False


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
            body = dump_document(d.document.data)
            if start and self.text[start - 1] not in "\n\ufeff":  # on the line of its ---
                body = "\n" + body
            out += (self.text[done:start], body.replace("\n", newline))
            done = end
        out.append(self.text[done:])
        return "".join(out)


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


def allocate_manifests(
    paths: Iterable[Path], *, default_class: bool = False, dry_run: bool = False
) -> Result:
    """One pass over the manifests in ``paths``; rewrites the files unless ``dry_run``."""
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
    for f in files:
        for doc in f.documents:
            for obj in doc.objects:
                if obj.get("kind") == "ServiceGroup":
                    groups.append(obj)
                    places[id(obj)] = f"{doc.document.origin}:{doc.document.line}"
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
