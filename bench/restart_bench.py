#!/usr/bin/env python3
"""Restarting a node's router (issue 17): routes withdrawn, and time until fresh again.

The lab of tests/netns/test_graceful_restart.py (lbroute.lab, tag ``rsb``): node-a
announces one ETP Cluster prefix over BGP to an FRR upstream (a graceful restart helper,
FRR's default); a client namespace behind the upstream pings the Service address every
10 ms. Each run restarts node-a's router as its DaemonSet sidecar is restarted, the
agent left running (it applies its configuration again when it sees the new daemon):

- BIRD: the real ``docker/bird/run-bird`` (paths set by environment) gets SIGTERM, and a
  new one starts;
- FRR: the real ``docker/frr/run-frr`` (watchfrr and the daemons), in a mount namespace
  of its own where the node's directories are FRR's fixed paths, gets SIGTERM, and a new
  one starts.

Measured: **withdrawn**, the upstream's kernel routes to the prefix deleted during the
run (``ip monitor route`` on the upstream; target 0); **fresh**, the time from SIGTERM
until the upstream's BGP path is no longer stale (with graceful restart) or is back
(without); **pings lost** (sent minus received, each run's ping waited for to its end).
Cases: BIRD and FRR, each with the Peer's ``gracefulRestart`` (the figure) and without
(the control: the route is withdrawn). One lab per case, reused by its runs.

    .venv/bin/python bench/restart_bench.py [--quick] [--runs N] [--cases bird-gr,...] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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

from lbroute.lab import Lab, Netns, NodeSpec
from lbroute.lab.daemons import kill

sys.path.insert(0, str(ROOT))
from tests.netns.test_graceful_restart import ADDRESS, MANIFESTS, PREFIX, Sidecar

PING_SECONDS = 20
"""Each run's ping span: settle, stop, start, fresh again (a few seconds), settle."""
CASES = {
    # name: (node-a's router, gracefulRestart)
    "bird-gr": ("bird", True),
    "frr-gr": ("frr", True),
    "bird-nogr": ("bird", False),
    "frr-nogr": ("frr", False),
}


@contextlib.contextmanager
def restart_lab(workdir: Path, case: str) -> Iterator[tuple[Lab, Netns, Sidecar]]:
    router, graceful = CASES[case]
    source = workdir / "manifests"
    source.mkdir(parents=True)
    (source / "lab.yaml").write_text(
        MANIFESTS.format(prefix=PREFIX, address=ADDRESS, graceful=str(graceful).lower())
    )
    lab = Lab(
        workdir=workdir / "lab",
        nodes=[NodeSpec(name="node-a", router=router, v4="10.0.0.11", v6="fd00::11")],
        tag="rsb",
    )
    client = Netns("rsbcl")
    sidecar: Sidecar | None = None
    try:
        lab.start()
        assert lab.upstream is not None
        member = lab.members["node-a"]
        sidecar = Sidecar(lab)
        if member.bird is not None:  # the lab's router gives way to the sidecar's script
            member.bird.stop()
        if member.frr is not None:
            for pid in member.frr.pids:
                kill(pid)
            member.frr.pids.clear()
        sidecar.start()
        client.create()
        lab.upstream.ip("link", "add", "cl0", "type", "veth", "peer", "name", "eth0",
                        "netns", client.name)  # fmt: skip
        lab.upstream.ip("addr", "add", "10.9.0.1/24", "dev", "cl0")
        lab.upstream.ip("link", "set", "cl0", "up")
        client.ip("addr", "add", "10.9.0.10/24", "dev", "eth0")
        client.ip("link", "set", "eth0", "up")
        client.ip("route", "add", "default", "via", "10.9.0.1")
        member.ns.ip("route", "add", "10.9.0.0/24", "via", "10.0.0.1")
        lab.start_agent("node-a", source)
        yield lab, client, sidecar
    finally:
        lab.stop_agent("node-a")
        if sidecar is not None:
            with contextlib.suppress(Exception):
                sidecar.stop(timeout=30)
        lab.stop()
        client.delete()


def upstream_path(lab: Lab) -> Json | None:
    assert lab.upstream_frr is not None
    out = lab.upstream_frr.vtysh(f"show bgp ipv4 unicast {PREFIX} json", check=False).stdout
    paths = json.loads(out or "{}").get("paths", [])
    return dict(paths[0]) if paths else None


def fresh(lab: Lab) -> bool:
    path = upstream_path(lab)
    return path is not None and not path.get("stale", False)


def one_run(lab: Lab, client: Netns, sidecar: Sidecar) -> Json:
    assert lab.upstream is not None
    wait_for(lambda: lab.route(PREFIX) is not None and fresh(lab), 60, what="route announced")
    with RouteMonitor(lab.upstream.name, keep=lambda p: p == PREFIX) as monitor:
        ping = subprocess.Popen(
            ["ip", "netns", "exec", client.name, "ping", "-n", "-q", "-i", "0.01", "-W", "1",
             "-c", str(int(PING_SECONDS / 0.01)), ADDRESS],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        try:
            time.sleep(2)
            started = time.monotonic()
            sidecar.stop()
            sidecar.start()
            wait_for(lambda: fresh(lab), 60, what="fresh again")
            back = time.monotonic() - started
        finally:
            text, _ = ping.communicate(timeout=PING_SECONDS + 30)
        events = monitor.snapshot()
    m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    if m is None:
        raise RuntimeError(f"ping said: {text[-500:]}")
    return {
        "withdrawn": sum(1 for e in events if e.deleted and e.at >= started),
        "fresh_seconds": back,
        "sent": int(m.group(1)),
        "lost": int(m.group(1)) - int(m.group(2)),
    }


def bench_case(workdir: Path, case: str, runs: int) -> Json:
    done: list[Json] = []
    with restart_lab(workdir / case, case) as (lab, client, sidecar):
        for i in range(runs):
            r = one_run(lab, client, sidecar)
            done.append(r)
            log(
                f"{case} run {i + 1}/{runs}: {r['withdrawn']} withdrawn, fresh after "
                f"{r['fresh_seconds']:.2f}s, {r['lost']} of {r['sent']} pings lost"
            )
    router, graceful = CASES[case]
    return {
        "case": case,
        "router": router,
        "graceful_restart": graceful,
        "runs": done,
        "withdrawn_max": max(r["withdrawn"] for r in done),
        "fresh": summary([r["fresh_seconds"] for r in done]),
        "lost": summary([float(r["lost"]) for r in done]),
        "lost_max": max(r["lost"] for r in done),
        "sent": sum(r["sent"] for r in done),
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
        "benchmark": "restart",
        "command": command_line(),
        "machine": machine(),
        "interval_ms": 10,
    }
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="lbroute-bench-restart-"))
    try:
        out["cases"] = [bench_case(workdir, case, args.runs) for case in cases]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out["seconds"] = time.monotonic() - started
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
