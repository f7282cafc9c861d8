"""``kubectl get peers`` says on how many nodes each Peer's session is established.

Two agents publish their NodeStates through the real reporter (nodeagent.kubereport,
which names the Peer of each session and lists the prefixes announced per ServiceGroup),
and the allocator's leader, through the real client against the fake API
(tests/fakeapi.py), writes each Peer's ``status.nodesEstablished`` /
``status.nodesConfigured``: 1/2 with one session up, 0/2 once it goes down, one write
per Peer per change and none at rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import generate_latest

from allocator.controller import Allocator, Settings
from allocator.peers import peer_counts
from lbroute.kube.client import api_client
from lbroute.kube.directory import Snapshot
from lbroute.kube.reflector import Timing
from nodeagent.agent import Agent
from nodeagent.kubereport import KubeReporter, node_state_status
from nodeagent.routers.driver import Session
from nodeagent.settings import AgentSettings
from nodeagent.status import Announced, LastApply, Report, SessionState, Status
from tests.fakeapi import FakeAPI

ROOT = Path(__file__).resolve().parents[1]
NS = "lbroute"
LB = "lbroute.io/v1alpha1"
JSON = dict[str, Any]


def peer_status_objects() -> list[JSON]:
    """A BGP Peer, an OSPF Peer and two NodeStates: ``upstream`` established on node-a
    only, as the reporter writes them."""
    return [
        *peers(),
        node_state("node-a", "Established"),
        node_state("node-b", "Active"),
    ]


def peers() -> list[JSON]:
    return [
        {"apiVersion": LB, "kind": "Peer", "metadata": {"name": "upstream", "namespace": NS},
         "spec": {"bgp": {"address": "192.0.2.254", "asn": 64500}}},
        {"apiVersion": LB, "kind": "Peer", "metadata": {"name": "core", "namespace": NS},
         "spec": {"ospf": {"area": "0.0.0.0", "interfaces": [{"name": "eth1"}]}}},
    ]  # fmt: skip


def nodes() -> list[JSON]:
    return [
        {"apiVersion": "v1", "kind": "Node",
         "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}}
        for n in ("node-a", "node-b")
    ]  # fmt: skip


def report(node: str, bgp: str, *, router: str = "bird", ospf: str | None = None) -> Report:
    """What the agent of ``node`` reports: its BGP session (and OSPF adjacency) in
    state ``bgp`` (``ospf``), two Services of group public announced (an aggregate and a
    host route) and one of group edge."""
    bgp_name = "lbr_bgp_upstream" if router == "bird" else "192.0.2.254"
    sessions = [SessionState(name=bgp_name, protocol="bgp", state=bgp)]
    if ospf is not None:
        name = "lbr_ospf_v2" if router == "bird" else "10.1.0.1@eth1"
        sessions.append(SessionState(name=name, protocol="ospf", state=ospf))
    status = Status(
        node=node,
        router=router,
        mode="managed",
        last_apply=LastApply(time="2026-12-06T03:00:00Z", result="Applied"),
        sessions=sessions,
        announced=[
            Announced(address="192.0.2.1/28", group="lbroute/public", services=("shop/web",)),
            Announced(address="192.0.2.2/28", group="lbroute/public", services=("shop/api",)),
            Announced(address="2001:db8::5/128", group="lbroute/public"),
            Announced(address="198.51.100.7/32", group="lbroute/edge", services=("shop/db",)),
        ],
    )
    return Report(
        status=status,
        announced={},
        local=frozenset(),
        object_problems=(),
        node_problems=(),
        objects=(*nodes(), *peers()),
    )


def node_state(node: str, bgp: str) -> JSON:
    return {
        "apiVersion": LB, "kind": "NodeState", "metadata": {"name": node, "namespace": NS},
        "spec": {"nodeName": node}, "status": node_state_status(report(node, bgp), None),
    }  # fmt: skip


def crd_schema(plural: str) -> JSON:
    crd = yaml.safe_load((ROOT / "deploy/crds" / f"{plural}.yaml").read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


# -- what the agent puts in its NodeState


def test_node_state_names_each_sessions_peer_and_lists_prefixes_per_group() -> None:
    st = node_state_status(report("node-a", "Established", ospf="Full"), None)
    assert st["peers"] == [
        {"name": "lbr_bgp_upstream", "protocol": "bgp", "state": "Established",
         "peerNames": ["upstream"]},
        {"name": "lbr_ospf_v2", "protocol": "ospf", "state": "Full", "peerNames": ["core"]},
    ]  # fmt: skip
    assert st["groups"] == [
        {"group": "lbroute/edge", "prefixes": ["198.51.100.7/32"]},
        {"group": "lbroute/public", "prefixes": ["192.0.2.0/28", "2001:db8::5/128"]},
    ]
    jsonschema.validate({"apiVersion": LB, "kind": "NodeState", "spec": {"nodeName": "node-a"},
                         "status": st}, crd_schema("nodestates"))  # fmt: skip


def test_frr_sessions_are_matched_by_neighbor_and_interface() -> None:
    st = node_state_status(report("node-a", "Established", router="frr", ospf="Full"), None)
    assert [(p["name"], p.get("peerNames")) for p in st["peers"]] == [
        ("10.1.0.1@eth1", ["core"]),
        ("192.0.2.254", ["upstream"]),
    ]


def test_a_peer_that_does_not_select_the_node_owns_no_session() -> None:
    r = report("node-a", "Established")
    elsewhere = [{**p, "spec": {**p["spec"], "nodeSelector": {"matchLabels": {"rack": "r9"}}}}
                 for p in peers()]  # fmt: skip
    r = Report(**{**r.__dict__, "objects": (*nodes(), *elsewhere)})
    assert [p.get("peerNames") for p in node_state_status(r, None)["peers"]] == [None]


def test_many_prefixes_are_bounded_and_counted() -> None:
    r = report("node-a", "Established")
    many = [Announced(address=f"10.{i // 256}.{i % 256}.1/32", group="lbroute/big")
            for i in range(1005)]  # fmt: skip
    r.status.announced = many
    (big,) = node_state_status(r, None)["groups"]
    assert len(big["prefixes"]) == 1000 and big["omitted"] == 5


def test_counts_ignore_sessions_that_name_no_peer() -> None:
    states = [node_state("node-a", "Established"), node_state("node-b", "Established")]
    del states[1]["status"]["peers"][0]["peerNames"]  # an agent from before
    counts = peer_counts(peers(), states)
    assert (counts["upstream"].established, counts["upstream"].configured) == (1, 1)
    assert (counts["core"].established, counts["core"].configured) == (0, 0)


@pytest.mark.parametrize("router", ["bird", "frr"])
def test_session_metrics_name_the_peer_whatever_the_router_calls_the_session(
    router: str, tmp_path: Path
) -> None:
    """lbroute_session_up has one series per session, labelled with its Peer's name (the
    alert and the dashboard show it), and with none for a session no Peer is for."""
    agent = Agent(AgentSettings(node="node-a", status_file=tmp_path / "status.json"), _Quiet())
    sessions = [
        *(SessionState(name=s.name, protocol=s.protocol, state=s.state)
          for s in report("node-a", "Established", router=router, ospf="Init").status.sessions),
        SessionState(name="192.0.2.99", protocol="bfd", state="up"),
    ]  # fmt: skip
    driver = _Sessions(sessions)
    agent._driver = driver  # type: ignore[assignment]
    agent.status.router = router
    agent._rest = (*nodes(), *peers())  # what a pass keeps of the objects but Services
    agent._show_sessions(driver.sessions())
    text = generate_latest(agent.metrics.registry).decode()
    up = {line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
          for line in text.splitlines() if line.startswith("lbroute_session_up{")}  # fmt: skip
    bgp, ospf = (s.name for s in sessions[:2])
    assert up == {
        f'lbroute_session_up{{peer="upstream",protocol="bgp",session="{bgp}"}}': 1.0,
        f'lbroute_session_up{{peer="core",protocol="ospf",session="{ospf}"}}': 0.0,
        'lbroute_session_up{peer="",protocol="bfd",session="192.0.2.99"}': 1.0,
    }


class _Sessions:
    def __init__(self, sessions: list[SessionState]) -> None:
        self._sessions = [
            Session(name=s.name, protocol=s.protocol, state=s.state) for s in sessions
        ]

    def sessions(self) -> list[Session]:
        return self._sessions


class _Quiet:
    def snapshots(self, stop: threading.Event) -> Iterator[Snapshot]:
        return iter(())


# -- the allocator writes the Peers' status


def wait(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.02)
    return got


@pytest.fixture
def fake() -> Iterator[FakeAPI]:
    with FakeAPI(namespaces=("default", NS)) as api:
        api.put_all([*nodes(), *peers()])
        yield api


def test_the_allocator_counts_established_sessions_per_peer(fake: FakeAPI, tmp_path: Path) -> None:
    kubeconfig = str(fake.kubeconfig(tmp_path / "kubeconfig"))
    agents = {n: KubeReporter(api_client(kubeconfig), node=n, namespace=NS)
              for n in ("node-a", "node-b")}  # fmt: skip
    agents["node-a"].sync(report("node-a", "Established"))
    agents["node-b"].sync(report("node-b", "Active"))
    settings = Settings(
        identity="alloc", namespace=NS, lease_duration=2.0, renew_deadline=1.0,
        retry_period=0.1, timing=Timing(watch_seconds=(30, 40), backoff=(0.05, 0.2),
                                        connect_timeout=2), debounce=0.02, retry=0.1,
    )  # fmt: skip
    client = api_client(kubeconfig)
    client.user_agent = "lbroute-allocator/test"
    allocator = Allocator(client, settings)
    stop = threading.Event()
    thread = threading.Thread(target=allocator.run, args=(stop,), daemon=True)
    thread.start()
    try:

        def counts(name: str = "upstream") -> tuple[int, int] | None:
            st = (fake.get("peers", name, NS) or {}).get("status") or {}
            if "nodesEstablished" not in st:
                return None
            return st["nodesEstablished"], st["nodesConfigured"]

        wait(lambda: counts() == (1, 2), "upstream 1/2")
        assert counts("core") == (0, 0)
        jsonschema.validate(fake.get("peers", "upstream", NS), crd_schema("peers"))
        wait(lambda: allocator.peer_status.writes >= 2, "2 writes")  # one per Peer

        agents["node-a"].sync(report("node-a", "Active"))  # the session goes down
        wait(lambda: counts() == (0, 2), "upstream 0/2")
        wait(lambda: allocator.peer_status.writes >= 3, "3 writes")

        agents["node-b"].sync(report("node-b", "Established", ospf="Full"))
        wait(lambda: counts() == (1, 2) and counts("core") == (1, 1), "both up on node-b")
        wait(lambda: allocator.peer_status.writes >= 5, "5 writes")
        time.sleep(0.3)  # at rest: nothing more; one write per Peer per change in all
        assert allocator.peer_status.writes == 5
        verbs = {r.verb for r in fake.requests
                 if r.resource == "peers" and r.user_agent == client.user_agent}  # fmt: skip
        assert verbs == {"list", "watch", "patch"}
    finally:
        stop.set()
        thread.join(timeout=10)


# -- the README's kubectl get peers is this test's


def kubectl_get(objects: list[JSON], plural: str, age: str = "5m") -> list[str]:
    """``kubectl get PLURAL`` as kubectl prints it: NAME, the CRD's printer columns of
    priority 0 (``<none>`` for a missing value), AGE fixed to ``age``."""
    crd = yaml.safe_load((ROOT / "deploy/crds" / f"{plural}.yaml").read_text())
    columns = [c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
               if not c.get("priority")]  # fmt: skip
    rows = [["NAME", *(c["name"].upper() for c in columns)]]
    for obj in sorted(objects, key=lambda o: o["metadata"]["name"]):
        row = [obj["metadata"]["name"]]
        for c in columns:
            if c["name"] == "Age":
                row.append(age)
                continue
            value: Any = obj
            for key in c["jsonPath"].lstrip(".").split("."):
                value = value.get(key) if isinstance(value, dict) else None
            row.append("<none>" if value is None else str(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def test_the_readme_shows_kubectl_get_peers_as_the_allocator_leaves_them(
    fake: FakeAPI, tmp_path: Path
) -> None:
    kubeconfig = str(fake.kubeconfig(tmp_path / "kubeconfig"))
    for node, bgp, ospf in (("node-a", "Active", None), ("node-b", "Established", "Full")):
        KubeReporter(api_client(kubeconfig), node=node, namespace=NS).sync(
            report(node, bgp, ospf=ospf)
        )
    allocator = Allocator(api_client(kubeconfig), Settings(identity="alloc", namespace=NS))
    allocator.peer_status.leading = lambda: True
    allocator.peer_status.publish(
        [{**o, "kind": k} for k, p in (("Peer", "peers"), ("NodeState", "nodestates"))
         for o in fake.objects(p)]
    )  # fmt: skip
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("$ kubectl -n lbroute get peers\n") :].split("```")[0]
    shown = block.splitlines()[1:]
    assert shown == kubectl_get(fake.objects("peers"), "peers")
