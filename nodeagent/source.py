"""Where the agent's objects come from.

A :class:`Source` yields complete snapshots of the objects the agent needs (Services,
EndpointSlices, Nodes, Secrets and lbroute's own kinds), one per change. The agent
neither knows nor cares whether they come from a directory or the Kubernetes API.

:class:`DirectorySource` reads a directory of the same YAML objects the API would
hold and watches it with watchfiles. A file that cannot be read or parsed is reported;
the objects it held when it was last read still count (a typo or a half-written file
must not withdraw every Service in it), and so do the other files. A file that never
parsed counts for nothing. :class:`DirectoryWatcher` watches any other directory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import watchfiles

from lbroute.manifests import ManifestError, manifest_files, parse_manifest_text

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    objects: tuple[dict[str, Any], ...]
    errors: tuple[str, ...] = ()
    """Files that could not be read, with the reason."""
    changed: frozenset[Path] = field(default_factory=frozenset)
    """Paths that changed since the previous snapshot (empty for the first)."""


class Source(Protocol):
    def snapshots(self, stop: threading.Event) -> Iterator[Snapshot]:
        """Yield the current objects at once, then again after every change, until
        ``stop`` is set."""
        ...


class DirectorySource:
    def __init__(self, path: Path, *, debounce_ms: int = 50) -> None:
        self.path = path
        self.debounce_ms = debounce_ms
        self._last: dict[Path, list[dict[str, Any]]] = {}
        """Each file's objects as last read; a file that stops parsing keeps them."""

    def load(self, changed: frozenset[Path] = frozenset()) -> Snapshot:
        objects: list[dict[str, Any]] = []
        errors: list[str] = []
        try:
            files = manifest_files([self.path])
        except ManifestError as exc:
            return Snapshot(objects=(), errors=(str(exc),), changed=changed)
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
                self._last[file] = parse_manifest_text(text, str(file))
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(f"{file}: cannot read: {exc}{self._kept(file)}")
            except ManifestError as exc:
                errors.append(f"{exc}{self._kept(file)}")
            objects += self._last.get(file, [])
        for gone in self._last.keys() - set(files):
            del self._last[gone]
        return Snapshot(objects=tuple(objects), errors=tuple(errors), changed=changed)

    def _kept(self, file: Path) -> str:
        return "; the objects it held before are kept" if file in self._last else ""

    def snapshots(self, stop: threading.Event) -> Iterator[Snapshot]:
        yield self.load()
        for changes in watchfiles.watch(
            self.path,
            stop_event=stop,
            debounce=self.debounce_ms,
            step=20,
            rust_timeout=500,
            yield_on_timeout=False,
            raise_interrupt=False,
        ):
            changed = frozenset(Path(path) for _change, path in changes)
            log.debug("changed: %s", ", ".join(sorted(map(str, changed))))
            yield self.load(changed)


class DirectoryWatcher:
    """Calls ``on_change`` from a thread of its own whenever a file under ``path``
    changes, and when ``path`` appears or goes away, until :meth:`stop`.

    For directories that are not objects but still decide the configuration (a
    NodeAgent's templates directory, kept in Git or mounted from a ConfigMap, whose
    atomic ``..data`` symlink swap counts as a change like any other).
    """

    def __init__(
        self,
        path: Path,
        on_change: Callable[[], None],
        *,
        debounce_ms: int = 50,
        poll: float = 1.0,
    ) -> None:
        self.path = path
        self.on_change = on_change
        self.debounce_ms = debounce_ms
        self.poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lbroute-watch {path}", daemon=True)

    def start(self) -> DirectoryWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        existed = self.path.is_dir()
        while not self._stop.is_set():
            exists = self.path.is_dir()
            if exists != existed:
                existed = exists
                self._changed(frozenset({self.path}))
            if not exists:
                self._stop.wait(self.poll)
                continue
            try:
                self._watch()
            except Exception:  # a watch that broke (directory removed, inotify limits)
                log.warning("watching %s failed; trying again", self.path, exc_info=True)
                self._stop.wait(self.poll)

    def _watch(self) -> None:
        """Report changes until the directory goes away or the watcher is stopped."""
        for changes in watchfiles.watch(
            self.path,
            stop_event=self._stop,
            debounce=self.debounce_ms,
            step=20,
            rust_timeout=int(self.poll * 1000),
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            if changes:
                self._changed(frozenset(Path(path) for _change, path in changes))
            if not self.path.is_dir():
                return

    def _changed(self, paths: frozenset[Path]) -> None:
        log.debug("changed: %s", ", ".join(sorted(map(str, paths))))
        try:
            self.on_change()
        except Exception:
            log.exception("handling a change in %s failed", self.path)
