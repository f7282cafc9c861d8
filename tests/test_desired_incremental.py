"""The desired state kept from pass to pass (nodeagent.desired.DesiredTracker) is the
desired state computed from scratch, after every change.

Random runs over a model with every kind of group that changes what an address becomes
(aggregates, host ranges, weights, BGP classes, withdrawWithoutEndpoints, a group for
another rack, a local group): Services added, edited (another object, as the sources hand
over), deleted, shared addresses, classes that disagree, endpoints that come and go.
After each step the tracker's whole state, its problems, and the changes it reported
must be what :func:`desired_state` and a diff of two full states give.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest

from lbroute.model import api
from lbroute.model.endpoints import ReadyCounter, nodes_of
from lbroute.model.errors import ObjectRef
from lbroute.model.service import Service, parse_service
from nodeagent.desired import (
    AnnouncedByService,
    Announcement,
    DesiredState,
    DesiredTracker,
    LocalAnnounced,
    desired_state,
)
from nodeagent.local.plan import local_inputs
from tests.test_desired import group

NS = "lbroute"
NODE = "node-a"
CLASSES = {"premium": {"communities": ["64512:1"]}, "backup": {"localPref": 50}}


MODEL = api.load(
    [
        group("web", [{"cidr": "192.0.2.0/26"}, {"cidr": "2001:db8::/120"}]),
        group("hosts", [{"range": "198.51.100.10-198.51.100.30"}]),
        group("weighted", [{"cidr": "203.0.113.0/27"}], bgp={"weightByEndpoints": True}),
        group("tiers", [{"cidr": "203.0.113.64/27"}], bgp={"classes": CLASSES}),
        group("gone", [{"cidr": "203.0.113.128/27"}], withdrawWithoutEndpoints=True),
        group("rack2", [{"cidr": "10.99.0.0/27"}], nodeSelector={"matchLabels": {"rack": "r2"}}),
        group("flat", [{"cidr": "10.98.0.0/27"}], announce="local"),
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {"rack": "r1"}}},
    ]
)
POOLS: list[tuple[str, int, int]] = [
    ("192.0.2.{}", 1, 62),
    ("2001:db8::{:x}", 1, 250),
    ("198.51.100.{}", 10, 30),
    ("203.0.113.{}", 1, 30),
    ("203.0.113.{}", 65, 94),
    ("203.0.113.{}", 129, 158),
    ("10.99.0.{}", 1, 30),
    ("10.98.0.{}", 1, 30),
    ("172.16.0.{}", 1, 5),  # in no pool
]


def random_address(rng: random.Random, taken: list[str]) -> str:
    if taken and rng.random() < 0.25:  # share one another Service has
        return rng.choice(taken)
    pattern, low, high = rng.choice(POOLS)
    return pattern.format(rng.randint(low, low + min(high - low, 6)))


def service_object(rng: random.Random, name: str, taken: list[str]) -> dict[str, Any]:
    annotations = {}
    if rng.random() < 0.3:
        annotations["lbroute.io/bgp-class"] = rng.choice(["premium", "backup", "gold"])
    ips = [random_address(rng, taken) for _ in range(rng.choice([1, 1, 1, 2]))]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "lbroute.io/lbroute",
            "externalTrafficPolicy": rng.choice(["Cluster", "Local"]),
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


def slice_object(rng: random.Random, name: str) -> dict[str, Any]:
    nodes = rng.sample(["node-a", "node-a", "node-b", "node-c"], rng.randint(0, 3))
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "addressType": "IPv4",
        "metadata": {
            "name": f"{name}-x",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": name},
        },
        "endpoints": [
            {"addresses": [f"10.244.{i}.{rng.randint(1, 200)}"], "nodeName": n,
             "conditions": {"ready": rng.random() < 0.8}}
            for i, n in enumerate(nodes)
        ],
    }  # fmt: skip


def parse(obj: Mapping[str, Any]) -> Service:
    service = parse_service(obj, default_class=False)
    assert service is not None
    return service


def same(got: DesiredState, want: DesiredState) -> None:
    assert [_entry(a) for a in got.announcements] == [_entry(a) for a in want.announcements]
    assert got.problems == want.problems


def _entry(a: Announcement) -> tuple[str, str, tuple[str, ...], int, str | None]:
    return (
        str(a.interface),
        a.group.name,
        tuple(s.name for s in a.services),
        a.weight,
        a.bgp_class.name if a.bgp_class else None,
    )


@pytest.mark.parametrize("seed", range(12))
def test_the_tracker_after_every_change_is_the_desired_state_from_scratch(seed: int) -> None:
    rng = random.Random(seed)
    objects: dict[str, dict[str, Any]] = {}
    slices: dict[str, dict[str, Any]] = {}
    services: dict[str, Service] = {}
    counter = ReadyCounter()
    tracker = DesiredTracker(NODE)
    for i in range(20):
        name = f"s{i}"
        taken = [
            ip["ip"] for o in objects.values() for ip in o["status"]["loadBalancer"]["ingress"]
        ]
        objects[name] = service_object(rng, name, taken)
        slices[name] = slice_object(rng, name)
        services[name] = parse(objects[name])
    counts = counter.counts(slices.values())
    tracker.rebuild(MODEL, services.values(), nodes_of(counts), counts)
    last = desired_state(MODEL, services.values(), nodes_of(counts), NODE, counts)
    same(tracker.state(), last)
    names = 20
    locals_seen: set[object] = set()
    for _step in range(60):
        held = dict(services)
        for _ in range(rng.randint(1, 3)):
            what = rng.random()
            taken = [
                ip["ip"] for o in objects.values() for ip in o["status"]["loadBalancer"]["ingress"]
            ]
            if what < 0.3 or not objects:  # a new Service
                name = f"s{names}"
                names += 1
                objects[name] = service_object(rng, name, taken)
                slices[name] = slice_object(rng, name)
                services[name] = parse(objects[name])
            elif what < 0.55:  # edited: another object, another parse
                name = rng.choice(sorted(objects))
                objects[name] = service_object(rng, name, taken)
                services[name] = parse(objects[name])
            elif what < 0.7:  # deleted, its slice with it
                name = rng.choice(sorted(objects))
                del objects[name], slices[name], services[name]
            else:  # its endpoints changed
                name = rng.choice(sorted(slices))
                slices[name] = slice_object(rng, name)
        # as the sources hand them over: by identity, what is new and what went
        fresh = [s for n, s in services.items() if held.get(n) is not s]
        gone = [s for n, s in held.items() if services.get(n) is not s]
        before = {a.interface.ip: _entry(a) for a in last.announcements}
        old_counts = counts
        counts = counter.counts(slices.values())
        dirty = {r for r in old_counts.keys() | counts.keys() if old_counts.get(r) != counts.get(r)}
        changes = tracker.update(fresh, gone, dirty, nodes_of(counts), counts)
        last = desired_state(MODEL, services.values(), nodes_of(counts), NODE, counts)
        same(tracker.state(), last)
        # what the reporter reads: each Service's addresses, in the desired state's order
        by_service = {
            ref: tuple(map(str, interfaces)) for ref, interfaces in last.by_service().items()
        }
        announced = AnnouncedByService(tuple(tracker.announced.values()))
        assert dict(announced) == by_service
        etp_local = {s.ref for s in services.values() if s.local}
        reported = LocalAnnounced(tuple(tracker.local_traffic.values()), announced)
        assert set(reported) == etp_local & by_service.keys()
        # the local address loop reads the Services the tracker keeps for local pools
        ready = nodes_of(counts)
        local = local_inputs(MODEL, tracker.local.values(), ready, node=NODE)
        assert local == local_inputs(MODEL, services.values(), ready, node=NODE)
        locals_seen.update(a.address for a in local.addresses)
        after = {a.interface.ip: _entry(a) for a in last.announcements}
        moved = {ip for ip in before.keys() | after.keys() if before.get(ip) != after.get(ip)}
        assert set(changes) == moved
        for ip, (old, new) in changes.items():
            assert (old and _entry(old)) == before.get(ip)
            assert (new and _entry(new)) == after.get(ip)
    assert locals_seen  # the runs do put Services on local pools


def test_an_update_touches_only_the_addresses_of_what_changed() -> None:
    rng = random.Random(7)
    objects = {f"s{i}": service_object(rng, f"s{i}", []) for i in range(200)}
    services = {name: parse(o) for name, o in objects.items()}
    tracker = DesiredTracker(NODE)
    tracker.rebuild(MODEL, services.values(), {})
    kept = dict(tracker.announced)
    edited = dict(objects["s5"], status={"loadBalancer": {"ingress": [{"ip": "198.51.100.29"}]}})
    new = parse(edited)
    changes = tracker.update([new], [services["s5"]], [], {})
    untouched = {ip for ip in kept if ip not in changes}
    # every other announcement is the very object it was: nothing else was done again
    assert all(tracker.announced[ip] is kept[ip] for ip in untouched if ip in tracker.announced)
    assert {str(ip) for ip in changes} <= {str(a) for a in services["s5"].addresses} | {
        "198.51.100.29"
    }


def test_a_rebuild_follows_another_model() -> None:
    tracker = DesiredTracker(NODE)
    tracker.rebuild(MODEL, [], {})
    assert tracker.current(MODEL)
    assert not tracker.current(api.load([]))
    ref = ObjectRef(kind="Service", namespace="default", name="x")
    assert tracker.update([], [], [ref], {}) == {}
