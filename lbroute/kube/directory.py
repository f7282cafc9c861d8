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

After the first snapshot only the files that changed are read again, and each object
is trimmed as it is parsed to what the agent reads (:mod:`lbroute.kube.trim`), as the
Kubernetes source does. When watchfiles names only regular manifest files (an edit, a
new file, a removal, a rename: what Git and editors do), only those are looked at: a
change costs the same in a directory of 10,000 files as in one of ten. Anything else
(a directory, a symlink, a hidden path such as a ConfigMap's ``..data`` swap, a path
outside the directory, a directory holding symlinked manifests) makes the source list
the directory again and compare every file's inode, size and mtime with what it read,
and so does a quiet :data:`RESCAN_S`: inotify drops events when its queue overflows and
watchfiles passes no rescan on, and a symlink's target outside the directory changes
unseen.
:class:`DirectoryWatcher` watches any other directory.
"""

from __future__ import annotations

import logging
import os
import stat as st
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import watchfiles

from lbroute.kube.trim import trim_object
from lbroute.model.errors import ManifestError
from lbroute.model.manifests import SUFFIXES, manifest_files, path_name, read_manifest_file

log = logging.getLogger(__name__)

STEP_MS = 2
"""How long a manifest directory must be quiet after a change before the change is read:
every change waits this long at least and twice as long at most (watchfiles checks for
changes once a step and reports them when a step brings no more). It is most of what a
directory adds to a Service's way to the router: at 5 ms the OSPF rows of
bench/RESULTS.md missed their target by 1 to 10 ms. Each step is a wake-up while idle
(watchfiles checks its stop event every step), measured on a 2-core VM (2026-12-08): 1.9
to 2.3 % of a core at 2 ms, 1.1 to 1.5 % at 5 ms (0.66 % and 0.34 % on another machine)."""

WATCH_STEP_MS = 50
"""The same for :class:`DirectoryWatcher` (a NodeAgent's templates): a template change
re-renders the configuration, seconds of work where 50 ms more do not count: 0.29 % of a
core while idle instead of 1.35 % at 5 ms (the same VM)."""

RESCAN_S = 60.0
"""How often, when watchfiles names nothing, the directory is listed again and every
file's stat compared with what was read (a change found so is read and yielded)."""


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
        self._root = os.path.abspath(path)
        """``path`` as watchfiles' changes are compared with it."""
        self._files: dict[Path, _File] = {}
        """What each file held when last read, in the order the objects are given (the
        order :func:`manifest_files` lists them)."""
        self._by_absolute: dict[str, Path] = {}
        self._dirs: set[str] = set()
        """The directories (absolute) that held a manifest read: one of them gone lists
        the directory again."""
        self._plain = False
        """The last listing found no symlink at all (to a file, to a directory, dangling;
        nor was ``path`` a file), so a change to a file is seen on that file and named
        under its own path: named changes alone may be read."""
        self._missing = False
        """The last listing found ``path`` missing: the next that finds it is a change,
        whatever it holds."""
        self.reads = 0
        """Files read and parsed so far (all of them for the first snapshot, then only
        the ones that changed)."""
        self.listings = 0
        """Times the directory was listed and every file's stat compared."""
        self.version = 0
        """Counts changes of what the files hold (objects or errors, files added or
        removed)."""

    def load(self, changed: frozenset[Path] = frozenset(), at: float = 0.0) -> Snapshot:
        """The objects of every file, reading again only the files that changed (``at``:
        when the change was noticed). With ``changed`` naming only regular manifest
        files (:meth:`_named_files`), those alone are looked at; otherwise the directory
        is listed and every file's stat compared."""
        named = self._named_files(changed) if changed else None
        if named is not None:
            self._load_named(named)
        else:
            missing = self._list(changed)
            if missing:
                return Snapshot(objects=(), errors=tuple(missing), changed=changed, at=at)
        objects: list[dict[str, Any]] = []
        errors: list[str] = []
        for known in self._files.values():
            if known.error is not None:
                errors.append(known.error)
            objects += known.objects
        return Snapshot(objects=tuple(objects), errors=tuple(errors), changed=changed, at=at)

    def _list(self, changed: frozenset[Path]) -> list[str]:
        """List the directory and read every file that is new, whose stat changed or
        that ``changed`` names; what is missing."""
        self.listings += 1
        links: list[Path] = []
        files, missing = manifest_files([self.path], links=links)
        if missing:
            if not self._missing:
                self.version += 1
            self._plain, self._missing = False, True
            return missing
        if self._missing:
            self._missing = False
            self.version += 1
        named = {os.path.abspath(p) for p in changed}
        listed: dict[Path, _File] = {}
        for file in files:
            known = self._files.get(file)
            if known is None:
                known = _File(absolute=os.path.abspath(file))
                self._by_absolute[known.absolute] = file
                self.version += 1
            listed[file] = known
            stat = _stat(file)
            if stat is None or stat != known.stat or known.absolute in named:
                self._read(file, known, stat)
        for gone in self._files.keys() - listed.keys():
            del self._by_absolute[self._files[gone].absolute]
            self.version += 1
        self._files = listed
        self._plain = self.path.is_dir() and not links
        self._dirs = set()
        for absolute in self._by_absolute:
            self._remember_dirs(absolute)
        return []

    def _named_files(self, changed: frozenset[Path]) -> dict[str, tuple[Path, bool]] | None:
        """The manifest files among ``changed`` (by absolute path: the file as
        :func:`manifest_files` would name it, and whether it is there), when every path
        named is either a regular file or a file gone that cannot have been a directory
        of manifests; None when the directory must be listed instead."""
        if not self._plain:
            return None
        root = self._root
        found: dict[str, tuple[Path, bool]] = {}
        for path in changed:
            absolute = os.path.abspath(path)
            if not absolute.startswith(root + os.sep):
                return None
            parts = absolute[len(root) + 1 :].split(os.sep)
            manifest = os.path.splitext(parts[-1])[1] in SUFFIXES and not any(
                part.startswith(".") for part in parts
            )
            if absolute in self._dirs or _under_symlink(root, parts):
                return None  # a directory that held manifests (gone, or now a file), or
                # a path through a symlinked directory (watchfiles follows those)
            try:
                mode = os.lstat(absolute).st_mode
            except OSError:  # gone: a file lbroute read, or what neither matters nor can
                # be told apart (an editor's or a writer's temporary file renamed onto
                # the manifest)
                if absolute in self._by_absolute:
                    found[absolute] = (self._by_absolute[absolute], False)
                continue
            if not st.S_ISREG(mode):
                return None
            if manifest:
                found[absolute] = (Path(self.path, *parts), True)
        return found

    def _load_named(self, named: dict[str, tuple[Path, bool]]) -> None:
        """Read the files ``named`` that are there, forget those that are not."""
        order = False
        for absolute, (file, there) in named.items():
            known = self._files.get(file)
            if not there:
                if known is not None:
                    del self._files[file], self._by_absolute[absolute]
                    self.version += 1
                continue
            if known is None:
                known = self._files[file] = _File(absolute=absolute)
                self._by_absolute[absolute] = file
                self._remember_dirs(absolute)
                self.version += 1
                order = True
            self._read(file, known, _stat(file))
        if order:
            self._files = dict(sorted(self._files.items()))

    def _remember_dirs(self, absolute: str) -> None:
        """Remember the directories between the root and the file ``absolute``."""
        here = os.path.dirname(absolute)
        while len(here) > len(self._root) and here not in self._dirs:
            self._dirs.add(here)
            here = os.path.dirname(here)

    def _read(self, file: Path, known: _File, stat: tuple[int, int, int, int] | None) -> None:
        self.reads += 1
        before = (known.objects, known.error)
        self._parse(file, known, stat)
        if (known.objects, known.error) != before:
            self.version += 1

    def _parse(self, file: Path, known: _File, stat: tuple[int, int, int, int] | None) -> None:
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
        """The first snapshot, then one per change. When the directory goes away or is
        replaced (a new inode at its path), its watch ends: the directory is listed
        again (a snapshot when that changes anything: gone, its objects go with it),
        looked for every second while it is missing, and watched again once there."""
        watched = _identity(self.path)  # before each listing: one that appears after it
        yield self.load()  # is another, and ends the watch
        while not stop.is_set():
            if watched is None:
                stop.wait(1.0)
            else:
                yield from self._watch(stop, watched)
            if stop.is_set():
                return
            watched = _identity(self.path)
            snapshot = self._list_again(time.monotonic())
            if snapshot is not None:
                gone = bool(snapshot.errors) and not snapshot.objects
                log.info("%s %s", self.path, "is gone" if gone else "is another; read again")
                yield snapshot

    def _watch(self, stop: threading.Event, watched: tuple[int, int]) -> Iterator[Snapshot]:
        """A snapshot per change watchfiles reports, and per change a quiet rescan finds,
        until ``stop`` or the directory is no longer the one ``watched``."""
        listed = time.monotonic()
        for changes in watchfiles.watch(
            self.path,
            stop_event=_Until(stop, self.path, watched),
            debounce=self.debounce_ms,
            step=STEP_MS,
            rust_timeout=500,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            at = time.monotonic()
            if not changes:  # quiet: list the directory now and then
                if at - listed < RESCAN_S:
                    continue
                listed, snapshot = at, self._list_again(at)
                if snapshot is not None:
                    log.info("%s changed without being reported; read again", self.path)
                    yield snapshot
                continue
            changed = frozenset(Path(path) for _change, path in changes)
            log.debug("changed: %s", ", ".join(sorted(map(str, changed))))
            yield self.load(changed, at)
            if self._root in {os.path.abspath(path) for path in changed}:
                return  # the directory itself: gone, or another (its inode number can
                # come back at once), whose watch is not this one

    def _list_again(self, at: float) -> Snapshot | None:
        """List the directory; the snapshot when that changed what the files hold."""
        version = self.version
        snapshot = self.load(at=at)
        return snapshot if self.version != version else None


def _identity(path: Path) -> tuple[int, int] | None:
    """The directory at ``path`` (device, inode), None when there is none."""
    try:
        st_ = os.stat(path)
    except OSError:
        return None
    return (st_.st_dev, st_.st_ino) if st.S_ISDIR(st_.st_mode) else None


def _under_symlink(root: str, parts: list[str]) -> bool:
    """Whether a directory between ``root`` and the file ``parts`` names is a symlink
    (:func:`manifest_files` does not follow those)."""
    here = root
    for part in parts[:-1]:
        here = os.path.join(here, part)
        if os.path.islink(here):
            return True
    return False


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
            step=WATCH_STEP_MS,
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
    or its directory is gone, or (``watched`` given) is another directory than the one
    watched. Once the watched directory is removed, watchfiles has been seen to neither
    report it nor return at its timeout; asking here ends the watch."""

    LOOK_S = 0.1
    """How often the directory itself is looked at. watchfiles asks every step; a
    ``stat`` each 2 ms measured 2.7-3.6 % of a core while idle where a plain event took
    1.9-2.3 % (a 2-core VM); at this interval the two cannot be told apart."""

    def __init__(
        self, stop: threading.Event, path: Path, watched: tuple[int, int] | None = None
    ) -> None:
        self.stop = stop
        self.path = path
        self.watched = watched
        self._look = 0.0

    def is_set(self) -> bool:
        if self.stop.is_set():
            return True
        if (now := time.monotonic()) < self._look:
            return False
        self._look = now + self.LOOK_S
        if self.watched is None:
            return not self.path.is_dir()
        return _identity(self.path) != self.watched
