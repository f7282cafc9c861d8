"""The incremental allocator (allocator/ipam/incremental.py) against full passes.

Randomized, with fixed seeds: sequences of Services added, edited (requested addresses,
sharing key, group, IP families and policy, ports, traffic policy, creation time, type
and class, status as the writer writes it or as someone else does), deleted, and
occasional ServiceGroup changes (pools shrunk or grown, a group made invalid, the
default moved); after every step the incremental pass must equal a full
:func:`~allocator.ipam.allocate` over the same inputs (assignments, failures in order,
addresses outside the pools, counts), its list of changes must be the full pass's, and
its delta must name every Service whose assignment differs from the pass before.

Focused cases for what is easy to get wrong: a deleted Service's address going to a
Service that asked for it or waits for a free one, a conflict's loser when the winner
goes, sharing keys, a writer's status landing, group changes and the fallbacks.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable
from typing import Any

import pytest

from allocator.ipam import Allocation, Reason, allocate, invalid_groups
from allocator.ipam.incremental import Incremental
from allocator.service import LBService, parse_service, with_allocation
from lbroute.model import api
from lbroute.model.errors import ObjectRef
from tests.test_ipam import group, service
from tests.test_netbox_unit import nb_group

Obj = dict[str, Any]

GROUP_SETS: list[list[Obj]] = [
    [
        group("a", "10.0.0.0/29", "fd00::/125", default=True),
        group("b", "10.0.1.0-10.0.1.3"),
        group("c", "fd00:1::/126"),
    ],
    [  # a shrunk, b grown
        group("a", "10.0.0.0/30", "fd00::/126", default=True),
        group("b", "10.0.1.0-10.0.1.7"),
        group("c", "fd00:1::/126"),
    ],
    [  # b invalid, c the default
        group("a", "10.0.0.0/29", "fd00::/125"),
        group("b", "10.0.1.1/29"),
        group("c", "fd00:1::/126", "10.0.2.0/31", default=True),
    ],
    [  # no default, a lost its IPv6
        group("a", "10.0.0.0/29"),
        group("b", "10.0.1.0-10.0.1.3"),
    ],
]
ADDRESSES = [
    "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.6", "10.0.1.0", "10.0.1.2", "10.0.2.1",
    "10.9.9.9", "fd00::1", "fd00::2", "fd00:1::1", "fd00:1::3",
]  # fmt: skip
FAMILIES = [
    None,
    (["IPv4"], "SingleStack"),
    (["IPv6"], "SingleStack"),
    (["IPv4", "IPv6"], "PreferDualStack"),
    (["IPv6", "IPv4"], "RequireDualStack"),
    (None, "RequireDualStack"),
    (["IPv4"], "Bogus"),
]
PORTS = [(("TCP", 80),), (("TCP", 443),), (("UDP", 53), ("TCP", 53)), (("TCP", 80), ("TCP", 8080))]
CREATED = [None, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"]
NAMES = [(f"ns{i % 2}", f"s{i}") for i in range(14)]


def random_service(rng: random.Random, namespace: str, name: str) -> Obj:
    fam = rng.choice(FAMILIES)
    return service(
        name,
        namespace=namespace,
        group=rng.choice([None, None, "a", "b", "c", "zz"]),
        addresses=rng.choice([None, None, None, *ADDRESSES, "10.0.0.1,fd00::1", "nope"]),
        share=rng.choice([None, None, "k1", "k2"]),
        ports=rng.choice(PORTS),
        families=fam[0] if fam else None,
        policy=fam[1] if fam else None,
        ingress=rng.choice([(), (), (rng.choice(ADDRESSES),), ("10.0.0.1", "fd00::1")]),
        local={"app": rng.choice(["x", "y"])} if rng.random() < 0.15 else None,
        created=rng.choice(CREATED),
    )


def edit(rng: random.Random, obj: Obj, result: Allocation) -> Obj:
    """One change to a Service, of the kinds users and the writer make."""
    out = copy.deepcopy(obj)
    meta, spec = out["metadata"], out["spec"]
    notes = meta.setdefault("annotations", {})
    kind = rng.randrange(11)
    if kind == 0:
        notes["lbroute.io/addresses"] = rng.choice(ADDRESSES)
    elif kind == 1:
        notes.pop("lbroute.io/addresses", None)
    elif kind == 2:
        key = rng.choice([None, "k1", "k2"])
        notes.pop("lbroute.io/allow-shared-ip", None)
        if key:
            notes["lbroute.io/allow-shared-ip"] = key
    elif kind == 3:
        notes["lbroute.io/service-group"] = rng.choice(["a", "b", "c", "zz"])
    elif kind == 4:
        fam = rng.choice(FAMILIES[1:])
        assert fam is not None
        spec["ipFamilies"], spec["ipFamilyPolicy"] = fam
    elif kind == 5:
        spec["ports"] = [{"protocol": p, "port": n} for p, n in rng.choice(PORTS)]
    elif kind == 6:
        spec["type"] = rng.choice(["ClusterIP", "LoadBalancer"])
    elif kind == 7:
        spec["loadBalancerClass"] = rng.choice(["other.io/lb", "lbroute.io/lbroute"])
    elif kind == 8:  # someone else writes the status
        out["status"] = {"loadBalancer": {"ingress": [{"ip": rng.choice(ADDRESSES)}]}}
    elif kind == 9:
        meta["creationTimestamp"] = rng.choice(CREATED[1:])
    else:  # the writer's writes land
        return written(out, result)
    return out


def written(obj: Obj, result: Allocation) -> Obj:
    ref = ObjectRef(
        kind="Service", namespace=obj["metadata"]["namespace"], name=obj["metadata"]["name"]
    )
    a = result.of(ref)
    if a is None:
        return obj
    return with_allocation(obj, a.addresses, a.allocated_from, label=a.label)


class Parsed:
    """Each Service parsed once per object, as the controller keeps them."""

    def __init__(self) -> None:
        self.cache: dict[int, tuple[Obj, LBService | None]] = {}

    def __call__(self, objects: Iterable[Obj]) -> list[LBService]:
        cache = {}
        out = []
        for obj in objects:
            hit = self.cache.get(id(obj))
            if hit is None or hit[0] is not obj:
                hit = (obj, parse_service(obj, default_class=False))
            cache[id(obj)] = hit
            if hit[1] is not None:
                out.append(hit[1])
        self.cache = cache
        return out


def both(
    inc: Incremental, groups: list[Obj], services: list[LBService]
) -> tuple[Allocation, Allocation]:
    model = api.load(groups)
    bad = invalid_groups(model.problems)
    full = allocate(model.service_groups, services, invalid_groups=bad)
    return inc.allocate(model.service_groups, services, invalid_groups=bad), full


def check(got: Allocation, full: Allocation, before: Allocation | None, token: object) -> None:
    assert got.assignments == full.assignments
    assert got.failures == full.failures
    assert got.outside == full.outside
    assert got.pools == full.pools
    assert got.groups == full.groups
    assert got == full
    assert got.changes() == full.changes()
    delta = got.delta
    if delta is None or before is None or delta.after is not token:
        return
    was = {a.ref: a for a in before.assignments}
    now = {a.ref: a for a in full.assignments}
    for ref in was.keys() | now.keys():
        if was.get(ref) != now.get(ref):
            assert ref in delta.services, ref
    for ref, a in delta.services.items():
        assert a == now.get(ref), ref


def run_sequence(seed: int, steps: int) -> Incremental:
    rng = random.Random(seed)
    inc = Incremental()
    parsed = Parsed()
    groups = GROUP_SETS[0]
    objects: dict[tuple[str, str], Obj] = {}
    result: Allocation | None = None
    token: object = None
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.04:
            groups = rng.choice(GROUP_SETS)
        elif roll < 0.30 or not objects:
            key = rng.choice(NAMES)
            objects[key] = random_service(rng, *key)
        elif roll < 0.42:
            del objects[rng.choice(sorted(objects))]
        elif roll < 0.55 and result is not None:  # the writer's writes land, some or all
            for a in result.changes()[: rng.randrange(1, 4)]:
                key = (a.ref.namespace, a.ref.name)
                if key in objects:
                    objects[key] = written(objects[key], result)
        elif result is not None:
            key = rng.choice(sorted(objects))
            objects[key] = edit(rng, objects[key], result)
        if rng.random() < 0.05:  # read again: equal objects, new ones
            objects = copy.deepcopy(objects)
        services = parsed(objects.values())
        rng.shuffle(services)
        got, full = both(inc, groups, services)
        check(got, full, result, token)
        result, token = got, got.delta.token if got.delta else None
    return inc


@pytest.mark.parametrize("seed", range(40))
def test_random_changes_give_what_a_full_pass_gives(seed: int) -> None:
    inc = run_sequence(seed, 150)
    assert inc.incremental > 100  # mostly incremental, not full passes in disguise


# -- focused cases ------------------------------------------------------------------------


class Cluster:
    """Service objects by name, passed to one Incremental and to full passes alike."""

    def __init__(self, groups: list[Obj]) -> None:
        self.groups = groups
        self.inc = Incremental()
        self.parsed = Parsed()
        self.objects: dict[str, Obj] = {}
        self.result: Allocation | None = None

    def step(self) -> Allocation:
        got, full = both(self.inc, self.groups, self.parsed(self.objects.values()))
        token = self.result.delta.token if self.result and self.result.delta else None
        check(got, full, self.result, token)
        self.result = got
        return got

    def land(self) -> Allocation:
        """The writer's writes land; the next pass changes nothing."""
        assert self.result is not None
        for a in self.result.changes():
            self.objects[a.ref.name] = written(self.objects[a.ref.name], self.result)
        got = self.step()
        assert got.changes() == []
        return got


def addresses(result: Allocation, name: str) -> list[str]:
    a = result.of(ObjectRef(kind="Service", namespace="default", name=name))
    return [str(x) for x in a.addresses] if a is not None else []


SMALL = [group("g", "10.0.0.0/30", default=True)]  # 10.0.0.1 and 10.0.0.2


def test_a_deleted_services_address_goes_to_the_service_that_asked_for_it() -> None:
    c = Cluster(SMALL)
    c.objects["a"] = service("a", created=CREATED[1])
    c.step()
    c.land()
    c.objects["b"] = service("b", addresses="10.0.0.1", created=CREATED[2])
    assert [f.reason for f in c.step().failures] == [Reason.REQUESTED_TAKEN]
    del c.objects["a"]
    got = c.step()  # 10.0.0.1 is no longer held: b's request is met at once
    assert addresses(got, "b") == ["10.0.0.1"] and not got.failures
    assert c.inc.incremental == 3 and c.inc.full == {"first": 1}


def test_a_service_waiting_for_a_free_address_gets_the_one_freed() -> None:
    c = Cluster(SMALL)
    for name in ("a", "b", "c"):
        c.objects[name] = service(name, created=CREATED[1 + "abc".index(name)])
    c.step()
    c.land()
    assert [f.reason for f in c.step().failures] == [Reason.EXHAUSTED]
    del c.objects["a"]
    assert addresses(c.step(), "c") == ["10.0.0.1"]
    c.land()


def test_a_conflicts_loser_keeps_its_address_once_the_winner_is_gone() -> None:
    c = Cluster([group("g", "10.0.0.0/29", default=True)])
    c.objects["old"] = service("old", ingress=["10.0.0.3"], created=CREATED[1])
    c.objects["young"] = service("young", ingress=["10.0.0.3"], created=CREATED[2])
    got = c.step()
    assert [f.reason for f in got.failures] == [Reason.CONFLICT]
    assert addresses(got, "young") == ["10.0.0.1"]
    del c.objects["old"]
    got = c.step()
    assert addresses(got, "young") == ["10.0.0.3"] and not got.failures


def test_sharers_follow_each_others_ports() -> None:
    c = Cluster(SMALL)
    c.objects["a"] = service("a", share="k", ports=[("TCP", 80)], created=CREATED[1])
    c.objects["b"] = service("b", share="k", ports=[("TCP", 443)], created=CREATED[2])
    got = c.step()
    assert addresses(got, "a") == addresses(got, "b") == ["10.0.0.1"]
    c.land()
    c.objects["a"] = service(
        "a", share="k", ports=[("TCP", 443)], created=CREATED[1], ingress=["10.0.0.1"]
    )
    got = c.step()  # they now clash on the address they share: reported, both keep it
    assert [f.reason for f in got.failures] == [Reason.SHARE_CLASH]
    c.objects["c"] = service("c", share="k", ports=[("TCP", 443)], created=CREATED[3])
    got = c.step()
    assert addresses(got, "c") == ["10.0.0.2"]


def test_a_service_that_stops_being_a_load_balancer_is_released() -> None:
    c = Cluster(SMALL)
    c.objects["a"] = service("a")
    c.step()
    c.land()
    c.objects["a"] = service(
        "a", type_="ClusterIP", ingress=["10.0.0.1"], allocated_from="g:10.0.0.0/30"
    )
    got = c.step()
    assert [a.addresses for a in got.changes()] == [()]
    c.land()


def test_what_falls_back_to_a_full_pass() -> None:
    c = Cluster(SMALL)
    c.objects["a"] = service("a")
    c.step()
    c.groups = [group("g", "10.0.0.0/29", default=True)]
    got = c.step()
    assert got.delta is not None and got.delta.after is None  # the writer looks at all
    assert c.inc.full == {"first": 1, "groups": 1}
    svc = parse_service(service("a"), default_class=False)
    assert svc is not None
    model = api.load(c.groups)
    c.inc.allocate(model.service_groups, [svc, copy.copy(svc)])
    assert c.inc.full["duplicate"] == 1
    model = api.load([nb_group()])
    assert not model.errors, model.errors
    c.inc.allocate(model.service_groups, [svc])
    assert c.inc.full["external"] == 1
