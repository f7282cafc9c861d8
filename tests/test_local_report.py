"""What the agent publishes about local addresses: the NodeState's ``local`` list and
its LocalArpStrict condition (nodeagent.kubereport), from the status document."""

from __future__ import annotations

from pathlib import Path

from nodeagent.kubereport import node_state_status
from nodeagent.status import LocalHeld, Report, Status


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
    from lbroute.kube.client import api_client
    from nodeagent.kubereport import KubeReporter
    from tests.fakeapi import FakeAPI

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
        assert annotation() == "n1"
        note = next(
            e["note"] for e in fake.objects("events.events.k8s.io")
            if e["reason"] == "AnnouncingLocal"
        )  # fmt: skip
        assert "10.0.0.50/24" in note and "eth0" in note and "n1" in note
        sync([])
        assert reasons().count("LocalHandover") == 1
        assert annotation() is None
