"""Weighted ECMP end to end (``bgp.weightByEndpoints``, docs/weighted-ecmp.md): the
agents announce an ETP Local Service's host prefixes with the link-bandwidth community,
1 Mbps per ready endpoint on the node, and the lab's FRR upstream installs next-hop
weights in that ratio; endpoints move and the weights follow without a router reload.

A lab (lbroute.lab, tag ``wec``): node-a runs BIRD, node-b FRR, both on one link with the
FRR upstream (multipath, nothing else configured), each with an IPv4 and an IPv6 BGP
session. The Service has 192.0.2.20 and 2001:db8:1::20; its EndpointSlices (one per
family) put 3 ready endpoints on node-a and 1 on node-b: the upstream's kernel routes
carry weights 75 and 25 for both families. Then 1 on node-a and 4 on node-b: 20 and 80.
Last, the Service picks the group's BGP class ``gold`` (docs/bgp-classes.md): its
community joins the link-bandwidth one on both nodes' paths, the weights stay (FRR
carries class and weight in one address metric, BIRD in the route's rtt and window).
Neither node applies a configuration after the first (the last apply's time and the
configuration hash stay), and no BGP session is reset.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbroute.lab import Lab, NodeSpec
from lbroute.model.files import write_atomic
from tests.netns.lab import needs_root

V4, V6 = "192.0.2.20", "2001:db8:1::20"
NODES = (
    NodeSpec(name="node-a", router="bird", v4="10.0.0.11", v6="fd00::11"),
    NodeSpec(name="node-b", router="frr", v4="10.0.0.12", v6="fd00::12"),
)
CLUSTER = """\
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {lbroute.io/router: bird}}
status:
  addresses: [{type: InternalIP, address: 10.0.0.11}, {type: InternalIP, address: "fd00::11"}]
---
apiVersion: v1
kind: Node
metadata: {name: node-b, labels: {lbroute.io/router: frr}}
status:
  addresses: [{type: InternalIP, address: 10.0.0.12}, {type: InternalIP, address: "fd00::12"}]
---
apiVersion: lbroute.io/v1alpha1
kind: NodeAgent
metadata: {name: nodes, namespace: lbroute}
spec: {localASN: 64512}
---
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {name: web, namespace: lbroute}
spec:
  default: true
  protocols: [bgp]
  pools: [{cidr: 192.0.2.0/24}, {cidr: "2001:db8:1::/64"}]
  bgp: {weightByEndpoints: true, classes: {gold: {communities: ["64512:7"]}}}
---
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {name: upstream-v4, namespace: lbroute}
spec:
  bgp: {address: 10.0.0.1, asn: 65000}
---
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {name: upstream-v6, namespace: lbroute}
spec:
  bgp: {address: "fd00::1", asn: 65000}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  annotations: {lbroute.io/allocated-from: "web:192.0.2.0/24,2001:db8:1::/64"}
spec: {type: LoadBalancer, loadBalancerClass: lbroute.io/lbroute, externalTrafficPolicy: Local,
       ipFamilyPolicy: PreferDualStack, ipFamilies: [IPv4, IPv6]}
status: {loadBalancer: {ingress: [{ip: 192.0.2.20}, {ip: "2001:db8:1::20"}]}}
"""


def slices(per_node: dict[str, int]) -> list[dict[str, Any]]:
    """The Service's EndpointSlices, one per family, with ``per_node`` ready endpoints."""
    out = []
    for family, prefix in (("IPv4", "10.244.0."), ("IPv6", "fd00:244::")):
        endpoints, i = [], 1
        for node, count in per_node.items():
            for _ in range(count):
                endpoints.append({"addresses": [f"{prefix}{i}"], "nodeName": node,
                                  "conditions": {"ready": True}})  # fmt: skip
                i += 1
        out.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": family,
            "metadata": {"name": f"web-{family.lower()}", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "endpoints": endpoints,
        })  # fmt: skip
    return out


class Env:
    def __init__(self, lab: Lab, source: Path) -> None:
        self.lab, self.source = lab, source

    def endpoints(self, per_node: dict[str, int]) -> None:
        write_atomic(self.source / "endpoints.yaml", yaml.safe_dump_all(slices(per_node)))

    def weights(self, address: str) -> dict[str, int]:
        """The upstream kernel's next-hop weight per node for ``address``."""
        assert self.lab.upstream is not None
        family = "-6" if ":" in address else "-4"
        text = self.lab.upstream.ip(family, "route", "show", address)
        found = {}
        for m in re.finditer(r"nexthop via (\S+) dev \S+ weight (\d+)", text):
            found[self.lab.node_of(m.group(1))] = int(m.group(2))
        return found

    def wait_weights(self, wanted: dict[str, int], timeout: float = 60) -> float:
        started = time.monotonic()
        seen: dict[str, dict[str, int]] = {}
        while time.monotonic() - started < timeout:
            seen = {a: self.weights(a) for a in (V4, V6)}
            if all(w == wanted for w in seen.values()):
                return time.monotonic() - started
            time.sleep(0.05)
        assert self.lab.upstream_frr is not None
        bgp = self.lab.upstream_frr.vtysh(f"show bgp ipv4 unicast {V4}", check=False).stdout
        announced = {n: self.lab.status(n).get("announced") for n in self.lab.members}
        raise AssertionError(f"upstream weights {seen}, wanted {wanted}: {bgp} {announced}")

    def applies(self) -> dict[str, tuple[str, str]]:
        """Per node: the last apply's time and the configuration hash."""
        out = {}
        for node in self.lab.members:
            status = self.lab.status(node)
            last = status.get("last_apply", {})
            out[node] = (str(last.get("time")), str(status.get("config_hash")))
        return out

    def communities(self, standard: bool = False, address: str = V4) -> dict[str, str]:
        """The upstream's BGP paths to ``address``: each node's extended community (or
        standard ones)."""
        assert self.lab.upstream_frr is not None
        family = "ipv6" if ":" in address else "ipv4"
        length = 128 if ":" in address else 32
        out = self.lab.upstream_frr.vtysh(f"show bgp {family} unicast {address}/{length} json")
        key = "community" if standard else "extendedCommunity"
        return {
            self.lab.node_of(p["peer"]["peerId"]): p.get(key, {}).get("string")
            for p in json.loads(out.stdout).get("paths", [])
        }

    def pick(self, bgp_class: str) -> None:
        """Set the Service's lbroute.io/bgp-class annotation."""
        text = CLUSTER.replace(
            'annotations: {lbroute.io/allocated-from: "web:192.0.2.0/24,2001:db8:1::/64"}',
            'annotations: {lbroute.io/allocated-from: "web:192.0.2.0/24,2001:db8:1::/64", '
            f"lbroute.io/bgp-class: {bgp_class}}}",
        )
        assert text != CLUSTER
        write_atomic(self.source / "cluster.yaml", text)

    def sessions(self) -> dict[str, Any]:
        assert self.lab.upstream_frr is not None
        out = self.lab.upstream_frr.vtysh("show bgp neighbors json", check=False).stdout
        return {k: (v.get("bgpState"), v.get("connectionsEstablished"))
                for k, v in json.loads(out or "{}").items() if isinstance(v, dict)}  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    needs_root()
    work = tmp_path_factory.mktemp("weighted")
    source = work / "manifests"
    source.mkdir()
    (source / "cluster.yaml").write_text(CLUSTER)
    lab = Lab(workdir=work / "lab", nodes=list(NODES), tag="wec")
    env = Env(lab, source)
    env.endpoints({"node-a": 3, "node-b": 1})
    try:
        lab.start()
        for node in lab.members:
            lab.start_agent(node, source)
        yield env
    finally:
        for node in list(lab.members):
            lab.stop_agent(node)
        lab.stop()


def test_the_upstream_splits_traffic_by_endpoints_and_follows_them_without_a_reload(
    env: Env,
) -> None:
    env.wait_weights({"node-a": 75, "node-b": 25})
    env.lab.wait_for(lambda: all(a[0] != "None" for a in env.applies().values()), timeout=30)
    assert env.lab.status("node-a")["announced"][0].get("weight") == 3
    # FRR's own encoding of 3 and 1 Mbps, whichever router sent it (BIRD builds it as a
    # generic extended community: the bytes must be the same).
    assert env.communities() == {"node-a": "LB:64512:375000 (3.000 Mbps)",
                                 "node-b": "LB:64512:125000 (1.000 Mbps)"}  # fmt: skip
    applies, sessions = env.applies(), env.sessions()
    env.endpoints({"node-a": 1, "node-b": 4})
    took = env.wait_weights({"node-a": 20, "node-b": 80}, timeout=30)
    env.endpoints({"node-a": 2, "node-b": 2})
    took_back = env.wait_weights({"node-a": 50, "node-b": 50}, timeout=30)
    print(f"weights followed in {took:.2f}s and {took_back:.2f}s")
    env.pick("gold")
    both = dict.fromkeys(("node-a", "node-b"), "64512:7")
    env.lab.wait_for(lambda: all(env.communities(True, a) == both for a in (V4, V6)), timeout=30)
    assert env.weights(V4) == env.weights(V6) == {"node-a": 50, "node-b": 50}
    assert env.communities() == dict.fromkeys(("node-a", "node-b"), "LB:64512:250000 (2.000 Mbps)")
    assert env.applies() == applies, "a node applied a configuration for an endpoint change"
    assert env.sessions() == sessions, "a BGP session was reset"
