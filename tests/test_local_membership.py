"""Membership for the local-address election (nodeagent.local.membership): the Leases the
agents publish, and who is alive, judged on each agent's own clock.

Directory store (nodeagent.local.leasedir), two agents in one process sharing a
directory, each with a clock of its own that agrees with the other on nothing: a node
joins with what it publishes; it stays alive while it renews and is gone exactly one
lease duration (on the reader's clock) after the last change the reader saw; a stale
Lease seen for the first time gets its whole duration; a graceful stop is seen at once;
we count ourselves alive only while the store shows our own renewals back within the
renew deadline (a failed write, a view that stopped following); another node's broken
or hostile Lease file is reported once and ignored while the others are read.

Reading a Lease: every field checked, each bad value reported with the field's path and
what is valid. Kubernetes store (lbroute.kube.leases) through the real client against
the protocol-level fake API: the same membership, one request per renew, someone
else's write onto our Lease kept, a deleted Lease created again, a hostile Lease
reported, and deploy/rbac.yaml allows every request the store makes and no more.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbroute.kube.client import Api, api_client
from lbroute.kube.leases import KubeLeaseStore
from lbroute.kube.reflector import Timing
from lbroute.model.errors import Problem
from lbroute.model.vocabulary import (
    LOCAL_HOLDING_ANNOTATION,
    LOCAL_SUBNETS_ANNOTATION,
    MEMBER_LABEL,
    MEMBER_LABEL_VALUE,
)
from nodeagent.local.leasedir import DirectoryLeaseStore
from nodeagent.local.membership import (
    Members,
    Membership,
    Record,
    decode,
    encode,
    lease_name,
)
from tests.fakeapi import FakeAPI
from tests.rbac import Permissions, load_objects, request_attributes

ROOT = Path(__file__).resolve().parents[1]
NS = "lbroute"
DURATION = 2
DEADLINE = 1.5
A_SAYS = Membership(
    subnets=frozenset({ipaddress.ip_network("192.0.2.0/24")}),
    holding=frozenset({ipaddress.ip_address("192.0.2.10")}),
)
B_SAYS = Membership(
    subnets=frozenset(
        {ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/64")}
    ),
    holding=frozenset({ipaddress.ip_address("2001:db8::10"), ipaddress.ip_address("192.0.2.11")}),
)
WHEN = datetime.datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=datetime.UTC)


def agent(directory: Path, node: str) -> Members:
    return Members(
        DirectoryLeaseStore(directory, namespace=NS),
        node=node,
        namespace=NS,
        duration=DURATION,
        renew_deadline=DEADLINE,
    )


def alive(members: Members, now: float) -> dict[str, bool]:
    return {node: m.alive for node, m in members.members(now).items()}


# -- directory store: two agents, two clocks -------------------------------------------------


def test_a_node_joins_with_what_it_publishes_and_renews_to_stay(tmp_path: Path) -> None:
    a, b = agent(tmp_path, "a"), agent(tmp_path, "b")
    ta, tb = 100.0, 9000.0  # the two clocks agree on nothing
    assert alive(a, ta) == {"a": False}, "not alive before our first renewal"
    assert a.publish(A_SAYS, ta) and b.publish(B_SAYS, tb)
    seen = a.members(ta)
    assert seen["a"] == A_SAYS and seen["b"] == B_SAYS, "both alive, as published"
    assert b.members(tb)["a"] == A_SAYS
    for step in range(1, 6):  # renewing every second for five seconds: always alive
        assert a.publish(A_SAYS, ta + step) and b.publish(B_SAYS, tb + step)
        assert alive(a, ta + step) == alive(b, tb + step) == {"a": True, "b": True}
    assert (tmp_path / f"{lease_name('a')}.yaml").is_file()


def test_a_node_that_stops_renewing_is_gone_one_duration_after_the_last_change_seen(
    tmp_path: Path,
) -> None:
    a, b = agent(tmp_path, "a"), agent(tmp_path, "b")
    b.publish(B_SAYS, 0.0)
    a.publish(A_SAYS, 50.0)
    assert alive(a, 50.0)["b"], "first seen at 50 on a's clock"
    a.publish(A_SAYS, 51.0)
    assert alive(a, 51.99)["b"], "unchanged, but not yet for a whole duration"
    assert not alive(a, 52.0)["b"], "unchanged for the lease's duration: gone"
    assert a.members(52.0)["b"].holding == B_SAYS.holding, "what it said is still known"
    b.publish(B_SAYS, 7.0)
    assert alive(a, 60.0)["b"], "renewed: alive again from when a saw it"
    assert not alive(a, 62.0)["b"]


def test_a_stale_lease_seen_first_gets_its_whole_duration(tmp_path: Path) -> None:
    agent(tmp_path, "b").publish(B_SAYS, 0.0)  # and crashed long ago
    late = agent(tmp_path, "a")
    assert alive(late, 1000.0)["b"], "no other clock trusted: counted as just renewed"
    assert alive(late, 1001.9)["b"]
    assert not alive(late, 1002.0)["b"]


def test_a_graceful_stop_is_seen_at_once(tmp_path: Path) -> None:
    a, b = agent(tmp_path, "a"), agent(tmp_path, "b")
    a.publish(A_SAYS, 10.0)
    b.publish(B_SAYS, 10.0)
    assert alive(a, 10.0) == {"a": True, "b": True}
    b.withdraw()
    assert alive(a, 10.0) == {"a": True}, "its Lease deleted: no wait for expiry"
    assert not (tmp_path / f"{lease_name('b')}.yaml").exists()
    assert not alive(b, 10.0)["b"]
    b.withdraw()  # twice is fine


def test_we_are_alive_only_while_our_renewals_show_back_within_the_deadline(
    tmp_path: Path,
) -> None:
    a = agent(tmp_path, "a")
    a.publish(A_SAYS, 10.0)
    assert alive(a, 11.49)["a"]
    assert not alive(a, 11.5)["a"], "renew deadline passed without a renewal"
    a.publish(A_SAYS, 11.6)
    assert alive(a, 11.6)["a"]


def test_a_failed_write_ends_our_membership_at_the_deadline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")
    broken = agent(tmp_path / "file" / "leases", "a")
    caplog.set_level(logging.INFO)
    assert not broken.publish(A_SAYS, 1.0) and not broken.publish(A_SAYS, 2.0)
    assert alive(broken, 2.0) == {"a": False}
    warnings = [r for r in caplog.records if "could not renew" in r.getMessage()]
    assert len(warnings) == 1, "said once, not once per renewal"


class FrozenView:
    """A store whose view of the Leases stopped following (a watch gone quiet) while
    its writes still work."""

    def __init__(self, store: DirectoryLeaseStore) -> None:
        self.store = store
        self.view = store.read_all()

    def write(self, lease: dict[str, Any]) -> None:
        self.store.write(lease)

    def read_all(self) -> tuple[list[dict[str, Any]], list[Problem]] | None:
        return self.view

    def delete(self, name: str) -> None:
        self.store.delete(name)


def test_a_view_that_stopped_following_ends_our_membership(tmp_path: Path) -> None:
    store = DirectoryLeaseStore(tmp_path, namespace=NS)
    a = Members(store, node="a", namespace=NS, duration=DURATION, renew_deadline=DEADLINE)
    a.publish(A_SAYS, 0.0)
    a.store = FrozenView(store)
    for t in (0.5, 1.0):
        assert a.publish(A_SAYS, t), "the writes succeed"
    assert alive(a, 1.4)["a"], "the renewal at 0 still shows"
    assert a.publish(A_SAYS, 1.5)
    assert not alive(a, 1.5)["a"], "none of the later renewals shows back"


def test_a_store_that_has_not_read_yet_elects_nobody(tmp_path: Path) -> None:
    class Unread(FrozenView):
        def read_all(self) -> None:
            return None

    a = agent(tmp_path, "a")
    agent(tmp_path, "b").publish(B_SAYS, 0.0)
    a.store = Unread(DirectoryLeaseStore(tmp_path, namespace=NS))
    a.publish(A_SAYS, 0.0)
    assert alive(a, 0.0) == {"a": False}


def lease_file(directory: Path, name: str, text: str) -> None:
    (directory / f"{name}.yaml").write_text(text)


def test_a_broken_lease_of_another_node_is_reported_once_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = agent(tmp_path, "a"), agent(tmp_path, "b")
    a.publish(A_SAYS, 0.0)
    b.publish(B_SAYS, 0.0)
    hostile = encode("c", A_SAYS, namespace=NS, duration=2, renewed=WHEN)
    hostile["metadata"]["annotations"][LOCAL_HOLDING_ANNOTATION] = "192.0.2.1,\x1b[2Jboom"
    lease_file(tmp_path, lease_name("c"), yaml.safe_dump(hostile))
    lease_file(tmp_path, lease_name("d"), "kind: Lease\nmetadata: {name: [unclosed\n")
    lease_file(tmp_path, lease_name("e"), yaml.safe_dump(
        encode("a", A_SAYS, namespace=NS, duration=2, renewed=WHEN)))  # fmt: skip
    lease_file(tmp_path, lease_name("f"), "x: " + "y" * 300_000)
    lease_file(tmp_path, lease_name("g"), "")
    (tmp_path / f"{lease_name('h')}.yaml").write_bytes(b"kind: \xff\n")
    caplog.set_level(logging.WARNING)
    assert alive(a, 0.5) == {"a": True, "b": True}, "the others are read as usual"
    problems = {p.ref.name: str(p) for p in a.problems}
    assert set(problems) == {lease_name(n) for n in "cdefgh"}
    assert problems[lease_name("c")] == (
        f"error: Lease lbroute/lbroute-node-c: metadata.annotations[{LOCAL_HOLDING_ANNOTATION}]: "
        "'\\x1b[2Jboom' is not valid; expected addresses such as 192.0.2.10, comma-separated; "
        "the Lease is ignored"
    )
    assert "lbroute-node-d.yaml:3: not valid YAML" in problems[lease_name("d")]
    assert (
        "holds the Lease named 'lbroute-node-a'; expected 'lbroute-node-e'"
        in problems[lease_name("e")]
    )
    assert "larger than 262144 bytes" in problems[lease_name("f")]
    assert "holds 0 objects; expected one Lease" in problems[lease_name("g")]
    assert "not UTF-8 text" in problems[lease_name("h")]
    assert all("the Lease is ignored" in p for p in problems.values())
    assert len(caplog.records) == 6
    a.members(1.0)
    assert len(caplog.records) == 6, "reported once, not at every read"


# -- reading a Lease -----------------------------------------------------------------------------


def test_a_lease_reads_back_as_it_was_written() -> None:
    lease = encode("b", B_SAYS, namespace=NS, duration=2, renewed=WHEN)
    assert lease["metadata"]["name"] == "lbroute-node-b"
    assert lease["metadata"]["labels"] == {MEMBER_LABEL: MEMBER_LABEL_VALUE}
    assert lease["metadata"]["annotations"] == {
        LOCAL_SUBNETS_ANNOTATION: "192.0.2.0/24,2001:db8::/64",
        LOCAL_HOLDING_ANNOTATION: "192.0.2.11,2001:db8::10",
    }
    assert lease["spec"] == {
        "holderIdentity": "b",
        "leaseDurationSeconds": 2,
        "renewTime": "2026-01-02T03:04:05.600000Z",
    }
    assert decode(lease) == Record(
        node="b",
        duration=2,
        renewed=WHEN,
        version="",
        membership=Membership(alive=False, subnets=B_SAYS.subnets, holding=B_SAYS.holding),
    )
    empty = encode("b", Membership(), namespace=NS, duration=2, renewed=WHEN)
    record = decode(empty)
    assert isinstance(record, Record) and record.membership == Membership(alive=False)


def test_a_long_node_name_still_makes_a_valid_lease_name() -> None:
    node = ".".join(["a" * 63] * 3) + ".b" + "c" * 60  # 253 characters
    name = lease_name(node)
    assert len(name) == 253 and name.startswith("lbroute-node-aaa") and name[-17] == "-"
    assert lease_name(node[:-1] + "d") != name
    record = decode(encode(node, A_SAYS, namespace=NS, duration=2, renewed=WHEN))
    assert isinstance(record, Record) and record.node == node


def test_a_lease_handed_back_is_no_member() -> None:
    lease = encode("b", B_SAYS, namespace=NS, duration=2, renewed=WHEN)
    lease["spec"]["holderIdentity"] = None
    assert decode(lease) is None


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(lease: dict[str, Any]) -> None:
        *parents, last = path.split("/", 2)
        target = lease
        for key in parents:
            target = target[key]
        target[last] = value

    return change


SUBNETS = f"metadata/annotations/{LOCAL_SUBNETS_ANNOTATION}"
HOLDING = f"metadata/annotations/{LOCAL_HOLDING_ANNOTATION}"


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (_set("spec/holderIdentity", "Node_B"), "spec.holderIdentity",
         "'Node_B' is not valid; expected a node's name"),
        (_set("spec/holderIdentity", ["b"]), "spec.holderIdentity",
         "['b'] is not valid; expected a node's name"),
        (_set("metadata/name", "lbroute-node-a"), "metadata.name",
         "'lbroute-node-a' is not the membership Lease of node 'b', which is named "
         "'lbroute-node-b'"),
        (_set("spec/leaseDurationSeconds", 0), "spec.leaseDurationSeconds",
         "0 is not valid; expected whole seconds from 1 to 3600"),
        (_set("spec/leaseDurationSeconds", 10**12), "spec.leaseDurationSeconds",
         "1000000000000 is not valid; expected whole seconds from 1 to 3600"),
        (_set("spec/leaseDurationSeconds", True), "spec.leaseDurationSeconds",
         "True is not valid; expected whole seconds from 1 to 3600"),
        (_set("spec/leaseDurationSeconds", "2"), "spec.leaseDurationSeconds",
         "'2' is not valid; expected whole seconds from 1 to 3600"),
        (_set("spec/renewTime", "yesterday"), "spec.renewTime",
         "'yesterday' is not valid; expected a time such as 2026-01-02T03:04:05.000000Z"),
        (_set("spec/renewTime", "2026-01-02T03:04:05"), "spec.renewTime",
         "'2026-01-02T03:04:05' is not valid; expected a time such as "
         "2026-01-02T03:04:05.000000Z"),
        (_set("spec/renewTime", None), "spec.renewTime",
         "None is not valid; expected a time such as 2026-01-02T03:04:05.000000Z"),
        (_set(SUBNETS, "192.0.2.1/24"), f"metadata.annotations[{LOCAL_SUBNETS_ANNOTATION}]",
         "'192.0.2.1/24' is not valid; expected networks such as 192.0.2.0/24, comma-separated"),
        (_set(SUBNETS, 24), f"metadata.annotations[{LOCAL_SUBNETS_ANNOTATION}]",
         "24 is not a string; expected networks such as 192.0.2.0/24, comma-separated"),
        (_set(HOLDING, "192.0.2.10,fe80::1%eth0"),
         f"metadata.annotations[{LOCAL_HOLDING_ANNOTATION}]",
         "'fe80::1%eth0' is not valid; expected addresses such as 192.0.2.10, comma-separated"),
        (_set(HOLDING, ",".join(["192.0.2.10"] * 10_001)),
         f"metadata.annotations[{LOCAL_HOLDING_ANNOTATION}]",
         "lists 10001 values, more than the 10000 allowed; expected addresses such as "
         "192.0.2.10, comma-separated"),
    ],
)  # fmt: skip
def test_every_field_of_another_node_s_lease_is_checked(
    change: Callable[[dict[str, Any]], None], path: str, message: str
) -> None:
    lease = encode("b", B_SAYS, namespace=NS, duration=2, renewed=WHEN)
    change(lease)
    problem = decode(lease)
    assert isinstance(problem, Problem)
    assert problem.path == path
    assert problem.message == f"{message}; the Lease is ignored"
    assert problem.ref.kind == "Lease" and problem.ref.namespace == NS


def test_a_lease_of_any_shape_never_crashes_the_reader() -> None:
    shapes: list[Any] = [
        {},
        {"metadata": None, "spec": None},
        {"metadata": [], "spec": 3},
        {"metadata": {"name": 5, "annotations": []}, "spec": {"holderIdentity": "b"}},
        {"metadata": {"name": "lbroute-node-b", "annotations": []},
         "spec": {"holderIdentity": "b", "leaseDurationSeconds": 2,
                  "renewTime": "2026-01-02T03:04:05Z"}},
    ]  # fmt: skip
    for shape in shapes:
        assert decode(shape) is None or isinstance(decode(shape), Problem | Record)


# -- Kubernetes store --------------------------------------------------------------------------

FAST = Timing(watch_seconds=(30, 40), backoff=(0.05, 0.2), connect_timeout=2)


@pytest.fixture
def fake() -> Iterator[FakeAPI]:
    with FakeAPI(namespaces=("default", NS)) as api:
        yield api


@pytest.fixture
def kube_agents(fake: FakeAPI, tmp_path: Path) -> Iterator[Callable[[str], Members]]:
    stores: list[KubeLeaseStore] = []

    def make(node: str) -> Members:
        api = Api(api_client(str(fake.kubeconfig(tmp_path / f"kubeconfig-{node}"))))
        store = KubeLeaseStore(api, namespace=NS, timing=FAST).start()
        stores.append(store)
        return Members(store, node=node, namespace=NS, duration=DURATION, renew_deadline=DEADLINE)

    yield make
    for store in stores:
        store.close()


def calls(fake: FakeAPI) -> list[tuple[str, int]]:
    """The requests made on Leases, but the watch's lists and watches."""
    return [
        (r.verb, r.code)
        for r in fake.requests
        if r.resource == "leases" and r.verb not in ("list", "watch")
    ]


def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_kubernetes_store_the_same_membership_through_the_api(
    fake: FakeAPI, kube_agents: Callable[[str], Members]
) -> None:
    a, b = kube_agents("a"), kube_agents("b")
    assert a.publish(A_SAYS, 0.0) and b.publish(B_SAYS, 0.0)
    until(lambda: a.members(0.1) == {"a": A_SAYS, "b": B_SAYS}, "a sees both")
    until(lambda: b.members(0.1) == {"a": A_SAYS, "b": B_SAYS}, "b sees both")
    lease = fake.get("leases", "lbroute-node-b", NS)
    assert lease is not None
    assert lease["metadata"]["labels"] == {MEMBER_LABEL: MEMBER_LABEL_VALUE}
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseDurationSeconds"] == DURATION

    fake.clear_requests()
    for t in (0.5, 1.0, 1.5):
        assert a.publish(A_SAYS, t)
    assert calls(fake) == [("update", 200)] * 3, "one request per renewal"
    until(lambda: a.members(1.6)["a"].alive, "a's latest renewal shown back")
    assert not a.members(3.0)["b"].alive, "b stopped renewing two seconds ago on a's clock"

    b.withdraw()
    assert fake.get("leases", "lbroute-node-b", NS) is None
    until(lambda: set(a.members(3.0)) == {"a"}, "b gone at once")


def test_kubernetes_store_keeps_others_writes_and_recreates_a_deleted_lease(
    fake: FakeAPI, kube_agents: Callable[[str], Members]
) -> None:
    a = kube_agents("a")
    assert a.publish(A_SAYS, 0.0)
    lease = fake.get("leases", "lbroute-node-a", NS)
    assert lease is not None
    lease["metadata"]["labels"]["team"] = "net"
    lease["metadata"].setdefault("annotations", {})["note"] = "kept"
    fake.put("leases", lease, NS)
    fake.clear_requests()
    assert a.publish(Membership(), 0.5), "409 on our version: read again, write onto it"
    assert calls(fake) == [("update", 409), ("get", 200), ("update", 200)]
    lease = fake.get("leases", "lbroute-node-a", NS)
    assert lease is not None
    assert lease["metadata"]["labels"] == {MEMBER_LABEL: MEMBER_LABEL_VALUE, "team": "net"}
    assert lease["metadata"]["annotations"] == {
        "note": "kept",
        LOCAL_SUBNETS_ANNOTATION: "",
        LOCAL_HOLDING_ANNOTATION: "",
    }
    fake.remove("leases", "lbroute-node-a", NS)
    assert a.publish(A_SAYS, 1.0), "deleted by someone: created again"
    assert fake.get("leases", "lbroute-node-a", NS) is not None


def test_kubernetes_store_reports_a_hostile_lease_and_reads_the_rest(
    fake: FakeAPI, kube_agents: Callable[[str], Members]
) -> None:
    hostile = encode("c", A_SAYS, namespace=NS, duration=2, renewed=WHEN)
    hostile["spec"]["leaseDurationSeconds"] = 10**9
    fake.put("leases", hostile, NS)
    unlabelled = encode("d", A_SAYS, namespace=NS, duration=2, renewed=WHEN)
    del unlabelled["metadata"]["labels"]
    fake.put("leases", unlabelled, NS)
    a, b = kube_agents("a"), kube_agents("b")
    a.publish(A_SAYS, 0.0)
    b.publish(B_SAYS, 0.0)
    until(lambda: set(a.members(0.0)) == {"a", "b"}, "a sees b, not c nor d")
    assert [p.ref.name for p in a.problems] == ["lbroute-node-c"]
    assert a.problems[0].path == "spec.leaseDurationSeconds"


def test_deploy_rbac_allows_every_request_the_kubernetes_store_makes_and_no_more(
    fake: FakeAPI, kube_agents: Callable[[str], Members]
) -> None:
    perms = Permissions.load(ROOT / "deploy" / "rbac.yaml", namespace=NS, name="lbroute-agent")
    a, b = kube_agents("a"), kube_agents("b")
    a.publish(A_SAYS, 0.0)
    b.publish(B_SAYS, 0.0)
    fake.remove("leases", "lbroute-node-a", NS)
    a.publish(A_SAYS, 0.5)  # create after a 404
    lease = fake.get("leases", "lbroute-node-b", NS)
    assert lease is not None
    fake.put("leases", lease, NS)
    b.publish(B_SAYS, 0.5)  # read after a 409
    until(lambda: set(a.members(0.5)) == {"a", "b"}, "a sees b")
    a.withdraw()
    requests = [
        request_attributes(r.method, r.path, urllib.parse.urlencode(r.query)) for r in fake.requests
    ]
    assert [str(r) for r in requests if not perms.allows_request(r)] == []
    used = {r.verb for r in requests if r.resource == "leases" and r.namespace == NS}
    (rule,) = [
        rule
        for role in load_objects(ROOT / "deploy" / "rbac.yaml")
        if role["kind"] == "Role"
        for rule in role["rules"]
        if "leases" in rule["resources"]
    ]
    assert set(rule["verbs"]) == used == {"get", "list", "watch", "create", "update", "delete"}
