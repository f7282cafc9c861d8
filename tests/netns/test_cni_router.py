"""Announcing through a CNI router's own sessions (issue 22): BIRD include mode with
``hostSessions``.

One lab (:class:`lbroute.lab.Lab`): node-a's BIRD runs a configuration shaped like
Calico's confd-generated ``bird.cfg`` (a ``bgp_template``, an eBGP session
``Global_10_0_0_1`` to the lab's FRR ToR, an iBGP mesh session ``Mesh_10_1_0_1`` to a
second BIRD, node-b, in its own namespace, Calico's ``calico_export_to_bgp_peers`` and
``calico_kernel_programming`` filters). The operator's additions are the ones the README
documents: the include of lbroute's fragment before Calico's filters, and one line at
the top of ``calico_export_to_bgp_peers``: ``if lbroute_export() then accept;``. The
fragment file starts as the stub from examples/cni (lbroute's fragment with nothing
carried), so the host's configuration parses before lbroute ever runs.

lbroute has no Peer: its groups reach the ToR only through the CNI's session. Through
every step the ToR session and the mesh session are never reset (same "since" in BIRD
on both ends of each, the same count of sessions established and dropped in FRR), and
the CNI's own routes are the same at the ToR, at the mesh peer and in node-a's kernel:

1. the first apply: the carried group's prefix reaches the ToR with its communities,
   large community, MED and prepend; the group the selector leaves out does not; an
   ETP Local Service's host route comes from node-a while its endpoint is there;
   ``lbroute status`` (the agent's status) reports the host's ToR session;
2. a policy change reaches the ToR;
3. Service churn: a second ETP Local Service comes and goes, the first one's endpoint
   moves away and back; the host routes follow;
4. lbroute's objects removed: nothing of lbroute's is announced any more, the fragment
   keeps ``lbroute_export()`` (false for every route) so the host's file still parses,
   and BIRD still runs every CNI protocol.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbroute.lab import BirdInstance, Lab, LabNode, Netns, NodeSpec, veth
from lbroute.model.files import write_atomic
from tests.netns.lab import same_since

NODE = NodeSpec(name="node-a", router="bird", v4="10.0.0.11", v6="fd00::11")
WEB, OTHER = "192.0.2.0/24", "198.51.100.0/24"
LOCAL, LOCAL2 = "192.0.2.20/32", "192.0.2.21/32"
POD_HERE, POD_THERE = "10.244.0.0/26", "10.244.1.0/26"
TOR_SESSION, MESH_SESSION = "Global_10_0_0_1", "Mesh_10_1_0_1"
REPO = Path(__file__).resolve().parents[2]
STUB = REPO / "examples" / "cni" / "lbroute-stub.conf"

CALICO = """\
# Shaped like Calico's confd-generated bird.cfg (BIRD 2 syntax), with the operator's
# two additions marked "lbroute".
router id 10.0.0.11;

# lbroute: its fragment, before the filters that call lbroute_export().
include "{fragments}/*.conf";

# bird_ipam.cfg
filter calico_export_to_bgp_peers {{
  if lbroute_export() then accept;  # lbroute: the one line, first in the filter
  if ( net ~ 10.244.0.0/16 ) then {{
    accept;
  }}
  reject;
}}
filter calico_kernel_programming {{
  if ( net ~ 10.244.0.0/16 ) then {{
    accept;
  }}
  reject;
}}

protocol kernel {{
  learn;
  persist;
  scan time 2;
  ipv4 {{ import all; export filter calico_kernel_programming; }};
  graceful restart;
  merge paths on;
}}
protocol device {{
  scan time 2;
}}
protocol direct {{
  ipv4;
  interface -"cali*", -"kube-ipvs*", -"kube-lb0", "*";
}}
protocol static {{
  ipv4;
  route {pod} blackhole;
}}

# Template for all BGP clients
template bgp bgp_template {{
  description "Connection to BGP peer";
  local as 64512;
  ipv4 {{
    import all;
    export filter calico_export_to_bgp_peers;
    next hop self;
  }};
  graceful restart;
  connect delay time 1;
  connect retry time 1;
}}

# ------------- Node-to-node mesh -------------
protocol bgp Mesh_10_1_0_1 from bgp_template {{
  neighbor 10.1.0.1 as 64512;
  source address 10.1.0.11;
}}

# ------------- Global peers -------------
protocol bgp Global_10_0_0_1 from bgp_template {{
  neighbor 10.0.0.1 as 65000;
  source address 10.0.0.11;
}}
"""
MESH = f"""\
router id 10.1.0.1;
filter calico_export_to_bgp_peers {{
  if ( net ~ 10.244.0.0/16 ) then {{ accept; }}
  reject;
}}
protocol device {{ }}
protocol static {{
  ipv4;
  route {POD_THERE} blackhole;
}}
protocol bgp Mesh_10_1_0_11 {{
  local 10.1.0.1 as 64512;
  neighbor 10.1.0.11 as 64512;
  connect retry time 1;
  ipv4 {{ import all; export filter calico_export_to_bgp_peers; next hop self; }};
}}
"""


def _service(name: str, address: str, etp: str = "Cluster") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "lbroute.io/lbroute",
            "externalTrafficPolicy": etp,
        },
        "status": {"loadBalancer": {"ingress": [{"ip": address}]}},
    }


def _endpoints(service: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-abcde",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.0.5"], "conditions": {"ready": True}, "nodeName": node}
        ],
    }


def services() -> list[dict[str, Any]]:
    return [
        _service("web-1", "192.0.2.10"),
        _service("web-local", "192.0.2.20", "Local"),
        _endpoints("web-local", NODE.name),
        _service("other-1", "198.51.100.10"),
    ]


def cluster(fragment: Path) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE.name, "labels": {"cni": "calico"}},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE.v4}]},
        },
        {
            "apiVersion": "lbroute.io/v1alpha1",
            "kind": "NodeAgent",
            "metadata": {"name": "calico-nodes", "namespace": "lbroute"},
            "spec": {
                "nodeSelector": {"matchLabels": {"cni": "calico"}},
                "router": "bird",
                "mode": "include",
                "includePath": str(fragment),
                "localASN": 64512,
                "hostSessions": {
                    "protocols": ["Global_*", "Node_*"],
                    "serviceGroupSelector": {"matchLabels": {"uplink": "tor"}},
                },
            },
        },
        {
            "apiVersion": "lbroute.io/v1alpha1",
            "kind": "ServiceGroup",
            "metadata": {"name": "web", "namespace": "lbroute", "labels": {"uplink": "tor"}},
            "spec": {
                "pools": [{"cidr": WEB}],
                "bgp": {
                    "communities": ["65000:100"],
                    "largeCommunities": ["65000:1:2"],
                    "med": 50,
                    "asPathPrepend": 2,
                },
            },
        },
        {
            "apiVersion": "lbroute.io/v1alpha1",
            "kind": "ServiceGroup",
            "metadata": {"name": "other", "namespace": "lbroute", "labels": {"uplink": "none"}},
            "spec": {"pools": [{"cidr": OTHER}]},
        },
    ]


@dataclass
class Env:
    lab: Lab
    node: LabNode
    mesh: BirdInstance
    cni_file: Path
    fragment: Path
    source: Path
    since: dict[str, str] | None = None
    """Every CNI session's "since" (and the ToR's session counts), once established."""
    tor_cni_routes: dict[str, Any] | None = None

    def objects(self, name: str) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all((self.source / name).read_text()) if d]

    def write(self, name: str, objects: list[dict[str, Any]]) -> None:
        write_atomic(self.source / name, yaml.safe_dump_all(objects, sort_keys=False))

    def status(self) -> dict[str, Any]:
        return self.lab.status(NODE.name)

    def applied(self) -> bool:
        return (self.status().get("last_apply") or {}).get("result") in ("Applied", "Unchanged")

    def wait(self, predicate: Callable[[], Any], timeout: float = 30) -> Any:
        return self.lab.wait_for(predicate, timeout=timeout)

    # -- what the routers say ---------------------------------------------------------

    def bird(self, *command: str) -> str:
        assert self.node.bird is not None
        return self.node.bird.birdc(*command, check=False).stdout

    def tor(self, command: str) -> Any:
        assert self.lab.upstream_frr is not None
        out = self.lab.upstream_frr.vtysh(command, check=False).stdout
        return json.loads(out or "{}")

    def tor_path(self, prefix: str) -> dict[str, Any] | None:
        """The ToR's best BGP path for ``prefix`` (None without one)."""
        paths = self.tor(f"show bgp ipv4 unicast {prefix} json").get("paths", [])
        best = [p for p in paths if (p.get("bestpath") or {}).get("overall")]
        return best[0] if best else None

    def sessions(self) -> dict[str, str] | None:
        """When every CNI session is Established: each end's "since", and how many
        sessions the ToR established and dropped; None otherwise."""
        found = {
            TOR_SESSION: _established_since(self.bird("show", "protocols", TOR_SESSION)),
            MESH_SESSION: _established_since(self.bird("show", "protocols", MESH_SESSION)),
            "mesh peer": _established_since(
                self.mesh.birdc("show", "protocols", "Mesh_10_1_0_11", check=False).stdout
            ),
        }
        neighbor = self.tor("show bgp neighbors 10.0.0.11 json").get(NODE.v4, {})
        if neighbor.get("bgpState") == "Established":
            # Sessions the ToR ever established and dropped: its uptime epoch is
            # computed from "now" and moves by a second.
            found["ToR"] = (
                f"{neighbor.get('connectionsEstablished')}/{neighbor.get('connectionsDropped')}"
            )
        return found if all(found.values()) and len(found) == 4 else None

    def cni_routes(self) -> dict[str, Any] | None:
        """The CNI's routes: at the ToR (prefix, next hop, AS path), at the mesh peer,
        in node-a's kernel; None until all are there."""
        at_tor = {}
        for prefix in (POD_HERE, POD_THERE):
            path = self.tor_path(prefix)
            if path is None:
                return None
            at_tor[prefix] = (path["aspath"]["string"], path["nexthops"][0]["ip"])
        at_mesh = self.mesh.birdc("show", "route", POD_HERE, check=False).stdout
        kernel = self.node.ns.ip("route", "show", POD_THERE)
        if POD_HERE not in at_mesh or POD_THERE not in kernel:
            return None
        return {"tor": at_tor, "kernel": kernel.split()[:3]}

    def tor_has(self, prefix: str) -> bool:
        route = self.lab.route(prefix)
        return route is not None and self.lab.via(route) == (NODE.name,)

    def assert_cni_intact(self) -> None:
        assert same_since(self.sessions(), self.since), ("a CNI session was reset", self.since)
        assert self.cni_routes() == self.tor_cni_routes
        assert self.cni_file.read_text(encoding="utf-8") == self.cni_text()
        # lbroute's prefixes never reach the node's main table through the CNI's
        # kernel protocol.
        assert not self.node.ns.ip("route", "show", "table", "main", "192.0.2.0/24")

    def cni_text(self) -> str:
        return CALICO.format(pod=POD_HERE, fragments=self.fragment.parent)


def _established_since(text: str) -> str:
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[-1] == "Established":
            return " ".join(fields[4:-1])
    return ""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("cni-router")
    lab = Lab(workdir=workdir, nodes=[NODE], tag="cni")
    mesh_ns = Netns("cnimesh")
    mesh = None
    try:
        lab.start()
        node = lab.members[NODE.name]
        mesh_ns.create()
        veth(node.ns, "eth1", mesh_ns, "eth0")
        node.ns.ip("addr", "add", "10.1.0.11/24", "dev", "eth1")
        mesh_ns.ip("addr", "add", "10.1.0.1/24", "dev", "eth0")
        mesh = BirdInstance(mesh_ns, workdir / "mesh")
        (workdir / "mesh.conf").write_text(MESH, encoding="utf-8")
        mesh.start(workdir / "mesh.conf")

        fragment = workdir / "calico" / "lbroute" / "lbroute.conf"
        fragment.parent.mkdir(parents=True)
        fragment.write_text(STUB.read_text(encoding="utf-8"), encoding="utf-8")
        cni_file = workdir / "calico" / "bird.cfg"
        source = workdir / "source"
        source.mkdir()
        e = Env(lab, node, mesh, cni_file, fragment, source)
        cni_file.write_text(e.cni_text(), encoding="utf-8")
        assert node.bird is not None
        node.bird.restart(cni_file)
        e.since = e.wait(e.sessions)
        e.tor_cni_routes = e.wait(e.cni_routes)
        e.write("cluster.yaml", cluster(fragment))
        e.write("services.yaml", services())
        yield e
    finally:
        lab.stop()
        if mesh is not None:
            mesh.stop()
        mesh_ns.delete()


def test_1_first_apply_announces_through_the_cni_session(env: Env) -> None:
    env.lab.start_agent(
        NODE.name, env.source, "--router-config", str(env.cni_file),
        "--allow-path", str(env.fragment.parent),
    )  # fmt: skip
    env.wait(env.applied)
    assert env.status()["mode"] == "include"
    path = env.wait(lambda: env.tor_path(WEB))
    assert path["community"]["string"] == "65000:100"
    assert path["largeCommunity"]["string"] == "65000:1:2"
    assert path["metric"] == 50
    assert path["aspath"]["string"] == "64512 64512 64512"  # BIRD's own AS, then 2 prepends
    env.wait(lambda: env.tor_has(WEB) and env.tor_has(LOCAL))
    assert not env.tor_has(OTHER), "a group hostSessions does not select reached the ToR"
    text = env.fragment.read_text(encoding="utf-8")
    assert "protocol bgp" not in text  # lbroute owns no session here
    assert "# lbroute-host-sessions: Global_* Node_*" in text
    sessions = env.wait(
        lambda: {s["name"]: s for s in env.status().get("sessions", []) if "_10_" in s["name"]}
    )
    assert set(sessions) == {TOR_SESSION}, sessions  # the mesh is not a host session
    assert sessions[TOR_SESSION]["state"] == "Established"
    env.assert_cni_intact()


def test_2_a_policy_change_reaches_the_tor_without_a_reset(env: Env) -> None:
    objects = env.objects("cluster.yaml")
    for o in objects:
        if o["kind"] == "ServiceGroup" and o["metadata"]["name"] == "web":
            o["spec"]["bgp"] = {"communities": ["65000:200"], "med": 70}
    env.write("cluster.yaml", objects)
    path = env.wait(lambda: (p := env.tor_path(WEB)) and p.get("metric") == 70 and p)
    assert path["community"]["string"] == "65000:200"
    assert "largeCommunity" not in path
    assert path["aspath"]["string"] == "64512"
    local = env.tor_path(LOCAL)
    assert local is not None and local["community"]["string"] == "65000:200"
    env.assert_cni_intact()


def test_3_host_routes_follow_service_churn_and_endpoints(env: Env) -> None:
    pristine = env.objects("services.yaml")
    env.write(
        "services.yaml",
        [
            *pristine,
            _service("web-local-2", "192.0.2.21", "Local"),
            _endpoints("web-local-2", NODE.name),
        ],
    )
    env.wait(lambda: env.tor_has(LOCAL2))
    moved = [
        _endpoints("web-local", "node-b") if o["kind"] == "EndpointSlice" else o for o in pristine
    ]
    env.write("services.yaml", moved)
    env.wait(lambda: not env.tor_has(LOCAL) and not env.tor_has(LOCAL2))
    assert env.tor_has(WEB)
    env.write("services.yaml", pristine)
    env.wait(lambda: env.tor_has(LOCAL))
    env.assert_cni_intact()


def test_4_removing_lbroutes_objects_leaves_the_cni_as_it_was(env: Env) -> None:
    env.write(
        "cluster.yaml", [o for o in env.objects("cluster.yaml") if o["kind"] != "ServiceGroup"]
    )
    env.write("services.yaml", [])
    env.wait(lambda: not env.tor_has(WEB) and not env.tor_has(LOCAL))
    env.wait(lambda: "protocol pipe" not in env.fragment.read_text(encoding="utf-8"))
    env.wait(env.applied)
    assert "function lbroute_export()" in env.fragment.read_text(encoding="utf-8")

    def protocols() -> set[str]:
        return {line.split()[0] for line in env.bird("show", "protocols").splitlines()[2:] if line}

    # The two files may come as two passes (each read 5 ms after it was written), so
    # the status can say Applied of the first while BIRD takes the second: wait for BIRD.
    env.wait(lambda: not {p for p in protocols() if p.startswith("lbr_host")})
    assert {TOR_SESSION, MESH_SESSION, "static1", "kernel1", "direct1"} <= protocols()
    env.assert_cni_intact()
    # The host's file still parses with the fragment as it is now.
    assert "Configuration OK" in env.bird("configure", "check")
