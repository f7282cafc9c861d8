#!/usr/bin/env python3
"""FRR with many distinct Peer selections: the first apply and changes of the product's
configuration at 1,000 ServiceGroups and 500 Peers, through the agent's driver.

The render benchmark's objects (``bench/render_bench.py``), either as they are
("bench": 17 distinct outbound route-maps, what ``apply_bench.py`` row 4 applies) or
with every BGP Peer selecting its own three teams ("worst": 425, one per BGP neighbor), are
rendered for FRR; the driver applies the file once onto FRR daemons that run nothing (a
first apply, as in ``bench/apply_bench.py``) in a throw-away namespace, then, with
``--changes N``, N changes of the first group's communities, each timed. bgpd's CPU
seconds are reported with the first apply. Before issue 20's outbound shape
(renderer/view/bgp_frr.py) the worst case's first apply had not finished after 300 s;
the shapes tried on the way are in bench/README.md (the experiment itself is in git
history, bada19e).

    sudo .venv/bin/python bench/frr_selections.py WORKLOAD... [--changes 3] [--budget S]
        [--groups 1000 --peers 500] [--json FILE]

Exits 1 when the generated objects do not load, the view reports an error, the change
does not reach the configuration or the driver fails; 3 with ``--fail-over-target``
when the first apply is over 20 s or a change over 5 s (issue 20's targets).
"""

from __future__ import annotations

import argparse
import itertools
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from apply_bench import Node
from benchlib import Json, command_line, log, machine, need_root, stop_on_signals, write_json
from render_bench import NODE, _team, generate

from lbroute.model.api import Router, load
from lbroute.model.errors import Severity
from renderer import build_view, builtin_template_set, render_view

FIRST_TARGET, CHANGE_TARGET = 20.0, 5.0


def objects(
    worst: bool, community: int | None = None, groups: int = 1000, peers: int = 500
) -> list[dict[str, Any]]:
    objs = generate(groups, peers, Router.FRR)
    if community is not None:  # the first group's communities (svc-00000 has some)
        group = next(o for o in objs if o["kind"] == "ServiceGroup")
        group["spec"]["bgp"]["communities"] = [f"64512:{community}"]
    if worst:
        combos = list(itertools.combinations(range(20), 3))
        for o in objs:
            if o["kind"] == "Peer" and "bgp" in o["spec"]:
                j = int(o["metadata"]["name"].split("-")[1])
                teams = sorted({_team(t) for t in combos[(j * 37) % len(combos)]})
                expr = {"key": "team", "operator": "In", "values": teams}
                o["spec"]["serviceGroupSelector"] = {"matchExpressions": [expr]}
    return objs


def rendered(
    worst: bool, community: int | None = None, groups: int = 1000, peers: int = 500
) -> str:
    model = load(objects(worst, community, groups, peers))
    if model.errors:
        raise SystemExit(f"generated objects do not load: {model.errors[0]}")
    view = build_view(model, Router.FRR, NODE, hostname=socket.gethostname())
    errors = [p for p in view.problems if p.severity is Severity.ERROR]
    if errors:
        raise SystemExit(f"the view reports: {errors[0]}")
    return render_view(view, builtin_template_set(Router.FRR))


def measure(workload: str, args: argparse.Namespace, tmp: Path) -> Json:
    """One workload: its size, the driver's first apply and ``args.changes`` changes."""
    worst = workload == "worst"
    text = rendered(worst, None, args.groups, args.peers)
    others = [rendered(worst, value, args.groups, args.peers) for value in (901, 902)]
    if others[0] == others[1]:
        raise SystemExit("the first group's communities do not reach the configuration")
    found: Json = {
        "workload": workload,
        "groups": args.groups,
        "peers": args.peers,
        "selections": len(set(re.findall(r"^route-map (lbr-bgp-out-\S+) ", text, re.M))),
        "config_lines": text.count("\n"),
        "config_bytes": len(text),
        "route_map_entries": len(re.findall(r"^route-map ", text, re.M)),
    }
    log(f"{workload}: {found}")
    node = Node(Router.FRR, tmp, timeout=args.budget)
    try:
        first = node.first(text)
        if first is None:
            raise SystemExit(f"{workload}: the first apply failed")
        found["first_apply_s"] = first
        found["first_apply_cpu_s"] = {k: v for k, v in node.cpu().items() if v >= 0.05}
        log(f"  first apply {first:.1f} s; CPU s: {found['first_apply_cpu_s']}")
        found["changes_s"] = [node.apply(others[i % 2]) for i in range(args.changes)]
        log(f"  changes: {', '.join(f'{t:.2f}' for t in found['changes_s'])} s")
    finally:
        node.stop()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", nargs="+", choices=["bench", "worst"])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--peers", type=int, default=500)
    parser.add_argument("--budget", type=float, default=600)
    parser.add_argument("--changes", type=int, default=0,
                        help="then change the first group's communities this many times, "
                        "each through the driver, and time each")  # fmt: skip
    parser.add_argument("--fail-over-target", action="store_true")
    parser.add_argument("--json", type=Path, help="write the results here (default: stdout)")
    args = parser.parse_args()
    need_root()
    stop_on_signals()
    started = time.monotonic()
    results = []
    for workload in args.workload:
        with tempfile.TemporaryDirectory(prefix="lbroute-selections-") as tmp:
            Path(tmp).chmod(0o755)  # FRR's daemons (user frr) reach their sockets in it
            results.append(measure(workload, args, Path(tmp)))
    write_json(
        args.json,
        {
            "benchmark": "selections",
            "command": command_line(),
            "machine": machine(),
            "targets_s": {"first_apply": FIRST_TARGET, "change": CHANGE_TARGET},
            "results": results,
            "seconds": time.monotonic() - started,
        },
    )
    over = any(
        r["first_apply_s"] > FIRST_TARGET or any(t > CHANGE_TARGET for t in r["changes_s"])
        for r in results
    )
    return 3 if over and args.fail_over_target else 0


if __name__ == "__main__":
    raise SystemExit(main())
