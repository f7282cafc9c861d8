"""Reading Kubernetes-style YAML manifests from files and directories.

Directories are read recursively (``*.yaml``, ``*.yml``, ``*.json``; hidden files and
directories left out) in sorted order; multi-document files and ``kind: List`` are
flattened. A file that is not valid YAML is an error naming the file and line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from lbroute.model.errors import ManifestError

SUFFIXES = (".yaml", ".yml", ".json")


Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it (about six times faster); the
same safe subset of YAML either way."""


def manifest_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p
                for p in path.rglob("*")
                if p.suffix in SUFFIXES and p.is_file() and not _hidden(p.relative_to(path))
            )
        elif path.is_file():
            files.append(path)
        else:
            raise ManifestError(f"{path}: no such file or directory")
    return files


def _hidden(relative: Path) -> bool:
    """Under a hidden directory or hidden itself: a ConfigMap volume's ``..data`` and
    ``..2026_11_28_...`` directories hold the same files as its visible symlinks."""
    return any(part.startswith(".") for part in relative.parts)


def read_manifests(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every object in ``paths``, in file order."""
    objects: list[dict[str, Any]] = []
    for file in manifest_files(paths):
        objects += parse_manifest_text(_read(file), str(file))
    return objects


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{file}: cannot read: {exc}") from exc


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
    try:
        return [keep(obj) for obj in _flatten(yaml.load_all(text, Loader=Loader))]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{where}: not valid YAML: {problem}") from exc


def _flatten(docs: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == "List" or str(doc.get("kind", "")).endswith("List"):
            yield from _flatten(doc.get("items") or [])
        else:
            yield doc
