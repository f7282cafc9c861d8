"""``nodeagent.routers.frr_delta``: ``frr_policy_delta``, the vtysh commands FrrDriver
sends instead of a whole ``frr-reload.py --reload`` when a configuration changes only in
prefix-lists and route-maps (or in the outbound route-map a BGP neighbor uses);
``frr_stanzas``, which splits FRR's canonical form into statements; ``frr_hostnames``,
the hostnames a configuration or ``show running-config`` names; ``frr_runs``, whether
``show running-config`` shows a text running (the driver's quick check); ``frr_is_empty``,
which tells daemons that run nothing; ``frr_commands``, a whole file as commands.

Table-driven: each case is an edit of a golden FRR configuration (or of a small
``router bgp`` statement) and the exact commands expected (``None``: frr-reload.py must
decide). The netns tests check that FRR ends up running the new text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.routers.frr_delta import (
    frr_bfd_defaults,
    frr_commands,
    frr_hostnames,
    frr_is_empty,
    frr_not_reloaded,
    frr_not_reloaded_commands,
    frr_policy_delta,
    frr_runs,
    frr_stanzas,
    frr_version_line,
)

GOLDEN = Path(__file__).parent / "golden"
POLICY = (GOLDEN / "bgp-policy.frr.conf").read_text(encoding="utf-8")

BRONZE_V4 = "ip prefix-list lbr-sg-bronze-v4 seq 992499 permit 192.0.2.128/25 le 32"
GOLD_OUT = "route-map lbr-bgp-export-v4 permit 61917"
"""Gold's redistribution entry: its attributes towards every neighbor."""
GOLD_COMMUNITIES = " set community 65000:100 65000:200"
SELECTION = "route-map lbr-bgp-out-e62117e280fb-v4 permit 10"
"""The outbound route-map of the neighbor that exports gold alone."""
SELECTION_LIST = (
    "bgp large-community-list expanded lbr-bgp-out-e62117e280fb-v4 seq 5 permit "
    "_4294967295:1:(61917)_"
)


def _entry(head: str, text: str = POLICY) -> tuple[str, ...]:
    return frr_stanzas(text)[head]


def test_golden_splits_into_its_statements() -> None:
    stanzas = frr_stanzas(POLICY)
    assert stanzas[BRONZE_V4] == ()
    assert stanzas["route-map lbr-import-none deny 10"] == ()
    assert GOLD_COMMUNITIES in stanzas[GOLD_OUT]
    assert stanzas[SELECTION_LIST] == ()
    assert " address-family ipv4 unicast" in stanzas["router bgp 64512"]
    assert not any(head.startswith(("!", "exit", "end")) for head in stanzas)


@pytest.mark.parametrize(
    "text",
    ["router bgp 1\n neighbor a\n neighbor a\nexit\nrouter bgp 1\n", " stray\n"],
    ids=["statement twice", "indented line first"],
)
def test_what_is_not_canonical_form_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        frr_stanzas(text)
    assert frr_policy_delta(text, POLICY) is None
    assert frr_policy_delta(POLICY, text) is None


def _with(old: str, new: str, text: str = POLICY) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _in_gold_out(old: str, new: str) -> str:
    """Edit the route-map entry GOLD_OUT (``old`` once after it in the golden)."""
    head, tail = POLICY.split(GOLD_OUT)
    assert tail.count(old) == 1, old
    return head + GOLD_OUT + tail.replace(old, new)


CASES: list[tuple[str, str, str | None]] = [
    ("nothing changed", POLICY, ""),
    (
        "a route-map line changes: set again, no 'no'",
        _in_gold_out(GOLD_COMMUNITIES, " set community 64512:999"),
        f"{GOLD_OUT}\n set community 64512:999\n",
    ),
    (
        "a kind of line goes away: removed with 'no'",
        _in_gold_out(GOLD_COMMUNITIES + "\n", ""),
        f"{GOLD_OUT}\n no set community\n",
    ),
    (
        "a prefix-list entry and a route-map entry come",
        _with(
            "route-map lbr-import-none deny 10\n",
            "route-map lbr-import-none deny 10\nexit\n!\n"
            "route-map lbr-new permit 7\n match ip address prefix-list lbr-sg-new-v4\n",
        ).replace(BRONZE_V4, f"{BRONZE_V4}\nip prefix-list lbr-sg-new-v4 seq 5 permit 10.9.0.0/16"),
        "ip prefix-list lbr-sg-new-v4 seq 5 permit 10.9.0.0/16\n"
        "route-map lbr-new permit 7\n match ip address prefix-list lbr-sg-new-v4\n",
    ),
    (
        "entries go: route-maps first, then prefix-lists",
        _with(f"{BRONZE_V4}\n", "").replace(
            "\n".join((GOLD_OUT, *_entry(GOLD_OUT), "exit", "!")) + "\n", ""
        ),
        f"no {GOLD_OUT}\nno {BRONZE_V4}\n",
    ),
    (
        "an entry keeps its number: set again, never removed (FRR keys it by number)",
        _with(BRONZE_V4, BRONZE_V4.replace("le 32", "le 30")).replace(
            GOLD_OUT, GOLD_OUT.replace("permit", "deny")
        ),
        f"{BRONZE_V4.replace('le 32', 'le 30')}\n{GOLD_OUT.replace('permit', 'deny')}\n",
    ),
    (
        "a prepend of several ASNs goes: removed by its kind (vtysh takes one ASN at most)",
        POLICY.replace(" set as-path prepend 64512 64512 64512\n", ""),
        "route-map lbr-bgp-act-ebgp-64512-v4 permit 36437\n no set as-path prepend\n",
    ),
    (
        "a neighbor moves to another route-map: re-pointed after it exists, before the "
        "old one goes",
        _with(
            "route-map lbr-bgp-out-e62117e280fb-v4 out", "route-map lbr-bgp-out-8d016618146f-v4 out"
        )
        .replace("\n".join((SELECTION, *_entry(SELECTION), "exit", "!")) + "\n", "")
        .replace(f"{SELECTION_LIST}\n", ""),
        "router bgp 64512\n address-family ipv4 unicast\n"
        "  neighbor 10.0.0.2 route-map lbr-bgp-out-8d016618146f-v4 out\n"
        f"no {SELECTION}\nno {SELECTION_LIST}\n",
    ),
    (
        "a selection gains a group: its list entry is set again under its number",
        _with(SELECTION_LIST, SELECTION_LIST.replace("(61917)", "(36437|61917)")),
        f"{SELECTION_LIST.replace('(61917)', '(36437|61917)')}\n",
    ),
    (
        "list entries come before the route-maps, go after them (large-community lists, "
        "then prefix-lists, as in the file)",
        _with(SELECTION_LIST, SELECTION_LIST.replace("seq 5", "seq 10"))
        .replace(BRONZE_V4, BRONZE_V4.replace("seq 992499", "seq 7"))
        .replace(GOLD_COMMUNITIES, " set community 1:1"),
        f"{SELECTION_LIST.replace('seq 5', 'seq 10')}\n"
        f"{BRONZE_V4.replace('seq 992499', 'seq 7')}\n{GOLD_OUT}\n set community 1:1\n"
        f"no {SELECTION_LIST}\nno {BRONZE_V4}\n",
    ),
    (
        "a neighbor's inbound route-map changes: frr-reload.py decides",
        _with(
            "neighbor 10.0.0.2 route-map lbr-import-none in",
            "neighbor 10.0.0.2 route-map lbr-bgp-export-v4 in",
        ),
        None,
    ),
    (
        "a neighbor changes: frr-reload.py decides",
        _with("neighbor 10.0.0.2 route-map lbr-import-none in", "neighbor 10.0.0.2 activate"),
        None,
    ),
    ("the hostname changes", _with("hostname node-a", "hostname other"), None),
]


@pytest.mark.parametrize(("name", "new", "expected"), CASES, ids=[c[0] for c in CASES])
def test_policy_delta(name: str, new: str, expected: str | None) -> None:
    assert frr_policy_delta(POLICY, new) == expected


BGP = """\
router bgp 64512
 neighbor 10.0.0.1 remote-as 65000
 neighbor 10.0.0.2 remote-as 65000
 !
 address-family ipv4 unicast
  neighbor 10.0.0.1 route-map lbr-a-v4 out
  neighbor 10.0.0.2 route-map lbr-a-v4 out
 exit-address-family
 !
 address-family ipv6 unicast
  neighbor 10.0.0.1 route-map lbr-a-v6 out
 exit-address-family
exit
"""
V4 = "router bgp 64512\n address-family ipv4 unicast\n"
LOOSE = "router bgp 64512\n  neighbor 10.0.0.1 route-map lbr-a-v4 out\nexit\n"

REPOINT_CASES: list[tuple[str, str, str, str | None]] = [
    (
        "both neighbors of a family move: one command each, in that family",
        BGP,
        BGP.replace("lbr-a-v4", "lbr-b-v4"),
        f"{V4}  neighbor 10.0.0.1 route-map lbr-b-v4 out\n"
        f"{V4}  neighbor 10.0.0.2 route-map lbr-b-v4 out\n",
    ),
    (
        "the IPv6 family's neighbor moves",
        BGP,
        BGP.replace("lbr-a-v6", "lbr-b-v6"),
        "router bgp 64512\n address-family ipv6 unicast\n"
        "  neighbor 10.0.0.1 route-map lbr-b-v6 out\n",
    ),
    (
        "an outbound route-map outside any address-family: frr-reload.py decides",
        LOOSE,
        LOOSE.replace("lbr-a-v4", "lbr-b-v4"),
        None,
    ),
    (
        "the line now names another neighbor: frr-reload.py decides",
        BGP,
        BGP.replace("10.0.0.2 route-map", "10.0.0.3 route-map"),
        None,
    ),
    (
        "an inbound route-map: frr-reload.py decides",
        BGP,
        BGP.replace("lbr-a-v6 out", "lbr-a-v6 in"),
        None,
    ),
    (
        "a line more in the router: frr-reload.py decides",
        BGP,
        BGP.replace(
            "  neighbor 10.0.0.1 route-map lbr-a-v6 out\n",
            "  neighbor 10.0.0.1 activate\n  neighbor 10.0.0.1 route-map lbr-a-v6 out\n",
        ),
        None,
    ),
    (
        "another AS number: frr-reload.py decides",
        BGP,
        BGP.replace("router bgp 64512", "router bgp 64513"),
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"), REPOINT_CASES, ids=[c[0] for c in REPOINT_CASES]
)
def test_repointing_a_neighbor(name: str, old: str, new: str, expected: str | None) -> None:
    assert frr_policy_delta(old, new) == expected


def test_commands_carry_no_exit_lines() -> None:
    """One ``exit`` per statement would make FRR's daemons commit once per statement."""
    bare = POLICY.replace("\nroute-map lbr-b", "\nroute-map lbr-x")
    delta = frr_policy_delta(POLICY, bare)
    assert delta is not None
    assert "exit" not in delta.split()
    assert "!" not in delta.split()
    assert delta.count("\nno route-map lbr-b") == POLICY.count("\nroute-map lbr-b")


EMPTY_RUNNING = """Building configuration...

Current configuration:
!
frr version 8.4.4
frr defaults traditional
hostname node-a
no ip forwarding
no ipv6 forwarding
service integrated-vtysh-config
!
end
"""


@pytest.mark.parametrize(
    ("running", "empty"),
    [
        (EMPTY_RUNNING, True),
        (EMPTY_RUNNING.replace("no ip forwarding\n", ""), True),
        (
            EMPTY_RUNNING.replace("!\nend", "!\nip prefix-list x seq 5 permit 10.0.0.0/8\n!\nend"),
            False,
        ),
        (EMPTY_RUNNING.replace("!\nend", "!\nrouter bgp 64512\nexit\n!\nend"), False),
        (
            EMPTY_RUNNING.replace("!\nend", "!\ninterface eth0\n ip ospf area 0\nexit\n!\nend"),
            False,
        ),
        (EMPTY_RUNNING.replace("!\nend", "!\nlog syslog informational\n!\nend"), False),
        ("", False),
        ("% Unknown command", False),
        (EMPTY_RUNNING.replace("!\nend", "!\n stray\n!\nend"), False),
    ],
    ids=[
        "fresh",
        "forwarding on",
        "prefix-list",
        "router",
        "interface",
        "log",
        "nothing",
        "error",
        "not canonical form",
    ],
)
def test_what_counts_as_daemons_running_nothing(running: str, empty: bool) -> None:
    assert frr_is_empty(running) is empty


def test_whole_file_as_commands_keeps_every_statement_and_no_closers() -> None:
    commands = frr_commands(POLICY)
    words = {line.strip() for line in commands.splitlines()}
    assert not words & {"exit", "!", "end"}
    kept = [
        line
        for line in POLICY.splitlines()
        if line.strip() not in ("exit", "end", "") and not line.strip().startswith("!")
    ]
    assert commands.splitlines() == kept
    assert " exit-address-family" in commands.splitlines()
    assert frr_stanzas(commands).keys() == frr_stanzas(POLICY).keys()


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (POLICY, ("node-a",)),
        (EMPTY_RUNNING, ("node-a",)),
        # A daemon started with a hostname of its own: vtysh prints its own and that one.
        (EMPTY_RUNNING.replace("hostname node-a\n", "hostname other\nhostname node-a\n"),
         ("other", "node-a")),
        (POLICY.replace("hostname node-a\n", ""), ()),
        ("router bgp 1\n neighbor hostname x\nexit\n", ()),
    ],
    ids=["rendered", "running", "a daemon's own", "none", "not a top-level hostname"],
)  # fmt: skip
def test_hostnames(text: str, names: tuple[str, ...]) -> None:
    assert frr_hostnames(text) == names


RUNNING_FOREIGN = """\
Building configuration...

Current configuration:
!
frr version 8.4.4
frr defaults traditional
hostname node-a
service integrated-vtysh-config
!
password 8 zebra-login
enable password zebra-enable
agentx
!
line vty
 access-class vty-hosts
 exec-timeout 0 0
 no login
exit
!
end
"""


def test_what_frr_reload_leaves_is_found_and_removed_by_its_no_commands() -> None:
    left = frr_not_reloaded(RUNNING_FOREIGN, POLICY)
    assert left == [
        "password 8 zebra-login",
        "enable password zebra-enable",
        "agentx",
        "line vty",
        " access-class vty-hosts",
        " exec-timeout 0 0",
        " no login",
    ]
    assert frr_not_reloaded_commands(left) == (
        "no password\n"
        "no enable password\n"
        "no agentx\n"
        "line vty\n"
        " no access-class vty-hosts\n"
        " exec-timeout 10 0\n"  # FRR's ``no exec-timeout`` means no timeout at all
        " login\n"
    )


def test_what_the_text_has_and_an_empty_line_vty_are_not_left_over() -> None:
    kept = "password 8 zebra-login\nline vty\n exec-timeout 0 0\nexit\n"
    assert frr_not_reloaded(RUNNING_FOREIGN, POLICY + kept) == [
        "enable password zebra-enable",
        "agentx",
        "line vty",
        " access-class vty-hosts",
        " no login",
    ]
    empty = "Current configuration:\n!\nhostname a\n!\nline vty\nexit\n!\nend\n"
    assert frr_not_reloaded(empty, POLICY) == []
    assert frr_not_reloaded_commands([]) == ""


@pytest.mark.parametrize(
    ("line", "ignored"),
    [
        ("frr version 8.4.4", True),
        ("frr version 9.1-dev", True),
        ("  frr version 9.1", True),
        ("frr defaults traditional", False),
        ("frr version", False),
        ("no hostname frr version", False),
    ],
)
def test_only_the_frr_version_line_is_ignored(line: str, ignored: bool) -> None:
    assert frr_version_line(line) is ignored


def test_bfd_settings_without_a_no_form_are_set_back_to_their_defaults() -> None:
    pending = (
        "Lines To Delete",
        "bfd",
        " profile lbr-500-300-3",
        "  no transmit-interval 900",
        "bfd",
        " peer 10.0.0.1",
        "  no detect-multiplier 5",
        "bfd",
        " profile other",
        "  no echo receive-interval 90",
        "bfd",
        " profile other",
        "  no echo-mode",  # FRR has this one: frr-reload.py removed it
        "ip route 198.18.0.0/16 Null0",
        "Lines To Add",
        "bfd",
        " profile lbr-500-300-3",
        "  no transmit-interval 900",  # not a deletion: left alone
    )
    assert frr_bfd_defaults(pending) == (
        "bfd\n profile lbr-500-300-3\n  transmit-interval 300\n"
        "bfd\n peer 10.0.0.1\n  detect-multiplier 3\n"
        "bfd\n profile other\n  echo receive-interval 50\n"
    )
    assert frr_bfd_defaults(("Lines To Delete", "router bgp 1", "  no transmit-interval 9")) == ""
    assert frr_bfd_defaults(()) == ""


def _shown(text: str) -> str:
    """``text`` as ``show running-config`` prints it: headings, another build's version
    line, no comments, ``end``."""
    lines = ["Building configuration...", "", "Current configuration:", "!"]
    for line in text.splitlines():
        if line.startswith("frr version"):
            lines.append("frr version 8.4.4-dev")
        elif not line.startswith("! "):
            lines.append(line)
    return "\n".join([*lines, "end", ""])


def _edited(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_frr_is_seen_running_the_text_it_shows() -> None:
    assert frr_runs(_shown(POLICY), POLICY)
    stanzas = list(frr_stanzas(POLICY).items())
    reordered = "\n".join(
        "\n".join([head, *body, "exit" if body else "!"]) for head, body in reversed(stanzas)
    )
    assert frr_runs(_shown(reordered), POLICY), "statements print in any order"


@pytest.mark.parametrize(
    ("running", "why"),
    [
        (
            _edited(POLICY, "  neighbor 10.0.0.2 route-map lbr-import-none in\n", ""),
            "a line is missing",
        ),
        (
            _edited(
                POLICY,
                "advertisement-interval 0\n neighbor 10.0.0.2",
                "advertisement-interval 1\n neighbor 10.0.0.2",
            ),
            "a line differs",
        ),
        (_edited(POLICY, f"{BRONZE_V4}\n", ""), "a statement is missing"),
        (POLICY + "ip prefix-list stray seq 5 permit 10.9.0.0/16\n", "a statement is extra"),
        (
            _edited(
                POLICY,
                " neighbor 10.0.0.1 remote-as 65000\n neighbor 10.0.0.1 advertisement-interval 0",
                " neighbor 10.0.0.1 advertisement-interval 0\n neighbor 10.0.0.1 remote-as 65000",
            ),
            "lines of a statement in another order",
        ),
        (_edited(POLICY, "hostname node-a\n", "hostname node-a\nhostname other\n"), "two names"),
        (_edited(POLICY, "hostname node-a\n", "hostname node-a\nhostname node-a\n"), "twice"),
        ("", "nothing"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "",
)
def test_frr_is_not_seen_running_a_text_it_shows_otherwise(running: str, why: str) -> None:
    assert not frr_runs(_shown(running), POLICY), why
