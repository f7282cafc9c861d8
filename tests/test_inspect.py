"""``kubectl lbroute`` (``lbroute inspect``): status, services, pools and why, read by
the real kubernetes client over HTTP from the fake API (tests/fakeapi.py).

One healthy cluster (a routed ETP Cluster Service, a routed ETP Local one and one on a
local address) and, from it, the broken ones an operator meets: no ready endpoint of an
ETP Local Service, an invalid group, the session down on the only announcing node, a
pool exhausted, a local address nobody holds. Each time the output names the problem
and ``why`` exits 1. The README's pasted output is this fixture's, checked here.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lbroute.cli import main
from lbroute.cli.inspect import inspect
from tests.fakeapi import FakeAPI

ROOT = Path(__file__).resolve().parent.parent
NS = "lbroute"
JSON = dict[str, Any]
LB = "lbroute.io/v1alpha1"
NOW = "2026-12-06T03:00:00Z"
HELD = "1 local address held: 198.51.100.10 on node-b"


def _ready(reason: str = "Applied") -> JSON:
    return {"type": "Ready", "status": "True", "reason": reason, "message": "",
            "lastTransitionTime": NOW}  # fmt: skip


def node(name: str, **labels: str) -> JSON:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                         "labels": {"kubernetes.io/hostname": name, **labels}}}  # fmt: skip


def node_state(
    name: str,
    *,
    state: str = "Established",
    announced: int = 2,
    prefixes: tuple[str, ...] | None = None,
    **extra: Any,
) -> JSON:
    """The NodeState the agent of ``name`` writes: its BGP session to Peer upstream in
    ``state``; group public's ``prefixes`` (default: node-a's host routes of shop/web
    and shop/api, nothing elsewhere; None in ``extra["groups"]``: an agent from before
    it listed them)."""
    if prefixes is None:
        prefixes = ("192.0.2.1/32", "192.0.2.2/32") if name == "node-a" else ()
    groups = [{"group": "lbroute/public", "prefixes": list(prefixes)}] if prefixes else []
    status: JSON = {
        "router": "bird",
        "mode": "managed",
        "configHash": "3f2a9c",
        "lastApply": {"time": NOW, "result": "Applied", "error": ""},
        "peers": [{"name": "lbr_bgp_upstream", "protocol": "bgp", "state": state,
                   "since": "2026-12-06T02:00:00Z", "peerNames": ["upstream"]}],
        "announcedAddresses": announced,
        "groups": groups,
        "conditions": [_ready()],
        **extra,
    }  # fmt: skip
    if status["groups"] is None:
        del status["groups"]
    return {"apiVersion": LB, "kind": "NodeState",
            "metadata": {"name": name, "namespace": NS}, "spec": {"nodeName": name},
            "status": status}  # fmt: skip


def group(name: str, spec: JSON, status: JSON) -> JSON:
    return {"apiVersion": LB, "kind": "ServiceGroup", "metadata": {"name": name, "namespace": NS},
            "spec": spec, "status": status}  # fmt: skip


def service(
    ns: str, name: str, ip: str | None, *, local: bool = False, ann: dict[str, str] | None = None
) -> JSON:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "annotations": ann or {}},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "lbroute.io/lbroute",
                 "externalTrafficPolicy": "Local" if local else "Cluster",
                 "selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}] if ip else []}},
    }  # fmt: skip


def slice_of(ns: str, name: str, *nodes: str, ready: bool = True) -> JSON:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-x1", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [f"10.0.0.{i + 1}"], "nodeName": n,
                       "conditions": {"ready": ready}} for i, n in enumerate(nodes)],
    }  # fmt: skip


def healthy() -> list[JSON]:
    valid = {"type": "Valid", "status": "True", "reason": "Valid", "message": "",
             "lastTransitionTime": NOW}  # fmt: skip
    return [
        node("node-a", rack="r1"),
        node("node-b", rack="r2"),
        node("node-c", rack="r2"),
        {"apiVersion": LB, "kind": "NodeAgent", "metadata": {"name": "bird", "namespace": NS},
         "spec": {"router": "bird", "localASN": 64512}},
        {"apiVersion": LB, "kind": "Peer", "metadata": {"name": "upstream", "namespace": NS},
         "spec": {"bgp": {"address": "192.0.2.254", "asn": 64500}}},
        group("public", {"announce": "routed", "default": True, "pools": [{"cidr": "192.0.2.0/28"}],
                         "nodeSelector": {"matchLabels": {"rack": "r1"}}},
              {"allocated": {"ipv4": 2}, "available": {"ipv4": 12},
               "conditions": [valid, {**valid, "type": "Allocatable", "reason": "Allocatable"}]}),
        group("lan", {"announce": "local", "pools": [{"range": "198.51.100.10-198.51.100.20",
                                                      "subnet": "198.51.100.0/24"}]},
              {"allocated": {"ipv4": 1}, "available": {"ipv4": 10},
               "conditions": [valid, {**valid, "type": "LocalHeld", "reason": "Held",
                                      "message": HELD}]}),
        node_state("node-a"),
        node_state("node-b", announced=0, local=[
            {"address": "198.51.100.10/24", "interface": "eth1", "group": "lbroute/lan",
             "services": ["shop/printer"], "since": NOW}]),
        node_state("node-c", announced=0),
        service("shop", "web", "192.0.2.1"),
        service("shop", "api", "192.0.2.2", local=True, ann={"lbroute.io/announcing": "node-a"}),
        service("shop", "printer", "198.51.100.10", ann={
            "lbroute.io/service-group": "lan",
            "lbroute.io/announcing": "node-b/eth1/198.51.100.10"}),
        slice_of("shop", "web", "node-b", "node-c"),
        slice_of("shop", "api", "node-a"),
        slice_of("shop", "printer", "node-b"),
    ]  # fmt: skip


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeAPI]:
    with FakeAPI(namespaces=("default", NS, "shop")) as fake:
        fake.put_all(healthy())
        fake.kubeconfig(tmp_path / "kubeconfig", namespace="shop")
        yield fake


def run(tmp_path: Path, *args: str) -> Result:
    """``kubectl lbroute ARGS`` with the fixture's kubeconfig."""
    kubeconfig = str(tmp_path / "kubeconfig")
    return CliRunner().invoke(
        inspect, ["--kubeconfig", kubeconfig, *args], prog_name="kubectl lbroute"
    )


def patched(api: FakeAPI, kind: str, name: str, ns: str, change: Any) -> None:
    obj = api.get(kind, name, ns)
    assert obj is not None
    obj = copy.deepcopy(obj)
    change(obj)
    api.put(kind, obj, ns)


# -- a healthy cluster


def test_status_lists_every_node_with_its_router_apply_sessions_and_local_addresses(
    api: FakeAPI, tmp_path: Path
) -> None:
    result = run(tmp_path, "status")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NODE", "ROUTER", "MODE", "LAST", "APPLY", "AT", "SESSIONS",
                              "ANNOUNCED", "LOCAL", "READY"]  # fmt: skip
    assert rows[0].split() == ["node-a", "bird", "managed", "Applied", NOW, "1/1", "2", "-", "True"]
    assert rows[1].split()[-2:] == ["198.51.100.10/24", "True"]
    assert "sessions down" not in result.stdout
    assert not [r for r in api.requests if r.method != "GET"], "inspect wrote to the API"


def test_services_say_who_announces_each_and_how(api: FakeAPI, tmp_path: Path) -> None:
    result = run(tmp_path, "services")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["shop/web"] == ["shop/web", "192.0.2.1", "public", "routed,", "Cluster", "bgp",
                                "node-a"]  # fmt: skip
    assert rows["shop/api"] == ["shop/api", "192.0.2.2", "public", "routed,", "Local", "bgp",
                                "node-a"]  # fmt: skip
    assert rows["shop/printer"] == ["shop/printer", "198.51.100.10", "lan", "local",
                                    "local", "(ARP/NDP)", "node-b/eth1/198.51.100.10"]  # fmt: skip


def test_pools_show_usage_per_family_and_conditions(api: FakeAPI, tmp_path: Path) -> None:
    result = run(tmp_path, "pools")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["public"] == ["public", "routed", "yes", "192.0.2.0/28", "2/12", "-", "True", "-"]
    assert rows["lan"][-4:] == ["1/10", "-", "True", "True"]


@pytest.mark.parametrize("name", ["shop/web", "shop/api", "shop/printer"])
def test_why_a_reachable_service_walks_every_link_and_exits_0(
    api: FakeAPI, tmp_path: Path, name: str
) -> None:
    result = run(tmp_path, "why", name)
    assert result.exit_code == 0, result.output
    assert "BROKEN" not in result.stdout
    assert result.stdout.splitlines()[-1] == "reachable as far as lbroute can tell"


def test_why_takes_the_namespace_as_kubectl_does(api: FakeAPI, tmp_path: Path) -> None:
    assert run(tmp_path, "why", "-n", "shop", "web").exit_code == 0
    assert run(tmp_path, "why", "web").exit_code == 0  # the context's namespace: shop
    bad = run(tmp_path, "why", "-n", "other", "shop/web")
    assert bad.exit_code == 2
    assert "names namespace 'shop' but -n says 'other'" in bad.output


def test_the_same_commands_under_lbroute_inspect(api: FakeAPI, tmp_path: Path) -> None:
    kubeconfig = str(tmp_path / "kubeconfig")
    result = CliRunner().invoke(main, ["inspect", "--kubeconfig", kubeconfig, "why", "shop/web"])
    assert result.exit_code == 0, result.output


def test_kubectl_lbroute_is_a_console_script_of_the_package() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-lbroute"] == "lbroute.cli.inspect:plugin"


# -- broken clusters: the output names the problem, why exits 1


def broken(result: Result, *words: str) -> str:
    assert result.exit_code == 1, result.output
    line = next(x for x in result.stdout.splitlines() if x.lstrip().startswith("BROKEN"))
    for w in words:
        assert w in line, line
    assert result.stdout.splitlines()[-1].startswith("not reachable: ")
    return line


def test_no_ready_endpoint_of_an_etp_local_service(api: FakeAPI, tmp_path: Path) -> None:
    api.put("EndpointSlice", slice_of("shop", "api", "node-a", ready=False), "shop")
    line = broken(run(tmp_path, "why", "shop/api"), "no ready endpoint")
    assert "address 192.0.2.2" in run(tmp_path, "why", "shop/api").stdout  # links before it: ok
    assert line.split()[0] == "BROKEN"


def test_endpoints_only_on_nodes_the_group_does_not_select(api: FakeAPI, tmp_path: Path) -> None:
    api.put("EndpointSlice", slice_of("shop", "api", "node-c"), "shop")
    broken(run(tmp_path, "why", "shop/api"), "externalTrafficPolicy Local", "node-c")


def test_an_invalid_group(api: FakeAPI, tmp_path: Path) -> None:
    message = "spec.pools[0].cidr: '192.0.2.0/33' is not a valid network"
    bad = group("broken", {"pools": [{"cidr": "192.0.2.0/33"}]},
                {"conditions": [{"type": "Valid", "status": "False", "reason": "Invalid",
                                 "message": message, "lastTransitionTime": NOW}]})  # fmt: skip
    api.put("ServiceGroup", bad, NS)
    api.put(
        "Service", service("shop", "db", None, ann={"lbroute.io/service-group": "broken"}), "shop"
    )
    line = broken(run(tmp_path, "why", "shop/db"), "ServiceGroup lbroute/broken is invalid")
    assert "192.0.2.0/33" in line
    pools = run(tmp_path, "pools").stdout
    assert re.search(r"^broken\s.*False \(does not parse\)", pools, re.M), pools


def test_a_group_that_does_not_exist(api: FakeAPI, tmp_path: Path) -> None:
    api.put(
        "Service", service("shop", "db", None, ann={"lbroute.io/service-group": "gone"}), "shop"
    )
    result = run(tmp_path, "why", "shop/db")
    broken(result, "ServiceGroup lbroute/gone", "does not exist")
    assert "name one of: lan, public" in result.stdout


def test_the_session_is_down_on_the_only_announcing_node(api: FakeAPI, tmp_path: Path) -> None:
    api.put("NodeState", node_state("node-a", state="Active"), NS)
    result = run(tmp_path, "why", "shop/web")
    broken(result, "no session that carries the group is up", "node-a")
    assert "warning: node-a: session of Peer upstream is down (lbr_bgp_upstream Active)" in (
        result.stdout
    )
    status = run(tmp_path, "status").stdout
    assert "sessions down:\n  node-a: bgp lbr_bgp_upstream is Active" in status
    assert re.search(r"^node-a\s.*\s0/1\s", status, re.M), status


def test_an_etp_local_service_nobody_announces(api: FakeAPI, tmp_path: Path) -> None:
    def unannounced(obj: JSON) -> None:
        obj["metadata"]["annotations"].pop("lbroute.io/announcing")

    patched(api, "Service", "api", "shop", unannounced)
    line = broken(run(tmp_path, "why", "shop/api"), "announced by no node", "node-a")
    assert "lbroute.io/announcing is empty" in line
    assert re.search(r"^shop/api\s.*<nobody>$", run(tmp_path, "services").stdout, re.M)


def test_the_only_node_of_the_group_is_drained(api: FakeAPI, tmp_path: Path) -> None:
    drained = {"type": "Drained", "status": "True", "reason": "Drained", "message": "",
               "lastTransitionTime": NOW}  # fmt: skip
    state = node_state("node-a")
    state["status"]["conditions"].append(drained)
    api.put("NodeState", state, NS)
    broken(run(tmp_path, "why", "shop/web"), "announced by no node (node-a: drained)")
    assert re.search(r"^node-a\s.*True, drained$", run(tmp_path, "status").stdout, re.M)


def test_etp_cluster_announcers_come_from_the_prefixes_in_node_states(
    api: FakeAPI, tmp_path: Path
) -> None:
    # node-a announces the pool's aggregate, node-c (outside the group's selector now,
    # its agent still announcing) a host route of shop/web; node-b announces nothing.
    api.put("NodeState", node_state("node-a", prefixes=("192.0.2.0/28",)), NS)
    api.put("NodeState", node_state("node-c", prefixes=("192.0.2.1/32",)), NS)
    rows = {line.split()[0]: line for line in run(tmp_path, "services").stdout.splitlines()}
    assert rows["shop/web"].endswith("node-a (192.0.2.0/28),node-c"), rows["shop/web"]
    why = run(tmp_path, "why", "shop/web").stdout
    assert "announced by node-a, node-c (ETP Cluster: their NodeStates list 192.0.2.0/28, " \
           "192.0.2.1/32)" in why, why  # fmt: skip


def test_a_node_whose_node_state_lists_no_prefix_of_the_service(
    api: FakeAPI, tmp_path: Path
) -> None:
    api.put("NodeState", node_state("node-a", prefixes=("192.0.2.2/32",)), NS)
    line = broken(run(tmp_path, "why", "shop/web"), "announced by no node")
    assert "node-a: its NodeState lists no prefix of ServiceGroup lbroute/public covering " \
           "192.0.2.1" in line, line  # fmt: skip
    assert re.search(r"^shop/web\s.*<nobody>$", run(tmp_path, "services").stdout, re.M)


def test_an_agent_that_lists_no_prefixes_leaves_it_to_inference(
    api: FakeAPI, tmp_path: Path
) -> None:
    api.put("NodeState", node_state("node-a", groups=None), NS)
    rows = {line.split()[0]: line for line in run(tmp_path, "services").stdout.splitlines()}
    assert rows["shop/web"].endswith("node-a (inferred)"), rows["shop/web"]
    assert "(ETP Cluster: inferred: NodeState applied" in run(tmp_path, "why", "shop/web").stdout


def test_sessions_are_matched_to_their_peer_by_the_name_the_agent_gives(
    api: FakeAPI, tmp_path: Path
) -> None:
    state = node_state("node-a", state="Active")
    state["status"]["peers"].append({"name": "tor-1", "protocol": "bgp", "state": "Established",
                                     "peerNames": ["upstream"]})  # fmt: skip
    api.put("NodeState", state, NS)
    assert "routes carried: node-a via bgp upstream" in run(tmp_path, "why", "shop/web").stdout
    state["status"]["peers"][1]["peerNames"] = ["elsewhere"]
    api.put("NodeState", state, NS)
    broken(run(tmp_path, "why", "shop/web"), "no session that carries the group is up")


def test_another_install_namespace(api: FakeAPI, tmp_path: Path) -> None:
    result = run(tmp_path, "status", "-n", "elsewhere")
    assert result.exit_code == 0, result.output
    assert "without a NodeState (no agent reports there): node-a, node-b, node-c" in result.stdout
    assert run(tmp_path, "-n", "elsewhere", "pools").stdout.splitlines()[1:] == []


def test_the_pool_is_exhausted(api: FakeAPI, tmp_path: Path) -> None:
    api.put("Service", service("shop", "late", None), "shop")
    note = (
        "PoolExhausted: no free ipv4 address left in ServiceGroup lbroute/public "
        "(pools: 192.0.2.0/28)"
    )
    api.put("events.events.k8s.io", {
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "late.1", "namespace": "shop"},
        "eventTime": "2026-12-06T03:01:00.000000Z",
        "reason": "AllocationFailed", "type": "Warning", "note": note, "action": "Allocate",
        "reportingController": "lbroute.io/allocator", "reportingInstance": "allocator-0",
        "regarding": {"kind": "Service", "namespace": "shop", "name": "late", "apiVersion": "v1"},
    }, "shop")  # fmt: skip
    line = broken(run(tmp_path, "why", "shop/late"), "no address assigned", "PoolExhausted")
    assert "192.0.2.0/28" in line
    assert re.search(r"^shop/late\s+<pending>\s+public\s", run(tmp_path, "services").stdout, re.M)


def test_the_pool_is_exhausted_without_an_event(api: FakeAPI, tmp_path: Path) -> None:
    def full(obj: JSON) -> None:
        obj["status"]["available"] = {"ipv4": 0}

    patched(api, "ServiceGroup", "public", NS, full)
    api.put("Service", service("shop", "late", None), "shop")
    broken(run(tmp_path, "why", "shop/late"), "no address assigned", "no free ipv4 address")


def test_a_local_address_with_no_holder(api: FakeAPI, tmp_path: Path) -> None:
    message = ("198.51.100.10 (shop/printer) has no holder: no live node has an interface "
               "on 198.51.100.0/24")  # fmt: skip
    api.put("NodeState", node_state("node-b", announced=0), NS)

    def unheld(obj: JSON) -> None:
        obj["metadata"]["annotations"].pop("lbroute.io/announcing")

    def no_holder(obj: JSON) -> None:
        obj["status"]["conditions"][1] = {"type": "LocalHeld", "status": "False",
                                          "reason": "NoHolder", "message": message,
                                          "lastTransitionTime": NOW}  # fmt: skip

    patched(api, "Service", "printer", "shop", unheld)
    patched(api, "ServiceGroup", "lan", NS, no_holder)
    line = broken(run(tmp_path, "why", "shop/printer"), "no node holds 198.51.100.10")
    assert "LocalHeld: " + message in line
    assert re.search(r"^lan\s.*False \(NoHolder\)$", run(tmp_path, "pools").stdout, re.M)


def test_a_service_of_another_class_and_default_class(api: FakeAPI, tmp_path: Path) -> None:
    svc = service("shop", "plain", "192.0.2.3")
    del svc["spec"]["loadBalancerClass"]
    api.put("Service", svc, "shop")
    broken(run(tmp_path, "why", "shop/plain"), "loadBalancerClass is unset")
    served = run(tmp_path, "--default-class", "why", "shop/plain")
    assert "class none (lbroute is the default class)" in served.stdout
    assert "shop/plain" in run(tmp_path, "--default-class", "services").stdout
    assert "shop/plain" not in run(tmp_path, "services").stdout


def test_no_such_service_and_no_api(api: FakeAPI, tmp_path: Path) -> None:
    broken(run(tmp_path, "why", "shop/nope"), "no Service of type LoadBalancer")
    api.stop_serving()
    result = run(tmp_path, "status")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot read the cluster: ")
    assert "Traceback" not in result.output


# -- the README's output is this fixture's


def readme_blocks() -> dict[str, str]:
    """``kubectl lbroute ARGS`` -> the output pasted under it in README's subsection."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### From a workstation: kubectl lbroute")
    end = text.find("\n## ", start)
    found = {}
    for block in re.findall(r"```console\n(.*?)```", text[start:end], re.S):
        command, _, output = block.partition("\n")
        found[command.removeprefix("$ ")] = output
    return found


def readme_cluster(api: FakeAPI) -> None:
    """The README's broken cluster: node-a's BGP session down, shop/api without a ready
    endpoint (so nobody announces it), shop/db in a group that does not parse."""
    api.put("NodeState", node_state("node-a", state="Active", announced=1,
                                    prefixes=("192.0.2.1/32",)), NS)  # fmt: skip
    api.put("EndpointSlice", slice_of("shop", "api", "node-a", ready=False), "shop")

    def unannounced(obj: JSON) -> None:
        obj["metadata"]["annotations"].pop("lbroute.io/announcing")

    patched(api, "Service", "api", "shop", unannounced)
    message = "spec.pools[0].cidr: '192.0.2.0/33' is not a valid network"
    api.put("ServiceGroup", group("broken", {"pools": [{"cidr": "192.0.2.0/33"}]}, {
        "conditions": [{"type": "Valid", "status": "False", "reason": "Invalid",
                        "message": message, "lastTransitionTime": NOW}]}), NS)  # fmt: skip
    db = service("shop", "db", None, ann={"lbroute.io/service-group": "broken"})
    api.put("Service", db, "shop")


def test_the_readme_shows_this_fixtures_output(api: FakeAPI, tmp_path: Path) -> None:
    readme_cluster(api)
    blocks = readme_blocks()
    assert len(blocks) >= 4, blocks.keys()
    for command, output in blocks.items():
        args = command.removeprefix("kubectl lbroute ").split()
        result = run(tmp_path, *args)
        assert result.stdout == output, f"README: {command}\n{result.stdout}"
