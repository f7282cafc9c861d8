"""Hypothesis properties of the renderer.

- Order independence: the same objects in any order render to the same bytes.
- Generated valid models always render to configurations the real parser accepts
  (``bird -p``, ``vtysh --dryrun``), a sample of examples per run.
- Hostile strings in every string field are rejected with a problem naming that field,
  or are inert: they never reach the rendered configuration.
"""

from __future__ import annotations

import copy
import ipaddress
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbroute.model import api
from lbroute.model.errors import Severity
from nodeagent.routers import check_config
from renderer.render import render_view
from renderer.view import build_view

NS = "lbroute"
ROUTER_ID = ipaddress.IPv4Address("10.0.0.11")


def _meta(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if labels:
        meta["labels"] = labels
    return meta


NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "node-a", "labels": {"rack": "r1"}},
    "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.11"}]},
}

tiers = st.sampled_from(["gold", "silver", "bronze"])
small = st.integers(min_value=1, max_value=1000)


@st.composite
def service_group(draw: st.DrawFn, index: int) -> dict[str, Any]:
    pools: list[dict[str, Any]] = []
    agg = draw(st.sampled_from(["default", "/28", "/32"]))
    pools.append({"cidr": f"10.{index}.0.0/24", "aggregation": agg})
    if draw(st.booleans()):
        pools.append({"range": f"10.{index}.1.10-10.{index}.1.20", "subnet": f"10.{index}.1.0/24"})
    if draw(st.booleans()):
        pools.append(
            {"cidr": f"fd00:{index}::/64", "aggregation": draw(st.sampled_from(["/64", "/128"]))}
        )
    spec: dict[str, Any] = {"pools": pools}
    if draw(st.booleans()):
        spec["protocols"] = draw(
            st.lists(st.sampled_from(["bgp", "ospf", "rip"]), min_size=1, unique=True)
        )
    if draw(st.booleans()):
        spec["bgp"] = {
            "communities": [f"65000:{draw(small)}"],
            "localPref": draw(small),
            "med": draw(small),
            "asPathPrepend": draw(st.integers(0, 3)),
        }
    if draw(st.booleans()):
        spec["ospf"] = {
            "metric": draw(small),
            "metricType": draw(st.sampled_from([1, 2])),
            "tag": draw(small),
        }
    if draw(st.booleans()):
        spec["rip"] = {"metric": draw(st.integers(1, 15))}
    return {
        "apiVersion": api.API_VERSION,
        "kind": "ServiceGroup",
        "metadata": _meta(f"group-{index}", {"tier": draw(tiers)}),
        "spec": spec,
    }


@st.composite
def peer(draw: st.DrawFn, index: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["bgp4", "bgp6", "ospf", "rip"]))
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["serviceGroupSelector"] = {"matchLabels": {"tier": draw(tiers)}}
    if kind == "bgp4":
        spec["bgp"] = {
            "address": f"10.255.{index}.1",
            "asn": draw(st.sampled_from([64512, 65000, 65001])),
        }
        if draw(st.booleans()):
            spec["bgp"].update(holdTime=9, keepaliveTime=3, bfd={})
    elif kind == "bgp6":
        spec["bgp"] = {"address": f"fd00:ffff::{index + 1:x}", "asn": 65000}
    elif kind == "ospf":
        spec["ospf"] = {
            "area": 0,
            "interfaces": [{"name": f"eth{index}"}],
            "families": ["ipv4", "ipv6"],
        }
    else:
        spec["rip"] = {"interfaces": [f"eth{index}"], "families": ["ipv4", "ipv6"]}
    return {
        "apiVersion": api.API_VERSION,
        "kind": "Peer",
        "metadata": _meta(f"peer-{index}"),
        "spec": spec,
    }


@st.composite
def models(draw: st.DrawFn) -> list[dict[str, Any]]:
    n_groups = draw(st.integers(1, 5))
    n_peers = draw(st.integers(0, 5))
    objects = [draw(service_group(i)) for i in range(n_groups)]
    objects += [draw(peer(i)) for i in range(n_peers)]
    return [*objects, NODE]


def _render(objects: list[dict[str, Any]], router: api.Router) -> str:
    model = api.load(objects)
    view = build_view(model, router, "node-a", router_id=ROUTER_ID)
    return render_view(view)


@settings(max_examples=40, deadline=None)
@given(objects=models(), seed=st.integers(0, 2**32 - 1), router=st.sampled_from(list(api.Router)))
def test_order_independent(objects: list[dict[str, Any]], seed: int, router: api.Router) -> None:
    shuffled = list(objects)
    random.Random(seed).shuffle(shuffled)
    assert _render(objects, router) == _render(shuffled, router)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=models(), router=st.sampled_from(list(api.Router)))
def test_generated_models_accepted_by_real_parser(
    objects: list[dict[str, Any]], router: api.Router
) -> None:
    model = api.load(objects)
    assert not model.errors, [str(p) for p in model.errors]
    view = build_view(model, router, "node-a", router_id=ROUTER_ID)
    assert not [p for p in view.problems if p.severity is Severity.ERROR]
    result = check_config(router, render_view(view))
    assert result.ok, result.describe()


# -- hostile strings ------------------------------------------------------------------------

MARK = "INJECTED"
HOSTILE = [
    f'x";\nprotocol static {MARK} {{ }}',
    f"x\n{MARK}",
    f"x; {MARK}",
    f"x}} {MARK} {{",
    f"x # {MARK}",
    f"x ! {MARK}",
    f"{{{{ {MARK} }}}}",
    f"x\r\n{MARK}",
    f"x\u2028{MARK}",
    f"x\x00{MARK}",
    f"' {MARK} '",
]

BASE: list[dict[str, Any]] = [
    {
        "apiVersion": api.API_VERSION,
        "kind": "ServiceGroup",
        "metadata": _meta("web", {"tier": "gold"}),
        "spec": {
            "pools": [
                {"cidr": "192.0.2.0/24"},
                {"range": "198.51.100.1-198.51.100.9", "subnet": "198.51.100.0/24"},
            ],
            "protocols": ["bgp", "ospf", "rip", "isis"],
            "bgp": {"communities": ["65000:1"], "largeCommunities": ["65000:1:1"]},
        },
    },
    {
        "apiVersion": api.API_VERSION,
        "kind": "Peer",
        "metadata": _meta("tor"),
        "spec": {
            "serviceGroupSelector": {"matchLabels": {"tier": "gold"}},
            "bgp": {
                "address": "10.0.0.1",
                "asn": 65000,
                "passwordSecretRef": {"name": "pw", "key": "password"},
            },
        },
    },
    {
        "apiVersion": api.API_VERSION,
        "kind": "Peer",
        "metadata": _meta("core"),
        "spec": {
            "ospf": {
                "area": "0.0.0.0",
                "interfaces": [{"name": "eth0"}],
                "authSecretRef": {"name": "pw"},
            }
        },
    },
    {
        "apiVersion": api.API_VERSION,
        "kind": "Peer",
        "metadata": _meta("legacy"),
        "spec": {"rip": {"interfaces": ["eth1"], "authSecretRef": {"name": "pw"}}},
    },
    {
        "apiVersion": api.API_VERSION,
        "kind": "Peer",
        "metadata": _meta("backbone"),
        "spec": {"isis": {"area": "49.0001", "interfaces": [{"name": "eth2"}]}},
    },
    {
        "apiVersion": api.API_VERSION,
        "kind": "NodeAgent",
        "metadata": _meta("agents"),
        "spec": {
            "interface": "kube-lb0",
            "templatesDir": "/etc/lbroute/templates",
            "reloadCommand": ["birdc", "configure"],
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta("pw"),
        "stringData": {"password": "s3cret"},
    },
    NODE,
]


def _string_paths(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a string leaf (and every dict key under labels/stringData)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("apiVersion", "kind"):
                continue
            out += _string_paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _string_paths(v, (*path, i))
    elif isinstance(obj, str):
        out.append(path)
    return out


TARGETS = [(i, p) for i, obj in enumerate(BASE) for p in _string_paths(obj)]


def _set(obj: Any, path: tuple[Any, ...], value: str) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def test_every_string_field_is_covered() -> None:
    # Guard against the target list silently shrinking.
    assert len(TARGETS) >= 25


@pytest.mark.parametrize("router", list(api.Router))
@pytest.mark.parametrize(
    "target", TARGETS, ids=lambda t: f"{BASE[t[0]]['kind']}:{'.'.join(map(str, t[1]))}"
)
@settings(
    max_examples=len(HOSTILE),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    payload=st.sampled_from(HOSTILE)
    | st.text(min_size=1, max_size=12).map(lambda s: s + "\n" + MARK)
)
def test_hostile_strings_rejected_or_inert(
    router: api.Router, target: tuple[int, tuple[Any, ...]], payload: str
) -> None:
    index, path = target
    objects = copy.deepcopy(BASE)
    _set(objects[index], path, payload)
    model = api.load(objects)
    view = build_view(model, router, "node-a", router_id=ROUTER_ID)
    text = render_view(view)
    assert MARK not in text
    assert "protocol static" not in text
