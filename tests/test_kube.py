"""The Kubernetes source and reporter through the real ``kubernetes`` client, against
the protocol-level fake API server (tests/fakeapi.py) over HTTP.

Source: the first snapshot comes only once every kind (and every Secret a Peer names)
has been listed; changes arrive as new snapshots; only the agent's own Node and only the
Secrets Peers reference are read; a 410 relists without a snapshot that lacks anything;
the API going away yields nothing (the agent keeps what it has) and changes made
meanwhile arrive once it is back.

Reporter: NodeState created and kept current (valid against its CRD schema), Events on
Services and invalid objects, the Valid condition written once whoever else writes the
status, the announcing annotation written by read-change-write with 409 retries.

The layer underneath: the client's exceptions come out as lbroute's by status (the
original kept as the cause), a kubeconfig that cannot be loaded says so, a watch's
stream is split into events whatever its chunks, the one Service trimmer keeps what
each user reads, and a Lease is held and taken over on the clock it is given.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException

from lbroute.kube.client import Api, api_client
from lbroute.kube.directory import Snapshot
from lbroute.kube.errors import from_status, translated
from lbroute.kube.lease import LeaderElector
from lbroute.kube.reflector import KubernetesSource, Reflector, Timing, Watch, watch_events
from lbroute.kube.trim import trim_endpoint_slice, trim_service
from lbroute.model import api as model_api
from lbroute.model.errors import (
    Conflict,
    Gone,
    KubernetesError,
    NotFound,
    ObjectRef,
    Rejected,
    Unavailable,
)
from lbroute.model.vocabulary import ANNOUNCING_ANNOTATION as ANNOUNCING
from lbroute.model.vocabulary import PEER, PLURALS
from nodeagent.kubereport import KubeReporter
from nodeagent.status import LastApply, Report, SessionState, Status
from tests.fakeapi import FakeAPI

ROOT = Path(__file__).resolve().parents[1]
NS = "lbroute"
FAST = Timing(watch_seconds=(30, 40), backoff=(0.05, 0.2), connect_timeout=2)


def example() -> list[dict[str, Any]]:
    docs = []
    for name in ("cluster.yaml", "services.yaml"):
        docs += [d for d in yaml.safe_load_all((ROOT / "examples/lab" / name).read_text()) if d]
    return docs


PASSWORD_PEER: dict[str, Any] = {
    "apiVersion": "lbroute.io/v1alpha1",
    "kind": "Peer",
    "metadata": {"name": "secured", "namespace": NS},
    "spec": {
        "bgp": {
            "address": "10.0.0.9",
            "asn": 65009,
            "passwordSecretRef": {"name": "bgp-password"},
        }
    },
}


def secret(name: str, value: bytes = b"c2VjcmV0") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": {"password": value.decode()},
    }


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeAPI]:
    with FakeAPI(namespaces=("default", NS)) as api:
        api.put_all(example())
        api.put_all([PASSWORD_PEER, secret("bgp-password"), secret("unrelated")])
        yield api


class Running:
    """A KubernetesSource running in a thread; snapshots collected in a queue."""

    def __init__(self, fake: FakeAPI, tmp_path: Path, node: str = "node-a") -> None:
        client = api_client(str(fake.kubeconfig(tmp_path / "kubeconfig")))
        self.source = KubernetesSource(client, node=node, namespace=NS, timing=FAST)
        self.stop = threading.Event()
        self.snapshots: queue.Queue[Snapshot] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for snapshot in self.source.snapshots(self.stop):
            self.snapshots.put(snapshot)

    def next(self, timeout: float = 5.0) -> Snapshot:
        return self.snapshots.get(timeout=timeout)

    def until(self, check: Any, timeout: float = 5.0) -> Snapshot:
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.next(max(0.01, deadline - time.monotonic()))
            if check(snapshot):
                return snapshot

    def quiet(self, seconds: float = 0.5) -> list[Snapshot]:
        time.sleep(seconds)
        found = []
        while not self.snapshots.empty():
            found.append(self.snapshots.get_nowait())
        return found


@pytest.fixture
def running(fake: FakeAPI, tmp_path: Path) -> Iterator[Running]:
    r = Running(fake, tmp_path)
    r.thread.start()
    try:
        yield r
    finally:
        r.stop.set()
        r.thread.join(timeout=5)


def names(snapshot: Snapshot, kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in snapshot.objects if o["kind"] == kind}


def test_the_first_snapshot_has_every_kind_and_only_what_the_agent_may_read(
    running: Running, fake: FakeAPI
) -> None:
    first = running.next()
    assert names(first, "Service") == {o["metadata"]["name"] for o in fake.objects("services")}
    assert names(first, "Node") == {"node-a"}, "only the agent's own Node"
    assert names(first, "Secret") == {"bgp-password"}, "only Secrets a Peer names"
    assert names(first, "ServiceGroup") == {"web", "campus", "legacy", "core"}
    assert names(first, "Peer") >= {"secured"}
    assert names(first, "NodeAgent") == {"bird-nodes", "frr-nodes"}
    assert names(first, "EndpointSlice")
    # The snapshot is what the model and the agent read: the example loads cleanly.
    model = model_api.load([o for o in first.objects if o["kind"] not in ("Service",)])
    assert model.node("node-a") is not None
    secret_reads = [r for r in fake.requests if r.resource == "secrets"]
    assert secret_reads and all(
        r.query.get("fieldSelector") == "metadata.name=bgp-password" for r in secret_reads
    )
    node_reads = [r for r in fake.requests if r.resource == "nodes"]
    assert all(r.query.get("fieldSelector") == "metadata.name=node-a" for r in node_reads)


def test_changes_arrive_as_new_snapshots(running: Running, fake: FakeAPI) -> None:
    running.next()
    svc = copy.deepcopy(fake.get("services", "web-1"))
    assert svc is not None
    svc["metadata"]["name"] = "web-3"
    svc["metadata"].pop("resourceVersion")
    svc["metadata"].pop("uid")
    fake.put("services", svc)
    running.until(lambda s: "web-3" in names(s, "Service"))
    fake.remove("services", "web-1")
    running.until(lambda s: "web-1" not in names(s, "Service"))


def test_a_peer_naming_another_secret_moves_the_watch(running: Running, fake: FakeAPI) -> None:
    running.next()
    fake.put("secrets", secret("other-password"), NS)
    peer = copy.deepcopy(PASSWORD_PEER)
    peer["spec"]["bgp"]["passwordSecretRef"]["name"] = "other-password"
    fake.put("peers", peer, NS)
    got = running.until(lambda s: "other-password" in names(s, "Secret"))
    assert names(got, "Secret") == {"other-password"}


def test_a_410_relists_and_no_snapshot_misses_anything(running: Running, fake: FakeAPI) -> None:
    first = running.next()
    fake.wait_watches(1, "services")
    before = {r.kind.name: r.lists for r in running.source.reflectors.values()}
    fake.compact()
    svc = copy.deepcopy(fake.get("services", "web-2"))
    assert svc is not None
    svc["metadata"]["annotations"] = {"lbroute.io/note": "after compaction"}
    fake.put("services", svc)
    running.until(
        lambda s: any(o["metadata"].get("annotations") for o in s.objects if o["kind"] == "Service")
    )
    relisted = {r.kind.name: r.lists for r in running.source.reflectors.values()}
    assert relisted["services"] == before["services"] + 1
    for snapshot in running.quiet(0.3):
        assert names(snapshot, "Service") == names(first, "Service")


def test_bookmarks_move_the_resource_version(running: Running, fake: FakeAPI) -> None:
    running.next()
    fake.wait_watches(1, "services")
    fake.put("configmaps", {"metadata": {"name": "unrelated"}})  # bumps the global rv
    fake.bookmark()
    services: Reflector = running.source.reflectors["services"]
    deadline = time.monotonic() + 5
    while services.resource_version != str(fake.resource_version):
        assert time.monotonic() < deadline, "bookmark not taken"
        time.sleep(0.02)
    assert running.quiet(0.2) == [], "a bookmark is not a change"


def test_the_api_away_yields_nothing_and_changes_arrive_when_it_is_back(
    running: Running, fake: FakeAPI
) -> None:
    first = running.next()
    fake.wait_watches(1, "services")
    fake.stop_serving()
    assert running.quiet(1.0) == [], "nothing withdrawn while the API is away"
    assert not running.source.healthy
    fake.remove("services", "web-2")  # happened while the agent could not see
    fake.resume()
    got = running.until(lambda s: "web-2" not in names(s, "Service"), timeout=10)
    assert names(got, "Service") == names(first, "Service") - {"web-2"}
    deadline = time.monotonic() + 5
    while not running.source.healthy:  # every watch back (each one backs off on its own)
        assert time.monotonic() < deadline, "not every watch came back"
        time.sleep(0.05)


def test_endpoint_slices_keep_one_entry_per_node_and_readiness() -> None:
    many = {
        "metadata": {
            "name": "s",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web", "other": "x"},
        },
        "endpoints": [
            {"addresses": [f"10.1.0.{i}"], "nodeName": f"n{i % 3}", "conditions": {"ready": i > 1}}
            for i in range(100)
        ],
    }
    trimmed = trim_endpoint_slice(many)
    assert sorted((e["nodeName"], e["conditions"]["ready"]) for e in trimmed["endpoints"]) == [
        ("n0", False),
        ("n0", True),
        ("n1", False),
        ("n1", True),
        ("n2", True),
    ]
    assert trimmed["metadata"]["labels"] == {"kubernetes.io/service-name": "web"}


# -- the reporter ------------------------------------------------------------------------


def report(
    fake: FakeAPI,
    *,
    result: str = "Applied",
    error: str = "",
    reason: str = "",
    announced: dict[ObjectRef, tuple[str, ...]] | None = None,
    local: frozenset[ObjectRef] = frozenset(),
) -> Report:
    objects = (
        *fake.objects("services"),
        *(
            {**o, "kind": kind, "apiVersion": "lbroute.io/v1alpha1"}
            for plural, kind in (
                ("servicegroups", "ServiceGroup"),
                ("peers", "Peer"),
                ("nodeagents", "NodeAgent"),
            )
            for o in fake.objects(plural)
        ),
        *({**o, "kind": "Secret", "apiVersion": "v1"} for o in fake.objects("secrets")),
        *({**o, "kind": "Node", "apiVersion": "v1"} for o in fake.objects("nodes")),
    )
    services = [{**o, "kind": "Service", "apiVersion": "v1"} for o in fake.objects("services")]
    model = model_api.load([o for o in objects if o["kind"] != "Service"])
    status = Status(
        node="node-a",
        router="bird",
        mode="managed",
        config_hash="0123456789abcdef",
        last_apply=LastApply(
            time="2026-11-28T03:00:00Z", result=result, reason=reason, error=error
        ),
        sessions=[
            SessionState(name="lbr_bgp_upstream", protocol="bgp", state="Established",
                         since="2026-11-28 02:59:01"),
            SessionState(name="10.0.0.1", protocol="bfd", state="Up", since=""),
        ],
    )  # fmt: skip
    return Report(
        status=status,
        announced=announced or {},
        local=local,
        object_problems=tuple(model.problems),
        node_problems=(),
        objects=(*services, *(o for o in objects if o["kind"] != "Service")),
        agent=ObjectRef(kind="NodeAgent", namespace=NS, name="bird-nodes"),
    )


@pytest.fixture
def reporter(fake: FakeAPI, tmp_path: Path) -> KubeReporter:
    client = api_client(str(fake.kubeconfig(tmp_path / "kubeconfig")))
    return KubeReporter(client, node="node-a", namespace=NS)


def crd_schema(plural: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "deploy/crds" / f"{plural}.yaml").read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def test_node_state_is_created_then_updated_and_fits_its_schema(
    fake: FakeAPI, reporter: KubeReporter
) -> None:
    reporter.sync(report(fake))
    state = fake.get("nodestates", "node-a", NS)
    assert state is not None
    jsonschema.validate(state, crd_schema("nodestates"))
    st = state["status"]
    assert st["router"] == "bird" and st["configHash"] == "0123456789abcdef"
    assert st["lastApply"] == {"result": "Applied", "error": "", "time": "2026-11-28T03:00:00Z"}
    assert st["peers"] == [
        {"name": "lbr_bgp_upstream", "protocol": "bgp", "state": "Established",
         "since": "2026-11-28T02:59:01Z"},
    ]  # fmt: skip
    assert st["conditions"][0]["type"] == "Ready" and st["conditions"][0]["status"] == "True"
    writes = len([r for r in fake.requests if r.resource == "nodestates"])
    reporter.sync(report(fake))
    assert len([r for r in fake.requests if r.resource == "nodestates"]) == writes, "no change"
    reporter.sync(report(fake, result="Failed", error="bird: syntax error"))
    state = fake.get("nodestates", "node-a", NS)
    assert state is not None
    jsonschema.validate(state, crd_schema("nodestates"))
    assert state["status"]["conditions"][0]["status"] == "False"
    assert state["status"]["lastApply"]["error"] == "bird: syntax error"


def events(fake: FakeAPI, reason: str) -> list[dict[str, Any]]:
    return [e for e in fake.objects("events.events.k8s.io") if e["reason"] == reason]


def test_service_events_announced_withdrawn_and_apply_failed(
    fake: FakeAPI, reporter: KubeReporter
) -> None:
    web1 = ObjectRef(kind="Service", namespace="default", name="web-1")
    web2 = ObjectRef(kind="Service", namespace="default", name="web-2")
    reporter.sync(report(fake, announced={web1: ("192.0.2.10/24",)}))
    assert events(fake, "Announced") == [], "the first report after a start is not news"
    reporter.sync(report(fake, announced={web1: ("192.0.2.10/24",), web2: ("192.0.2.11/24",)}))
    (announced,) = events(fake, "Announced")
    assert announced["regarding"]["name"] == "web-2"
    assert announced["note"] == "192.0.2.11/24 announced from node-a"
    assert announced["reportingController"] == "lbroute.io/agent"
    reporter.sync(report(fake, announced={web2: ("192.0.2.11/24",)}))
    (withdrawn,) = events(fake, "Withdrawn")
    assert withdrawn["regarding"]["name"] == "web-1"
    reporter.sync(report(fake, result="Failed", error="no-such-option", announced={web2: ()}))
    failed = {
        e["regarding"]["kind"] + "/" + e["regarding"]["name"] for e in events(fake, "ApplyFailed")
    }
    assert failed == {"NodeState/node-a", "NodeAgent/bird-nodes", "Service/web-2"}
    reporter.sync(report(fake, result="Failed", error="no-such-option", announced={web2: ()}))
    assert len(events(fake, "ApplyFailed")) == 3, "the same failure is reported once"


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        ("Rejected", "BIRD on node-a rejected the new configuration; the last good one"),
        ("NotConverged", "BIRD on node-a accepted the new configuration, but after loading"),
        ("Unavailable", "BIRD on node-a could not be reached to load the new configuration"),
    ],
)
def test_a_failed_apply_says_how_it_failed(
    fake: FakeAPI, reporter: KubeReporter, reason: str, says: str
) -> None:
    """Issue 14: a configuration the router took but does not run exactly is not
    reported as rejected; NodeState, its Ready condition and the Event say which."""
    web = ObjectRef(kind="Service", namespace="default", name="web-1")
    reporter.sync(report(fake, announced={web: ()}))
    error = "frr-reload.py --test still finds:\nLines To Delete\nno hostname other"
    reporter.sync(report(fake, result="Failed", reason=reason, error=error, announced={web: ()}))
    state = fake.get("nodestates", "node-a", NS)
    assert state is not None
    jsonschema.validate(state, crd_schema("nodestates"))
    assert state["status"]["lastApply"]["reason"] == reason
    (ready,) = state["status"]["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", f"Apply{reason}")
    assert ready["message"].startswith(says.replace(" on node-a", ""))
    assert ready["message"].endswith(error)
    notes = {e["note"] for e in events(fake, "ApplyFailed")}
    assert len(notes) == 1
    assert notes.pop().startswith(says)
    if reason != "Rejected":
        assert "rejected" not in ready["message"] and "refused" not in ready["message"]


BROKEN = {
    "apiVersion": "lbroute.io/v1alpha1",
    "kind": "ServiceGroup",
    "metadata": {"name": "broken", "namespace": NS},
    "spec": {"protocols": ["bgp"], "pools": [{"cidr": "198.18.1.1/24"}]},
}


def valid(fake: FakeAPI, plural: str, name: str) -> dict[str, Any]:
    obj = fake.get(plural, name, NS)
    assert obj is not None
    (condition,) = [c for c in obj["status"]["conditions"] if c["type"] == "Valid"]
    return dict(condition)


def test_valid_conditions_are_written_once_without_undoing_other_writers(
    fake: FakeAPI, reporter: KubeReporter
) -> None:
    broken = fake.put("servicegroups", {**BROKEN, "status": {"allocated": {"ipv4": 3}}}, NS)
    reporter.sync(report(fake))
    condition = valid(fake, "servicegroups", "broken")
    assert condition["status"] == "False" and condition["reason"] == "Invalid"
    assert "ServiceGroup lbroute/broken: spec.pools[0].cidr" in condition["message"]
    jsonschema.validate(fake.get("servicegroups", "broken", NS), crd_schema("servicegroups"))
    got = fake.get("servicegroups", "broken", NS)
    assert got is not None and got["status"]["allocated"] == {"ipv4": 3}, "others' status kept"
    assert valid(fake, "servicegroups", "web")["status"] == "True"
    (invalid,) = events(fake, "Invalid")
    assert invalid["regarding"]["name"] == "broken" and invalid["type"] == "Warning"
    # A second agent with the same view writes nothing: the objects already say it.
    writes = [r for r in fake.requests if r.verb == "patch"]
    reporter.sync(report(fake))
    assert [r for r in fake.requests if r.verb == "patch"] == writes
    assert events(fake, "Valid") == [], "a first Valid condition is not news"
    # Fixed: the condition turns, and that is news.
    fixed = fake.get("servicegroups", "broken", NS)
    assert fixed is not None
    fixed["spec"]["pools"] = [{"cidr": "198.18.1.0/24"}]
    fake.put("servicegroups", fixed, NS)
    reporter.sync(report(fake))
    assert valid(fake, "servicegroups", "broken")["status"] == "True"
    (news,) = events(fake, "Valid")
    assert news["regarding"]["name"] == "broken"
    del broken


def test_a_conflicting_status_write_is_read_again_not_overwritten(
    fake: FakeAPI, reporter: KubeReporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.put("servicegroups", BROKEN, NS)
    original = reporter.custom.get_namespaced_custom_object_status
    raced: list[bool] = []

    def racing_get(*args: Any, **kwargs: Any) -> Any:
        response = original(*args, **kwargs)
        if not raced:  # another writer gets in between our read and our write
            raced.append(True)
            obj = fake.get("servicegroups", "broken", NS)
            assert obj is not None
            obj.setdefault("status", {})["allocated"] = {"ipv4": 7}
            fake.put("servicegroups", obj, NS)
        return response

    monkeypatch.setattr(reporter.custom, "get_namespaced_custom_object_status", racing_get)
    reporter.sync(report(fake))
    assert any(r.code == 409 for r in fake.requests if r.resource == "servicegroups")
    obj = fake.get("servicegroups", "broken", NS)
    assert obj is not None
    assert obj["status"]["allocated"] == {"ipv4": 7}, "the other writer's change survives"
    assert valid(fake, "servicegroups", "broken")["status"] == "False"


def test_the_announcing_annotation_lists_each_node_once(
    fake: FakeAPI, reporter: KubeReporter, tmp_path: Path
) -> None:
    local = ObjectRef(kind="Service", namespace="default", name="web-local")
    other = KubeReporter(
        api_client(str(fake.kubeconfig(tmp_path / "kc2"))), node="node-b", namespace=NS
    )
    here: dict[ObjectRef, tuple[str, ...]] = {local: ("192.0.2.20/32",)}
    reporter.sync(report(fake, announced=here, local=frozenset({local})))
    other.sync(report(fake, announced=here, local=frozenset({local})))

    def annotation() -> str | None:
        svc = fake.get("services", "web-local")
        assert svc is not None
        return (svc["metadata"].get("annotations") or {}).get(ANNOUNCING)

    assert annotation() == "node-a,node-b"
    reporter.sync(report(fake))  # node-a no longer announces it
    assert annotation() == "node-b"
    other.sync(report(fake))
    assert annotation() is None
    svc = fake.get("services", "web-local")
    assert svc is not None and svc["spec"]["externalTrafficPolicy"] == "Local", (
        "only the annotation"
    )


def test_events_beyond_the_rate_limit_are_counted_not_sent(fake: FakeAPI, tmp_path: Path) -> None:
    dropped: list[int] = []
    limited = KubeReporter(
        api_client(str(fake.kubeconfig(tmp_path / "kubeconfig"))),
        node="node-a",
        namespace=NS,
        events_per_second=0.001,
        event_burst=2,
        on_dropped_event=lambda: dropped.append(1),
    )
    limited.sync(report(fake))
    many: dict[ObjectRef, tuple[str, ...]] = {
        ObjectRef(kind="Service", namespace="default", name=f"svc-{i}"): (f"192.0.2.{i}/24",)
        for i in range(5)
    }
    limited.sync(report(fake, announced=many))
    assert len(events(fake, "Announced")) == 2
    assert len(dropped) == 3


# -- the layer underneath ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (409, Conflict, True),
        (404, NotFound, False),
        (410, Gone, True),
        (400, Rejected, False),
        (403, Rejected, False),
        (422, Rejected, False),
        (429, Unavailable, True),
        (500, Unavailable, True),
        (503, Unavailable, True),
        (0, Unavailable, True),
    ],
)
def test_an_answer_becomes_lbroute_s_error_by_its_status(
    status: int, kind: type[KubernetesError], retryable: bool
) -> None:
    error = from_status(status, "Reason", "what the API said")
    assert type(error) is kind and error.retryable is retryable
    assert error.status == status and error.reason == "Reason"
    with pytest.raises(kind) as raised, translated():
        raise ApiException(status=status, reason="Reason", body='{"message": "no"}')
    assert isinstance(raised.value.__cause__, ApiException)
    assert str(raised.value) == f'API said {status} Reason: {{"message": "no"}}'


@pytest.mark.parametrize(
    "exc",
    [
        urllib3.exceptions.ProtocolError("connection broken"),
        urllib3.exceptions.MaxRetryError(
            urllib3.HTTPConnectionPool("127.0.0.1"), "/api", ConnectionRefusedError(111, "refused")
        ),
        ConnectionResetError(104, "reset"),
        TimeoutError("timed out"),
    ],
)
def test_no_answer_is_unavailable(exc: Exception) -> None:
    with pytest.raises(Unavailable) as raised, translated():
        raise exc
    assert raised.value.__cause__ is exc
    assert str(raised.value).startswith(f"API unreachable ({type(exc).__name__}: ")


def test_what_is_not_the_client_s_passes_through() -> None:
    with pytest.raises(KeyError), translated():
        raise KeyError("a bug")


@pytest.mark.parametrize("text", ["- just\n- a list\n", "clusters: [\n", ""])
def test_a_kubeconfig_that_cannot_be_loaded_says_so(tmp_path: Path, text: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(KubernetesError) as raised:
        api_client(str(path))
    assert type(raised.value) is KubernetesError and not raised.value.retryable
    assert raised.value.__cause__ is not None


class Streamed:
    """A watch's response as urllib3 hands it over: the body in chunks."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def stream(self, amt: int | None = None, decode_content: bool = True) -> Iterator[bytes]:
        yield from self.chunks


def test_a_watch_stream_is_split_into_events_whatever_its_chunks() -> None:
    events = [
        {"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "1"}}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "2"}}},
        {"type": "DELETED", "object": {"metadata": {"name": "a", "resourceVersion": "3"}}},
    ]
    body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    assert list(watch_events(Streamed(body))) == events
    bytewise = [body[i : i + 1] for i in range(len(body))]
    assert list(watch_events(Streamed(*bytewise))) == events
    assert list(watch_events(Streamed(b"\n", body[:-1], b"\r\n\n"))) == events
    with pytest.raises(Unavailable):
        list(watch_events(Streamed(b'{"type": "ADDED", "obj\n')))


def test_one_service_trimmer_keeps_what_each_user_reads() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "u1",
            "resourceVersion": "7",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "web"},
            "annotations": {"lbroute.io/addresses": "192.0.2.7", "other.io/x": "y"},
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "lbroute.io/lbroute",
            "externalTrafficPolicy": "Local",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"port": 80, "targetPort": 8080}],
            "selector": {"app": "web"},
            "clusterIP": "10.96.0.7",
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}},
    }
    agent = trim_service(svc)
    assert agent["metadata"] == {
        "name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
        "annotations": {"lbroute.io/addresses": "192.0.2.7"},
    }  # fmt: skip
    assert agent["spec"] == {
        "type": "LoadBalancer", "loadBalancerClass": "lbroute.io/lbroute",
        "externalTrafficPolicy": "Local", "ipFamilies": ["IPv4"],
    }  # fmt: skip
    allocator = trim_service(svc, allocation=True)
    assert allocator["metadata"] == {
        **agent["metadata"],
        "creationTimestamp": "2026-01-01T00:00:00Z",
    }
    assert allocator["spec"] == {
        **agent["spec"], "ipFamilyPolicy": "SingleStack",
        "ports": [{"protocol": "TCP", "port": 80}], "selector": {"app": "web"},
    }  # fmt: skip
    assert agent["status"] == allocator["status"] == svc["status"]


def test_a_lease_is_held_and_taken_over_on_the_clock_it_is_given(
    fake: FakeAPI, tmp_path: Path
) -> None:
    kube = Api(api_client(str(fake.kubeconfig(tmp_path / "kubeconfig"))))
    now = {"a": 100.0, "b": 5000.0}  # two candidates whose clocks agree on nothing

    def candidate(identity: str) -> LeaderElector:
        return LeaderElector(
            kube, namespace=NS, name="members", identity=identity, duration=15.0,
            renew_deadline=10.0, clock=lambda: now[identity],
        )  # fmt: skip

    a, b = candidate("a"), candidate("b")
    assert a.try_once() and a.is_leader()
    assert not b.try_once() and not b.is_leader(), "held by a"
    now["a"] += 10.0
    assert not a.is_leader(), "no renewal within renew_deadline: a stops at once"
    now["b"] += 14.0
    assert not b.try_once(), "not yet unchanged for the lease's duration on b's clock"
    now["b"] += 1.0
    assert b.try_once() and b.is_leader()
    lease = fake.get("leases", "members", NS)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    assert not a.try_once(), "a sees b hold it"


@contextlib.contextmanager
def fed(source: KubernetesSource) -> Iterator[queue.Queue[Snapshot]]:
    """The snapshots ``source`` yields, put on a queue by a thread, until the block ends."""
    stop = threading.Event()
    got: queue.Queue[Snapshot] = queue.Queue()

    def feed() -> None:
        for snapshot in source.snapshots(stop):
            got.put(snapshot)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        stop.set()
        thread.join(timeout=10)


def test_the_agent_lists_from_the_watch_cache_and_relists_consistently_after_410(
    fake: FakeAPI, tmp_path: Path
) -> None:
    """resourceVersion=0 (the API server's cache, no etcd read) for the agent's lists; a
    relist after 410 Gone reads etcd (the cache may be as old); the allocator's Timing
    (the default) always reads consistently, in pages."""
    from nodeagent.main import AGENT_TIMING

    client = api_client(str(fake.kubeconfig(tmp_path / "kubeconfig")))
    timing = dataclasses.replace(AGENT_TIMING, watch_seconds=(30, 40), backoff=(0.05, 0.2))
    source = KubernetesSource(client, node="node-a", namespace=NS, timing=timing)
    with fed(source) as got:
        got.get(timeout=10)
        fake.wait_watches(1, "services")

        def lists() -> list[dict[str, Any]]:
            return [
                dict(r.query)
                for r in fake.requests
                if r.resource == "services" and r.verb == "list"
            ]

        assert [q.get("resourceVersion") for q in lists()] == ["0"]
        assert "limit" not in lists()[0]
        fake.compact()
        svc = copy.deepcopy(fake.get("services", "web-2"))
        assert svc is not None
        svc["metadata"]["annotations"] = {"lbroute.io/note": "after compaction"}
        fake.put("services", svc)
        deadline = time.monotonic() + 10
        while len(lists()) < 2:
            assert time.monotonic() < deadline, "no relist after 410"
            time.sleep(0.02)
        assert lists()[1].get("resourceVersion") in (None, ""), "a consistent relist"
        assert lists()[1].get("limit") == str(timing.page)
    assert Timing().cached_lists is False, "the allocator's lists stay consistent"


def test_the_first_snapshot_comes_when_the_last_kind_to_list_has_nothing(
    tmp_path: Path,
) -> None:
    """A kind with no objects (no Peers, no NodeAgents yet) whose first list completes
    last still completes the first snapshot: its list changes nothing, but the agent
    was waiting for it. Here its list is made to answer 0.7 s after the others."""
    with FakeAPI(namespaces=("default", NS)) as api:
        api.put_all([o for o in example() if o["kind"] not in ("Peer", "NodeAgent")])
        slow = "/peers"

        def late(method: str, path: str, query: str) -> bool:
            if path.endswith(slow) and "watch" not in query:
                time.sleep(0.7)
            return True

        api.authorize = late
        client = api_client(str(api.kubeconfig(tmp_path / "kubeconfig")))
        source = KubernetesSource(client, node="node-a", namespace=NS, timing=FAST)
        assert not api.objects("peers", NS)
        with fed(source) as got:
            first = got.get(timeout=5)
            assert names(first, "Service"), "the first snapshot, with the Services"
            assert not names(first, "Peer")
            assert source.reflectors[PLURALS[PEER]].lists == 1


LABEL = "lbroute.io/allocated-group"


def with_label(obj: dict[str, Any], group: str = "public") -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("labels", {})[LABEL] = group
    return out


def test_the_agent_watches_only_labeled_services_once_the_allocator_has_labeled_them(
    fake: FakeAPI, tmp_path: Path
) -> None:
    """Labels as the allocator writes them on Services and the EndpointSlice controller
    copies onto their slices; a ClusterIP Service and its slice stay unlabeled."""
    other = {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "cache", "namespace": "default"},
             "spec": {"type": "ClusterIP", "ports": [{"port": 6379}]}}  # fmt: skip
    other_slice = copy.deepcopy(fake.get("endpointslices", "web-local-abcde"))
    assert other_slice is not None
    other_slice["metadata"] = {
        "name": "cache-xyz",
        "namespace": "default",
        "labels": {"kubernetes.io/service-name": "cache"},
    }
    fake.put_all([other, other_slice])
    for kind in ("services", "endpointslices"):
        for obj in fake.objects(kind):
            if obj["metadata"]["name"] not in ("cache", "cache-xyz"):
                fake.put(kind, with_label(obj))
    client = api_client(str(fake.kubeconfig(tmp_path / "kubeconfig")))

    def run(watch: Watch) -> tuple[KubernetesSource, Snapshot]:
        source = KubernetesSource(client, node="node-a", namespace=NS, timing=FAST, watch=watch)
        with fed(source) as got:
            return source, got.get(timeout=10)

    # auto: the groups' status does not say every Service is labeled (an allocator of
    # before labels, or one that has not finished): every Service, every slice.
    source, first = run(Watch.AUTO)
    assert source.selector is None
    assert "cache" in names(first, "Service") and "cache-xyz" in names(first, "EndpointSlice")

    for group in fake.objects("servicegroups", NS):
        fake.put("servicegroups", {**group, "status": {"labeledServices": True}}, NS)
    fake.clear_requests()
    source = KubernetesSource(client, node="node-a", namespace=NS, timing=FAST, watch=Watch.AUTO)
    with fed(source) as got:
        first = got.get(timeout=10)
        assert source.selector == LABEL
        assert "cache" not in names(first, "Service") and "web-1" in names(first, "Service")
        assert names(first, "EndpointSlice") == {"web-local-abcde"}
        fake.wait_watches(1, "endpointslices")
        asked = [r for r in fake.requests if r.resource in ("services", "endpointslices")]
        assert {r.query.get("labelSelector") for r in asked} == {LABEL}, "filtered server-side"
        # The unlabeled Service's endpoints change: nothing reaches this agent.
        other_slice["endpoints"] = []
        fake.put("endpointslices", other_slice)
        time.sleep(0.5)
        assert got.empty()
        # A Service the allocator labels arrives, and its slice with it (the EndpointSlice
        # controller copies the label); one it unlabels leaves.
        fake.put("services", with_label(other))
        deadline = time.monotonic() + 5
        while True:  # the two watches' events may come in one snapshot or two
            snapshot = got.get(timeout=5)
            if {"cache-xyz", "cache"} <= names(snapshot, "EndpointSlice") | names(
                snapshot, "Service"
            ):
                break
            assert time.monotonic() < deadline, "the labeled Service and its slice never came"
        web = fake.get("services", "web-1")
        assert web is not None
        del web["metadata"]["labels"][LABEL]
        fake.put("services", web)
        deadline = time.monotonic() + 5
        while "web-1" in names(got.get(timeout=5), "Service"):
            assert time.monotonic() < deadline

    # labeled and all are what they say, whatever the groups' status.
    assert run(Watch.LABELED)[0].selector == LABEL
    source, first = run(Watch.ALL)
    assert source.selector is None and "cache-xyz" in names(first, "EndpointSlice")


def test_a_lone_change_comes_at_once_and_a_burst_in_few_snapshots(
    fake: FakeAPI, tmp_path: Path
) -> None:
    """The source's debounce limits snapshots to one a ``debounce`` while changes keep
    coming; it does not hold back a change that comes alone (a Service's way to the
    router). Here debounce is 1 s, so a held-back change would show."""
    client = api_client(str(fake.kubeconfig(tmp_path / "kubeconfig")))
    source = KubernetesSource(client, node="node-a", namespace=NS, timing=FAST, debounce=1.0)
    with fed(source) as got:
        got.get(timeout=10)
        fake.wait_watches(1, "services")
        time.sleep(1.2)  # quiet for longer than debounce
        svc = fake.get("services", "web-2")
        assert svc is not None
        svc["metadata"]["annotations"] = {"lbroute.io/note": "alone"}
        started = time.monotonic()
        fake.put("services", svc)
        snapshot = got.get(timeout=5)
        assert time.monotonic() - started < 0.5, "held back"
        assert snapshot.at >= started - 0.01, "stamped when the change arrived"
        # A burst right after: coalesced into the next snapshot, a debounce later.
        for i in range(20):
            svc["metadata"]["annotations"] = {"lbroute.io/note": f"burst {i}"}
            fake.put("services", svc)
        last = got.get(timeout=5)
        while not got.empty() or not any(
            (o["metadata"].get("annotations") or {}).get("lbroute.io/note") == "burst 19"
            for o in last.objects
        ):
            last = got.get(timeout=5)
        assert time.monotonic() - started >= 0.9, "at most one snapshot a debounce"


def test_auto_narrows_its_watch_once_the_allocator_has_labeled_every_group(
    fake: FakeAPI, tmp_path: Path
) -> None:
    """An agent that started before the allocator finished labeling (an upgrade) follows
    every Service until every group's status says labeledServices; then it lists and
    watches the labeled ones only, without a snapshot that lacks any of them."""
    cache = {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "cache", "namespace": "default"},
             "spec": {"type": "ClusterIP", "ports": [{"port": 6379}]}}  # fmt: skip
    fake.put_all([cache])
    for obj in fake.objects("services"):
        if obj["metadata"]["name"] != "cache":
            fake.put("services", with_label(obj))
    client = api_client(str(fake.kubeconfig(tmp_path / "kubeconfig")))
    source = KubernetesSource(client, node="node-a", namespace=NS, timing=FAST, watch=Watch.AUTO)
    with fed(source) as got:
        first = got.get(timeout=10)
        assert source.selector is None and "cache" in names(first, "Service")
        labeled = names(first, "Service") - {"cache"}
        for group in fake.objects("servicegroups", NS):
            fake.put("servicegroups", {**group, "status": {"labeledServices": True}}, NS)
        deadline = time.monotonic() + 10
        while True:
            snapshot = got.get(timeout=10)
            assert labeled <= names(snapshot, "Service"), "no snapshot lacks a labeled one"
            if "cache" not in names(snapshot, "Service"):
                break
            assert time.monotonic() < deadline, "never narrowed"
        assert source.selector == LABEL
        fake.wait_watches(1, "services")
        watches = [r for r in fake.requests if r.resource == "services" and r.query.get("watch")]
        assert watches[-1].query.get("labelSelector") == LABEL


def test_an_event_that_changes_nothing_the_reader_keeps_keeps_the_object() -> None:
    """The allocator's ServiceGroups drop status and resourceVersion: a status write comes
    as a MODIFIED event whose trimmed object is the same; no change is signalled and the
    dict kept is the same one (its readers reuse what they made of it by identity)."""
    from lbroute.kube.reflector import Kind
    from lbroute.kube.trim import trim_service_group

    changes: list[int] = []
    kind = Kind(name="servicegroups", call=lambda **_: None, trim=trim_service_group)
    reflector = Reflector(kind, lambda: changes.append(1), FAST)
    group = next(o for o in example() if o["kind"] == "ServiceGroup")
    group = {**group, "metadata": {**group["metadata"], "resourceVersion": "1"}}
    reflector._event({"type": "ADDED", "object": group})
    [kept] = reflector.objects()
    written = {**group, "status": {"conditions": [{"type": "Valid", "status": "True"}]}}
    written["metadata"] = {**group["metadata"], "resourceVersion": "2"}
    reflector._event({"type": "MODIFIED", "object": written})
    assert changes == [1] and reflector.objects()[0] is kept
    assert reflector.resource_version == "2"
