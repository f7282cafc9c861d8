"""Each object's last valid version (lbroute.model.lastgood): an object edited into an
invalid one keeps its last valid version in the model, reported as one error naming
what is wrong and which version stays, until it is fixed or deleted.

Covered: valid -> invalid -> valid flips of a ServiceGroup (a /33, a misspelt
``pools``), a Peer and a NodeAgent; a delete while invalid forgets the object; an
object invalid from its first sight is reported and not used, as api.load does; how
the version in use is named (generation, resourceVersion, or when it was read), and a
status write is not a new version; a conflict between two ServiceGroups (the edited
one loses, whatever the names; the cascade when a group stands in for its last valid
version); an unserved apiVersion; a Peer whose Secret is gone; an object written twice
in a directory.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lbroute.model import api, lastgood
from lbroute.model.errors import ObjectRef, Severity

NS = "lbroute"
NOW = "2026-11-28T01:12:09Z"
LATER = "2026-11-28T02:00:00Z"
Obj = dict[str, Any]


def obj(kind: str, name: str, spec: Any, **meta: Any) -> Obj:
    return {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS, **meta},
        "spec": spec,
    }


def group(name: str, *cidrs: str, **meta: Any) -> Obj:
    return obj("ServiceGroup", name, {"pools": [{"cidr": c} for c in cidrs]}, **meta)


def peer(name: str, asn: int, **bgp: Any) -> Obj:
    return obj("Peer", name, {"bgp": {"address": "10.0.0.1", "asn": asn, **bgp}})


def agent(name: str, router: str) -> Obj:
    return obj("NodeAgent", name, {"router": router, "localASN": 64512})


def ref(kind: str, name: str) -> ObjectRef:
    return ObjectRef(kind=kind, namespace=NS, name=name)


def pools(model: api.Model, name: str) -> list[str]:
    (found,) = [g for g in model.service_groups if g.name == name]
    return [str(p) for p in found.pools]


def errors(model: api.Model) -> list[str]:
    return [str(p) for p in model.problems if p.severity is Severity.ERROR]


class Loader:
    """Successive loads, each from the memory the previous one left."""

    def __init__(self) -> None:
        self.memory = lastgood.Memory()

    def __call__(self, *objects: Obj, now: str = NOW) -> lastgood.Loaded:
        loaded = lastgood.load(objects, self.memory, now=now)
        self.memory = loaded.memory
        return loaded


WEB = group("web", "192.0.2.0/24", generation=1)
CAMPUS = group("campus", "198.51.100.0/24", generation=1)


def edited(o: Obj, change: Any) -> Obj:
    new = copy.deepcopy(o)
    change(new)
    new["metadata"]["generation"] = new["metadata"].get("generation", 0) + 1
    return new


def with_cidr(cidr: str) -> Any:
    def change(o: Obj) -> None:
        o["spec"]["pools"] = [{"cidr": cidr}]

    return change


def test_without_memory_it_loads_as_api_load() -> None:
    objects = [WEB, CAMPUS, group("bad", "10.0.0.1/24"), peer("tor", 65000), agent("a", "bird")]
    loaded = lastgood.load(objects, lastgood.Memory(), now=NOW)
    assert loaded.model == api.load(objects)
    assert loaded.kept == ()
    assert set(loaded.memory.versions) == {
        ref("ServiceGroup", "web"),
        ref("ServiceGroup", "campus"),
        ref("Peer", "tor"),
        ref("NodeAgent", "a"),
    }, "the invalid one has no valid version to remember"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (with_cidr("192.0.2.0/33"), "spec.pools[0].cidr: '192.0.2.0/33' is not valid"),
        (
            lambda o: o["spec"].update(pols=o["spec"].pop("pools")),
            "spec.pols: unknown field; valid fields here: announce, bgp",
        ),
        (lambda o: o.update(spec=None), "spec: is required"),
        (lambda o: o.update(apiVersion="lbroute.io/v1"), "apiVersion: 'lbroute.io/v1' is not"),
    ],
    ids=["slash-33", "misspelt-pools", "truncated", "unserved-version"],
)
def test_a_group_edited_into_an_invalid_one_keeps_its_last_valid_version(
    change: Any, says: str
) -> None:
    load = Loader()
    load(WEB, CAMPUS)
    broken = edited(WEB, change)
    loaded = load(broken, CAMPUS)
    assert pools(loaded.model, "web") == ["192.0.2.0/24"], "the last valid version is used"
    assert pools(loaded.model, "campus") == ["198.51.100.0/24"]
    assert loaded.kept == (ref("ServiceGroup", "web"),)
    (error,) = errors(loaded.model)
    assert error.startswith(f"error: ServiceGroup lbroute/web: is invalid ({says}")
    assert error.endswith(
        "keeping its last valid version (generation 1) until it is fixed or deleted"
    )

    again = load(broken, CAMPUS)
    assert pools(again.model, "web") == ["192.0.2.0/24"], "as long as it stays invalid"
    assert errors(again.model) == [error]

    fixed = load(edited(WEB, with_cidr("192.0.2.0/25")), CAMPUS)
    assert pools(fixed.model, "web") == ["192.0.2.0/25"], "the fixed version is used"
    assert fixed.model.problems == () and fixed.kept == ()


def test_150_flips_between_valid_and_invalid_never_drop_the_group() -> None:
    load = Loader()
    current = WEB
    for i in range(150):
        if i % 2:
            current = edited(current, with_cidr(f"192.0.{i}.0/24"))
            want = f"192.0.{i}.0/24"
        else:
            current = edited(current, with_cidr(f"192.0.{i}.0/33" if i else "192.0.2.0/24"))
            want = "192.0.2.0/24" if i == 0 else f"192.0.{i - 1}.0/24"
        loaded = load(current)
        assert pools(loaded.model, "web") == [want], i
        assert bool(loaded.kept) == (i % 2 == 0 and i > 0), i


def test_deleted_while_invalid_it_is_forgotten_and_withdrawn() -> None:
    load = Loader()
    load(WEB, CAMPUS)
    broken = edited(WEB, with_cidr("192.0.2.0/33"))
    assert pools(load(broken, CAMPUS).model, "web") == ["192.0.2.0/24"]
    gone = load(CAMPUS)
    assert [g.name for g in gone.model.service_groups] == ["campus"]
    assert gone.model.problems == ()
    assert ref("ServiceGroup", "web") not in gone.memory.versions
    # Created again, invalid: nothing to fall back on any more.
    back = load(broken, CAMPUS)
    assert [g.name for g in back.model.service_groups] == ["campus"]
    assert errors(back.model) == [str(p) for p in api.load([broken]).problems]


def test_an_object_invalid_from_its_first_sight_is_reported_and_not_used() -> None:
    load = Loader()
    born_bad = group("bad", "10.0.0.1/24")
    first = load(WEB, born_bad)
    assert [g.name for g in first.model.service_groups] == ["web"]
    assert errors(first.model) == errors(api.load([WEB, born_bad]))
    assert errors(first.model)[0].startswith("error: ServiceGroup lbroute/bad: spec.pools[0].cidr")
    assert [g.name for g in load(WEB, born_bad).model.service_groups] == ["web"]


def test_the_version_in_use_is_named_by_generation_resource_version_or_when_read() -> None:
    def kept_as(first: Obj, *later: Obj) -> str:
        load = Loader()
        load(first, now=NOW)
        for o in later:
            load(o, now=LATER)
        broken = copy.deepcopy(later[-1] if later else first)
        broken["spec"]["pools"] = [{"cidr": "192.0.2.0/33"}]
        broken["metadata"].pop("generation", None)
        broken["metadata"]["resourceVersion"] = "999"
        (error,) = errors(load(broken, now=LATER).model)
        return error.split("keeping its last valid version (")[1].split(")")[0]

    assert kept_as(group("web", "192.0.2.0/24", generation=3)) == "generation 3"
    assert kept_as(group("web", "192.0.2.0/24", resourceVersion="812")) == "resourceVersion '812'"
    assert kept_as(group("web", "192.0.2.0/24")) == f"read at {NOW}"
    # A status written on the object (a condition, a new resourceVersion) is the same
    # version; a spec edit is a new one.
    status = group("web", "192.0.2.0/24", resourceVersion="813")
    status["status"] = {"conditions": [{"type": "Valid", "status": "True"}]}
    assert kept_as(group("web", "192.0.2.0/24", resourceVersion="812"), status) == (
        "resourceVersion '812'"
    )
    assert kept_as(group("web", "192.0.2.0/24"), group("web", "192.0.2.0/25")) == (
        f"read at {LATER}"
    )


def test_the_edited_group_loses_a_conflict_whatever_the_names() -> None:
    load = Loader()
    zoo = group("zoo", "192.0.2.0/24", generation=1)
    aaa = group("aaa", "198.51.100.0/24", generation=1)
    load(zoo, aaa)
    # aaa is edited to overlap zoo's pool. Alone, the earlier name would win and zoo,
    # untouched, would be skipped with all its Services:
    clash = edited(aaa, with_cidr("192.0.2.128/25"))
    assert [g.name for g in api.load([zoo, clash]).service_groups] == ["aaa"]
    loaded = load(zoo, clash)
    assert pools(loaded.model, "zoo") == ["192.0.2.0/24"]
    assert pools(loaded.model, "aaa") == ["198.51.100.0/24"], "its last valid version"
    (error,) = errors(loaded.model)
    assert error.startswith(
        "error: ServiceGroup lbroute/aaa: is invalid (spec.pools[0]: pool 192.0.2.128/25 "
        "overlaps pool 192.0.2.0/24 of ServiceGroup lbroute/zoo"
    )
    # A new group has no valid version yet: it loses to a settled one, and is not used.
    new = group("new", "192.0.2.0/26")
    loaded = load(zoo, clash, new)
    assert sorted(g.name for g in loaded.model.service_groups) == ["aaa", "zoo"]
    # Two new groups at once (or a first load): the earlier name wins, as before.
    fresh = lastgood.load([zoo, clash], lastgood.Memory(), now=NOW)
    assert [g.name for g in fresh.model.service_groups] == ["aaa"]


def test_a_group_standing_in_for_its_last_valid_version_pushes_out_a_changed_one() -> None:
    """web moves its pool and breaks on the way; campus takes web's old pool at once:
    with web back at its last valid version, campus' edit is the one that conflicts,
    and campus keeps its own last valid version."""
    load = Loader()
    load(WEB, CAMPUS)
    web = edited(WEB, lambda o: o["spec"].update(pools=[{"cidr": "10.1.0.0/24"}], bgp=7))
    campus = edited(CAMPUS, with_cidr("192.0.2.0/25"))
    loaded = load(web, campus)
    assert pools(loaded.model, "web") == ["192.0.2.0/24"]
    assert pools(loaded.model, "campus") == ["198.51.100.0/24"]
    assert loaded.kept == (ref("ServiceGroup", "campus"), ref("ServiceGroup", "web"))
    campus_error, web_error = errors(loaded.model)
    assert "overlaps pool 192.0.2.0/24 of ServiceGroup lbroute/web" in campus_error
    assert "spec.bgp: " in web_error


def test_peers_and_node_agents_keep_their_last_valid_version_too() -> None:
    load = Loader()
    load(peer("tor", 65000), agent("bird-nodes", "bird"), WEB)
    loaded = load(peer("tor", -1), agent("bird-nodes", "quagga"), WEB)
    (tor,) = loaded.model.peers
    assert tor.bgp is not None and tor.bgp.asn == 65000
    (bird,) = loaded.model.node_agents
    assert bird.router is api.Router.BIRD
    assert sorted(errors(loaded.model)) == [
        "error: NodeAgent lbroute/bird-nodes: is invalid (spec.router: 'quagga' is not valid; "
        f"expected one of bird, frr); keeping its last valid version (read at {NOW}) until it "
        "is fixed or deleted",
        "error: Peer lbroute/tor: is invalid (spec.bgp.asn: -1 is out of range; expected 1 to "
        f"4294967295); keeping its last valid version (read at {NOW}) until it is fixed or "
        "deleted",
    ]
    fixed = load(peer("tor", 65001), agent("bird-nodes", "frr"), WEB)
    assert [p.bgp.asn for p in fixed.model.peers if p.bgp] == [65001]
    assert [a.router for a in fixed.model.node_agents] == [api.Router.FRR]
    assert errors(fixed.model) == []


def test_a_peer_whose_secret_is_gone_is_not_used_even_in_its_last_valid_version() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "pw", "namespace": NS},
        "stringData": {"password": "s3cret"},
    }
    with_password = peer("tor", 65000, passwordSecretRef={"name": "pw", "key": "password"})
    load = Loader()
    assert [p.name for p in load(with_password, secret, WEB).model.peers] == ["tor"]
    loaded = load(with_password, WEB)
    assert loaded.model.peers == ()
    assert errors(loaded.model) == errors(api.load([with_password, WEB]))
    assert errors(loaded.model)[0].startswith(
        "error: Peer lbroute/tor: spec.bgp.passwordSecretRef: Secret pw not found"
    )
    assert [p.name for p in load(with_password, secret, WEB).model.peers] == ["tor"]


def test_an_object_written_twice_remembers_the_copy_in_use() -> None:
    load = Loader()
    broken = group("web", "192.0.2.0/33")
    loaded = load(broken, WEB)
    assert pools(loaded.model, "web") == ["192.0.2.0/24"], "the valid copy is used"
    assert loaded.memory.versions[ref("ServiceGroup", "web")].obj is WEB
    again = load(broken, broken)
    assert pools(again.model, "web") == ["192.0.2.0/24"]
    assert again.kept == (ref("ServiceGroup", "web"),)
