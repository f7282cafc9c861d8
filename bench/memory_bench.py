#!/usr/bin/env python3
"""The agent's memory with 10,000 Services and 100,000 endpoints.

A lab (:class:`lbroute.lab.Lab`) with one node (BIRD) and the upstream FRR; the agent
watches a directory holding ``bench/examples/lab/cluster.yaml``, a ServiceGroup with a
/18 pool, ``--services`` Services (ETP Cluster, one address each) and one EndpointSlice
per Service with ``--endpoints`` endpoints in all (addresses, conditions, nodeName,
zone, targetRef: what the API holds), 100 objects to a file. Measured:

- after the first pass (every address on kube-lb0, the status file lists them all):
  the agent process's VmRSS and VmHWM (``/proc/PID/status``) and the time it took;
- after one more Service is added (the agent reads the directory again): the same, and
  the agent's own work for it, from the stamps of the pass that took it (the agent logs
  them at debug, ``LBROUTE_LOG_LEVEL``; the clock every process shares): from the
  directory's notification to the pass's end, and its phases;
- for reference, what the manifests take parsed, as PyYAML's dicts (the objects the
  directory source keeps) and nothing else: the RSS growth of a fresh Python process
  that parses them (with libyaml, to be quick).

    .venv/bin/python bench/memory_bench.py [--quick] [--services 10000 --endpoints 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from benchlib import (
    ROOT,
    command_line,
    endpoint_slice,
    log,
    machine,
    need_root,
    proc_memory,
    stop_on_signals,
    wait_for,
    write_atomic,
    write_json,
)
from lab_bench import passes

from lbroute.lab import Lab, NodeSpec

NODE = NodeSpec(name="node-a", router="bird", v4="10.0.0.11", v6="fd00::11")
TARGET_MIB = 150
PER_FILE = 100


def address(i: int) -> str:
    return f"198.18.{64 + i // 250}.{i % 250 + 1}"


def service(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"svc-{i:05d}", "namespace": f"ns-{i % 50}"},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "lbroute.io/lbroute",
            "externalTrafficPolicy": "Cluster",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": f"app-{i}"},
        },
        "status": {"loadBalancer": {"ingress": [{"ip": address(i)}]}},
    }


def write_manifests(source: Path, services: int, endpoints: int) -> None:
    shutil.copy(ROOT / "bench" / "examples" / "lab" / "cluster.yaml", source / "cluster.yaml")
    group = {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "ServiceGroup",
        "metadata": {"name": "memory", "namespace": "lbroute"},
        "spec": {"protocols": ["bgp"], "pools": [{"cidr": "198.18.64.0/18"}]},
    }
    (source / "group.yaml").write_text(yaml.safe_dump(group), encoding="utf-8")
    per_service = [
        endpoints // services + (1 if i < endpoints % services else 0) for i in range(services)
    ]
    first = 0
    for start in range(0, services, PER_FILE):
        docs: list[dict[str, Any]] = []
        for i in range(start, min(services, start + PER_FILE)):
            docs.append(service(i))
            docs.append(endpoint_slice(i, per_service[i], first))
            first += per_service[i]
        text = yaml.dump_all(docs, Dumper=yaml.CSafeDumper, sort_keys=False)
        (source / f"services-{start // PER_FILE:04d}.yaml").write_text(text, encoding="utf-8")


PARSE_CHILD = """
import gc, os, sys, time
from pathlib import Path
import yaml
texts = [p.read_text() for p in sorted(Path(sys.argv[1]).glob("*.yaml"))]
def rss():
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
gc.collect()
before = rss()
started = time.perf_counter()
objects = [d for t in texts for d in yaml.load_all(t, Loader=yaml.CSafeLoader)]
seconds = time.perf_counter() - started
gc.collect()
print(rss() - before, seconds, len(objects))
"""


def parsed_size(source: Path) -> dict[str, float]:
    """What the manifests take as the parsed objects alone (PyYAML's dicts, the same
    objects the directory source keeps), in a fresh process: RSS growth in KiB."""
    proc = subprocess.run(
        [sys.executable, "-c", PARSE_CHILD, str(source)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    kib, seconds, count = proc.stdout.split()
    return {"rss_kib": int(kib), "csafeloader_seconds": float(seconds), "objects": int(count)}


def announced(lab: Lab) -> int:
    """Addresses of the memory ServiceGroup the agent reports on kube-lb0."""
    entries = lab.status(NODE.name).get("announced", [])
    return sum(1 for a in entries if a.get("group") == "lbroute/memory")


def update_pass(lab: Lab, written: float) -> dict[str, float] | None:
    """The agent's work for the update: the first pass it logged after ``written`` (the
    monotonic time the file was written), as seconds from the directory's notification
    (the snapshot's stamp) to the pass's end, and its phases."""
    agent_log = lab.members[NODE.name].agent_log
    text = agent_log.read_text(errors="replace") if agent_log else ""
    found = next((p for p in passes(text) if p[0] >= written), None)
    if found is None:
        return None
    at, started, read, desired, netlink, ended = found
    return {
        "notified_to_end": ended - at,
        "wait": started - at,
        "objects": read - started,
        "desired": desired - read,
        "netlink": netlink - desired,
        "rest": ended - netlink,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1,000 Services, 10,000 endpoints")
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--endpoints", type=int, default=100000)
    parser.add_argument("--timeout", type=float, default=600, help="seconds a pass may take")
    parser.add_argument("--json", type=Path, help="write the results here (default: stdout)")
    args = parser.parse_args()
    if args.quick:
        args.services, args.endpoints = 1000, 10000
    if not 0 < args.services <= 16000:
        parser.error("--services must be between 1 and 16000 (the pool is a /18)")
    need_root()
    stop_on_signals()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="lbroute-memory-"))
    source = workdir / "manifests"
    source.mkdir()
    lab = Lab(workdir=workdir / "lab", nodes=[NODE], upstream_router="frr", tag="m")
    try:
        log(f"writing {args.services} Services and {args.endpoints} endpoints")
        write_manifests(source, args.services, args.endpoints)
        size = sum(p.stat().st_size for p in source.iterdir())
        parsed = parsed_size(source)
        log(f"the manifests parsed: {parsed}")
        lab.start()
        t0 = time.monotonic()
        os.environ["LBROUTE_LOG_LEVEL"] = "info nodeagent.agent=debug"  # the pass stamps
        lab.start_agent(NODE.name, source)
        agent = lab.members[NODE.name].agent
        assert agent is not None
        log("agent started; waiting for its first pass")
        wait_for(lambda: announced(lab) == args.services, args.timeout, 0.2, "the first pass")
        first_pass = time.monotonic() - t0
        first = proc_memory(agent.pid)
        log(f"first pass {first_pass:.1f} s: {first}")
        t1 = time.monotonic()
        write_atomic(source / "one-more.yaml", yaml.safe_dump(service(args.services)))
        wait_for(lambda: announced(lab) == args.services + 1, args.timeout, 0.2, "the update")
        update = time.monotonic() - t1
        second = proc_memory(agent.pid)
        log(f"update {update:.1f} s: {second}")
        work = update_pass(lab, t1)
        log(f"the update's pass: {work}")
        addresses = json.loads(lab.members[NODE.name].ns.ip("-j", "addr", "show", "kube-lb0"))
        on_kube_lb0 = sum(1 for a in addresses[0]["addr_info"] if a["prefixlen"] == 18)
    finally:
        lab.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    write_json(
        args.json,
        {
            "benchmark": "memory",
            "command": command_line(),
            "machine": machine(),
            "services": args.services,
            "endpoints": args.endpoints,
            "manifest_bytes": size,
            "parsed_objects": parsed,
            "kube_lb0_addresses": on_kube_lb0,
            "first_pass": {"seconds": first_pass, **first},
            "after_update": {"seconds": update, **second},
            "update_pass": work,
            "target_mib": TARGET_MIB,
            "seconds": time.monotonic() - started,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
