"""The router drivers against real daemons.

BIRD, managed mode: a golden becomes the running configuration; a configuration the
parser rejects, and one that ``bird -p`` accepts but the running BIRD refuses at
``configure`` time (a log file it cannot open), both fail with BIRD's message and the
offending line, while BIRD keeps the previous protocols and the file on disk stays the
previous one, so a restarted BIRD also comes up with the last good configuration.
generation() is stable across applies and changes when BIRD restarts.
(The ``configure undo`` path, taken when BIRD accepts a configuration but the confirm
fails, is not provoked: no real failure between the two birdc calls could be found.)

BIRD, include mode: the fragment is written next to a host configuration and loaded,
by ``birdc configure`` or by a given reload command; a fragment that clashes with the
host configuration (which the wrapper check cannot see) is refused and put back.

FRR: two goldens one after the other each leave ``frr-reload.py --test`` clean; a
configuration ``vtysh --dryrun`` rejects, and one it accepts but bgpd refuses (the
neighbor is a local address), fail as rejected with FRR's message while the running
configuration still equals the previous one; FRR not answering is "unavailable" and
changes nothing. generation() changes when the daemons restart. A change
only in route-maps and prefix-lists goes as a delta through vtysh; when the delta leaves
a difference (the running configuration was changed behind the driver's back), or the
daemons restarted, the whole file is reloaded, and either way ``frr-reload.py --test``
finds nothing left. Daemons that run no configuration get the whole file in one
``vtysh -f``, with IP forwarding they show as off turned on in it (as frr-reload.py
would), so that first apply converges in one step without a whole-file reload.

Sessions: BIRD and FRR peer over a veth pair and both drivers report the BGP session as
Established; FRR runs only zebra, bgpd and staticd, so sessions() also copes with the
daemons that are not running.
"""

from __future__ import annotations

import logging
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lbroute.model.api import Mode, Router
from nodeagent.routers import BirdDriver, FrrDriver, Outcome, Session, check_config
from nodeagent.routers.frr import FRR_RELOAD
from nodeagent.routers.frr_delta import frr_policy_delta, frr_statements
from tests.netns.lab import BirdInstance, FrrInstance, Netns, veth, vtysh_conf

GOLDEN = Path(__file__).parent.parent / "golden"
BIRD_START = "router id 10.0.0.11;\nprotocol device {\n}\n"
TOR_FRR = """\
frr version 8.4.4
frr defaults traditional
hostname {hostname}
service integrated-vtysh-config
!
router bgp 65000
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 neighbor 10.0.0.11 remote-as 64512
 neighbor 10.0.0.11 timers connect 1
exit
!
end
"""


def _golden(name: str) -> str:
    text = (GOLDEN / name).read_text(encoding="utf-8")
    # FRR always prints the system hostname (docs/router-notes.md §1).
    return text.replace("hostname node-a\n", f"hostname {socket.gethostname()}\n")


def _links(ns: Netns, *, eth0: bool = True) -> None:
    for name in ("eth0", "eth1", "eth2", "kube-lb0") if eth0 else ("eth1", "eth2", "kube-lb0"):
        ns.add_ifb(name)


def _protocols(bird: BirdInstance) -> set[str]:
    out = bird.birdc("show", "protocols").stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith("lbr_")}


def _files(directory: Path) -> dict[str, int]:
    """Every file in ``directory`` with its modification time."""
    if not directory.is_dir():
        return {}
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def _frr_changes(frr: FrrInstance, config: Path) -> list[str]:
    """What frr-reload.py --test would still change: [] when FRR runs ``config``."""
    check = frr.reload_tool("--test", config)
    assert check.returncode == 0, check.stderr
    return [
        line
        for line in check.stdout.splitlines()
        if line.strip() and " INFO: " not in line and not set(line) <= {"="}
    ]


def _eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


@pytest.fixture
def other_ns() -> Iterator[Netns]:
    ns = Netns("peer").create()
    try:
        yield ns
    finally:
        ns.delete()


def test_bird_managed_apply_rejects_and_keeps_the_last_good(
    netns: Netns, bird: BirdInstance, tmp_path: Path
) -> None:
    _links(netns)
    config = tmp_path / "bird.conf"
    config.write_text(BIRD_START, encoding="utf-8")
    config.chmod(0o600)
    bird.start(config)
    driver = BirdDriver(config, bird.socket)
    generation = driver.generation()
    assert generation

    good = _golden("bgp-ipv4.bird.conf")
    result = driver.apply(good)
    assert result.ok, result.error
    assert config.read_text(encoding="utf-8") == good
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    running = _protocols(bird)
    assert {"lbr_kernel4", "lbr_bgp_tor"} <= running
    assert driver.is_current(good)

    broken = good.replace("connect retry time 5;", "connect retry 5 s;")
    rejected = driver.apply(broken)
    assert not rejected.ok
    assert rejected.outcome is Outcome.REJECTED
    assert "syntax error" in rejected.error
    line = broken.splitlines().index("  connect retry 5 s;") + 1
    assert f">{line:6d} |   connect retry 5 s;" in rejected.error

    # bird -p does not open log files; the running BIRD does, at configure time.
    late = good.replace("log stderr all;", f'log "{tmp_path}/missing/bird.log" all;')
    assert check_config(Router.BIRD, late).ok
    refused = driver.apply(late)
    assert not refused.ok
    assert refused.outcome is Outcome.REJECTED, "BIRD's configure said no: rejected"
    assert "Unable to open log file" in refused.error
    assert f'>     3 | log "{tmp_path}/missing/bird.log" all;' in refused.error

    for failed in (rejected, refused):
        assert failed.duration > 0
    assert config.read_text(encoding="utf-8") == good
    assert _protocols(bird) == running
    assert driver.generation() == generation

    bird.restart(config)
    restarted = driver.generation()
    assert restarted and restarted != generation
    assert _protocols(bird) == running


def test_bird_include_mode(netns: Netns, bird: BirdInstance, tmp_path: Path) -> None:
    _links(netns)
    fragment = tmp_path / "lbroute.conf"
    fragment.write_text("", encoding="utf-8")
    host = tmp_path / "bird.conf"
    host_text = (
        "router id 10.0.0.11;\nprotocol device {}\ndefine host_only = 1;\n"
        f'include "{fragment}";\n'
    )
    host.write_text(host_text, encoding="utf-8")
    bird.start(host)
    driver = BirdDriver(host, bird.socket, mode=Mode.INCLUDE, include_path=fragment)

    text = _golden("include.bird.conf")
    result = driver.apply(text)
    assert result.ok, result.error
    assert fragment.read_text(encoding="utf-8") == text
    assert host.read_text(encoding="utf-8") == host_text
    assert "lbr_bgp_tor" in _protocols(bird)

    clash = text + "define host_only = 2;\n"
    refused = driver.apply(clash)
    assert not refused.ok
    assert "host_only" in refused.error
    assert fragment.read_text(encoding="utf-8") == text

    reloading = BirdDriver(
        host,
        bird.socket,
        mode=Mode.INCLUDE,
        include_path=fragment,
        reload_command=("birdc", "-s", str(bird.socket), "configure"),
    )
    renamed = text.replace("lbr_bgp_tor", "lbr_bgp_tor2")
    result = reloading.apply(renamed)
    assert result.ok, result.error
    assert {"lbr_bgp_tor2"} <= _protocols(bird)
    assert "lbr_bgp_tor" not in _protocols(bird)
    refused = reloading.apply(clash)
    assert not refused.ok
    assert "host_only" in refused.error
    assert fragment.read_text(encoding="utf-8") == renamed


def test_frr_apply_rejects_and_keeps_the_last_good(
    netns: Netns, frr: FrrInstance, tmp_path: Path
) -> None:
    _links(netns)
    netns.ip("addr", "add", "10.0.0.11/24", "dev", "eth0")
    frr.start()
    config = tmp_path / "frr.conf"
    driver = FrrDriver(config, frr.dir)
    generation = driver.generation()
    assert generation

    first, good = _golden("mixed.frr.conf"), _golden("bgp-ipv4.frr.conf")
    for text in (first, good):
        result = driver.apply(text)
        assert result.ok, result.error
        assert config.read_text(encoding="utf-8") == text
        assert _frr_changes(frr, config) == []
    assert driver.is_current(good)

    rejected = driver.apply(good.replace("timers connect 5", "timers connect 0"))
    assert not rejected.ok
    assert rejected.outcome is Outcome.REJECTED
    assert "neighbor 10.0.0.1 timers connect 0" in rejected.error

    # vtysh --dryrun accepts a local address as neighbor; bgpd refuses it.
    local = good.replace("10.0.0.1 ", "10.0.0.11 ")
    assert check_config(Router.FRR, local).ok
    refused = driver.apply(local)
    assert not refused.ok
    assert refused.outcome is Outcome.REJECTED, "bgpd said no to a line: rejected"
    assert "FRR refused lines of the configuration while loading it" in refused.error
    assert "Can not configure the local system as neighbor" in refused.error
    assert "previous configuration restored" in refused.error

    assert config.read_text(encoding="utf-8") == good
    assert _frr_changes(frr, config) == []
    assert driver.generation() == generation

    frr.restart()
    restarted = driver.generation()
    assert restarted and restarted != generation


def test_frr_policy_changes_go_as_a_delta(
    netns: Netns, frr: FrrInstance, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _links(netns)
    frr.start()
    config = tmp_path / "frr.conf"
    # frr-reload.py through a wrapper that notes each run: a policy change is sent and
    # checked (FRR shows exactly the file) without it.
    runs = tmp_path / "frr-reload.runs"
    wrapper = tmp_path / "frr-reload"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {runs}\nexec {FRR_RELOAD} "$@"\n')
    wrapper.chmod(0o755)
    driver = FrrDriver(config, frr.dir, frr_reload=wrapper)
    policy = _golden("bgp-policy.frr.conf")
    gold = "route-map lbr-bgp-export-v4 permit 61917\n"  # gold's attributes, for every neighbor
    head, tail = policy.split(gold)
    edited = tail.replace(" set community 65000:100 65000:200\n", "").replace(
        "metric 10", "metric 20"
    )
    changed = head + gold + edited
    assert frr_policy_delta(policy, changed) == f"{gold} set metric 20\n no set community\n"
    caplog.set_level(logging.INFO, logger="nodeagent.routers")

    def applied(text: str) -> str:
        caplog.clear()
        runs.unlink(missing_ok=True)
        result = driver.apply(text)
        assert result.ok, result.error
        assert _frr_changes(frr, config) == []
        return caplog.text

    def reload_runs() -> list[str]:
        return runs.read_text().split() if runs.exists() else []

    assert "FRR ran none before" in applied(policy)  # one vtysh -f, checked by show
    assert reload_runs() == []
    assert "policy changes only" in applied(changed)
    assert reload_runs() == []
    assert "policy changes only" in applied(policy)
    assert reload_runs() == []

    # Entries that keep their sequence number are set again, not removed: a ``no`` of
    # the old line would remove the new entry too (FRR keys entries by number).
    bronze = "ip prefix-list lbr-sg-bronze-v4 seq 992499 permit 192.0.2.128/25 le 32"
    export = "route-map lbr-bgp-export-v4 permit 36437"
    renumbered = policy.replace(bronze, bronze.replace("le 32", "le 30")).replace(
        export, export.replace("permit", "deny")
    )
    assert frr_policy_delta(policy, renumbered) == (
        bronze.replace("le 32", "le 30") + "\n" + export.replace("permit", "deny") + "\n"
    )
    said = applied(renumbered)
    assert "policy changes only" in said
    assert "reloading the whole file" not in said
    assert "policy changes only" in applied(policy)

    # A neighbor moved to another route-map (as when the neighbors sharing one change),
    # and a prepend of several ASNs removed: still only policy, no whole-file reload.
    moved = policy.replace(
        "neighbor 10.0.0.2 route-map lbr-bgp-out-e62117e280fb-v4 out",
        "neighbor 10.0.0.2 route-map lbr-bgp-out-8d016618146f-v4 out",
    ).replace(" set as-path prepend 64512 64512 64512\n", "")
    delta = frr_policy_delta(policy, moved)
    assert delta is not None
    assert "  neighbor 10.0.0.2 route-map lbr-bgp-out-8d016618146f-v4 out\n" in delta
    assert " no set as-path prepend\n" in delta
    said = applied(moved)
    assert "policy changes only" in said
    assert "reloading the whole file" not in said

    # Changed behind lbroute's back: the delta leaves a difference, the whole file fixes it.
    frr.vtysh("configure terminal", gold.strip(), "set tag 77")
    said = applied(changed)
    assert "reloading the whole file" in said
    assert "set tag 77" in said
    assert reload_runs() == ["--test", "--reload"], "frr-reload.py decides a difference"

    # Restarted daemons run nothing: the whole file again, in one vtysh -f.
    frr.restart()
    said = applied(policy)
    assert "policy changes only" not in said
    assert "FRR ran none before" in said
    assert "policy changes only" in applied(changed)


def _held(frr: FrrInstance, daemon: str) -> dict[str, tuple[str, ...]]:
    """The prefix-list, large-community list and route-map entries one FRR daemon holds."""
    shown = subprocess.run(
        ["vtysh", "--vty_socket", str(frr.dir), "-d", daemon, "-c", "show running-config"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    statements = frr_statements(shown)
    assert statements is not None, shown
    policy = ("ip", "route-map", "bgp large-community-list")
    return {h: v for h, v in statements.items() if h.startswith(policy)}


def test_frr_policy_goes_to_the_daemons_that_use_it(
    netns: Netns, frr: FrrInstance, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each daemon holds only the route-maps and prefix-lists its routers use (every
    daemon holding one runs all of them again on any change: bench/README.md), after a
    first load, a policy change, and a reload by frr-reload.py (which gives every
    daemon what it adds: the driver then takes from each daemon what it does not use,
    so the next policy change still goes as a delta)."""
    _links(netns)
    frr.start()
    config = tmp_path / "frr.conf"
    driver = FrrDriver(config, frr.dir)
    mixed = _golden("mixed.frr.conf")
    caplog.set_level(logging.INFO, logger="nodeagent.routers")
    ospf_only = "route-map lbr-ospf-export-v4 permit 60343"
    bgp_only = "route-map lbr-bgp-export-v4 permit 31802"  # internet's BGP attributes
    marks = "bgp large-community-list expanded lbr-bgp-marks seq 5 permit ^4294967295:1:"
    internet = (
        "set community 65000:666\n set large-community 4294967295:1:31802\nexit\n!\n"
        "route-map lbr-bgp-export-v4 deny"
    )
    shared = "ip prefix-list lbr-sg-everything-v4 seq 280615 permit 192.0.2.0/24 le 32"

    def applied(text: str) -> str:
        caplog.clear()
        result = driver.apply(text)
        assert result.ok, result.error
        assert _frr_changes(frr, config) == []
        return caplog.text

    def holdings() -> None:
        bgpd, ospfd, zebra = (_held(frr, d) for d in ("bgpd", "ospfd", "zebra"))
        assert ospf_only in ospfd and ospf_only not in bgpd
        assert bgp_only in bgpd and bgp_only not in ospfd
        assert marks in bgpd and marks not in ospfd
        assert shared in bgpd and shared in ospfd
        assert zebra == {}, "zebra uses none of them"
        for daemon in ("ospf6d", "ripd", "ripngd", "isisd"):
            assert _held(frr, daemon) == {}, daemon

    assert "FRR ran none before" in applied(mixed)
    holdings()
    community = mixed.replace(internet, internet.replace("666", "777"))
    assert community.count("65000:777") == 1
    assert "policy changes only" in applied(community)
    holdings()
    assert " set community 65000:777" in _held(frr, "bgpd")[bgp_only]

    # A change frr-reload.py applies (an interface too), with a community in it: it
    # sends the route-map line to every daemon; the driver takes it back from ospfd.
    both = mixed.replace(
        "interface eth0\n ip ospf area 0.0.0.0\n",
        "interface eth0\n ip ospf area 0.0.0.0\n ip ospf cost 7\n",
    )
    both = both.replace(internet, internet.replace("666", "888"))
    assert both.count("ip ospf cost 7") == 1 and both.count("65000:888") == 1
    said = applied(both)
    assert "policy changes only" not in said
    assert "does not use taken from it" in said
    holdings()
    said = applied(
        community.replace("ip ospf area 0.0.0.0\n", "ip ospf area 0.0.0.0\n ip ospf cost 7\n")
    )
    assert "policy changes only" in said
    assert "reloading the whole file" not in said
    holdings()


def test_frr_first_load_onto_empty_daemons(
    netns: Netns, frr: FrrInstance, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Daemons that run nothing get the whole file in one vtysh -f, which also turns
    on forwarding they show as off (as frr-reload.py would: the file lacks ``no ip
    forwarding``), so a first apply in a namespace with forwarding off converges in
    that one step; daemons that run something get the whole-file reload; either way
    FRR ends up running exactly the file. What
    frr-reload.py writes after a reload lands next to the file, never in the host's
    /etc/frr; what the daemons write of their own (ospfd's graceful-restart state) goes
    to their private /run/frr, and frr-reload.py logs to its output: the host's /run/frr
    and /var/log/frr, which a host FRR uses, are left alone."""
    host = [Path("/etc/frr"), Path("/run/frr"), Path("/var/log/frr")]
    host_before = [_files(d) for d in host]
    _links(netns)
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        netns.sysctl(key, "1")  # as on a Kubernetes node
    frr.start()
    config = tmp_path / "lbroute.conf"
    policy, mixed = _golden("bgp-policy.frr.conf"), _golden("mixed.frr.conf")
    caplog.set_level(logging.INFO, logger="nodeagent.routers")

    def applied(driver: FrrDriver, text: str) -> str:
        caplog.clear()
        result = driver.apply(text)
        assert result.ok, result.error
        assert _frr_changes(frr, config) == []
        return caplog.text

    assert "FRR ran none before" in applied(FrrDriver(config, frr.dir), policy)
    # An agent restarted while FRR runs its configuration: not empty, the reload decides.
    said = applied(FrrDriver(config, frr.dir), mixed)
    assert "FRR ran none before" not in said
    assert "applied" in said

    frr.restart()
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        netns.sysctl(key, "0")
    said = applied(FrrDriver(config, frr.dir), policy)
    # In one step: the forwarding goes on in the same vtysh -f, no whole-file reload.
    assert "FRR ran none before" in said
    assert "still differs" not in said
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        assert netns.exec("sysctl", "-n", key).stdout.strip() == "1", key

    assert (tmp_path / "frr.conf").exists()  # frr-reload.py's write after its reloads
    assert [_files(d) for d in host] == host_before
    assert (frr.dir / "ospfd-gr.json").exists(), "written in the lab's own /run/frr"


def test_unreachable_routers_have_no_generation(tmp_path: Path) -> None:
    assert BirdDriver(tmp_path / "bird.conf", tmp_path / "bird.ctl").generation() is None
    assert BirdDriver(tmp_path / "bird.conf", tmp_path / "bird.ctl").sessions() == []
    bird_down = BirdDriver(tmp_path / "bird.conf", tmp_path / "bird.ctl").apply(BIRD_START)
    assert bird_down.outcome is Outcome.UNAVAILABLE, bird_down.error
    assert bird_down.error.startswith(f"BIRD is not answering on {tmp_path / 'bird.ctl'} (")
    assert bird_down.summary("bird on node-a") == (
        "BIRD on node-a could not be reached to load the new configuration"
    )
    assert not (tmp_path / "bird.conf").exists(), "nothing changed"
    assert FrrDriver(tmp_path / "frr.conf", tmp_path).generation() is None
    assert FrrDriver(tmp_path / "frr.conf", tmp_path).sessions() == []
    down = FrrDriver(tmp_path / "frr.conf", tmp_path).apply(_golden("bgp-ipv4.frr.conf"))
    assert down.outcome is Outcome.UNAVAILABLE
    assert down.error.startswith("FRR does not answer (vtysh: ")
    assert not (tmp_path / "frr.conf").exists(), "nothing changed"


def test_sessions_established_between_bird_and_frr(
    netns: Netns, other_ns: Netns, bird: BirdInstance, tmp_path: Path
) -> None:
    _links(netns, eth0=False)
    veth(netns, "eth0", other_ns, "eth0")
    netns.ip("addr", "add", "10.0.0.11/24", "dev", "eth0")
    other_ns.ip("addr", "add", "10.0.0.1/24", "dev", "eth0")
    config = tmp_path / "bird.conf"
    config.write_text(_golden("bgp-ipv4.bird.conf"), encoding="utf-8")
    bird.start(config)
    bird_driver = BirdDriver(config, bird.socket)

    tor = FrrInstance(other_ns)
    vtysh_conf(tmp_path)
    try:
        tor.start(("zebra", "bgpd", "staticd"))
        frr_driver = FrrDriver(tmp_path / "tor.conf", tor.dir)
        result = frr_driver.apply(TOR_FRR.format(hostname=socket.gethostname()))
        assert result.ok, result.error

        def established(sessions: list[Session], name: str) -> bool:
            return any(s.name == name and s.state == "Established" for s in sessions)

        _eventually(lambda: established(bird_driver.sessions(), "lbr_bgp_tor"))
        _eventually(lambda: established(frr_driver.sessions(), "10.0.0.11"))
        (bird_bgp,) = bird_driver.sessions()
        assert (bird_bgp.protocol, bird_bgp.since != "") == ("bgp", True)
        (frr_bgp,) = frr_driver.sessions()
        assert (frr_bgp.protocol, frr_bgp.since[:3]) == ("bgp", "00:")
    finally:
        tor.stop()
