#!/usr/bin/env python3
"""Local addresses (``announce: local``) on a real LAN: graceful handover, crash
failover and node failure at the default lease settings, against a takeover by hand.

A Linux bridge in a namespace of its own is the LAN (:class:`lbroute.lab.Lan`); three
node namespaces (n1, n2, n3) and a client are plugged into it. Each node runs the real
agent (``lbroute agent``, started through :class:`lbroute.lab.Lab`) on one manifest
directory and one shared ``--lease-dir``, at the default ``localLease`` (duration 2 s,
renew 0.5 s, so an address lifetime of 1 s). No router daemon runs: a local
ServiceGroup needs none. Every clock is ``time.monotonic()`` (one clock for every
namespace), in this process and in the client's probe.

Scenarios, interleaved round by round (the holder moves every run; the node that lost
it gets its agent back and is waited for before the next run):

- **graceful**: SIGTERM to the holder's agent (it removes the address, gives up its
  Lease; another node takes over at its next step);
- **killed**: SIGKILL to the holder's agent, the node stays up (its address leaves the
  NIC by its lifetime; the others count it gone after the Lease duration);
- **frozen**: SIGSTOP to the holder's agent and its LAN port down (a node failure);
- **floor**: the same move by hand, no agent involved: ``ip addr del`` on the holder,
  ``ip addr add`` on the next node, one ``arping -U`` (unsolicited ARP) from it, on an
  address outside the agents' pools.

Per run, the clock starts just before the signal (the first ``ip`` for the floor) and
stops at the first ICMP echo reply that comes back from the new holder's MAC address
to the client's probe: a process in the client namespace that sends an echo request to
the address every 10 ms (raw socket; the kernel resolves the neighbour as for any
traffic) and stamps every echo reply read on its ``AF_PACKET`` socket with its source
MAC. So the figure is the time until the client reaches the address again through the
new holder (10 ms resolution): election, the address on the NIC, the gratuitous ARP and
the client's neighbour entry. Pings lost: a separate ``ping -i 0.1`` from the client,
started 1 s before the event and stopped (SIGINT) 1 s after the new holder answers.
Afterwards, ``arping -b`` from the client must get replies from exactly one MAC address
(the new holder's), and exactly one node must have the address on its NIC.

    .venv/bin/python bench/local_bench.py [--quick] [--runs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from benchlib import (
    Json,
    command_line,
    distribution,
    log,
    machine,
    need_root,
    stop_on_signals,
    summary,
    wait_for,
    write_json,
)

from lbroute.lab import BirdInstance, Lab, LabNode, Lan, Netns, NodeSpec, kill
from lbroute.model.agentconfig import LocalLease

NODES = ("n1", "n2", "n3")
HOST = {"n1": 11, "n2": 12, "n3": 13, "client": 100}
ADDRESS = "10.77.0.50"
"""The Service's local address (the agents' pool is 10.77.0.50-59)."""
FLOOR_ADDRESS = "10.77.0.70"
"""Moved by hand for the floor: outside the pools, so no agent touches it."""
LEASE = LocalLease()
GRACEFUL_TARGET = 1.0
GRACEFUL_LOST = 1
CRASH_TARGET = LEASE.duration + LEASE.renew + 0.5
"""The documented failover bound after a crash: the Lease duration, one renew interval
(the next step of another agent) and half a second for that step and the GARP."""
SCENARIOS = ("floor", "graceful", "killed", "frozen")
ROWS = {
    "floor": "by hand: `ip addr del` + `ip addr add` on the next node + `arping -U`",
    "graceful": "graceful handover (SIGTERM to the holder's agent)",
    "killed": "crash failover, the holder's agent killed (SIGKILL, node up)",
    "frozen": "crash failover, the holder frozen (agent SIGSTOP, LAN port down)",
}

MANIFESTS = [
    {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "ServiceGroup",
        "metadata": {"name": "lan", "namespace": "lbroute"},
        "spec": {"announce": "local", "pools": [{"range": "10.77.0.50-10.77.0.59"}]},
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "lbroute.io/lbroute"},
        "status": {"loadBalancer": {"ingress": [{"ip": ADDRESS}]}},
    },
]

PROBE = textwrap.dedent(
    """
    import os, select, socket, struct, sys, time
    address, interval = sys.argv[1], float(sys.argv[2])
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    rx.bind(("eth0", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    tx.setsockopt(255, 1, struct.pack("I", 0xFFFFFFFF))  # ICMP_FILTER: read nothing here
    ident, target, payload = os.getpid() & 0xFFFF, socket.inet_aton(address), b"lbroute"

    def echo(seq):
        data = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload + b"\\0"
        total = sum(struct.unpack(f"!{len(data) // 2}H", data))
        total = (total >> 16) + (total & 0xFFFF)
        total = ~(total + (total >> 16)) & 0xFFFF
        return struct.pack("!BBHHH", 8, 0, total, ident, seq) + payload + b"\\0"

    print("ready", flush=True)
    seq, due = 0, time.monotonic()
    while True:
        now = time.monotonic()
        if now >= due:
            seq = (seq + 1) & 0xFFFF
            try:
                tx.sendto(echo(seq), (address, 0))
            except OSError:
                pass  # no neighbour yet: the next one tries again
            due = max(due + interval, now)
        if not select.select([rx], [], [], max(0.0, due - time.monotonic()))[0]:
            continue
        frame, meta = rx.recvfrom(2048)
        at = time.monotonic()
        ip = frame[14:]
        if meta[2] == 4 or len(ip) < 28 or ip[9] != 1 or ip[12:16] != target:
            continue  # sent by us, or not ICMP from the address
        icmp = ip[(ip[0] & 0xF) * 4:]
        if icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
            print(f"{at:.6f} {frame[6:12].hex(':')}", flush=True)
    """
)


class Probe:
    """The client's 10 ms echo probe of one address: every reply's time and source MAC."""

    def __init__(self, client: Netns, address: str, interval: float = 0.01) -> None:
        self.replies: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", client.name, sys.executable, "-c", PROBE, address,
             str(interval)],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._read, name="probe", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            self.stop()
            raise RuntimeError(f"the probe of {address} in the client did not start")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith("ready"):
                self._ready.set()
                continue
            at, mac = line.split()
            with self._lock:
                self.replies.append((float(at), mac))

    def first_from(self, mac: str, after: float) -> float | None:
        """When the first reply from ``mac`` at or after ``after`` was read."""
        with self._lock:
            return next((t for t, m in self.replies if m == mac and t >= after), None)

    def answering(self, mac: str, within: float = 0.1) -> bool:
        """The latest reply came from ``mac`` less than ``within`` seconds ago."""
        with self._lock:
            last = self.replies[-1] if self.replies else None
        return last is not None and last[1] == mac and time.monotonic() - last[0] < within

    def stop(self) -> None:
        kill(self._proc.pid)  # SIGTERM, SIGKILL after 5 s
        self._proc.wait()
        self._thread.join(timeout=5)


class Pings:
    """``ping -i 0.1`` from the client until :meth:`lost` stops it."""

    def __init__(self, client: Netns, address: str) -> None:
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", client.name, "ping", "-n", "-q", "-i", "0.1", address],
            stdout=subprocess.PIPE,
            text=True,
        )

    def lost(self) -> int:
        """Stop (SIGINT: ping prints its summary) and count the requests unanswered."""
        self._proc.send_signal(signal.SIGINT)
        out, _ = self._proc.communicate(timeout=10)
        counts = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        if counts is None:
            raise RuntimeError(f"ping said no summary: {out!r}")
        return int(counts.group(1)) - int(counts.group(2))

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


@dataclass
class Site:
    """The LAN, three nodes with agents (through :class:`Lab`) and the client."""

    workdir: Path
    lan: Lan = field(default_factory=lambda: Lan("lbl"))
    client: Netns = field(default_factory=lambda: Netns("lbc"))
    lab: Lab | None = None
    mac: dict[str, str] = field(default_factory=dict)
    probes: dict[str, Probe] = field(default_factory=dict)

    @property
    def source(self) -> Path:
        return self.workdir / "manifests"

    @property
    def leases(self) -> Path:
        return self.workdir / "leases"

    @contextlib.contextmanager
    def running(self) -> Iterator[Site]:
        try:
            self._build()
            yield self
        finally:
            self._teardown()

    def _build(self) -> None:
        self.lab = Lab(workdir=self.workdir / "lab", nodes=[], tag="lbl")
        self.lan.create()
        self.client.create()
        self._plug("client", self.client)
        for name in NODES:
            ns = Netns(f"lb{name}")
            directory = self.lab.workdir / name
            directory.mkdir(parents=True)
            # A BIRD that is never started: the agent's router arguments point at it.
            bird = BirdInstance(ns, directory / "bird")
            spec = NodeSpec(name=name, router="bird", v4=f"10.77.0.{HOST[name]}", v6="")
            self.lab.members[name] = LabNode(spec=spec, ns=ns, dir=directory, bird=bird)
            ns.create()
            self._plug(name, ns)
            ns.add_ifb("kube-lb0")
        self.source.mkdir()
        self.leases.mkdir()
        text = yaml.safe_dump_all(MANIFESTS, sort_keys=False)
        (self.source / "local.yaml").write_text(text, encoding="utf-8")
        for name in NODES:
            self.start_agent(name)
        self.probes[ADDRESS] = Probe(self.client, ADDRESS)
        self.probes[FLOOR_ADDRESS] = Probe(self.client, FLOOR_ADDRESS)

    def _plug(self, name: str, ns: Netns) -> None:
        self.mac[name] = self.lan.plug(ns)
        ns.ip("addr", "add", f"10.77.0.{HOST[name]}/24", "dev", "eth0")
        self.default_route(ns)

    @staticmethod
    def default_route(ns: Netns) -> None:
        """The agents' localInterface is "default": the interface of the default route
        (its gateway need not exist)."""
        ns.ip("route", "replace", "default", "via", "10.77.0.1", "dev", "eth0")

    def _teardown(self) -> None:
        for probe in self.probes.values():
            with contextlib.suppress(Exception):
                probe.stop()
        if self.lab is not None:
            for member in self.lab.members.values():
                if member.agent is not None:  # a stopped agent must run to stop
                    with contextlib.suppress(ProcessLookupError):
                        member.agent.send_signal(signal.SIGCONT)
            self.lab.stop()  # agents (SIGTERM, then SIGKILL), node namespaces
        self.client.delete()
        self.lan.delete()

    # -- the agents and the LAN ---------------------------------------------------------

    def node(self, name: str) -> LabNode:
        assert self.lab is not None
        return self.lab.members[name]

    def start_agent(self, name: str) -> None:
        assert self.lab is not None
        self.lab.start_agent(name, self.source, "--lease-dir", str(self.leases))

    def agent(self, name: str) -> subprocess.Popen[bytes]:
        proc = self.node(name).agent
        assert proc is not None, f"{name} runs no agent"
        return proc

    def holders(self, address: str) -> list[str]:
        found = []
        for name in NODES:
            shown = json.loads(self.node(name).ns.ip("-j", "addr", "show", "dev", "eth0"))
            if any(a.get("local") == address for link in shown for a in link["addr_info"]):
                found.append(name)
        return found

    def responders(self, address: str) -> set[str]:
        """The MAC addresses that answer the client's broadcast ARP requests (1 s apart,
        until two replies or 2 s)."""
        done = self.client.exec(
            "arping", "-b", "-c", "2", "-w", "2", "-I", "eth0", address, check=False
        )
        return {m.lower() for m in re.findall(r"reply from \S+ \[([0-9A-Fa-f:]+)\]", done.stdout)}

    def logs(self) -> str:
        tails = []
        for name in NODES:
            path = self.node(name).agent_log
            if path is not None and path.exists():
                lines = [ln for ln in path.read_text().splitlines() if "watchfiles" not in ln]
                tails.append(f"--- agent log of {name}:\n" + "\n".join(lines[-15:]))
        return "\n".join(tails)

    def steady(self, address: str, timeout: float = 30) -> str:
        """Wait until one node holds ``address`` and the client's probe is answered by
        it; that node."""

        def check() -> str | None:
            found = self.holders(address)
            if len(found) == 1 and self.probes[address].answering(self.mac[found[0]]):
                return found[0]
            return None

        try:
            holder: str = wait_for(check, timeout, 0.1, f"one holder of {address} answering")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.logs()}") from None
        return holder


# -- the runs -----------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    lost: int
    responders: int
    holders: int


def next_node(name: str) -> str:
    return NODES[(NODES.index(name) + 1) % len(NODES)]


def event(site: Site, scenario: str, holder: str, address: str) -> float:
    """Make ``holder`` lose ``address`` the scenario's way; the clock's start."""
    if scenario == "floor":
        new = site.node(next_node(holder)).ns
        start = time.monotonic()
        site.node(holder).ns.ip("addr", "del", f"{address}/24", "dev", "eth0")
        new.ip("addr", "add", f"{address}/24", "dev", "eth0")
        new.exec("arping", "-U", "-c", "1", "-I", "eth0", address)
        return start
    agent = site.agent(holder)
    sig = {"graceful": signal.SIGTERM, "killed": signal.SIGKILL, "frozen": signal.SIGSTOP}
    start = time.monotonic()
    agent.send_signal(sig[scenario])
    if scenario == "frozen":
        site.node(holder).ns.ip("link", "set", "eth0", "down")
    return start


def recover(site: Site, scenario: str, holder: str) -> None:
    """Give the node that lost the address its agent (and LAN port) back."""
    if scenario == "floor":
        return
    member = site.node(holder)
    agent = site.agent(holder)
    if scenario == "frozen":
        agent.kill()  # stopped: SIGKILL still ends it
    agent.wait(timeout=15)
    member.agent = None
    if scenario == "frozen":
        # Its address left the NIC by its lifetime; the port comes back after that,
        # and with it the default route that going down removed.
        wait_for(lambda: holder not in site.holders(ADDRESS), 10, 0.1, "the lifetime")
        member.ns.ip("link", "set", "eth0", "up")
        site.default_route(member.ns)
    site.start_agent(holder)


def one_run(site: Site, scenario: str, holder: str) -> tuple[Run, str]:
    address = FLOOR_ADDRESS if scenario == "floor" else ADDRESS
    probe = site.probes[address]
    pings = Pings(site.client, address)
    try:
        time.sleep(1.0)
        start = event(site, scenario, holder, address)
        macs = {site.mac[n]: n for n in NODES if n != holder}

        def reached() -> tuple[float, str] | None:
            found = [(t, m) for m in macs if (t := probe.first_from(m, start)) is not None]
            return min(found) if found else None

        try:
            at, mac = wait_for(reached, 15, 0.01, f"the client reaching {address} again")
        except TimeoutError as exc:
            raise TimeoutError(f"{scenario} from {holder}: {exc}\n{site.logs()}") from None
        time.sleep(1.0)
        lost = pings.lost()
    finally:
        pings.kill()
    new = macs[mac]
    answering = site.responders(address)
    held = site.holders(address)
    if answering != {mac} or held != [new]:
        log(f"  {scenario}: ARP answered by {sorted(answering)}, held by {held} (new {new})")
    recover(site, scenario, holder)
    return Run(at - start, lost, len(answering), len(held)), new


def settle(site: Site) -> None:
    """Every agent alive to the others again: a restarted agent publishes its Lease,
    reads it back and is counted alive within about a Lease duration."""
    time.sleep(LEASE.duration + LEASE.renew)


def bench(site: Site, runs: int) -> Json:
    results: dict[str, list[Run]] = {s: [] for s in SCENARIOS}
    holder = site.steady(ADDRESS)
    floor_holder = NODES[0]
    site.node(floor_holder).ns.ip("addr", "add", f"{FLOOR_ADDRESS}/24", "dev", "eth0")
    for i in range(runs):
        for scenario in SCENARIOS:
            if scenario == "floor":
                site.steady(FLOOR_ADDRESS)
                run, floor_holder = one_run(site, scenario, floor_holder)
            else:
                holder = site.steady(ADDRESS)
                run, holder = one_run(site, scenario, holder)
                settle(site)
            results[scenario].append(run)
            log(
                f"run {i + 1}/{runs} {scenario}: {run.seconds * 1000:.0f} ms, "
                f"{run.lost} pings lost, {run.responders} ARP responder(s)"
            )
    out = []
    for scenario, done in results.items():
        seconds = [r.seconds for r in done]
        lost = [float(r.lost) for r in done]
        entry: Json = {
            "scenario": scenario,
            "row": ROWS[scenario],
            "seconds": distribution(seconds),
            "samples": seconds,
            "lost_pings": summary(lost),
            "lost_samples": [r.lost for r in done],
            "one_responder": sum(r.responders == 1 and r.holders == 1 for r in done),
            "runs": len(done),
        }
        if scenario == "graceful":
            entry |= {"target_seconds": GRACEFUL_TARGET, "target_lost": GRACEFUL_LOST}
        elif scenario != "floor":
            entry |= {"target_seconds": CRASH_TARGET}
        out.append(entry)
    return {"scenarios": out}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 runs of each scenario")
    parser.add_argument("--runs", type=int, default=20, help="runs of each scenario")
    parser.add_argument("--json", type=Path, help="write the results here (default: stdout)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, not {args.runs}")
    if args.quick:
        args.runs = 3
    need_root()
    if shutil.which("arping") is None:
        raise SystemExit("arping is not installed (run make install)")
    stop_on_signals()
    out: Json = {
        "benchmark": "local",
        "command": command_line(),
        "machine": machine(),
        "lease": {
            "duration": LEASE.duration,
            "renew": LEASE.renew,
            "address_lifetime": LEASE.address_lifetime,
        },
    }
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="lbroute-bench-local-"))
    try:
        with Site(workdir).running() as site:
            out |= bench(site, args.runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out["seconds"] = time.monotonic() - started
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
