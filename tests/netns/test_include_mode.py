"""Include mode next to a CNI's BIRD: lbroute adds its fragment and never touches the rest.

One lab (:class:`lbroute.lab.Lab`): node-a's BIRD runs a CNI-style configuration of its
own (kernel, direct and static protocols, filters, a constant, an iBGP mesh session to
a BIRD in a third namespace, and an ``include`` of lbroute's directory); the upstream
router (FRR) takes lbroute's BGP session. The agent runs in include mode from a
NodeAgent, with ``--allow-path`` allowing that directory, and with ``--router-config``
naming a packaged default ``bird.conf`` that BIRD does not run: the issue's setup,
where the agent had BIRD ``configure`` that file and wiped the CNI's configuration.

Through every step, what the CNI has stays: its mesh session is never reset (same
"since" on both ends, Established), its routes stay in the node's kernel and at the
mesh peer, its file and the packaged file are unchanged, and BIRD still runs every CNI
protocol. The steps:

- the first apply, a policy change and a new ServiceGroup reach the upstream router;
- an apply that BIRD refuses (a user template whose constant clashes with the CNI's:
  ``bird -p`` cannot see it) leaves the last fragment, and an agent restarted after
  it, with the template fixed, changes nothing;
- an older lbroute's wrong apply (BIRD made to load the packaged file, which drops the
  mesh session) is repaired by an agent restart: BIRD runs the CNI's file again;
- the NodeAgent deleted, its selector no longer matching the node, made invalid: the
  agent stays in include mode, keeps the fragment, renders nothing new, and says so
  in its status; a NodeAgent asking for a reload command the command line does not
  allow is refused the same way and the command never runs;
- an agent restarted with no NodeAgent at all (default managed mode), given the CNI's
  file or the packaged one: it refuses, naming why, and touches nothing.
"""

from __future__ import annotations

import re
import time
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
WEB, EXTRA = "192.0.2.0/24", "198.51.100.0/24"
POD_HERE, POD_THERE = "10.244.0.0/26", "10.244.1.0/26"
"""The CNI's pod prefixes: node-a's (announced to the mesh peer), the mesh peer's
(installed in node-a's kernel by the CNI's kernel protocol)."""

CNI = """\
router id 10.0.0.11;
define cni_mesh_as = 64512;
function cni_is_pod() {{
  return net ~ [ 10.244.0.0/16+ ];
}}
filter cni_mesh_out {{
  if cni_is_pod() then accept;
  reject;
}}
filter cni_to_kernel {{
  if proto = "cni_mesh" then accept;
  reject;
}}
protocol device cni_device {{ }}
protocol direct cni_direct {{
  ipv4;
  interface "eth1";
}}
protocol static cni_pods {{
  ipv4;
  route {pod} blackhole;
}}
protocol kernel cni_kernel {{
  ipv4 {{ import none; export filter cni_to_kernel; }};
}}
protocol bgp cni_mesh {{
  local 10.1.0.11 as cni_mesh_as;
  neighbor 10.1.0.1 as cni_mesh_as;
  ipv4 {{ import all; export filter cni_mesh_out; next hop self; }};
}}
include "{fragments}/*.conf";
"""
CNI_PROTOCOLS = {"cni_device", "cni_direct", "cni_pods", "cni_kernel", "cni_mesh"}
MESH = f"""\
router id 10.1.0.1;
protocol device {{ }}
protocol static {{
  ipv4;
  route {POD_THERE} blackhole;
}}
protocol bgp node_a {{
  local 10.1.0.1 as 64512;
  neighbor 10.1.0.11 as 64512;
  ipv4 {{ import all; export all; }};
}}
"""
PACKAGED = """\
# The distribution's default bird.conf, which this BIRD does not run.
router id 198.51.100.1;
protocol device { }
protocol kernel { ipv4 { export all; }; }
"""
SERVICES = """\
apiVersion: v1
kind: Service
metadata: {name: web-1, namespace: default}
spec: {type: LoadBalancer, loadBalancerClass: lbroute.io/lbroute, externalTrafficPolicy: Cluster}
status: {loadBalancer: {ingress: [{ip: 192.0.2.10}]}}
---
apiVersion: v1
kind: Service
metadata: {name: extra-1, namespace: default}
spec: {type: LoadBalancer, loadBalancerClass: lbroute.io/lbroute, externalTrafficPolicy: Cluster}
status: {loadBalancer: {ingress: [{ip: 198.51.100.10}]}}
"""


def cluster(fragment: Path) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE.name, "labels": {"cni": "bird"}},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE.v4}]},
        },
        {
            "apiVersion": "lbroute.io/v1alpha1",
            "kind": "NodeAgent",
            "metadata": {"name": "cni-nodes", "namespace": "lbroute"},
            "spec": {
                "nodeSelector": {"matchLabels": {"cni": "bird"}},
                "router": "bird",
                "mode": "include",
                "includePath": str(fragment),
            },
        },
        {
            "apiVersion": "lbroute.io/v1alpha1",
            "kind": "ServiceGroup",
            "metadata": {"name": "web", "namespace": "lbroute"},
            "spec": {"pools": [{"cidr": WEB}], "bgp": {"communities": ["65000:100"]}},
        },
        {
            "apiVersion": "lbroute.io/v1alpha1",
            "kind": "Peer",
            "metadata": {"name": "tor", "namespace": "lbroute"},
            "spec": {"bgp": {"address": "10.0.0.1", "asn": 65000}},
        },
    ]


@dataclass
class Env:
    lab: Lab
    node: LabNode
    mesh: BirdInstance
    cni_file: Path
    fragment: Path
    packaged: Path
    source: Path
    templates: Path
    since: tuple[str, str] | None = None
    """The mesh session's "since" on node-a and on the mesh peer, once established."""

    # -- the agent ----------------------------------------------------------------------

    def start_agent(self, *extra: str) -> None:
        """Start the agent, without the status file a previous one left."""
        self.node.status_file.unlink(missing_ok=True)
        self.lab.start_agent(
            NODE.name,
            self.source,
            "--router-config",  # the last one given counts: not the CNI's file
            str(self.packaged),
            "--allow-path",
            str(self.fragment.parent),
            "--templates",
            str(self.templates),
            *extra,
        )

    def restart_agent(self, *extra: str) -> None:
        self.lab.stop_agent(NODE.name)
        self.start_agent(*extra)

    def status(self) -> dict[str, Any]:
        return self.lab.status(NODE.name)

    def last_apply(self) -> dict[str, Any]:
        return dict(self.status().get("last_apply") or {})

    def problems(self) -> str:
        return "\n".join(self.status().get("problems", []))

    def objects(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all((self.source / "cluster.yaml").read_text()) if d]

    def write(self, objects: list[dict[str, Any]]) -> None:
        write_atomic(self.source / "cluster.yaml", yaml.safe_dump_all(objects, sort_keys=False))

    def edit(self, kind: str, change: Callable[[dict[str, Any]], None]) -> None:
        objects = self.objects()
        for o in objects:
            if o["kind"] == kind:
                change(o)
        self.write(objects)

    def wait(self, predicate: Callable[[], Any], timeout: float = 30) -> Any:
        return self.lab.wait_for(predicate, timeout=timeout)

    def applied(self) -> bool:
        return self.last_apply().get("result") in ("Applied", "Unchanged")

    # -- what the routers say -------------------------------------------------------------

    def bird(self, *command: str) -> str:
        assert self.node.bird is not None
        return self.node.bird.birdc(*command, check=False).stdout

    def protocols(self) -> set[str]:
        lines = self.bird("show", "protocols").splitlines()
        return {line.split()[0] for line in lines[2:] if line.strip()}

    def mesh_since(self) -> tuple[str, str] | None:
        """The mesh session's state change time on both ends; None unless it is
        Established on both."""
        here = _established_since(self.bird("show", "protocols", "cni_mesh"))
        there = _established_since(
            self.mesh.birdc("show", "protocols", "node_a", check=False).stdout
        )
        return (here, there) if here and there else None

    def cni_routes(self) -> bool:
        kernel = self.node.ns.ip("route", "show", POD_THERE)
        at_mesh = self.mesh.birdc("show", "route", POD_HERE, check=False).stdout
        return POD_THERE in kernel and POD_HERE in at_mesh

    def upstream_has(self, prefix: str) -> bool:
        route = self.lab.route(prefix)
        return route is not None and self.lab.via(route) == (NODE.name,)

    def assert_cni_intact(self) -> None:
        """The CNI's session was never reset, its routes and protocols are there, its
        file and the packaged one are as they were."""
        assert same_since(self.mesh_since(), self.since), "the CNI's mesh session was reset"
        assert self.cni_routes()
        assert self.protocols() >= CNI_PROTOCOLS
        assert self.cni_file.read_text(encoding="utf-8") == self.cni_text()
        assert self.packaged.read_text(encoding="utf-8") == PACKAGED

    def cni_text(self) -> str:
        return CNI.format(pod=POD_HERE, fragments=self.fragment.parent)


def _established_since(text: str) -> str:
    """The "since" column of a BGP protocol that is Established ("" otherwise)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[-1] == "Established":
            return fields[4]
    return ""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("include-mode")
    lab = Lab(workdir=workdir, nodes=[NODE], tag="inc")
    mesh_ns = Netns("incmesh")
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

        cni_dir = workdir / "cni"
        fragment = cni_dir / "lbroute" / "lbroute.conf"
        fragment.parent.mkdir(parents=True)
        fragment.write_text("", encoding="utf-8")
        cni_file = cni_dir / "bird.cfg"
        packaged = workdir / "packaged-bird.conf"
        packaged.write_text(PACKAGED, encoding="utf-8")
        source, templates = workdir / "source", workdir / "templates"
        (templates / "bird").mkdir(parents=True)
        source.mkdir()
        e = Env(lab, node, mesh, cni_file, fragment, packaged, source, templates)
        cni_file.write_text(e.cni_text(), encoding="utf-8")
        assert node.bird is not None
        node.bird.restart(cni_file)
        e.since = e.wait(e.mesh_since)
        e.wait(e.cni_routes)
        e.write(cluster(fragment))
        write_atomic(source / "services.yaml", SERVICES)
        yield e
    finally:
        lab.stop()
        if mesh is not None:
            mesh.stop()
        mesh_ns.delete()


def test_1_include_mode_adds_lbroute_and_leaves_the_cni_alone(env: Env) -> None:
    env.start_agent()
    env.wait(env.applied)
    env.wait(lambda: env.upstream_has(WEB))
    assert env.status()["mode"] == "include"
    text = env.fragment.read_text(encoding="utf-8")
    assert "protocol bgp lbr_bgp_tor" in text and "(include mode)" in text
    assert "lbr_bgp_tor" in env.protocols()
    env.assert_cni_intact()


def test_2_policy_changes_and_new_groups_reach_bird_without_touching_the_cni(env: Env) -> None:
    before = env.fragment.read_text(encoding="utf-8")

    def community(o: dict[str, Any]) -> None:
        if o["metadata"]["name"] == "web":
            o["spec"]["bgp"]["communities"] = ["65000:200"]

    env.edit("ServiceGroup", community)
    env.wait(lambda: "65000, 200" in env.fragment.read_text(encoding="utf-8"))
    env.wait(lambda: env.last_apply().get("result") == "Applied")
    objects = env.objects()
    objects.append(
        {
            "apiVersion": "lbroute.io/v1alpha1",
            "kind": "ServiceGroup",
            "metadata": {"name": "extra", "namespace": "lbroute"},
            "spec": {"pools": [{"cidr": EXTRA}]},
        }
    )
    env.write(objects)
    env.wait(lambda: env.upstream_has(EXTRA))
    assert env.upstream_has(WEB)
    assert env.fragment.read_text(encoding="utf-8") != before
    env.assert_cni_intact()


def test_3_a_refused_apply_and_a_restart_after_it_change_nothing(env: Env) -> None:
    good = env.fragment.read_text(encoding="utf-8")
    clash = env.templates / "bird" / "header.j2"
    clash.write_text("define cni_mesh_as = 65001;\n", encoding="utf-8")
    try:
        env.wait(lambda: env.last_apply().get("result") not in ("Applied", "Unchanged"))
        error = env.last_apply()["error"]
        assert "cni_mesh_as" in error, error
        assert env.fragment.read_text(encoding="utf-8") == good
        env.assert_cni_intact()
        env.lab.stop_agent(NODE.name)
    finally:
        clash.unlink()
    env.start_agent()
    env.wait(env.applied)
    assert env.last_apply()["result"] == "Unchanged", env.last_apply()
    assert env.fragment.read_text(encoding="utf-8") == good
    assert env.upstream_has(WEB) and env.upstream_has(EXTRA)
    env.assert_cni_intact()


def test_4_a_restart_repairs_a_bird_made_to_load_another_file(env: Env) -> None:
    """What an older lbroute did: ``configure`` the packaged file. The mesh session
    goes, and the fragment on disk is still the newest text."""
    env.lab.stop_agent(NODE.name)
    assert "Reconfigur" in env.bird("configure", f'"{env.packaged}"')
    env.wait(lambda: env.mesh_since() is None)
    env.wait(lambda: not env.upstream_has(WEB))
    assert not env.protocols() & CNI_PROTOCOLS

    env.start_agent()
    env.wait(env.applied)
    assert env.last_apply()["result"] == "Applied"
    env.since = env.wait(env.mesh_since)  # a new session: the wrong apply reset it
    env.wait(env.cni_routes)
    env.wait(lambda: env.upstream_has(WEB) and env.upstream_has(EXTRA))
    env.assert_cni_intact()


def _kept(env: Env) -> None:
    """The agent keeps include mode and the last fragment, and says so."""
    env.wait(lambda: "no valid NodeAgent selects this node" in env.problems())
    assert env.status()["mode"] == "include"
    assert f"keeps the last fragment in {str(env.fragment)!r}" in env.problems()


@pytest.mark.parametrize("how", ["deleted", "selector no longer matches", "invalid"])
def test_5_losing_the_node_agent_keeps_the_fragment_and_the_cni(env: Env, how: str) -> None:
    pristine = env.objects()
    good = env.fragment.read_text(encoding="utf-8")
    objects = [o for o in pristine if o["kind"] != "NodeAgent"]
    if how == "selector no longer matches":
        objects = env.objects()
        for o in objects:
            if o["kind"] == "NodeAgent":
                o["spec"]["nodeSelector"] = {"matchLabels": {"cni": "calico"}}
    elif how == "invalid":
        objects = env.objects()
        for o in objects:
            if o["kind"] == "NodeAgent":
                o["spec"]["localASN"] = "not a number"
    try:
        env.write(objects)
        if how == "invalid":
            # Either its last valid version goes on (lbroute.model.lastgood), or, with
            # none, the node has no NodeAgent: include mode either way.
            env.wait(lambda: "spec.localASN" in env.problems())
        else:
            _kept(env)
            # Nothing new is rendered while the node has no NodeAgent.
            env.edit("ServiceGroup", lambda o: o["spec"].update(bgp={"communities": ["65000:3"]}))
            time.sleep(2)
            assert env.fragment.read_text(encoding="utf-8") == good
        time.sleep(1)
        assert env.status()["mode"] == "include"
        assert "lbr_bgp_tor" in env.protocols()
        assert env.upstream_has(WEB) and env.upstream_has(EXTRA)
        env.assert_cni_intact()
    finally:
        env.write(pristine)
    env.wait(lambda: not env.problems())
    env.wait(lambda: env.fragment.read_text(encoding="utf-8") == good)
    env.assert_cni_intact()


def test_6_a_reload_command_not_allowed_is_refused_and_never_runs(env: Env) -> None:
    pristine = env.objects()
    marker = env.source.parent / "reload-ran"
    command = ["/usr/bin/touch", str(marker)]

    def reload_command(o: dict[str, Any]) -> None:
        o["spec"]["reloadCommand"] = command

    try:
        env.edit("NodeAgent", reload_command)
        env.wait(lambda: "spec.reloadCommand" in env.problems())
        assert re.search(r"'/usr/bin/touch \S+' is not allowed", env.problems())
        assert "--allow-reload-command" in env.problems()
        env.edit("ServiceGroup", lambda o: o["spec"].update(bgp={"communities": ["65000:400"]}))
        time.sleep(2)
        assert not marker.exists()
        assert env.status()["mode"] == "include"
        env.assert_cni_intact()
    finally:
        env.write(pristine)
    env.wait(lambda: not env.problems())
    assert not marker.exists()


@pytest.mark.parametrize("config", ["the CNI's file", "the packaged file"])
def test_7_an_agent_restarted_without_node_agent_never_takes_over(env: Env, config: str) -> None:
    """Default managed mode: given the CNI's file (which BIRD runs, and which includes
    other files) it refuses to replace the host's configuration; given the packaged one
    (which BIRD does not run) it refuses to have BIRD load it."""
    pristine = env.objects()
    good = env.fragment.read_text(encoding="utf-8")
    path = env.cni_file if config == "the CNI's file" else env.packaged
    try:
        env.lab.stop_agent(NODE.name)
        env.write([o for o in pristine if o["kind"] != "NodeAgent"])
        env.start_agent("--router-config", str(path))
        env.wait(lambda: env.last_apply().get("error"))
        error = env.last_apply()["error"]
        if config == "the CNI's file":
            assert "is the host's own BIRD configuration" in error, error
        else:
            assert f"BIRD runs '{env.cni_file}', not {env.packaged}" in error, error
        assert "Nothing was changed" in error
        assert env.status()["mode"] == "managed"
        assert env.fragment.read_text(encoding="utf-8") == good
        assert env.upstream_has(WEB)
        env.assert_cni_intact()
    finally:
        env.lab.stop_agent(NODE.name)
        env.write(pristine)
    env.start_agent()
    env.wait(env.applied)
    env.assert_cni_intact()
