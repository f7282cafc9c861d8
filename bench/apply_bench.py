#!/usr/bin/env python3
"""Router apply: a ServiceGroup change becomes the running configuration of a real BIRD
and a real FRR, through the agent's drivers, against the daemon's own reload.

For each scale point (default 10, 100 and 1,000 ServiceGroups, with half as many Peers:
the render benchmark's objects, ``bench/render_bench.py``), a fresh network namespace
gets ``kube-lb0`` and ``eth0``, IP forwarding (as on a Kubernetes node) and the router
daemon(s), and the driver applies the node's configuration once onto daemons that run
nothing, as an agent's first pass does (reported apart; FRR gets the whole file in one
``vtysh -f``; a point whose first apply fails or a router tool of it takes more than
``--budget`` seconds is reported as such and has no runs). Then each run changes one
ServiceGroup's BGP communities (the first group whose communities reach the
configuration) and measures, in turn:

- **driver**: from value A to B, ``BirdDriver.apply`` / ``FrrDriver.apply``
  (``nodeagent.routers``), the whole of what the agent does: the router's parser, an
  atomic write, the reload, and for BIRD ``configure confirm``, for FRR
  ``frr-reload.py --test`` afterwards. The change touches only route-maps, so FRR gets
  it as the driver's delta through ``vtysh -f`` (the driver knows FRR runs A: it checked
  so after its first apply, and after each floor reload).
- **floor**: from B back to A, the daemon's own reload of the same kind of file:
  ``birdc configure "FILE"``, or ``frr-reload.py --reload FILE``, after writing it.

Every driver apply must succeed; after every floor reload, BIRD must say it
reconfigured and FRR's running configuration must match the file (``frr-reload.py
--test``, outside the timing).

    .venv/bin/python bench/apply_bench.py [--quick] [--runs 3] [--groups 10,100,1000]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
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
from render_bench import NODE, ROUTER_ID, generate

from lbroute.lab import FRR_BIN, BirdInstance, FrrInstance, Netns, vtysh_conf
from lbroute.model.api import Router, load
from nodeagent.routers import BirdDriver, FrrDriver, RouterDriver
from renderer import build_view, builtin_template_set, render_view

TIMEOUT = 1800.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def render(objects: list[dict[str, Any]], router: Router) -> str:
    model = load(objects)
    if model.errors:
        raise SystemExit(f"generated objects do not load: {model.errors[0]}")
    # The agent names the host as it is (FRR's hostname line); so does the benchmark.
    view = build_view(model, router, NODE, hostname=socket.gethostname())
    return render_view(view, builtin_template_set(router))


def variants(groups: int, router: Router) -> tuple[str, list[str]]:
    """The configuration with one ServiceGroup's BGP communities at two values: the
    first group whose communities reach this node's configuration."""
    for candidate in range(groups):
        name = f"svc-{candidate:05d}"
        texts = []
        for value in (901, 902):
            objects = generate(groups, max(1, groups // 2), router)
            for obj in objects:
                if obj["kind"] == "ServiceGroup" and obj["metadata"]["name"] == name:
                    obj["spec"]["bgp"]["communities"] = [f"64512:{value}"]
            texts.append(render(objects, router))
        if texts[0] != texts[1]:
            return name, texts
    raise SystemExit(f"no ServiceGroup's communities reach the {router} configuration")


class Node:
    """A namespace with one router daemon and the agent's driver for it."""

    def __init__(self, router: Router, workdir: Path, timeout: float) -> None:
        self.router = router
        self.ns = Netns("ap").create()
        self.bird: BirdInstance | None = None
        self.frr: FrrInstance | None = None
        try:
            self.ns.add_ifb("kube-lb0")
            self.ns.add_ifb("eth0")
            self.ns.ip("addr", "add", f"{ROUTER_ID}/24", "dev", "eth0")
            for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
                self.ns.sysctl(key, "1")
            self.config = workdir / ("bird.conf" if router is Router.BIRD else "frr.conf")
            self.driver: RouterDriver
            if router is Router.BIRD:
                self.bird = BirdInstance(self.ns, workdir / "bird")
                self.config.write_text(f"router id {ROUTER_ID};\nprotocol device {{ }}\n")
                self.bird.start(self.config)
                self.driver = BirdDriver(self.config, self.bird.socket, timeout=timeout)
            else:
                self.frr = FrrInstance(self.ns, workdir / "frr")
                vtysh_conf(workdir)  # FRR's configuration directory: frr.conf is there
                self.frr.start()
                self.driver = FrrDriver(self.config, self.frr.dir, timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def cpu(self) -> dict[str, float]:
        """CPU seconds (user + system) each router daemon has used so far, by name."""
        pids: dict[str, int] = {}
        if self.frr is not None:
            for daemon, pid in zip(self.frr.daemons, self.frr.pids, strict=False):
                pids[daemon] = pid
        elif self.bird is not None and self.bird.pid is not None:
            pids["bird"] = self.bird.pid
        used: dict[str, float] = {}
        for daemon, pid in pids.items():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used[daemon] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        return used

    def stop(self) -> None:
        for inst in (self.bird, self.frr):
            if inst is not None:
                inst.stop()
        self.ns.delete()

    def apply(self, text: str) -> float:
        result = self.driver.apply(text)
        if not result.ok:
            raise SystemExit(f"{self.router} apply failed: {result.error[:2000]}")
        return result.duration

    def first(self, text: str) -> float | None:
        """The driver's first apply, onto daemons that run nothing (None: it failed)."""
        result = self.driver.apply(text)
        if not result.ok:
            log(f"  the first apply failed: {result.error[:500]}")
            return None
        return result.duration

    def floor(self, text: str, timeout: float = TIMEOUT) -> float | None:
        """Write the file, then time the daemon's own reload of it (None: it took more
        than ``timeout`` seconds and was stopped)."""
        self.config.write_text(text, encoding="utf-8")
        if self.bird is not None:
            cmd = ["birdc", "-s", str(self.bird.socket), "configure", f'"{self.config}"']
        else:
            assert self.frr is not None
            directory = str(self.frr.dir)
            cmd = [
                str(FRR_BIN / "frr-reload.py"),
                "--reload",
                "--stdout",
                "--vty_socket",
                directory,
            ]
            cmd += ["--rundir", directory, "--confdir", str(self.config.parent), str(self.config)]
        started = time.perf_counter()
        # A session of its own: on a timeout, frr-reload.py's vtysh goes with it.
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        try:
            said = proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return None
        seconds = time.perf_counter() - started
        if self.bird is not None:
            ok = proc.returncode == 0 and "Reconfigured" in said
        else:
            # frr-reload.py exits 1 for messages about lines it did apply (a neighbor's
            # graceful-restart sent again); what counts is that nothing is left to do,
            # checked as the driver checks it (frr-reload.py --test), after the timing.
            ok = self.driver.is_current(text)
        if not ok:
            raise SystemExit(f"floor reload failed: {' '.join(cmd)}: {said[-2000:]}")
        return seconds


def measure(router: Router, groups: int, runs: int, workdir: Path, budget: float) -> Json:
    changed, texts = variants(groups, router)
    peers = max(1, groups // 2)
    log(f"apply: {router}, {groups} ServiceGroups, {peers} Peers")
    directory = workdir / f"{router}-{groups}"
    directory.mkdir(parents=True)
    point: Json = {
        "router": router.value,
        "groups": groups,
        "peers": peers,
        "config_lines": texts[0].count("\n"),
        "changed": changed,
        "budget": budget,
    }
    node = Node(router, directory, timeout=budget)
    try:
        before = node.cpu()
        cold = node.first(texts[0])
        point["cold_load"] = cold
        point["cold_cpu"] = _used(before, node.cpu())
        if cold is None:
            log(f"  no runs at this point (budget {budget:g} s per router tool)")
            return point
        log(f"  first apply {cold:.3f} s")
        driver: list[float] = []
        floor: list[float] = []
        change_cpu: dict[str, float] = {}
        for run_ in range(runs):
            before = node.cpu()
            driver.append(node.apply(texts[1]))  # each a change: 0 -> 1, then 1 -> 0
            for daemon, cpu in _used(before, node.cpu()).items():
                change_cpu[daemon] = change_cpu.get(daemon, 0.0) + cpu / runs
            seconds = node.floor(texts[0])
            assert seconds is not None
            floor.append(seconds)
            log(f"  run {run_ + 1}/{runs}: driver {driver[-1]:.3f} s, floor {floor[-1]:.3f} s")
    finally:
        node.stop()
    d, f = summary(driver), summary(floor)
    return point | {
        "driver": d,
        "floor": f,
        "ratio": d["median"] / f["median"],
        "change_cpu": {k: round(v, 2) for k, v in change_cpu.items()},
    }


def _used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each daemon used between two readings of :meth:`Node.cpu`."""
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10 and 100 groups, 1 run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--groups", default="10,100,1000", help="comma-separated counts")
    parser.add_argument("--router", choices=("bird", "frr", "all"), default="all")
    parser.add_argument(
        "--budget",
        type=float,
        default=600.0,
        help="seconds each router tool the driver runs may take",
    )
    parser.add_argument("--json", type=Path, help="write the results here (default: stdout)")
    args = parser.parse_args()
    need_root()
    stop_on_signals()
    sizes = [10, 100] if args.quick else [int(g) for g in args.groups.split(",") if g]
    runs = 1 if args.quick else args.runs
    routers = [Router.BIRD, Router.FRR] if args.router == "all" else [Router(args.router)]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lbroute-apply-") as tmp:
        Path(tmp).chmod(0o755)  # FRR's daemons (user frr) reach their sockets in it
        results = [
            measure(router, groups, runs, Path(tmp), args.budget)
            for router in routers
            for groups in sizes
        ]
    write_json(
        args.json,
        {
            "benchmark": "apply",
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
