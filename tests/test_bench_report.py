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


def _scenario(name: str, seconds: float, lost: int, one: int = 3) -> dict[str, object]:
    entry: dict[str, object] = {
        "scenario": name,
        "seconds": {"n": 3, "p50": seconds, "p90": seconds, "p99": seconds, "max": seconds},
        "lost_pings": {"n": 3, "median": lost, "min": 0, "max": lost},
        "one_responder": one,
        "runs": 3,
    }
    if name == "graceful":
        entry |= {"target_seconds": 1.0, "target_lost": 1}
    elif name != "floor":
        entry |= {"target_seconds": 3.0}
    return entry


def _local(graceful_lost: int = 0, killed_one: int = 3) -> dict[str, object]:
    return {
        "command": ".venv/bin/python bench/local_bench.py",
        "lease": {"duration": 2.0, "renew": 0.5, "address_lifetime": 1},
        "scenarios": [
            _scenario("floor", 0.015, 0),
            _scenario("graceful", 0.05, graceful_lost),
            _scenario("killed", 2.0, 10, one=killed_one),
            _scenario("frozen", 2.1, 16),
        ],
    }


def _summary(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| 9.")]


def test_local_rows_give_each_handover_its_floor_ratio_and_bound() -> None:
    text = run_all.report({"local": _local()}, MACHINE, False, 60.0, "now")
    graceful, killed, frozen = _summary(text)
    assert graceful.startswith("| 9.1. Local address, graceful handover")
    assert "p50 50.0 ms, p99 50.0 ms, max 50.0 ms (n=3)" in graceful
    assert "by hand (`ip addr` + `arping -U`): p50 15.0 ms" in graceful
    assert "p50 3.33x" in graceful
    assert "< 1.00 s, <= 1 lost ping | yes |" in graceful
    assert "agent killed" in killed and "pings lost at 100 ms: median 10, max 10" in killed
    assert "< 3.00 s (duration 2 s + renew 0.5 s + 0.5 s) | yes |" in killed
    assert "holder frozen" in frozen and frozen.endswith("| yes |")
    missed = text.split("## Targets missed", 1)[1].split("## Notes", 1)[0]
    assert missed.strip() == "None."


def test_local_rows_miss_on_lost_pings_or_a_second_responder() -> None:
    text = run_all.report(
        {"local": _local(graceful_lost=2, killed_one=2)}, MACHINE, False, 60.0, "now"
    )
    graceful, killed, frozen = _summary(text)
    assert graceful.endswith("| **no** |")
    assert "one ARP responder in 2 of 3" in killed and killed.endswith("| **no** |")
    assert frozen.endswith("| yes |")


def test_merge_replaces_only_the_benchmarks_run_again() -> None:
    saved = {
        "machine": MACHINE,
        "quick": False,
        "seconds": 1000.0,
        "finished": "then",
        "results": {
            "kubelb": _kubelb(0.02) | {"wall_seconds": 100.0},
            "local": {"scenarios": [], "wall_seconds": 200.0},
        },
    }
    elsewhere = MACHINE | {"cpu": "another"}
    new = {"local": _local() | {"wall_seconds": 300.0, "machine": elsewhere}}
    now = {"machine": elsewhere, "quick": False, "seconds": 300.0, "finished": "now"}
    document, results = run_all.merge(saved, now, new)
    assert list(results) == ["kubelb", "local"]
    assert results["kubelb"] is saved["results"]["kubelb"]  # type: ignore[index]
    assert results["local"] is new["local"]
    assert document["seconds"] == 1100.0
    assert document["finished"] == "then" and document["merged"] == {"local": "now"}
    assert document["machine"] == MACHINE  # the suite's; the local run names its own
    text = run_all.report(
        results, document["machine"], False, document["seconds"], "then", document["merged"]
    )
    assert "- Machine: 2 cores (test)" in text
    assert "- Machine of the local run merged in: 2 cores (another)" in text
    assert "then, 18.3 minutes in all; run again since and merged in" in text
    assert "local at now" in text
    assert len(_summary(text)) == 3 and "| 1. kube-lb0" in text


def test_an_apply_row_says_which_daemons_spent_the_time() -> None:
    point = {
        "router": "frr",
        "groups": 1000,
        "peers": 500,
        "config_lines": 46614,
        "cold_load": 99.4,
        "cold_cpu": {"bgpd": 24.8, "bfdd": 13.3, "ospfd": 13.3, "zebra": 8.9, "ripd": 8.5},
        "driver": _runs(18.2),
        "floor": _runs(250.0),
        "ratio": 18.2 / 250.0,
        "change_cpu": {"bgpd": 12.4, "ospf6d": 2.1, "zebra": 0.02},
    }
    (row,) = run_all.apply_rows({"results": [point]})
    figure = row[1]
    assert "first apply 99.40 s" in figure
    first = "bgpd 24.8 s, bfdd 13.3 s, ospfd 13.3 s, the others 17.4 s"
    assert f"daemons' CPU in the first apply: {first}" in figure
    assert figure.endswith("in a change: bgpd 12.4 s, ospf6d 2.1 s")


def _latency(p50: float, p99: float, source: str = "dir") -> dict[str, object]:
    dist = {"n": 200, "p50": p50, "p99": p99}
    floor = {"n": 200, "p50": 0.062, "p99": 0.066}
    split = {"matched": 200, **{k: {"median": 0.001} for k in run_all.ISSUE20_PHASES}}
    return {
        "source": source,
        "latency": [
            {
                "row": "BGP via BIRD",
                "protocol": "bgp",
                "announce": dist,
                "withdraw": dist,
                "floor": {"announce": floor, "withdraw": floor},
                "missing_announce": 0,
                "missing_withdraw": 0,
                "target_p99": 0.5,
                "breakdown": split,
            }
        ],
    }


def test_latency_rows_say_their_source_split_and_issue_20s_target() -> None:
    near = run_all.latency_rows(_latency(0.075, 0.090), "announce", "2")[0]
    assert near[0] == "2. BGP via BIRD, from a manifest directory"
    assert "median split: notification 1.0 ms, reading 1.0 ms" in near[1]
    assert near[4].startswith("p50 <= floor + 20 ms, p99 <= 1.5x floor")
    assert near[5] == "yes"
    far = run_all.latency_rows(_latency(0.096, 0.150, "api"), "announce", "2.1")[0]
    assert far[0] == "2.1. BGP via BIRD, from the API"
    assert far[5] == "**no**", "p50 33 ms over the floor: within 500 ms, not issue 20's"


def _render_point(router: str, groups: int, seconds: float) -> dict[str, object]:
    parse = _runs(0.05)
    return {
        "router": router,
        "groups": groups,
        "peers": 500,
        "seconds": {"total": _runs(seconds), "parse": parse},
        "total_over_parse": seconds / 0.05,
        "parse_runs": 3,
        "config_lines": groups * 40,
        "config_bytes": groups * 1200,
    }


def test_render_rows_give_each_scale_point_its_size_once() -> None:
    """Issue 20: lines and bytes per scale point; the 1,000-group point, the one with a
    target, is not repeated among the reported ones."""
    main = [_render_point("frr", 1000, 1.2)]
    scale = [_render_point("frr", 10, 0.08), _render_point("frr", 1000, 1.2)]
    data = {"main": main, "scale": scale, "runs": 3, "target_seconds": 1.0}
    rows = run_all.render_rows(data)
    assert [r[0] for r in rows] == [
        "0. Render, 1,000 groups / 500 peers, FRR",
        "0.1 Render, 10 groups / 500 peers, FRR",
    ]
    assert "40,000 lines, 1.20 MB" in rows[0][1] and rows[0][4:] == ("< 1.00 s", "**no**")
    assert "400 lines, 0.01 MB" in rows[1][1] and rows[1][4:] == ("reported", "n/a")


def _selections(
    workload: str, selections: int, changes: list[float], first: float
) -> dict[str, object]:
    return {
        "workload": workload,
        "groups": 1000,
        "peers": 500,
        "selections": selections,
        "config_lines": 48000,
        "config_bytes": 1_800_000,
        "route_map_entries": 6000,
        "first_apply_s": first,
        "first_apply_cpu_s": {"bgpd": first * 0.8},
        "changes_s": changes,
    }


def test_the_selections_row_compares_with_the_benchmarks_selections_and_says_why() -> None:
    worst = _selections("worst", 475, [9.4, 9.5, 9.3], 19.0)
    data: dict[str, object] = {
        "targets_s": {"first_apply": 20.0, "change": 5.0},
        "results": [_selections("bench", 18, [3.0, 2.9, 3.1], 10.0), worst],
    }
    (row,) = run_all.selections_rows(data)
    assert row[0] == "4.1 FRR apply, 1,000 groups / 500 peers, 475 distinct outbound selections"
    assert "changes 9.40 s, 9.50 s, 9.30 s; first apply 19.00 s" in row[1]
    assert row[2].startswith("18 selections (row 4's workload): changes 3.00 s")
    assert row[3] == "3.13x" and row[5] == "**no**"
    report = run_all.report({"selections": data}, MACHINE, False, 1.0, "now", None)
    assert "Why (4.): Row 4.1: FRR 8.4 validates" in report
    worst["changes_s"] = [4.0, 4.1, 4.2]
    assert run_all.selections_rows(data)[0][5] == "yes"
