"""The directory source (lbroute.kube.directory.DirectorySource) on real files: after the first
snapshot only changed files are read again, a change watchfiles names as a regular file
is read without listing the directory (and gives what a fresh listing would), anything
else (a directory, a symlink, a hidden path) lists it again, and a change nobody reports
is found by the quiet rescan; a broken file (or one emptied while it is
written) keeps its objects and its error until fixed, and objects are kept trimmed to
what the agent reads. Hostile files (an alias bomb, binary junk, deep nesting, duplicate
keys, a list for a document) are errors of their own that cost nothing else."""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import yaml

import lbroute.kube.directory as directory
from lbroute.kube.directory import DirectorySource
from lbroute.model.endpoints import ready_nodes
from lbroute.model.errors import ObjectRef


def service(name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "web", "uid": f"uid-{name}"},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "lbroute.io/lbroute",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": name},
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }


def write(path: Path, *objects: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump_all(objects))


def names(objects: tuple[dict[str, Any], ...]) -> list[str]:
    return [o["metadata"]["name"] for o in objects]


def test_only_files_that_changed_are_read_again(tmp_path: Path) -> None:
    for i in range(5):
        write(tmp_path / f"svc-{i}.yaml", service(f"svc-{i}", f"192.0.2.{i + 1}"))
    source = DirectorySource(tmp_path)
    first = source.load()
    assert names(first.objects) == [f"svc-{i}" for i in range(5)]
    assert source.reads == 5

    again = source.load()
    assert source.reads == 5, "nothing changed: nothing is read"
    assert again.objects == first.objects

    write(tmp_path / "svc-3.yaml", service("svc-3", "192.0.2.99"))
    changed = source.load(frozenset({tmp_path / "svc-3.yaml"}))
    assert source.reads == 6
    ips = [o["status"]["loadBalancer"]["ingress"][0]["ip"] for o in changed.objects]
    assert ips == ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.99", "192.0.2.5"]


def test_a_named_file_is_read_without_listing_the_directory(tmp_path: Path) -> None:
    for i in range(50):
        write(tmp_path / f"svc-{i:02d}.yaml", service(f"svc-{i:02d}", f"192.0.2.{i + 1}"))
    source = DirectorySource(tmp_path)
    source.load()
    assert (source.listings, source.reads) == (1, 50)

    write(tmp_path / "svc-07.yaml", service("svc-07", "192.0.2.200"))
    write(tmp_path / "svc-07b.yaml", service("svc-07b", "192.0.2.201"))  # new, in between
    (tmp_path / "svc-30.yaml").unlink()
    changed = frozenset(tmp_path / f"svc-{n}.yaml" for n in ("07", "07b", "30"))
    snapshot = source.load(changed)
    assert (source.listings, source.reads) == (1, 52), "the two files alone, no listing"
    assert snapshot.objects == DirectorySource(tmp_path).load().objects
    assert names(snapshot.objects)[6:9] == ["svc-06", "svc-07", "svc-07b"]
    assert "svc-30" not in names(snapshot.objects)


def test_what_is_not_a_regular_file_lists_the_directory_again(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service("a", "192.0.2.1"))
    source = DirectorySource(tmp_path)
    source.load()
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "b.yaml", service("b", "192.0.2.2"))
    assert names(source.load(frozenset({tmp_path / "sub"})).objects) == ["a", "b"]
    assert source.listings == 2, "a directory named: listed"

    (tmp_path / "sub" / "b.yaml").rename(tmp_path / "b.yaml")
    (tmp_path / "sub").rmdir()  # a directory gone that held manifests
    assert names(source.load(frozenset({tmp_path / "sub", tmp_path / "b.yaml"})).objects) == [
        "a",
        "b",
    ]
    assert source.listings == 3

    (tmp_path / "..v1").mkdir()
    write(tmp_path / "..v1" / "c.yaml", service("c", "192.0.2.3"))
    (tmp_path / "c.yaml").symlink_to("..v1/c.yaml")
    assert names(source.load(frozenset({tmp_path / "c.yaml"})).objects) == ["a", "b", "c"]
    assert source.listings == 4, "a symlink named: listed"
    write(tmp_path / "a.yaml", service("a", "192.0.2.9"))
    source.load(frozenset({tmp_path / "a.yaml"}))
    assert source.listings == 5, "symlinked manifests: every change lists the directory"

    outside = tmp_path.parent / f"{tmp_path.name}-outside.yaml"
    write(outside, service("x", "192.0.2.4"))
    try:
        source.load(frozenset({outside}))
        assert source.listings == 6, "a path outside the directory: listed"
    finally:
        outside.unlink()


class Listing(DirectorySource):
    """The oracle: the same source, listing the directory on every change."""

    def _named_files(self, changed: frozenset[Path]) -> None:
        return None


def test_named_changes_give_what_listing_the_directory_gives(tmp_path: Path) -> None:
    """400 random steps: edits in place or written to a hidden file renamed onto the
    manifest, broken and emptied files, removals and renames, in the top directory and
    in subdirectories made, removed or turned into files, symlinks to files and
    directories, dangling ones. Each is named as watchfiles names it (a directory moved
    away: the directory alone); symlinks only in the second half. The source gives the
    same objects and errors as one that lists the directory on every change, fed the
    same names, and in the first half lists it for directories only."""
    rng = random.Random(20)
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    aside = tmp_path / "aside"
    source, oracle = DirectorySource(root), Listing(root)
    source.load(), oracle.load()
    for step in range(400):
        dirs = [root, *(d for d in root.rglob("*") if d.is_dir() and not d.is_symlink())]
        files = [f for d in dirs for f in d.iterdir() if f.is_file() or f.is_symlink()]
        where = rng.choice(dirs)
        target = where / f"s{rng.randrange(12):02d}.{rng.choice(['yaml', 'yml', 'txt'])}"
        action = rng.choice(
            ["write", "write", "rename-onto", "broken", "empty", "remove", "move",
             "mkdir", "rmdir", "dir-to-file", *(["link", "link-dir"] if step >= 200 else [])]
        )  # fmt: skip
        if step == 200:  # the first half had no symlink: mostly named reads
            assert source.listings < oracle.listings / 3, (source.listings, oracle.listings)
        content = yaml.safe_dump(service(f"n{step}", f"192.0.2.{step % 250 + 1}"))
        changed: set[Path] = set()
        if target.is_dir() or (target.is_symlink() and target.is_dir()):
            action = "write-elsewhere"
        if action in ("write", "broken", "empty", "write-elsewhere"):
            target = root / f"w{step}.yaml" if action == "write-elsewhere" else target
            text = {"broken": "kind: [unclosed\n", "empty": ""}.get(action, content)
            target.write_text(text)
            changed = {target}
        elif action == "rename-onto":
            temporary = target.with_name(f".{target.name}.tmp")
            temporary.write_text(content)
            temporary.rename(target)
            changed = {temporary, target}
        elif action in ("remove", "move") and files:
            victim = rng.choice(files)
            if action == "remove":
                victim.unlink()
                changed = {victim}
            elif not target.exists() and not target.is_symlink():
                victim.rename(target)
                changed = {victim, target}
        elif action == "mkdir":
            new = where / f"d{step}"
            new.mkdir()
            (new / "in.yaml").write_text(content)
            changed = {new}
        elif action in ("rmdir", "dir-to-file") and len(dirs) > 1:
            victim = rng.choice(dirs[1:])
            victim.rename(aside)  # watchfiles names the directory alone
            shutil.rmtree(aside)
            if action == "dir-to-file":
                victim.write_text(content)
            changed = {victim}
        elif action == "link" and files and not target.exists() and not target.is_symlink():
            target.symlink_to(rng.choice(files))
            changed = {target}
        elif action == "link-dir" and not target.exists() and not target.is_symlink():
            target.symlink_to(rng.choice(dirs))
            changed = {target}
        if not changed:
            continue
        got, want = source.load(frozenset(changed)), oracle.load(frozenset(changed))
        assert (got.objects, got.errors) == (want.objects, want.errors), f"step {step}: {action}"


def test_a_directory_turned_into_a_file_takes_its_manifests_with_it(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "a.yaml", service("a", "192.0.2.1"))
    source = DirectorySource(tmp_path)
    assert names(source.load().objects) == ["a"]
    (tmp_path / "d").rename(tmp_path.parent / f"{tmp_path.name}-aside")
    shutil.rmtree(tmp_path.parent / f"{tmp_path.name}-aside")
    (tmp_path / "d").write_text("not a manifest name")
    assert names(source.load(frozenset({tmp_path / "d"})).objects) == []


def test_a_path_through_a_symlinked_directory_lists_the_directory(tmp_path: Path) -> None:
    """watchfiles follows a symlinked directory and can name its files under the link
    alone; a hidden one is not among the symlinks a listing counts."""
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "a.yaml", service("a", "192.0.2.1"))
    (tmp_path / ".ls").symlink_to("sub")
    source = DirectorySource(tmp_path)
    source.load()
    write(tmp_path / "sub" / "a.yaml", service("a", "192.0.2.2"))
    got = source.load(frozenset({tmp_path / ".ls" / "a.yaml"}))
    assert got.objects[0]["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.2"
    assert source.listings == 2


def test_a_dangling_symlink_keeps_the_source_listing(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service("a", "192.0.2.1"))
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    source = DirectorySource(tmp_path)
    assert names(source.load().objects) == ["a", "a"]
    (tmp_path / "a.yaml").unlink()
    assert names(source.load(frozenset({tmp_path / "a.yaml"})).objects) == []
    write(tmp_path / "a.yaml", service("a", "192.0.2.2"))
    assert names(source.load(frozenset({tmp_path / "a.yaml"})).objects) == ["a", "a"]
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")  # skipped, not a failed listing
    assert names(source.load(frozenset({tmp_path / "loop.yaml"})).objects) == ["a", "a"]


def test_a_directory_gone_and_back_is_seen_and_watched_again(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    write(root / "a.yaml", service("a", "192.0.2.1"))
    source = DirectorySource(root, debounce_ms=20)
    stop = threading.Event()
    got: list[tuple[list[str], bool]] = []

    def follow() -> None:
        for snapshot in source.snapshots(stop):
            got.append((names(snapshot.objects), bool(snapshot.errors)))

    def seen(what: tuple[list[str], bool]) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if got and got[-1] == what:
                return True
            time.sleep(0.05)
        return False

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        assert seen((["a"], False))
        shutil.rmtree(root)
        assert seen(([], True)), got
        root.mkdir()
        write(root / "a.yaml", service("a", "192.0.2.1"))
        assert seen((["a"], False)), "the same content back is a change"
        time.sleep(0.3)
        write(root / "b.yaml", service("b", "192.0.2.2"))
        assert seen((["a", "b"], False)), "the new directory is watched"
    finally:
        stop.set()
        thread.join(timeout=5)


def test_a_directory_swapped_under_its_path_is_watched_again(tmp_path: Path) -> None:
    """The source's path a symlink a deploy tool points at another version: the watch
    on the old directory ends and the new one is read and watched."""
    for version in ("v1", "v2"):
        (tmp_path / version).mkdir()
        write(tmp_path / version / "a.yaml", service("a", f"192.0.2.{version[1]}"))
    (tmp_path / "current").symlink_to("v1")
    source = DirectorySource(tmp_path / "current", debounce_ms=20)
    stop = threading.Event()
    got: list[str] = []

    def follow() -> None:
        for snapshot in source.snapshots(stop):
            got.append(snapshot.objects[0]["status"]["loadBalancer"]["ingress"][0]["ip"])

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)
        (tmp_path / "next").symlink_to("v2")
        (tmp_path / "next").replace(tmp_path / "current")
        deadline = time.monotonic() + 5
        while got[-1:] != ["192.0.2.2"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got[-1:] == ["192.0.2.2"], got
        write(tmp_path / "v2" / "a.yaml", service("a", "192.0.2.22"))
        deadline = time.monotonic() + 5
        while got[-1:] != ["192.0.2.22"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got[-1:] == ["192.0.2.22"], ("the new directory is watched", got)
    finally:
        stop.set()
        thread.join(timeout=5)


def test_a_change_nobody_reports_is_found_by_the_quiet_rescan(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A manifest symlinked to a file outside the directory: inotify on the directory
    does not see the target change; the rescan does."""
    monkeypatch.setattr(directory, "RESCAN_S", 0.3)
    (tmp_path / "dir").mkdir()
    target = tmp_path / "svc.yaml"
    write(target, service("svc", "192.0.2.1"))
    (tmp_path / "dir" / "svc.yaml").symlink_to(target)
    source = DirectorySource(tmp_path / "dir", debounce_ms=20)
    stop = threading.Event()
    got: list[str] = []
    seen = threading.Event()

    def follow() -> None:
        for snapshot in source.snapshots(stop):
            got.append(snapshot.objects[0]["status"]["loadBalancer"]["ingress"][0]["ip"])
            if len(got) == 2:
                seen.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        time.sleep(0.1)
        write(target, service("svc", "192.0.2.77"))
        assert seen.wait(5), "the change was not found"
        assert got == ["192.0.2.1", "192.0.2.77"]
        time.sleep(1.2)
        assert len(got) == 2, "a rescan that finds nothing yields nothing"
    finally:
        stop.set()
        thread.join(timeout=5)


def test_a_rewrite_that_keeps_size_and_mtime_is_read_when_watchfiles_names_it(
    tmp_path: Path,
) -> None:
    file = tmp_path / "svc.yaml"
    write(file, service("svc", "192.0.2.1"))
    source = DirectorySource(tmp_path)
    source.load()
    before = os.stat(file)
    write(file, service("svc", "192.0.2.2"))  # same length
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(file).st_size == before.st_size

    unnamed = source.load()
    assert unnamed.objects[0]["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.1"
    named = source.load(frozenset({Path(os.path.relpath(file))}))
    assert named.objects[0]["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.2"


def test_a_changed_file_not_named_is_found_by_its_stat(tmp_path: Path) -> None:
    file = tmp_path / "svc.yaml"
    write(file, service("svc", "192.0.2.1"))
    source = DirectorySource(tmp_path)
    source.load()
    write(file, service("svc", "192.0.2.222"))
    assert source.load().objects[0]["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.222"


def test_a_configmap_symlink_swap_is_read_without_being_named(tmp_path: Path) -> None:
    (tmp_path / "..v1").mkdir()
    write(tmp_path / "..v1" / "svc.yaml", service("svc", "192.0.2.1"))
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "svc.yaml").symlink_to("..data/svc.yaml")
    source = DirectorySource(tmp_path)
    assert [o["metadata"]["name"] for o in source.load().objects if "uid" in o["metadata"]]
    (tmp_path / "..v2").mkdir()
    write(tmp_path / "..v2" / "svc.yaml", service("svc", "192.0.2.7"))
    (tmp_path / "..tmp").symlink_to("..v2")
    (tmp_path / "..tmp").rename(tmp_path / "..data")
    ips = {
        o["status"]["loadBalancer"]["ingress"][0]["ip"]
        for o in source.load().objects
        if o["metadata"]["name"] == "svc"
    }
    assert "192.0.2.7" in ips and "192.0.2.1" not in ips


def test_a_broken_file_keeps_its_objects_and_its_error_until_fixed(tmp_path: Path) -> None:
    good = tmp_path / "a.yaml"
    write(good, service("a", "192.0.2.1"))
    never = tmp_path / "never.yaml"
    never.write_text("kind: Service\nmetadata: {name: [\n")
    source = DirectorySource(tmp_path)
    first = source.load()
    assert names(first.objects) == ["a"], "a file that never parsed counts for nothing"
    assert len(first.errors) == 1 and "never.yaml:" in first.errors[0]
    assert "kept" not in first.errors[0]

    good.write_text("kind: Service\nmetadata: {name: [\n")
    for _ in range(2):  # reported with every snapshot, not only the first after the change
        broken = source.load()
        assert names(broken.objects) == ["a"]
        assert any(
            "a.yaml:" in e and "the objects it held before are kept" in e for e in broken.errors
        )
        assert len(broken.errors) == 2

    write(good, service("a", "192.0.2.9"))
    never.unlink()
    fixed = source.load()
    assert fixed.errors == ()
    assert fixed.objects[0]["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.9"


def test_an_emptied_file_keeps_its_objects_until_it_has_content_or_is_removed(
    tmp_path: Path,
) -> None:
    """A file written in place is seen empty between its truncate and its write."""
    good = tmp_path / "a.yaml"
    write(good, service("a", "192.0.2.1"))
    write(tmp_path / "b.yaml", service("b", "192.0.2.2"))
    (tmp_path / "never.yaml").write_text("")
    source = DirectorySource(tmp_path)
    assert source.load().errors == (), "a file empty from the start is nothing to report"

    good.write_text("")
    for _ in range(2):
        emptied = source.load()
        assert names(emptied.objects) == ["a", "b"]
        assert emptied.errors == (
            f"{good}: is empty; the objects it held before are kept until it has content "
            "again or is removed",
        )
    write(good, service("a", "192.0.2.9"))
    written = source.load()
    assert written.errors == ()
    assert written.objects[0]["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.9"

    good.write_text("# nothing here any more\n")
    assert names(source.load().objects) == ["b"], "a file left with a comment is an edit"
    write(good, service("a", "192.0.2.1"))
    assert names(source.load().objects) == ["a", "b"]
    good.write_text("")
    assert names(source.load().objects) == ["a", "b"]
    good.unlink()
    assert names(source.load().objects) == ["b"], "removed: its objects go"


def test_a_removed_file_takes_its_objects_with_it(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service("a", "192.0.2.1"))
    write(tmp_path / "b.yaml", service("b", "192.0.2.2"))
    source = DirectorySource(tmp_path)
    assert names(source.load().objects) == ["a", "b"]
    (tmp_path / "a.yaml").unlink()
    assert names(source.load().objects) == ["b"]


def test_objects_are_kept_trimmed_to_what_the_agent_reads(tmp_path: Path) -> None:
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-abcde",
            "namespace": "web",
            "labels": {"kubernetes.io/service-name": "web", "app": "web"},
        },
        "addressType": "IPv4",
        "ports": [{"port": 8080}],
        "endpoints": [
            {
                "addresses": [f"10.1.{i // 250}.{i % 250}"],
                "conditions": {"ready": i % 7 != 0, "serving": True},
                "nodeName": f"node-{i % 3}",
                "targetRef": {"kind": "Pod", "name": f"web-{i}"},
            }
            for i in range(1000)
        ],
    }
    group = {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "ServiceGroup",
        "metadata": {"name": "g", "namespace": "lbroute-system"},
        "spec": {"pools": [{"cidr": "192.0.2.0/24"}], "anything": {"kept": True}},
    }
    write(tmp_path / "all.yaml", service("web", "192.0.2.1"), slice_, group)
    objects = DirectorySource(tmp_path).load().objects
    svc, kept_slice, kept_group = objects
    assert "ports" not in svc["spec"] and "selector" not in svc["spec"]
    assert svc["metadata"]["uid"] == "uid-web", "the reporter finds Services by uid"
    assert len(kept_slice["endpoints"]) == 6, "one entry per (node, ready)"
    assert ready_nodes([kept_slice]) == ready_nodes([slice_])
    assert ready_nodes([kept_slice])[
        ObjectRef(kind="Service", namespace="web", name="web")
    ] == frozenset({"node-0", "node-1", "node-2"})
    assert kept_group == group, "lbroute's own kinds are kept whole"


def test_malformed_core_objects_are_trimmed_without_failing(tmp_path: Path) -> None:
    (tmp_path / "odd.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: just-a-string\nspec: [1]\nstatus: 3\n"
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {}\n"
        "endpoints: [7, {nodeName: n1, conditions: oops}]\n"
        "---\napiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: [x]}\nstatus: {}\n"
    )
    snapshot = DirectorySource(tmp_path).load()
    assert snapshot.errors == ()
    kinds = [o["kind"] for o in snapshot.objects]
    assert kinds == ["Service", "EndpointSlice", "Node"]
    assert snapshot.objects[1]["endpoints"] == [{"nodeName": "n1", "conditions": {"ready": True}}]


def test_the_watched_source_yields_a_change(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service("a", "192.0.2.1"))
    source = DirectorySource(tmp_path, debounce_ms=20)
    stop = threading.Event()
    got: list[list[str]] = []
    seen = threading.Event()

    def follow() -> None:
        for snapshot in source.snapshots(stop):
            got.append(names(snapshot.objects))
            if len(got) == 2:
                seen.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        threading.Event().wait(0.3)  # inotify registration is not synchronous
        write(tmp_path / "b.yaml", service("b", "192.0.2.2"))
        assert seen.wait(5), "the new file was not picked up"
        assert got[:2] == [["a"], ["a", "b"]]
        assert source.reads == 2, "the unchanged file was not read again"
    finally:
        stop.set()
        thread.join(timeout=5)


def test_hostile_and_broken_files_are_reported_and_cost_nothing_else(tmp_path: Path) -> None:
    laughs = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)
    ]
    bomb = "kind: Secret\napiVersion: v1\nmetadata: {name: s, namespace: lbroute}\n"
    bomb += "\n".join(laughs) + "\nstringData: {p: *a9}\n"
    write(tmp_path / "a.yaml", service("a", "192.0.2.1"))
    write(tmp_path / "b.yaml", service("b", "192.0.2.2"))
    (tmp_path / "bomb.yaml").write_text(bomb)
    (tmp_path / "junk.yaml").write_bytes(b"\x80\x81 not text")
    (tmp_path / "deep.yaml").write_text("kind: Node\nspec: " + "[" * 5000 + "]" * 5000)
    source = DirectorySource(tmp_path)
    tracemalloc.start()
    try:
        first = source.load()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak} bytes"
    assert names(first.objects) == ["a", "b"]
    bombed, deep, junk = sorted(first.errors)
    assert bombed.startswith(f"{tmp_path / 'bomb.yaml'}:1: refused: its aliases expand it ")
    assert bombed.endswith("(excessive aliasing, which the Kubernetes API server refuses too)")
    assert deep == f"{tmp_path / 'deep.yaml'}:2: not valid YAML: exceeded maximum nesting depth"
    assert junk == f"{tmp_path / 'junk.yaml'}:1: not UTF-8 text (byte 0x80 at offset 0)"

    (tmp_path / "b.yaml").write_text(bomb)  # a good file turned hostile keeps its objects
    again = source.load()
    assert names(again.objects) == ["a", "b"]
    assert f"{tmp_path / 'b.yaml'}:1: refused: " in "\n".join(again.errors)
    assert "the objects it held before are kept" in "\n".join(again.errors)


def test_a_duplicate_key_or_a_list_document_is_an_error_not_a_silent_change(
    tmp_path: Path,
) -> None:
    write(tmp_path / "a.yaml", service("a", "192.0.2.1"))
    source = DirectorySource(tmp_path)
    assert names(source.load().objects) == ["a"]
    text = yaml.safe_dump(service("a", "192.0.2.1"))
    (tmp_path / "a.yaml").write_text(text + "kind: Node\n")
    duplicated = source.load()
    assert names(duplicated.objects) == ["a"], "kept, not replaced by the last key's reading"
    assert "not valid YAML: duplicate key 'kind'" in duplicated.errors[0]
    (tmp_path / "l.yaml").write_text("- " + text.replace("\n", "\n  "))
    listed = source.load()
    assert any("l.yaml:1: the document is a list, not an object" in e for e in listed.errors)
