"""The allocator against the protocol-level fake API server (tests/fakeapi.py), through the
real ``kubernetes`` client.

A fresh cluster with ServiceGroups and Services of every kind ends with every Service
addressed as it should be (assignment, requested, shared, dual-stack, groups, failures),
with the allocated-from annotation, Events and the ServiceGroup status (valid against
its CRD, the agents' Valid condition untouched); a restart changes nothing; deletes,
type and class changes release; policy changes add and release a family; pool edits
never renumber; a ServiceGroup edited into an invalid one (or to overlap another) keeps
serving as its last valid version until it is deleted. Two allocators: only the lease
holder writes, the other takes over when it hands the lease back, and a leader whose
lease is taken stops writing at once.
Conflicts (409) on the Service and the ServiceGroup status are read again and retried.
"""

from __future__ import annotations

import copy
import datetime
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes
import pytest
import yaml

from allocator.controller import Allocator, Settings
from lbroute.kube.client import api_client
from lbroute.kube.reflector import Timing
from tests.fakeapi import FakeAPI, LoggedRequest
from tests.rbac import Permissions, load_objects, request_attributes
from tests.test_ipam import group, service

ROOT = Path(__file__).resolve().parents[1]
NS = "lbroute"
FAST = Timing(watch_seconds=(30, 40), backoff=(0.05, 0.2), connect_timeout=2)
WRITES = ("create", "update", "patch", "delete")
Obj = dict[str, Any]


def settings(identity: str, **kwargs: Any) -> Settings:
    fast: dict[str, Any] = {
        "lease_duration": 2.0,
        "renew_deadline": 1.0,
        "retry_period": 0.1,
        "timing": FAST,
        "debounce": 0.02,
        "retry": 0.1,
    }
    return Settings(identity=identity, namespace=NS, **{**fast, **kwargs})


class Running:
    """An allocator replica in a thread, with a User-Agent of its own."""

    def __init__(self, fake: FakeAPI, tmp_path: Path, identity: str, **kwargs: Any) -> None:
        client = api_client(str(fake.kubeconfig(tmp_path / f"kubeconfig-{identity}")))
        client.user_agent = f"lbroute-allocator/{identity}"
        self.agent = client.user_agent
        self.allocator = Allocator(client, settings(identity, **kwargs))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.allocator.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def leader(self) -> bool:
        return self.allocator.elector.is_leader()

    def end(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def pool_groups(running: Running) -> set[str]:
    """The groups whose pools the replica's metrics show (its last pass's)."""
    return {
        sample.labels["group"].rsplit("/", 1)[-1]
        for metric in running.allocator.metrics.registry.collect()
        if metric.name == "lbroute_allocator_pool_addresses"
        for sample in metric.samples
    }


def wait(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.02)


def ips(fake: FakeAPI, name: str, namespace: str = "default") -> list[str]:
    svc = fake.get("services", name, namespace)
    assert svc is not None, name
    return [i["ip"] for i in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or ()]


def annotation(fake: FakeAPI, name: str, key: str = "lbroute.io/allocated-from") -> str | None:
    svc = fake.get("services", name)
    assert svc is not None
    return (svc["metadata"].get("annotations") or {}).get(key)


def events(fake: FakeAPI, reason: str, name: str | None = None) -> list[Obj]:
    return [
        e
        for e in fake.objects("events.events.k8s.io")
        if e["reason"] == reason and name in (None, e["regarding"]["name"])
    ]


def writes(fake: FakeAPI, since: int = 0) -> list[LoggedRequest]:
    return [r for r in fake.requests[since:] if r.verb in WRITES and r.resource != "leases"]


def crd_schema() -> Obj:
    crd = yaml.safe_load((ROOT / "deploy/crds/servicegroups.yaml").read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


PUBLIC = group("public", "192.0.2.0/24", "2001:db8:1::/64", default=True)
CAMPUS = group("campus", "198.51.100.0/24")
BROKEN = group("broken", "203.0.113.1/24")


@pytest.fixture
def fake() -> Iterator[FakeAPI]:
    with FakeAPI(namespaces=("default", NS, "team")) as api:
        api.put_all([PUBLIC, CAMPUS, BROKEN])
        yield api


@pytest.fixture
def replicas(fake: FakeAPI, tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(identity: str = "a", **kwargs: Any) -> Running:
        r = Running(fake, tmp_path, identity, **kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        if r.thread.is_alive():
            r.end()


EVERY_KIND = [
    service("plain"),
    service("dual", families=["IPv4", "IPv6"], policy="RequireDualStack"),
    service("v6-first", families=["IPv6", "IPv4"], policy="PreferDualStack"),
    service("requested", addresses="192.0.2.100,2001:db8:1::100", families=["IPv4", "IPv6"],
            policy="RequireDualStack"),
    service("legacy", lb_ip="192.0.2.101"),
    service("dns-tcp", share="dns", ports=[("TCP", 53)], addresses="192.0.2.53"),
    service("dns-udp", share="dns", ports=[("UDP", 53)]),
    service("dns-tcp-too", share="dns", ports=[("TCP", 53)], addresses="192.0.2.53"),
    service("taken", addresses="192.0.2.100"),
    service("campus", group="campus"),
    service("nowhere", group="nowhere"),
    service("invalid", group="broken"),
    service("other-class", cls="example.com/other"),
    service("no-class", cls=None),
    service("team-web", namespace="team"),
]  # fmt: skip


def test_a_fresh_cluster_ends_with_every_service_addressed_and_a_restart_changes_nothing(
    fake: FakeAPI, replicas: Callable[..., Running]
) -> None:
    public = fake.get("servicegroups", "public", NS)
    assert public is not None
    valid = {"type": "Valid", "status": "True", "reason": "Valid", "message": "valid",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
    fake.put("servicegroups", {**public, "status": {"conditions": [valid]}}, NS)
    fake.put_all(copy.deepcopy(EVERY_KIND))
    first = replicas("first")
    wait(lambda: ips(fake, "team-web", "team") and ips(fake, "dns-udp"), "addresses")
    wait(lambda: first.allocator.passes >= 2 and not writes_pending(fake), "a quiet pass")
    want = {
        "plain": ["192.0.2.2"],
        "dual": ["192.0.2.1", "2001:db8:1::1"],
        "v6-first": ["2001:db8:1::2", "192.0.2.3"],
        "requested": ["192.0.2.100", "2001:db8:1::100"],
        "legacy": ["192.0.2.101"],
        "dns-tcp": ["192.0.2.53"],
        "dns-udp": ["192.0.2.53"],
        "dns-tcp-too": [],
        "taken": [],
        "campus": ["198.51.100.1"],
        "nowhere": [],
        "invalid": [],
        "other-class": [],
        "no-class": [],
    }
    got = {name: ips(fake, name) for name in want}
    assert got == want
    assert ips(fake, "team-web", "team") == ["192.0.2.4"]
    assert annotation(fake, "dual") == "public:192.0.2.0/24,2001:db8:1::/64"
    assert annotation(fake, "campus") == "campus:198.51.100.0/24"
    assert annotation(fake, "other-class") is None and annotation(fake, "nowhere") is None

    assigned = events(fake, "AddressAssigned", "dual")
    assert [e["note"] for e in assigned] == [
        "192.0.2.1, 2001:db8:1::1 assigned from ServiceGroup lbroute/public"
    ]
    assert assigned[0]["reportingController"] == "lbroute.io/allocator"
    dual = fake.get("services", "dual")
    assert dual is not None and assigned[0]["regarding"]["uid"] == dual["metadata"]["uid"]
    failed = {e["regarding"]["name"]: e["note"] for e in events(fake, "AllocationFailed")}
    assert set(failed) == {"dns-tcp-too", "taken", "nowhere", "invalid"}
    assert failed["taken"].startswith("RequestedTaken: metadata.annotations[lbroute.io/addresses]")
    assert "Service default/requested" in failed["taken"]
    assert failed["dns-tcp-too"].startswith("SharedIPClash: spec.ports: cannot share 192.0.2.53")
    assert "'nowhere' not found in namespace lbroute; valid: campus, public" in failed["nowhere"]
    assert "spec.pools[0].cidr" in failed["invalid"]
    assert all(e["type"] == "Warning" for e in events(fake, "AllocationFailed"))

    public = fake.get("servicegroups", "public", NS)
    assert public is not None
    jsonschema.validate(public, crd_schema())
    status = public["status"]
    assert status["allocated"] == {"ipv4": 7, "ipv6": 3}
    assert status["available"] == {"ipv4": 254 - 7, "ipv6": str(2**64 - 1 - 3)}, "> int64"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Valid"] == valid, "the agents' condition is left alone"
    assert conditions["Allocatable"]["status"] == "True"
    broken = fake.get("servicegroups", "broken", NS)
    assert broken is not None
    jsonschema.validate(broken, crd_schema())
    (allocatable,) = broken["status"]["conditions"]
    assert (allocatable["status"], allocatable["reason"]) == ("False", "Invalid")

    # A restart (another replica, nothing but the objects in common) writes nothing.
    first.end()
    before = {name: ips(fake, name) for name in want}
    mark = len(fake.requests)
    second = replicas("second")
    wait(lambda: second.allocator.passes >= 1, "a pass after the restart")
    assert [r for r in writes(fake, mark) if r.resource != "events"] == []
    assert {name: ips(fake, name) for name in want} == before


def writes_pending(fake: FakeAPI) -> bool:
    """A write in the last 0.2 s (the allocator is still busy)."""
    count = len(writes(fake))
    time.sleep(0.2)
    return len(writes(fake)) != count


def test_delete_type_and_class_changes_release_and_addresses_are_reused(
    fake: FakeAPI, replicas: Callable[..., Running]
) -> None:
    fake.put_all([service("a"), service("b"), service("c")])
    replicas()
    wait(lambda: ips(fake, "c") == ["192.0.2.3"], "three addresses")
    fake.remove("services", "a")
    fake.put("services", service("d"))
    wait(lambda: ips(fake, "d") == ["192.0.2.1"], "the deleted Service's address reused")

    b = fake.get("services", "b")
    assert b is not None
    b["spec"]["type"] = "ClusterIP"
    fake.put("services", b)
    c = fake.get("services", "c")
    assert c is not None
    c["spec"]["loadBalancerClass"] = "example.com/other"
    fake.put("services", c)
    wait(lambda: ips(fake, "b") == [] and ips(fake, "c") == [], "released")
    wait(lambda: annotation(fake, "b") is None and annotation(fake, "c") is None, "annotations")
    assert [e["note"] for e in events(fake, "AddressReleased", "b")] == ["192.0.2.2 released"]
    fake.put_all([service("e"), service("f")])
    wait(lambda: sorted(ips(fake, "e") + ips(fake, "f")) == ["192.0.2.2", "192.0.2.3"], "reuse")


def label(fake: FakeAPI, name: str) -> str | None:
    svc = fake.get("services", name)
    assert svc is not None
    return (svc["metadata"].get("labels") or {}).get("lbroute.io/allocated-group")


def test_services_with_addresses_carry_their_groups_label_for_the_agents_selector(
    fake: FakeAPI, replicas: Callable[..., Running], tmp_path: Path
) -> None:
    # "old" was given its address by an allocator that did not label (an upgrade).
    old = service("old", ingress=["192.0.2.9"], allocated_from="public:192.0.2.0/24")
    del old["metadata"]["labels"]
    fake.put_all([old, service("new"), service("campus", group="campus")])
    replicas()
    wait(lambda: label(fake, "new") == "public", "new labeled")
    assert ips(fake, "new") == ["192.0.2.1"]
    wait(lambda: label(fake, "old") == "public", "old labeled, nothing else changed")
    assert ips(fake, "old") == ["192.0.2.9"] and events(fake, "AddressAssigned", "old") == []
    wait(lambda: label(fake, "campus") == "campus", "campus labeled")

    def says_labeled(name: str) -> bool:
        status = (fake.get("servicegroups", name, NS) or {}).get("status") or {}
        return status.get("labeledServices") is True

    wait(lambda: says_labeled("public") and says_labeled("campus"), "the groups say so")
    # Taken off by hand: put back. No longer lbroute's: taken off with the addresses.
    svc = fake.get("services", "new")
    assert svc is not None
    svc["metadata"]["labels"] = {"team": "web"}
    fake.put("services", svc)
    wait(lambda: label(fake, "new") == "public", "labeled again")
    svc = fake.get("services", "old")
    assert svc is not None
    svc["spec"]["type"] = "ClusterIP"
    fake.put("services", svc)
    wait(lambda: ips(fake, "old") == [] and label(fake, "old") is None, "released, unlabeled")
    # A label selector finds exactly lbroute's Services (the agents' watch).
    core = kubernetes.client.CoreV1Api(api_client(str(fake.kubeconfig(tmp_path / "k"))))
    found = core.list_service_for_all_namespaces(label_selector="lbroute.io/allocated-group")
    assert sorted(str(o.metadata and o.metadata.name) for o in found.items) == ["campus", "new"]


def test_a_change_of_family_policy_adds_and_releases_the_right_family(
    fake: FakeAPI, replicas: Callable[..., Running]
) -> None:
    fake.put("services", service("s", families=["IPv4"], policy="SingleStack"))
    replicas()
    wait(lambda: ips(fake, "s") == ["192.0.2.1"], "IPv4")
    s = fake.get("services", "s")
    assert s is not None
    s["spec"].update(ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="RequireDualStack")
    fake.put("services", s)
    wait(lambda: ips(fake, "s") == ["192.0.2.1", "2001:db8:1::1"], "IPv6 added, IPv4 kept")
    s = fake.get("services", "s")
    assert s is not None
    s["spec"].update(ipFamilies=["IPv6"], ipFamilyPolicy="SingleStack")
    fake.put("services", s)
    wait(lambda: ips(fake, "s") == ["2001:db8:1::1"], "IPv4 released, IPv6 kept")
    wait(lambda: annotation(fake, "s") == "public:2001:db8:1::/64", "the annotation follows")


def test_a_shrunk_pool_renumbers_nothing_and_reports_what_lies_outside(
    fake: FakeAPI, replicas: Callable[..., Running]
) -> None:
    fake.put_all([service(f"s{i}") for i in range(3)])
    replicas()
    wait(lambda: ips(fake, "s2") == ["192.0.2.3"], "three addresses")
    fake.put("servicegroups", group("public", "192.0.2.1-192.0.2.2", "2001:db8:1::/64",
                                    default=True), NS)  # fmt: skip
    (outside,) = wait(lambda: events(fake, "AddressOutsidePool"), "the report")
    assert outside["regarding"]["name"] == "s2" and outside["type"] == "Warning"
    assert "192.0.2.3 lies outside every pool of ServiceGroup lbroute/public" in outside["note"]
    assert [ips(fake, f"s{i}") for i in range(3)] == [["192.0.2.1"], ["192.0.2.2"], ["192.0.2.3"]]

    def exhausted() -> bool:
        obj = fake.get("servicegroups", "public", NS)
        conditions = ((obj or {}).get("status") or {}).get("conditions") or ()
        return any(c["reason"] == "Exhausted" for c in conditions)

    wait(exhausted, "the Exhausted condition")
    fake.put("services", service("new", families=["IPv4"]))
    (failed,) = wait(lambda: events(fake, "AllocationFailed", "new"), "no address left")
    assert failed["note"].startswith("PoolExhausted: no free ipv4 address left")


def allocatable(fake: FakeAPI, name: str) -> Obj:
    obj = fake.get("servicegroups", name, NS) or {}
    conditions = (obj.get("status") or {}).get("conditions") or ()
    return next((dict(c) for c in conditions if c["type"] == "Allocatable"), {})


def allocated(fake: FakeAPI, name: str) -> object:
    obj = fake.get("servicegroups", name, NS) or {}
    return (obj.get("status") or {}).get("allocated")


def test_a_group_edited_into_an_invalid_one_keeps_serving_as_its_last_valid_version(
    fake: FakeAPI, replicas: Callable[..., Running]
) -> None:
    fake.put_all([service("a"), service("b")])
    allocator = replicas()
    wait(lambda: ips(fake, "b") == ["192.0.2.2"], "two addresses")
    wait(lambda: allocatable(fake, "public").get("status") == "True", "Allocatable")

    # A typo: the default group's IPv4 pool becomes a /33.
    fake.put("servicegroups", group("public", "192.0.2.0/33", "2001:db8:1::/64",
                                    default=True), NS)  # fmt: skip
    fake.put("services", service("c"))
    wait(lambda: ips(fake, "c") == ["192.0.2.3"], "served from the last valid version")
    assert [ips(fake, n) for n in ("a", "b")] == [["192.0.2.1"], ["192.0.2.2"]]
    # The annotation (and label) are written just after the status: wait for them.
    wait(lambda: annotation(fake, "c") == "public:192.0.2.0/24", "c's annotation")
    assert events(fake, "AllocationFailed", "c") == []
    # The group's status is written after the Service's annotation: wait for it.
    wait(lambda: allocated(fake, "public") == {"ipv4": 3, "ipv6": 0}, "status counts c")
    assert allocatable(fake, "public")["status"] == "True", "still allocatable"

    # Another group edited to overlap it loses, although its name comes first.
    fake.put("servicegroups", group("campus", "192.0.2.128/25"), NS)
    fake.put("services", service("d"))
    wait(lambda: ips(fake, "d") == ["192.0.2.4"], "public keeps serving")
    fake.put("services", service("in-campus", group="campus"))
    wait(lambda: ips(fake, "in-campus") == ["198.51.100.1"], "campus as it was")

    # Deleted: its Services keep what they hold, a new one gets nothing. The Service
    # and ServiceGroup watches are separate streams: e is created once the allocator
    # has seen the deletion (its pools leave the metrics), not before.
    assert "public" in pool_groups(allocator)
    fake.remove("servicegroups", "public", NS)
    wait(lambda: "public" not in pool_groups(allocator), "the deletion seen")
    fake.put("services", service("e"))
    (failed,) = wait(lambda: events(fake, "AllocationFailed", "e"), "no group any more")
    assert failed["note"].startswith("NoServiceGroup: ")
    assert ips(fake, "e") == [] and ips(fake, "a") == ["192.0.2.1"]


def test_a_group_serving_as_its_last_valid_version_says_so_and_is_not_called_skipped(
    fake: FakeAPI, replicas: Callable[..., Running]
) -> None:
    fake.put("services", service("a"))
    replicas()
    wait(lambda: allocated(fake, "public") == {"ipv4": 1, "ipv6": 0}, "one address")
    assert allocatable(fake, "public")["message"].startswith("ipv4: 1 allocated")

    # A typo: its condition says which version serves, and what is wrong with the new one.
    fake.put("servicegroups", group("public", "192.0.2.0/33", "2001:db8:1::/64",
                                    default=True), NS)  # fmt: skip
    # (The allocator keeps no generation: the version is named by when it was read.)
    serving = r"serving as its last valid version \(read at \d{4}-\d\d-\d\dT[\d:]{8}Z\): "
    condition = wait(
        lambda: (
            (c := allocatable(fake, "public"))
            and re.match(serving + r"spec\.pools\[0\]\.cidr: ", c.get("message", ""))
            and c
        ),
        "the condition says it serves as its last valid version",
    )
    assert condition["status"] == "True" and condition["reason"] == "Allocatable"
    assert "'192.0.2.0/33'" in condition["message"]
    assert condition["message"].endswith("; ipv4: 1 allocated, 253 free; ipv6: 0 allocated, "
                                         f"{2**64 - 1} free")  # fmt: skip

    # A group edited to overlap it keeps serving as it was: not "skipped".
    fake.put("servicegroups", group("campus", "192.0.2.128/25"), NS)
    campus = wait(
        lambda: (c := allocatable(fake, "campus")).get("message", "").startswith("serving") and c,
        "campus says it serves as its last valid version",
    )
    assert campus["status"] == "True"
    assert re.fullmatch(
        serving + r"spec\.pools\[0\]: pool 192\.0\.2\.128/25 overlaps pool 192\.0\.2\.0/24 of "
        r"ServiceGroup lbroute/public; pools of different ServiceGroups must not overlap; "
        r"ipv4: 0 allocated, \d+ free",
        campus["message"],
    ), campus["message"]
    assert "skipped" not in campus["message"]
    fake.put("services", service("in-campus", group="campus"))
    wait(lambda: ips(fake, "in-campus") == ["198.51.100.1"], "campus as it was")

    # Fixed: the condition is plain again.
    fake.put("servicegroups", PUBLIC, NS)
    wait(
        lambda: allocatable(fake, "public").get("message", "").startswith("ipv4: 1 allocated"),
        "the fixed group's condition no longer speaks of its last valid version",
    )


def test_only_the_leader_writes_and_the_other_takes_over_when_it_leaves(
    fake: FakeAPI, replicas: Callable[..., Running]
) -> None:
    a = replicas("a")
    wait(a.leader, "a leads")
    b = replicas("b")
    fake.put_all([service(f"s{i}") for i in range(5)])
    wait(lambda: ips(fake, "s4"), "addresses")
    time.sleep(0.5)  # b watches, renews its view of the lease, and must not write
    assert not b.leader()
    assert {r.user_agent for r in writes(fake)} == {a.agent}
    assert {r.user_agent for r in fake.requests if r.resource == "leases" and r.verb in WRITES} == {
        a.agent
    }
    a.end()
    wait(b.leader, "b takes over at once: a handed the lease back", timeout=3)
    mark = len(fake.requests)
    fake.put("services", service("late"))
    wait(lambda: ips(fake, "late") == ["192.0.2.6"], "b allocates")
    assert {r.user_agent for r in writes(fake, mark)} == {b.agent}
    lease = fake.get("leases", "lbroute-allocator", NS)
    assert lease is not None and lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 0, "a handed it back: no takeover"


def test_a_leader_whose_lease_is_taken_stops_writing_at_once(
    fake: FakeAPI, replicas: Callable[..., Running]
) -> None:
    a = replicas("a")
    wait(lambda: a.allocator.passes >= 1, "a leads and has made its first pass")
    lease = fake.get("leases", "lbroute-allocator", NS)
    assert lease is not None
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease["spec"].update(holderIdentity="intruder", renewTime=now, leaseDurationSeconds=60)
    fake.put("leases", lease, NS)
    wait(lambda: not a.leader(), "a notices", timeout=1)
    mark = len(fake.requests)
    fake.put("services", service("s"))
    time.sleep(1.0)
    assert ips(fake, "s") == []
    assert writes(fake, mark) == []
    leases = [r for r in fake.requests[mark:] if r.resource == "leases"]
    assert leases and all(r.verb == "get" for r in leases), "it only looks"


def test_a_conflicting_service_write_is_read_again_and_retried(
    fake: FakeAPI, replicas: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.put("services", service("s"))
    a = replicas()
    core = a.allocator.core
    original = core.read_namespaced_service
    raced: list[bool] = []

    def racing_read(*args: Any, **kwargs: Any) -> Any:
        response = original(*args, **kwargs)
        if not raced:  # someone labels the Service between our read and our write
            raced.append(True)
            svc = fake.get("services", "s")
            assert svc is not None
            svc["metadata"].setdefault("labels", {})["team"] = "web"
            fake.put("services", svc)
        return response

    monkeypatch.setattr(core, "read_namespaced_service", racing_read)
    wait(lambda: ips(fake, "s") == ["192.0.2.1"], "written after the conflict")
    status_writes = [q for q in fake.requests if q.resource == "services" and q.verb == "patch"]
    assert [q.code for q in status_writes if q.subresource == "status"][:2] == [409, 200]
    wait(lambda: annotation(fake, "s") == "public:192.0.2.0/24", "the annotation")
    svc = fake.get("services", "s")  # the label comes with the annotation
    assert svc is not None and svc["metadata"]["labels"] == {
        "team": "web",
        "lbroute.io/allocated-group": "public",
    }, "theirs kept, ours added"


def test_a_service_that_changed_meaning_meanwhile_is_left_to_the_next_pass(
    fake: FakeAPI, replicas: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.put("services", service("s"))
    a = replicas()
    core = a.allocator.core
    original = core.read_namespaced_service
    raced: list[bool] = []

    def racing_read(*args: Any, **kwargs: Any) -> Any:
        if not raced:  # it asks for another address before our read
            raced.append(True)
            svc = fake.get("services", "s")
            assert svc is not None
            svc["metadata"]["annotations"] = {"lbroute.io/addresses": "192.0.2.77"}
            fake.put("services", svc)
        return original(*args, **kwargs)

    monkeypatch.setattr(core, "read_namespaced_service", racing_read)
    wait(lambda: ips(fake, "s") == ["192.0.2.77"], "the new request, never 192.0.2.1")
    (assigned,) = wait(lambda: events(fake, "AddressAssigned", "s"), "the event")
    assert assigned["note"] == "192.0.2.77 assigned from ServiceGroup lbroute/public"
    assert events(fake, "AddressReleased", "s") == [], "192.0.2.1 was never written"


def test_a_conflicting_service_group_status_write_is_retried_keeping_the_other_writer(
    fake: FakeAPI, replicas: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.put("services", service("s"))
    a = replicas()
    custom = a.allocator.custom
    original = custom.get_namespaced_custom_object_status
    raced: list[bool] = []

    def racing_get(*args: Any, **kwargs: Any) -> Any:
        response = original(*args, **kwargs)
        if not raced and args[4] == "public":  # an agent writes its condition meanwhile
            raced.append(True)
            obj = fake.get("servicegroups", "public", NS)
            assert obj is not None
            valid = {"type": "Valid", "status": "True", "reason": "Valid", "message": "valid",
                     "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
            obj["status"] = {**(obj.get("status") or {}), "conditions": [valid]}
            fake.put("servicegroups", obj, NS)
        return response

    monkeypatch.setattr(custom, "get_namespaced_custom_object_status", racing_get)

    def both() -> bool:
        obj = fake.get("servicegroups", "public", NS)
        types = {c["type"] for c in ((obj or {}).get("status") or {}).get("conditions") or ()}
        return types == {"Valid", "Allocatable"}

    wait(both, "both conditions")
    codes = [q.code for q in fake.requests if q.resource == "servicegroups" and q.verb == "patch"]
    assert 409 in codes


def test_deploy_rbac_allows_every_request_the_allocator_makes_and_no_rule_is_unused(
    fake: FakeAPI, replicas: Callable[..., Running]
) -> None:
    perms = Permissions.load(ROOT / "deploy" / "allocator.yaml", namespace=NS,
                             name="lbroute-allocator")  # fmt: skip
    fake.put_all([service("a"), service("gone", type_="ClusterIP", ingress=["192.0.2.9"],
                                        allocated_from="public:192.0.2.0/24"),
                  service("lost", group="nowhere")])  # fmt: skip
    # A group whose addresses come from NetBox: the allocator reads its token's Secret
    # (NetBox itself is not there: the Service waits, reported).
    from tests.test_netbox_unit import nb_group

    nb = nb_group("nb", ["203.0.113.64/29"], default=False, url="http://127.0.0.1:9")
    token = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "netbox-token",
             "namespace": NS}, "stringData": {"token": "0123456789abcdef"}}  # fmt: skip
    fake.put_all([nb, token, service("from-netbox", group="nb")])
    from tests.test_peer_status import peer_status_objects

    fake.put_all(peer_status_objects())  # a Peer whose status the allocator writes
    first = replicas("first")
    wait(lambda: ips(fake, "a") and not ips(fake, "gone"), "assigned and released")
    wait(lambda: (fake.get("peers", "upstream", NS) or {}).get("status"), "peer status")
    wait(lambda: annotation(fake, "a") and annotation(fake, "gone") is None, "annotations")
    wait(lambda: events(fake, "AllocationFailed"), "a failure reported")
    wait(lambda: (fake.get("servicegroups", "public", NS) or {}).get("status"), "group status")
    wait(lambda: events(fake, "AllocationFailed", "from-netbox"), "NetBox unreachable reported")
    first.end()  # hands the lease back
    second = replicas("second")  # reports the same failure again: counted in its series
    wait(lambda: (events(fake, "AllocationFailed") or [{}])[0].get("series"), "series")
    second.end()
    requests = [
        request_attributes(r.method, r.path, urllib.parse.urlencode(r.query))
        for r in fake.requests
        if r.user_agent in (first.agent, second.agent)
    ]
    denied = [str(r) for r in requests if not perms.allows_request(r)]
    assert denied == []
    rules = [
        (role["kind"], rule)
        for role in load_objects(ROOT / "deploy" / "allocator.yaml")
        if role["kind"] in ("Role", "ClusterRole")
        for rule in role["rules"]
    ]
    for kind, rule in rules:
        for verb in rule["verbs"]:
            single = Permissions.from_objects(
                [
                    {**role, "rules": [{**rule, "verbs": [verb]}]}
                    if role["kind"] == kind
                    else {**role, "rules": []}
                    if role["kind"] in ("Role", "ClusterRole")
                    else role
                    for role in load_objects(ROOT / "deploy" / "allocator.yaml")
                ],
                namespace=NS,
                name="lbroute-allocator",
            )
            assert any(single.allows_request(r) for r in requests), (kind, verb, rule)
