"""The agent notices template changes in a NodeAgent's templates directory (which the
source does not watch) through a fingerprint it takes every check: any write, new file
or removed file changes it; an untouched directory keeps it."""

from __future__ import annotations

import os
from pathlib import Path

from nodeagent.agent import templates_fingerprint


def test_fingerprint_changes_with_every_kind_of_edit(tmp_path: Path) -> None:
    assert templates_fingerprint(None) == ()
    assert templates_fingerprint(tmp_path / "missing") == ()
    (tmp_path / "bird").mkdir()
    bgp = tmp_path / "bird" / "bgp.j2"
    bgp.write_text("a")
    first = templates_fingerprint(tmp_path)
    assert first and templates_fingerprint(tmp_path) == first

    bgp.write_text("ab")
    second = templates_fingerprint(tmp_path)
    assert second != first

    st = bgp.stat()
    bgp.write_text("ba")  # same size: the modification time tells
    os.utime(bgp, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    third = templates_fingerprint(tmp_path)
    assert third != second

    (tmp_path / "ospf.j2").write_text("x")
    fourth = templates_fingerprint(tmp_path)
    assert fourth != third
    (tmp_path / "ospf.j2").unlink()
    assert templates_fingerprint(tmp_path) == third

    (tmp_path / "notes.txt").write_text("not a template")
    assert templates_fingerprint(tmp_path) == third
