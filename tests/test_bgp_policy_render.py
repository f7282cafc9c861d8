"""Per-group BGP attributes towards iBGP and eBGP neighbors, in the rendered configuration.

A ServiceGroup's ``asPathPrepend`` must reach eBGP neighbors only (an iBGP neighbor finds
its own AS in the path and drops the route as a loop), its ``localPref`` iBGP neighbors
only (eBGP never carries LOCAL_PREF), its communities, large communities and MED both.
Each case renders BIRD and FRR and reads, per neighbor, the statements its outbound
policy applies: BIRD, the function its export filter calls for the group; FRR, the
``set`` lines its redistribution entry, its outbound route-map and the action map that
calls apply to the group's routes. Also: which neighbors
share an FRR route-map and a BIRD function, the session kind decided from the typed
ASNs (the local ASN override, FRR's unnumbered ``remote-as external``), and a local ASN
override that FRR would refuse, reported on the Peer. The namespace test
(tests/netns/test_bgp_policy.py) shows what real upstream routers receive.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from lbroute.model import api
from lbroute.model.api import Router
from lbroute.model.errors import Severity
from renderer.render import render_view
from renderer.view import NodeView, build_view

NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "n1", "labels": {}},
    "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.11"}]},
}
LOCAL_ASN = 64512
"""The NodeAgent's default local ASN (no NodeAgent here)."""


def _obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "lbroute"},
        "spec": spec,
    }


def group(name: str, cidr: str, **bgp: Any) -> dict[str, Any]:
    return _obj("ServiceGroup", name, {"pools": [{"cidr": cidr}], "bgp": bgp})


def peer(name: str, address: str, asn: int, **spec: Any) -> dict[str, Any]:
    return _obj("Peer", name, {"bgp": {"address": address, "asn": asn, **spec}})


def build(objects: list[dict[str, Any]], router: Router) -> NodeView:
    model = api.load([NODE, *objects])
    assert model.errors == (), [str(p) for p in model.errors]
    return build_view(model, router, "n1")


def render(objects: list[dict[str, Any]], router: Router) -> str:
    v = build(objects, router)
    assert [p for p in v.problems if p.severity is Severity.ERROR] == []
    return render_view(v)


# -- reading the rendered policy ----------------------------------------------------------


def _bird_policy(text: str, neighbor: str, group: str) -> list[str]:
    """The statements BIRD applies to ``group``'s routes towards ``neighbor``: the body
    of the function its export filter calls (with the argument it passes), [] when the
    filter only accepts."""
    protocol = re.search(rf"protocol bgp \w+ {{\n(?:  .*\n)*?  neighbor {neighbor} .*", text)
    assert protocol is not None, f"no BGP protocol for {neighbor}"
    block = text[protocol.start() : text.index("\n}\n", protocol.start())]
    filt = re.search(r"export filter (\w+);", block)
    assert filt is not None
    body = text[text.index(f"filter {filt.group(1)} {{") :]
    body = body[: body.index("\n}\n")]
    number = re.search(rf"then lbr_group = (\d+); # ServiceGroup \w+/{group}$", text, re.M)
    assert number is not None, f"{group} has no number"
    line = re.search(r"if lbr_group ~ \[([0-9., ]+)\] then (.*)", body)
    exported = set()
    for run in line.group(1).split(", ") if line is not None else ():
        first, _, last = run.partition("..")
        exported |= set(range(int(first), int(last or first) + 1))
    assert line is not None and int(number.group(1)) in exported, (
        f"{neighbor} does not export {group}"
    )
    if line.group(2) == "accept;":
        return []
    call = re.fullmatch(r"\{ (\w+)\((\d*)\); accept; \}", line.group(2))
    assert call is not None, line.group(2)
    dispatch, argument = call.groups()
    arms = text[text.index(f"function {dispatch}(") :]
    arm = re.search(
        rf"^    {number.group(1)}: (\w+)\((local_as)?\);", arms[: arms.index("\n}\n")], re.M
    )
    if arm is None:
        return []  # no actions towards this kind of session
    function = arm.group(1)
    argument = argument if arm.group(2) else ""
    found = re.search(rf"^function {function}\((?:int (\w+))?\) {{\n((?:  .*\n)*)}}", text, re.M)
    assert found is not None, f"function {function} not found"
    parameter, statements = found.groups()
    assert bool(parameter) == bool(argument), (function, argument)
    lines = [s.strip() for s in statements.splitlines()]
    return [s.replace(f"({parameter})", f"({argument})") if parameter else s for s in lines]


def _frr_entries(text: str, name: str) -> list[list[str]]:
    """The lines of route-map ``name``'s permit entries, in the file's order."""
    found = re.finditer(rf"^route-map {re.escape(name)} permit \d+\n((?: .*\n)*)exit", text, re.M)
    return [[s.strip() for s in entry.group(1).splitlines()] for entry in found]


def _frr_policy(text: str, neighbor: str, group: str) -> list[str]:
    """What ``group``'s routes carry towards ``neighbor``, as FRR applies its policy: the
    group's redistribution entry's set lines (its marker among the large communities),
    then the neighbor's outbound route-map, whose entry must match the marker with its
    large-community list, deletes the markers and calls the action map, whose entry for
    the group (if any) adds its own; one line per kind, the later one winning (a prepend
    adds). No local preference towards eBGP, which never carries it (RFC 4271 5.1.5)."""
    match = f"match ip address prefix-list lbr-sg-{group}-v4"
    (redist,) = [e for e in _frr_entries(text, "lbr-bgp-export-v4") if match in e]
    marker = re.search(r"set large-community (?:.* )?(4294967295:1:\d+)$", "\n".join(redist), re.M)
    assert marker is not None, f"{group} has no marker"
    out = re.search(rf"^  neighbor {re.escape(neighbor)} route-map (\S+) out$", text, re.M)
    assert out is not None, f"no outbound route-map for {neighbor}"
    (selection,) = _frr_entries(text, out.group(1))
    assert f"match large-community {out.group(1)}" in selection
    patterns = re.findall(
        rf"^bgp large-community-list expanded {out.group(1)} seq \d+ permit (\S+)$", text, re.M
    )
    spelt = marker.group(1)
    if not any(re.search(p.replace("_", "(^|$| )"), spelt) for p in patterns):
        raise AssertionError(f"{neighbor}'s route-map has no entry for {group}")
    assert "set large-comm-list lbr-bgp-marks delete" in selection
    sets: dict[str, str] = {}
    for line in redist:
        if line.startswith("set ") and line != "set origin igp":
            sets[" ".join(line.split()[:2])] = line
    large = sets.pop("set large-community").split()[2:]
    if large != [spelt]:
        sets["set large-community"] = " ".join(["set large-community", *large[:-1]])
    call = [line.split()[1] for line in selection if line.startswith("call ")]
    for action in _frr_entries(text, call[0]) if call else ():
        if match in action:
            for line in action:
                if line.startswith("set "):
                    sets[" ".join(line.split()[:2])] = line
    ebgp = re.search(
        rf"^ neighbor {re.escape(neighbor)} (?:interface )?remote-as (\S+)", text, re.M
    )
    assert ebgp is not None
    if ebgp.group(1) != str(LOCAL_ASN):
        sets.pop("set local-preference", None)
    return [sets[kind] for kind in sorted(sets)]


POLICY = {
    "communities": ["65000:100", "65000:200"],
    "largeCommunities": ["65000:1:2"],
    "localPref": 300,
    "med": 10,
    "asPathPrepend": 2,
}
IBGP = peer("reflector", "10.0.0.2", LOCAL_ASN)
EBGP = peer("upstream", "10.0.0.1", 65000)


# (attribute set, what the BIRD function does towards iBGP and eBGP, FRR's set lines)
CASES: list[tuple[str, dict[str, Any], tuple[list[str], list[str]], tuple[list[str], list[str]]]]
CASES = [
    (
        "prepend: eBGP only",
        {"asPathPrepend": 2},
        ([], ["bgp_path.prepend(64512);"] * 2),
        ([], ["set as-path prepend 64512 64512"]),
    ),
    (
        "local preference: iBGP only",
        {"localPref": 300},
        (["bgp_local_pref = 300;"], []),
        (["set local-preference 300"], []),
    ),
    (
        "communities, large communities, MED: both",
        {"communities": ["65000:100"], "largeCommunities": ["65000:1:2"], "med": 10},
        (
            ["bgp_community.add((65000, 100));", "bgp_large_community.add((65000, 1, 2));",
             "bgp_med = 10;"],
            ["bgp_community.add((65000, 100));", "bgp_large_community.add((65000, 1, 2));",
             "bgp_med = 10;"],
        ),
        (
            ["set community 65000:100", "set large-community 65000:1:2", "set metric 10"],
            ["set community 65000:100", "set large-community 65000:1:2", "set metric 10"],
        ),
    ),
    (
        "everything at once",
        POLICY,
        (
            ["bgp_community.add((65000, 100));", "bgp_community.add((65000, 200));",
             "bgp_large_community.add((65000, 1, 2));", "bgp_local_pref = 300;",
             "bgp_med = 10;"],
            ["bgp_community.add((65000, 100));", "bgp_community.add((65000, 200));",
             "bgp_large_community.add((65000, 1, 2));", "bgp_med = 10;",
             "bgp_path.prepend(64512);", "bgp_path.prepend(64512);"],
        ),
        (
            ["set community 65000:100 65000:200", "set large-community 65000:1:2",
             "set local-preference 300", "set metric 10"],
            ["set as-path prepend 64512 64512", "set community 65000:100 65000:200",
             "set large-community 65000:1:2", "set metric 10"],
        ),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "policy", "bird", "frr"), CASES, ids=[c[0] for c in CASES])
def test_each_attribute_reaches_the_sessions_it_means_something_on(
    name: str,
    policy: dict[str, Any],
    bird: tuple[list[str], list[str]],
    frr: tuple[list[str], list[str]],
) -> None:
    objects = [group("web", "192.0.2.0/24", **policy), IBGP, EBGP]
    text = render(objects, Router.BIRD)
    assert (_bird_policy(text, "10.0.0.2", "web"), _bird_policy(text, "10.0.0.1", "web")) == bird
    text = render(objects, Router.FRR)
    assert (_frr_policy(text, "10.0.0.2", "web"), _frr_policy(text, "10.0.0.1", "web")) == frr


def test_the_prepend_uses_the_local_asn_of_each_ebgp_session() -> None:
    objects = [
        group("web", "192.0.2.0/24", asPathPrepend=1),
        EBGP,
        peer("transit", "10.0.0.5", 65100, localASN=65010),
    ]
    bird = render(objects, Router.BIRD)
    frr = render(objects, Router.FRR)
    assert _bird_policy(bird, "10.0.0.1", "web") == ["bgp_path.prepend(64512);"]
    assert _bird_policy(bird, "10.0.0.5", "web") == ["bgp_path.prepend(65010);"]
    assert _frr_policy(frr, "10.0.0.1", "web") == ["set as-path prepend 64512"]
    assert _frr_policy(frr, "10.0.0.5", "web") == ["set as-path prepend 65010"]


def test_a_local_asn_override_equal_to_the_neighbors_asn_is_ibgp_on_bird() -> None:
    """BIRD runs ``local as 65010; neighbor ... as 65010`` as iBGP: no prepend there."""
    objects = [
        group("web", "192.0.2.0/24", asPathPrepend=1, localPref=200),
        peer("other-as", "10.0.0.5", 65010, localASN=65010),
    ]
    text = render(objects, Router.BIRD)
    assert "  local as 65010;\n  neighbor 10.0.0.5 as 65010;\n  direct;\n" in text
    assert _bird_policy(text, "10.0.0.5", "web") == ["bgp_local_pref = 200;"]


def test_frr_refuses_a_local_asn_override_equal_to_the_neighbors_asn() -> None:
    """FRR's ``local-as`` must differ from the neighbor's AS ("AS specified for local as
    is the same as the remote as and this is not allowed"): the Peer is reported and
    left out, the other neighbors keep working."""
    objects = [
        group("web", "192.0.2.0/24"),
        EBGP,
        peer("other-as", "10.0.0.5", 65010, localASN=65010),
    ]
    v = build(objects, Router.FRR)
    (found,) = v.problems
    assert (found.severity, str(found.ref), found.path) == (
        Severity.ERROR, "Peer lbroute/other-as", "spec.bgp.localASN"
    )  # fmt: skip
    assert "65010 is also the neighbor's asn" in found.message
    assert "FRR refuses" in found.message and "NodeAgent" in found.message
    assert [n.ref.name for n in v.bgp] == ["upstream"]
    assert "10.0.0.5" not in render_view(v)
    # The same override equal to the NodeAgent's ASN is no override: plain iBGP.
    v = build([group("web", "192.0.2.0/24"), peer("rr", "10.0.0.2", 64512, localASN=64512)],
              Router.FRR)  # fmt: skip
    assert v.problems == () and [n.ibgp for n in v.bgp] == [True]


def test_an_unnumbered_neighbor_without_asn_is_ebgp() -> None:
    unnumbered = _obj("Peer", "fabric", {"bgp": {"interface": "eth1", "families": ["ipv4"]}})
    text = render([group("web", "192.0.2.0/24", asPathPrepend=1, localPref=200), unnumbered],
                  Router.FRR)  # fmt: skip
    assert " neighbor eth1 interface remote-as external\n" in text
    assert _frr_policy(text, "eth1", "web") == ["set as-path prepend 64512"]


def test_frr_route_maps_are_shared_per_session_kind() -> None:
    objects = [
        group("web", "192.0.2.0/24", **POLICY),
        IBGP,
        peer("reflector-2", "10.0.0.3", LOCAL_ASN),
        EBGP,
        peer("upstream-2", "10.0.0.4", 65001),
    ]
    maps = {n.ref.name: n.exports[0].name for n in build(objects, Router.FRR).bgp}
    assert maps["reflector"] == maps["reflector-2"]
    assert maps["upstream"] == maps["upstream-2"]
    assert maps["reflector"] != maps["upstream"]
    # An eBGP route-map keeps the name it had before sessions were told apart (a hash of
    # the local ASN and the groups: every neighbor of AS 64512 exporting web used this
    # one), so upgrading re-points only iBGP neighbors.
    assert maps["upstream"] == "lbr-bgp-out-d598568d72c9-v4"


def test_bird_has_one_function_per_group_unless_the_kinds_differ() -> None:
    objects = [
        group("web", "192.0.2.0/24", communities=["65000:1"], med=5),
        group("gold", "198.51.100.0/24", **POLICY),
        group("plain", "203.0.113.0/24"),
        IBGP,
        EBGP,
    ]
    v = build(objects, Router.BIRD)
    assert [(a.function, a.session) for a in v.bgp_functions] == [
        ("lbr_sg_gold_ebgp", "eBGP"),
        ("lbr_sg_gold_ibgp", "iBGP"),
        ("lbr_sg_web_bgp", None),
    ]
    text = render_view(v)
    assert "# BGP actions of ServiceGroup lbroute/gold towards eBGP neighbors\n" in text
    assert "# BGP actions of ServiceGroup lbroute/web\nfunction lbr_sg_web_bgp() {\n" in text
    assert "# Peer lbroute/reflector (iBGP)\n" in text
    assert "# Peer lbroute/upstream (eBGP)\n" in text
    assert _bird_policy(text, "10.0.0.2", "plain") == []
    # Only what some filter calls is rendered: no iBGP neighbor, no iBGP function.
    v = build([objects[1], EBGP], Router.BIRD)
    assert [a.function for a in v.bgp_functions] == ["lbr_sg_gold_ebgp"]
