"""The demo: the built-in example (examples/lab) in a lab of network namespaces.

Two nodes (node-a runs BIRD, node-b runs FRR) each run the node agent; an upstream
FRR router on the same link learns what they announce. The demo adds the example
Services, prints the upstream router's view (prefix, the protocol that carried it,
next hops), removes a Service to show the withdrawal, and cleans everything up.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lbroute.lab import Lab, NodeSpec, run

NODES = [
    NodeSpec(name="node-a", router="bird", v4="10.0.0.11", v6="fd00::11"),
    NodeSpec(name="node-b", router="frr", v4="10.0.0.12", v6="fd00::12"),
]
BOTH = ("node-a", "node-b")
EXPECTED = {
    "192.0.2.0/24": ("bgp", BOTH),
    "192.0.2.20/32": ("bgp", ("node-a",)),  # ETP Local: the endpoint's node only
    "2001:db8:1::/64": ("bgp", BOTH),
    "198.51.100.0/24": ("ospf", BOTH),
    "2001:db8:2::/64": ("ospf", BOTH),
    "203.0.113.0/25": ("rip", BOTH),
    "2001:db8:3::/64": ("ripng", BOTH),
    "203.0.113.128/25": ("isis", ("node-b",)),  # IS-IS: the FRR node only
    "2001:db8:4::/64": ("isis", ("node-b",)),
}
"""Prefix -> the protocol that carries it and the nodes behind its next hops (ECMP
where there are two)."""


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def run_demo(example: Path, say: Callable[[str], None] = print) -> int:
    """Run the demo; returns a process exit code."""
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="lbroute-demo-"))
    source = workdir / "manifests"
    source.mkdir()
    shutil.copy(example / "cluster.yaml", source / "cluster.yaml")
    lab = Lab(workdir=workdir / "lab", nodes=NODES, upstream_router="frr", tag="demo")
    try:
        say("== Building the lab: node-a (BIRD) and node-b (FRR) on one link with an upstream FRR")
        lab.start()
        for spec in NODES:
            lab.start_agent(spec.name, source)
        say("== Agents started on the example cluster (ServiceGroups, Peers, NodeAgents, Nodes)")
        lab.wait_for(lambda: _sessions_up(lab), timeout=60)
        say("   BGP sessions established from both nodes\n")

        say("== Adding the example Services")
        started = time.monotonic()
        _write_services(example / "services.yaml", source)
        lab.wait_for(lambda: _complete(lab), timeout=90)
        took = time.monotonic() - started
        say(f"   every prefix is upstream, with all its next hops, after {took:.1f} s\n")
        _print_view(lab, say)

        say("\n== Removing Service default/legacy-1 (the only one in 203.0.113.0/25)")
        started = time.monotonic()
        (source / "service-legacy-1.yaml").unlink()
        lab.wait_for(lambda: lab.route("203.0.113.0/25") is None, timeout=90)
        say(f"   203.0.113.0/25 withdrawn after {time.monotonic() - started:.1f} s; "
            "the other prefixes stay\n")  # fmt: skip

        say("== lbroute status on node-a")
        say(_status_text(lab, "node-a"))
        return 0
    except TimeoutError as exc:
        say(f"demo failed: {exc}")
        for spec in NODES:
            log = lab.members[spec.name].agent_log if spec.name in lab.members else None
            if log is not None and log.exists():
                say(f"--- agent log of {spec.name}:\n{log.read_text()[-2000:]}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        say("== Cleaning up: stopping agents and routers, deleting namespaces")
        lab.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _write_services(services: Path, source: Path) -> None:
    for doc in yaml.safe_load_all(services.read_text(encoding="utf-8")):
        if not isinstance(doc, dict):
            continue
        name = doc["metadata"]["name"]
        kind = doc["kind"].lower()
        (source / f"{kind}-{name}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")


def _sessions_up(lab: Lab) -> bool:
    for spec in NODES:
        sessions = lab.status(spec.name).get("sessions", [])
        bgp = [s for s in sessions if s["protocol"] == "bgp"]
        if len(bgp) < 2 or any(s["state"] != "Established" for s in bgp):
            return False
    return True


def _complete(lab: Lab) -> bool:
    routes = {r.prefix: r for r in lab.routes()}
    for prefix, (proto, nodes) in EXPECTED.items():
        route = routes.get(prefix)
        if route is None or route.proto != proto or lab.via(route) != nodes:
            return False
    return True


def _print_view(lab: Lab, say: Callable[[str], None]) -> None:
    say("== The upstream router's view (its kernel table; learned routes only)")
    say(f"   {'PREFIX':<20} {'PROTOCOL':<9} NEXT HOPS")
    for route in lab.routes():
        hops = ", ".join(f"{lab.node_of(h)} ({h})" for h in route.nexthops)
        say(f"   {route.prefix:<20} {route.proto:<9} {hops}")


def _status_text(lab: Lab, node: str) -> str:
    import sys

    out = run(
        sys.executable, "-m", "lbroute", "status",
        "--status-file", str(lab.members[node].status_file), check=False,
    )  # fmt: skip
    return out.stdout + out.stderr
