"""Draining a node moves its traffic away before its routes go, with no packet lost.

A lab (lbroute.lab, tag ``drn``): node-a and node-b announce one ETP Cluster prefix over
BGP (or OSPF, or IS-IS) to an FRR upstream that installs both as ECMP next hops and
honours GRACEFUL_SHUTDOWN with the standard policy (lbroute.lab.configs: local preference
0 on receipt). A client
namespace behind the upstream pings the Service address every 10 ms from several source
addresses (the upstream hashes flows on addresses, so some go to each node). Then
``lbroute drain`` on node-a:

- the upstream drops node-a from the ECMP set while node-a still announces the prefix
  (BGP: its path is still in the upstream's table, with local preference 0 and the
  community; OSPF and IS-IS: with the largest metric), and only ``drainSeconds`` later
  is it withdrawn;
- no ping is lost, and (BGP) neither session was dropped;
- ``lbroute status`` (its JSON) says Draining, then Drained;
- ``lbroute undrain``: node-a is back in the ECMP set, still without a loss.

The BGP cases first check a ServiceGroup with ``withdrawWithoutEndpoints`` in the same
lab: its ETP Cluster Service is announced (as a host route) only while an EndpointSlice
says some node has a ready endpoint.

Run for BGP, OSPF and RIP with a BIRD node-a and with an FRR node-a (node-b runs the
other router), and for IS-IS with FRR on both (BIRD has no IS-IS). RIP de-prefers with
metric 15, one short of unreachable: the upstream, one hop further, counts it as 16 and
so stops using node-a at once, before the withdrawal ``drainSeconds`` later.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbroute.lab import Lab, Netns, NodeSpec, run
from lbroute.lab.ibgp import bgp_paths

PREFIX = "192.0.2.0/24"
ADDRESS = "192.0.2.10"
DRAIN_SECONDS = 8
"""Long enough for the apply, bgpd's route-map delay timer (lbroute sets it to 1 s: a
changed route-map takes effect that long after it is loaded) and RIP's slowest move
(under 5 s measured) to pass before the withdrawal."""
CLIENTS = [f"10.9.0.{i}" for i in range(10, 26)]
"""The client's source addresses: with 16 flows, each node gets some (checked)."""
PING_SECONDS = 90
"""The longest the client pings; the test stops them once node-a is back."""

MANIFESTS = """\
apiVersion: v1
kind: Node
metadata: {{name: node-a}}
status: {{addresses: [{{type: InternalIP, address: 10.0.0.11}}]}}
---
apiVersion: v1
kind: Node
metadata: {{name: node-b}}
status: {{addresses: [{{type: InternalIP, address: 10.0.0.12}}]}}
---
apiVersion: lbroute.io/v1alpha1
kind: NodeAgent
metadata: {{name: nodes, namespace: lbroute}}
spec: {{localASN: 64512, drainSeconds: {seconds}}}
---
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {{name: web, namespace: lbroute}}
spec:
  default: true
  protocols: [{protocol}]
  pools: [{{cidr: {prefix}}}]
  {policy}
---
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {{name: upstream, namespace: lbroute}}
spec:
  {peer}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  annotations: {{lbroute.io/allocated-from: "web:{prefix}"}}
spec: {{type: LoadBalancer, loadBalancerClass: lbroute.io/lbroute, externalTrafficPolicy: Cluster}}
status: {{loadBalancer: {{ingress: [{{ip: {address}}}]}}}}
---
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {{name: failover, namespace: lbroute}}
spec:
  withdrawWithoutEndpoints: true
  protocols: [{protocol}]
  pools: [{{cidr: {failover_pool}}}]
---
apiVersion: v1
kind: Service
metadata:
  name: failover
  namespace: default
  annotations: {{lbroute.io/allocated-from: "failover:{failover_pool}"}}
spec: {{type: LoadBalancer, loadBalancerClass: lbroute.io/lbroute, externalTrafficPolicy: Cluster}}
status: {{loadBalancer: {{ingress: [{{ip: {failover}}}]}}}}
"""
FAILOVER_POOL = "198.51.100.0/24"
FAILOVER = "198.51.100.20"
"""A Service of a ServiceGroup with withdrawWithoutEndpoints (checked in the BGP cases)."""
ENDPOINTS = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: failover-1
  namespace: default
  labels: {kubernetes.io/service-name: failover}
endpoints: [{addresses: [10.244.1.5], nodeName: node-b, conditions: {ready: true}}]
"""


PEERS = {
    "bgp": "bgp: {address: 10.0.0.1, asn: 65000}",
    "ospf": "ospf: {area: 0.0.0.0, interfaces: [{name: eth0, helloInterval: 1, deadInterval: 4}]}",
    "isis": 'isis: {area: "49.0001", level: level-2, interfaces: [{name: eth0}]}',
    "rip": "rip: {interfaces: [eth0]}",
}
POLICY = {
    "bgp": "",
    "ospf": "ospf: {metric: 20}",
    "isis": "isis: {metric: 20}",
    "rip": "rip: {metric: 2}",
}
"""The same metric from BIRD and FRR nodes, whose defaults differ, for an ECMP route."""
CASES = [
    ("bgp", "bird", "frr"),
    ("bgp", "frr", "bird"),
    ("ospf", "bird", "frr"),
    ("ospf", "frr", "bird"),
    ("isis", "frr", "frr"),
    ("rip", "bird", "frr"),
    ("rip", "frr", "bird"),
]


@pytest.fixture(params=CASES, ids=lambda c: f"{c[0]}-node-a-{c[1]}")
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Lab, Netns, str]]:
    protocol, router_a, router_b = request.param
    source = tmp_path / "manifests"
    source.mkdir()
    (source / "lab.yaml").write_text(
        MANIFESTS.format(
            seconds=DRAIN_SECONDS,
            prefix=PREFIX,
            address=ADDRESS,
            protocol=protocol,
            peer=PEERS[protocol],
            policy=POLICY[protocol],
            failover_pool=FAILOVER_POOL,
            failover=FAILOVER,
        )
    )
    lab = Lab(
        workdir=tmp_path / "lab",
        nodes=[
            NodeSpec(name="node-a", router=router_a, v4="10.0.0.11", v6="fd00::11"),
            NodeSpec(name="node-b", router=router_b, v4="10.0.0.12", v6="fd00::12"),
        ],
        tag="drn",
    )
    client = Netns("drncl")
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
    """The nodes behind the upstream's kernel route to the prefix, learned by ``protocol``."""
    route = lab.route(PREFIX)
    return lab.via(route) if route is not None and route.proto == protocol else ()


def peers_with_path(lab: Lab) -> tuple[str, ...]:
    assert lab.upstream_frr is not None
    return tuple(lab.node_of(p.peer) for p in bgp_paths(lab.upstream_frr, PREFIX))


def sessions(lab: Lab) -> dict[str, float]:
    """When each node's session came up (epoch seconds), from the upstream's uptime: the
    lab's neighbors are dynamic (a listen range), so a session that drops is a new
    neighbor whose counters start again; its uptime does not lie."""
    assert lab.upstream_frr is not None
    out = json.loads(lab.upstream_frr.vtysh("show bgp neighbors json").stdout or "{}")
    now = time.time()
    return {
        lab.node_of(peer): now - int(n.get("bgpTimerUpMsec", 0)) / 1000
        for peer, n in out.items()
        if isinstance(n, dict) and n.get("bgpState") == "Established"
    }


def upstream_is_dis(lab: Lab) -> bool:
    """Whether the upstream is the IS-IS DIS of the LAN the nodes share with it (a node
    that took it would take every route through the LAN with it while the pseudonode
    changes: the loss this test saw in 4 runs of 22)."""
    assert lab.upstream_frr is not None
    detail = lab.upstream_frr.vtysh("show isis interface detail").stdout
    return "is DIS" in detail and "is not DIS" not in detail


def via_node(lab: Lab, source: str) -> str:
    """The node the upstream forwards the client's flow from ``source`` to."""
    assert lab.upstream is not None
    out = lab.upstream.ip("-j", "route", "get", ADDRESS, "from", source, "iif", "cl0")
    return lab.node_of(str(json.loads(out)[0].get("gateway", "")))


def drain_command(lab: Lab, command: str) -> None:
    status_file = lab.members["node-a"].status_file
    run(sys.executable, "-m", "lbroute", command, "--status-file", str(status_file))


def drain_state(lab: Lab) -> str:
    return str(lab.status("node-a").get("drain", {}).get("state", "Serving"))


@contextlib.contextmanager
def pings(client: Netns) -> Iterator[list[subprocess.Popen[str]]]:
    count = str(int(PING_SECONDS / 0.01))
    ping = ["ip", "netns", "exec", client.name, "ping", "-n", "-q", "-i", "0.01", "-W", "1"]
    procs = [
        subprocess.Popen(
            [*ping, "-c", count, "-I", source, ADDRESS],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for source in CLIENTS
    ]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)


def lost(procs: list[subprocess.Popen[str]]) -> list[tuple[int, int]]:
    """(transmitted, received) of each ping run, stopped now (SIGINT: ping prints its
    counts at once; the one echo in flight then counts as not received)."""
    for p in procs:
        p.send_signal(signal.SIGINT)
    out = []
    for p in procs:
        text, _ = p.communicate(timeout=30)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
        assert m, text
        out.append((int(m.group(1)), int(m.group(2))))
    return out


def test_drain_moves_traffic_before_withdrawing_and_loses_nothing(
    lab: tuple[Lab, Netns, str], tmp_path: Path
) -> None:
    lab_, client, protocol = lab
    bgp = protocol == "bgp"
    lab_.wait_for(lambda: ecmp(lab_, protocol) == ("node-a", "node-b"), timeout=90)
    if bgp:
        check_withdraw_without_endpoints(lab_, tmp_path / "manifests")
    if protocol == "isis":  # the nodes (priority 0) leave the LAN's DIS to the upstream
        lab_.wait_for(lambda: upstream_is_dis(lab_), timeout=10)
    before = lab_.wait_for(lambda: (s := sessions(lab_)) and len(s) == 2 and s) if bgp else {}
    flows = {via_node(lab_, s) for s in CLIENTS}
    assert flows == {"node-a", "node-b"}, "some flows must go through each node"

    with pings(client) as procs:
        time.sleep(2)
        drain_command(lab_, "drain")
        started = time.monotonic()
        # Phase 1: the upstream stops using node-a while node-a's path is still there.
        lab_.wait_for(lambda: ecmp(lab_, protocol) == ("node-b",), timeout=DRAIN_SECONDS)
        moved = time.monotonic() - started
        assert drain_state(lab_) == "Draining", "withdrawn before the traffic moved"
        if bgp:
            assert "node-a" in peers_with_path(lab_), "withdrawn before the traffic moved"
            assert lab_.upstream_frr is not None
            paths = {lab_.node_of(p.peer): p for p in bgp_paths(lab_.upstream_frr, PREFIX)}
            assert "gracefulShutdown" in paths["node-a"].communities  # FRR's name of 65535:0
            assert paths["node-a"].local_pref == 0
        # Phase 2: after drainSeconds, the routes are withdrawn; sessions stay up.
        lab_.wait_for(lambda: drain_state(lab_) == "Drained", timeout=DRAIN_SECONDS + 5)
        withdrawn = time.monotonic() - started
        assert withdrawn >= DRAIN_SECONDS - 1, (moved, withdrawn)
        if bgp:
            lab_.wait_for(lambda: peers_with_path(lab_) == ("node-b",), timeout=15)
        assert ecmp(lab_, protocol) == ("node-b",)
        time.sleep(2)
        # Undrain: node-a is back in the ECMP set.
        drain_command(lab_, "undrain")
        lab_.wait_for(lambda: ecmp(lab_, protocol) == ("node-a", "node-b"), timeout=20)
        assert drain_state(lab_) == "Serving"
        time.sleep(1)  # node-a carries flows again
        results = lost(procs)

    after = sessions(lab_) if bgp else {}
    assert after.keys() == before.keys()
    reset = [n for n in before if abs(after[n] - before[n]) > 2]
    assert not reset, ("a BGP session was reset", before, after)
    assert all(rx >= tx - 1 for tx, rx in results), ("pings lost", results)  # 1: in flight
    # Every flow pinged through the whole drain (2 s before, drainSeconds, 2 s after),
    # at least at half its nominal 100 echoes a second.
    assert all(tx >= (DRAIN_SECONDS + 4) * 50 for tx, _ in results), results
    print(f"traffic moved {moved:.1f}s after lbroute drain; withdrawn after {withdrawn:.1f}s")


def check_withdraw_without_endpoints(lab: Lab, source: Path) -> None:
    """``withdrawWithoutEndpoints``: the failover Service has no ready endpoint in the
    cluster, so neither node announces it and each says why; an endpoint on node-b
    brings its host route from both nodes (ETP Cluster); removing it withdraws it."""
    host = f"{FAILOVER}/32"
    assert lab.route(host) is None and lab.route(FAILOVER_POOL) is None
    for name in ("node-a", "node-b"):
        problems = lab.wait_for(lambda n=name: lab.status(n).get("problems"), timeout=10)
        assert any(f"{FAILOVER} is withdrawn: no ready endpoint in the cluster" in p
                   for p in problems), problems  # fmt: skip
    (source / "endpoints.yaml").write_text(ENDPOINTS)
    lab.wait_for(lambda: (r := lab.route(host)) and lab.via(r) == ("node-a", "node-b"), 30)
    assert lab.route(FAILOVER_POOL) is None, "announced as its host route, not the pool"
    (source / "endpoints.yaml").unlink()
    lab.wait_for(lambda: lab.route(host) is None, timeout=30)
