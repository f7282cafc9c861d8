"""Every kind of per-group BGP policy at real upstreams, the same from a BIRD node and from
an FRR node.

The two routers render the policy in different shapes (BIRD: a group number tagged where
routes enter, per-session functions; FRR: attributes and a marker large community at
redistribution, one entry per selection, action maps: renderer/view/bgp_frr.py). One lab
per node router, the upstreams the other implementation (an eBGP one, and an iBGP one in
the node's AS that selects only the groups labelled ``tier: a``). Seven groups cover
communities, large communities, local preference, MED, prepends, weights, BGP classes
(two Services picking one each) and a group with nothing; what each upstream holds for
every prefix must be the same from both nodes, and as expected for the prefixes that
show each rule (a MED counts as 0 when absent: FRR sends the connected route's 0, BIRD
none, and best-path selection reads them alike). When the shapes changed (issue 20), the
FRR node's table was also compared with the previous shape's, prefix by prefix: equal.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbroute.lab import UPSTREAM_ASN, UPSTREAM_V4, UPSTREAM_V6, Lab, NodeSpec
from lbroute.lab.ibgp import IBGP_V4, IBGP_V6, NODES_ASN, BgpPath, IbgpUpstream, bgp_paths
from lbroute.model.vocabulary import SERVICE_GROUP
from tests.netns.lab import needs_root
from tests.netns.test_bgp_policy import NODE_V4, NODE_V6, UPSTREAM_FOR, _obj, _peer, _service

GROUPS: dict[str, tuple[str, str | None, str, dict[str, Any]]] = {
    # name: (IPv4 pool, IPv6 pool, tier label, bgp policy)
    "gold": ("192.0.2.0/26", "2001:db8:1::/64", "a",
             {"communities": ["65000:100", "65000:200"], "largeCommunities": ["65000:1:2"],
              "localPref": 300, "med": 10, "asPathPrepend": 2}),
    "silver": ("192.0.2.64/26", None, "b", {"communities": ["65000:300"], "med": 50}),
    "plain": ("192.0.2.128/26", "2001:db8:2::/64", "a", {}),
    "weighted": ("192.0.2.192/26", None, "a",
                 {"weightByEndpoints": True, "med": 7, "communities": ["65000:7"]}),
    "classy": ("198.51.100.0/26", "2001:db8:3::/64", "a",
               {"med": 8, "asPathPrepend": 1, "classes": {
                   "premium": {"communities": ["65000:900"], "largeCommunities": ["65000:9:9"],
                               "med": 1, "localPref": 50},
                   "backup": {"asPathPrepend": 2}}}),
    "lp": ("198.51.100.64/26", None, "a", {"localPref": 200}),
    "large": ("198.51.100.128/26", "2001:db8:4::/64", "b", {"largeCommunities": ["65000:5:5"]}),
}  # fmt: skip
SERVICES: list[tuple[str, tuple[str, ...], str | None]] = [
    ("s-gold", ("192.0.2.10", "2001:db8:1::10"), None),
    ("s-silver", ("192.0.2.70",), None),
    ("s-plain", ("192.0.2.130", "2001:db8:2::10"), None),
    ("s-weighted", ("192.0.2.200",), None),
    ("s-classy", ("198.51.100.10", "2001:db8:3::10"), None),
    ("s-premium", ("198.51.100.11", "2001:db8:3::11"), "premium"),
    ("s-backup", ("198.51.100.12",), "backup"),
    ("s-lp", ("198.51.100.70",), None),
    ("s-large", ("198.51.100.130", "2001:db8:4::10"), None),
]
PREFIXES = sorted(
    {p for v4, v6, _, _ in GROUPS.values() for p in (v4, v6) if p}
    | {f"{a}/128" if ":" in a else f"{a}/32" for _, addresses, _ in SERVICES for a in addresses}
)
"""Every pool and every Service's host prefix: a class moves its Services to their own."""


def manifests() -> list[dict[str, Any]]:
    node_addresses = [{"type": "InternalIP", "address": a} for a in (NODE_V4, NODE_V6)]
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
         "status": {"addresses": node_addresses}}
    ]  # fmt: skip
    for name, (v4, v6, tier, bgp) in GROUPS.items():
        group = _obj(SERVICE_GROUP, name, {"pools": [{"cidr": c} for c in (v4, v6) if c],
                                            "bgp": bgp})  # fmt: skip
        group["metadata"]["labels"] = {"tier": tier}
        objs.append(group)
    for name, address, asn in (
        ("upstream", UPSTREAM_V4, UPSTREAM_ASN),
        ("upstream-v6", UPSTREAM_V6, UPSTREAM_ASN),
        ("reflector", IBGP_V4, NODES_ASN),
        ("reflector-v6", IBGP_V6, NODES_ASN),
    ):
        peer = _peer(name, address, asn)
        if asn == NODES_ASN:
            peer["spec"]["serviceGroupSelector"] = {"matchLabels": {"tier": "a"}}
        objs.append(peer)
    for name, addresses, klass in SERVICES:
        service = _service(name, *addresses)
        if klass is not None:
            service["metadata"]["annotations"] = {"lbroute.io/bgp-class": klass}
        objs.append(service)
    return objs


Table = dict[str, dict[str, tuple[BgpPath, ...]]]


def _table(lab: Lab, ibgp: IbgpUpstream) -> Table:
    """prefix -> session kind -> the paths the upstream holds: a missing MED read as 0,
    and no local preference over eBGP (none is sent; what an upstream stores is its own
    default, which differs between FRR and BIRD)."""
    router = lab.upstream_frr or lab.upstream_bird
    assert router is not None

    def norm(paths: list[BgpPath], ebgp: bool) -> tuple[BgpPath, ...]:
        return tuple(
            dataclasses.replace(p, med=p.med or 0, local_pref=None if ebgp else p.local_pref)
            for p in paths
        )

    return {
        p: {"eBGP": norm(bgp_paths(router, p), True), "iBGP": norm(ibgp.paths(p), False)}
        for p in PREFIXES
    }


def _settled_table(router: str, work: Path) -> Table:
    """What the upstreams of a node running ``router`` hold once the table has stayed the
    same for 5 s with every expected prefix there (or 90 s passed: the tests then show
    what is). Everything is stopped and the namespaces deleted whatever happens."""
    source = work / "source"
    source.mkdir()
    (source / "objects.yaml").write_text(yaml.safe_dump_all(manifests()))
    spec = NodeSpec(name="node-a", router=router, v4=NODE_V4, v6=NODE_V6)
    lab = Lab(workdir=work / "lab", nodes=[spec], upstream_router=UPSTREAM_FOR[router], tag="mtx")
    ibgp = IbgpUpstream(lab, UPSTREAM_FOR[router], work)
    seen: list[Table] = []

    def settled() -> bool:
        seen.append(_table(lab, ibgp))
        full = all(seen[-1][p]["eBGP"] for p in EXPECTED)
        return full and len(seen) > 10 and all(t == seen[-1] for t in seen[-10:])

    try:
        lab.start()
        ibgp.start()
        lab.start_agent("node-a", source)
        with contextlib.suppress(TimeoutError):
            lab.wait_for(settled, timeout=90, interval=0.5)
        return seen[-1]
    finally:
        ibgp.stop()
        lab.stop()


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Table]:
    """For each node router, what its upstreams hold (:func:`_settled_table`)."""
    needs_root()
    return {
        router: _settled_table(router, tmp_path_factory.mktemp(f"bgp-matrix-{router}"))
        for router in ("bird", "frr")
    }


def _path(peer: str, as_path: int, med: int, local_pref: int | None, *tags: str) -> BgpPath:
    return BgpPath(
        peer=peer,
        as_path=(NODES_ASN,) * as_path,
        local_pref=local_pref,
        med=med,
        communities=tuple(t for t in tags if t.count(":") == 1),
        large_communities=tuple(t for t in tags if t.count(":") == 2),
    )


def _both(
    peer: str, ebgp_path: int, med: int, ibgp_pref: int | None, *tags: str
) -> dict[str, tuple[BgpPath, ...]]:
    """eBGP (the AS path that long, no local preference) and, when the iBGP upstream
    selects the group, iBGP (no AS path, the node's local preference)."""
    out: dict[str, tuple[BgpPath, ...]] = {"eBGP": (_path(peer, ebgp_path, med, None, *tags),)}
    out["iBGP"] = (_path(peer, 0, med, ibgp_pref, *tags),) if ibgp_pref is not None else ()
    return out


V4, V6 = NODE_V4, NODE_V6
EXPECTED: dict[str, dict[str, tuple[BgpPath, ...]]] = {
    # everything: prepend (eBGP), local preference (iBGP), the rest to both
    "192.0.2.0/26": _both(V4, 3, 10, 300, "65000:100", "65000:200", "65000:1:2"),
    "2001:db8:1::/64": _both(V6, 3, 10, 300, "65000:100", "65000:200", "65000:1:2"),
    # tier b: not selected by the iBGP upstream
    "192.0.2.64/26": _both(V4, 1, 50, None, "65000:300"),
    "198.51.100.128/26": _both(V4, 1, 0, None, "65000:5:5"),
    # nothing set
    "192.0.2.128/26": _both(V4, 1, 0, 100),
    # weighted: its MED although the weight table resets the metric (FRR)
    "192.0.2.192/26": _both(V4, 1, 7, 100, "65000:7"),
    # classes: the group's own on its aggregate; premium replaces the MED and the local
    # preference and adds its communities; backup adds two prepends to the group's one
    "198.51.100.0/26": _both(V4, 2, 8, 100),
    "198.51.100.11/32": _both(V4, 2, 1, 50, "65000:900", "65000:9:9"),
    "2001:db8:3::11/128": _both(V6, 2, 1, 50, "65000:900", "65000:9:9"),
    "198.51.100.12/32": _both(V4, 4, 8, 100),
    "198.51.100.64/26": _both(V4, 1, 0, 200),
}  # fmt: skip


@pytest.mark.parametrize("prefix", sorted(EXPECTED))
@pytest.mark.parametrize("router", ["bird", "frr"])
def test_each_rule_reaches_the_upstreams(
    tables: dict[str, Table], router: str, prefix: str
) -> None:
    assert tables[router][prefix] == EXPECTED[prefix], f"{router} node, {prefix}"


def test_both_routers_give_every_prefix_the_same_attributes(tables: dict[str, Table]) -> None:
    differ = {p: (tables["bird"][p], tables["frr"][p]) for p in PREFIXES
              if tables["bird"][p] != tables["frr"][p]}  # fmt: skip
    assert differ == {}
    # Host prefixes only for the Services that picked a class; no marker anywhere.
    announced = {p for p, kinds in tables["frr"].items() if kinds["eBGP"]}
    assert announced == set(EXPECTED) | {"2001:db8:2::/64", "2001:db8:3::/64", "2001:db8:4::/64"}
    assert not any(
        "4294967295" in c for kinds in tables["frr"].values() for paths in kinds.values()
        for path in paths for c in path.large_communities
    )  # fmt: skip
