"""The watcher of a templates directory (lbroute.kube.directory.DirectoryWatcher), on real
files: every kind of change a Git checkout or a kubelet makes is reported, and a
directory that is missing at first or goes away is picked up when it (re)appears."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbroute.kube.directory import DirectoryWatcher


class Calls:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()

    def wait(self, timeout: float = 5.0) -> None:
        assert self.event.wait(timeout), "no change reported"
        self.event.clear()


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def watch(tmp_path: Path, calls: Calls) -> Iterator[Path]:
    directory = tmp_path / "templates"
    directory.mkdir()
    watcher = DirectoryWatcher(directory, calls, poll=0.1).start()
    try:
        yield directory
    finally:
        watcher.stop()


def settle_watcher() -> None:
    threading.Event().wait(0.3)  # inotify registration is not synchronous


def test_a_new_changed_or_removed_file_is_reported(watch: Path, calls: Calls) -> None:
    settle_watcher()
    (watch / "bgp.j2").write_text("one\n")
    calls.wait()
    (watch / "bgp.j2").write_text("two\n")
    calls.wait()
    (watch / "bgp.j2").unlink()
    calls.wait()


def test_a_file_in_a_per_router_subdirectory_is_reported(watch: Path, calls: Calls) -> None:
    (watch / "frr").mkdir()
    settle_watcher()
    calls.event.clear()
    (watch / "frr" / "bgp.j2").write_text("x\n")
    calls.wait()


def test_a_configmap_style_symlink_swap_is_reported(watch: Path, calls: Calls) -> None:
    (watch / "..v1").mkdir()
    (watch / "..v1" / "bgp.j2").write_text("one\n")
    (watch / "..data").symlink_to("..v1")
    (watch / "bgp.j2").symlink_to("..data/bgp.j2")
    settle_watcher()
    calls.event.clear()
    (watch / "..v2").mkdir()
    (watch / "..v2" / "bgp.j2").write_text("two\n")
    calls.event.clear()
    (watch / "..tmp").symlink_to("..v2")
    (watch / "..tmp").rename(watch / "..data")
    calls.wait()
    assert (watch / "bgp.j2").read_text() == "two\n"


def test_a_directory_that_appears_later_is_reported_and_then_watched(
    tmp_path: Path, calls: Calls
) -> None:
    directory = tmp_path / "later"
    watcher = DirectoryWatcher(directory, calls, poll=0.1).start()
    try:
        settle_watcher()
        assert calls.count == 0
        directory.mkdir()
        calls.wait()
        settle_watcher()
        calls.event.clear()
        (directory / "bgp.j2").write_text("x\n")
        calls.wait()
    finally:
        watcher.stop()


def test_a_directory_that_goes_away_and_comes_back_is_reported(watch: Path, calls: Calls) -> None:
    settle_watcher()
    shutil.rmtree(watch)
    calls.wait()
    watch.mkdir()
    calls.wait()
    settle_watcher()
    calls.event.clear()
    (watch / "bgp.j2").write_text("x\n")
    calls.wait()


def test_stop_ends_the_thread(tmp_path: Path, calls: Calls) -> None:
    watcher = DirectoryWatcher(tmp_path, calls, poll=0.1).start()
    watcher.stop()
    assert not watcher._thread.is_alive()
