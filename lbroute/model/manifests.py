"""Reading Kubernetes-style YAML manifests from files and directories.

Directories are read recursively (``*.yaml``, ``*.yml``, ``*.json``; hidden files and
directories left out) in sorted order; multi-document files and ``kind: List`` are
flattened. The YAML is decoded as the API server decodes it, with what a document can
cost bounded (:mod:`lbroute.model.yamldecode`).

:func:`read_manifests` returns the objects, where each was read (file and line: a
duplicate object is reported naming both places) and, apart, one error per path or file
that could not be read; the other files still count: ``lbroute render``, ``validate`` and
``allocate`` report the error and go on, and the agent's directory source
(:mod:`lbroute.kube.directory`) keeps what the file held when it last read. A file is
read whole or not at all: it is one error, naming the file and line, when it cannot be
read, is not UTF-8 (a leading byte-order mark is fine), when a document cannot be
decoded (not YAML, a key twice, too deep, excessive aliasing), or when a document is
not an object: a list or a scalar at the top (an empty document is fine) or an item of
a ``kind: List`` that is not an object. Paths and kinds in messages are escaped and
quoted, so a file name cannot fake a line of output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbroute.model.errors import ManifestError, escape, quote
from lbroute.model.yamldecode import Document, decode_documents

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, kw_only=True)
class Manifests:
    objects: tuple[dict[str, Any], ...]
    """Every object of the files that could be read, in file order."""
    errors: tuple[str, ...]
    """One per path or file that could not be read, naming it (and the line)."""
    places: Mapping[int, str] = field(default_factory=dict)
    """``id()`` of each of :attr:`objects` -> the file and line of its document."""

    def where(self, obj: Mapping[str, Any]) -> str | None:
        """The file and line (``dir/web.yaml:12``) one of :attr:`objects` was read from,
        for messages (a duplicate names both places): pass to ``load(where=...)``."""
        return self.places.get(id(obj))


def read_manifests(paths: Iterable[Path]) -> Manifests:
    """The objects in ``paths`` (files or directories) and what could not be read."""
    files, errors = manifest_files(paths)
    objects: list[dict[str, Any]] = []
    places: dict[int, str] = {}
    for file in files:
        try:
            documents = decode_documents(read_text(file), path_name(file))
            found = [
                (obj, f"{d.origin}:{d.line}") for d in documents for obj in document_objects(d)
            ]
        except ManifestError as exc:
            errors.append(str(exc))
            continue
        for obj, place in found:
            objects.append(obj)
            places[id(obj)] = place
    return Manifests(objects=tuple(objects), errors=tuple(errors), places=places)


def manifest_files(
    paths: Iterable[Path], *, links: list[Path] | None = None
) -> tuple[list[Path], list[str]]:
    """The manifest files in ``paths``, and an error for each path that is not there (or
    goes away while it is listed). ``links``, when given, gets every symlink found under
    a directory of ``paths`` that is not hidden: to a file, to a directory or dangling."""
    files: list[Path] = []
    missing: list[str] = []
    for path in paths:
        if path.is_dir():
            try:
                files += sorted(_walk(path, links))
            except FileNotFoundError:
                missing.append(f"{path_name(path)}: no such file or directory")
        elif path.is_file():
            files.append(path)
        else:
            missing.append(f"{path_name(path)}: no such file or directory")
    return files, missing


def _walk(directory: Path, links: list[Path] | None = None) -> Iterator[Path]:
    """The manifest files under ``directory``, in no order: neither hidden ones nor any
    under a hidden directory (a ConfigMap volume's ``..data`` and ``..2026_11_28_...``
    directories hold the same files as its visible symlinks), nor under a symlink to a
    directory, nor a symlink that leads nowhere (dangling, a loop). One ``scandir`` per
    directory: listing a directory of 200 manifests through ``Path.rglob`` took 4 ms of
    every change's way to the router. The symlinks met go to ``links``."""
    try:
        with os.scandir(directory) as it:
            entries = list(it)
    except PermissionError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if links is not None and entry.is_symlink():
                links.append(Path(entry.path))
            below = entry.is_dir(follow_symlinks=False)
            manifest = os.path.splitext(entry.name)[1] in SUFFIXES and entry.is_file()
        except OSError:  # a symlink loop, or one through a regular file
            continue
        if below:
            yield from _walk(Path(entry.path), links)
        elif manifest:
            yield Path(entry.path)


def path_name(path: Path) -> str:
    """The path as messages print it: a newline or a control character in it escaped,
    as it would otherwise fake a line of output or reach the terminal."""
    return escape(str(path))


def read_manifest_file(
    file: Path, *, each: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The objects in one file; raises :class:`ManifestError` if it cannot be read."""
    return parse_manifest_text(read_text(file), path_name(file), each=each)


def read_text(file: Path) -> str:
    """The file's text as it is (line endings and a byte-order mark kept)."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path_name(file)}: cannot read: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ManifestError(
            f"{path_name(file)}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start})"
        ) from exc


def parse_manifest_text(
    text: str,
    origin: str,
    *,
    each: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The objects in one file's text; ``each`` (if given) is applied to every object as
    its document is parsed, so a caller that keeps only part of each object never holds
    the whole file's dicts at once."""
    keep = each or (lambda obj: obj)
    return [keep(obj) for doc in decode_documents(text, origin) for obj in document_objects(doc)]


def document_objects(document: Document) -> list[dict[str, Any]]:
    """The objects a document holds, themselves (not copies): the items of a List too.
    Raises :class:`ManifestError` when it is not an object, or a List's items are not."""
    data = document.data
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ManifestError(
            f"{document.origin}:{document.line}: the document is {_kind(data)}, not an "
            "object; each object needs a document of its own (separated by ---) or to be "
            "an item of a kind: List"
        )
    return _flatten(data, document)


def _flatten(obj: dict[str, Any], document: Document) -> list[dict[str, Any]]:
    kind = obj.get("kind")
    if not (isinstance(kind, str) and kind.endswith("List")):
        return [obj]
    items = obj.get("items")
    if items is None:
        return []
    where = f"{document.origin}:{document.line}: {quote(kind)}"
    if not isinstance(items, list):
        raise ManifestError(f"{where}: items must be a list, not {_kind(items)}")
    objects: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ManifestError(f"{where}: items[{i}] must be an object, not {_kind(item)}")
        objects += _flatten(item, document)
    return objects


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return {**names, int: "an integer", float: "a number"}.get(
        type(value), f"a {type(value).__name__}"
    )
