"""Objects from a directory of manifests: the same objects as the API holds, as files.

A :class:`Source` yields a complete :class:`Snapshot` of the objects its user needs
at once, then one per change: the agent's Services, EndpointSlices, Nodes, Secrets and
lbroute's own kinds, from a directory or from the Kubernetes API
(:class:`~lbroute.kube.reflector.KubernetesSource`), which the agent neither knows nor
cares about; the allocator's Services and ServiceGroups, from the API.

:class:`DirectorySource` reads a directory of the same YAML objects the API would
hold and watches it with watchfiles. A file that cannot be read or parsed is reported;
the objects it held when it was last read still count (a typo or a half-written file
must not withdraw every Service in it), and so do the other files. A file that never
parsed counts for nothing. A file that is empty (zero bytes) after it held objects keeps
them too, reported the same way: between the truncate and the write of a file written
in place the watcher can see it empty, and dropping its objects then would withdraw and
announce them again a moment later. To delete the objects, remove the file (or leave a
comment in it); writing to a temporary file and renaming it, as ConfigMap volumes and
Git checkouts do, is never seen half-written. A file cut short after one of its
documents still loses the ones it no longer holds: it is indistinguishable from an
edit that removed them. An object cut in the middle is invalid, and keeps its last
valid version (:mod:`lbroute.model.lastgood`).

After the first snapshot only the files that changed are read again (named by
watchfiles, or with a different inode, size or mtime: a ConfigMap's symlink swap), and
each object is trimmed as it is parsed to what the agent reads
(:mod:`lbroute.kube.trim`), as the Kubernetes source does.
:class:`DirectoryWatcher` watches any other directory.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import watchfiles

from lbroute.kube.trim import trim_object
from lbroute.model.errors import ManifestError
from lbroute.model.manifests import manifest_files, path_name, read_manifest_file

log = logging.getLogger(__name__)

STEP_MS = 5
"""How long a directory must be quiet after a change before the change is read: every
change waits at least this long (at 20 ms it was most of a Service's way to the router
from a manifest). Waiting less costs wake-ups while idle: 0.34% of a core instead of
0.13% (watchfiles checks its stop event every step)."""


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    objects: tuple[dict[str, Any], ...]
    errors: tuple[str, ...] = ()
    """Files that could not be read, with the reason."""
    changed: frozenset[Path] = field(default_factory=frozenset)
    """Paths that changed since the previous snapshot (empty for the first)."""
    at: float = 0.0
    """When the source learned of the first change it carries (``time.monotonic()``,
    the same clock in every process of the machine); 0: not known (the first)."""


class Source(Protocol):
    def snapshots(self, stop: threading.Event) -> Iterator[Snapshot]:
        """Yield the current objects at once, then again after every change, until
        ``stop`` is set."""
        ...


@dataclass
class _File:
    """One manifest file as last read."""

    stat: tuple[int, int, int, int] | None = None
    """(device, inode, size, mtime in ns) when it was read: a file whose stat is the
    same and that watchfiles did not name is not read again."""
    objects: list[dict[str, Any]] = field(default_factory=list)
    """Its objects when it last parsed (trimmed); a file that stops parsing keeps them."""
    error: str | None = None
    """Why it could not be read or parsed, reported with every snapshot until fixed."""
    absolute: str = ""
    """Its absolute path, as changes name it."""


class DirectorySource:
    def __init__(self, path: Path, *, debounce_ms: int = 50) -> None:
        self.path = path
        self.debounce_ms = debounce_ms
        self._files: dict[Path, _File] = {}
        self.reads = 0
        """Files read and parsed so far (all of them for the first snapshot, then only
        the ones that changed)."""

    def load(self, changed: frozenset[Path] = frozenset(), at: float = 0.0) -> Snapshot:
        """The objects of every file, reading again only the files that changed (``at``:
        when the change was noticed)."""
        files, missing = manifest_files([self.path])
        if missing:
            return Snapshot(objects=(), errors=tuple(missing), changed=changed, at=at)
        named = {os.path.abspath(p) for p in changed}
        objects: list[dict[str, Any]] = []
        errors: list[str] = []
        for file in files:
            known = self._files.get(file)
            if known is None:
                known = self._files[file] = _File(absolute=os.path.abspath(file))
            stat = _stat(file)
            if stat is None or stat != known.stat or known.absolute in named:
                self._read(file, known, stat)
            if known.error is not None:
                errors.append(known.error)
            objects += known.objects
        for gone in self._files.keys() - set(files):
            del self._files[gone]
        return Snapshot(objects=tuple(objects), errors=tuple(errors), changed=changed, at=at)

    def _read(self, file: Path, known: _File, stat: tuple[int, int, int, int] | None) -> None:
        self.reads += 1
        kept = "; the objects it held before are kept" if known.stat is not None else ""
        if stat is not None and stat[2] == 0 and known.objects:
            known.error = (
                f"{path_name(file)}: is empty{kept} until it has content again or is removed"
            )
            return
        try:
            known.objects = read_manifest_file(file, each=trim_object)
        except ManifestError as exc:
            known.error = f"{exc}{kept}"
            return
        known.stat, known.error = stat, None

    def snapshots(self, stop: threading.Event) -> Iterator[Snapshot]:
        yield self.load()
        for changes in watchfiles.watch(
            self.path,
            stop_event=stop,
            debounce=self.debounce_ms,
            step=STEP_MS,
            rust_timeout=500,
            yield_on_timeout=False,
            raise_interrupt=False,
        ):
            at = time.monotonic()
            changed = frozenset(Path(path) for _change, path in changes)
            log.debug("changed: %s", ", ".join(sorted(map(str, changed))))
            yield self.load(changed, at)


def _stat(file: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(file)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


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
            except (OSError, RuntimeError):  # the directory removed, inotify limits, or
                # watchfiles' own failure (WatchfilesRustInternalError): watch again
                log.warning("watching %s failed; trying again", self.path, exc_info=True)
                self._stop.wait(self.poll)

    def _watch(self) -> None:
        """Report changes until the directory goes away or the watcher is stopped."""
        for changes in watchfiles.watch(
            self.path,
            stop_event=_Until(self._stop, self.path),
            debounce=self.debounce_ms,
            step=STEP_MS,
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
        except Exception:  # the caller's code: this thread must outlive whatever it
            # raises, or no later change would be reported
            log.exception("handling a change in %s failed", self.path)


class _Until:
    """The stop event watchfiles polls (every ``step``): set when the watcher is stopped
    or its directory is gone. Once the watched directory is removed, watchfiles has been
    seen to neither report it nor return at its timeout; asking here ends the watch."""

    def __init__(self, stop: threading.Event, path: Path) -> None:
        self.stop = stop
        self.path = path

    def is_set(self) -> bool:
        return self.stop.is_set() or not self.path.is_dir()
