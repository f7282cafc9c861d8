"""Passwords never leave the node, with real agents, real BIRD and FRR (issue 24).

One lab: node-a runs BIRD, node-b FRR, each with an agent on a copy of ``examples/lab``
whose upstream BGP Peer has a password and whose OSPF Peer has an MD5 key, both from a
Secret. Both agents first apply that configuration. Then a user template breaks it
right after the BGP password line, so each router's parser refuses it and the agent's
error quotes the lines around the fault, the password line among them. What a user,
an operator or a tenant can see then holds neither secret:

- the status file (``lbroute status``) names the rejection and shows the password line
  as ``password <redacted>``, and is readable by its owner only (0600);
- the agent's log has the error, redacted;
- the NodeState the reporter publishes from that status has the redacted error, and
  the ``ApplyFailed`` Events on the NodeState, the NodeAgent and the announced Services
  (which tenants read) carry no configuration text at all: they say where to look.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbroute.kube.client import api_client
from lbroute.lab import Lab, NodeSpec
from lbroute.model.errors import ObjectRef
from nodeagent.kubereport import KubeReporter
from nodeagent.status import Report, Status
from tests.fakeapi import FakeAPI

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "lab"
NS = "lbroute"
NODES = (
    NodeSpec(name="node-a", router="bird", v4="10.0.0.11", v6="fd00::11"),
    NodeSpec(name="node-b", router="frr", v4="10.0.0.12", v6="fd00::12"),
)
BGP_PASSWORD = "Bgp-s3cret!42"
OSPF_KEY = "0spf-k3y+7"
SECRETS = (BGP_PASSWORD, OSPF_KEY)
BREAKS = {
    "bird": "  no-such-option;\n",
    "frr": " neighbor {{ n.key }} no-such-option\n",
}
"""A line each router's parser refuses, put right after the BGP password line."""


def _objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(EXAMPLE.glob("*.yaml")):
        objects += [o for o in yaml.safe_load_all(path.read_text(encoding="utf-8")) if o]
    for obj in objects:
        spec = obj.get("spec") or {}
        if obj["kind"] == "Peer" and obj["metadata"]["name"] == "upstream-v4":
            spec["bgp"]["passwordSecretRef"] = {"name": "router-secrets", "key": "bgp"}
        if obj["kind"] == "Peer" and "ospf" in spec:
            spec["ospf"]["authSecretRef"] = {"name": "router-secrets", "key": "ospf"}
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "router-secrets", "namespace": NS},
            "stringData": {"bgp": BGP_PASSWORD, "ospf": OSPF_KEY},
        }
    )
    return objects


def _broken_bgp_template(router: str) -> str:
    """The built-in bgp.j2 with a refused line right after the password line."""
    lines = (ROOT / "templates" / router / "bgp.j2").read_text(encoding="utf-8")
    out = []
    for line in lines.splitlines(keepends=True):
        out.append(line)
        if "{{ n.password }}" in line:
            out.append(BREAKS[router])
    assert len(out) == len(lines.splitlines()) + 1, f"{router}/bgp.j2 prints no password"
    return "".join(out)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Lab, Path, Path]]:
    source, templates = tmp_path / "source", tmp_path / "templates"
    source.mkdir()
    for router in ("bird", "frr"):
        (templates / router).mkdir(parents=True)
    (source / "objects.yaml").write_text(yaml.safe_dump_all(_objects()), encoding="utf-8")
    lab = Lab(workdir=tmp_path / "lab", nodes=list(NODES), tag="h6sec").start()
    try:
        for spec in NODES:
            lab.start_agent(spec.name, source, "--templates", str(templates))
        yield lab, source, templates
    finally:
        lab.stop()


def _result(lab: Lab, node: str) -> str:
    return str(lab.status(node).get("last_apply", {}).get("result", ""))


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_a_rejected_configuration_leaks_no_secret(
    lab: tuple[Lab, Path, Path], tmp_path: Path
) -> None:
    lab_, _source, templates = lab
    names = [spec.name for spec in NODES]
    lab_.wait_for(lambda: all(_result(lab_, n) == "Applied" for n in names), timeout=60)
    for spec in NODES:
        running = lab_.members[spec.name].config_path.read_text(encoding="utf-8")
        assert BGP_PASSWORD in running and OSPF_KEY in running, "both secrets are configured"

    for spec in NODES:
        (templates / spec.router / "bgp.j2").write_text(
            _broken_bgp_template(spec.router), encoding="utf-8"
        )
    lab_.wait_for(lambda: all(_result(lab_, n) == "Failed" for n in names), timeout=60)

    statuses = {}
    for spec in NODES:
        member = lab_.members[spec.name]
        text = member.status_file.read_text(encoding="utf-8")
        error = json.loads(text)["last_apply"]["error"]
        assert re.search(r'password "?<redacted>', error), f"{spec.name}: the password line"
        assert "no-such-option" in error, f"{spec.name}: so is the fault"
        assert _leaks(text) == [], f"{spec.name}: status file:\n{text}"
        assert stat.S_IMODE(member.status_file.stat().st_mode) == 0o600, spec.name
        assert member.agent_log is not None
        log = member.agent_log.read_text(encoding="utf-8", errors="replace")
        assert "no-such-option" in log, f"{spec.name}: the rejection is logged"
        assert _leaks(log) == [], f"{spec.name}: agent log"
        # The router still runs the last good configuration, secrets and all.
        assert BGP_PASSWORD in member.config_path.read_text(encoding="utf-8")
        statuses[spec.name] = Status.from_json(text)

    _published_payloads_leak_nothing(statuses, tmp_path)


def _published_payloads_leak_nothing(statuses: dict[str, Status], tmp_path: Path) -> None:
    """What each node's reporter publishes from its status: NodeState and Events."""
    services = [o for o in _objects() if o["kind"] == "Service"]
    web = ObjectRef(kind="Service", namespace="default", name=services[0]["metadata"]["name"])
    with FakeAPI(namespaces=("default", NS)) as fake:
        for node, status in statuses.items():
            reporter = KubeReporter(
                api_client(str(fake.kubeconfig(tmp_path / f"kubeconfig-{node}"))),
                node=node,
                namespace=NS,
            )
            agent = ObjectRef(kind="NodeAgent", namespace=NS, name=f"{status.router}-nodes")
            first = Status.from_json(status.to_json())
            first.last_apply.result, first.last_apply.error = "Applied", ""
            for st in (first, status):  # the first report after a start is not news
                reporter.sync(
                    Report(
                        status=st,
                        announced={web: ("192.0.2.10/24",)},
                        local=frozenset(),
                        object_problems=(),
                        node_problems=(),
                        objects=tuple(services),
                        agent=agent,
                    )
                )
            state = fake.get("nodestates", node, NS)
            assert state is not None
            published = json.dumps(state["status"])
            assert "password <redacted>" in published, node
            assert _leaks(published) == [], f"{node}: NodeState {published}"
        events = [e for e in fake.objects("events.events.k8s.io") if e["reason"] == "ApplyFailed"]
    regarding = {(e["regarding"]["kind"], e["regarding"]["name"]) for e in events}
    assert regarding == {
        ("NodeState", "node-a"),
        ("NodeState", "node-b"),
        ("NodeAgent", "bird-nodes"),
        ("NodeAgent", "frr-nodes"),
        ("Service", web.name),
    }
    for event in events:
        note = event["note"]
        assert _leaks(note) == [], note
        assert "password" not in note and "no-such-option" not in note, "no configuration"
        assert "lbroute status on node" in note, "says where the router's message is"
