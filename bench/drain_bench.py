#!/usr/bin/env python3
"""Draining a node (issue 17): pings lost, and how soon traffic leaves the node.

The lab of tests/netns/test_drain.py (lbroute.lab, tag ``drb``): node-a and node-b
announce one ETP Cluster prefix to an FRR upstream that installs both as ECMP next hops
(and gives GRACEFUL_SHUTDOWN routes local preference 0, its standard policy). A client
namespace behind the upstream pings the Service address every 10 ms from 16 source
addresses (the upstream hashes flows on addresses, so some go to each node). Each run:

- ``lbroute drain`` on node-a; **moved**: the time from just before the command to the
  upstream's kernel route to the prefix no longer going through node-a (``ip monitor
  route`` on the upstream, stamped as read), while node-a still announces it
  de-preferred; then the withdrawal ``drainSeconds`` later (state Drained);
- ``lbroute undrain``; **back**: the time until the upstream's route goes through both
  nodes again;
- **pings lost**: every flow sends a fixed count that spans the whole run and is waited
  for to the end (no echo in flight is cut off), so a loss is a loss: sent minus
  received, summed over the 16 flows.

Cases: BGP and OSPF with a BIRD node-a and with an FRR node-a (node-b runs the other
router), IS-IS and RIP with FRR node-a. One lab per case, reused by its runs.

    .venv/bin/python bench/drain_bench.py [--quick] [--runs N] [--cases bgp-bird,...] [--json PATH]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchlib import (
    ROOT,
    Json,
    RouteMonitor,
    command_line,
    log,
    machine,
    need_root,
    stop_on_signals,
    summary,
    wait_for,
    write_json,
)

from lbroute.lab import Lab, Netns, NodeSpec, run

sys.path.insert(0, str(ROOT))
from tests.netns.test_drain import (
    ADDRESS,
    CLIENTS,
    FAILOVER,
    FAILOVER_POOL,
    MANIFESTS,
    PEERS,
    POLICY,
    PREFIX,
)

DRAIN_SECONDS = 10
"""Longer than an apply plus FRR's route-map delay timer (5 s), so that the traffic
moves before the withdrawal with either router."""
NODE_A = "10.0.0.11"
PING_SECONDS = 30
"""Each flow's fixed span: settle, drain, Drained, undrain, back, settle."""

CASES = {
    # name: (protocol, node-a's router, node-b's router)
    "bgp-bird": ("bgp", "bird", "frr"),
    "bgp-frr": ("bgp", "frr", "bird"),
    "ospf-bird": ("ospf", "bird", "frr"),
    "ospf-frr": ("ospf", "frr", "bird"),
    "isis-frr": ("isis", "frr", "frr"),
    "rip-frr": ("rip", "frr", "bird"),
}


@contextmanager
def drain_lab(workdir: Path, case: str) -> Iterator[tuple[Lab, Netns, str]]:
    protocol, router_a, router_b = CASES[case]
    source = workdir / "manifests"
    source.mkdir(parents=True)
    (source / "lab.yaml").write_text(
        MANIFESTS.format(
            seconds=DRAIN_SECONDS,
            prefix=PREFIX,
            address=ADDRESS,
            protocol=protocol,
            peer=PEERS[protocol],
            policy=POLICY[protocol],
            failover_pool=FAILOVER_POOL,  # its Service has no endpoints: not announced
            failover=FAILOVER,
        )
    )
    lab = Lab(
        workdir=workdir / "lab",
        nodes=[
            NodeSpec(name="node-a", router=router_a, v4=NODE_A, v6="fd00::11"),
            NodeSpec(name="node-b", router=router_b, v4="10.0.0.12", v6="fd00::12"),
        ],
        tag="drb",
    )
    client = Netns("drbcl")
    try:
        lab.start()
        assert lab.upstream is not None
        client.create()
        lab.upstream.ip("link", "add", "cl0", "type", "veth", "peer", "name", "eth0",
                        "netns", client.name)  # fmt: skip
        lab.upstream.ip("addr", "add", "10.9.0.1/24", "dev", "cl0")
        lab.upstream.ip("link", "set", "cl0", "up")
        for address in CLIENTS:
            client.ip("addr", "add", f"{address}/24", "dev", "eth0")
        client.ip("link", "set", "eth0", "up")
        client.ip("route", "add", "default", "via", "10.9.0.1")
        for member in lab.members.values():
            member.ns.ip("route", "add", "10.9.0.0/24", "via", "10.0.0.1")
        for name in ("node-a", "node-b"):
            lab.start_agent(name, source)
        yield lab, client, protocol
    finally:
        lab.stop()
        client.delete()


def ecmp(lab: Lab, protocol: str) -> tuple[str, ...]:
    route = lab.route(PREFIX)
    return lab.via(route) if route is not None and route.proto == protocol else ()


def drain_state(lab: Lab) -> str:
    return str(lab.status("node-a").get("drain", {}).get("state", "Serving"))


def command(lab: Lab, verb: str) -> None:
    status_file = lab.members["node-a"].status_file
    run(sys.executable, "-m", "lbroute", verb, "--status-file", str(status_file))


def start_pings(client: Netns) -> list[subprocess.Popen[str]]:
    count = str(int(PING_SECONDS / 0.01))
    ping = ["ip", "netns", "exec", client.name, "ping", "-n", "-q", "-i", "0.01", "-W", "1"]
    return [
        subprocess.Popen(
            [*ping, "-c", count, "-I", source, ADDRESS],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for source in CLIENTS
    ]


def ping_counts(procs: list[subprocess.Popen[str]]) -> tuple[int, int]:
    """(sent, received) over every flow, each waited for to its end."""
    sent = received = 0
    for p in procs:
        text, _ = p.communicate(timeout=PING_SECONDS + 30)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
        if m is None:
            raise RuntimeError(f"ping said: {text[-500:]}")
        sent, received = sent + int(m.group(1)), received + int(m.group(2))
    return sent, received


def one_run(lab: Lab, client: Netns, protocol: str) -> Json:
    assert lab.upstream is not None
    wait_for(lambda: ecmp(lab, protocol) == ("node-a", "node-b"), 90, what="ECMP on both")
    with RouteMonitor(lab.upstream.name, keep=lambda p: p == PREFIX) as monitor:
        procs = start_pings(client)
        try:
            time.sleep(2)
            started = time.monotonic()
            command(lab, "drain")
            wait_for(lambda: ecmp(lab, protocol) == ("node-b",), DRAIN_SECONDS, what="node-a left")
            state_when_moved = drain_state(lab)
            wait_for(lambda: drain_state(lab) == "Drained", DRAIN_SECONDS + 10, what="Drained")
            withdrawn = time.monotonic() - started
            time.sleep(1)
            undrained = time.monotonic()
            command(lab, "undrain")
            wait_for(lambda: ecmp(lab, protocol) == ("node-a", "node-b"), 30, what="node-a back")
        finally:
            sent, received = ping_counts(procs)
        events = monitor.snapshot()
    moved = next(
        (e.at - started for e in events if e.at >= started and not e.deleted
         and NODE_A not in e.gateways),
        None,
    )  # fmt: skip
    back = next(
        (e.at - undrained for e in events if e.at >= undrained and not e.deleted
         and NODE_A in e.gateways),
        None,
    )  # fmt: skip
    return {
        "moved_seconds": moved,
        "back_seconds": back,
        "withdrawn_seconds": withdrawn,
        "moved_before_withdrawal": state_when_moved == "Draining",
        "sent": sent,
        "lost": sent - received,
    }


def bench_case(workdir: Path, case: str, runs: int) -> Json:
    done: list[Json] = []
    with drain_lab(workdir / case, case) as (lab, client, protocol):
        for i in range(runs):
            r = one_run(lab, client, protocol)
            done.append(r)
            log(
                f"{case} run {i + 1}/{runs}: moved {r['moved_seconds']}, back "
                f"{r['back_seconds']}, {r['lost']} of {r['sent']} pings lost"
            )
    protocol, router_a, router_b = CASES[case]
    return {
        "case": case,
        "protocol": protocol,
        "node_a": router_a,
        "node_b": router_b,
        "runs": done,
        "moved": summary([r["moved_seconds"] for r in done if r["moved_seconds"] is not None]),
        "back": summary([r["back_seconds"] for r in done if r["back_seconds"] is not None]),
        "lost": summary([float(r["lost"]) for r in done]),
        "lost_max": max(r["lost"] for r in done),
        "sent": sum(r["sent"] for r in done),
        "moved_before_withdrawal": all(r["moved_before_withdrawal"] for r in done),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one run of each case")
    parser.add_argument("--runs", type=int, default=3, help="runs of each case")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--json", type=Path, help="write the results here (default: stdout)")
    args = parser.parse_args()
    cases = args.cases.split(",")
    unknown = sorted(set(cases) - CASES.keys())
    if unknown:
        parser.error(f"--cases: no case {', '.join(unknown)}; valid: {', '.join(CASES)}")
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, not {args.runs}")
    if args.quick:
        args.runs = 1
    need_root()
    stop_on_signals()
    out: Json = {
        "benchmark": "drain",
        "command": command_line(),
        "machine": machine(),
        "drain_seconds": DRAIN_SECONDS,
        "flows": len(CLIENTS),
        "interval_ms": 10,
    }
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="lbroute-bench-drain-"))
    try:
        out["cases"] = [bench_case(workdir, case, args.runs) for case in cases]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out["seconds"] = time.monotonic() - started
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
