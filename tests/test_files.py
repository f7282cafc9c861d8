"""``write_atomic``: the one way lbroute replaces a file others read (router
configurations, the status document, rewritten manifests).

The new text is there whole, with the mode asked for whatever the umask (by default
0600: readable by its owner only), and with the owner asked for; no temporary file stays
behind, also when writing fails, and then the old file is untouched. A symbolic link
stays a link to the file it named. Parent directories are created unless the caller says
otherwise.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbroute.model.files import write_atomic


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_replaces_the_text_and_leaves_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "bird.conf"
    path.write_text("old\n", encoding="utf-8")
    write_atomic(path, "new ✓\n")
    assert path.read_text(encoding="utf-8") == "new ✓\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bird.conf"]


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o640, 0o755, 0o400])
@pytest.mark.usefixtures("strict_umask")
def test_mode_is_the_one_asked_for_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    new, existing = tmp_path / "new", tmp_path / "existing"
    existing.write_text("old\n", encoding="utf-8")
    existing.chmod(0o666)
    for path in (new, existing):
        write_atomic(path, "text\n", mode=mode)
        assert _mode(path) == mode, path.name


def test_default_mode_is_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_atomic(path, "{}\n")
    assert _mode(path) == 0o600


def test_owner_is_given_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "frr.conf"
    path.write_text("old\n", encoding="utf-8")
    uid, gid = (1234, 5678) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    write_atomic(path, "new\n", mode=0o640, owner=(uid, gid))
    st = path.stat()
    assert (st.st_uid, st.st_gid, _mode(path)) == (uid, gid, 0o640)


def test_without_owner_the_writer_owns_the_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_atomic(path, "{}\n")
    assert path.stat().st_uid == os.geteuid()


@pytest.mark.parametrize("relative", [True, False], ids=["relative link", "absolute link"])
def test_a_symbolic_link_stays_a_link_to_the_new_text(tmp_path: Path, relative: bool) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "frr.conf"
    target.write_text("old\n", encoding="utf-8")
    link = tmp_path / "frr.conf"
    link.symlink_to(Path("real/frr.conf") if relative else target)
    write_atomic(link, "new\n", mode=0o600)
    assert link.is_symlink()
    assert target.read_text(encoding="utf-8") == "new\n"
    assert _mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frr.conf", "real"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["frr.conf"]


def test_a_link_to_nothing_yet_gets_its_file(tmp_path: Path) -> None:
    link = tmp_path / "bird.conf"
    link.symlink_to(tmp_path / "elsewhere.conf")
    write_atomic(link, "new\n")
    assert link.is_symlink()
    assert (tmp_path / "elsewhere.conf").read_text(encoding="utf-8") == "new\n"


def test_parent_directories_are_created_unless_the_caller_says_not(tmp_path: Path) -> None:
    path = tmp_path / "run" / "lbroute" / "status.json"
    write_atomic(path, "{}\n")
    assert path.read_text(encoding="utf-8") == "{}\n"
    missing = tmp_path / "etc" / "bird.conf"
    with pytest.raises(FileNotFoundError):
        write_atomic(missing, "text\n", parents=False)
    assert not missing.parent.exists()


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "bird.conf"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "half \udc80 written\n")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bird.conf"]
