#!/usr/bin/env python3
"""The agent in a lab of network namespaces: Service -> route, withdrawal, bursts,
hitless applies and BFD failover, against real BIRD and FRR and an upstream FRR.

The lab is :class:`lbroute.lab.Lab`: node-a (BIRD) and node-b (FRR), each running the
real agent (``lbroute agent``) on a directory of manifests that starts as a copy of
``bench/examples/lab/``, and the lab's upstream FRR router on the same link, to which
this script adds BFD (100 ms x 3) for the BGP sessions. Every clock is
``time.monotonic()`` in this process. Measurements:

- **latency** / **withdrawal**: per protocol and node router, ``--services`` Services
  are written one manifest file each (atomically: written aside, renamed into the
  watched directory), or with ``--source api`` created in the fake API server of the
  tests (tests/fakeapi.py, listening in the lab on the upstream's address; the agents
  run ``--kubernetes``), ``--spacing`` seconds apart; each is in a /32-aggregation pool,
  so each is a route of its own upstream. The clock starts just before the file is
  written and stops when ``ip monitor route`` in the upstream namespace reports the
  route (a thread reads its output and stamps each event as it reads it; ``ip monitor``
  flushes after every event). Then the files are removed the same way and the route
  deletions are timed. The **floor** is the same run without the agent: the address
  and the table-4242 route the agent would add are added (removed) by ``ip -batch`` in
  the node, the clock starting before ``ip`` starts; the node's router and the
  protocol are all that is left (the node's agent is paused meanwhile: it owns every
  route of lbroute's protocol number and reads its table back every 30 s). With all
  Services of a row present, the time one ``DirectorySource.load()`` of the manifests
  takes (what each agent does on every change) is measured in this process too.
  **Breakdown**: the agents log, at debug
  level, the monotonic stamps of each pass (the clock every process of the machine
  shares); for each Service, the first pass whose change reached the agent's source
  after the Service was written splits its time into notification (written -> the
  source has the change: inotify and the 5 ms quiet step, or the watch event),
  reading (-> the pass starts: the changed file read, or the snapshot made; queueing),
  objects, desired state, netlink (kube-lb0 and table 4242) and the router (-> the
  route at the upstream: the router's pickup, the protocol, the upstream's FIB).
- **bursts**: ``--burst-changes`` ServiceGroup changes (50 groups, one file each,
  rewritten with a new BGP community, evenly over 0.95 s); the applies are counted from
  both agents' ``lbroute_router_applies_total`` on /metrics, until the newest values run.
- **hitless**: ``--toggles`` applies, each waited for on both nodes, toggling one
  ServiceGroup's BGP community; counted at the upstream: BGP session resets (FRR's
  established/dropped counters and uptime) and route events for the untouched groups.
- **failover**: a node's routing daemons are frozen (SIGSTOP: a hung router, so the
  TCP session stays open and only BFD can tell); the clock runs until the upstream's
  ECMP route to steady-bgp loses that node's next hop. Floor: BFD's detection time.

    .venv/bin/python bench/lab_bench.py [--quick] [--only latency,bursts,hitless,failover]
        [--source dir|api]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from benchlib import (
    ROOT,
    Json,
    RouteMonitor,
    agent_metrics,
    applies,
    command_line,
    distribution,
    log,
    machine,
    need_root,
    paused,
    stop_on_signals,
    summary,
    wait_for,
    write_atomic,
    write_json,
)

from lbroute.kube.directory import DirectorySource
from lbroute.lab import Lab, LabNode, NodeSpec
from lbroute.lab.configs import UPSTREAM_V4
from lbroute.model.manifests import read_manifest_file

EXAMPLE = ROOT / "bench" / "examples" / "lab"
NODES = [
    NodeSpec(name="node-a", router="bird", v4="10.0.0.11", v6="fd00::11"),
    NodeSpec(name="node-b", router="frr", v4="10.0.0.12", v6="fd00::12"),
]
METRICS_PORT = 9473
BENCH_SPACE = ipaddress.ip_network("198.18.0.0/16")
STEADY = {"198.18.20.0/24": "bgp", "198.18.21.0/24": "ospf", "198.18.22.0/24": "isis"}
TOGGLE_PREFIX = "198.18.23.0/24"
FAILOVER_PREFIX = "198.18.20.0/24"
BFD_DETECT = 0.3
"""The Peer's BFD: 100 ms intervals, multiplier 3."""
UPSTREAM_BFD = """bfd
 profile bench
  receive-interval 100
  transmit-interval 100
 exit
exit
router bgp 65000
 neighbor nodes bfd
 neighbor nodes bfd profile bench
exit
"""
TARGETS = {"bgp": 0.5, "ospf": 1.0, "isis": 2.0}


@dataclass(frozen=True)
class Row:
    protocol: str
    node: str
    group: str
    third_octet: int

    @property
    def label(self) -> str:
        router = "BIRD" if self.node == "node-a" else "FRR"
        return f"{self.protocol.upper() if self.protocol != 'isis' else 'IS-IS'} via {router}"

    def prefix(self, i: int, *, floor: bool = False) -> str:
        """The agent's Services are in the pool's first /24, the floor's in its second:
        an OSPF router delays re-originating an LSA it flushed moments ago."""
        return f"198.18.{self.third_octet + floor}.{i + 1}/32"


ROWS = [
    Row("bgp", "node-a", "lat-bgp-bird", 0),
    Row("bgp", "node-b", "lat-bgp-frr", 2),
    Row("ospf", "node-a", "lat-ospf-bird", 4),
    Row("ospf", "node-b", "lat-ospf-frr", 6),
    Row("isis", "node-b", "lat-isis-frr", 12),
    Row("rip", "node-a", "lat-rip-bird", 8),
    Row("rip", "node-b", "lat-rip-frr", 10),
]


def service(name: str, address: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "lbroute.io/lbroute"},
        "status": {"loadBalancer": {"ingress": [{"ip": address}]}},
    }


def group(name: str, cidr: str, community: int) -> dict[str, Any]:
    return {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "ServiceGroup",
        "metadata": {"name": name, "namespace": "lbroute"},
        "spec": {
            "protocols": ["bgp"],
            "pools": [{"cidr": cidr}],
            "bgp": {"communities": [f"65000:{community}"]},
        },
    }


def dump(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


def in_bench_space(prefix: str) -> bool:
    net = ipaddress.ip_network(prefix)
    return net.version == 4 and net.subnet_of(BENCH_SPACE)  # type: ignore[arg-type]


PASS_RE = re.compile(
    r"pass at ([0-9.]+): started ([0-9.]+) read ([0-9.]+) desired ([0-9.]+) "
    r"netlink ([0-9.]+) ended ([0-9.]+)"
)
PHASES = ("notification", "reading", "objects", "desired", "netlink", "router")


def passes(log_text: str) -> list[tuple[float, ...]]:
    """The stamps of every pass an agent logged (at, started, read, desired, netlink,
    ended), in order."""
    return [tuple(float(x) for x in m.groups()) for m in PASS_RE.finditer(log_text)]


def breakdown(
    added: list[float], seen: list[float | None], stamps: list[tuple[float, ...]]
) -> Json:
    """Each Service's way split at the stamps of the first pass whose change reached the
    source after it was written (and that ended before its route came); medians."""
    phases: dict[str, list[float]] = {p: [] for p in PHASES}
    matched = 0
    for t, route in zip(added, seen, strict=True):
        if route is None:
            continue
        p = next((s for s in stamps if s[0] >= t and s[4] <= route), None)
        if p is None:
            continue
        matched += 1
        at, started, read, desired, netlink, _ended = p
        for name, value in zip(
            PHASES,
            (
                at - t,
                started - at,
                read - started,
                desired - read,
                netlink - desired,
                route - netlink,
            ),
            strict=True,
        ):
            phases[name].append(value)
    return {"matched": matched, **{k: summary(v) for k, v in phases.items() if v}}


class Bench:
    def __init__(self, workdir: Path, source: str = "dir") -> None:
        self.workdir = workdir
        self.source = workdir / "manifests"
        self.lab = Lab(workdir=workdir / "lab", nodes=list(NODES), upstream_router="frr", tag="b")
        self.monitor: RouteMonitor | None = None
        self.via_api = source == "api"
        self.api: Any = None

    # -- the lab ------------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self) -> Iterator[Bench]:
        try:
            self.source.mkdir(parents=True)
            shutil.copy(EXAMPLE / "cluster.yaml", self.source / "cluster.yaml")
            write_atomic(self.source / "toggle.yaml", dump(group("toggle", TOGGLE_PREFIX, 201)))
            write_atomic(self.source / "svc-toggle.yaml", dump(service("toggle", "198.18.23.1")))
            log("starting the lab (node-a BIRD, node-b FRR, upstream FRR with BFD)")
            self.lab.start()
            assert self.lab.upstream_frr is not None
            self.lab.upstream_frr.load(UPSTREAM_BFD)
            assert self.lab.upstream is not None
            # The passes' stamps (debug) for the breakdown; the rest as -v has it.
            os.environ["LBROUTE_LOG_LEVEL"] = "info nodeagent.agent=debug"
            extra: tuple[str, ...] = ("--metrics-port", str(METRICS_PORT))
            source: Path | None = self.source
            if self.via_api:
                extra += self._serve_api()
                source = None
            for spec in NODES:
                self.lab.start_agent(spec.name, source, *extra)
            with RouteMonitor(self.lab.upstream.name, in_bench_space) as monitor:
                self.monitor = monitor
                self.wait_steady(timeout=120)
                log("lab ready: steady routes up, both BGP sessions and BFD up")
                yield self
        finally:
            self.monitor = None
            if self.api is not None:
                self.api.__exit__(None, None, None)
            self.lab.stop()

    def _serve_api(self) -> tuple[str, ...]:
        """The fake API server in the lab, on the upstream's address, holding what the
        manifest directory holds; the agents' arguments to use it."""
        if str(ROOT) not in sys.path:  # the tests' fake API server, from the checkout
            sys.path.insert(0, str(ROOT))
        from tests.fakeapi import FakeAPI

        assert self.lab.upstream is not None
        self.api = FakeAPI(
            host=UPSTREAM_V4, netns=self.lab.upstream.name, namespaces=("default", "lbroute")
        )
        self.api.__enter__()
        for file in sorted(self.source.glob("*.yaml")):
            self.api.put_all(read_manifest_file(file))
        kubeconfig = self.api.kubeconfig(self.workdir / "kubeconfig")
        kubeconfig.chmod(0o644)
        return ("--kubernetes", "--kubeconfig", str(kubeconfig), "--namespace", "lbroute")

    def _write(self, name: str, obj: dict[str, Any] | None) -> None:
        """A Service written (None: removed) as the bench's source takes it."""
        if self.via_api:
            if obj is None:
                self.api.remove("services", name, "default")
            else:
                self.api.put("services", obj, "default")
        elif obj is None:
            (self.source / f"lat-{name}.yaml").unlink()
        else:
            write_atomic(self.source / f"lat-{name}.yaml", dump(obj))

    def member(self, node: str) -> LabNode:
        return self.lab.members[node]

    def steady_view(self) -> dict[str, tuple[str, int]]:
        return {
            r.prefix: (r.proto, len(r.nexthops))
            for r in self.lab.routes()
            if r.prefix in STEADY or r.prefix == TOGGLE_PREFIX
        }

    def steady_ok(self) -> bool:
        view = self.steady_view()
        want = {p: (proto, 1 if proto == "isis" else 2) for p, proto in STEADY.items()}
        want[TOGGLE_PREFIX] = ("bgp", 2)
        return view == want and self.bfd_up() == 2

    def wait_steady(self, timeout: float) -> None:
        try:
            wait_for(self.steady_ok, timeout, interval=0.2, what="steady routes, BGP and BFD up")
        except TimeoutError as exc:
            logs = {
                n: (m.agent_log.read_text()[-1500:] if m.agent_log else "")
                for n, m in self.lab.members.items()
            }
            raise TimeoutError(
                f"{exc}: upstream {self.steady_view()}, BFD up {self.bfd_up()}; "
                + "".join(f"\n--- agent log of {n}:\n{text}" for n, text in logs.items())
            ) from None

    def bfd_up(self) -> int:
        assert self.lab.upstream_frr is not None
        out = self.lab.upstream_frr.vtysh("show bfd peers json", check=False).stdout
        try:
            peers = json.loads(out or "[]")
        except ValueError:
            return 0
        return sum(1 for p in peers if p.get("status") == "up")

    def bgp_counters(self) -> dict[str, tuple[int, int, int]]:
        """Upstream's view of each node's session: (established, dropped, uptime ms)."""
        assert self.lab.upstream_frr is not None
        out = self.lab.upstream_frr.vtysh("show bgp neighbors json").stdout
        return {
            peer: (
                int(n.get("connectionsEstablished", 0)),
                int(n.get("connectionsDropped", 0)),
                int(n.get("bgpTimerUpMsec", 0)),
            )
            for peer, n in json.loads(out).items()
            if isinstance(n, dict) and "bgpState" in n
        }

    def applies(self, result: str = "applied") -> dict[str, int]:
        return {
            node: applies(agent_metrics(self.member(node).ns.name, METRICS_PORT), result)
            for node in self.lab.members
        }

    def quiet(self, seconds: float = 3.0, timeout: float = 120) -> dict[str, int]:
        """Wait until neither agent applies anything for ``seconds``; their counts."""
        deadline = time.monotonic() + timeout
        last = self.applies()
        since = time.monotonic()
        while time.monotonic() - since < seconds:
            if time.monotonic() > deadline:
                raise TimeoutError("the agents kept applying")
            time.sleep(0.5)
            now = self.applies()
            if now != last:
                last, since = now, time.monotonic()
        return last

    def config_has(self, node: str, community: int) -> bool:
        """The node's configuration file sets BGP community 65000:``community``."""
        text = self.member(node).config_path.read_text(encoding="utf-8")
        return re.search(rf"\b65000:{community}\b|\(65000, {community}\)", text) is not None

    # -- latency and withdrawal ---------------------------------------------------------

    def latency(self, services: int, spacing: float, floor: bool) -> list[Json]:
        results = []
        for row in ROWS:
            log(f"latency: {row.label}, {services} Services, {spacing:g} s apart")
            agent = self._latency_run(row, services, spacing, by_hand=False)
            result: Json = {"row": row.label, "protocol": row.protocol, "node": row.node, **agent}
            if floor:
                log(f"latency floor: {row.label} (ip -batch in the node, no agent)")
                result["floor"] = self._latency_run(row, services, spacing, by_hand=True)
            result["target_p99"] = TARGETS.get(row.protocol)
            results.append(result)
        return results

    def _latency_run(self, row: Row, count: int, spacing: float, *, by_hand: bool) -> Json:
        if not by_hand:
            return self._latency_once(row, count, spacing, by_hand=False)
        # The floor's routes carry lbroute's protocol number (the router learns only
        # those): the node's agent, which owns every such route, is paused meanwhile.
        agent = self.member(row.node).agent
        with paused(agent.pid if agent is not None else None):
            return self._latency_once(row, count, spacing, by_hand=True)

    def _latency_once(self, row: Row, count: int, spacing: float, *, by_hand: bool) -> Json:
        assert self.monitor is not None
        prefixes = [row.prefix(i, floor=by_hand) for i in range(count)]
        node = self.member(row.node)
        added = self._paced(
            count,
            spacing,
            lambda i: (
                self._hand(node, "add", prefixes[i])
                if by_hand
                else self._write(
                    f"{row.group}-{i:03d}",
                    service(f"{row.group}-{i:03d}", prefixes[i].split("/")[0]),
                )
            ),
        )
        first = min(added)
        seen = self._wait_events(prefixes, deleted=False, after=first)
        up = [seen[p] - added[i] for i, p in enumerate(prefixes) if p in seen]
        wrong = [
            e.prefix
            for e in self.monitor.snapshot()
            if e.prefix in set(prefixes) and not e.deleted and f"proto {row.protocol}" not in e.text
        ]
        reading = [] if by_hand or self.via_api else [self._time_source_load() for _ in range(3)]
        split: Json = {}
        if not by_hand and node.agent_log is not None:
            stamps = passes(node.agent_log.read_text(errors="replace"))
            split = breakdown(added, [seen.get(p) for p in prefixes], stamps)
        removed = self._paced(
            count,
            spacing,
            lambda i: (
                self._hand(node, "del", prefixes[i])
                if by_hand
                else self._write(f"{row.group}-{i:03d}", None)
            ),
        )
        gone = self._wait_events(prefixes, deleted=True, after=min(removed))
        down = [gone[p] - removed[i] for i, p in enumerate(prefixes) if p in gone]
        return {
            "services": count,
            "spacing": spacing,
            "announce": distribution(up),
            "withdraw": distribution(down),
            "missing_announce": count - len(up),
            "missing_withdraw": count - len(down),
            "other_protocol": len(set(wrong)),
            **({} if by_hand or not reading else {"source_load": summary(reading)}),
            **({"breakdown": split} if split else {}),
        }

    def _time_source_load(self) -> float:
        """What reading the manifests costs each agent on a change of one file: a
        ``DirectorySource.load()`` of the same directory naming one changed file, after
        a first load (not timed), in this process."""
        source = DirectorySource(self.source)
        snapshot = source.load()
        if snapshot.errors:
            raise RuntimeError(f"the manifests do not read: {snapshot.errors[0]}")
        one = max(self.source.glob("lat-*.yaml"), default=None)
        started = time.perf_counter()
        source.load(frozenset({one}) if one is not None else frozenset())
        return time.perf_counter() - started

    @staticmethod
    def _paced(count: int, spacing: float, action: Callable[[int], object]) -> list[float]:
        """Do ``action(i)`` every ``spacing`` seconds; when each one started."""
        stamps = []
        start = time.monotonic()
        for i in range(count):
            delay = start + i * spacing - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamps.append(time.monotonic())
            action(i)
        return stamps

    def _hand(self, node: LabNode, command: str, prefix: str) -> None:
        """What the agent does for one /32, by ``ip``: the address and the route BIRD
        learns (table 4242, protocol 76)."""
        lines = (
            f"address {command} {prefix} dev kube-lb0"
            + (" noprefixroute" if command == "add" else "")
            + f"\nroute {command} {prefix} dev kube-lb0 table 4242 proto 76 scope link\n"
        )
        order = lines.splitlines() if command == "add" else lines.splitlines()[::-1]
        subprocess.run(
            ["ip", "-n", node.ns.name, "-batch", "-"],
            input="\n".join(order) + "\n",
            text=True,
            check=True,
        )

    def _wait_events(self, prefixes: list[str], *, deleted: bool, after: float) -> dict[str, float]:
        assert self.monitor is not None
        monitor = self.monitor
        deadline = time.monotonic() + 60
        found: dict[str, float] = {}
        while time.monotonic() < deadline:
            found = monitor.first(prefixes, deleted=deleted, after=after)
            if len(found) == len(prefixes):
                break
            time.sleep(0.1)
        return found

    # -- bursts -------------------------------------------------------------------------

    def bursts(self, count: int, changes: int, groups: int = 50) -> Json:
        names = [f"burst-{k:02d}" for k in range(groups)]
        for k, name in enumerate(names):
            write_atomic(
                self.source / f"{name}.yaml", dump(group(name, f"198.18.{128 + k}.0/24", 1))
            )
        self._wait_config(lambda n: self.config_has(n, 1) and "burst-49" in self._text(n))
        self.quiet()
        per_burst: list[Json] = []
        value = 1000
        for b in range(count):
            log(f"bursts: {changes} ServiceGroup changes within one second ({b + 1}/{count})")
            texts = []
            for i in range(changes):
                value += 1
                k = i % groups
                texts.append(dump(group(names[k], f"198.18.{128 + k}.0/24", value)))
            before = self.quiet()
            started = time.monotonic()
            for i, text in enumerate(texts):
                delay = started + i * 0.95 / changes - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                write_atomic(self.source / f"{names[i % groups]}.yaml", text)
            written = time.monotonic() - started
            settled = self._wait_config(functools.partial(self.config_has, community=value))
            after = self.quiet(seconds=4)  # a late second apply would show here
            per_burst.append(
                {
                    "seconds_to_write": written,
                    "applies": {n: after[n] - before[n] for n in after},
                    "applied_after_last_change": settled - (started + written),
                }
            )
        for name in names:
            (self.source / f"{name}.yaml").unlink()
        self._wait_config(lambda n: "burst-00" not in self._text(n))
        counts = {node: [p["applies"][node] for p in per_burst] for node in ("node-a", "node-b")}
        return {
            "bursts": count,
            "changes": changes,
            "groups": groups,
            "runs": per_burst,
            "applies": {n: summary([float(c) for c in v]) for n, v in counts.items()},
            "max_applies": max(max(v) for v in counts.values()),
            "settle": summary([p["applied_after_last_change"] for p in per_burst]),
            "target_max_applies": 2,
        }

    def _text(self, node: str) -> str:
        return self.member(node).config_path.read_text(encoding="utf-8")

    def _wait_config(self, check: Callable[[str], bool], timeout: float = 120) -> float:
        """Until ``check`` holds for both nodes' configuration files and the router runs
        them (last apply Applied or Unchanged); when it first held."""

        def done() -> bool:
            for node in self.lab.members:
                status = self.lab.status(node)
                result = status.get("last_apply", {}).get("result")
                if not check(node) or result not in ("Applied", "Unchanged"):
                    return False
            return True

        wait_for(done, timeout, interval=0.02, what="the configuration on both nodes")
        return time.monotonic()

    # -- hitless ------------------------------------------------------------------------

    def hitless(self, toggles: int) -> Json:
        assert self.monitor is not None
        self.wait_steady(timeout=60)
        logs = {n: self._log_size(n) for n in self.lab.members}  # a retry due later shows
        before_applies = self.quiet()
        before_failed = self.applies("failed")
        sessions = self.bgp_counters()
        started = time.monotonic()
        durations: list[float] = []
        for i in range(toggles):
            community = 202 if i % 2 == 0 else 201
            t0 = time.monotonic()
            write_atomic(
                self.source / "toggle.yaml", dump(group("toggle", TOGGLE_PREFIX, community))
            )
            self._wait_hash_change(community)
            durations.append(time.monotonic() - t0)
            if (i + 1) % 50 == 0:
                log(f"hitless: {i + 1}/{toggles} applies on both nodes")
        elapsed = time.monotonic() - started
        time.sleep(2)
        after_applies = self.applies()
        after_failed = self.applies("failed")
        events = [e for e in self.monitor.snapshot() if e.at >= started]
        untouched = [e for e in events if e.prefix in STEADY]
        after = self.bgp_counters()
        resets = 0
        for peer, (established, dropped, uptime) in sessions.items():
            now = after.get(peer)
            if (
                now is None
                or now[0] != established
                or now[1] != dropped
                or now[2] < uptime + (elapsed - 2) * 1000
            ):
                resets += 1
        said = {n: self._log_since(n, size) for n, size in logs.items()}
        return {
            "toggles": toggles,
            "applies": {n: after_applies[n] - before_applies[n] for n in after_applies},
            "reapplies_after_router_check": {
                n: text.count("applying the configuration again") for n, text in said.items()
            },
            "retries": {n: text.count("applying again in") for n, text in said.items()},
            "failed_applies": {n: after_failed[n] - before_failed[n] for n in after_failed},
            "seconds_per_toggle": summary(durations),
            "bgp_session_resets": resets,
            "bgp_sessions": len(sessions),
            "untouched_route_deletions": sum(1 for e in untouched if e.deleted),
            "untouched_route_events": len(untouched),
            "toggled_route_events": sum(1 for e in events if e.prefix == TOGGLE_PREFIX),
            "seconds": elapsed,
        }

    def _log_size(self, node: str) -> int:
        log_file = self.member(node).agent_log
        return log_file.stat().st_size if log_file else 0

    def _log_since(self, node: str, size: int) -> str:
        log_file = self.member(node).agent_log
        return log_file.read_bytes()[size:].decode(errors="replace") if log_file else ""

    def _wait_hash_change(self, community: int) -> None:
        self._wait_config(lambda n: self.config_has(n, community), timeout=60)

    # -- failover -----------------------------------------------------------------------

    def failover(self, runs: int) -> list[Json]:
        results = []
        for node in ("node-a", "node-b"):
            member = self.member(node)
            times: list[float] = []
            for run in range(runs):
                self.wait_steady(timeout=120)
                log(f"failover: {node}'s router frozen ({run + 1}/{runs})")
                times.append(self._failover_once(member))
            results.append(
                {
                    "node": node,
                    "router": member.spec.router,
                    "seconds": summary(times),
                    "floor_bfd_detect": BFD_DETECT,
                    "target": 1.0,
                }
            )
        self.wait_steady(timeout=120)
        return results

    def _failover_once(self, member: LabNode) -> float:
        assert self.monitor is not None
        pids = [member.bird.pid] if member.bird and member.bird.pid else []
        pids += member.frr.pids if member.frr else []
        hop = member.spec.v4
        t0 = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:

            def lost() -> float | None:
                for event in self.monitor.snapshot() if self.monitor else []:
                    moved = event.deleted or hop not in event.gateways
                    if event.prefix == FAILOVER_PREFIX and event.at >= t0 and moved:
                        return event.at
                return None

            at = wait_for(lost, 20, interval=0.01, what=f"{FAILOVER_PREFIX} without {hop}")
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        return float(at) - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small counts, for development")
    parser.add_argument("--only", default="latency,bursts,hitless,failover")
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--spacing", type=float, default=0.05)
    parser.add_argument("--no-floor", action="store_true", help="skip the latency floor")
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--burst-changes", type=int, default=1000)
    parser.add_argument("--toggles", type=int, default=500)
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the results here (default: stdout)")
    parser.add_argument(
        "--source",
        choices=("dir", "api"),
        default="dir",
        help="the agents read a manifest directory, or the fake API server (latency only)",
    )
    args = parser.parse_args()
    if args.quick:
        args.services, args.bursts, args.toggles, args.failovers = 20, 1, 10, 1
    need_root()
    stop_on_signals()
    only = set(args.only.split(","))
    if args.source == "api":
        only &= {"latency"}
    out: Json = {
        "benchmark": "lab",
        "command": command_line(),
        "machine": machine(),
        "source": args.source,
    }
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="lbroute-bench-"))
    try:
        with Bench(workdir, args.source).running() as bench:
            if "latency" in only:
                out["latency"] = bench.latency(args.services, args.spacing, not args.no_floor)
            if "bursts" in only:
                out["bursts"] = bench.bursts(args.bursts, args.burst_changes)
            if "hitless" in only:
                out["hitless"] = bench.hitless(args.toggles)
            if "failover" in only:
                out["failover"] = bench.failover(args.failovers)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out["seconds"] = time.monotonic() - started
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
