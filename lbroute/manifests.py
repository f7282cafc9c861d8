"""Reading Kubernetes-style YAML manifests from files and directories.

Directories are read recursively (``*.yaml``, ``*.yml``, ``*.json``) in sorted order;
multi-document files and ``kind: List`` are flattened. A file that is not valid YAML is
an error naming the file and line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from renderer.errors import LbrouteError

SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(LbrouteError):
    """A manifest file could not be read or parsed."""


def manifest_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p
                for p in path.rglob("*")
                if p.suffix in SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
        elif path.is_file():
            files.append(path)
        else:
            raise ManifestError(f"{path}: no such file or directory")
    return files


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


def parse_manifest_text(text: str, origin: str) -> list[dict[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{where}: not valid YAML: {problem}") from exc
    return list(_flatten(docs))


def _flatten(docs: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == "List" or str(doc.get("kind", "")).endswith("List"):
            yield from _flatten(doc.get("items") or [])
        else:
            yield doc
