"""FRR's outbound BGP policy grows with groups plus Peers (renderer/view/bgp_frr.py, issue
20): each group's attributes once, where its routes enter BGP, with a marker large
community; one route-map entry and one large-community list per distinct selection of
groups; action maps only for what differs by session kind.

Each test reads what the rendered text does to a group's routes towards a neighbor the
way FRR applies it (``tests/test_bgp_policy_render._frr_policy``), or counts and diffs
its statements. The namespace tests (tests/netns/test_bgp_policy.py and others) show
real upstream routers receiving the same attributes, markers gone.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from lbroute.model import api
from lbroute.model.api import Router
from nodeagent.routers.frr_delta import frr_stanzas
from renderer.render import render_view
from renderer.view import build_view
from renderer.view.bgp_frr import MARKS_PER_LINE
from renderer.view.names import Drain
from tests.test_bgp_policy_render import NODE, _frr_policy, _obj, build, peer, render

TEAMS = [f"t{i}" for i in range(8)]
SELECTIONS = list(itertools.combinations(TEAMS, 3))[:40]
"""40 distinct selections, three teams each."""


def team_group(i: int, **bgp: Any) -> dict[str, Any]:
    obj = _obj("ServiceGroup", f"g{i:02}", {"pools": [{"cidr": f"10.{i}.0.0/24"}], "bgp": bgp})
    obj["metadata"]["labels"] = {"team": TEAMS[i % len(TEAMS)]}
    return obj


def selecting(j: int, teams: tuple[str, ...], asn: int = 65000) -> dict[str, Any]:
    p = peer(f"p{j:02}", f"10.1.{j // 200}.{j % 200 + 1}", asn)
    p["spec"]["serviceGroupSelector"] = {
        "matchExpressions": [{"key": "team", "operator": "In", "values": list(teams)}]
    }
    return p


def workload(communities: str = "65000:1") -> list[dict[str, Any]]:
    groups = [team_group(i, communities=[f"65000:{100 + i}"], med=i) for i in range(1, 24)]
    groups.append(team_group(0, communities=[communities], largeCommunities=["65000:1:7"]))
    return [*groups, *(selecting(j, teams) for j, teams in enumerate(SELECTIONS))]


def test_a_group_is_written_once_whatever_the_selections() -> None:
    text = render(workload(), Router.FRR)
    # Every group's attributes once (IPv4 only here), however many selections carry it.
    assert text.count("\n set community ") == 24
    assert text.count("\n set metric ") == 23
    # One outbound entry and one list line per selection, neighbors of one selection sharing.
    outbound = re.findall(r"^route-map (lbr-bgp-out-\S+) permit", text, re.M)
    assert len(outbound) == len(set(outbound)) == len(SELECTIONS)
    assert len(re.findall(r"^bgp large-community-list expanded lbr-bgp-out-", text, re.M)) == 40
    # Nothing differs by session kind: no action map, no call.
    assert "lbr-bgp-act" not in text
    # What each neighbor gives a group's routes: its own attributes, if it selects it.
    for j in (0, 17, 39):
        for i in range(24):
            selected = TEAMS[i % len(TEAMS)] in SELECTIONS[j]
            expected = (
                ["set community 65000:1", "set large-community 65000:1:7"]
                if i == 0
                else [f"set community 65000:{100 + i}", f"set metric {i}"]
            )
            neighbor = f"10.1.0.{j + 1}"
            if selected:
                assert _frr_policy(text, neighbor, f"g{i:02}") == expected
            else:
                with pytest.raises(AssertionError, match="has no entry"):
                    _frr_policy(text, neighbor, f"g{i:02}")


def test_a_change_to_one_group_changes_its_entry_alone() -> None:
    before = frr_stanzas(render(workload(), Router.FRR))
    after = frr_stanzas(render(workload("65000:2"), Router.FRR))
    changed = {h for h in before.keys() | after.keys() if before.get(h) != after.get(h)}
    (head,) = changed
    assert head.startswith("route-map lbr-bgp-export-v4 permit ")
    assert " match ip address prefix-list lbr-sg-g00-v4" in after[head]
    assert " set community 65000:2" in after[head]


def test_a_long_selection_is_split_into_short_lines() -> None:
    groups = [team_group(i) for i in range(150)]
    text = render([*groups, selecting(0, tuple(TEAMS))], Router.FRR)
    lines = re.findall(
        r"^bgp large-community-list expanded (lbr-bgp-out-\S+) seq (\d+) permit "
        r"_4294967295:1:\(([0-9|]+)\)_$",
        text,
        re.M,
    )
    assert [int(seq) for _, seq, _ in lines] == [5, 10, 15]
    numbers = [n.split("|") for _, _, n in lines]
    assert [len(n) for n in numbers] == [MARKS_PER_LINE, MARKS_PER_LINE, 150 - 2 * MARKS_PER_LINE]
    marked = re.findall(r"^ set large-community 4294967295:1:(\d+)$", text, re.M)
    assert sorted(x for n in numbers for x in n) == sorted(marked)
    assert len(set(marked)) == 150


def test_a_med_that_redistribution_cannot_set_goes_to_every_action_map() -> None:
    """A weighted group (or one with classes) calls a route-map at redistribution that
    sets the metric to 0 after the entry's own lines, so its MED is set on the way out,
    towards both kinds of neighbors."""
    objects = [
        team_group(1, med=7, weightByEndpoints=True),
        team_group(2, med=8, classes={"gold": {"communities": ["65000:9"]}}),
        team_group(3, med=9),
        peer("reflector", "10.0.0.2", 64512),
        peer("upstream", "10.0.0.1", 65000),
    ]
    text = render(objects, Router.FRR)
    redistribution = "".join(
        f"{head}\n{''.join(lines)}\n"
        for head, lines in frr_stanzas(text).items()
        if head.startswith("route-map lbr-bgp-export-v4 ")
    )
    assert "set metric 7" not in redistribution and "set metric 8" not in redistribution
    assert "set metric 9" in redistribution
    for neighbor in ("10.0.0.1", "10.0.0.2"):
        assert "set metric 7" in _frr_policy(text, neighbor, "g01")
        assert "set metric 8" in _frr_policy(text, neighbor, "g02")
        assert "set metric 9" in _frr_policy(text, neighbor, "g03")
    assert text.count("\n set metric 7\n") == 2  # the iBGP and the eBGP action maps


def _drained(objects: list[dict[str, Any]], drain: Drain) -> dict[str, tuple[str, ...]]:
    view = build_view(api.load([NODE, *objects]), Router.FRR, "n1", drain=drain)
    return frr_stanzas(render_view(view))


def test_undraining_changes_only_the_outbound_route_maps() -> None:
    """Drained (withdrawn), the groups keep their attributes and markers at
    redistribution and the selections their lists; each outbound route-map denies
    everything. Undraining then changes those route-maps (and brings back the action
    maps), nothing else."""
    objects = [
        team_group(1, communities=["65000:1"], asPathPrepend=2),
        team_group(2, med=3),
        peer("reflector", "10.0.0.2", 64512),
        peer("upstream", "10.0.0.1", 65000),
    ]
    drained, normal = _drained(objects, Drain.WITHDRAW), _drained(objects, Drain.NONE)
    changed = {h for h in drained.keys() | normal.keys() if drained.get(h) != normal.get(h)}
    assert changed and all(h.startswith(("route-map lbr-bgp-out-", "route-map lbr-bgp-act-"))
                           for h in changed), changed  # fmt: skip
    denies = [h for h in drained if h.startswith("route-map lbr-bgp-out-")]
    assert denies and all(h.endswith(" deny 1") for h in denies)
    assert not any(h.startswith("route-map lbr-bgp-act-") for h in drained)
    assert build(objects, Router.FRR).problems == ()
