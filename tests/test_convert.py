"""``lbroute convert``: MetalLB and PureLB configurations as lbroute's, keeping every address.

Table tests over realistic configurations written by hand in tests/cases/convert/
({metallb,purelb}/CASE/, each with the cluster's Services; nodes.yaml for all): what
each becomes (groups, their pools and announcement, Peers, NodeAgents, Secrets), the
exact set of settings reported as not convertible, and the Services to recreate. Each
case then goes round the CLI: ``lbroute convert -o DIR``, ``lbroute validate`` on the
output for both nodes with BIRD and FRR (their real parsers), and ``lbroute allocate
--dry-run`` on the converted groups with the Services as the written patches leave them:
no Service that holds an address is given another or loses one.

Below the table: the address arithmetic (each converted pool hands out exactly what
MetalLB or PureLB would), durations, selectors and interface patterns, the exit codes,
stdout mode, a conversion that would move an address (refused), and the README's
migration guide showing the command's real output on examples/migration/.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from lbroute.cli import main
from lbroute.cli.convert import SOURCES as CLI_SOURCES
from lbroute.convert import SOURCES, Conversion, convert
from lbroute.convert.purelb import _pattern
from lbroute.convert.values import duration_seconds, merge_selectors
from lbroute.model import api
from lbroute.model.manifests import read_manifests

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "cases" / "convert"
NODES = CASES / "nodes.yaml"
EXAMPLES = ROOT / "examples" / "migration"
Obj = dict[str, Any]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def load(*paths: Path) -> list[Obj]:
    manifests = read_manifests(paths)
    assert manifests.errors == ()
    return list(manifests.objects)


def converted(case: str) -> Conversion:
    return convert(load(CASES / case, NODES), case.split("/")[0])


def by_kind(result: Conversion, kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in result.objects if o["kind"] == kind}


# -- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    groups: dict[str, tuple[str, bool, list[Obj]]]
    """name -> (announce, default, pools)."""
    peers: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    refused: set[tuple[str, str]] = field(default_factory=set)
    """(source object, field) of every setting reported as not converted."""
    recreate: set[str] = field(default_factory=set)


V4_ALL = {"allowNetworkAndBroadcast": True}
TABLE: dict[str, Expected] = {
    "metallb/bgp": Expected(
        groups={
            "public": (
                "routed",
                True,
                [
                    {"cidr": "198.51.100.0/24", "aggregation": "/32", **V4_ALL},
                    {"cidr": "2001:db8:100::/120", "aggregation": "/128", **V4_ALL},
                ],
            ),
            # avoidBuggyIPs: .0 and .255 left out, as MetalLB does
            "partners": (
                "routed",
                False,
                [
                    {"range": "203.0.113.1-203.0.113.254", "aggregation": "/32"},
                ],
            ),
            "aggregated": (
                "routed",
                False,
                [
                    {"cidr": "192.0.2.0/24", "aggregation": "/26", **V4_ALL},
                ],
            ),
        },
        peers={"upstream-a-1", "upstream-a-2", "upstream-b"},
        secrets={"upstream-a-md5", "upstream-b-bgp-password"},
        recreate={"shop/classy"},
    ),
    "metallb/l2": Expected(
        groups={
            "lan": ("local", True, [{"range": "192.0.2.200-192.0.2.220"}]),
            "lan-v6": ("local", False, [{"cidr": "2001:db8:1::100/124", **V4_ALL}]),
        },
        agents={"metallb-l2"},
    ),
    "metallb/refused": Expected(
        groups={
            "both-ways": (
                "routed",
                True,
                [
                    {"cidr": "198.51.100.128/25", "aggregation": "/32", **V4_ALL},
                ],
            ),
            "team-a": (
                "routed",
                False,
                [
                    {"cidr": "198.51.100.0/25", "aggregation": "/25", **V4_ALL},
                ],
            ),
        },
        peers={"tenant-vrf"},
        refused={
            ("AddressPool metallb-system/legacy", ""),
            ("BGPAdvertisement metallb-system/team-a-host", "spec.communities[0]"),
            ("IPAddressPool metallb-system/both-ways", ""),
            ("IPAddressPool metallb-system/team-a", ""),
            ("IPAddressPool metallb-system/team-a", "spec.serviceAllocation"),
            ("IPAddressPool metallb-system/team-a", "spec.autoAssign"),
            ("BGPPeer metallb-system/any-external", "spec.peerASN"),
            ("BGPPeer metallb-system/any-external", "spec.passwordSecret"),
            ("BFDProfile metallb-system/echo", "spec.echoMode"),
            ("BFDProfile metallb-system/echo", "spec.echoInterval"),
            ("BGPPeer metallb-system/tenant-vrf", "spec.routerID"),
            ("BGPPeer metallb-system/tenant-vrf", "spec.vrf"),
            ("Service team-a/api", "metadata.annotations[metallb.io/some-future-knob]"),
        },
    ),
    "purelb/local-remote": Expected(
        groups={
            "default": (
                "local",
                True,
                [
                    {"range": "192.0.2.100-192.0.2.150", "subnet": "192.0.2.0/24"},
                    {"cidr": "2001:db8:2::100/120", "subnet": "2001:db8:2::/64"},
                ],
            ),
            "routed": (
                "routed",
                False,
                [
                    {
                        "cidr": "2001:db8:300::/120",
                        "subnet": "2001:db8:300::/64",
                        "aggregation": "/128",
                        **V4_ALL,
                    },
                    {
                        "cidr": "203.0.113.0/26",
                        "subnet": "203.0.113.0/24",
                        "aggregation": "/26",
                        **V4_ALL,
                    },
                    {"range": "203.0.113.200-203.0.113.220", "subnet": "203.0.113.0/24"},
                ],
            ),
        },
        peers={"default-10.0.0.1", "default-fd00--1"},
        agents={"default"},
        secrets={"bgp-upstream-a", "default-fd00--1-bgp-password"},
        recreate={"office/printer"},
    ),
    "purelb/refused": Expected(
        groups={
            "default": (
                "local",
                True,
                [{"range": "192.0.2.10-192.0.2.20", "subnet": "192.0.2.0/24"}],
            ),
        },
        agents={"default"},
        refused={
            ("ServiceGroup purelb-system/ipam", "spec.netbox"),
            ("ServiceGroup purelb-system/default", "spec.local.skipIPv6DAD"),
            ("ServiceGroup purelb-system/default", "spec.local.v4pool.aggregation"),
            ("BGPConfiguration purelb-system/default", "spec.global.routerID"),
            ("BGPConfiguration purelb-system/default", "spec.global.listenPort"),
            ("BGPConfiguration purelb-system/default", "spec.policyDefinitions"),
            ("BGPConfiguration purelb-system/default", "spec.neighbors[0].config.adminDown"),
            ("BGPConfiguration purelb-system/default", "spec.neighbors[0].config.peerGroup"),
            ("BGPConfiguration purelb-system/default", "spec.neighbors[0].transport.passiveMode"),
            ("BGPConfiguration purelb-system/default", "spec.neighbors[0].afiSafis[0].family"),
            ("LBNodeAgent purelb-system/default", "spec.local.localInterface"),
            ("LBNodeAgent purelb-system/default", "spec.local.garpConfig.count"),
            ("LBNodeAgent purelb-system/default", "spec.local.garpConfig.interval"),
            ("LBNodeAgent purelb-system/default", "spec.local.addressConfig"),
            ("Service office/app", "metadata.annotations[purelb.io/allow-local]"),
        },
    ),
}


def test_every_case_directory_is_in_the_table() -> None:
    found = {f"{p.parent.name}/{p.name}" for p in CASES.glob("*/*") if p.is_dir()}
    assert found == set(TABLE)


@pytest.mark.parametrize("case", sorted(TABLE))
def test_case_converts_as_expected(case: str) -> None:
    expected = TABLE[case]
    result = converted(case)
    groups = {
        name: (g["spec"]["announce"], g["spec"].get("default", False), g["spec"]["pools"])
        for name, g in by_kind(result, "ServiceGroup").items()
    }
    assert groups == expected.groups
    assert set(by_kind(result, "Peer")) == expected.peers
    assert set(by_kind(result, "NodeAgent")) == expected.agents
    assert set(by_kind(result, "Secret")) == expected.secrets
    refused = {(f.source, f.path) for f in result.report.refused}
    assert refused == expected.refused, result.report.text()
    assert {line.split(":")[0] for line in result.report.recreate} == expected.recreate
    # the self-check: valid as lbroute validate loads it, and no address moves
    assert result.report.invalid == [], result.report.text()
    assert result.report.moves == [], result.report.text()
    assert any(line.startswith("allocation: 0 addresses moved") for line in result.report.check)
    assert result.ok is (not expected.refused)


def _apply_patches(services: list[Obj], patches: list[Obj], recreate: set[str]) -> list[Obj]:
    """The Services after ``kubectl patch --type merge`` with each patch (and, for those to
    recreate, as recreated with lbroute's class)."""
    by_ref = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in patches}
    out = []
    for svc in services:
        meta = svc["metadata"]
        ref = (meta.get("namespace", "default"), meta["name"])
        annotations = dict(meta.get("annotations") or {})
        for key, value in (
            by_ref.get(ref, {}).get("metadata", {}).get("annotations") or {}
        ).items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        new = {**svc, "metadata": {**meta, "annotations": annotations}}
        if f"{ref[0]}/{ref[1]}" in recreate:
            new["spec"] = {**svc["spec"], "loadBalancerClass": "lbroute.io/lbroute"}
        out.append(new)
    return out


@pytest.mark.parametrize("case", sorted(TABLE))
def test_case_round_trip_through_convert_validate_and_allocate(case: str, tmp_path: Path) -> None:
    expected = TABLE[case]
    source = case.split("/")[0]
    out = tmp_path / "out"
    args: list[str | Path] = [
        "convert",
        "--from",
        source,
        "-f",
        CASES / case,
        "-f",
        NODES,
        "-o",
        out,
    ]
    result = run(*args)
    assert result.exit_code == (1 if expected.refused else 0), result.output
    assert "Traceback" not in result.output
    if expected.refused:
        assert f"error: {len(expected.refused)} settings could not be converted" in result.stderr
        result = run(*args, "--allow-partial")
        assert result.exit_code == 0, result.output
    assert "0 addresses moved" in result.stderr
    assert (out / "report.txt").read_text() in result.stderr
    assert (out / "lbroute.yaml").stat().st_mode & 0o777 == 0o600  # it may hold passwords
    # lbroute validate, with the routers' own parsers
    for node in ("node-a", "node-b"):
        for router in ("bird", "frr"):
            checked = run(
                "validate",
                "-f",
                out / "lbroute.yaml",
                "-f",
                NODES,
                "--node",
                node,
                "--router",
                router,
            )
            assert checked.exit_code == 0, checked.output
            assert checked.stdout.startswith(f"OK: {router} accepts"), checked.output
    # lbroute allocate --dry-run on the Services as the patches leave them
    services = [o for o in load(CASES / case) if o.get("kind") == "Service"]
    patches = [d for d in yaml.safe_load_all((out / "services.yaml").read_text()) if d]
    patched = tmp_path / "services.yaml"
    patched.write_text(yaml.safe_dump_all(_apply_patches(services, patches, expected.recreate)))
    allocated = run(
        "allocate", "--dry-run", "--default-class", "-f", out / "lbroute.yaml", "-f", patched
    )
    assert allocated.exit_code == 0, allocated.output
    assert "error:" not in allocated.stderr
    holding = {
        f"{s['metadata'].get('namespace', 'default')}/{s['metadata']['name']}"
        for s in services
        if (s.get("status") or {}).get("loadBalancer", {}).get("ingress")
    }
    for line in allocated.stdout.splitlines():
        ref = line.split(":")[0]
        if ref in holding:
            assert ": keeps " in line, f"{case}: an address would move: {line}"
        assert "would release" not in line, line


# -- pools: exactly the addresses the other tool hands out -----------------------------------


def _metallb_pool(addresses: list[str], *, avoid: bool, aggregation: int | None) -> list[Obj]:
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "p", "namespace": "metallb-system"},
        "spec": {"addresses": addresses, "avoidBuggyIPs": avoid},
    }
    ad: Obj = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "BGPAdvertisement",
        "metadata": {"name": "a", "namespace": "metallb-system"},
        "spec": {},
    }
    if aggregation is not None:
        ad["spec"]["aggregationLength"] = aggregation
    return [pool, ad]


def _handed_out(result: Conversion) -> set[int]:
    model = api.load(result.objects)
    assert model.errors == ()
    found: set[int] = set()
    for group in model.service_groups:
        for pool in group.pools:
            reserved = {int(a) for a in pool.reserved}
            found |= {n for n in range(int(pool.first), int(pool.last) + 1) if n not in reserved}
    return found


def _expected(addresses: list[str], avoid: bool) -> set[int]:
    found: set[int] = set()
    for text in addresses:
        if "-" in text:
            a, b = (int(ipaddress.ip_address(x)) for x in text.split("-"))
        else:
            net = ipaddress.ip_network(text)
            a, b = int(net.network_address), int(net.broadcast_address)
        v4 = ":" not in text
        found |= {n for n in range(a, b + 1) if not (avoid and v4 and n & 0xFF in (0, 0xFF))}
    return found


@pytest.mark.parametrize(
    ("addresses", "avoid", "aggregation"),
    [
        (["198.51.100.0/24"], False, None),
        (["198.51.100.0/24"], True, None),
        (["198.51.100.0/23"], True, 24),
        (["198.51.100.0/23"], True, 23),
        (["198.51.100.0/25"], True, 25),
        (["203.0.113.10-203.0.113.60"], False, None),
        (["198.51.100.250-198.51.101.5"], True, None),
        (["203.0.113.0-203.0.113.127"], False, 26),
        (["192.0.2.0/24"], False, 26),
        (["2001:db8::/120", "2001:db8:1::10-2001:db8:1::2f"], True, None),
    ],
)
def test_metallb_pool_hands_out_exactly_what_metallb_does(
    addresses: list[str], avoid: bool, aggregation: int | None
) -> None:
    result = convert(_metallb_pool(addresses, avoid=avoid, aggregation=aggregation), "metallb")
    assert result.report.refused == []
    assert _handed_out(result) == _expected(addresses, avoid)
    model = api.load(result.objects)
    want = 32 if aggregation is None else aggregation
    assert {p.aggregation for g in model.service_groups for p in g.pools if p.family == "ipv4"} <= {
        want
    }


def test_metallb_aggregation_longer_than_a_range_block_is_refused() -> None:
    result = convert(
        _metallb_pool(["203.0.113.10-203.0.113.60"], avoid=False, aggregation=24), "metallb"
    )
    [finding] = result.report.refused
    assert finding.path == "spec.addresses[0]"
    assert "longer than the aggregation length /24" in finding.message
    assert _handed_out(result) == _expected(["203.0.113.10-203.0.113.60"], False)


@pytest.mark.parametrize(
    ("pool", "subnet", "aggregation", "want"),
    [
        ("192.0.2.0/26", "192.0.2.0/24", "default", 24),
        ("192.0.2.0/26", "192.0.2.0/24", "26", 26),
        ("192.0.2.10-192.0.2.20", "192.0.2.0/24", None, 24),
        ("2001:db8::/120", "2001:db8::/64", "128", 128),
    ],
)
def test_purelb_remote_pool_keeps_every_address_subnet_and_aggregation(
    pool: str, subnet: str, aggregation: str | None, want: int
) -> None:
    entry = {"pool": pool, "subnet": subnet}
    if aggregation is not None:
        entry["aggregation"] = aggregation
    group = {
        "apiVersion": "purelb.io/v2",
        "kind": "ServiceGroup",
        "metadata": {"name": "g", "namespace": "purelb-system"},
        "spec": {"remote": {"v6pool" if ":" in pool else "v4pool": entry}},
    }
    result = convert([group], "purelb")
    assert result.report.refused == []
    assert _handed_out(result) == _expected([pool], False)
    [g] = api.load(result.objects).service_groups
    assert [str(p.subnet) for p in g.pools] == [subnet]
    assert [p.aggregation for p in g.pools] == [want]


# -- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("1m30s", 90),
        ("300ms", 0.3),
        ("1h", 3600),
        ("0", 0),
        (90, 90),
        ("2m0.5s", 120.5),
        ("5", None),
        ("", None),
        ("90 s", None),
        ("s", None),
        (True, None),
        ("1d", None),
    ],
)
def test_duration_seconds(value: Any, seconds: float | None) -> None:
    assert duration_seconds(value) == seconds


def test_fractional_seconds_are_refused_where_lbroute_takes_whole_ones() -> None:
    peer = {
        "apiVersion": "metallb.io/v1beta2",
        "kind": "BGPPeer",
        "metadata": {"name": "p", "namespace": "metallb-system"},
        "spec": {"myASN": 64512, "peerASN": 65001, "peerAddress": "10.0.0.1", "holdTime": "1500ms"},
    }
    result = convert([peer], "metallb")
    [finding] = result.report.refused
    assert (finding.path, finding.source) == ("spec.holdTime", "BGPPeer metallb-system/p")
    assert "'1500ms' is not valid for lbroute; expected a whole number of seconds" in str(finding)


@pytest.mark.parametrize(
    ("selectors", "merged", "ok"),
    [
        ([], None, True),
        ([{"matchLabels": {"a": "1"}}, None], None, True),
        (
            [{"matchLabels": {"zone": "r1"}}, {"matchLabels": {"zone": "r2"}}],
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["r1", "r2"]}]},
            True,
        ),
        (
            [
                {"matchLabels": {"zone": "r1"}},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["r2", "r3"]}]},
            ],
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["r1", "r2", "r3"]}]},
            True,
        ),
        ([{"matchLabels": {"zone": "r1"}}, {"matchLabels": {"rack": "r2"}}], None, False),
        (
            [{"matchLabels": {"zone": "r1", "edge": "y"}}, {"matchLabels": {"zone": "r2"}}],
            None,
            False,
        ),
    ],
)
def test_node_selectors_are_merged_only_when_one_selector_says_the_same(
    selectors: list[Any], merged: Any, ok: bool
) -> None:
    assert merge_selectors(selectors) == (merged, ok)


@pytest.mark.parametrize(
    ("regex", "pattern"),
    [
        ("default", "default"),
        ("eth.*", "eth*"),
        ("^enp0s.+$", "enp0s?*"),
        ("eth1", "eth1"),
        ("(eth|ens)[0-9]+", None),
        ("eth\\d", None),
    ],
)
def test_purelb_interface_regex_as_shell_pattern(regex: str, pattern: str | None) -> None:
    assert _pattern(regex) == pattern


def test_cli_offers_the_sources_the_library_converts() -> None:
    assert CLI_SOURCES == SOURCES


# -- what the conversion writes ---------------------------------------------------------------


def test_metallb_bgp_peers_communities_bfd_and_passwords() -> None:
    result = converted("metallb/bgp")
    peers = by_kind(result, "Peer")
    a1 = peers["upstream-a-1"]["spec"]
    assert a1["nodeSelector"] == {"matchLabels": {"topology.kubernetes.io/zone": "rack-1"}}
    assert peers["upstream-a-2"]["spec"]["nodeSelector"] == {
        "matchLabels": {"topology.kubernetes.io/zone": "rack-2"}
    }
    assert a1["bgp"] == {
        "address": "10.0.0.1",
        "asn": 65001,
        "localASN": 64512,
        "holdTime": 90,
        "keepaliveTime": 30,
        "connectTime": 10,
        "gracefulRestart": True,
        "passwordSecretRef": {"name": "upstream-a-md5", "key": "password"},
        "bfd": {"minRx": 200, "minTx": 200, "multiplier": 4},
        "families": ["ipv4"],
    }
    assert "serviceGroupSelector" not in a1  # every advertisement reaches it
    b = peers["upstream-b"]["spec"]
    assert b["serviceGroupSelector"] == {  # not the aggregated pool, advertised to A only
        "matchExpressions": [
            {"key": "lbroute.io/group", "operator": "In", "values": ["partners", "public"]}
        ]
    }
    assert (b["bgp"]["holdTime"], b["bgp"]["keepaliveTime"], b["bgp"]["port"]) == (9, 3, 1179)
    secrets = by_kind(result, "Secret")
    assert secrets["upstream-b-bgp-password"]["stringData"] == {"password": "Example-Only.B2"}
    assert secrets["upstream-a-md5"]["metadata"]["namespace"] == "lbroute"  # copied over
    assert secrets["upstream-a-md5"]["data"] == {"password": "RXhhbXBsZS1Pbmx5LkEx"}
    public = by_kind(result, "ServiceGroup")["public"]["spec"]
    assert public["bgp"] == {  # the aliases resolved, large ones apart
        "communities": ["65001:200", "65001:666"],
        "largeCommunities": ["64512:1:100"],
        "localPref": 150,
    }
    aggregated = by_kind(result, "ServiceGroup")["aggregated"]["spec"]
    assert aggregated["nodeSelector"] == {
        "matchExpressions": [
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["rack-1", "rack-2"]}
        ]
    }
    model = api.load(result.objects)
    carried = {
        p.name: sorted(g.name for g in model.service_groups if p.carries(g)) for p in model.peers
    }
    assert carried == {
        "upstream-a-1": ["aggregated", "partners", "public"],
        "upstream-a-2": ["aggregated", "partners", "public"],
        "upstream-b": ["partners", "public"],
    }
    assert all(p.bgp is not None and p.bgp.password for p in model.peers)  # resolved


def test_metallb_service_patches_rename_and_pin() -> None:
    result = converted("metallb/bgp")
    patches = {p.ref: p.patch["metadata"]["annotations"] for p in result.services if p.patch}
    assert patches["infra/dns-tcp"] == {
        "lbroute.io/addresses": "198.51.100.53",
        "lbroute.io/allow-shared-ip": "dns",
        "metallb.universe.tf/allow-shared-ip": None,
        "metallb.universe.tf/loadBalancerIPs": None,
    }
    assert patches["shop/web"] == {"lbroute.io/addresses": "198.51.100.10"}
    assert patches["shop/web-dual"] == {
        "lbroute.io/addresses": "198.51.100.11,2001:db8:100::11",
        "metallb.io/ip-allocated-from-pool": None,
    }
    assert patches["b2b/edge-zero"]["lbroute.io/service-group"] == "aggregated"
    assert "shop/internal" not in {p.ref for p in result.services}  # a ClusterIP Service
    assert result.default_class


def test_service_holding_an_address_of_a_group_it_does_not_name_is_pinned_to_it() -> None:
    objects = [
        *_metallb_pool(["198.51.100.0/24"], avoid=False, aggregation=None),
        *_metallb_pool(["203.0.113.0/24"], avoid=False, aggregation=None),
    ]
    objects[2]["metadata"]["name"] = "second"
    objects[2]["spec"]["autoAssign"] = False
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "n"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}},
    }
    result = convert([*objects, svc], "metallb")
    [patched] = result.services
    assert patched.patch["metadata"]["annotations"] == {
        "lbroute.io/addresses": "203.0.113.9",
        "lbroute.io/service-group": "second",
    }
    assert result.report.moves == []


def test_an_address_in_no_pool_is_reported_and_the_output_refused(tmp_path: Path) -> None:
    objects = _metallb_pool(["198.51.100.0/24"], avoid=False, aggregation=None)
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "n"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.77"}]}},
    }
    result = convert([*objects, svc], "metallb")
    assert result.report.unsafe and not result.ok
    assert any("192.0.2.77" in m and "outside" in m for m in result.report.moves), (
        result.report.moves
    )
    path = tmp_path / "in.yaml"
    path.write_text(yaml.safe_dump_all([*objects, svc]))
    cli = run("convert", "--from", "metallb", "-f", path, "--allow-partial")
    assert cli.exit_code == 1
    assert "do not apply it" in cli.stderr


def test_stdout_mode_writes_objects_then_service_patches(tmp_path: Path) -> None:
    result = run("convert", "--from", "metallb", "-f", CASES / "metallb/bgp", "-f", NODES)
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = [d["kind"] for d in docs]
    first_service = kinds.index("Service")
    assert set(kinds[:first_service]) == {"ServiceGroup", "Peer", "Secret"}
    assert set(kinds[first_service:]) == {"Service"}
    assert result.stderr.splitlines()[-1].startswith("OK: ")
    assert "Converted:" in result.stderr and "Converted:" not in result.stdout


def test_objects_of_the_other_tool_are_refused_naming_the_option(tmp_path: Path) -> None:
    result = convert(load(CASES / "purelb/local-remote"), "metallb")
    sources = {f.source for f in result.report.refused}
    assert "ServiceGroup purelb-system/routed" in sources
    assert all(
        "--from purelb" in f.message
        for f in result.report.refused
        if f.source.startswith(("ServiceGroup", "LBNodeAgent", "BGPConfiguration"))
    )


def test_unreadable_input_converts_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    result = run("convert", "--from", "metallb", "-f", bad)
    assert result.exit_code == 1
    assert "nothing converted" in result.stderr and result.stdout == ""


# -- the examples and the README ----------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_migration_example_converts_cleanly(source: str, tmp_path: Path) -> None:
    result = run("convert", "--from", source, "-f", EXAMPLES / source, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    assert "0 addresses moved" in result.stderr


def _readme_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Moving from MetalLB or PureLB")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def test_readme_guide_shows_the_commands_real_output(tmp_path: Path) -> None:
    section = _readme_section()
    steps = [m.group(1) for m in re.finditer(r"^(\d)\. \*\*", section, re.M)]
    assert steps == ["1", "2", "3", "4", "5"]
    order = [section.index(f"**{w}") for w in ("Convert", "Stop", "Apply", "Move", "Verify")]
    assert order == sorted(order)
    result = run("convert", "--from", "metallb", "-f", EXAMPLES / "metallb", "-o", tmp_path)
    for line in result.stderr.splitlines():
        line = line.replace(str(tmp_path), "migration")
        assert line in section, f"the README does not show this line of the output: {line}"


def test_namespace_option_puts_everything_there(tmp_path: Path) -> None:
    args: list[str | Path] = ["convert", "--from", "metallb", "--namespace", "netops"]
    result = run(*args, "-f", CASES / "metallb/bgp", "-f", NODES, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all((tmp_path / "lbroute.yaml").read_text()) if d]
    assert {d["metadata"]["namespace"] for d in docs} == {"netops"}
    assert "Secret metallb-system/upstream-a-md5 -> Secret netops/upstream-a-md5" in result.stderr


def test_a_name_written_twice_gets_a_suffix() -> None:
    peers = [
        {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
         "metadata": {"name": name, "namespace": "metallb-system"},
         "spec": {"myASN": 64512, "peerASN": 65001, "peerAddress": address,
                  "nodeSelectors": selectors}}
        for name, address, selectors in (
            ("edge", "10.0.0.1", [{"matchLabels": {"a": "1"}}, {"matchLabels": {"a": "2"}}]),
            ("edge-1", "10.0.0.2", []),
        )
    ]  # fmt: skip
    result = convert(peers, "metallb")
    assert set(by_kind(result, "Peer")) == {"edge-1", "edge-2", "edge-1-2"}
    assert api.load(result.objects).errors == ()


def test_multihop_bfd_without_a_source_address_is_refused_and_the_peer_stays_valid() -> None:
    objects = [
        {"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
         "metadata": {"name": "fast", "namespace": "metallb-system"}, "spec": {}},
        {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
         "metadata": {"name": "far", "namespace": "metallb-system"},
         "spec": {"myASN": 64512, "peerASN": 65001, "peerAddress": "192.0.2.1",
                  "ebgpMultiHop": True, "bfdProfile": "fast"}},
    ]  # fmt: skip
    result = convert(objects, "metallb")
    [finding] = result.report.refused
    assert (finding.source, finding.path) == ("BGPPeer metallb-system/far", "spec.bfdProfile")
    assert "without BFD" in finding.message
    peer = by_kind(result, "Peer")["far"]["spec"]["bgp"]
    assert peer["ebgpMultihop"] == 255 and "bfd" not in peer
    assert not result.report.unsafe
