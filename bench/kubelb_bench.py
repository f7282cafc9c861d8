#!/usr/bin/env python3
"""Programming kube-lb0 from a cold start: the agent's netlink code against ``ip -batch``.

For N Service addresses (default 1,000 and 10,000; 3 in 4 IPv4), each run takes a
fresh network namespace with an empty ``kube-lb0`` (ifb, up, promote_secondaries on,
as the lab's nodes have it) and measures one of:

- **floor**: ``ip -n NS -batch FILE`` adding the same addresses (``noprefixroute``,
  ``nodad`` for IPv6) and the same one route per prefix in table 4242; wall time of the
  whole command, process start included. (iproute2 6.1 cannot set an address's
  ``proto``, so the floor's addresses lack the agent's one-byte ownership mark.)
- **reconcile**: ``Kubelb("kube-lb0")``, ``ensure()`` and ``reconcile(desired)``, timed
  inside a Python process started in the namespace (interpreter start not counted).
- **pass**: the agent's whole pass on already parsed objects: ``desired_state`` (40
  ServiceGroups, N Services) then the same as **reconcile**.

Runs are interleaved (floor, reconcile, pass, floor, ...); every run checks that
kube-lb0 holds exactly the N addresses afterwards.

``--python`` (no root, no namespace) times instead what the agent computes in Python on
each pass, on the same objects: reading every Service dict (``parse_service``, with all
its checks), loading the rest (``api.load``) and ``desired_state``; the median of
``--runs`` at each size, garbage collected before each run.

    .venv/bin/python bench/kubelb_bench.py [--quick] [--runs 5] [--sizes 1000,10000]
    .venv/bin/python bench/kubelb_bench.py --python [--runs 9] [--sizes 10000]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    Json,
    command_line,
    log,
    machine,
    need_root,
    stop_on_signals,
    summary,
    write_json,
)

from lbroute.lab import Netns

GROUPS = 40
TARGET_RATIO = 1.5


def address(i: int) -> str:
    """Service i's address with its aggregation: group i % 40, IPv6 for 1 in 4."""
    group, host = i % GROUPS, i // GROUPS + 1
    if i % 4 == 3:
        return f"2001:db8:{group:x}::{host:x}/64"
    return f"198.18.{group}.{host}/24"


def objects(n: int) -> list[dict[str, Any]]:
    """The ServiceGroups, the Node and N Services, as the API holds them."""
    found: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}},
    ]
    for g in range(GROUPS):
        found.append(
            {
                "apiVersion": "lbroute.io/v1alpha1",
                "kind": "ServiceGroup",
                "metadata": {"name": f"g{g}", "namespace": "lbroute"},
                "spec": {"pools": [{"cidr": f"198.18.{g}.0/24"}, {"cidr": f"2001:db8:{g:x}::/64"}]},
            }
        )
    for i in range(n):
        found.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"s{i}", "namespace": "default"},
                "spec": {"type": "LoadBalancer", "loadBalancerClass": "lbroute.io/lbroute"},
                "status": {"loadBalancer": {"ingress": [{"ip": address(i).split("/")[0]}]}},
            }
        )
    return found


def batch(n: int) -> str:
    lines = []
    for i in range(n):
        a = address(i)
        flags = "noprefixroute nodad" if ":" in a else "noprefixroute"
        lines.append(f"address add {a} dev kube-lb0 {flags}")
    for net in sorted({str(ipaddress.ip_interface(address(i)).network) for i in range(n)}):
        lines.append(f"route add {net} dev kube-lb0 table 4242 proto 76 scope link")
    return "\n".join(lines) + "\n"


# -- inside the namespace -----------------------------------------------------------------


def child(mode: str, n: int) -> Json:
    """One timed run in the current namespace; prints what it measured."""
    from lbroute.model import api
    from lbroute.model.endpoints import ready_nodes, split_objects
    from lbroute.model.service import parse_service
    from nodeagent.desired import desired_state
    from nodeagent.netlink import Kubelb

    services_raw, slices, rest = split_objects(objects(n))
    model = api.load(rest)
    services = [parse_service(s, default_class=False, problems=[]) for s in services_raw]
    parsed = [s for s in services if s is not None]
    ready = ready_nodes(slices)
    wanted = frozenset(ipaddress.ip_interface(address(i)) for i in range(n))
    gc.collect()  # not the setup's garbage: the agent's long-lived process has none
    started = time.perf_counter()
    if mode == "pass":
        desired = desired_state(model, parsed, ready, "node-a").interfaces
        computed = time.perf_counter()
    else:
        desired, computed = wanted, started
    with Kubelb("kube-lb0") as kubelb:
        kubelb.ensure()
        changes = kubelb.reconcile(desired)
        done = time.perf_counter()
        owned = kubelb.owned()
    if desired != wanted or owned != wanted or changes.failed:
        raise SystemExit(f"wrong result: {len(owned)} owned, {len(changes.failed)} failed")
    return {"seconds": done - started, "desired_state": computed - started, "count": len(owned)}


# -- the pass in Python alone -------------------------------------------------------------


def python_pass(n: int, runs: int) -> Json:
    """Median seconds of each step of the agent's pass over N Services, in this process."""
    from lbroute.model import api
    from lbroute.model.endpoints import ready_nodes, split_objects
    from lbroute.model.service import parse_service
    from nodeagent.desired import desired_state

    found = objects(n)
    steps: dict[str, list[float]] = {"read_services": [], "load": [], "desired_state": []}
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        services_raw, slices, rest = split_objects(found)
        problems: list[Any] = []
        parsed = [
            s
            for s in (
                parse_service(o, default_class=False, problems=problems) for o in services_raw
            )
            if s is not None
        ]
        read = time.perf_counter()
        model = api.load(rest)
        loaded = time.perf_counter()
        desired = desired_state(model, parsed, ready_nodes(slices), "node-a")
        done = time.perf_counter()
        if len(desired.interfaces) != n or problems:
            raise SystemExit(f"wrong result: {len(desired.interfaces)} addresses, {problems}")
        steps["read_services"].append(read - started)
        steps["load"].append(loaded - read)
        steps["desired_state"].append(done - loaded)
    return {"services": n, **{k: summary(v) for k, v in steps.items()}}


# -- the parent ---------------------------------------------------------------------------


def fresh_namespace() -> Netns:
    ns = Netns("kb").create()
    try:
        ns.add_ifb("kube-lb0")
        ns.sysctl("net.ipv4.conf.kube-lb0.promote_secondaries", "1")
    except BaseException:
        ns.delete()
        raise
    return ns


def count_addresses(ns: Netns) -> int:
    data = json.loads(ns.ip("-j", "addr", "show", "dev", "kube-lb0"))
    return sum(1 for a in data[0]["addr_info"] if a.get("scope") != "link")


def run_floor(n: int, batch_file: Path) -> float:
    ns = fresh_namespace()
    try:
        started = time.perf_counter()
        subprocess.run(["ip", "-n", ns.name, "-batch", str(batch_file)], check=True)
        seconds = time.perf_counter() - started
        if count_addresses(ns) != n:
            raise SystemExit(f"ip -batch left {count_addresses(ns)} addresses, not {n}")
        return seconds
    finally:
        ns.delete()


def run_agent(mode: str, n: int) -> Json:
    ns = fresh_namespace()
    try:
        out = ns.exec(
            sys.executable, str(Path(__file__).resolve()), "--child", mode, str(n), timeout=600
        ).stdout
        result: Json = json.loads(out)
        if count_addresses(ns) != n:
            raise SystemExit(f"{mode}: kube-lb0 has {count_addresses(ns)} addresses, not {n}")
        return result
    finally:
        ns.delete()


def measure(sizes: list[int], runs: int) -> list[Json]:
    results = []
    for n in sizes:
        floor: list[float] = []
        reconcile: list[float] = []
        whole: list[float] = []
        desired: list[float] = []
        with tempfile.TemporaryDirectory(prefix="lbroute-kubelb-") as tmp:
            batch_file = Path(tmp) / "batch"
            batch_file.write_text(batch(n), encoding="utf-8")
            for run in range(runs):
                log(f"kube-lb0: {n} addresses, run {run + 1}/{runs}")
                floor.append(run_floor(n, batch_file))
                reconcile.append(run_agent("reconcile", n)["seconds"])
                out = run_agent("pass", n)
                whole.append(out["seconds"])
                desired.append(out["desired_state"])
        f = summary(floor)
        results.append(
            {
                "addresses": n,
                "prefixes": len({ipaddress.ip_interface(address(i)).network for i in range(n)}),
                "floor_ip_batch": f,
                "reconcile": summary(reconcile),
                "pass": summary(whole),
                "desired_state": summary(desired),
                "ratio_reconcile": summary(reconcile)["median"] / f["median"],
                "ratio_pass": summary(whole)["median"] / f["median"],
                "target_ratio": TARGET_RATIO,
            }
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1,000 addresses, 2 runs")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated counts")
    parser.add_argument("--json", type=Path, help="write the results here (default: stdout)")
    parser.add_argument(
        "--python", action="store_true", help="time the pass's Python steps only (no root)"
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return 0
    if args.python:
        passes = []
        for n in [int(s) for s in args.sizes.split(",") if s]:
            passes.append(python_pass(n, args.runs))
            steps = {k: v for k, v in passes[-1].items() if isinstance(v, dict)}
            medians = ", ".join(f"{k} {v['median'] * 1000:.1f} ms" for k, v in steps.items())
            log(f"{n} Services: {medians}")
        write_json(args.json, {"benchmark": "kubelb-python", "runs": args.runs, "results": passes})
        return 0
    need_root()
    stop_on_signals()
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    runs = 2 if args.quick else args.runs
    started = time.monotonic()
    results = measure(sizes, runs)
    write_json(
        args.json,
        {
            "benchmark": "kubelb",
            "command": command_line(),
            "machine": machine(),
            "runs": runs,
            "results": results,
            "seconds": time.monotonic() - started,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
