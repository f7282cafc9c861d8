"""Writing a file so that whoever reads it sees the old text or the new, never half.

Every file lbroute writes for someone else to read goes through :func:`write_atomic`:
the router configurations the daemons load (nodeagent.routers), the status document
``lbroute status`` prints (nodeagent.status), the manifests ``lbroute allocate``
rewrites (allocator.manifests). The text goes to a temporary file in the target's own
directory (a rename is atomic only within one file system), is flushed to disk, gets
its mode (and, when asked, its owner) before anyone can see it, and is renamed over the
target; the directory is then flushed too, so after a crash the name points at one
complete file. A file is readable by its owner only unless the caller says who else
may read it: router configurations hold passwords, and the status document quotes the
lines around them (redacted). A path that is a symbolic link stays one: the file it
points to is replaced, as an editor would, so a configuration linked from elsewhere
keeps its link.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(
    path: Path,
    text: str,
    *,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
    parents: bool = True,
) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically and durably.

    ``mode`` (default 0600) is set as given, whatever the umask; ``owner`` is a (uid,
    gid) to give the file, otherwise it belongs to whoever writes it. With ``parents``
    the directories leading to it are created; without, a missing directory is an error.
    Raises OSError (and UnicodeEncodeError) with ``path`` untouched and no temporary
    file left behind.
    """
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if owner is not None:  # before the mode: a change of owner clears set-id bits
                os.fchown(f.fileno(), *owner)
            os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the text and the inode, mode and owner included
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    """Flush the directory itself, so the rename survives a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
