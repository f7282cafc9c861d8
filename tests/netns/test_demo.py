"""``make demo`` as a user runs it: the example lab ends with its verdict, every row as
expected, and leaves nothing behind on the host.

The demo runs in-process (:func:`lbroute.demo.run_demo`) with namespaces of its own tag,
so it does not meet a demo someone runs at the same time. It takes about 20 s.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from lbroute.demo import EXPECTED, LOCAL, run_demo

ROOT = Path(__file__).resolve().parents[2]
HOST = [Path("/etc/frr"), Path("/run/frr"), Path("/var/log/frr")]


def _files(directory: Path) -> dict[str, int]:
    if not directory.is_dir():
        return {}
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def test_the_demo_ends_with_a_verdict_of_every_row_as_expected() -> None:
    tag = f"dt{os.getpid() % 100000}"
    before = [_files(d) for d in HOST]
    lines: list[str] = []
    code = run_demo(ROOT / "examples" / "lab", lines.append, tag=tag)
    said = "\n".join(lines)
    assert code == 0, said
    verdict = said[said.index("== Verdict") :]
    rows = [line.split() for line in verdict.splitlines()[2:] if line.startswith("   ") and
            not line.strip().startswith("verdict:")]  # fmt: skip
    assert {r[0] for r in rows} == {*EXPECTED, f"{LOCAL}/local"}
    by_prefix = {r[0]: " ".join(r[1:]) for r in rows}
    assert "withdrawn, as expected" in by_prefix["203.0.113.0/25"]
    assert "2001:db8:3::/64" in said.split("== Removing")[1].splitlines()[0], (
        "legacy-1 alone used the RIPng prefix too"
    )
    assert "(ETP Local: node-a alone has a ready endpoint)" in by_prefix["192.0.2.20/32"]
    assert "IS-IS: FRR on node-b speaks it" in by_prefix["203.0.113.128/25"]
    assert by_prefix["192.0.2.0/24"].startswith("default/web-1, default/web-2 bgp")
    assert by_prefix["192.0.2.20/32"].startswith("default/web-local bgp node-a as expected")
    assert "DIFFERS" not in verdict
    assert (
        verdict.splitlines()[-2]
        .strip()
        .startswith(
            "verdict: all 10 rows as expected: 7 prefixes announced with their next hops, "
            "2 withdrawn with their last Service, 1 local address held by one node"
        )
    ), verdict
    assert not {n for n in _namespaces() if n.startswith(tag)}, "namespaces left behind"
    assert [_files(d) for d in HOST] == before, "the demo touched the host's FRR files"
