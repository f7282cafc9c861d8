"""What the agent publishes about local addresses (nodeagent.kubereport): the NodeState's
``local`` list and its LocalArpStrict condition; ``lbroute.io/announcing`` naming node,
interface and address, each agent changing only its own node's entries; the
ServiceGroup's ``LocalHeld`` condition, written by one agent only and only when it
changes, with its Events; ``LocalNotPlaced`` for an address a node cannot place. Against
the fake API server, through the real client."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lbroute.kube.client import api_client
from lbroute.model.errors import ObjectRef
from lbroute.model.vocabulary import Announcer, format_announcing, parse_announcing
from nodeagent.kubereport import KubeReporter, condition_writer, node_state_status
from nodeagent.local.election import NoHolder
from nodeagent.status import (
    LocalElected,
    LocalElections,
    LocalHeld,
    LocalUnplaced,
    Report,
    Status,
)
from tests.fakeapi import FakeAPI


def report(status: Status) -> Report:
    return Report(
        status=status,
        announced={},
        local=frozenset(),
        object_problems=(),
        node_problems=(),
        objects=(),
    )


HELD = LocalHeld(
    address="10.0.0.50/24",
    interface="eth0",
    group="lbroute/lan",
    services=("default/a", "default/b"),
    since="2026-12-06T01:00:00Z",
)


def conditions(out: dict[str, object]) -> dict[str, tuple[str, str]]:
    found = out["conditions"]
    assert isinstance(found, list)
    return {c["type"]: (c["status"], c["reason"]) for c in found}


def test_node_state_lists_local_addresses_and_arp_strictness() -> None:
    out = node_state_status(report(Status(node="n1", local=[HELD])), None)
    assert out["local"] == [
        {
            "address": "10.0.0.50/24",
            "interface": "eth0",
            "group": "lbroute/lan",
            "services": ["default/a", "default/b"],
            "since": "2026-12-06T01:00:00Z",
        }
    ]
    assert conditions(out)["LocalArpStrict"] == ("True", "ArpStrict")


def test_kube_ipvs0_finding_is_a_false_condition_saying_what_to_set() -> None:
    finding = "kube-ipvs0 holds local address 10.0.0.50 ... Set strictARP: true"
    out = node_state_status(report(Status(node="n1", local=[HELD], arp=finding)), None)
    assert conditions(out)["LocalArpStrict"] == ("False", "KubeIpvsAnswers")
    message = next(c["message"] for c in out["conditions"] if c["type"] == "LocalArpStrict")
    assert "strictARP: true" in message


def test_no_local_loop_no_local_fields() -> None:
    out = node_state_status(report(Status(node="n1")), None)
    assert "local" not in out
    assert "LocalArpStrict" not in conditions(out)
    doc = Status(node="n1").to_json()
    assert '"local"' not in doc and '"arp"' not in doc
    assert Status.from_json(Status(node="n1", local=[HELD]).to_json()).local == [HELD]


def test_events_and_annotation_follow_the_local_holdings(tmp_path: Path) -> None:
    web = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-web"},
        "spec": {"type": "LoadBalancer"},
    }
    with FakeAPI(namespaces=("default", "lbroute")) as fake:
        fake.put_all([web])
        client = api_client(str(fake.kubeconfig(tmp_path / "kubeconfig")))
        reporter = KubeReporter(client, node="n1", namespace="lbroute")
        held = LocalHeld(address="10.0.0.50/24", interface="eth0", services=("default/web",))

        def sync(local: list[LocalHeld]) -> None:
            objects = tuple(
                {**o, "kind": "Service", "apiVersion": "v1"} for o in fake.objects("services")
            )
            reporter.sync(
                Report(
                    status=Status(node="n1", local=local),
                    announced={},
                    local=frozenset(),
                    object_problems=(),
                    node_problems=(),
                    objects=objects,
                )
            )

        def reasons() -> list[str]:
            return [e["reason"] for e in fake.objects("events.events.k8s.io")]

        def annotation() -> str | None:
            svc = fake.get("services", "web")
            assert svc is not None
            return (svc["metadata"].get("annotations") or {}).get("lbroute.io/announcing")

        sync([])
        sync([held])
        assert reasons().count("AnnouncingLocal") == 1
        assert annotation() == "n1/eth0/10.0.0.50"
        note = next(
            e["note"] for e in fake.objects("events.events.k8s.io")
            if e["reason"] == "AnnouncingLocal"
        )  # fmt: skip
        assert "10.0.0.50/24" in note and "eth0" in note and "n1" in note
        sync([])
        assert reasons().count("LocalHandover") == 1
        assert annotation() is None


# -- lbroute.io/announcing ---------------------------------------------------------------

NS = "lbroute"
ANNOUNCING = "lbroute.io/announcing"
LAN = ObjectRef(kind="ServiceGroup", namespace=NS, name="lan")
WEB = ObjectRef(kind="Service", namespace="default", name="web")
DB = ObjectRef(kind="Service", namespace="default", name="db")
AGENT = ObjectRef(kind="NodeAgent", namespace=NS, name="all")


def svc(name: str, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"u-{name}",
            "annotations": annotations,
        },
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
    }


def group(name: str, announce: str = "local") -> dict[str, Any]:
    return {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "ServiceGroup",
        "metadata": {"name": name, "namespace": NS, "uid": f"u-{name}"},
        "spec": {"announce": announce, "pools": [{"range": "10.0.0.50-10.0.0.59"}]},
    }


@pytest.fixture
def fake() -> Iterator[FakeAPI]:
    with FakeAPI(namespaces=("default", NS)) as api:
        api.put_all([svc("web"), svc("db"), group("lan")])
        yield api


def reporter(fake: FakeAPI, tmp_path: Path, node: str) -> KubeReporter:
    client = api_client(str(fake.kubeconfig(tmp_path / f"kubeconfig-{node}")))
    return KubeReporter(client, node=node, namespace=NS)


def objects(fake: FakeAPI) -> tuple[dict[str, Any], ...]:
    return (
        *({**o, "kind": "Service", "apiVersion": "v1"} for o in fake.objects("services")),
        *(
            {**o, "kind": "ServiceGroup", "apiVersion": "lbroute.io/v1alpha1"}
            for o in fake.objects("servicegroups")
        ),
    )


def make_report(
    fake: FakeAPI,
    node: str,
    *,
    held: tuple[LocalHeld, ...] = (),
    routed: frozenset[ObjectRef] = frozenset(),
    elected: LocalElections | None = None,
    agent: ObjectRef | None = None,
) -> Report:
    return Report(
        status=Status(node=node, local=list(held)),
        announced={ref: ("192.0.2.20/32",) for ref in routed},
        local=routed,
        object_problems=(),
        node_problems=(),
        objects=objects(fake),
        agent=agent,
        elected=elected,
    )


def annotation(fake: FakeAPI, name: str = "web") -> str | None:
    obj = fake.get("services", name)
    assert obj is not None
    return (obj["metadata"].get("annotations") or {}).get(ANNOUNCING)


def test_the_annotation_parses_and_formats_in_one_place() -> None:
    value = "node-b/eth1/192.0.2.10,node-a,node-c/eth1/2001:db8::10"
    entries = parse_announcing(value)
    assert entries == (
        Announcer(node="node-b", interface="eth1", address="192.0.2.10"),
        Announcer(node="node-a"),
        Announcer(node="node-c", interface="eth1", address="2001:db8::10"),
    )
    assert format_announcing(entries) == "node-a,node-b/eth1/192.0.2.10,node-c/eth1/2001:db8::10"
    assert format_announcing(parse_announcing(" , ")) is None
    assert parse_announcing(None) == ()


def test_annotation_names_node_interface_and_address_each_agent_only_its_own(
    fake: FakeAPI, tmp_path: Path
) -> None:
    fake.put("services", svc("web", **{ANNOUNCING: "n3/eth9/10.0.0.99"}))
    n1, n2 = reporter(fake, tmp_path, "n1"), reporter(fake, tmp_path, "n2")
    v4 = LocalHeld(address="10.0.0.50/24", interface="eth0", services=("default/web",))
    v6 = LocalHeld(address="fd00::50/64", interface="eth1", services=("default/web",))
    n1.sync(make_report(fake, "n1", held=(v4,)))
    assert annotation(fake) == "n1/eth0/10.0.0.50,n3/eth9/10.0.0.99"
    n2.sync(make_report(fake, "n2", held=(v6,)))
    assert annotation(fake) == "n1/eth0/10.0.0.50,n2/eth1/fd00::50,n3/eth9/10.0.0.99"
    # n1 also announces the Service routed (ETP Local): its name beside its local entry
    n1.sync(make_report(fake, "n1", held=(v4,), routed=frozenset({WEB})))
    assert annotation(fake) == "n1,n1/eth0/10.0.0.50,n2/eth1/fd00::50,n3/eth9/10.0.0.99"
    assert annotation(fake, "db") is None, "a Service it does not announce is left alone"
    before = len(fake.requests)
    n1.sync(make_report(fake, "n1", held=(v4,), routed=frozenset({WEB})))
    assert not [r for r in fake.requests[before:] if r.method == "PATCH"], "nothing changed"
    # the address moves to another interface of n1: only n1's entry changes
    moved = LocalHeld(address="10.0.0.50/24", interface="eth2", services=("default/web",))
    n1.sync(make_report(fake, "n1", held=(moved,)))
    assert annotation(fake) == "n1/eth2/10.0.0.50,n2/eth1/fd00::50,n3/eth9/10.0.0.99"
    n1.sync(make_report(fake, "n1"))
    assert annotation(fake) == "n2/eth1/fd00::50,n3/eth9/10.0.0.99"
    n2.sync(make_report(fake, "n2"))
    assert annotation(fake) == "n3/eth9/10.0.0.99", "another node's entry stays untouched"
    fake.put("services", svc("web", **{ANNOUNCING: "n1/eth0/10.0.0.50"}))
    n2.sync(make_report(fake, "n2"))
    n3 = reporter(fake, tmp_path, "n3")
    n3.sync(make_report(fake, "n3"))
    assert annotation(fake) == "n1/eth0/10.0.0.50"
    n1.sync(make_report(fake, "n1"))
    assert annotation(fake) is None


def test_a_stopping_agent_removes_its_local_entries(fake: FakeAPI, tmp_path: Path) -> None:
    n1, n2 = reporter(fake, tmp_path, "n1"), reporter(fake, tmp_path, "n2")
    v4 = LocalHeld(address="10.0.0.50/24", interface="eth0", services=("default/web",))
    v6 = LocalHeld(address="fd00::50/64", interface="eth1", services=("default/web",))
    n1.start(on_failure=lambda: None)
    n1.publish(make_report(fake, "n1", held=(v4,), routed=frozenset({WEB})))
    n2.sync(make_report(fake, "n2", held=(v6,)))
    deadline = time.monotonic() + 5
    while "n1/eth0/10.0.0.50" not in (annotation(fake) or "") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert annotation(fake) == "n1,n1/eth0/10.0.0.50,n2/eth1/fd00::50"
    n1.stop()  # the agent stops: its local loop released 10.0.0.50
    assert annotation(fake) == "n1,n2/eth1/fd00::50", "its routed entry and n2's stay"


# -- the LocalHeld condition -------------------------------------------------------------


def held_by(node: str, address: str = "10.0.0.50") -> LocalElected:
    return LocalElected(
        address=ipaddress.ip_address(address), group=LAN, services=(WEB,), holder=node
    )


def no_endpoint(address: str = "10.0.0.51") -> LocalElected:
    return LocalElected(
        address=ipaddress.ip_address(address),
        group=LAN,
        services=(DB,),
        why=NoHolder.NO_ENDPOINT,
        local_traffic=(DB,),
    )


def local_held(fake: FakeAPI) -> dict[str, Any] | None:
    obj = fake.get("servicegroups", "lan", NS)
    assert obj is not None
    found = [
        c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == "LocalHeld"
    ]
    return found[0] if found else None  # fmt: skip


def status_writes(fake: FakeAPI, since: int = 0) -> int:
    return sum(
        1
        for r in fake.requests[since:]
        if r.method == "PATCH" and r.resource == "servicegroups" and r.subresource == "status"
    )


def events(fake: FakeAPI, reason: str) -> list[dict[str, Any]]:
    return [e for e in fake.objects("events.events.k8s.io") if e["reason"] == reason]


def test_local_held_written_once_by_one_agent_with_events_once(
    fake: FakeAPI, tmp_path: Path
) -> None:
    alive = ("n1", "n2", "n3")
    agents = [reporter(fake, tmp_path, n) for n in alive]

    def sync_all(*elected: LocalElected) -> None:
        view = LocalElections(elections=elected, alive=alive)
        for agent in agents:
            agent.sync(make_report(fake, agent.node, elected=view))

    def events_from(reason: str) -> set[str]:
        return {e["reportingInstance"] for e in events(fake, reason)}

    writer = condition_writer(LAN, alive)
    assert writer in alive
    assert writer == condition_writer(LAN, reversed(alive)), "the same on every node"
    for agent in agents:  # the group's Valid condition, written before
        agent.sync(make_report(fake, agent.node))
    start = len(fake.requests)
    sync_all(held_by("n2"))
    cond = local_held(fake)
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "Held")
    assert cond["message"] == "1 local address held: 10.0.0.50 on n2"
    assert status_writes(fake, start) == 1, "one agent wrote it"
    first = len(fake.requests)
    sync_all(held_by("n2"))
    assert status_writes(fake, first) == 0, "unchanged: not written again"

    # ETP Local without a ready endpoint anywhere: False, each address, its Services, why
    sync_all(held_by("n2"), no_endpoint())
    cond = local_held(fake)
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("False", "NoHolder")
    assert cond["message"].splitlines()[0] == "1 of 2 local addresses held by no node:"
    assert (
        cond["message"]
        .splitlines()[1]
        .startswith(
            "10.0.0.51 (Services default/db): withdrawn: no node has a ready endpoint of default/db"
        )
    )
    assert cond["message"].splitlines()[2] == "1 held: 10.0.0.50 on n2"
    warned = events(fake, "LocalNotHeld")
    assert len(warned) == 1, "one Event, from the writer only"
    assert warned[0]["type"] == "Warning"
    assert warned[0]["regarding"]["name"] == "db"
    assert "withdrawn: no node has a ready endpoint of default/db" in warned[0]["note"]
    assert events_from("LocalNotHeld") == {f"lbroute-agent-{writer}"}
    sync_all(held_by("n2"), no_endpoint())
    assert len(events(fake, "LocalNotHeld")) == 1

    # the endpoint is back: True again, LocalHeld once on the Service
    sync_all(held_by("n2"), held_by("n3", "10.0.0.51"))
    cond = local_held(fake)
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "Held")
    assert cond["message"] == "2 local addresses held: 10.0.0.50 on n2, 10.0.0.51 on n3"
    back = events(fake, "LocalHeld")
    assert len(back) == 1 and back[0]["type"] == "Normal"
    assert back[0]["regarding"]["name"] == "web"  # the Service of 10.0.0.51 in held_by
    assert "held by node n3" in back[0]["note"]
    sync_all(held_by("n2"), held_by("n3", "10.0.0.51"))
    assert len(events(fake, "LocalHeld")) == 1
    assert len(events(fake, "LocalNotHeld")) == 1


def test_local_held_writer_changes_only_when_it_leaves(fake: FakeAPI, tmp_path: Path) -> None:
    alive = ("n1", "n2", "n3")
    writer = condition_writer(LAN, alive)
    assert writer is not None
    rest = tuple(n for n in alive if n != writer)
    assert condition_writer(LAN, (*rest, "n4")) in (*rest, "n4")
    others = {n: reporter(fake, tmp_path, n) for n in rest}
    for n, agent in others.items():  # the group's Valid condition, written before
        agent.sync(make_report(fake, n))
    start = len(fake.requests)
    view = LocalElections(elections=(held_by(rest[0]),), alive=alive)
    for n, agent in others.items():
        agent.sync(make_report(fake, n, elected=view))
    assert local_held(fake) is None, "not the writer: nothing written"
    view = LocalElections(elections=(held_by(rest[0]), no_endpoint()), alive=rest)
    for n, agent in others.items():
        agent.sync(make_report(fake, n, elected=view))
    cond = local_held(fake)
    assert cond is not None and cond["status"] == "False", "the next writer took over"
    assert status_writes(fake, start) == 1
    assert len(events(fake, "LocalNotHeld")) == 1


def test_nothing_written_unsettled_and_a_routed_group_loses_the_condition(
    fake: FakeAPI, tmp_path: Path
) -> None:
    alive = ("n1",)
    n1 = reporter(fake, tmp_path, "n1")
    n1.sync(make_report(fake, "n1", elected=None))
    assert local_held(fake) is None, "the loop is starting: no condition"
    n1.sync(make_report(fake, "n1", elected=LocalElections(alive=alive)))
    cond = local_held(fake)
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "NoAddresses")
    fake.put("servicegroups", group("lan", announce="routed"), NS)
    n1.sync(make_report(fake, "n1", elected=LocalElections(alive=alive)))
    assert local_held(fake) is None


def test_an_address_that_cannot_be_placed_is_a_warning_on_the_node_agent(
    fake: FakeAPI, tmp_path: Path
) -> None:
    n1 = reporter(fake, tmp_path, "n1")
    unplaced = LocalUnplaced(
        address=ipaddress.ip_address("10.0.0.50"),
        group=LAN,
        setting=("eth9",),
        interfaces=("eth0", "eth1"),
        message="localInterface 'eth9' names no interface for 10.0.0.50: no interface of "
        "this node matches (its interfaces: 'eth0', 'eth1')",
    )
    view = LocalElections(elections=(held_by("n1"),), alive=("n1",), unplaced=(unplaced,))
    n1.sync(make_report(fake, "n1", elected=view, agent=AGENT))
    n1.sync(make_report(fake, "n1", elected=view, agent=AGENT))
    found = events(fake, "LocalNotPlaced")
    assert len(found) == 1, "once, not at every pass"
    event = found[0]
    assert event["type"] == "Warning"
    assert (event["regarding"]["kind"], event["regarding"]["name"]) == ("NodeAgent", "all")
    note = event["note"]
    assert "node n1" in note and "spec.localInterface 'eth9'" in note
    assert "the node's interfaces: eth0, eth1" in note
    # placed again, then not: reported again; without a NodeAgent, on the ServiceGroup
    n1.sync(make_report(fake, "n1", elected=LocalElections(alive=("n1",))))
    n1.sync(make_report(fake, "n1", elected=view))
    found = events(fake, "LocalNotPlaced")
    assert [e["regarding"]["kind"] for e in found] == ["NodeAgent", "ServiceGroup"]


def test_a_dead_nodes_local_entries_are_removed_by_the_groups_writer_alone(
    fake: FakeAPI, tmp_path: Path
) -> None:
    """A killed holder cannot remove its entry; once it is no longer alive, the agent
    that writes the group's LocalHeld removes it (one write), and nothing else."""
    fake.put("services", svc("web", **{ANNOUNCING: "n3,n3/eth0/10.0.0.50,n3/eth0/10.9.9.9"}))
    alive = ("n1", "n2")
    writer = condition_writer(LAN, alive)
    other = next(n for n in alive if n != writer)
    v4 = LocalHeld(address="10.0.0.50/24", interface="eth0", services=("default/web",))
    elected = LocalElections(elections=(held_by("n1"),), alive=alive)
    before = len(fake.requests)
    reporter(fake, tmp_path, other).sync(
        make_report(fake, other, held=(v4,) if other == "n1" else (), elected=elected)
    )
    if other != "n1":
        assert "n3/eth0/10.0.0.50" in (annotation(fake) or ""), "not the writer: left alone"
        assert not [
            r for r in fake.requests[before:] if r.method == "PATCH" and "/services/" in r.path
        ]
    assert writer is not None
    reporter(fake, tmp_path, writer).sync(
        make_report(fake, writer, held=(v4,) if writer == "n1" else (), elected=elected)
    )
    reporter(fake, tmp_path, "n1").sync(make_report(fake, "n1", held=(v4,), elected=elected))
    # n3's routed entry and its entry for an address of no local group stay
    assert annotation(fake) == "n1/eth0/10.0.0.50,n3,n3/eth0/10.9.9.9"
