#!/usr/bin/env python3
"""Weighted ECMP (issue 16): an endpoint change to the upstream's new next-hop weight.

The lab of tests/netns/test_weighted_ecmp.py (lbroute.lab, tag ``wgb``): node-a runs
BIRD, node-b FRR, both announcing an ETP Local Service (192.0.2.20) of a ServiceGroup
with ``bgp.weightByEndpoints`` to the lab's FRR upstream, which does weighted multipath.
``ip monitor route`` on the upstream stamps every change of its route to the prefix.

Measured, per node router: the Service's EndpointSlice is rewritten so that the measured
node has 2, then 3, then 2... ready endpoints (the other node keeps 1), and each sample
is the time from the write until the upstream's kernel route carries the new weights
(the agent reads the file, computes the weight, replaces the route's window or the
address's metric; the router sends an UPDATE; the upstream installs it). Target: the
latency budget of a new Service over BGP (p99 < 500 ms, row 2.).

Floor, same run: the same weight change made by hand on the node, as the agent makes it
(``ip route replace ... window N`` in table 4242 on the BIRD node, ``ip addr change ...
metric N`` on the FRR node), to the same upstream route: the router's and BGP's share.

    .venv/bin/python bench/weight_bench.py [--quick] [--samples N] [--json PATH]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import yaml
from benchlib import (
    ROOT,
    Json,
    RouteMonitor,
    Stopped,
    command_line,
    distribution,
    log,
    machine,
    need_root,
    paused,
    stop_on_signals,
    wait_for,
    write_json,
)

from lbroute.lab import Lab
from lbroute.model.files import write_atomic
from lbroute.model.vocabulary import ROUTE_PROTO, ROUTE_TABLE_DEFAULT

sys.path.insert(0, str(ROOT))
from tests.netns.test_weighted_ecmp import CLUSTER, NODES, V4, slices

PREFIX = f"{V4}/32"
TARGET_P99 = 0.5
"""The BGP Service -> route budget (bench/run_all.py row 2.)."""


def upstream_weights(text: str, lab: Lab) -> dict[str, int]:
    return {
        lab.node_of(m.group(1)): int(m.group(2))
        for m in re.finditer(r"nexthop via (\S+) dev \S+ weight (\d+)", text)
    }


def expected(count: int) -> tuple[int, int]:
    """FRR's weights for link bandwidths ``count`` and 1: each share of 100, rounded
    down, at least 1 (as FRR computes them)."""
    total = count + 1
    return max(1, count * 100 // total), max(1, 100 // total)


def measure(lab: Lab, node: str, change: object, samples: int) -> list[float]:
    """``samples`` weight changes of ``node`` made by ``change(count)``; the seconds
    each took to reach the upstream's kernel route."""
    other = next(n for n in lab.members if n != node)
    out: list[float] = []
    assert lab.upstream is not None
    with RouteMonitor(lab.upstream.name, keep=lambda p: p == PREFIX) as monitor:
        for i in range(samples):
            count = 2 + i % 2
            want = expected(count)
            started = time.monotonic()
            change(count)  # type: ignore[operator]

            def arrived(want: tuple[int, int] = want, started: float = started) -> float | None:
                for e in monitor.snapshot():
                    if e.at < started or e.deleted:
                        continue
                    w = upstream_weights(e.text, lab)
                    if (w.get(node), w.get(other)) == want:
                        return e.at - started
                return None

            out.append(wait_for(arrived, 10, interval=0.002, what=f"weight {count} upstream"))
            time.sleep(0.05)
    return out


def bench(workdir: Path, samples: int) -> list[Json]:
    source = workdir / "manifests"
    source.mkdir(parents=True)
    (source / "cluster.yaml").write_text(CLUSTER)
    counts = {"node-a": 1, "node-b": 1}

    def write(node: str, count: int) -> None:
        counts[node] = count
        write_atomic(source / "endpoints.yaml", yaml.safe_dump_all(slices(counts)))

    write("node-a", 1)
    lab = Lab(workdir=workdir / "lab", nodes=list(NODES), tag="wgb")
    results = []
    try:
        lab.start()
        for node in lab.members:
            lab.start_agent(node, source)
        wait_for(lambda: upstream_weights(lab.upstream.ip("route", "show", V4), lab)  # type: ignore[union-attr]
                 == {"node-a": 50, "node-b": 50}, 90, what="both nodes weighted")  # fmt: skip
        for node in lab.members:
            spec = lab.members[node].spec
            log(f"{spec.router} node: endpoint changes")
            figure = measure(lab, node, lambda c, n=node: write(n, c), samples)
            write(node, 1)
            wait_for(lambda: upstream_weights(lab.upstream.ip("route", "show", V4), lab)  # type: ignore[union-attr]
                     == {"node-a": 50, "node-b": 50}, 30, what="back to 1:1")  # fmt: skip
            ns = lab.members[node].ns
            if spec.router == "bird":

                def by_hand(c: int, ns=ns) -> None:  # type: ignore[no-untyped-def]
                    ns.ip("route", "replace", PREFIX, "dev", "kube-lb0", "table",
                          str(ROUTE_TABLE_DEFAULT), "proto", str(ROUTE_PROTO), "scope", "link",
                          "window", str(c))  # fmt: skip
            else:

                def by_hand(c: int, ns=ns) -> None:  # type: ignore[no-untyped-def]
                    ns.ip("addr", "change", PREFIX, "dev", "kube-lb0", "metric", str(c))

            log(f"{spec.router} node: the floor, by hand")
            agent = lab.members[node].agent
            with paused(agent.pid if agent is not None else None):
                floor = measure(lab, node, by_hand, samples)
                by_hand(1)  # as the agent has it (one endpoint), before it runs again
            by_hand(1)
            write(node, 1)
            results.append({
                "router": spec.router,
                "endpoint_change": distribution(figure),
                "floor": distribution(floor),
                "target_p99": TARGET_P99,
            })  # fmt: skip
            log(f"{spec.router}: p50 {results[-1]['endpoint_change']['p50'] * 1000:.0f} ms, "
                f"floor p50 {results[-1]['floor']['p50'] * 1000:.0f} ms")  # fmt: skip
    finally:
        for node in list(lab.members):
            lab.stop_agent(node)
        lab.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20 samples per node")
    parser.add_argument("--samples", type=int, default=100, help="changes per node router")
    parser.add_argument("--json", type=Path, help="write the results here (default: stdout)")
    args = parser.parse_args()
    need_root()
    stop_on_signals()
    samples = 20 if args.quick else args.samples
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="lbroute-weight-bench-") as tmp:
            results = bench(Path(tmp), samples)
    except Stopped:
        return 130
    write_json(args.json, {
        "command": command_line(),
        "machine": machine(),
        "samples": samples,
        "results": results,
        "wall_seconds": time.monotonic() - started,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
