"""The drain benchmark's rows in bench/RESULTS.md (bench/run_all.py, ``drain_rows``):
a lost ping or traffic that left only with the withdrawal misses the target."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
run_all = pytest.importorskip("run_all")

MACHINE = {
    "cores": 2,
    "cpu": "test",
    "memory_gib": 1,
    "kernel": "6",
    "bird": "2",
    "frr": "8",
    "iproute2": "6",
    "python": "3.11",
}


Case = dict[str, Any]


def _s(value: float) -> dict[str, float | int]:
    return {"median": value, "min": value, "max": value, "n": 3}


def _case(protocol: str, node_a: str, moved: float, lost: int = 0, before: bool = True) -> Case:
    return {
        "case": f"{protocol}-{node_a}",
        "protocol": protocol,
        "node_a": node_a,
        "node_b": "frr" if node_a == "bird" else "bird",
        "moved": _s(moved),
        "back": _s(1.0),
        "lost": _s(float(lost)),
        "lost_max": lost,
        "sent": 144000,
        "moved_before_withdrawal": before,
    }


def _rows(*cases: Case) -> list[str]:
    data = {"command": "drain", "drain_seconds": 10, "flows": 16, "interval_ms": 10}
    text = run_all.report({"drain": data | {"cases": list(cases)}}, MACHINE, False, 60.0, "now")
    return [line for line in text.splitlines() if line.startswith("| 10.")]


def test_drain_rows_give_losses_and_when_traffic_left() -> None:
    bird, frr = _rows(_case("bgp", "bird", 0.5), _case("ospf", "frr", 0.7))
    assert bird.startswith("| 10. Drain, BGP, node-a BIRD | pings lost: 0 of 144000 (16 flows")
    assert "traffic off node-a after 500 ms [500 ms-500 ms] (3 runs)" in bird
    assert "withdrawal (drainSeconds): 10 s | 0.05x |" in bird
    assert bird.endswith("| yes |")
    assert frr.startswith("| 10. Drain, OSPF, node-a FRR |") and frr.endswith("| yes |")


def test_a_lost_ping_or_a_late_move_misses() -> None:
    lost, late = _rows(_case("bgp", "bird", 0.5, lost=3), _case("rip", "frr", 9.0, before=False))
    assert "pings lost: 3 of 144000" in lost and lost.endswith("| **no** |")
    assert late.endswith("| **no** |")
