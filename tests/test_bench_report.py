"""The benchmark report: a missed target says by how much and why."""

from __future__ import annotations

import sys
from pathlib import Path

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


def _runs(median: float) -> dict[str, float | int]:
    return {"median": median, "min": median, "max": median, "n": 5}


def _kubelb(pass_seconds: float) -> dict[str, object]:
    return {
        "command": ".venv/bin/python bench/kubelb_bench.py",
        "results": [
            {
                "addresses": 1000,
                "floor_ip_batch": _runs(0.0165),
                "reconcile": _runs(0.0175),
                "pass": _runs(pass_seconds),
                "desired_state": _runs(0.0128),
                "ratio_reconcile": 0.0175 / 0.0165,
                "ratio_pass": pass_seconds / 0.0165,
                "target_ratio": 1.5,
            }
        ],
    }


def test_missed_target_gives_ratio_floor_and_reason() -> None:
    text = run_all.report({"kubelb": _kubelb(0.0302)}, MACHINE, False, 60.0, "now")
    missed = text.split("## Targets missed", 1)[1].split("## Notes", 1)[0]
    assert "desired_state + reconcile" in missed
    assert "1.83x the floor (`ip -batch`: 16.5 ms" in missed
    assert "of which desired_state 12.8 ms" in missed
    assert "Why (1.):" in missed
    assert "None." not in missed


def test_met_targets_say_none_and_give_no_reason() -> None:
    text = run_all.report({"kubelb": _kubelb(0.0200)}, MACHINE, False, 60.0, "now")
    missed = text.split("## Targets missed", 1)[1].split("## Notes", 1)[0]
    assert missed.strip() == "None."
