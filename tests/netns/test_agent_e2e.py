"""The node agent end to end: real agents, real BIRD and FRR, a real upstream router.

Two labs (:class:`lbroute.lab.Lab`), one per upstream router, FRR and BIRD. Each has
node-a running BIRD and node-b running FRR, both with an agent watching a copy of
``examples/lab``, so every lab checks two pairings at once: BIRD and FRR nodes toward an
FRR upstream (IS-IS too), and toward a BIRD upstream. What is checked is what the
upstream router learned and put in its kernel: prefix, protocol and the nodes behind
the next hops; and, where it matters, its RIB, its BGP attributes and message counters.

- A Service of each ServiceGroup (BGP, OSPFv2/v3, RIP/RIPng, IS-IS; IPv4 and IPv6)
  appears and goes with its manifest, carried only by the group's protocol.
- ETP Local: the host route comes only from the node with a ready endpoint and follows
  the endpoint; ETP Cluster prefixes are ECMP routes through both nodes.
- Removing one Service of a shared aggregate (the primary IPv4 address on kube-lb0
  first) never withdraws the aggregate: no kernel route deletion upstream, no BGP
  UPDATE, both next hops in every sample.
- An agent restart with unchanged inputs touches nothing: no kube-lb0 event, no
  router reload (last apply "Unchanged"), BGP sessions keep their uptime.
- A policy change (BGP community, OSPF metric) reaches the upstream without resetting a
  BGP session or moving a route.
- A broken user template, an invalid ServiceGroup and a manifest file that stops
  parsing keep the routes, are reported in ``lbroute status``, and fixing them recovers.
- A ServiceGroup edited into an invalid one (a /33, a misspelt ``pools``) keeps its last
  valid version: its routes and addresses stay, ``lbroute status`` says so; deleting
  it withdraws them.
- A templates directory named on the NodeAgent (a mounted ConfigMap, a Git checkout) is
  watched: a change is applied, a broken template keeps the last good configuration.
- The node's router daemon killed and restarted: the routes come back, the agent keeps
  running.

Each test starts from the example's state: the fixture restores the manifests and waits
until the upstream table and both agents' configuration hash are back to the baseline.
What only the node decides (restart, broken inputs, templates, metrics: ``NODE_SIDE``)
runs with the FRR upstream only; the BIRD upstream runs the rest.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbroute.lab import Lab, NodeSpec, run
from tests.netns.lab import needs_root

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lab"
NODES = (
    NodeSpec(name="node-a", router="bird", v4="10.0.0.11", v6="fd00::11"),
    NodeSpec(name="node-b", router="frr", v4="10.0.0.12", v6="fd00::12"),
)
BOTH = ("node-a", "node-b")
SERVICE_SPACE = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
LOCAL = "192.0.2.20/32"
"""The host route of the example's ETP Local Service web-local."""

_CLUSTER = (
    "192.0.2.10/24",
    "192.0.2.11/24",
    "198.51.100.10/24",
    "203.0.113.10/25",
    "2001:db8:1::10/64",
    "2001:db8:2::10/64",
    "2001:db8:3::10/64",
)
ADDRESSES = {
    "node-a": frozenset({*_CLUSTER, "192.0.2.20/32"}),
    "node-b": frozenset({*_CLUSTER, "203.0.113.130/25", "2001:db8:4::10/64"}),
}
"""kube-lb0 of each node for the example: the IS-IS group selects FRR nodes only, and
web-local's endpoint is on node-a."""

View = dict[str, tuple[str, tuple[str, ...]]]
"""The upstream kernel's Service routes: prefix -> (protocol, nodes behind the next hops)."""


@dataclass(frozen=True, kw_only=True)
class Group:
    name: str
    services: tuple[str, ...]
    """The example's ETP Cluster Services in this group."""
    prefixes: tuple[str, str]
    """IPv4 and IPv6 aggregate."""
    protocols: tuple[str, str]
    """How the upstream kernel names the protocol of each."""
    probe: tuple[str, str]
    """Addresses for a new Service in the group."""
    nodes: tuple[str, ...] = BOTH
    frr_only: bool = False


GROUPS = {
    g.name: g
    for g in (
        Group(
            name="web",
            services=("web-1", "web-2"),
            prefixes=("192.0.2.0/24", "2001:db8:1::/64"),
            protocols=("bgp", "bgp"),
            probe=("192.0.2.50", "2001:db8:1::50"),
        ),
        Group(
            name="campus",
            services=("campus-1",),
            prefixes=("198.51.100.0/24", "2001:db8:2::/64"),
            protocols=("ospf", "ospf"),
            probe=("198.51.100.50", "2001:db8:2::50"),
        ),
        Group(
            name="legacy",
            services=("legacy-1",),
            prefixes=("203.0.113.0/25", "2001:db8:3::/64"),
            protocols=("rip", "ripng"),
            probe=("203.0.113.50", "2001:db8:3::50"),
        ),
        Group(
            name="core",
            services=("core-1",),
            prefixes=("203.0.113.128/25", "2001:db8:4::/64"),
            protocols=("isis", "isis"),
            probe=("203.0.113.150", "2001:db8:4::50"),
            nodes=("node-b",),
            frr_only=True,
        ),
    )
}


def baseline(upstream: str) -> View:
    view: View = {LOCAL: ("bgp", ("node-a",))}
    for group in GROUPS.values():
        if group.frr_only and upstream != "frr":
            continue
        for prefix, proto in zip(group.prefixes, group.protocols, strict=True):
            view[prefix] = (proto, group.nodes)
    return view


def service(name: str, addresses: tuple[str, ...]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "lbroute.io/lbroute"},
        "status": {"loadBalancer": {"ingress": [{"ip": a} for a in addresses]}},
    }


def write_atomic(path: Path, text: str) -> None:
    """Readers (the agents) see the old file or the new one, never half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Monitor:
    """``ip monitor`` in one namespace, listening from ``__enter__`` until ``__exit__``
    (it is known to listen once it reported a marker route added for the purpose)."""

    MARKER = "198.18.255.1"

    def __init__(self, lab: Lab, netns: str, output: Path, *objects: str) -> None:
        self.lab = lab
        self.netns = netns
        self.output = output
        self.objects = objects
        self.lines: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Monitor:
        with self.output.open("wb") as out:
            self._proc = subprocess.Popen(
                ["ip", "-n", self.netns, "monitor", *self.objects], stdout=out
            )
        try:
            self.lab.wait_for(self._marker_seen, timeout=10)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _marker_seen(self) -> bool:
        marker = ("blackhole", self.MARKER, "table", "4000")
        run("ip", "-n", self.netns, "route", "add", *marker)
        run("ip", "-n", self.netns, "route", "del", *marker)
        return self.MARKER in self.output.read_text()

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.terminate()
        self._proc.wait(timeout=10)
        text = self.output.read_text()
        self.lines = [line for line in text.splitlines() if self.MARKER not in line]

    def mentioning(self, *words: str) -> list[str]:
        return [line for line in self.lines if any(w in line for w in words)]


@dataclass
class Env:
    lab: Lab
    upstream: str
    source: Path
    templates: Path
    baseline: View
    hashes: dict[str, str] = field(default_factory=dict)
    """Each node's configuration hash for the example's objects."""

    # -- the agents' inputs -----------------------------------------------------------

    def start_agent(self, node: str) -> None:
        self.lab.start_agent(node, self.source, "--templates", str(self.templates))

    def write(self, name: str, text: str) -> None:
        write_atomic(self.source / name, text)

    def write_objects(self, name: str, objects: list[dict[str, Any]]) -> None:
        self.write(name, yaml.safe_dump_all(objects, sort_keys=False))

    def remove(self, name: str) -> None:
        (self.source / name).unlink()

    def objects(self, name: str) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all((self.source / name).read_text()) if d]

    def drop_services(self, *names: str) -> None:
        """Delete the example's Services ``names`` from services.yaml."""
        self.write_objects(
            "services.yaml",
            [
                o
                for o in self.objects("services.yaml")
                if not (o["kind"] == "Service" and o["metadata"]["name"] in names)
            ],
        )

    def edit(self, name: str, kind: str, obj_name: str, change: Callable[[Any], None]) -> None:
        objects = self.objects(name)
        found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == obj_name]
        assert len(found) == 1, f"{kind} {obj_name} in {name}"
        change(found[0])
        self.write_objects(name, objects)

    def restore(self) -> None:
        """The example's manifests, no user templates, both agents running."""
        for path in sorted(self.source.rglob("*"), reverse=True):
            if (EXAMPLE / path.relative_to(self.source)).exists():
                continue
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
        for pristine in EXAMPLE.iterdir():
            target = self.source / pristine.name
            if not target.exists() or target.read_bytes() != pristine.read_bytes():
                write_atomic(target, pristine.read_text(encoding="utf-8"))
        for router in ("bird", "frr"):
            for path in (self.templates / router).iterdir():
                path.unlink()
        for node in BOTH:
            agent = self.lab.members[node].agent
            if agent is None or agent.poll() is not None:
                self.lab.stop_agent(node)
                self.start_agent(node)

    # -- what the agents report -------------------------------------------------------

    def status(self, node: str) -> dict[str, Any]:
        return self.lab.status(node)

    def result(self, node: str) -> str:
        return str(self.status(node).get("last_apply", {}).get("result", ""))

    def cli_status(self, node: str, *args: str) -> str:
        """``lbroute status`` as an operator runs it on the node."""
        proc = run(
            sys.executable,
            "-m",
            "lbroute",
            "status",
            "--status-file",
            str(self.lab.members[node].status_file),
            *args,
        )
        return proc.stdout

    def at_baseline(self) -> bool:
        for node in BOTH:
            status = self.status(node)
            if status.get("config_hash") != self.hashes.get(node) or status.get("problems"):
                return False
            if self.result(node) not in ("Applied", "Unchanged"):
                return False
            if self.kube_lb0(node) != ADDRESSES[node]:
                return False
        return self.view() == self.baseline

    # -- the nodes ----------------------------------------------------------------------

    def kube_lb0(self, node: str) -> frozenset[str]:
        out = self.lab.members[node].ns.ip("-j", "addr", "show", "dev", "kube-lb0")
        return frozenset(
            f"{a['local']}/{a['prefixlen']}"
            for link in json.loads(out or "[]")
            for a in link.get("addr_info", [])
            if not a["local"].startswith("fe80")
        )

    def bgp_sessions(self) -> dict[str, tuple[Any, ...]]:
        """What identifies each node's BGP sessions to the upstream: BIRD's "Since"
        (reset when the session restarts); FRR's count of sessions established, and
        the uptime in milliseconds."""
        sessions: dict[str, tuple[Any, ...]] = {}
        node_a = self.lab.members["node-a"]
        assert node_a.bird is not None
        for line in node_a.bird.birdc("show", "protocols").stdout.splitlines():
            fields = line.split()
            if fields and fields[0].startswith("lbr_bgp"):
                assert fields[3] == "up" and fields[-1] == "Established", line
                sessions[f"node-a {fields[0]}"] = (fields[4],)
        node_b = self.lab.members["node-b"]
        assert node_b.frr is not None
        summary = json.loads(node_b.frr.vtysh("show bgp summary json").stdout)
        for family in summary.values():
            for peer, info in family.get("peers", {}).items():
                assert info["state"] == "Established", (peer, info)
                sessions[f"node-b {peer}"] = (
                    info["connectionsEstablished"],
                    info["peerUptimeMsec"],
                )
        assert len(sessions) == 4, sessions
        return sessions

    # -- the upstream -------------------------------------------------------------------

    def view(self) -> View:
        return {
            r.prefix: (r.proto, self.lab.via(r)) for r in self.lab.routes() if _is_service(r.prefix)
        }

    def sample(
        self, until: Callable[[], Any], settle: float = 0.0, timeout: float = 30.0
    ) -> list[View]:
        """The upstream view, as often as it can be read, until ``until()`` holds and
        ``settle`` seconds more."""
        samples = []
        deadline = time.monotonic() + timeout
        done_at: float | None = None
        while done_at is None or time.monotonic() < done_at + settle:
            samples.append(self.view())
            if done_at is None and until():
                done_at = time.monotonic()
            if time.monotonic() >= deadline + settle:
                raise AssertionError(f"{until} not reached in {timeout:g}s\n{self.diagnosis()}")
        return samples

    def diagnosis(self) -> str:
        """What a failed wait leaves behind to read in CI's log: the upstream's view
        against the baseline, and each node's last apply, problems and agent log tail."""
        lines = [f"upstream view: {self.view()}", f"baseline:      {self.baseline}"]
        campus = GROUPS["campus"].prefixes
        lines.append(f"upstream OSPF metrics: { {p: self.ospf_metric(p) for p in campus} }")
        for node in BOTH:
            status = self.status(node)
            lines.append(
                f"{node}: last_apply {status.get('last_apply')}, problems"
                f" {status.get('problems')}, kube-lb0 {sorted(self.kube_lb0(node))}"
            )
            log = self.lab.members[node].agent_log
            if log is not None and log.exists():
                tail = log.read_text(errors="replace").splitlines()[-12:]
                lines += [f"  {node} agent.log: {line}" for line in tail]
        # The distance-vector protocols keep their own tables, which the kernel views
        # above do not show: what each FRR speaker holds and from whom.
        speakers = {"node-b": self.lab.members["node-b"].frr, "upstream": self.lab.upstream_frr}
        for name, frr in speakers.items():
            if frr is None:
                continue
            for command in ("show ip rip", "show ipv6 ripng"):
                out = frr.vtysh(command, check=False).stdout.splitlines()
                lines += [f"  {name} {command}: {line}" for line in out if "/" in line]
        return "\n".join(lines)

    def wait(self, check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
        """``Lab.wait_for``, failing as a test failure that says what was awaited."""
        try:
            return self.lab.wait_for(check, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{what or 'condition'}: {exc}\n{self.diagnosis()}") from None

    def wait_view(self, want: Callable[[View], bool], timeout: float = 30.0) -> View:
        """The upstream view, once ``want`` accepts it."""
        last: list[View] = [{}]

        def check() -> bool:
            last[0] = self.view()
            return want(last[0])

        try:
            self.lab.wait_for(check, timeout)
        except TimeoutError:
            raise AssertionError(
                f"upstream view not reached in {timeout:g}s: {last[0]}\n{self.diagnosis()}"
            ) from None
        return last[0]

    def rib(self, prefix: str) -> set[str]:
        """The protocols the upstream's RIB has ``prefix`` from, best or not."""
        v6 = ":" in prefix
        if self.upstream == "frr":
            assert self.lab.upstream_frr is not None
            command = f"show {'ipv6' if v6 else 'ip'} route {prefix} json"
            entries = json.loads(self.lab.upstream_frr.vtysh(command).stdout).get(prefix, [])
            return {{"ospf6": "ospf"}.get(e["protocol"], e["protocol"]) for e in entries}
        bird = self.lab.upstream_bird
        assert bird is not None
        kinds = {}
        for line in bird.birdc("show", "protocols").stdout.splitlines()[2:]:
            name, proto = line.split()[:2]
            kinds[name] = {"BGP": "bgp", "OSPF": "ospf", "RIP": "ripng" if v6 else "rip"}.get(
                proto, proto
            )
        out = bird.birdc("show", "route", prefix, check=False).stdout
        return {kinds[name] for name in re.findall(r"^\S*\s+\w+ \[(\S+) ", out, re.M)}

    def communities(self, prefix: str) -> dict[str, frozenset[str]]:
        """The BGP communities on each node's path to ``prefix``, at the upstream."""
        found: dict[str, frozenset[str]] = {}
        if self.upstream == "frr":
            assert self.lab.upstream_frr is not None
            family = "ipv6" if ":" in prefix else "ipv4"
            out = self.lab.upstream_frr.vtysh(f"show bgp {family} unicast {prefix} json").stdout
            for path in json.loads(out).get("paths", []):
                node = self.lab.node_of(path["peer"]["peerId"])
                found[node] = frozenset(path.get("community", {}).get("list", []))
            return found
        assert self.lab.upstream_bird is not None
        out = self.lab.upstream_bird.birdc("show", "route", prefix, "all", check=False).stdout
        for block in re.split(r"\n(?=\S|\s+unicast )", out):
            hop = re.search(r"BGP\.next_hop: (\S+)", block)
            if hop:
                listed = re.search(r"BGP\.community: (.*)", block)
                pairs = re.findall(r"\((\d+),(\d+)\)", listed.group(1) if listed else "")
                found[self.lab.node_of(hop.group(1))] = frozenset(f"{a}:{b}" for a, b in pairs)
        return found

    def bgp_paths(self, prefix: str) -> dict[str, tuple[frozenset[str], str, int | None]]:
        """Each node's path to exactly ``prefix`` at the upstream: its communities and
        large communities, AS path and MED (None when it has none)."""
        found: dict[str, tuple[frozenset[str], str, int | None]] = {}
        if self.upstream == "frr":
            assert self.lab.upstream_frr is not None
            family = "ipv6" if ":" in prefix else "ipv4"
            out = self.lab.upstream_frr.vtysh(f"show bgp {family} unicast {prefix} json").stdout
            data = json.loads(out or "{}")
            if data.get("prefix") != prefix:
                return found
            for path in data.get("paths", []):
                tags = path.get("community", {}).get("string", "").split()
                tags += path.get("largeCommunity", {}).get("string", "").split()
                found[self.lab.node_of(path["peer"]["peerId"])] = (
                    frozenset(tags),
                    str(path.get("aspath", {}).get("string", "")),
                    path.get("metric"),
                )
            return found
        assert self.lab.upstream_bird is not None
        text = self.lab.upstream_bird.birdc("show", "route", prefix, "all", check=False).stdout
        for block in re.split(r"\n(?=\S|\s+unicast )", text):
            hop, net = re.search(r"BGP\.next_hop: (\S+)", block), re.match(r"(\S+/\d+)", block)
            if hop is None or (net is not None and net.group(1) != prefix):
                continue
            pairs = re.findall(r"BGP\.community: (.*)", block)
            larges = re.findall(r"BGP\.large_community: (.*)", block)
            tags = re.findall(r"\((\d+), ?(\d+)\)", pairs[0] if pairs else "")
            big = re.findall(r"\((\d+), (\d+), (\d+)\)", larges[0] if larges else "")
            path = re.search(r"BGP\.as_path: (.*)", block)
            med = re.search(r"BGP\.med: (\d+)", block)
            found[self.lab.node_of(hop.group(1))] = (
                frozenset([*(f"{a}:{b}" for a, b in tags), *(":".join(t) for t in big)]),
                path.group(1).strip() if path else "",
                int(med.group(1)) if med else None,
            )
        return found

    def ospf_metric(self, prefix: str) -> int | None:
        """The type 2 external metric of the upstream's OSPF route to ``prefix``."""
        if self.upstream == "frr":
            assert self.lab.upstream_frr is not None
            command = f"show {'ipv6' if ':' in prefix else 'ip'} route {prefix} json"
            entries = json.loads(self.lab.upstream_frr.vtysh(command).stdout).get(prefix, [])
            metrics = [e["metric"] for e in entries if e["protocol"] in ("ospf", "ospf6")]
            return int(metrics[0]) if metrics else None
        assert self.lab.upstream_bird is not None
        out = self.lab.upstream_bird.birdc("show", "route", prefix, "all", check=False).stdout
        m = re.search(r"OSPF\.metric2: (\d+)", out)
        return int(m.group(1)) if m else None

    def bgp_messages_received(self) -> int:
        """UPDATE messages (announcements and withdrawals) the upstream received."""
        if self.upstream == "frr":
            assert self.lab.upstream_frr is not None
            out = self.lab.upstream_frr.vtysh("show bgp neighbors json").stdout
            return sum(
                int(n["messageStats"]["updatesRecv"])
                for n in json.loads(out).values()
                if isinstance(n, dict) and "messageStats" in n
            )
        assert self.lab.upstream_bird is not None
        out = self.lab.upstream_bird.birdc("show", "protocols", "all").stdout
        return sum(int(n) for n in re.findall(r"Import (?:updates|withdraws):\s+(\d+)", out))


def moved(samples: list[View], want: View) -> list[dict[str, Any]]:
    """How the samples that differ from ``want`` differ from it (each change once)."""
    found: list[dict[str, Any]] = []
    for view in samples:
        diff = {p: view.get(p) for p in view.keys() | want.keys() if view.get(p) != want.get(p)}
        if diff and diff not in found:
            found.append(diff)
    return found


def assert_sessions_kept(
    before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]], elapsed: float
) -> None:
    """No BGP session of ``before`` restarted in the ``elapsed`` seconds since."""
    assert after.keys() == before.keys()
    for name, mark in before.items():
        kept = after[name][0] == mark[0]
        if name.startswith("node-a"):  # BIRD's "Since": a wall-clock time BIRD derives
            # from its monotonic clock at each query, so the same instant may print 1 ms
            # apart; a restart happens seconds later.
            kept = kept or abs(_clock_ms(after[name][0]) - _clock_ms(mark[0])) <= 50
        assert kept, f"BGP session {name} restarted: {mark} {after[name]}"
        if name.startswith("node-b"):  # FRR's uptime (in whole seconds) kept growing
            assert after[name][1] >= mark[1] + (elapsed - 2) * 1000, (name, mark, after[name])


def _clock_ms(since: str) -> float:
    """BIRD's "Since" of today (``01:57:41.670``) in milliseconds; NaN for another
    form (a date), which then only equals itself."""
    try:
        hours, minutes, seconds = since.split(":")
        return (int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000
    except ValueError:
        return float("nan")


def _is_service(prefix: str) -> bool:
    net = ipaddress.ip_network(prefix)
    if isinstance(net, ipaddress.IPv4Network):
        return any(net.subnet_of(s) for s in SERVICE_SPACE if isinstance(s, ipaddress.IPv4Network))
    return any(net.subnet_of(s) for s in SERVICE_SPACE if isinstance(s, ipaddress.IPv6Network))


@pytest.fixture(scope="module", params=["frr", "bird"], ids=["upstream-frr", "upstream-bird"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One lab per upstream router for the whole module. Its agents watch a copy of
    examples/lab and an empty templates directory; the example's routes are up before
    the first test. The lab is stopped whatever happens."""
    needs_root()
    upstream = str(request.param)
    work = tmp_path_factory.mktemp(f"e2e-{upstream}")
    source, templates = work / "source", work / "templates"
    shutil.copytree(EXAMPLE, source)
    (templates / "bird").mkdir(parents=True)
    (templates / "frr").mkdir()
    lab = Lab(workdir=work / "lab", nodes=list(NODES), upstream_router=upstream, tag="e2e")
    try:
        lab.start()
        env = Env(
            lab=lab,
            upstream=upstream,
            source=source,
            templates=templates,
            baseline=baseline(upstream),
        )
        for node in BOTH:
            env.start_agent(node)
        env.wait_view(lambda v: v == env.baseline, timeout=90)
        for node in BOTH:

            def applied(n: str = node) -> dict[str, Any] | bool:
                return env.result(n) == "Applied" and env.status(n)

            status = env.wait(applied)
            assert status["problems"] == [], status["problems"]
            env.hashes[node] = status["config_hash"]
            assert env.kube_lb0(node) == ADDRESSES[node]
        yield env
    finally:
        lab.stop()


NODE_SIDE = {
    "test_agent_restart_with_unchanged_inputs_changes_nothing",
    "test_a_broken_template_keeps_the_routes_is_reported_and_recovers",
    "test_invalid_objects_and_files_keep_the_routes_are_reported_and_recover",
    "test_a_group_edited_into_an_invalid_one_keeps_its_routes_until_deleted",
    "test_a_templates_directory_named_on_the_nodeagent_is_watched",
    "test_a_running_agent_exports_what_the_alerts_and_dashboard_use",
}
"""What the node does with its inputs, whatever router is upstream: run once, against
the FRR upstream. The BIRD upstream runs what depends on the upstream: every protocol's
announcements and withdrawals, ETP Local and ECMP, shared aggregates, a node's router
restarting and policy changes without session resets."""


@pytest.fixture(autouse=True)
def fresh(env: Env, request: pytest.FixtureRequest) -> Env:
    """Start every test from the example's state, whatever the previous test left."""
    if env.upstream == "bird" and request.node.originalname in NODE_SIDE:
        pytest.skip("node-side behaviour, run once with the FRR upstream")
    env.restore()
    env.wait(env.at_baseline, timeout=60, what="back to the example's state")
    return env


# -- 1. every protocol, both families ---------------------------------------------------


@pytest.mark.parametrize("name", list(GROUPS))
def test_a_service_appears_and_goes_with_its_groups_protocol_only(env: Env, name: str) -> None:
    group = GROUPS[name]
    if group.frr_only and env.upstream != "frr":
        pytest.skip("IS-IS exists only in FRR; the BIRD upstream runs none")
    prefixes = set(group.prefixes)
    others = {p: r for p, r in env.baseline.items() if p not in prefixes}
    wanted = {
        prefix: (proto, group.nodes)
        for prefix, proto in zip(group.prefixes, group.protocols, strict=True)
    }

    def only_the_groups_protocol(view: View) -> bool:
        for prefix in prefixes & view.keys():
            assert view[prefix][0] == wanted[prefix][0], (prefix, view[prefix])
        return True

    # The example's Services of the group go: the group's aggregates are withdrawn.
    env.drop_services(*group.services)
    view = env.wait_view(lambda v: not prefixes & v.keys())
    assert view == others

    # A Service appears: each aggregate, from every node of the group, by its protocol.
    env.write_objects("probe.yaml", [service("probe", group.probe)])
    view = env.wait_view(
        lambda v: only_the_groups_protocol(v) and all(v.get(p) == wanted[p] for p in prefixes)
    )
    assert view == others | wanted
    for prefix, proto in zip(group.prefixes, group.protocols, strict=True):
        assert env.rib(prefix) == {proto}, f"{prefix} must come by {proto} only"
    probe_addresses = {
        f"{address}/{prefix.split('/')[1]}"
        for address, prefix in zip(group.probe, group.prefixes, strict=True)
    }
    for node in BOTH:
        on_node = probe_addresses <= env.kube_lb0(node)
        assert on_node == (node in group.nodes), (node, env.kube_lb0(node))

    # The Service goes: withdrawn everywhere, the rest untouched.
    env.remove("probe.yaml")
    view = env.wait_view(lambda v: not prefixes & v.keys())
    assert view == others
    for prefix in prefixes:
        assert env.rib(prefix) == set()


# -- 2. ETP Local ----------------------------------------------------------------------


def _ready_on(node: str | None) -> Callable[[Any], None]:
    def change(endpoint_slice: Any) -> None:
        (endpoint,) = endpoint_slice["endpoints"]
        if node is None:
            endpoint["conditions"]["ready"] = False
        else:
            endpoint["nodeName"] = node

    return change


def test_etp_local_comes_from_the_endpoints_node_and_follows_it(env: Env) -> None:
    host = LOCAL  # web-local's address, as a host route on kube-lb0
    assert env.view()[LOCAL] == ("bgp", ("node-a",))
    assert host in env.kube_lb0("node-a") and host not in env.kube_lb0("node-b")

    env.edit("services.yaml", "EndpointSlice", "web-local-abcde", _ready_on("node-b"))
    view = env.wait_view(lambda v: v.get(LOCAL) == ("bgp", ("node-b",)))
    assert view == env.baseline | {LOCAL: ("bgp", ("node-b",))}
    assert host in env.kube_lb0("node-b") and host not in env.kube_lb0("node-a")

    env.edit("services.yaml", "EndpointSlice", "web-local-abcde", _ready_on(None))
    view = env.wait_view(lambda v: LOCAL not in v)
    assert view == {p: r for p, r in env.baseline.items() if p != LOCAL}
    assert all(host not in env.kube_lb0(node) for node in BOTH)


# -- 3. ECMP -------------------------------------------------------------------------


def test_etp_cluster_prefixes_are_ecmp_routes_through_both_nodes(env: Env) -> None:
    for prefix in ("192.0.2.0/24", "2001:db8:1::/64"):
        route = env.lab.route(prefix)
        assert route is not None and route.proto == "bgp"
        assert len(set(route.nexthops)) == 2, route
        assert env.lab.via(route) == BOTH, route
    for group in (GROUPS["campus"], GROUPS["legacy"]):
        for prefix, proto in zip(group.prefixes, group.protocols, strict=True):
            route = env.lab.route(prefix)
            assert route is not None and route.proto == proto, route
            assert env.lab.via(route) == BOTH, route


# -- 4. shared aggregates ------------------------------------------------------------


def test_removing_one_service_never_withdraws_a_shared_aggregate(env: Env) -> None:
    aggregates = ("192.0.2.0/24", "2001:db8:1::/64")
    env.write_objects("web-3.yaml", [service("web-3", ("192.0.2.12", "2001:db8:1::12"))])
    for node in BOTH:

        def added(n: str = node) -> bool:
            return {"192.0.2.12/24", "2001:db8:1::12/64"} <= env.kube_lb0(n)

        env.wait(added)
    messages = env.bgp_messages_received()

    def gone(address: str) -> Callable[[], bool]:
        return lambda: all(address not in env.kube_lb0(node) for node in BOTH)

    assert env.lab.upstream is not None
    monitor = Monitor(env.lab, env.lab.upstream.name, env.lab.workdir / "monitor", "route")
    with monitor:
        # 192.0.2.10 is the primary IPv4 address of the subnet on kube-lb0: the kernel
        # promotes 192.0.2.11 in its place.
        env.drop_services("web-1")
        samples = env.sample(until=gone("192.0.2.10/24"), settle=2.0)
        env.drop_services("web-1", "web-2")
        samples += env.sample(until=gone("192.0.2.11/24"), settle=2.0)

    assert len(samples) > 20
    for view in samples:
        for prefix in aggregates:
            assert view.get(prefix) == ("bgp", BOTH), view
    assert monitor.mentioning(*aggregates) == []
    assert env.bgp_messages_received() == messages, "the upstream received BGP UPDATEs"


# -- 5. agent restart ------------------------------------------------------------------


def test_agent_restart_with_unchanged_inputs_changes_nothing(env: Env) -> None:
    addresses = {node: env.kube_lb0(node) for node in BOTH}
    sessions = env.bgp_sessions()
    logs = {}
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        monitors = [
            stack.enter_context(
                Monitor(env.lab, member.ns.name, member.dir / "monitor", "address", "route")
            )
            for member in (env.lab.members[n] for n in BOTH)
        ]
        for node in BOTH:
            env.lab.stop_agent(node)
            env.lab.members[node].status_file.unlink()
        samples = env.sample(until=lambda: True)
        assert {node: env.kube_lb0(node) for node in BOTH} == addresses
        for node in BOTH:
            log = env.lab.members[node].dir / "agent.log"
            logs[node] = (log, log.stat().st_size)
            env.start_agent(node)
        # Two router checks at least after the first pass: a reload would show.
        samples += env.sample(until=lambda: all(env.result(n) for n in BOTH), settle=2.5)
        shrunk = [
            (node, addresses[node] - now)
            for node in BOTH
            for now in [env.kube_lb0(node)]
            if not addresses[node] <= now
        ]
        assert shrunk == []

    assert moved(samples, env.baseline) == []
    for monitor in monitors:
        assert monitor.mentioning("kube-lb0", "table 4242") == []
    for node in BOTH:
        status = env.status(node)
        assert status["last_apply"]["result"] == "Unchanged", status["last_apply"]
        assert status["config_hash"] == env.hashes[node]
        assert env.kube_lb0(node) == addresses[node]
        log, size = logs[node]
        new_lines = log.read_bytes()[size:].decode()
        assert "applied" not in new_lines and "added" not in new_lines, new_lines
    assert_sessions_kept(sessions, env.bgp_sessions(), time.monotonic() - started)


# -- 6. errors -------------------------------------------------------------------------

BAD_BIRD_BGP = "protocol bgp lbr_broken {\n  neighbor;\n}\n"
BAD_FRR_BGP = "router bgp 64512\n neighbor 10.0.0.1 no-such-option\nexit\n"
BROKEN_GROUP = """\
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {name: broken, namespace: lbroute}
spec:
  protocols: [bgp]
  pools: [{cidr: 198.18.0.0/24}, {cidr: 198.18.1.1/24}]
"""


def test_a_broken_template_keeps_the_routes_is_reported_and_recovers(env: Env) -> None:
    sessions = env.bgp_sessions()
    started = time.monotonic()

    # Templates that render what the routers' parsers refuse.
    write_atomic(env.templates / "bird" / "bgp.j2", BAD_BIRD_BGP)
    write_atomic(env.templates / "frr" / "bgp.j2", BAD_FRR_BGP)
    samples = env.sample(until=lambda: all(env.result(n) == "Failed" for n in BOTH), settle=1.0)
    said = {"node-a": "protocol bgp lbr_broken", "node-b": "no-such-option"}
    for node in BOTH:
        doc = json.loads(env.cli_status(node, "--json"))
        assert doc["last_apply"]["result"] == "Failed"
        assert said[node] in doc["last_apply"]["error"], doc["last_apply"]["error"]
        assert doc["config_hash"] == env.hashes[node], "the last good configuration runs"
        table = env.cli_status(node)
        assert "last apply:  Failed" in table and said[node] in table
        # ... and stays on disk, for a router that restarts.
        config = env.lab.members[node].config_path.read_bytes()
        assert hashlib.sha256(config).hexdigest()[:16] == env.hashes[node]

    # A template Jinja cannot even read: nothing to apply, a problem to report.
    write_atomic(env.templates / "bird" / "bgp.j2", "{% if %}\n")
    samples += env.sample(
        until=lambda: any("cannot render the bird" in p for p in env.status("node-a")["problems"])
    )
    assert env.status("node-a")["config_hash"] == env.hashes["node-a"]

    # The agent restarted while the template stays broken: it reports the configuration
    # the router keeps running, not an empty hash, and the render failure.
    env.lab.stop_agent("node-a")
    env.lab.members["node-a"].status_file.unlink()
    env.start_agent("node-a")
    samples += env.sample(
        until=lambda: any(
            "cannot render the bird" in p for p in env.status("node-a").get("problems", [])
        )
    )
    assert env.status("node-a")["config_hash"] == env.hashes["node-a"]

    for router in ("bird", "frr"):
        (env.templates / router / "bgp.j2").unlink()

    def recovered(node: str) -> bool:
        return env.result(node) != "Failed" and not env.status(node)["problems"]

    samples += env.sample(until=lambda: all(recovered(n) for n in BOTH), settle=1.0)
    assert moved(samples, env.baseline) == []
    for node in BOTH:
        doc = json.loads(env.cli_status(node, "--json"))
        assert doc["last_apply"]["result"] == "Unchanged"
        assert doc["last_apply"]["error"] == "" and doc["problems"] == []
        assert doc["config_hash"] == env.hashes[node]
    assert_sessions_kept(sessions, env.bgp_sessions(), time.monotonic() - started)


def test_invalid_objects_and_files_keep_the_routes_are_reported_and_recover(env: Env) -> None:
    env.write("broken-group.yaml", BROKEN_GROUP)
    reported = "ServiceGroup lbroute/broken: spec.pools[1].cidr"

    def problems(node: str) -> list[str]:
        return list(env.status(node).get("problems", []))

    samples = env.sample(
        until=lambda: all(any(reported in p for p in problems(n)) for n in BOTH), settle=1.0
    )
    assert moved(samples, env.baseline) == []
    for node in BOTH:
        doc = json.loads(env.cli_status(node, "--json"))
        assert [p for p in doc["problems"] if reported in p], doc["problems"]
        assert doc["last_apply"]["result"] in ("Applied", "Unchanged")
        assert doc["config_hash"] == env.hashes[node]
        assert "problems (1):" in env.cli_status(node)

    env.remove("broken-group.yaml")
    env.wait(lambda: all(problems(n) == [] for n in BOTH), what="problems cleared")
    assert env.view() == env.baseline

    # A manifest that stops parsing (a typo, a half-written file) keeps its objects:
    # not a single Service of it is withdrawn.
    services = (env.source / "services.yaml").read_text()
    env.write("services.yaml", services + "---\nkind: Service\nmetadata: {name: [\n")
    samples = env.sample(
        until=lambda: all(any("not valid YAML" in p for p in problems(n)) for n in BOTH),
        settle=1.0,
    )
    assert moved(samples, env.baseline) == []
    assert all(env.kube_lb0(node) == ADDRESSES[node] for node in BOTH)
    env.write("services.yaml", services)
    env.wait(lambda: all(problems(n) == [] for n in BOTH), what="problems cleared")


def test_a_group_edited_into_an_invalid_one_keeps_its_routes_until_deleted(env: Env) -> None:
    """A typo that is still valid YAML (a /33, a misspelt pools) keeps the group's last
    valid version: no address leaves kube-lb0, no route moves upstream, and the status
    says so. Deleting the group withdraws it."""
    web = GROUPS["web"]

    def problems(node: str) -> list[str]:
        return list(env.status(node).get("problems", []))

    def breaks(change: Callable[[Any], None], says: str) -> None:
        env.edit("cluster.yaml", "ServiceGroup", "web", change)
        about = "error: ServiceGroup lbroute/web: "
        samples = env.sample(
            until=lambda: all(any(p.startswith(about) for p in problems(n)) for n in BOTH),
            settle=1.0,
        )
        assert moved(samples, env.baseline) == []
        reported = f"{about}is invalid ({says}"
        for node in BOTH:
            assert env.kube_lb0(node) == ADDRESSES[node]
            doc = json.loads(env.cli_status(node, "--json"))
            (problem,) = doc["problems"]
            assert problem.startswith(reported), problem
            assert "; keeping its last valid version (read at " in problem
            assert problem.endswith(") until it is fixed or deleted"), problem
            assert doc["config_hash"] == env.hashes[node]

    breaks(
        lambda o: o["spec"]["pools"][0].update(cidr="192.0.2.0/33"),
        "spec.pools[0].cidr: '192.0.2.0/33' is not valid",
    )
    breaks(lambda o: o["spec"].update(pols=o["spec"].pop("pools")), "spec.pols: unknown field")

    # Deleted (while invalid): its Services are withdrawn, everything else stays.
    env.write_objects(
        "cluster.yaml",
        [
            o
            for o in env.objects("cluster.yaml")
            if not (o["kind"] == "ServiceGroup" and o["metadata"]["name"] == "web")
        ],
    )
    gone = {*web.prefixes, LOCAL}
    view = env.wait_view(lambda v: not gone & v.keys())
    assert view == {p: r for p, r in env.baseline.items() if p not in gone}
    addresses = {"192.0.2.10/24", "192.0.2.11/24", "2001:db8:1::10/64", LOCAL}
    env.wait(
        lambda: all(not env.kube_lb0(n) & addresses for n in BOTH),
        what="web's addresses off kube-lb0",
    )


def _configmap(directory: Path, files: dict[str, str], version: int) -> None:
    """Lay ``files`` out as the kubelet mounts a ConfigMap: every name a symlink into
    ``..data``, itself a symlink swapped atomically to a new timestamped directory."""
    data = directory / f"..{version}"
    data.mkdir()
    for name, text in files.items():
        (data / name).write_text(text)
    link = directory / "..data_tmp"
    link.symlink_to(data.name)
    link.rename(directory / "..data")
    for path in directory.iterdir():
        if not path.name.startswith(".."):
            path.unlink()
    for name in files:
        (directory / name).symlink_to(Path("..data") / name)


def test_a_templates_directory_named_on_the_nodeagent_is_watched(env: Env) -> None:
    """GitOps without a flag: the NodeAgent names the templates directory; the BIRD
    nodes' is laid out like a mounted ConfigMap, the FRR nodes' like a Git checkout
    with a directory per router. Every change there is rendered, validated and applied;
    a broken template keeps the last good configuration; the routes never move."""
    sessions = env.bgp_sessions()
    started = time.monotonic()
    configmap, checkout = env.templates.parent / "configmap", env.templates.parent / "checkout"
    shutil.rmtree(configmap, ignore_errors=True)
    shutil.rmtree(checkout, ignore_errors=True)
    configmap.mkdir()
    (checkout / "frr").mkdir(parents=True)
    named = {"bird-nodes": configmap, "frr-nodes": checkout}
    try:
        for node in BOTH:  # agents that take the templates directory from the NodeAgent
            env.lab.stop_agent(node)
            # The stopped agent's status would pass for the new one's until it writes
            # its own: the baseline below must be the new agent's first pass.
            env.lab.members[node].status_file.unlink()
            # A NodeAgent only names paths the agent's command line allows (issue 24).
            env.lab.start_agent(node, env.source, "--allow-path", str(env.templates.parent))
        for agent, directory in named.items():

            def take_templates(o: Any, d: Path = directory) -> None:
                o["spec"].update(templatesDir=str(d))

            env.edit("cluster.yaml", "NodeAgent", agent, take_templates)
        samples = env.sample(until=env.at_baseline, settle=1.0)

        _configmap(configmap, {"bgp.j2": BAD_BIRD_BGP}, 1)
        write_atomic(checkout / "frr" / "bgp.j2", BAD_FRR_BGP)
        samples += env.sample(
            until=lambda: all(env.result(n) == "Failed" for n in BOTH), settle=1.0
        )
        for node in BOTH:
            assert env.status(node)["config_hash"] == env.hashes[node]

        header = "# Reviewed in Git for {{ view.node }}\n"
        _configmap(configmap, {"header.j2": header}, 2)
        (checkout / "frr" / "bgp.j2").unlink()
        write_atomic(checkout / "frr" / "header.j2", header.replace("#", "!"))

        def reviewed(node: str) -> bool:
            status = env.status(node)
            return env.result(node) == "Applied" and status["config_hash"] != env.hashes[node]

        samples += env.sample(until=lambda: all(reviewed(n) for n in BOTH), settle=1.0)
        for node in BOTH:
            config = env.lab.members[node].config_path.read_text()
            assert f"Reviewed in Git for {node}" in config
            assert not env.status(node)["problems"]
        assert moved(samples, env.baseline) == []
        assert_sessions_kept(sessions, env.bgp_sessions(), time.monotonic() - started)
    finally:
        for node in BOTH:  # the fixture starts them again, with the module's flags
            env.lab.stop_agent(node)


# -- 7. router daemon crash ------------------------------------------------------------


def test_a_restarted_router_daemon_gets_its_routes_back(env: Env) -> None:
    agents = {node: env.lab.members[node].agent for node in BOTH}
    for node in BOTH:
        env.lab.restart_node_router(node)
    env.wait_view(lambda v: v == env.baseline, timeout=60)
    for node in BOTH:
        agent = env.lab.members[node].agent
        assert agent is agents[node] and agent is not None and agent.poll() is None
        assert env.result(node) in ("Applied", "Unchanged")
    # FRR starts empty: the agent noticed the restart and applied its configuration.
    log = (env.lab.members["node-b"].dir / "agent.log").read_text()
    assert "router frr (re)started; applying the configuration again" in log
    assert len(env.bgp_sessions()) == 4


# -- 8. policy changes (last: no lab needs restoring after it) -------------------------


def test_policy_changes_reach_the_upstream_without_resetting_sessions(env: Env) -> None:
    sessions = env.bgp_sessions()
    started = time.monotonic()
    web = ("192.0.2.0/24", "2001:db8:1::/64")
    for prefix in web:
        assert env.communities(prefix) == {n: frozenset({"65000:100"}) for n in BOTH}
    assert env.ospf_metric("198.51.100.0/24") == 20

    def community(group: Any) -> None:
        group["spec"]["bgp"]["communities"] = ["65000:200"]

    env.edit("cluster.yaml", "ServiceGroup", "web", community)
    new = {n: frozenset({"65000:200"}) for n in BOTH}
    samples = env.sample(until=lambda: all(env.communities(p) == new for p in web))
    assert moved(samples, env.baseline) == []

    def metric(group: Any) -> None:
        group["spec"]["ospf"]["metric"] = 30

    # The nodes take the new metric one after the other; meanwhile the node that still
    # announces the lower metric is the only next hop. The routes never go away.
    env.edit("cluster.yaml", "ServiceGroup", "campus", metric)
    campus = GROUPS["campus"].prefixes
    samples = env.sample(
        until=lambda: all(env.ospf_metric(p) == 30 for p in campus) and env.view() == env.baseline
    )
    for diff in moved(samples, env.baseline):
        assert diff.keys() <= set(campus), diff
        assert all(route is not None and route[0] == "ospf" for route in diff.values()), diff

    for node in BOTH:

        def reapplied(n: str = node) -> Any:
            return env.result(n) == "Applied" and env.status(n)["config_hash"]

        env.wait(reapplied)
        assert env.status(node)["config_hash"] != env.hashes[node]
    assert_sessions_kept(sessions, env.bgp_sessions(), time.monotonic() - started)


def test_a_service_picks_a_bgp_class_without_a_reload(env: Env) -> None:
    """docs/bgp-classes.md: the group declares classes (a reload), then a Service picks
    one, another, and one the group does not declare, by its annotation alone: the
    upstream sees the class's attributes on the Service's own host prefixes from both
    nodes, and neither node applies a configuration nor resets a session meanwhile."""

    def declare(group: Any) -> None:
        group["spec"]["bgp"]["classes"] = {
            "premium": {"communities": ["65000:300"], "largeCommunities": ["65000:1:300"],
                        "med": 10},
            "backup": {"communities": ["65000:900"], "asPathPrepend": 2},
        }  # fmt: skip

    def pick(name: str) -> None:
        def annotate(service: Any) -> None:
            service["metadata"]["annotations"]["lbroute.io/bgp-class"] = name

        env.edit("services.yaml", "Service", "web-1", annotate)

    env.edit("cluster.yaml", "ServiceGroup", "web", declare)

    def reapplied(node: str) -> bool:
        return env.result(node) == "Applied" and env.status(node)["config_hash"] != env.hashes[node]

    for node in BOTH:
        env.wait(functools.partial(reapplied, node), what=f"{node} applied the classes")
    applies = {n: (env.status(n)["last_apply"]["time"], env.status(n)["config_hash"]) for n in BOTH}
    sessions, started = env.bgp_sessions(), time.monotonic()
    host = ("192.0.2.10/32", "2001:db8:1::10/128")
    premium = frozenset({"65000:100", "65000:300", "65000:1:300"})
    backup = frozenset({"65000:100", "65000:900"})

    seen: dict[str, Any] = {}

    def paths(wanted: tuple[frozenset[str], int, int]) -> bool:
        """Both nodes' paths to both host prefixes have these (tags, AS path length, MED;
        no MED counts as 0: FRR sends the 0 it resets the connected route's metric to,
        BIRD none, and best-path selection reads a missing MED as 0)."""
        for prefix in host:
            seen[prefix] = env.bgp_paths(prefix)
        return all(
            {n: (p[0], len(p[1].split()), p[2] or 0) for n, p in seen[prefix].items()}
            == dict.fromkeys(BOTH, wanted)
            for prefix in host
        )

    def expect(wanted: tuple[frozenset[str], int, int]) -> None:
        try:
            env.wait(lambda: paths(wanted))
        except AssertionError:
            raise AssertionError(f"wanted {wanted} from both nodes, upstream has {seen}") from None

    pick("premium")
    expect((premium, 1, 10))
    # The aggregate keeps the group's own (FRR re-evaluates it after its route-map delay).
    group_only = {n: frozenset({"65000:100"}) for n in BOTH}
    env.wait(lambda: env.communities("192.0.2.0/24") == group_only, what="the aggregate's")
    pick("backup")  # two more ASNs in the path (eBGP), the MED gone with premium
    expect((backup, 3, 0))

    def shown(node: str) -> object:
        announced = {a["address"]: a for a in env.status(node)["announced"]}
        return announced["2001:db8:1::10/128"].get("bgp_class")

    # The status file follows the pass by up to its pacing (0.25 s): the route may be first.
    env.wait(lambda: shown("node-b") == "backup", what="node-b's status shows class backup")
    env.wait(lambda: "class backup" in env.cli_status("node-a"), what="lbroute status on node-a")
    pick("gold")  # not declared: the group's policy, the aggregate, and a warning
    env.wait(lambda: all(env.bgp_paths(p) == {} for p in host), what="host prefixes withdrawn")

    def unknown(node: str) -> list[str]:
        return [p for p in env.status(node)["problems"] if "is not a BGP class" in p]

    for node in BOTH:
        problems = env.wait(functools.partial(unknown, node), what=f"{node} reports gold")
        assert "web-1" in problems[0] and "premium" in problems[0], problems
    after = {n: (env.status(n)["last_apply"]["time"], env.status(n)["config_hash"]) for n in BOTH}
    assert after == applies, "a node applied a configuration for a Service's class"
    assert_sessions_kept(sessions, env.bgp_sessions(), time.monotonic() - started)


# -- metrics, as Prometheus scrapes them --------------------------------------------------


def _scrape(env: Env, node: str, port: int) -> dict[str, float]:
    """``/metrics`` of the node's agent, read inside its namespace: series -> value."""
    code = (f"import urllib.request; print(urllib.request.urlopen("
            f"'http://127.0.0.1:{port}/metrics', timeout=5).read().decode())")  # fmt: skip
    out = env.lab.members[node].ns.exec(sys.executable, "-c", code, check=False)
    if out.returncode != 0:
        return {}
    series = {}
    for line in out.stdout.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            series[name] = float(value)
    return series


def test_a_running_agent_exports_what_the_alerts_and_dashboard_use(env: Env) -> None:
    """The monitoring component's expressions name series a running agent exports, with
    one lbroute_session_up per session (1 while established) and readiness."""
    from tests.test_monitoring import names_in, panel_exprs, rules

    port = 9479
    env.lab.stop_agent("node-a")
    env.lab.start_agent(
        "node-a", env.source, "--templates", str(env.templates), "--metrics-port", str(port)
    )
    try:
        series = env.wait(
            lambda: (
                (s := _scrape(env, "node-a", port))
                and s.get("lbroute_ready") == 1.0
                and sum(v for k, v in s.items() if k.startswith("lbroute_session_up{")) >= 2
                and s
            ),
            timeout=60,
            what="node-a's agent ready with its sessions up",
        )
        sessions = {k: v for k, v in series.items() if k.startswith("lbroute_session_up{")}
        bgp = [k for k in sessions if 'protocol="bgp"' in k]
        assert len(bgp) == 2 and all(sessions[k] == 1.0 for k in bgp), sessions
        # The example's Peers by name, whatever the router calls the session.
        peers = sorted(re.search(r'peer="([^"]*)"', k).group(1) for k in bgp)  # type: ignore[union-attr]
        assert peers == ["upstream-v4", "upstream-v6"], sessions
        assert series["lbroute_last_apply_ok"] == 1.0
        assert series['lbroute_group_addresses{group="lbroute/web"}'] >= 1
        scraped = {k.partition("{")[0] for k in series}
        agent_names = {n for e in [r["expr"] for r in rules()] + panel_exprs() for n in names_in(e)}
        agent_names = {n for n in agent_names if not n.startswith("lbroute_allocator_")} - {"up"}
        missing = {n for n in agent_names if n not in scraped and f"{n}_total" not in scraped}
        # Labelled counters print nothing until counted: no local handover here, and a
        # restarted agent whose router runs its configuration applies nothing.
        assert missing <= {"lbroute_local_handovers_total", "lbroute_router_applies_total"}, missing
    finally:
        env.lab.stop_agent("node-a")
        env.start_agent("node-a")
