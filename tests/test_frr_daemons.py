"""Policy to the FRR daemons that use it (``nodeagent.routers.frr_delta``): which daemons
use each prefix-list and route-map entry (``frr_policy_users``), a whole file as vtysh
batches (``frr_commands_by_daemon``), a policy change as batches for the daemons it
concerns (``frr_policy_delta_by_daemon``), and what to take from a daemon that holds
more than it uses (``frr_policy_strays``).

Why it matters (bench/README.md, "where FRR's time goes"): every daemon holding a
route-map runs all of them again when one changes, and vtysh sends every policy command
to every daemon. The namespace tests (tests/netns/test_router_drivers.py) check what
each daemon of a real FRR holds after the driver's applies.
"""

from __future__ import annotations

from pathlib import Path

from nodeagent.routers.frr_delta import (
    POLICY_DAEMONS,
    frr_commands,
    frr_commands_by_daemon,
    frr_policy_delta,
    frr_policy_delta_by_daemon,
    frr_policy_strays,
    frr_policy_users,
    frr_stanzas,
)

GOLDEN = Path(__file__).parent / "golden"
MIXED = (GOLDEN / "mixed.frr.conf").read_text(encoding="utf-8")
CLASSES = (GOLDEN / "bgp-classes.frr.conf").read_text(encoding="utf-8")
RIPNG = (GOLDEN / "ripng.frr.conf").read_text(encoding="utf-8")

EVERYTHING_V4 = "ip prefix-list lbr-sg-everything-v4 seq 280615 permit 192.0.2.0/24 le 32"
INTRANET_V4 = "ip prefix-list lbr-sg-intranet-v4 seq 393152 permit 198.51.100.0/24 ge 27 le 32"
OSPF_INTRANET = "route-map lbr-ospf-export-v4 permit 60343"
BGP_OUT_INTERNET = "route-map lbr-bgp-out-450534003b67-v4 permit 10"
"""The outbound route-map of the IPv4 neighbor (it exports internet and everything)."""
BGP_EXPORT_INTERNET = "route-map lbr-bgp-export-v4 permit 31802"
MARKS = "bgp large-community-list expanded lbr-bgp-marks seq 5 permit ^4294967295:1:"
POLICY = ("ip", "route-map", "bgp large-community-list")
"""How the policy statements of the goldens start."""


def _users(text: str, daemons: tuple[str, ...] = POLICY_DAEMONS) -> dict[str, tuple[str, ...]]:
    return frr_policy_users(frr_stanzas(text), daemons)


def _edited(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_each_entry_goes_to_the_daemons_whose_routers_name_it() -> None:
    users = _users(MIXED)
    assert users[OSPF_INTRANET] == ("ospfd",)
    assert users[INTRANET_V4] == ("ospfd",)
    assert users[BGP_OUT_INTERNET] == ("bgpd",)
    assert users[BGP_EXPORT_INTERNET] == ("bgpd",)
    assert users["route-map lbr-import-none deny 10"] == ("bgpd",)
    # A group announced by BGP and OSPF: its list goes to both.
    assert users[EVERYTHING_V4] == ("bgpd", "ospfd")
    # Large-community lists are BGP commands: bgpd alone, even with no router naming them.
    lists = [h for h in users if h.startswith("bgp large-community-list ")]
    assert MARKS in lists and len(lists) == 3 and {users[h] for h in lists} == {("bgpd",)}
    assert set(users) == {h for h in frr_stanzas(MIXED) if h.startswith(POLICY)}


def test_what_a_route_map_calls_goes_where_the_route_map_goes() -> None:
    users = _users(CLASSES)
    called = [h for h in users if h.startswith(("route-map lbr-class ", "route-map lbr-weight "))]
    assert called, "the golden calls the class and weight maps"
    assert {users[h] for h in called} == {("bgpd",)}
    tiers = [h for h in users if h.startswith("route-map lbr-sg-tiers-ebgp-class-64512 ")]
    assert tiers and {users[h] for h in tiers} == {("bgpd",)}


def test_a_distribute_list_names_its_prefix_list() -> None:
    users = _users(RIPNG)
    out = [h for h in users if h.startswith("ipv6 prefix-list lbr-ripng-out")]
    assert out and {users[h] for h in out} == {("ripngd",)}


def test_unused_entries_and_those_other_statements_name_go_to_every_daemon() -> None:
    text = MIXED.replace("end\n", "ip prefix-list spare seq 5 permit 10.9.0.0/16\nend\n")
    assert _users(text)["ip prefix-list spare seq 5 permit 10.9.0.0/16"] == POLICY_DAEMONS
    # An entry no neighbor uses any more (one with BGP's own ``set`` lines, which only
    # bgpd knows): bgpd keeps it, as every daemon would hold it from vtysh.
    unused = MIXED.replace(
        "  neighbor 10.0.0.1 route-map lbr-bgp-out-450534003b67-v4 out\n",
        "  neighbor 10.0.0.1 route-map lbr-bgp-out-aaaaaaaaaaaa-v4 out\n",
    ).replace("end\n", "route-map lbr-bgp-out-aaaaaaaaaaaa-v4 permit 1\nexit\nend\n")
    assert _users(unused)[BGP_OUT_INTERNET] == POLICY_DAEMONS
    batches = dict(frr_policy_delta_by_daemon(MIXED, unused) or [])
    assert f"no {BGP_OUT_INTERNET}" not in batches["bgpd"]
    assert f"{BGP_OUT_INTERNET}\n match large-community" in batches["ospfd"]
    # A statement that is not a router's (zebra's ``ip protocol``) names a route-map:
    # every daemon gets it, as vtysh would send it.
    text = MIXED.replace("end\n", "ip protocol bgp route-map lbr-ospf-export-v4\nend\n")
    assert _users(text)[OSPF_INTRANET] == POLICY_DAEMONS
    assert _users(text)[INTRANET_V4] == POLICY_DAEMONS


def test_a_router_whose_daemon_is_not_running_leaves_its_policy_to_all() -> None:
    users = _users(MIXED, ("zebra", "bgpd"))
    assert users[OSPF_INTRANET] == ("zebra", "bgpd")
    assert users[BGP_OUT_INTERNET] == ("bgpd",)


def test_a_whole_file_goes_to_each_daemon_without_the_policy_it_does_not_use() -> None:
    batches = frr_commands_by_daemon(MIXED, ("bfdd", *POLICY_DAEMONS))
    files = dict(batches)
    assert len(files) == len(batches) == 8
    policy = (*POLICY, " match", " set", " call", " on-")
    rest = [line for line in frr_commands(MIXED).splitlines() if not line.startswith(policy)]
    for daemon, commands in files.items():
        lines = commands.splitlines()
        assert [line for line in lines if line in rest] == rest, daemon
    bgpd, ospfd = files["bgpd"].splitlines(), files["ospfd"].splitlines()
    assert files["zebra"].splitlines() == files["bfdd"].splitlines() == rest
    assert EVERYTHING_V4 in bgpd and EVERYTHING_V4 in ospfd
    assert INTRANET_V4 in ospfd and INTRANET_V4 not in bgpd
    assert OSPF_INTRANET in ospfd and OSPF_INTRANET not in bgpd
    assert BGP_OUT_INTERNET in bgpd and BGP_OUT_INTERNET not in ospfd
    assert MARKS in bgpd and MARKS not in ospfd + files["zebra"].splitlines()
    # In the file's order: routers (and the neighbors naming route-maps) first.
    assert bgpd.index("router bgp 64600") < bgpd.index(BGP_OUT_INTERNET)
    assert ospfd[ospfd.index(OSPF_INTRANET) + 3] == " set metric 30"
    # Nothing lost: every command of the file is in some batch.
    sent = {line for _, commands in batches for line in commands.splitlines()}
    assert sent == set(frr_commands(MIXED).splitlines())


def test_without_daemons_the_whole_file_goes_to_all() -> None:
    assert frr_commands_by_daemon(MIXED, ()) == [("", frr_commands(MIXED))]


INTERNET_V4_SETS = (
    " set community 65000:666\n set large-community 4294967295:1:31802\n"
    "exit\n!\nroute-map lbr-bgp-export-v4 deny"
)
"""The end of internet's IPv4 redistribution entry (and the start of the next)."""


def test_a_community_change_reaches_bgpd_alone() -> None:
    new = _edited(MIXED, INTERNET_V4_SETS, INTERNET_V4_SETS.replace("666", "777"))
    assert frr_policy_delta_by_daemon(MIXED, new) == [
        ("bgpd", f"{BGP_EXPORT_INTERNET}\n set community 65000:777\n")
    ]


def test_a_selection_change_reaches_bgpd_alone() -> None:
    new = _edited(MIXED, "(16495|31802)", "(31802)")
    assert frr_policy_delta_by_daemon(MIXED, new) == [
        (
            "bgpd",
            "bgp large-community-list expanded lbr-bgp-out-450534003b67-v4 seq 5 permit "
            "_4294967295:1:(31802)_\n",
        )
    ]


def test_an_ospf_metric_change_reaches_ospfd_alone() -> None:
    new = _edited(MIXED, " set metric 30\n", " set metric 40\n")
    assert frr_policy_delta_by_daemon(MIXED, new) == [
        ("ospfd", f"{OSPF_INTRANET}\n set metric 40\n")
    ]


def test_a_list_two_daemons_use_changes_in_both_at_once() -> None:
    new = _edited(MIXED, "192.0.2.0/24 le 32", "192.0.2.0/23 le 32")
    changed = EVERYTHING_V4.replace("192.0.2.0/24", "192.0.2.0/23")
    assert frr_policy_delta_by_daemon(MIXED, new) == [
        ("bgpd", f"{changed}\n"),
        ("ospfd", f"{changed}\n"),
    ]


EXPORT_INTRANET = (
    "route-map lbr-bgp-export-v4 permit 60343\n"
    " match interface kube-lb0\n"
    " match ip address prefix-list lbr-sg-intranet-v4\n"
    "exit\n"
)


def test_a_group_bgp_starts_to_announce_joins_bgpd_and_leaves_ospfd_alone() -> None:
    new = _edited(
        MIXED,
        "route-map lbr-bgp-export-v4 deny",
        f"{EXPORT_INTRANET}route-map lbr-bgp-export-v4 deny",
    )
    batches = frr_policy_delta_by_daemon(MIXED, new)
    assert batches == [
        (
            "bgpd",
            f"{INTRANET_V4}\nroute-map lbr-bgp-export-v4 permit 60343\n"
            " match interface kube-lb0\n match ip address prefix-list lbr-sg-intranet-v4\n",
        )
    ]
    # And back: bgpd drops the entry and then the list; ospfd keeps its own.
    assert frr_policy_delta_by_daemon(new, MIXED) == [
        ("bgpd", f"no route-map lbr-bgp-export-v4 permit 60343\nno {INTRANET_V4}\n")
    ]


def test_the_batches_send_what_one_delta_would() -> None:
    edits = [
        (" set metric 30\n", " set metric 40\n"),
        ("192.0.2.0/24 le 32", "192.0.2.0/23 le 32"),
        (f"{INTRANET_V4}\n", ""),
        (INTERNET_V4_SETS, INTERNET_V4_SETS.replace(" set community 65000:666\n", "")),
        ("(16495|31802)", "(31802)"),
    ]  # fmt: skip
    for old, new in edits:
        text = _edited(MIXED, old, new)
        whole = frr_policy_delta(MIXED, text)
        batches = frr_policy_delta_by_daemon(MIXED, text)
        assert whole is not None and batches is not None
        sent = {line for _, commands in batches for line in commands.splitlines()}
        assert sent == set(whole.splitlines()), old


def test_a_change_beyond_policy_is_left_to_frr_reload() -> None:
    new = _edited(MIXED, " timers throttle spf 0 50 1000\n", " timers throttle spf 0 60 1000\n")
    assert frr_policy_delta_by_daemon(MIXED, new) is None


def test_a_neighbor_moving_to_another_route_map_goes_with_bgpds_policy() -> None:
    new = MIXED.replace("lbr-bgp-out-450534003b67-v4", "lbr-bgp-out-aaaaaaaaaaaa-v4")
    batches = frr_policy_delta_by_daemon(MIXED, new)
    assert batches is not None and [d for d, _ in batches] == ["bgpd"]
    lines = batches[0][1].splitlines()
    moved = lines.index("  neighbor 10.0.0.1 route-map lbr-bgp-out-aaaaaaaaaaaa-v4 out")
    new_list = next(i for i, line in enumerate(lines) if "list expanded lbr-bgp-out-aaaa" in line)
    old_list = next(i for i, line in enumerate(lines) if "no bgp large-community-list" in line)
    assert new_list < lines.index("route-map lbr-bgp-out-aaaaaaaaaaaa-v4 permit 10") < moved
    assert moved < lines.index(f"no {BGP_OUT_INTERNET}") < old_list
    assert frr_policy_delta_by_daemon(MIXED, new, ("zebra", "ospfd")) is None


def _held(text: str, heads: list[str]) -> dict[str, tuple[str, ...]]:
    stanzas = frr_stanzas(text)
    return {head: stanzas[head] for head in heads}


def test_strays_are_what_each_daemon_holds_and_does_not_use() -> None:
    policy = [h for h in frr_stanzas(MIXED) if h.startswith(("ip", "route-map"))]
    everything = _held(MIXED, policy)
    held = {"zebra": everything, "bgpd": everything, "ospfd": everything}
    batches = dict(frr_policy_strays(held, MIXED, ("zebra", "bgpd", "ospfd")))
    zebra = batches["zebra"].splitlines()
    assert len(zebra) == len(policy) and all(line.startswith("no ") for line in zebra)
    bgpd, ospfd = batches["bgpd"].splitlines(), batches["ospfd"].splitlines()
    assert f"no {OSPF_INTRANET}" in bgpd and f"no {INTRANET_V4}" in bgpd
    assert f"no {EVERYTHING_V4}" not in bgpd + ospfd
    assert f"no {BGP_OUT_INTERNET}" in ospfd and f"no {OSPF_INTRANET}" not in ospfd
    # Route-map entries go before the lists they match.
    assert bgpd.index(f"no {OSPF_INTRANET}") < bgpd.index(f"no {INTRANET_V4}")


def test_a_stray_is_kept_unless_the_daemons_that_use_it_hold_all_of_it() -> None:
    policy = [h for h in frr_stanzas(MIXED) if h.startswith(("ip", "route-map"))]
    everything = _held(MIXED, policy)
    bgp = {h: v for h, v in everything.items() if h != BGP_OUT_INTERNET}
    # frr-reload.py left ospfd one line of an entry bgpd does not hold: kept.
    ospf = {**_held(MIXED, [OSPF_INTRANET, INTRANET_V4]),
            BGP_OUT_INTERNET: (" set large-comm-list lbr-bgp-marks delete",)}  # fmt: skip
    held = {"bgpd": bgp, "ospfd": ospf}
    assert frr_policy_strays(held, MIXED, ("bgpd", "ospfd")) == [
        ("bgpd", f"no {OSPF_INTRANET}\nno {INTRANET_V4}\n")
    ]
    # bgpd holds the whole entry: ospfd's line of it goes.
    held["bgpd"] = everything
    assert ("ospfd", f"no {BGP_OUT_INTERNET}\n") in frr_policy_strays(
        held, MIXED, ("bgpd", "ospfd")
    )
