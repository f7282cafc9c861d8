"""The agent from a kubeconfig, end to end: the fake API server (tests/fakeapi.py)
listening inside the lab, on the upstream router's address, real agents in the node
namespaces talking to it with the real ``kubernetes`` client, real BIRD and FRR, a real
upstream FRR.

- The example, created through the API, gives exactly the routes, kube-lb0 addresses
  and configuration it gives from a directory; each node gets a NodeState (valid
  against its CRD) and every ServiceGroup, Peer and NodeAgent a Valid condition.
- A Service created, changed and deleted in the API: its route comes and goes
  upstream, Events say Announced and Withdrawn, the announcing annotation names the
  node of an ETP Local Service.
- An invalid ServiceGroup: the condition says why, with the CLI's words; the routes
  stay. One edited into an invalid one keeps its last valid version: the condition
  and an ``Invalid`` Event say so, nothing moves, and fixing it says ``Valid``.
- The API going away (and objects changing meanwhile) and coming back, and a watch
  expiring (410 Gone): nothing moves upstream or on kube-lb0; the changes made
  meanwhile arrive afterwards.
- Every request the agents made is allowed by the RBAC rules in deploy/.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jsonschema
import pytest
import yaml

from lbroute.lab import UPSTREAM_V4, Lab, run
from tests.fakeapi import FakeAPI
from tests.netns.test_agent_e2e import (
    ADDRESSES,
    BOTH,
    EXAMPLE,
    NODES,
    Env,
    baseline,
    moved,
    service,
)
from tests.rbac import Permissions, request_attributes

ROOT = Path(__file__).resolve().parents[2]
NS = "lbroute"
PROBE = "192.0.2.60/32"
"""The host route of the ETP Local Service this module creates (endpoint on node-b)."""


def example_objects() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in ("cluster.yaml", "services.yaml"):
        docs += [d for d in yaml.safe_load_all((EXAMPLE / name).read_text()) if d]
    return docs


def crd_schema(plural: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "deploy" / "crds" / f"{plural}.yaml").read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


class KubeEnv(Env):
    api: FakeAPI
    agent_args: tuple[str, ...]

    def node_state(self, node: str) -> dict[str, Any]:
        return self.api.get("nodestates", node, NS) or {}

    def events(self, reason: str, name: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.api.objects("events.events.k8s.io")
            if e["reason"] == reason and name in (None, e["regarding"]["name"])
        ]

    def condition(self, plural: str, name: str) -> dict[str, Any]:
        obj = self.api.get(plural, name, NS) or {}
        for c in (obj.get("status") or {}).get("conditions") or ():
            if c["type"] == "Valid":
                return dict(c)
        return {}


@pytest.fixture(scope="module")
def kenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeEnv]:
    work = tmp_path_factory.mktemp("kube-e2e")
    lab = Lab(workdir=work / "lab", nodes=list(NODES), upstream_router="frr", tag="ke2e")
    try:
        lab.start()
        assert lab.upstream is not None
        with FakeAPI(host=UPSTREAM_V4, netns=lab.upstream.name, namespaces=("default", NS)) as api:
            api.put_all(example_objects())
            kubeconfig = api.kubeconfig(work / "kubeconfig")
            kubeconfig.chmod(0o644)
            env = KubeEnv(
                lab=lab, upstream="frr", source=work, templates=work, baseline=baseline("frr")
            )
            env.api = api
            env.agent_args = ("--kubernetes", "--kubeconfig", str(kubeconfig), "--namespace", NS)
            for node in BOTH:
                lab.start_agent(node, None, *env.agent_args)
            env.wait_view(lambda v: v == env.baseline, timeout=90)
            for node in BOTH:

                def applied(n: str = node) -> dict[str, Any] | bool:
                    return env.result(n) == "Applied" and env.status(n)

                status = env.wait(applied)
                assert status["problems"] == [], status["problems"]
                env.hashes[node] = status["config_hash"]
            yield env
    finally:
        lab.stop()


def test_from_the_api_the_nodes_announce_what_they_announce_from_a_directory(
    kenv: KubeEnv,
) -> None:
    for node in BOTH:
        assert kenv.kube_lb0(node) == ADDRESSES[node]
        # The configuration is the one `lbroute render` gives for the example's files.
        rendered = run(
            sys.executable, "-m", "lbroute", "render", "-f", str(EXAMPLE), "--node", node
        ).stdout
        running = kenv.lab.members[node].config_path.read_text()
        hostname = re.compile(r"^hostname .*$", re.M)  # the agent names the host it runs on
        assert hostname.sub("", running) == hostname.sub("", rendered)
        assert kenv.status(node)["announced"], "the status file is written as from a directory"


def test_each_node_has_a_node_state_that_fits_its_crd(kenv: KubeEnv) -> None:
    schema = crd_schema("nodestates")
    for node in BOTH:

        def current(n: str = node) -> dict[str, Any] | bool:
            written = kenv.node_state(n).get("status", {}).get("configHash")
            return written == kenv.hashes[n] and kenv.node_state(n)

        state = kenv.wait(current, what=f"NodeState {node}")
        jsonschema.validate(state, schema)
        status = state["status"]
        assert state["spec"] == {"nodeName": node}
        assert status["router"] == ("bird" if node == "node-a" else "frr")
        assert status["mode"] == "managed"
        assert status["lastApply"]["result"] == "Applied"
        assert status["announcedAddresses"] == len(ADDRESSES[node])
        ready = {c["type"]: c for c in status["conditions"]}["Ready"]
        assert ready["status"] == "True"
    # The BGP sessions to the upstream show up once the agents poll them.
    kenv.wait(
        lambda: all(
            any(p["protocol"] == "bgp" for p in kenv.node_state(n)["status"].get("peers", []))
            for n in BOTH
        ),
        what="sessions in NodeState",
    )
    # Each names the Peer it is for (BIRD by its protocol name, FRR by the neighbor's
    # address), and the prefixes announced are listed per ServiceGroup.
    peers = {p["metadata"]["name"] for p in kenv.api.objects("peers")}
    for n in BOTH:
        status = kenv.node_state(n)["status"]
        bgp = [p for p in status["peers"] if p["protocol"] == "bgp"]
        assert all(p.get("peerNames") and set(p["peerNames"]) <= peers for p in bgp), bgp
        listed = [prefix for g in status.get("groups", []) for prefix in g["prefixes"]]
        assert bool(listed) == bool(ADDRESSES[n]), status.get("groups")


def test_every_lbroute_object_gets_a_valid_condition(kenv: KubeEnv) -> None:
    for plural in ("servicegroups", "peers", "nodeagents"):
        for obj in kenv.api.objects(plural, NS):
            name = obj["metadata"]["name"]
            condition = kenv.wait(functools.partial(kenv.condition, plural, name), what=name)
            assert condition["status"] == "True", (plural, name, condition)
            jsonschema.validate(kenv.api.get(plural, name, NS), crd_schema(plural))


def local_service() -> tuple[dict[str, Any], dict[str, Any]]:
    svc = service("probe", ("192.0.2.60",))
    svc["spec"]["externalTrafficPolicy"] = "Local"
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "probe-x1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "probe"},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.1.5"], "nodeName": "node-b", "conditions": {"ready": True}}
        ],
    }
    return svc, endpoints


def test_a_service_created_and_deleted_through_the_api(kenv: KubeEnv) -> None:
    svc, endpoints = local_service()
    kenv.api.put("endpointslices", endpoints)
    kenv.api.put("services", svc)
    kenv.wait_view(lambda v: v.get(PROBE) == ("bgp", ("node-b",)))
    assert PROBE in kenv.kube_lb0("node-b") and PROBE not in kenv.kube_lb0("node-a")
    (announced,) = kenv.wait(lambda: kenv.events("Announced", "probe"), what="Announced")
    assert announced["note"] == f"{PROBE} announced from node-b"
    assert announced["regarding"]["kind"] == "Service"

    def annotation() -> str | None:
        obj = kenv.api.get("services", "probe") or {}
        return (obj["metadata"].get("annotations") or {}).get("lbroute.io/announcing")

    kenv.wait(lambda: annotation() == "node-b", what="announcing annotation")

    # The endpoint moves to node-a: the host route follows it, and the annotation.
    moved_endpoints = copy.deepcopy(endpoints)
    moved_endpoints["endpoints"][0]["nodeName"] = "node-a"
    kenv.api.put("endpointslices", moved_endpoints)
    kenv.wait_view(lambda v: v.get(PROBE) == ("bgp", ("node-a",)))
    kenv.wait(lambda: annotation() == "node-a", what="announcing annotation moved")

    kenv.api.remove("services", "probe")
    kenv.api.remove("endpointslices", "probe-x1")
    kenv.wait_view(lambda v: v == kenv.baseline)
    assert kenv.wait(lambda: kenv.events("Withdrawn", "probe"), what="Withdrawn")


BROKEN = {
    "apiVersion": "lbroute.io/v1alpha1",
    "kind": "ServiceGroup",
    "metadata": {"name": "broken", "namespace": NS},
    "spec": {"protocols": ["bgp"], "pools": [{"cidr": "198.18.0.0/24"}, {"cidr": "198.18.1.1/24"}]},
}


def test_an_invalid_service_group_gets_the_clis_words_and_the_routes_stay(
    kenv: KubeEnv,
) -> None:
    samples = [kenv.view()]
    kenv.api.put("servicegroups", BROKEN, NS)
    condition = kenv.wait(
        lambda: (c := kenv.condition("servicegroups", "broken")) and c["status"] == "False" and c,
        what="Valid False",
    )
    assert "ServiceGroup lbroute/broken: spec.pools[1].cidr" in condition["message"]
    assert condition["reason"] == "Invalid"
    (event,) = kenv.wait(lambda: kenv.events("Invalid", "broken"), what="Invalid event")
    assert event["type"] == "Warning"
    samples += kenv.sample(until=lambda: True, settle=2.0)
    assert moved(samples, kenv.baseline) == []
    kenv.api.remove("servicegroups", "broken", NS)


def test_a_group_edited_into_an_invalid_one_keeps_its_routes_and_says_so(
    kenv: KubeEnv,
) -> None:
    web = kenv.api.get("servicegroups", "web", NS)
    assert web is not None
    broken = copy.deepcopy(web)
    broken["spec"]["pools"][0]["cidr"] = "192.0.2.0/33"
    samples = [kenv.view()]
    kenv.api.put("servicegroups", broken, NS)
    condition = kenv.wait(
        lambda: (c := kenv.condition("servicegroups", "web")) and c["status"] == "False" and c,
        what="Valid False",
    )
    assert condition["reason"] == "Invalid"
    message = condition["message"]
    assert message.startswith(
        "error: ServiceGroup lbroute/web: is invalid (spec.pools[0].cidr: '192.0.2.0/33' is not"
    ), message
    generation = web["metadata"]["generation"]
    assert message.endswith(
        f"keeping its last valid version (generation {generation}) until it is fixed or deleted"
    ), message
    (event,) = kenv.wait(lambda: kenv.events("Invalid", "web"), what="Invalid event")
    assert event["type"] == "Warning" and event["note"] == message
    samples += kenv.sample(until=lambda: True, settle=2.0)
    assert moved(samples, kenv.baseline) == []
    assert all(kenv.kube_lb0(node) == ADDRESSES[node] for node in BOTH)

    fixed = kenv.api.get("servicegroups", "web", NS)
    assert fixed is not None
    fixed["spec"] = web["spec"]
    kenv.api.put("servicegroups", fixed, NS)
    kenv.wait(lambda: kenv.condition("servicegroups", "web")["status"] == "True", what="fixed")
    kenv.wait(lambda: kenv.events("Valid", "web"), what="Valid event")
    assert kenv.view() == kenv.baseline


def test_the_api_going_away_and_a_410_move_nothing(kenv: KubeEnv) -> None:
    sessions = kenv.bgp_sessions()
    applied = {n: kenv.status(n)["last_apply"]["time"] for n in BOTH}
    started = time.monotonic()
    kenv.api.stop_serving()
    try:
        samples = kenv.sample(until=lambda: True, settle=6.0)
        # Meanwhile the Service web-2 is deleted; nobody can tell the agents yet.
        kenv.api.remove("services", "web-2")
        # An agent restarted while the API is away waits for it and touches nothing.
        kenv.lab.stop_agent("node-a")
        kenv.lab.start_agent("node-a", None, *kenv.agent_args)
        samples += kenv.sample(until=lambda: True, settle=4.0)
        assert moved(samples, kenv.baseline) == []
        for node in BOTH:
            assert kenv.kube_lb0(node) == ADDRESSES[node], "nothing withdrawn while away"
            agent = kenv.lab.members[node].agent
            assert agent is not None and agent.poll() is None
    finally:
        kenv.api.resume()
    gone = "192.0.2.11/24"
    kenv.wait(lambda: all(gone not in kenv.kube_lb0(n) for n in BOTH), timeout=60, what="web-2")
    assert kenv.view() == kenv.baseline, "the aggregate stays: web-1 is still there"

    # A watch expiring: every agent lists again; nothing moves, nothing is applied.
    kenv.api.compact()
    kenv.api.put_all([o for o in example_objects() if o["metadata"]["name"] == "web-2"])
    samples = kenv.sample(
        until=lambda: all("192.0.2.11/24" in kenv.kube_lb0(n) for n in BOTH), settle=2.0
    )
    assert moved(samples, kenv.baseline) == []
    for node in BOTH:
        log = (kenv.lab.members[node].dir / "agent.log").read_text()
        assert "410 Gone" in log and "listing again" in log
    # node-b's agent ran throughout: not a single router apply (node-a's restarted agent
    # found its router already running the configuration: nothing applied either).
    assert kenv.status("node-b")["last_apply"]["time"] == applied["node-b"]
    assert kenv.status("node-a")["last_apply"]["result"] == "Unchanged"
    after = kenv.bgp_sessions()
    assert after.keys() == sessions.keys()
    del started


def test_every_request_the_agents_made_is_allowed_by_deploy_rbac(kenv: KubeEnv) -> None:
    rules = Permissions.load(ROOT / "deploy", namespace=NS, name="lbroute-agent")
    made = {
        request_attributes(r.method, r.path, urlencode(r.query))
        for r in kenv.api.requests
        if r.resource is not None
    }
    assert {m.resource for m in made} >= {
        "services",
        "endpointslices",
        "nodes",
        "nodestates",
        "events",
    }
    refused = sorted(str(m) for m in made if not rules.allows_request(m))
    assert refused == [], json.dumps(refused, indent=1)
