"""Draining a node (issue 17): what makes it drain, the state machine, what it renders,
how it is reported, and ``lbroute drain`` / ``lbroute undrain``.

The end-to-end proof (an upstream moves the traffic before the withdrawal, no ping lost)
is tests/netns/test_drain.py; the rendered configurations are goldens
(tests/test_golden.py, the ``+deprefer`` and ``+withdraw`` cases).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lbroute.cli import main
from lbroute.kube.client import api_client
from lbroute.kube.trim import trim_node
from lbroute.model import api
from lbroute.model.agentconfig import DEFAULT_DRAIN_SECONDS, DrainPolicy
from lbroute.model.errors import InvalidObject
from lbroute.model.nodes import EXCLUDE_LABEL, parse_node
from nodeagent.drain import (
    Drainer,
    DrainState,
    Trigger,
    drain_file,
    drain_requested,
    triggers,
)
from nodeagent.kubereport import KubeReporter, node_state_status
from nodeagent.status import DrainStatus, Report, Status
from renderer.view import Drain, build_view
from tests.fakeapi import FakeAPI


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def node(**extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-a", "uid": "u-a"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.11"}]},
    }
    for key, value in extra.items():
        obj.setdefault(key, {}).update(value)
    return obj


SHUTTING_DOWN = {
    "conditions": [
        {
            "type": "Ready",
            "status": "False",
            "reason": "KubeletNotReady",
            "message": "node is shutting down",
            "lastHeartbeatTime": "2026-12-06T01:00:00Z",
            "lastTransitionTime": "2026-12-06T01:00:00Z",
        }
    ]
}


# -- triggers -----------------------------------------------------------------------------


def test_a_plain_node_does_not_drain() -> None:
    n = parse_node(node())
    assert triggers(n, DrainPolicy(on_cordon=True), requested=False) == ()


def test_the_exclusion_label_drains_whatever_its_value() -> None:
    n = parse_node(node(metadata={"labels": {EXCLUDE_LABEL: ""}}))
    assert triggers(n, DrainPolicy(), requested=False) == (Trigger.LABEL,)


def test_a_cordon_drains_only_where_the_node_agent_opts_in() -> None:
    n = parse_node(node(spec={"unschedulable": True}))
    assert n.unschedulable
    assert triggers(n, DrainPolicy(), requested=False) == ()
    assert triggers(n, DrainPolicy(on_cordon=True), requested=False) == (Trigger.CORDON,)


def test_kubelet_graceful_shutdown_drains() -> None:
    n = parse_node(node(status=SHUTTING_DOWN))
    assert n.shutting_down
    assert triggers(n, DrainPolicy(), requested=False) == (Trigger.SHUTDOWN,)


@pytest.mark.parametrize(
    "ready",
    [
        {"type": "Ready", "status": "True", "reason": "KubeletReady"},
        {"type": "Ready", "status": "False", "message": "container runtime network not ready"},
        {"type": "MemoryPressure", "status": "False", "message": "node is shutting down"},
    ],
)
def test_other_conditions_are_no_shutdown(ready: dict[str, str]) -> None:
    assert not parse_node(node(status={"conditions": [ready]})).shutting_down


def test_lbroute_drain_drains_a_node_the_agent_does_not_see() -> None:
    assert triggers(None, DrainPolicy(), requested=True) == (Trigger.COMMAND,)


def test_trimmed_node_keeps_what_drains_it_but_not_heartbeats() -> None:
    raw = node(
        metadata={"labels": {EXCLUDE_LABEL: "true"}},
        spec={"unschedulable": True, "podCIDR": "10.244.0.0/24"},
        status=SHUTTING_DOWN,
    )
    trimmed = trim_node(raw)
    assert trimmed["spec"] == {"unschedulable": True}
    assert trimmed["status"]["conditions"] == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "KubeletNotReady",
            "message": "node is shutting down",
        }
    ]
    parsed = parse_node(trimmed)
    assert parsed.excluded and parsed.unschedulable and parsed.shutting_down
    assert "spec" not in trim_node(node())


# -- the state machine --------------------------------------------------------------------


def test_drain_deprefers_then_withdraws_after_drain_seconds_then_undrains() -> None:
    clock = Clock()
    d = Drainer(clock=clock, wall=lambda: 1_765_000_000.0)
    assert d.phase is Drain.NONE and d.due() == float("inf")
    assert d.update((Trigger.COMMAND,), 30)
    assert (d.state, d.phase) == (DrainState.DRAINING, Drain.DEPREFER)
    assert d.due() == 1030.0
    clock.now = 1029.9
    assert not d.tick()
    assert not d.update((Trigger.COMMAND, Trigger.LABEL), 30), "a second trigger: no restart"
    clock.now = 1030.0
    assert d.tick()
    assert (d.state, d.phase) == (DrainState.DRAINED, Drain.WITHDRAW)
    status = d.status()
    assert status.state == "Drained"
    assert status.reasons == ("lbroute drain", f"label {EXCLUDE_LABEL}")
    assert (status.since, status.withdraw_at) == ("2025-12-06T05:46:40Z", "2025-12-06T05:47:10Z")
    assert d.update((), 30)
    assert (d.state, d.phase, d.status()) == (DrainState.SERVING, Drain.NONE, DrainStatus())


def phase(d: Drainer) -> Drain:
    return d.phase


def test_undrain_while_draining_serves_at_once_and_a_new_drain_starts_over() -> None:
    clock = Clock()
    d = Drainer(clock=clock)
    d.update((Trigger.LABEL,), 30)
    clock.now += 20
    assert d.update((), 30)
    assert phase(d) is Drain.NONE
    d.update((Trigger.LABEL,), 30)
    clock.now += 20
    assert not d.tick(), "the new drain waits its own drainSeconds"
    clock.now += 10
    assert d.tick()
    assert phase(d) is Drain.WITHDRAW


def test_drain_seconds_zero_withdraws_at_once() -> None:
    d = Drainer(clock=Clock())
    d.update((Trigger.SHUTDOWN,), 0)
    assert d.state is DrainState.DRAINED


def test_a_shorter_drain_seconds_takes_effect_during_a_drain() -> None:
    clock = Clock()
    d = Drainer(clock=clock)
    d.update((Trigger.LABEL,), 60)
    clock.now += 10
    assert d.update((Trigger.LABEL,), 5)
    assert d.state is DrainState.DRAINED


# -- the NodeAgent ------------------------------------------------------------------------


def agent(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "NodeAgent",
        "metadata": {"name": "nodes", "namespace": "lbroute"},
        "spec": spec,
    }


def test_node_agent_drain_defaults() -> None:
    parsed = api.parse_node_agent(agent({}))
    assert parsed.drain == DrainPolicy(seconds=DEFAULT_DRAIN_SECONDS, on_cordon=False)
    assert DEFAULT_DRAIN_SECONDS == 30


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("drainSeconds", -1, "0 to 3600"),
        ("drainSeconds", "1.5s", "whole number of seconds"),
        ("drainSeconds", "2h", "0 to 3600"),
        ("drainPrepend", 11, "0 to 10"),
        ("drainMED", -5, "0 to 4294967295"),
        ("drainOnCordon", "yes", "true or false"),
    ],
)
def test_bad_drain_settings_name_the_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidObject) as info:
        api.parse_node_agent(agent({field: value}))
    text = str(info.value)
    assert f"spec.{field}" in text and message in text and "NodeAgent" in text


@pytest.mark.parametrize(("value", "seconds"), [(45, 45), ("45s", 45), ("2m", 120), ("1h", 3600)])
def test_drain_seconds_take_a_duration(value: Any, seconds: int) -> None:
    assert api.parse_node_agent(agent({"drainSeconds": value})).drain.seconds == seconds


# -- the view -----------------------------------------------------------------------------

MODEL = """\
apiVersion: v1
kind: Node
metadata: {name: node-a}
status: {addresses: [{type: InternalIP, address: 10.0.0.11}]}
---
apiVersion: lbroute.io/v1alpha1
kind: NodeAgent
metadata: {name: nodes, namespace: lbroute}
spec: {localASN: 64512, drainPrepend: 3, drainMED: 700}
---
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {name: web, namespace: lbroute}
spec:
  pools: [{cidr: 192.0.2.0/24}]
  bgp: {communities: ["65000:1"], localPref: 200, med: 5}
  ospf: {metric: 20}
---
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {name: ebgp, namespace: lbroute}
spec: {bgp: {address: 10.0.0.1, asn: 65000}}
---
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {name: ibgp, namespace: lbroute}
spec: {bgp: {address: 10.0.0.2, asn: 64512}}
---
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {name: ospf, namespace: lbroute}
spec: {ospf: {area: 0.0.0.0, interfaces: [{name: eth0}]}}
"""


def view(tmp_path: Path, drain: Drain) -> Any:
    from lbroute.model.manifests import read_manifests

    path = tmp_path / "m.yaml"
    path.write_text(MODEL)
    model = api.load(read_manifests([path]).objects)
    return build_view(model, api.Router.BIRD, "node-a", drain=drain)


def actions(v: Any) -> dict[str, Any]:
    return {n.ref.name: n.exports[0].entries[0].actions for n in v.bgp}


def test_deprefer_adds_graceful_shutdown_and_the_session_kinds_means(tmp_path: Path) -> None:
    normal = actions(view(tmp_path, Drain.NONE))
    assert normal["ebgp"].prepend == 0 and normal["ibgp"].local_pref == 200
    drained = actions(view(tmp_path, Drain.DEPREFER))
    for a in drained.values():
        assert [str(c) for c in a.communities] == ["65000:1", "65535:0"]
    assert drained["ibgp"].local_pref == 0
    assert (drained["ibgp"].prepend, drained["ibgp"].med) == (0, 5)
    assert (drained["ebgp"].prepend, drained["ebgp"].med) == (3, 700)
    assert drained["ebgp"].local_pref is None
    ospf = view(tmp_path, Drain.DEPREFER).ospf[0].export
    assert (ospf.drain_metric, ospf.withdrawn) == (16777214, False)


def test_withdraw_exports_nothing_and_keeps_the_sessions(tmp_path: Path) -> None:
    normal, drained = view(tmp_path, Drain.NONE), view(tmp_path, Drain.WITHDRAW)
    assert [n.ref for n in drained.bgp] == [n.ref for n in normal.bgp]
    for n in drained.bgp:
        assert all(e.withdrawn and e.entries == () for e in n.exports)
    assert drained.ospf[0].export.withdrawn
    assert drained.groups == normal.groups, "undrain changes only the filters"


# -- reporting ----------------------------------------------------------------------------


def test_status_document_has_the_drain_only_while_draining() -> None:
    serving = Status(node="node-a")
    assert "drain" not in json.loads(serving.to_json())
    drain = DrainStatus(state="Drained", reasons=("lbroute drain",), since="a", withdraw_at="b")
    status = Status(node="node-a", drain=drain)
    assert Status.from_json(status.to_json()).drain == drain
    assert Status.from_json(serving.to_json()).drain == DrainStatus()


def report(drain: DrainStatus, objects: tuple[dict[str, Any], ...] = ()) -> Report:
    return Report(
        status=Status(node="node-a", drain=drain),
        announced={},
        local=frozenset(),
        object_problems=(),
        node_problems=(),
        objects=objects,
    )


DRAINING = DrainStatus(
    state="Draining",
    reasons=(f"label {EXCLUDE_LABEL}",),
    since="2026-12-06T01:00:00Z",
    withdraw_at="2026-12-06T01:00:30Z",
)
DRAINED = DrainStatus(**{**DRAINING.__dict__, "state": "Drained"})


def conditions(out: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in out["conditions"]}


def test_node_state_conditions_follow_the_drain() -> None:
    assert set(conditions(node_state_status(report(DrainStatus()), None))) == {"Ready"}
    draining = node_state_status(report(DRAINING), None)
    found = conditions(draining)
    assert found["Draining"][:2] == ("True", "Draining")
    assert "withdrawn at 2026-12-06T01:00:30Z" in found["Draining"][2]
    assert EXCLUDE_LABEL in found["Draining"][2]
    assert found["Drained"][:2] == ("False", "Draining")
    drained = node_state_status(report(DRAINED), draining)
    assert conditions(drained)["Drained"][:2] == ("True", "Drained")
    for c in draining["conditions"]:
        if c["type"] == "Draining":
            c["lastTransitionTime"] = "2026-12-06T01:00:00Z"
    drained = node_state_status(report(DRAINED), draining)
    since = {c["type"]: c["lastTransitionTime"] for c in drained["conditions"]}
    assert since["Draining"] == "2026-12-06T01:00:00Z", "Draining keeps its time when drained"
    served = conditions(node_state_status(report(DrainStatus()), drained))
    assert served["Draining"][:2] == served["Drained"][:2] == ("False", "Serving")


def test_drain_events_on_the_node_once_per_change(tmp_path: Path) -> None:
    nodes = (node(),)
    with FakeAPI(namespaces=("default", "lbroute")) as fake:
        client = api_client(str(fake.kubeconfig(tmp_path / "kubeconfig")))
        reporter = KubeReporter(client, node="node-a", namespace="lbroute")
        for drain in (DrainStatus(), DRAINING, DRAINING, DRAINED, DRAINED, DrainStatus()):
            reporter.sync(report(drain, nodes))
        events = fake.objects("events.events.k8s.io")
        assert [e["reason"] for e in events] == ["Draining", "Drained", "Undrained"]
        assert {e["regarding"]["kind"] for e in events} == {"Node"}
        assert {e["regarding"]["name"] for e in events} == {"node-a"}


# -- lbroute drain / undrain --------------------------------------------------------------


def test_drain_and_undrain_commands(tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    runner = CliRunner()
    result = runner.invoke(main, ["drain", "--status-file", str(status_file)])
    assert result.exit_code == 0, result.output
    assert drain_requested(status_file)
    assert drain_file(status_file).parent == tmp_path
    result = runner.invoke(main, ["undrain", "--status-file", str(status_file)])
    assert result.exit_code == 0 and "removed" in result.output
    assert not drain_requested(status_file)
    result = runner.invoke(main, ["undrain", "--status-file", str(status_file)])
    assert result.exit_code == 0 and "no drain request" in result.output


def test_drain_command_fails_clearly_where_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(main, ["drain", "--status-file", str(blocker / "status.json")])
    assert result.exit_code == 1
    assert "cannot write the drain request" in result.output
