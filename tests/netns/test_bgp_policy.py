"""Per-group BGP attributes as real upstream routers receive them, over iBGP and eBGP.

One lab per node router: a node running the agent and BIRD with FRR upstreams, a node
running FRR with BIRD upstreams (the upstreams are the other implementation, so neither
router only talks to itself). Each lab has two upstreams on the node's link at once:
the lab's eBGP one (AS 65000) and an iBGP one in the node's AS 64512
(:class:`lbroute.lab.ibgp.IbgpUpstream`, a route reflector's place). The ServiceGroup
``gold`` sets everything the model has: communities, large communities, MED, a local
preference and a prepend of 2; ``silver`` only a community and a MED.

What is checked, on each upstream, for IPv4 and IPv6: the route is accepted (an iBGP
upstream used to drop gold's routes as an AS-path loop, ``64512 64512`` inside AS
64512), and it carries exactly what applies to the session: over eBGP the node's AS
three times for gold (once plus the prepend) and no local preference of ours; over
iBGP an empty AS path and gold's local preference; communities, large communities and
MED over both.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from lbroute.lab import UPSTREAM_ASN, UPSTREAM_V4, UPSTREAM_V6, Lab, NodeSpec
from lbroute.lab.ibgp import IBGP_V4, IBGP_V6, NODES_ASN, BgpPath, IbgpUpstream, bgp_paths
from lbroute.model.vocabulary import API_VERSION, LOADBALANCER_CLASS, PEER, SERVICE_GROUP
from tests.netns.lab import needs_root

NODE_V4, NODE_V6 = "10.0.0.11", "fd00::11"
GOLD = {"ipv4": "192.0.2.0/25", "ipv6": "2001:db8:1::/64"}
SILVER = "198.51.100.0/24"
GOLD_POLICY = {
    "communities": ["65000:100", "65000:200"],
    "largeCommunities": ["65000:1:2"],
    "localPref": 300,
    "med": 10,
    "asPathPrepend": 2,
}
UPSTREAM_FOR = {"bird": "frr", "frr": "bird"}
"""Each node router's upstreams: the other implementation."""
DEFAULT_LOCAL_PREF = {"frr": None, "bird": 100}
"""What an upstream stores as the local preference of a route that came without one
(eBGP never carries it): FRR nothing, BIRD its ``default bgp_local_pref``. The same
default is what a node sends over iBGP for a group without ``localPref``."""


def _obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": "lbroute"},
        "spec": spec,
    }


def _service(name: str, *addresses: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": LOADBALANCER_CLASS},
        "status": {"loadBalancer": {"ingress": [{"ip": a} for a in addresses]}},
    }


def _peer(name: str, address: str, asn: int) -> dict[str, Any]:
    return _obj(PEER, name, {"bgp": {"address": address, "asn": asn}})


def manifests(upstream_asn: int) -> list[dict[str, Any]]:
    addresses = [{"type": "InternalIP", "address": a} for a in (NODE_V4, NODE_V6)]
    gold = {"pools": [{"cidr": c} for c in GOLD.values()], "bgp": GOLD_POLICY}
    silver = {"pools": [{"cidr": SILVER}], "bgp": {"communities": ["65000:300"], "med": 50}}
    return [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
         "status": {"addresses": addresses}},
        _obj(SERVICE_GROUP, "gold", gold),
        _obj(SERVICE_GROUP, "silver", silver),
        _peer("upstream", UPSTREAM_V4, upstream_asn),
        _peer("upstream-v6", UPSTREAM_V6, upstream_asn),
        _peer("reflector", IBGP_V4, NODES_ASN),
        _peer("reflector-v6", IBGP_V6, NODES_ASN),
        _service("gold-1", "192.0.2.10", "2001:db8:1::10"),
        _service("silver-1", "198.51.100.10"),
    ]  # fmt: skip


@dataclass
class Env:
    node_router: str
    upstream_router: str
    lab: Lab
    ibgp: IbgpUpstream

    def ebgp_paths(self, prefix: str) -> list[BgpPath]:
        router = self.lab.upstream_frr or self.lab.upstream_bird
        assert router is not None
        return bgp_paths(router, prefix)

    def everywhere(self) -> dict[str, dict[str, list[BgpPath]]]:
        """Every prefix the node should announce, as each upstream holds it."""
        return {
            prefix: {"eBGP": self.ebgp_paths(prefix), "iBGP": self.ibgp.paths(prefix)}
            for prefix in (*GOLD.values(), SILVER)
        }

    def agent_log(self) -> str:
        """The end of the agent's log, for failure messages."""
        path = self.lab.members["node-a"].agent_log
        return path.read_text(errors="replace")[-2000:] if path and path.exists() else ""


@pytest.fixture(scope="module", params=["bird", "frr"], ids=["node-bird", "node-frr"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A lab with one node (the param's router), its eBGP upstream and an iBGP one, both
    the other implementation; the agent runs until every prefix reached both upstreams
    (or 90 s passed: the test then shows what each holds). Everything is stopped and
    the namespaces deleted whatever happens."""
    needs_root()
    node_router = str(request.param)
    upstream_router = UPSTREAM_FOR[node_router]
    work = tmp_path_factory.mktemp(f"bgp-policy-{node_router}")
    source = work / "source"
    source.mkdir()
    (source / "objects.yaml").write_text(yaml.safe_dump_all(manifests(UPSTREAM_ASN)))
    spec = NodeSpec(name="node-a", router=node_router, v4=NODE_V4, v6=NODE_V6)
    lab = Lab(workdir=work / "lab", nodes=[spec], upstream_router=upstream_router, tag="pol")
    ibgp = IbgpUpstream(lab, upstream_router, work)
    try:
        lab.start()
        ibgp.start()
        lab.start_agent("node-a", source)
        env = Env(node_router=node_router, upstream_router=upstream_router, lab=lab, ibgp=ibgp)

        def all_there() -> bool:
            return all(all(paths.values()) for paths in env.everywhere().values())

        with contextlib.suppress(TimeoutError):
            lab.wait_for(all_there, timeout=90, interval=0.5)
        yield env
    finally:
        ibgp.stop()
        lab.stop()


def _the_path(env: Env, paths: list[BgpPath], peer: str, where: str) -> BgpPath:
    assert [p.peer for p in paths] == [peer], (
        f"{where}: expected one path from {peer}: {paths}\nagent log:\n{env.agent_log()}"
    )
    return paths[0]


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_ebgp_upstream_gets_the_prepend_and_no_local_preference(env: Env, family: str) -> None:
    peer = NODE_V4 if family == "ipv4" else NODE_V6
    gold = _the_path(env, env.ebgp_paths(GOLD[family]), peer, f"eBGP upstream, gold {family}")
    assert gold == BgpPath(
        peer=peer,
        as_path=(NODES_ASN, NODES_ASN, NODES_ASN),
        local_pref=DEFAULT_LOCAL_PREF[env.upstream_router],
        med=10,
        communities=("65000:100", "65000:200"),
        large_communities=("65000:1:2",),
    )
    route = env.lab.route(GOLD[family])
    assert route is not None and route.proto == "bgp", "not installed by the eBGP upstream"


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_ibgp_upstream_accepts_the_route_with_its_local_preference(env: Env, family: str) -> None:
    peer = NODE_V4 if family == "ipv4" else NODE_V6
    gold = _the_path(env, env.ibgp.paths(GOLD[family]), peer, f"iBGP upstream, gold {family}")
    assert gold == BgpPath(
        peer=peer,
        as_path=(),
        local_pref=300,
        med=10,
        communities=("65000:100", "65000:200"),
        large_communities=("65000:1:2",),
    )


def test_a_group_without_session_specific_attributes_is_the_same_on_both(env: Env) -> None:
    ebgp = _the_path(env, env.ebgp_paths(SILVER), NODE_V4, "eBGP upstream, silver")
    ibgp = _the_path(env, env.ibgp.paths(SILVER), NODE_V4, "iBGP upstream, silver")
    common = BgpPath(
        peer=NODE_V4,
        as_path=(),
        local_pref=100,  # what the node sends over iBGP without a localPref: its default
        med=50,
        communities=("65000:300",),
        large_communities=(),
    )
    assert ibgp == common
    local_pref = DEFAULT_LOCAL_PREF[env.upstream_router]
    assert ebgp == dataclasses.replace(common, as_path=(NODES_ASN,), local_pref=local_pref)
