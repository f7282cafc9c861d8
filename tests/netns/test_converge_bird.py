"""BIRD in managed mode converges from whatever it runs: the first apply ends with exactly
the rendered configuration running, and the upstream router learns the Service routes.

One lab (:class:`lbroute.lab.Lab`): node-a runs BIRD, the upstream router (FRR, in
another namespace) accepts BGP from it. Before each test node-a's BIRD is started afresh
in a starting state; then :class:`~nodeagent.routers.BirdDriver` applies what lbroute
renders for node-a, and the test checks what a user would look at:

- ``birdc show protocols`` lists exactly the protocols the rendered text defines, and
  ``show symbols`` knows none of the starting state's filters, functions or constants;
- the file on disk is the rendered text;
- the upstream router installed the Service prefixes through node-a, and forgot what
  the starting state announced.

BIRD's ``configure`` replaces the whole configuration (protocols, filters, functions,
tables), so no starting state needs a special case. Starting states: a configuration of
its own with unrelated protocols (static, direct, kernel, a BGP session to the same
upstream from another AS), filters, functions and constants; and BIRD running another
file that was loaded by hand while its own file already holds lbroute's text, which
``is_current`` must not take for "current" (issue 14: decide from what BIRD runs).

And the one state that is refused rather than converged: BIRD started with another file
than the agent's. lbroute only has BIRD reload the file it runs, so it says so and
changes nothing, rather than load a file BIRD would drop at its next restart.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lbroute.lab import Lab, LabNode, NodeSpec, run
from lbroute.model import api
from nodeagent.routers import BirdDriver
from nodeagent.routers.bird import bird_symbols
from renderer.render import render_view
from renderer.view import build_view

NODE = NodeSpec(name="node-a", router="bird", v4="10.0.0.11", v6="fd00::11")
ROUTES = ("192.0.2.0/24", "2001:db8:1::/64")
"""The Service prefixes, as the agent keeps them in kernel table 4242 and the upstream
router learns them from node-a."""
FOREIGN_ROUTE = "198.18.0.0/16"
"""What the starting state announces upstream."""
OBJECTS = """\
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {name: web, namespace: lbroute}
spec:
  pools: [{cidr: 192.0.2.0/24}, {cidr: "2001:db8:1::/64"}]
---
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {name: tor-v4, namespace: lbroute}
spec:
  bgp: {address: 10.0.0.1, asn: 65000}
---
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {name: tor-v6, namespace: lbroute}
spec:
  bgp: {address: "fd00::1", asn: 65000}
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
status: {addresses: [{type: InternalIP, address: 10.0.0.11}]}
"""

FOREIGN = f"""\
router id 10.0.0.99;
define cni_pod_as = 65099;
ipv4 table cni_pods;
function cni_is_pod() {{
  return net ~ [ {FOREIGN_ROUTE}+ ];
}}
filter cni_to_kernel {{
  if cni_is_pod() then accept;
  reject;
}}
protocol device cni_device {{ }}
protocol direct cni_direct {{
  ipv4;
  interface "eth0";
}}
protocol static cni_static {{
  ipv4;
  route {FOREIGN_ROUTE} blackhole;
}}
protocol kernel cni_kernel {{
  ipv4 {{ import none; export filter cni_to_kernel; }};
}}
protocol bgp cni_upstream {{
  local as cni_pod_as;
  neighbor 10.0.0.1 as 65000;
  ipv4 {{ import none; export where cni_is_pod(); }};
}}
"""
FOREIGN_SYMBOLS = {
    "cni_pod_as",
    "cni_pods",
    "cni_is_pod",
    "cni_to_kernel",
    "cni_device",
    "cni_direct",
    "cni_static",
    "cni_kernel",
    "cni_upstream",
}


def rendered() -> str:
    model = api.load([d for d in yaml.safe_load_all(OBJECTS) if d])
    return render_view(build_view(model, api.Router.BIRD, NODE.name))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(workdir=tmp_path_factory.mktemp("converge-bird"), nodes=[NODE], tag="cvb")
    try:
        lab.start()
        member = lab.members[NODE.name]
        for prefix, address in zip(ROUTES, ("192.0.2.10/24", "2001:db8:1::10/64"), strict=True):
            # What the agent does for a Service: the address, and one route per prefix
            # in its own table, which BIRD's kernel protocol learns.
            member.ns.ip("addr", "add", address, "dev", "kube-lb0", "noprefixroute")
            member.ns.ip("route", "add", prefix, "dev", "kube-lb0", "table", "4242", "proto", "76")
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def node(lab: Lab) -> LabNode:
    """node-a, its BIRD about to be started afresh by the test; no lbroute file yet."""
    member = lab.members[NODE.name]
    member.config_path.unlink(missing_ok=True)
    return member


def start(lab: Lab, node: LabNode, config: Path) -> None:
    """(Re)start node-a's BIRD with ``config`` and wait until the upstream router has
    what it announces."""
    assert node.bird is not None
    node.bird.restart(config)
    for prefix in ROUTES:
        lab.wait_for(lambda p=prefix: lab.route(p) is None)
    lab.wait_for(lambda: lab.route(FOREIGN_ROUTE))


def birdc(node: LabNode, *command: str) -> str:
    assert node.bird is not None
    return node.bird.birdc(*command).stdout


def protocols(node: LabNode) -> set[str]:
    lines = birdc(node, "show", "protocols").splitlines()
    return {line.split()[0] for line in lines[2:] if line.strip()}


def symbols(node: LabNode) -> set[str]:
    return {line.split()[0] for line in birdc(node, "show", "symbols").splitlines()[1:]}


def assert_runs(lab: Lab, node: LabNode, text: str) -> None:
    """BIRD runs exactly ``text``: its protocols, its symbols and none of the starting
    state's; the file is ``text``; the upstream router has the Service routes through
    node-a and no longer the starting state's."""
    named = set(re.findall(r"^protocol \w+ (\w+)", text, re.M))
    unnamed = len(re.findall(r"^protocol \w+ \{", text, re.M))
    assert named <= protocols(node)
    assert len(protocols(node) - named) == unnamed, protocols(node)
    assert bird_symbols(text) <= symbols(node)
    assert not FOREIGN_SYMBOLS & symbols(node)
    assert node.config_path.read_text(encoding="utf-8") == text
    for prefix in ROUTES:
        route = lab.wait_for(lambda p=prefix: lab.route(p))
        assert route.proto == "bgp"
        assert lab.via(route) == (NODE.name,)
    lab.wait_for(lambda: lab.route(FOREIGN_ROUTE) is None)
    assert "198.18." not in run("ip", "-n", node.ns.name, "route", "show").stdout


def test_unrelated_protocols_filters_and_functions_are_replaced(lab: Lab, node: LabNode) -> None:
    node.config_path.write_text(FOREIGN, encoding="utf-8")
    start(lab, node, node.config_path)
    assert symbols(node) >= FOREIGN_SYMBOLS
    assert node.bird is not None
    driver = BirdDriver(node.config_path, node.bird.socket)
    text = rendered()
    assert not driver.is_current(text)
    result = driver.apply(text)
    assert result.ok, result.error
    assert_runs(lab, node, text)
    assert driver.is_current(text)


def test_another_file_loaded_by_hand_is_not_taken_for_current(
    lab: Lab, node: LabNode, tmp_path: Path
) -> None:
    """BIRD's own file already holds lbroute's text (an agent wrote it earlier), but
    BIRD runs something else: the file alone must not say "current"."""
    text = rendered()
    node.config_path.write_text(text, encoding="utf-8")
    foreign = tmp_path / "foreign.conf"
    foreign.write_text(FOREIGN, encoding="utf-8")
    assert node.bird is not None
    node.bird.restart(node.config_path)
    for prefix in ROUTES:
        lab.wait_for(lambda p=prefix: lab.route(p))
    assert "Reconfigur" in birdc(node, "configure", f'"{foreign}"')
    assert symbols(node) >= FOREIGN_SYMBOLS
    lab.wait_for(lambda: FOREIGN_ROUTE in node.ns.ip("route", "show", FOREIGN_ROUTE))
    for prefix in ROUTES:
        lab.wait_for(lambda p=prefix: lab.route(p) is None)

    driver = BirdDriver(node.config_path, node.bird.socket)
    assert not driver.is_current(text)
    result = driver.apply(text)
    assert result.ok, result.error
    assert_runs(lab, node, text)
    assert driver.is_current(text)


def test_a_bird_started_with_another_file_is_refused_and_left_alone(
    lab: Lab, node: LabNode, tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign.conf"
    foreign.write_text(FOREIGN, encoding="utf-8")
    start(lab, node, foreign)
    before = protocols(node)
    assert node.bird is not None
    result = BirdDriver(node.config_path, node.bird.socket).apply(rendered())
    assert not result.ok and not result.rejected
    assert f"BIRD runs '{foreign}', not {node.config_path}" in result.error
    assert "Nothing was changed" in result.error
    assert not node.config_path.exists()
    assert protocols(node) == before
    assert lab.route(FOREIGN_ROUTE) is not None
